"""rtl.frame_counters.FrameCounters in the Amaranth simulator against a count kept by the
testbench: random increments on the three counters (each taken only while ready, whether or not
the producer waits for ready to offer one), and reads of the ring, a byte at a time with pauses,
whose twelve bytes must be exactly the counts taken before the read began (increments arrive
during reads too); past a byte's carry."""

import random

import pytest
from amaranth.sim import Simulator

from rtl.frame_counters import FrameCounters


def run(seed, rounds, rate, waits=True):
    """``[(counts before the read, counts read)]`` over ``rounds`` reads. ``waits``: the producer
    offers an increment only while ready; otherwise it offers regardless, and only the
    increments offered while ready count (as a stream's transfers)."""
    dut = FrameCounters()
    rng = random.Random(seed)
    counts = [0, 0, 0]
    reads = []

    async def bench(ctx):
        async def cycle(inc=0, hold=0, turn=0):
            if waits:
                inc &= ctx.get(dut.inc_ready)
            ctx.set(dut.inc, inc)
            ctx.set(dut.hold, hold)
            ctx.set(dut.turn, turn)
            *_, ready = await ctx.tick().sample(dut.inc_ready)
            for k in range(3):
                if inc >> k & 1 and ready >> k & 1:
                    counts[k] += 1

        async def until_idle():
            for _ in range(200):
                if ctx.get(dut.idle):
                    return
                await cycle()
            raise AssertionError("never idle")

        async def read():
            await until_idle()
            snapshot = list(counts)
            got = []
            for _ in range(12):
                # Increments go on arriving while the read holds; they must not show in it.
                while rng.random() < 0.3:
                    await cycle(inc=rng.randrange(8), hold=1)
                got.append(ctx.get(dut.byte))
                await cycle(inc=rng.randrange(8) if rng.random() < rate else 0, hold=1, turn=1)
            value = int.from_bytes(bytes(got), "little")
            reads.append((snapshot, [(value >> (32 * k)) & 0xFFFFFFFF for k in range(3)]))

        await until_idle()
        for _ in range(rounds):
            for _ in range(rng.randrange(1, 200)):
                await cycle(inc=rng.randrange(1, 8) if rng.random() < rate else 0)
            await read()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return reads


@pytest.mark.parametrize("rate", [0.1, 0.5, 1.0])
def test_reads_are_the_counts_taken_before_them(rate):
    reads = run(seed=int(rate * 10), rounds=40, rate=rate)
    for snapshot, got in reads:
        assert got == snapshot
    if rate == 1.0:
        assert min(reads[-1][0]) > 256, "past a byte's carry"


@pytest.mark.parametrize("rate", [0.5, 1.0])
def test_an_increment_offered_while_not_ready_is_not_counted(rate):
    # inc_ready is low while a counter's increment waits; one offered then is not taken, even in
    # the cycle a pass takes the waiting one (it was counted there: one increment too many).
    reads = run(seed=7 + int(rate * 10), rounds=40, rate=rate, waits=False)
    for snapshot, got in reads:
        assert got == snapshot
