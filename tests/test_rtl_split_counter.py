"""SplitCounter against the running total, across its halves' boundary and its wrap."""

import random

import pytest
from amaranth.sim import Simulator

from rtl.split_counter import SplitCounter


@pytest.mark.parametrize("width, inc_width, init", [
    (48, 4, (1 << 24) - 40),       # the engine's busy lane-cycles, started just below the carry
    (48, 1, (1 << 24) - 7),        # its cycle count
    (12, 3, (1 << 12) - 30),       # past the wrap
])
def test_split_counter_matches_the_total(width, inc_width, init):
    """Every cycle, value plus a settling carry is the total; after an idle cycle value alone is."""
    dut = SplitCounter(width, inc_width, init)
    rng = random.Random(width + inc_width)
    mask = (1 << width) - 1
    checked = {"settled": 0, "carries": 0}

    async def bench(ctx):
        total = init
        idle = True
        for _ in range(600):
            value, settling = ctx.get(dut.value), ctx.get(dut.settling)
            assert (value + (settling << dut.half)) & mask == total
            if idle:
                assert not settling and value == total
                checked["settled"] += 1
            checked["carries"] += settling
            inc = rng.randrange(1 << inc_width) if rng.random() < 0.7 else 0
            ctx.set(dut.inc, inc)
            total = (total + inc) & mask
            idle = inc == 0
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert checked["carries"] >= 1 and checked["settled"] >= 50


def test_split_counter_refuses_a_wide_increment():
    with pytest.raises(ValueError, match="inc_width must be 1 .. width // 2 = 4"):
        SplitCounter(8, 5)
