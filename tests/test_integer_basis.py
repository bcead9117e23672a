"""The phase-accumulator basis: exact increments, and values equal to the quantised sin(f_c n)."""

import math

import pytest
import torch

from golden.integer.basis import (frequency, phase_increments, phases, sine_quarter_table, sine_wave,
                                  square_wave)
from golden.integer.config import EngineConfig

PHASE_BITS = 32


def test_increments_match_high_precision_reference():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 200
    for n_classes in (2, 10, 26):
        for c, inc in enumerate(phase_increments(n_classes, PHASE_BITS)):
            f = mpmath.mpf(frequency(c, n_classes).numerator) / frequency(c, n_classes).denominator
            cycles = f / (2 * mpmath.pi)
            exact = (cycles - mpmath.floor(cycles)) * 2 ** PHASE_BITS
            assert abs(exact - inc) <= 0.5 or abs(exact - 2 ** PHASE_BITS - inc) <= 0.5


def test_frequencies_are_the_reference_linspace():
    assert [float(frequency(c, 10)) for c in range(10)] == pytest.approx(
        torch.linspace(50, 512, 10, dtype=torch.float64).tolist(), rel=1e-15)


def test_documented_increment_table():
    # docs/numerics.md lists these for C = 10, P = 32.
    assert phase_increments(10, 32) == (4113492707, 548471189, 1278416967, 2008362746, 2738308524,
                                        3468254302, 4198200080, 633178563, 1363124341, 2093070119)


def _true_sin(c, n, n_classes):
    return math.sin(float(frequency(c, n_classes)) * n)


@pytest.mark.parametrize("n_classes, n_neurons", [(10, 128), (10, 784), (3, 64)])
def test_square_wave_is_the_sign_of_sin(n_classes, n_neurons):
    phase = phases(phase_increments(n_classes, PHASE_BITS), n_neurons, PHASE_BITS)
    square = square_wave(phase, PHASE_BITS)
    # Accumulated increment rounding: at most n/2 phase LSBs, i.e. n * pi / 2**P radians.
    for c in range(n_classes):
        for n in range(n_neurons):
            s = _true_sin(c, n, n_classes)
            if abs(s) > n * math.pi / 2 ** PHASE_BITS + 1e-9:
                assert square[c, n] == (1 if s > 0 else -1), (c, n)
            assert square[c, n] in (-1, 1)


@pytest.mark.parametrize("index_bits, value_bits", [(6, 8), (4, 6), (8, 12)])
def test_sine_table_equals_quantised_sin(index_bits, value_bits):
    n_classes, n_neurons = 10, 512
    table = sine_quarter_table(index_bits, value_bits)
    amplitude = (1 << (value_bits - 1)) - 1
    phase = phases(phase_increments(n_classes, PHASE_BITS), n_neurons, PHASE_BITS)
    values = sine_wave(phase, PHASE_BITS, table, index_bits)
    bins = 1 << (index_bits + 2)
    top = phase >> (PHASE_BITS - index_bits - 2)
    # The spec: round(A sin(2 pi (top + 1/2) / 2**(index_bits + 2))), the full-wave formula.
    spec = torch.tensor([[math.floor(amplitude * math.sin(2 * math.pi * (t + 0.5) / bins) + 0.5)
                          for t in row] for row in top.tolist()])
    assert torch.equal(values, spec)
    # Within the documented bound of the true sin: half a bin of phase, half an LSB of
    # amplitude, and the increments' accumulated rounding.
    for c in range(n_classes):
        for n in range(n_neurons):
            bound = math.pi / bins + 0.5 / amplitude + n * math.pi / 2 ** PHASE_BITS + 1e-12
            assert abs(values[c, n] / amplitude - _true_sin(c, n, n_classes)) <= bound


def test_default_sine_table():
    # docs/numerics.md lists the default 64-entry, 8-bit quarter wave.
    config = EngineConfig()
    table = sine_quarter_table(config.table_index_bits, config.table_bits)
    assert len(table) == 64 and table[0] == 2 and table[-1] == 127
    assert list(table) == sorted(table)
