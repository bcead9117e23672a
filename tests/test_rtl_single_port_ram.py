"""The single-port weight store (rtl/single_port_ram.py): its model against a dictionary, and
the SPRAM instances it builds on an iCE40."""

import random
from types import SimpleNamespace

import pytest
from amaranth.hdl import Fragment, Instance
from amaranth.sim import Simulator

from rtl.single_port_ram import SPRAM_DEPTH, SinglePortRAM


@pytest.mark.parametrize("registered", [False, True])
def test_model_reads_writes_holds_and_poisons(registered):
    """Random reads, lane-masked writes and idle cycles: a read returns the last value written
    (lane by lane); an idle cycle keeps the output; after a write the written lanes read as the
    poison pattern, as the SPRAM's output is undefined then. With the port registered, all of it
    a cycle later."""
    depth = 37
    dut = SinglePortRAM(depth, registered=registered)
    rng = random.Random(5)
    memory = {}

    async def bench(ctx):
        expected = None   # what read_data shows, per lane (None: not known yet)
        if registered:
            await ctx.tick()   # (the first cycle's request is all zeros: a write of nothing)
        for _ in range(600):
            action = rng.choice(["read", "write", "idle"])
            addr = rng.randrange(depth)
            ctx.set(dut.addr, addr)
            ctx.set(dut.read_en, int(action == "read"))
            mask = rng.randrange(1, 16) if action == "write" else 0
            data = rng.getrandbits(64)
            ctx.set(dut.write_en, mask)
            ctx.set(dut.write_data, data)
            await ctx.tick()
            if registered:
                # What was asked for happens at this edge; the outputs show it after the next.
                ctx.set(dut.read_en, 0)
                ctx.set(dut.write_en, 0)
                await ctx.tick()
            if action == "write":
                for n in range(4):
                    if mask >> n & 1:
                        memory[(addr, n)] = data >> (16 * n) & 0xFFFF
                expected = [0xA5C3 if mask >> n & 1 else (expected[n] if expected else None) for n in range(4)]
            elif action == "read":
                expected = [memory.get((addr, n)) for n in range(4)]
            value = ctx.get(dut.read_data)
            for n in range(4):
                if expected and expected[n] is not None:
                    assert value >> (16 * n) & 0xFFFF == expected[n], (action, addr, n)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_ice40_builds_four_sprams_and_refuses_a_deeper_store():
    fragment = Fragment.get(SinglePortRAM(SPRAM_DEPTH), SimpleNamespace(family="iCE40"))
    instances = [sub for sub, _, _ in fragment.subfragments if isinstance(sub, Instance)]
    assert [i.type for i in instances] == ["SB_SPRAM256KA"] * 4
    with pytest.raises(ValueError, match="depth"):
        SinglePortRAM(SPRAM_DEPTH + 1)
