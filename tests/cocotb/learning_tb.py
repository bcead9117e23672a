"""Shared cocotb test-bench pieces for the learning-signal units (softmax/error, normaliser, LLS, DRTP).

Every bench is cycle-driven: inputs are written just after a rising edge, handshakes are sampled
in the read-only phase of the same cycle (so a transfer seen there happens at the next edge).

The benches import neither ``torch`` nor the RTL (which imports the golden model, hence torch):
inside the Verilator process importing torch takes ~20 s. The pytest side computes the golden
results and writes them, with the stimulus and the component's payload layouts (as plain
:func:`pack`/:func:`unpack` specs), to a JSON file whose path arrives in ``$SYNCHRONY_PARAMS``.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["TB", "check_cases", "pack", "params", "read", "run_steps", "to_signed", "unpack", "vectors"]


def params():
    """The JSON parameters of this run (``sim.cocotb_runner.run_cocotb(params=...)``)."""
    return json.loads(os.environ.get("SYNCHRONY_PARAMS", "{}"))


def vectors():
    """The stimulus/expectation file named by ``params()["vectors"]``."""
    with open(params()["vectors"]) as handle:
        return json.load(handle)


def pack(spec, value):
    """Bits of ``value`` laid out by ``spec`` (``{"width", "signed"}``, ``{"array", "length"}`` or
    ``{"struct": [[name, offset, spec], ...]}``, as written by the pytest side's ``layout_spec``)."""
    if "struct" in spec:
        return sum(pack(sub, value[name]) << offset for name, offset, sub in spec["struct"])
    if "array" in spec:
        width = spec_width(spec["array"])
        return sum(pack(spec["array"], v) << (i * width) for i, v in enumerate(value))
    return int(value) & ((1 << spec["width"]) - 1)


def unpack(spec, bits):
    """Inverse of :func:`pack`: ints, lists and dicts."""
    if "struct" in spec:
        return {name: unpack(sub, bits >> offset) for name, offset, sub in spec["struct"]}
    if "array" in spec:
        width = spec_width(spec["array"])
        return [unpack(spec["array"], bits >> (i * width)) for i in range(spec["length"])]
    bits &= (1 << spec["width"]) - 1
    return to_signed(bits, spec["width"]) if spec["signed"] else bits


def spec_width(spec):
    """Total width of a :func:`pack` spec."""
    if "struct" in spec:
        return max((offset + spec_width(sub) for _, offset, sub in spec["struct"]), default=0)
    if "array" in spec:
        return spec_width(spec["array"]) * spec["length"]
    return spec["width"]


def read(handle):
    """A port's value as an unsigned integer (1-bit ports are ``Logic``, wider ones ``LogicArray``)."""
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def to_signed(value, bits):
    """Two's-complement reinterpretation of an unsigned ``bits``-bit integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class TB:
    """Clock, reset, a seeded RNG and per-cycle stream helpers around the DUT.

    Parameters
    ----------
    dut : cocotb handle
        The toplevel (Amaranth ports: ``clk``, ``rst``, ``<member>__valid`` ...).
    seed : int
        Seed of the bench's own RNG (stimulus, gaps, back-pressure).
    gap : float
        Probability that a source leaves a cycle idle (random gaps on inputs).
    stall : float
        Probability that a sink holds ``ready`` low in a cycle (random back-pressure).
    """

    def __init__(self, dut, seed=0, gap=0.0, stall=0.0):
        self.dut = dut
        self.rng = random.Random(seed)
        self.gap = gap
        self.stall = stall
        self.cycles = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def reset(self, inputs=()):
        """Hold ``rst`` for two cycles with every named input at 0."""
        for name in inputs:
            getattr(self.dut, name).value = 0
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def tick(self):
        """Advance to the next rising edge."""
        await RisingEdge(self.dut.clk)
        self.cycles += 1

    async def settle(self):
        """Wait for the read-only phase of the current cycle (after the inputs were written)."""
        await ReadOnly()

    def idle(self):
        """A source draws whether to leave this cycle idle."""
        return self.rng.random() < self.gap

    def ready(self):
        """A sink draws its ``ready`` for this cycle."""
        return int(self.rng.random() >= self.stall)


async def check_cases(tb, v, *, one_at_a_time=False):
    """Offer every ``v["cases"][n]["input"]`` on ``i`` and check each ``o`` against its ``"output"``.

    Inputs come with the bench's random gaps, ``o.ready`` with its random back-pressure; the
    payload of a pending ``o`` must hold still. ``one_at_a_time``: an input must not be taken
    while a result is still pending (units with no internal queue). Returns the cycles taken.
    """
    dut, cases = tb.dut, v["cases"]
    sent = received = 0
    held = None
    while received < len(cases):
        if sent < len(cases) and not tb.idle():
            dut.i__valid.value = 1
            dut.i__payload.value = pack(v["in_spec"], cases[sent]["input"])
        else:
            dut.i__valid.value = 0
        ready = tb.ready()
        dut.o__ready.value = ready
        await tb.settle()
        if dut.i__valid.value and dut.i__ready.value:
            assert not (one_at_a_time and dut.o__valid.value), "input accepted while a result is pending"
            sent += 1
        if dut.o__valid.value:
            bits = dut.o__payload.value.to_unsigned()
            assert held is None or bits == held, "o.payload changed while o.valid was high"
            held = bits
            if ready:
                out = unpack(v["out_spec"], bits)
                case = cases[received]
                assert out == case["output"], f"case {received} {case['input']}: got {out}, expected {case['output']}"
                received += 1
                held = None
        await tb.tick()
    return tb.cycles


async def run_steps(tb, cases, h_spec, delta_spec, *, passes, trace=None):
    """Drive the step protocol of the LLS and DRTP units and check every ``δ``.

    Each case has ``label``, ``h``, ``fprime`` and the golden ``delta``. Per step: wait until
    ``busy`` is low, pulse ``start`` with the label, offer the ``passes * N`` transfers on ``h``
    (with the bench's random gaps) while ``delta`` is taken with random back-pressure. ``trace``
    (optional) is called with ``(step, case)`` in the read-only phase of the first cycle in which
    ``trace_valid`` is seen high for that step.

    Returns the cycle of each ``δ`` transfer.
    """
    dut = tb.dut
    items, starts = [], {}
    for step, case in enumerate(cases):
        starts[len(items)] = step
        for _ in range(passes):
            items += [{"h": a, "fprime": f} for a, f in zip(case["h"], case["fprime"])]
    expected = [d for case in cases for d in case["delta"]]
    n = len(cases[0]["h"])

    sent = 0
    got = []
    cycles = []
    started = -1
    busy = 1
    traced = -1
    start_cycle = 0
    held = None
    while len(got) < len(expected):
        dut.start.value = 0
        dut.h__valid.value = 0
        if sent in starts and started < starts[sent]:
            # A new step: wait for the unit to be idle, then pulse start.
            if not busy:
                dut.label.value = cases[starts[sent]]["label"]
                dut.start.value = 1
                started = starts[sent]
                start_cycle = tb.cycles
        elif sent < len(items) and not tb.idle():
            dut.h__valid.value = 1
            dut.h__payload.value = pack(h_spec, items[sent])
        ready = tb.ready()
        dut.delta__ready.value = ready
        await tb.settle()
        busy = int(dut.busy.value)
        if dut.h__valid.value and dut.h__ready.value:
            sent += 1
        # trace_valid still shows the previous step in the cycle of the start pulse.
        if trace is not None and started > traced and tb.cycles > start_cycle and dut.trace_valid.value:
            traced = started
            trace(started, cases[started])
        if dut.delta__valid.value:
            bits = dut.delta__payload.value.to_unsigned()
            assert held is None or bits == held, "delta changed while valid and not taken"
            held = bits
            if ready:
                value = unpack(delta_spec, bits)
                index = len(got)
                assert value == expected[index], (
                    f"step {index // n} neuron {index % n}: delta {value}, expected {expected[index]}")
                got.append(value)
                cycles.append(tb.cycles)
                held = None
        await tb.tick()
    return cycles
