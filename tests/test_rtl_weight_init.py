"""rtl.weight_init.WeightInitialiser in the Amaranth simulator: its masked writes, applied to
memories that start full of junk, leave exactly :func:`golden.integer.network.initial_weights`
(packed by :func:`rtl.layer_geometry.pack_weights`), with and without the register slice, under
random backpressure on ``write``."""

import random

import numpy as np
import pytest
from amaranth import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from golden.integer.network import initial_weights
from golden.integer.train import default_config
from rtl.layer_geometry import LayerGeometry, pack_weights
from rtl.weight_init import WeightInitialiser

CONFIGS = {
    # Two layer widths of init_bits (the LFSR chain's intermediate state serves the narrower).
    "lls-10-7-3": (default_config("lls", "square", (10, 7, 3), seed=3), 4),
    # Groups of lanes per layer, a padding lane, three layers.
    "drtp-6-9-5-4": (default_config("drtp", None, (6, 9, 5, 4), seed=1), 4),
}


def word_layout(geo):
    """The lanes' weight word (:attr:`rtl.layer_engine.LayerEngine.word_layout`)."""
    return data.ArrayLayout(signed(max(geo.config.weight_bits)), geo.lanes)


def run(config, lanes, registered, ready_rate, seed):
    """Start the initialiser twice (the second start while busy is ignored) and apply its
    writes; returns ``(memories, {"writes", "cycles"})``."""
    geo = LayerGeometry(config, lanes)
    dut = WeightInitialiser(geo, word_layout(geo), registered=registered)
    rng = random.Random(seed)
    junk = np.random.default_rng(seed)
    memories = [junk.integers(-1000, 1000, size=(geo.words[k], lanes)) for k in range(geo.n_layers)]
    stats = {"writes": 0, "cycles": 0}

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 1)          # ignored: busy (or, registered, its start is pending)
        *_, busy = await ctx.tick().sample(dut.busy)
        ctx.set(dut.start, 0)
        assert busy
        while True:
            ready = rng.random() < ready_rate
            ctx.set(dut.write.ready, ready)
            *_, valid, payload, busy = await ctx.tick().sample(dut.write.valid, dut.write.payload, dut.busy)
            stats["cycles"] += 1
            assert stats["cycles"] < 20 * sum(geo.words) * lanes / ready_rate + 100, "stalled"
            if valid and ready:
                stats["writes"] += 1
                k, addr, mask = payload.layer, payload.addr, payload.mask
                assert k < geo.n_layers and addr < geo.words[k], (k, addr)
                for p in range(lanes):
                    if mask >> p & 1:
                        memories[k][addr, p] = payload.weights[p]
            if not busy:
                assert not valid
                break

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return memories, stats


@pytest.mark.parametrize("registered", [False, True], ids=["plain", "registered"])
@pytest.mark.parametrize("ready_rate", [1.0, 0.4])
@pytest.mark.parametrize("name", CONFIGS)
def test_writes_leave_the_golden_initial_weights(name, ready_rate, registered):
    config, lanes = CONFIGS[name]
    geo = LayerGeometry(config, lanes)
    memories, stats = run(config, lanes, registered, ready_rate, seed=7)
    expected = pack_weights(geo, *initial_weights(config))
    for k in range(geo.n_layers):
        np.testing.assert_array_equal(memories[k], expected[k], err_msg=f"layer {k}")
    # One write a cycle while ready: a clearing pass over every word, then one per weight.
    weights = sum(geo.fan_in[k] * geo.fan_out[k] for k in range(geo.n_layers))
    assert stats["writes"] == sum(geo.words) + weights
    if ready_rate == 1.0:
        # ... and no gap: the loop's cycles are the writes, the last (idle) cycle and, with the
        # slice, a cycle more of latency.
        assert stats["cycles"] == stats["writes"] + 1 + registered


@pytest.mark.parametrize("registered", [False, True], ids=["plain", "registered"])
def test_a_second_pass_writes_the_same(registered):
    """A pass leaves the initialiser as after reset (its counters and LFSR): a start after the
    first pass makes the same writes (the engine's INIT command)."""
    config, lanes = CONFIGS["drtp-6-9-5-4"]
    geo = LayerGeometry(config, lanes)
    dut = WeightInitialiser(geo, word_layout(geo), registered=registered)
    rng = random.Random(5)
    passes = []

    async def bench(ctx):
        for _ in range(2):
            writes = []
            ctx.set(dut.write.ready, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick()
            while True:
                ready = rng.random() < 0.7
                ctx.set(dut.write.ready, ready)
                *_, valid, payload, busy = await ctx.tick().sample(dut.write.valid, dut.write.payload, dut.busy)
                if valid and ready:
                    writes.append((payload.layer, payload.addr, payload.mask, tuple(payload.weights)))
                if not busy:
                    break
            passes.append(writes)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    weights = sum(geo.fan_in[k] * geo.fan_out[k] for k in range(geo.n_layers))
    assert len(passes[0]) == sum(geo.words) + weights
    assert passes[1] == passes[0]
