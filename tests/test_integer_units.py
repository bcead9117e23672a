"""The arithmetic units one by one, against exact arithmetic and their documented error bounds."""

import math
import random
from fractions import Fraction

import pytest
import torch

from golden.integer.arith import round_shift, saturate
from golden.integer.config import EngineConfig
from golden.integer.normaliser import normalise, rsqrt_table
from golden.integer.softmax import exp2_table, softmax_error


def test_round_shift_is_round_half_up():
    rng = random.Random(0)
    values = [rng.randrange(-10 ** 6, 10 ** 6) for _ in range(2000)] + [-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 5, 6]
    for shift in (1, 2, 5):
        got = round_shift(torch.tensor(values), shift).tolist()
        want = [math.floor(Fraction(v, 1 << shift) + Fraction(1, 2)) for v in values]
        assert got == want
        assert [round_shift(v, shift) for v in values] == want
    assert round_shift(torch.tensor([-3, 3]), 1).tolist() == [-1, 2]  # ties towards +infinity
    assert round_shift(7, 0) == 7


def test_saturate_clamps_to_two_complement_range():
    x = torch.tensor([-(1 << 40), -32769, -32768, 0, 32767, 32768, 1 << 40])
    assert saturate(x, 16).tolist() == [-32768, -32768, -32768, 0, 32767, 32767, 32767]
    assert saturate(40000, 16) == 32767


def test_exp2_table_is_correctly_rounded():
    for index_bits, value_bits in ((5, 14), (4, 10), (6, 15)):
        table = exp2_table(index_bits, value_bits)
        J = 1 << index_bits
        assert table[0] == 1 << value_bits
        for j, v in enumerate(table):
            assert abs(v - 2 ** (value_bits - j / J)) <= 0.5


@pytest.mark.parametrize("index_bits, value_bits", [(3, 10), (0, 10), (4, 12)])
def test_rsqrt_within_documented_bound(index_bits, value_bits):
    table = rsqrt_table(index_bits, value_bits)
    # docs/numerics.md: |R / 2**(norm_bits + e2) * sqrt(S) - 1| <= 2**-(index_bits + 2) + 2**-norm_bits.
    bound = 2.0 ** -(index_bits + 2) + 2.0 ** -value_bits
    rng = random.Random(1)
    for square in [1, 2, 3, 4, 7, 8, 255, 256] + [rng.randrange(1, 1 << 30) for _ in range(3000)]:
        norm = normalise(square, index_bits, table)
        estimate = norm.rsqrt / 2 ** (value_bits + norm.half_exponent)
        assert abs(estimate * math.sqrt(square) - 1) <= bound, square


def test_softmax_tracks_exact_base2_softmax():
    config = EngineConfig()
    table = exp2_table(config.logit_frac, config.exp_bits)
    gen = torch.Generator().manual_seed(0)
    one = 1 << config.prob_frac
    for trial in range(300):
        spread = [8, 64, 512, 2047][trial % 4]
        logits = torch.randint(-spread, spread + 1, (10,), generator=gen)
        label = trial % 10
        sm = softmax_error(logits, label, config, table)
        exact = torch.softmax(logits.double() / (1 << config.logit_frac) * math.log(2), 0) * one
        # docs/numerics.md: each p_c within 2 LSB of the exact softmax of the integer logits.
        assert (sm.probs.double() - exact).abs().max() <= 2
        assert sm.errors[label] == sm.probs[label] - one
        assert abs(int(sm.probs.sum()) - one) <= 10
        assert sm.total >= 1 << config.exp_bits
