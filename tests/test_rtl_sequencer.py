"""The sequencer against its dependencies, with and without the registered decision: every op is
taken only when what it reads is there *in that cycle*, and both take the same ops in order."""

import random

import pytest
from amaranth.sim import Simulator

from golden.integer.train import default_config
from rtl.layer_geometry import LayerGeometry, OpKind
from rtl.sequencer import Sequencer


def run(geo, registered_can, seed, train=True):
    """Drive one step with dependencies that come true at random (as the engine's do: counters
    count up; the bank is taken by a group's last forward word and the draws by an update
    group's first word, each freed some cycles later). Returns the ops taken, in order."""
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
                if rng.random() < 0.3 and h_avail[k] < geo.fan_out[k]:
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
def test_sequencer_registered_decision(layers, lanes, seed):
    geo = LayerGeometry(default_config("drtp", None, layers), lanes)
    combinational = run(geo, False, seed)
    registered = run(geo, True, seed)
    expected = sum(geo.words)
    assert len(combinational) == 2 * expected
    assert registered == combinational
