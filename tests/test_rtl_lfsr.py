# amaranth: UnusedElaboratable=no
"""rtl.lfsr.LFSR against golden.integer.lfsr, every cycle's state, bits and value compared."""

import random
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from golden.integer.lfsr import LFSR as GoldenLFSR
from golden.integer.lfsr import POLY16, POLY32, lfsr_values
from rtl.lfsr import LFSR

COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"

# (poly, seed, bits): one step, a DRTP entry, an init weight, a stochastic-rounding draw, and
# the exhaustively checked 16-bit polynomial.
CONFIGS = [
    (POLY32, 0x9E3779B9, 1),
    (POLY32, 0x7F4A7C15, 4),
    (POLY32, 0x9E3779B9, 9),
    (POLY32, 0x85EBCA6B, 32),
    (POLY16, 0xACE1, 3),
]


def peek(poly, state, bits):
    """The bits the next advance emits and the state after it, from the golden model."""
    model = GoldenLFSR(poly, state)
    out = model.bits(bits)
    return out, model.state


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def check_random_controls(poly, seed, bits, cycles, rng, golden=peek):
    """Random next/load (loads of saved and random states); everything compared every cycle."""
    dut = LFSR(poly, seed, bits)
    width = poly.bit_length() - 1

    async def bench(ctx):
        state = seed
        saved = [seed]
        for _ in range(cycles):
            draw = rng.random()
            load = draw < 0.1
            step = not load and draw < 0.8
            value = rng.choice(saved) if rng.random() < 0.5 else rng.randrange(1, 1 << width)
            ctx.set(dut.next, int(step) if rng.random() < 0.9 else 1)   # next with load: load wins
            ctx.set(dut.load, int(load))
            ctx.set(dut.load_value, value)
            out, after = golden(poly, state, bits)
            assert ctx.get(dut.state) == state
            assert ctx.get(dut.out) == out
            assert ctx.get(dut.value) == 2 * out + 1 - (1 << bits)
            await ctx.tick()
            if load:
                state = value
            elif ctx.get(dut.next):
                state = after
            if rng.random() < 0.05:
                saved.append(state)

    simulate(dut, bench)


@pytest.mark.parametrize("poly, seed, bits", CONFIGS, ids=lambda v: hex(v) if v > 64 else str(v))
def test_lfsr_controls_match_golden(poly, seed, bits):
    check_random_controls(poly, seed, bits, 400, random.Random(bits))


@pytest.mark.parametrize("poly, seed, bits", CONFIGS, ids=lambda v: hex(v) if v > 64 else str(v))
def test_lfsr_values_stream_matches_golden(poly, seed, bits):
    """Free-running from reset, ``value`` is ``lfsr_values``'s stream."""
    count = 300
    want = lfsr_values(GoldenLFSR(poly, seed), count, bits)
    dut = LFSR(poly, seed, bits)

    async def bench(ctx):
        ctx.set(dut.next, 1)
        got = []
        for _ in range(count):
            got.append(ctx.get(dut.value))
            await ctx.tick()
        assert got == want

    simulate(dut, bench)


def test_lfsr_check_can_fail():
    """A golden model one step off is caught."""
    def wrong(poly, state, bits):
        return peek(poly, peek(poly, state, 1)[1], bits)

    with pytest.raises(AssertionError):
        check_random_controls(POLY32, 0x9E3779B9, 4, 20, random.Random(0), golden=wrong)


def test_lfsr_rejects_bad_parameters():
    with pytest.raises(ValueError):
        LFSR(POLY32, 0)
    with pytest.raises(ValueError):
        LFSR(POLY32, 1 << 32)
    with pytest.raises(ValueError):
        LFSR(POLY32, 1, bits=0)


@pytest.mark.parametrize("poly, seed, bits", [CONFIGS[1], CONFIGS[3]], ids=["b4", "b32"])
def test_lfsr_cocotb(poly, seed, bits):
    """The reference simulator: Verilator, the same checks with random controls."""
    from sim.cocotb_runner import run_cocotb

    run_cocotb(LFSR(poly, seed, bits), block="lfsr", test_module="cocotb_lfsr", test_paths=[COCOTB_DIR],
               params={"poly": poly, "seed": seed, "bits": bits, "cycles": 2000})


def test_lfsr_cocotb_failure_is_reported():
    """A bench comparing against a wrong reference makes ``run_cocotb`` raise, naming the tests."""
    from sim.cocotb_runner import CocotbFailure, run_cocotb

    poly, seed, bits = CONFIGS[1]
    with pytest.raises(CocotbFailure, match="3 of 3 cocotb tests failed"):
        run_cocotb(LFSR(poly, seed, bits), block="lfsr", test_module="cocotb_lfsr", test_paths=[COCOTB_DIR],
                   params={"poly": poly, "seed": seed, "bits": bits, "cycles": 50, "wrong_reference": True})
