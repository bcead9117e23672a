"""The sequencer against its dependencies, with and without the registered decision: every op is
taken only when what it reads is there *in that cycle*, and both take the same ops in order."""

import random

import pytest
from amaranth.sim import Simulator

from golden.integer.train import default_config
from rtl.layer_geometry import LayerGeometry, OpKind
from rtl.sequencer import Sequencer


def run(geo, registered_can, seed, train=True, output_rate=0.3):
    """Drive one step with dependencies that come true at random (as the engine's do: counters
    count up, each layer's outputs at ``output_rate`` a cycle; the bank is taken by a group's
    last forward word and the draws by an update group's first word, each freed some cycles
    later). Returns the ops taken, in order."""
    rng = random.Random(seed)
    dut = Sequencer(geo, registered_can=registered_can)
    L = geo.n_layers
    ops = []

    async def bench(ctx):
        h_avail = [0] * L
        delta = [0] * L
        bank_ready = draws_ready = 1
        freed_at = {}
        ctx.set(dut.start.valid, 1)
        ctx.set(dut.start.payload.train, train)
        await ctx.tick()
        ctx.set(dut.start.valid, 0)
        for cycle in range(200_000):
            for k in range(L):
                if rng.random() < output_rate and h_avail[k] < geo.fan_out[k]:
                    h_avail[k] += 1
                if rng.random() < 0.02 and delta[k] < geo.groups[k]:
                    delta[k] += 1
                ctx.set(dut.h_avail[k], h_avail[k])
                ctx.set(dut.delta_words[k], delta[k])
            if freed_at.get("bank") == cycle:
                bank_ready = 1
            if freed_at.get("draws") == cycle:
                draws_ready = 1
            ctx.set(dut.bank_ready, bank_ready)
            ctx.set(dut.draws_ready, draws_ready)
            ready = rng.random() < 0.6
            ctx.set(dut.op.ready, ready)
            valid, op = ctx.get(dut.op.valid), ctx.get(dut.op.payload)
            if valid and ready:
                k, word, group = op.layer, op.word, op.group
                if op.kind == OpKind.FORWARD:
                    assert k == 0 or h_avail[k - 1] >= word, f"forward word {word} of layer {k} before its input"
                    if op.last:
                        assert bank_ready, "a group's last forward word with the bank taken"
                        bank_ready = 0
                        freed_at["bank"] = cycle + rng.randrange(1, 30)
                elif word == 0:
                    assert delta[k] > group and draws_ready, f"update group {group} of layer {k} before its δ"
                    draws_ready = 0
                    freed_at["draws"] = cycle + rng.randrange(1, 30)
                ops.append((op.kind, k, group, word, op.addr, op.last))
            await ctx.tick()
            if not ctx.get(dut.busy):
                return
        raise AssertionError("the step never ended")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return ops


@pytest.mark.parametrize("layers, lanes", [((5, 9, 4), 3), ((7, 6, 5, 3), 2)])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("output_rate", [0.3, 0.03], ids=["outputs-fast", "outputs-slow"])
def test_sequencer_registered_decision(layers, lanes, seed, output_rate):
    """(With slow outputs the forward words wait for their inputs word by word, the registered
    comparisons' case: a word compared against the wrong count is taken too early.)"""
    geo = LayerGeometry(default_config("drtp", None, layers), lanes)
    combinational = run(geo, False, seed, output_rate=output_rate)
    registered = run(geo, True, seed, output_rate=output_rate)
    expected = sum(geo.words)
    assert len(combinational) == 2 * expected
    assert registered == combinational


def expected_ops(geo, train):
    """A step's ops in order: every layer's words forward, then (training) again as updates."""
    kinds = [OpKind.FORWARD, OpKind.UPDATE] if train else [OpKind.FORWARD]
    return [(kind, k, g, w, g * (geo.fan_in[k] + 1) + w, w == geo.fan_in[k])
            for kind in kinds for k in range(geo.n_layers)
            for g in range(geo.groups[k]) for w in range(geo.fan_in[k] + 1)]


@pytest.mark.parametrize("registered_can", [False, True], ids=["combinational", "registered"])
def test_steps_follow_each_other(registered_can):
    """Steps back to back (training, inference, training), each started as soon as the last
    ended: every step issues its ops from the first (a step leaves the counters as after reset)."""
    geo = LayerGeometry(default_config("drtp", None, (7, 6, 5, 3)), 2)
    dut = Sequencer(geo, registered_can=registered_can)
    rng = random.Random(1)
    steps = [True, False, True]
    taken = []

    async def bench(ctx):
        for k in range(geo.n_layers):
            ctx.set(dut.h_avail[k], geo.fan_out[k])
            ctx.set(dut.delta_words[k], geo.groups[k])
        ctx.set(dut.bank_ready, 1)
        ctx.set(dut.draws_ready, 1)
        for train in steps:
            ops = []
            ctx.set(dut.start.valid, 1)
            ctx.set(dut.start.payload.train, train)
            await ctx.tick()
            ctx.set(dut.start.valid, 0)
            while ctx.get(dut.busy):
                ready = rng.random() < 0.6
                ctx.set(dut.op.ready, ready)
                valid, op = ctx.get(dut.op.valid), ctx.get(dut.op.payload)
                if valid and ready:
                    ops.append((op.kind, op.layer, op.group, op.word, op.addr, bool(op.last)))
                await ctx.tick()
            ctx.set(dut.op.ready, 0)
            taken.append(ops)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for train, ops in zip(steps, taken):
        assert ops == expected_ops(geo, train)
