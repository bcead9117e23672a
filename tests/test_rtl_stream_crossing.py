"""rtl.stream_crossing.StreamCrossing in the Amaranth simulator, two clocks of unrelated periods:
every payload once and in order under random valid and ready, and ``o`` valid only while the
source holds the payload it carries (the source scrambles its payload whenever it is not valid)."""

import random

import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from rtl.stream_crossing import StreamCrossing

WIDTH = 40


def run(values, i_period, o_period, source_rate, sink_rate, seed, stages=3):
    """The payloads ``o`` took, and the ``o_domain`` cycles it ran."""
    m = Module()
    m.domains.src = ClockDomain("src")
    m.domains.dst = ClockDomain("dst")
    m.submodules.dut = dut = StreamCrossing(WIDTH, i_domain="src", o_domain="dst", stages=stages)
    rng = random.Random(seed)
    received = []
    cycles = [0]

    async def source(ctx):
        for value in values:
            ctx.set(dut.i.valid, 0)
            while rng.random() >= source_rate:
                ctx.set(dut.i.payload, rng.randrange(1 << WIDTH))     # not valid: anything
                await ctx.tick("src")
            ctx.set(dut.i.payload, value)
            ctx.set(dut.i.valid, 1)
            while not (await ctx.tick("src").sample(dut.i.ready))[-1]:
                pass
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.i.payload, 0)

    async def sink(ctx):
        while len(received) < len(values):
            ctx.set(dut.o.ready, rng.random() < sink_rate)
            *_, i_valid, i_payload, o_valid, o_ready, o_payload = await ctx.tick("dst").sample(
                dut.i.valid, dut.i.payload, dut.o.valid, dut.o.ready, dut.o.payload)
            if o_valid:
                # Offered only while the source holds the very payload it is offering.
                assert i_valid and o_payload == i_payload == values[len(received)], \
                    (len(received), i_valid, o_payload, values[len(received)])
                if o_ready:
                    received.append(o_payload)
            cycles[0] += 1
            assert cycles[0] < 100 * len(values) * max(1, i_period // o_period) + 200, "stalled"

    sim = Simulator(m)
    sim.add_clock(i_period * 1e-9, domain="src")
    sim.add_clock(o_period * 1e-9, domain="dst")
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    return received, cycles[0]


@pytest.mark.parametrize("i_period, o_period", [(83, 21), (21, 83), (10, 10), (13, 17)])
@pytest.mark.parametrize("source_rate, sink_rate", [(1.0, 1.0), (0.4, 1.0), (1.0, 0.3), (0.5, 0.5)])
def test_every_payload_once_in_order(i_period, o_period, source_rate, sink_rate):
    rng = random.Random(i_period * 1000 + o_period)
    values = [rng.randrange(1 << WIDTH) for _ in range(120)]
    received, _ = run(values, i_period, o_period, source_rate, sink_rate,
                      seed=i_period + 7 * o_period + int(100 * source_rate + 10 * sink_rate))
    assert received == values


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_a_transfer_takes_the_synchronisers_cycles(stages):
    """Back to back on equal clocks, a transfer every ``stages + 4`` cycles: the request's
    stages, the acknowledgement's two, the source's toggle and its ready, and o's transfer."""
    values = list(range(1, 41))
    received, cycles = run(values, 10, 10, 1.0, 1.0, seed=1, stages=stages)
    assert received == values
    assert (stages + 3) * len(values) <= cycles <= (stages + 5) * len(values) + 10, cycles


def test_stages_checked():
    with pytest.raises(ValueError, match="stages must be at least 2"):
        StreamCrossing(8, i_domain="a", o_domain="b", stages=1)
