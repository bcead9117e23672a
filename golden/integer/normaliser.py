"""The LLS normaliser: ``1 / ||h||`` as a power of two times a small table entry.

``S = ||h||^2`` is an exact integer. With ``E`` the position of its leading one,
``S = 2**E (1 + f)`` and ``1/sqrt(S) = 2**-(E >> 1) / sqrt(2**(E & 1) (1 + f))``: a shift by
``e2 = E >> 1`` and a ``1/sqrt`` table indexed by the parity of ``E`` and the top
``norm_index_bits`` bits of ``f``. The table replaces N divisions by C multiplications, since
``z_hat B^T = (h B^T) / ||h||`` and the gradient's ``1/||h||`` can be applied to the C errors.
"""

import math
from dataclasses import dataclass

__all__ = ["Norm", "rsqrt_table", "normalise"]


def rsqrt_table(index_bits, value_bits):
    """``R[p][m] = round(2**value_bits / sqrt(2**p (1 + (m + 1/2) / 2**index_bits)))``, exactly.

    Each entry stands for its mantissa bin's centre. Computed in integers:
    ``round(sqrt(y)) = (isqrt(floor(4 y)) + 1) >> 1``.
    """
    table = []
    for parity in (0, 1):
        row = []
        for m in range(1 << index_bits):
            # y = 2**(2 value_bits) 2**(index_bits + 1) / (2**parity (2**(index_bits + 1) + 2m + 1))
            numerator = 4 << (2 * value_bits + index_bits + 1)
            denominator = (1 << parity) * ((2 << index_bits) + 2 * m + 1)
            row.append((math.isqrt(numerator // denominator) + 1) >> 1)
        table.append(tuple(row))
    return tuple(table)


@dataclass(frozen=True)
class Norm:
    """The normaliser's output for one ``S = ||h||^2 > 0``.

    Attributes
    ----------
    square : int
        ``S``.
    half_exponent : int
        ``e2 = E >> 1``, with ``E`` the leading-one position of ``S``.
    index : int
        Table index ``(E & 1) << norm_index_bits | m``.
    rsqrt : int
        ``R``; ``1 / ||h|| ~= R / 2**(norm_bits + e2)``.
    """

    square: int
    half_exponent: int
    index: int
    rsqrt: int


def normalise(square, index_bits, table):
    """:class:`Norm` of ``S = square > 0`` using ``table = rsqrt_table(index_bits, ...)``."""
    if square <= 0:
        raise ValueError(f"normalise: ||h||^2 must be positive, got {square}")
    exponent = square.bit_length() - 1
    parity = exponent & 1
    # The index_bits bits just below the leading one (zero-padded when S is short).
    mantissa = ((square << index_bits) >> exponent) & ((1 << index_bits) - 1)
    return Norm(square, exponent >> 1, (parity << index_bits) | mantissa, table[parity][mantissa])
