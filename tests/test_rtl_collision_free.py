"""collision_free: the iCE40-only attribute, and the simulation check that can fail."""

import pytest
from amaranth import Module, Signal
from amaranth.lib import memory
from amaranth.sim import Simulator
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform

from rtl.collision_free import assert_collision_free, collision_free_attrs


def test_attrs_on_the_ice40_only():
    assert collision_free_attrs(ICEBreakerPlatform()) == {"no_rw_check": 1}
    assert collision_free_attrs(OrangeCrabR0_2_25FPlatform()) == {}
    assert collision_free_attrs(None) == {}


def run(writes_and_reads):
    """A 4-word memory; each cycle a (write address or None, read address, used)."""
    m = Module()
    m.submodules.mem = mem = memory.Memory(shape=8, depth=4, init=[])
    write, read = mem.write_port(), mem.read_port()
    used = Signal()
    assert_collision_free(m, None, write, read, used=used, what="test memory")

    async def bench(ctx):
        for w, r, u in writes_and_reads:
            ctx.set(write.en, w is not None)
            ctx.set(write.addr, w or 0)
            ctx.set(read.addr, r)
            ctx.set(used, u)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_other_words_and_unused_reads_pass():
    run([(1, 2, True), (3, 3, False), (None, 3, True), (0, 1, True)])


def test_a_used_read_of_the_written_word_fails():
    with pytest.raises(AssertionError, match="test memory: a used read met a write of word 2"):
        run([(1, 2, True), (2, 2, True)])
