"""The LFSR: period, primitivity, and the mapping of its bits to values."""

import pytest

from golden.integer.lfsr import (LFSR, POLY16, POLY32, is_primitive, lfsr_values, poly_mulmod, poly_powmod,
                                 prime_factors)


def test_small_instance_has_full_period():
    # Exhaustive: from seed 1 the 16-bit register visits all 65535 non-zero states, then repeats.
    lfsr = LFSR(POLY16, 1)
    seen = set()
    for _ in range((1 << 16) - 1):
        seen.add(lfsr.state)
        lfsr.step()
    assert lfsr.state == 1
    assert len(seen) == (1 << 16) - 1 and 0 not in seen


def test_production_polynomial_is_primitive():
    order = (1 << 32) - 1
    assert prime_factors(order) == [3, 5, 17, 257, 65537]
    assert poly_powmod(2, order, POLY32) == 1
    for q in prime_factors(order):
        assert poly_powmod(2, order // q, POLY32) != 1
    assert is_primitive(POLY32) and is_primitive(POLY16)


def test_non_primitive_polynomials_are_rejected():
    assert not is_primitive((1 << 16) | 1)                           # x^16 + 1 = (x + 1)^16
    assert not is_primitive((1 << 4) | (1 << 3) | (1 << 2) | (1 << 1) | 1)  # order 5, not 15


def test_steps_are_multiplication_by_x():
    # The register after t steps is seed * x^t mod p: the algebra above is about this code.
    seed = 0x1234_5678
    lfsr = LFSR(POLY32, seed)
    for t in range(1, 200):
        lfsr.step()
        if t in (1, 7, 199):
            assert lfsr.state == poly_mulmod(seed, poly_powmod(2, t, POLY32), POLY32)


def test_output_bits_are_the_top_state_bits():
    lfsr = LFSR(POLY32, 0xDEADBEEF)
    top = lfsr.state >> 22
    # The first 10 outputs precede any feedback into the top 10 bits (next tap is x^22).
    assert lfsr.bits(10) == top


def test_values_are_odd_symmetric_and_in_range():
    lfsr = LFSR(POLY32, 0x9E3779B9)
    values = lfsr_values(lfsr, 4000, 3)
    assert set(values) == {-7, -5, -3, -1, 1, 3, 5, 7}
    # Mean within 4 standard errors of 0 (sd of one value ~4.6).
    assert abs(sum(values)) < 4 * 4.6 * 4000 ** 0.5
    signs = lfsr_values(LFSR(POLY32, 1), 1000, 1)
    assert set(signs) == {-1, 1}


def test_zero_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        LFSR(POLY32, 0)
