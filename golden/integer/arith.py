"""Integer arithmetic as the hardware does it: shifts that round, saturation that never wraps.

Every function works on int64 tensors (exact on CPU) and on Python ints. ``>>`` is an arithmetic
shift, i.e. it floors; rounding is always written out explicitly.
"""

import torch

__all__ = ["round_shift", "saturate", "signed_max", "clamp"]


def signed_max(bits):
    """Largest value of a ``bits``-wide two's-complement number, ``2**(bits-1) - 1``."""
    return (1 << (bits - 1)) - 1


def round_shift(x, shift):
    """``x / 2**shift`` rounded to nearest, ties towards +infinity: ``(x + 2**(shift-1)) >> shift``.

    ``shift = 0`` returns ``x`` unchanged. Ties towards +infinity is what one adder in front of
    the shifter gives; the bias (half an LSB on exact ties only) is negligible.
    """
    if shift < 0:
        raise ValueError(f"round_shift: negative shift {shift}")
    if shift == 0:
        return x
    return (x + (1 << (shift - 1))) >> shift


def clamp(x, low, high):
    """``x`` limited to ``[low, high]``."""
    if isinstance(x, torch.Tensor):
        return x.clamp(low, high)
    return max(low, min(high, x))


def saturate(x, bits):
    """``x`` limited to the ``bits``-wide two's-complement range: saturates, never wraps."""
    return clamp(x, -signed_max(bits) - 1, signed_max(bits))
