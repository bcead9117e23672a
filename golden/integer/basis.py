"""The LLS basis without a stored matrix: a phase accumulator per class, read as a square wave or
through a quarter-wave sine table.

The reference basis is ``B[c, n] = sin(f_c n)`` with ``f_c = linspace(50, 512, C)[c]`` radians
per neuron index. ``sin(f_c n) = sin(2 pi phase / 2**P)`` with ``phase = n * inc_c mod 2**P`` and
``inc_c = round(frac(f_c / 2 pi) 2**P)``: the hardware adds ``inc_c`` once per neuron (an NCO),
and the class's basis value is a function of the top bits of the phase.
"""

import math
from fractions import Fraction

import torch

__all__ = ["MIN_FREQUENCY", "MAX_FREQUENCY", "frequency", "phase_increments", "phases",
           "sine_quarter_table", "square_wave", "sine_wave", "basis_matrix"]

# The reference code's frequencies, radians per neuron index: linspace(50, 512, C).
MIN_FREQUENCY = 50
MAX_FREQUENCY = 512

# Bits of 2 pi used to derive the increments: the error (< 2**-200 relative) is far below the
# 2**-P resolution, and _round_exact refuses any value that is not decided by it.
_PI_BITS = 256


def _pi(bits):
    """``pi`` to within ``2**-(bits - 8)``, as a Fraction (Machin's formula in integers)."""
    scale = 1 << (bits + 8)

    def arctan_inv(x):
        # arctan(1/x) * scale by its alternating series, truncated per term (error < terms count).
        total, power, n, sign = 0, scale // x, 1, 1
        while power:
            total += sign * (power // n)
            power //= x * x
            n += 2
            sign = -sign
        return total

    return Fraction(16 * arctan_inv(5) - 4 * arctan_inv(239), scale)


def frequency(c, n_classes):
    """``f_c = linspace(50, 512, C)[c]`` as an exact rational (the reference computes it in float32)."""
    if n_classes == 1:
        return Fraction(MIN_FREQUENCY)
    return MIN_FREQUENCY + Fraction((MAX_FREQUENCY - MIN_FREQUENCY) * c, n_classes - 1)


def _round_exact(value, tolerance):
    """``floor(value + 1/2)`` for a value known only to within ``tolerance``; refuses near-ties."""
    rounded = math.floor(value + Fraction(1, 2))
    if abs(value - rounded) > Fraction(1, 2) - tolerance:
        raise ArithmeticError(f"{float(value)} is too close to a rounding tie to decide")
    return rounded


def phase_increments(n_classes, phase_bits):
    """``inc_c = round(frac(f_c / 2 pi) * 2**P)`` for every class, exactly.

    The fractional part is taken of an interval around ``f_c / 2 pi`` of relative width
    ``2**-(_PI_BITS - 8)``; the result is certified by :func:`_round_exact`. A result of ``2**P``
    (fraction within half a step of 1) wraps to 0, as the accumulator does.
    """
    two_pi = 2 * _pi(_PI_BITS)
    tolerance = Fraction(MAX_FREQUENCY << phase_bits, 1 << (_PI_BITS - 10))
    increments = []
    for c in range(n_classes):
        cycles = frequency(c, n_classes) / two_pi
        fraction = cycles - math.floor(cycles)
        increments.append(_round_exact(fraction * (1 << phase_bits), tolerance) % (1 << phase_bits))
    return tuple(increments)


def phases(increments, n_neurons, phase_bits):
    """``(C, N)`` phases ``n * inc_c mod 2**P``: the accumulator after ``n`` additions of ``inc_c``."""
    inc = torch.tensor(increments, dtype=torch.int64).unsqueeze(1)
    n = torch.arange(n_neurons, dtype=torch.int64).unsqueeze(0)
    # n < 2**22 and inc < 2**40 keep the product inside int64.
    return (n * inc) & ((1 << phase_bits) - 1)


def sine_quarter_table(index_bits, value_bits):
    """Quarter-wave table ``T[i] = round(A sin(pi/2 (i + 1/2) / 2**index_bits))``, ``A = 2**(value_bits-1) - 1``.

    Sampling at bin centres makes the mirrored quadrants exact. The values are generated once in
    float64 (error < 1e-15 relative) and accepted only if every one is at least 1e-9 away from a
    rounding tie, so the integers do not depend on the platform's ``sin``.
    """
    amplitude = (1 << (value_bits - 1)) - 1
    table = []
    for i in range(1 << index_bits):
        exact = amplitude * math.sin(math.pi / 2 * (i + 0.5) / (1 << index_bits))
        if abs(exact - math.floor(exact) - 0.5) < 1e-9:
            raise ArithmeticError(f"sine table entry {i} is too close to a rounding tie")
        table.append(math.floor(exact + 0.5))
    return tuple(table)


def square_wave(phase, phase_bits):
    """``+1`` where the phase's sign bit is 0 (first half cycle, ``sin >= 0``), else ``-1``."""
    return 1 - 2 * (phase >> (phase_bits - 1))


def sine_wave(phase, phase_bits, table, index_bits):
    """``sin(2 pi phase / 2**P)`` through the quarter-wave table.

    The top 2 phase bits select the quadrant, the next ``index_bits`` the entry: read forwards in
    quadrants 0 and 2, backwards (``2**index_bits - 1 - i``) in 1 and 3, negated in 2 and 3.
    """
    top = phase >> (phase_bits - index_bits - 2)
    quadrant = top >> index_bits
    index = top & ((1 << index_bits) - 1)
    mirrored = torch.where((quadrant & 1) == 1, (1 << index_bits) - 1 - index, index)
    magnitude = torch.tensor(table, dtype=torch.int64)[mirrored]
    return torch.where(quadrant >= 2, -magnitude, magnitude)


def basis_matrix(config, n_neurons):
    """The ``(C, N)`` int64 basis of an LLS layer of ``n_neurons``, as the hardware generates it."""
    phase = phases(phase_increments(config.n_classes, config.phase_bits), n_neurons, config.phase_bits)
    if config.basis == "square":
        return square_wave(phase, config.phase_bits)
    table = sine_quarter_table(config.table_index_bits, config.table_bits)
    return sine_wave(phase, config.phase_bits, table, config.table_index_bits)
