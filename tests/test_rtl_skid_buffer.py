"""rtl.skid_buffer.SkidBuffer in the Amaranth simulator: every payload once, in order, under random
valid and ready on both sides; ``i.ready`` and ``o.valid`` are registers; a payload a cycle while
``o`` is ready."""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from rtl.skid_buffer import SkidBuffer

LAYOUT = data.StructLayout({"value": 12, "tag": 3})


def run(values, source_rate, sink_rate, seed, ready_copies=0):
    """``(received, log)``: the payloads ``o`` took, and per cycle ``(i.valid, i.ready, busy,
    o.valid, o.ready)`` as sampled before the edge. With ``ready_copies``, every copy equals
    ``i.ready`` in every cycle."""
    dut = SkidBuffer(LAYOUT, ready_copies=ready_copies)
    rng = random.Random(seed)
    received, log = [], []

    async def source(ctx):
        for value in values:
            ctx.set(dut.i.payload, value)
            ctx.set(dut.i.valid, 0)
            while rng.random() >= source_rate:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        while len(received) < len(values):
            ready = rng.random() < sink_rate
            ctx.set(dut.o.ready, ready)
            copies = dut.ready_copies if ready_copies else dut.i.ready
            *_, i_valid, i_ready, busy, o_valid, o_ready, payload, copy = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.busy, dut.o.valid, dut.o.ready, dut.o.payload, copies)
            if ready_copies:
                assert copy == (i_ready << ready_copies) - i_ready, (copy, i_ready)
            log.append((i_valid, i_ready, busy, o_valid, o_ready))
            if o_valid and o_ready:
                received.append({"value": payload.value, "tag": payload.tag})
            assert len(log) < 50 * len(values) + 100, "stalled"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    return received, log


@pytest.mark.parametrize("ready_copies", [0, 3])
@pytest.mark.parametrize("source_rate, sink_rate", [(1.0, 1.0), (1.0, 0.5), (0.5, 1.0), (0.7, 0.3), (0.3, 0.7)])
def test_every_payload_once_in_order(source_rate, sink_rate, ready_copies):
    values = [{"value": random.Random(n).randrange(1 << 12), "tag": n % 8} for n in range(300)]
    received, log = run(values, source_rate, sink_rate, seed=int(10 * source_rate + 100 * sink_rate),
                        ready_copies=ready_copies)
    assert received == values
    for (i_valid, i_ready, busy, o_valid, o_ready), after in zip(log, log[1:]):
        # Registers: i.ready falls only after a cycle with i refused by the sink, o.valid only
        # after a transfer out.
        if i_ready and not after[1]:
            assert i_valid and o_valid and not o_ready
        if o_valid and not after[3]:
            assert o_ready
        assert busy == (o_valid or not i_ready)
    if sink_rate < 1:
        assert not all(entry[1] for entry in log), "the skid register never held a payload: untested"


def test_full_throughput_a_cycle_later():
    values = [{"value": n, "tag": n % 8} for n in range(50)]
    received, log = run(values, 1.0, 1.0, seed=0)
    assert received == values
    # The first payload is offered at the first edge and taken from the output register a cycle
    # later; then one a cycle.
    transfers = [k for k, (i_valid, i_ready, busy, o_valid, o_ready) in enumerate(log) if o_valid and o_ready]
    assert transfers == list(range(1, 1 + len(values)))
    assert all(entry[1] for entry in log)


def test_ready_copies_refused():
    with pytest.raises(ValueError, match="ready_copies"):
        SkidBuffer(LAYOUT, ready_copies=-1)
