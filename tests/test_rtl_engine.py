"""The whole engine against the integer golden model.

- Amaranth-simulator tests (fast): a few training steps of small networks, every rule, checked
  by prediction, weight checksum and a full read-back of the weights; the lane utilisation of
  the default digits network.
- The system test (cocotb + Verilator, ``tests/cocotb/cocotb_engine.py::engine_trace``): every
  intermediate of every step compared with the golden ``StepTrace``; a fast subset here, the
  long regression over random configurations under ``make regress``. On a mismatch the test
  re-runs with a waveform and names the first diverging tensor, index, values and step.
"""

import json
import random
import re

import pytest
import torch
from amaranth.sim import Simulator

from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config
from rtl.engine import Engine, Region, Status
from rtl.layer_engine import CONTROL_GROUP_LANES
from rtl.layer_geometry import LayerGeometry, pack_weights, weight_checksum
from sim.cocotb_runner import CocotbFailure
from sim.engine_ports import EnginePorts
from sim.engine_sim import golden_in_mode, run_engine


# -- Amaranth simulator ------------------------------------------------------------------------------

def _lanes(word, bits, count):
    out = []
    for p in range(count):
        v = (word >> (p * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


def simulate(config, lanes, steps, seed=0, infer=False, lr_offset=0, modes=None, **engine_args):
    """Train ``steps`` random samples in the Amaranth simulator; return the per-step records.

    ``modes``: the run-time LLS mode of each step (cycled), written to ``LLS_MODE`` before a step
    whose mode differs from the last; the golden model follows (``golden_in_mode``).
    ``engine_args``: the Engine's pipelines (``lane_latency``, ``updater_stages``,
    ``softmax_product_reg``; by default those of no platform)."""
    dut = Engine(config, lanes, **engine_args)
    geo = dut.geometry
    net = IntegerNetwork(config)
    net.lr_offset = lr_offset
    gen = torch.Generator().manual_seed(seed)
    xs = torch.randint(0, 1 << config.input_bits, (steps, config.layers[0]), generator=gen)
    ys = torch.randint(0, config.n_classes, (steps,), generator=gen).tolist()
    word_bits = dut.layer_engine.word_shape.width
    records = {"steps": []}
    ports = EnginePorts(dut)
    access = ports.access

    async def weights(ctx):
        return [[_lanes(await access(ctx, Region.WEIGHTS, k, a), word_bits, lanes) for a in range(geo.words[k])]
                for k in range(geo.n_layers)]

    async def bench(ctx):
        nonlocal net
        await ctx.tick().until(dut.ready)
        records["init"] = (await weights(ctx)) == [w.tolist() for w in pack_weights(geo, net.weights, net.biases)]
        if lr_offset:
            await access(ctx, Region.STATUS, 0, Status.LR_OFFSET, write=1, data=lr_offset)
        records["modes"] = await access(ctx, Region.STATUS, 0, Status.MODES)
        mode = 0
        for i in range(steps):
            if modes and modes[i % len(modes)] != mode:
                mode = modes[i % len(modes)]
                await access(ctx, Region.STATUS, 0, Status.LLS_MODE, write=1, data=mode)
                assert await access(ctx, Region.STATUS, 0, Status.LLS_MODE) == mode
                net = golden_in_mode(net, config, mode)
            prediction, checksum = await ports.step(ctx, xs[i].tolist(), ys[i], infer)
            if infer:
                want = int(net.infer(xs[i].unsqueeze(0))[0])
                records["steps"].append({"prediction": (prediction, want)})
                continue
            trace = net.train_step(xs[i], ys[i], record=True)
            got = await weights(ctx)
            want = [w.tolist() for w in pack_weights(geo, net.weights, net.biases)]
            records["steps"].append({
                "prediction": (prediction, trace.prediction),
                "checksum": (checksum, weight_checksum(geo, net.weights, net.biases)),
                "weights": got == want,
            })
        records["output"] = [await access(ctx, Region.OUTPUT, 0, c) for c in range(config.n_classes)]
        records["cycles"] = await access(ctx, Region.STATUS, 0, Status.CYCLES)
        records["busy"] = await access(ctx, Region.STATUS, 0, Status.BUSY)

    async def watch(ctx):
        # The cycles of steps, counted apart from the engine: each step's start (ready still
        # high), then every cycle it is not ready (RUN and DONE; no INIT after the first).
        await ctx.tick().until(dut.ready)
        low = 0
        async for _, _, ready in ctx.tick().sample(dut.ready):
            low += not ready
            records["cycles_seen"] = low + steps

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(watch, background=True)
    sim.run()
    return records


def assert_bit_exact(records):
    """Every step of :func:`simulate`: the initial weights, each prediction and checksum, and
    the full read-back of every weight equal the golden model's; the CYCLES counter the cycles
    the steps took."""
    assert records["init"], "self-initialised weights differ from initial_weights()"
    for i, step in enumerate(records["steps"]):
        assert step["prediction"][0] == step["prediction"][1], f"step {i}: prediction {step['prediction']}"
        assert step["checksum"][0] == step["checksum"][1], f"step {i}: checksum {step['checksum']}"
        assert step["weights"], f"step {i}: weights differ"
    # The CYCLES counter (from a registered increment on the iCE40) counts every cycle of every step.
    assert records["cycles"] == records["cycles_seen"], (records["cycles"], records["cycles_seen"])


PYSIM_CASES = [
    # (layers, rule, basis, lanes, learning-rate offset, overrides)
    ((13, 5), "lls", None, 4, 0, {}),
    ((13, 9, 5), "lls", "square", 4, 2, {}),
    ((11, 7, 6, 5), "lls", "sin", 3, 0, {}),
    ((13, 9, 5), "drtp", None, 3, 3, {}),
    ((9, 7, 5, 3), "lls-m", None, 2, 0, {}),
    ((10, 6, 4), "lls", None, 1, 1, {"activation": "hardtanh"}),
    ((13, 9, 5), "lls", None, 4, 1, {"rounding": "stochastic"}),
    ((7, 10, 3, 5), "drtp", None, 3, 3, {"rounding": "stochastic"}),
]


@pytest.mark.parametrize("layers, rule, basis, lanes, offset, overrides", PYSIM_CASES,
                         ids=[f"{'-'.join(map(str, c[0]))}-{c[1]}-{c[2] or 'sq'}-p{c[3]}-o{c[4]}"
                              f"{'-' + '-'.join(map(str, c[5].values())) if c[5] else ''}" for c in PYSIM_CASES])
def test_engine_trains_bit_exact_pysim(layers, rule, basis, lanes, offset, overrides):
    config = default_config(rule, basis, layers, **overrides)
    records = simulate(config, lanes, steps=3, seed=sum(layers), lr_offset=offset)
    assert_bit_exact(records)


# The lanes' and the updater's pipelines (LANE_LATENCIES, updater_stages): the same results,
# bit for bit, a few cycles later.
LATENCY_CASES = [PYSIM_CASES[1], PYSIM_CASES[3], PYSIM_CASES[4], PYSIM_CASES[6], PYSIM_CASES[7]]


@pytest.mark.parametrize("lane_latency, updater_stages, softmax_product_reg, bank_shift",
                         [(2, 1, False, False), (1, 2, True, True), (3, 2, True, False), (4, 3, True, True)])
@pytest.mark.parametrize("layers, rule, basis, lanes, offset, overrides", LATENCY_CASES,
                         ids=[f"{'-'.join(map(str, c[0]))}-{c[1]}-p{c[3]}"
                              f"{'-' + '-'.join(map(str, c[5].values())) if c[5] else ''}" for c in LATENCY_CASES])
def test_engine_pipelines_bit_exact_pysim(layers, rule, basis, lanes, offset, overrides, lane_latency,
                                          updater_stages, softmax_product_reg, bank_shift):
    config = default_config(rule, basis, layers, **overrides)
    records = simulate(config, lanes, steps=3, seed=sum(layers), lr_offset=offset, lane_latency=lane_latency,
                       updater_stages=updater_stages, softmax_product_reg=softmax_product_reg,
                       bank_shift=bank_shift)
    assert_bit_exact(records)


@pytest.mark.parametrize("lane_latency", [3, 4])
@pytest.mark.parametrize("layers, rule, basis, lanes, overrides",
                         [((13, 9, 5), "lls", "square", 9, {}), ((7, 10, 3, 5), "drtp", None, 6, {"rounding": "stochastic"})],
                         ids=["lls-p9", "drtp-p6-stochastic"])
def test_engine_control_groups_bit_exact_pysim(layers, rule, basis, lanes, overrides, lane_latency):
    """More lanes than one control group (CONTROL_GROUP_LANES), the last group part-full: each
    group's own copies of the controls and of the last lane stage's valid."""
    assert lanes > CONTROL_GROUP_LANES and lanes % CONTROL_GROUP_LANES
    config = default_config(rule, basis, layers, **overrides)
    records = simulate(config, lanes, steps=3, seed=sum(layers), lr_offset=1, lane_latency=lane_latency,
                       updater_stages=2)
    assert_bit_exact(records)


@pytest.mark.parametrize("multiplier", ["serial", "parallel"])
@pytest.mark.parametrize("layers, rule, lanes", [((9, 6, 5), "drtp", 2), ((7, 10, 3, 11), "drtp", 3), ((6, 4), "drtp", 3)],
                         ids=["one-hidden", "two-hidden-c11", "no-hidden"])
def test_engine_softmax_multipliers_pysim(layers, rule, lanes, multiplier):
    """Both softmax multipliers (serial: the choice without a platform and on the iCE40;
    parallel: ECP5's), with the output δ words after the last hidden layer's (or alone)."""
    config = default_config(rule, None, layers)
    records = simulate(config, lanes, steps=3, seed=sum(layers), softmax_multiplier=multiplier)
    assert_bit_exact(records)


def test_engine_pipeline_choice():
    """``None`` chooses by the platform: 4 lane stages, 2 updater stages (3 from 64 lanes on) and
    the softmax's product register on ECP5, none of them elsewhere; anything else is refused."""
    from types import SimpleNamespace

    from rtl.layer_engine import (LANE_LATENCIES, WIDE_UPDATER_LANES, LayerEngine, default_lane_latency,
                                  default_updater_stages, fabric_arithmetic)

    for platform, want in [(None, (1, 1, False)), (SimpleNamespace(family="ice40"), (1, 1, False)),
                           (SimpleNamespace(family="ecp5"), (4, 2, True))]:
        assert (default_lane_latency(platform), default_updater_stages(platform), fabric_arithmetic(platform)) == want
    # Three updater stages on ECP5 from WIDE_UPDATER_LANES lanes on (the 64-lane ULX3S build).
    ecp5 = SimpleNamespace(family="ecp5")
    assert [default_updater_stages(ecp5, P) for P in (24, WIDE_UPDATER_LANES - 1, WIDE_UPDATER_LANES)] == [2, 2, 3]
    assert default_updater_stages(SimpleNamespace(family="ice40"), 64) == 1
    config = default_config("drtp", None, (8, 5, 3))

    def stages(lanes):
        engine = LayerEngine(config, lanes)
        engine._MustUse__silence = True    # asked, not built
        return engine.resolved_updater_stages(ecp5)

    assert (stages(WIDE_UPDATER_LANES), stages(24)) == (3, 2)
    assert set(LANE_LATENCIES) == {1, 2, 3, 4}
    with pytest.raises(ValueError, match="lane_latency"):
        LayerEngine(default_config("drtp", None, (8, 5, 3)), 2, lane_latency=5)
    with pytest.raises(ValueError, match="updater_stages"):
        LayerEngine(default_config("drtp", None, (8, 5, 3)), 2, updater_stages=4)


def test_lane_multiplier_choice():
    """The MULT18X18D with its own registers on ECP5 when the lanes have operand and product
    registers; inferred otherwise; refused where it cannot hold the lane's registers."""
    from types import SimpleNamespace

    from rtl.layer_engine import LayerEngine

    ecp5, ice40 = SimpleNamespace(family="ecp5"), SimpleNamespace(family="ice40")
    config = default_config("drtp", None, (8, 5, 3))

    def resolved(platform, **kwargs):
        engine = LayerEngine(config, 2, **kwargs)
        engine._MustUse__silence = True    # asked, not built
        return engine.resolved_multiplier(platform)

    assert resolved(ecp5) == "mult18x18d"
    assert resolved(ecp5, lane_latency=2) == "inferred"
    assert resolved(ice40) == "inferred"
    assert resolved(None) == "inferred"
    assert resolved(ecp5, multiplier="inferred") == "inferred"
    with pytest.raises(ValueError, match="lane latency 3 or 4"):
        LayerEngine(config, 2, lane_latency=2, multiplier="mult18x18d")
    with pytest.raises(ValueError, match="multiplier must be one of"):
        LayerEngine(config, 2, multiplier="dsp48")


# Run-time modes: (layers, rule, power-up basis, lanes, offset, overrides, per-step modes).
MODE_CASES = [
    ((11, 9, 5), "lls", "sin", 3, 0, {"runtime_modes": (("square", 1, 8),)}, [1, 0, 1, 1]),
    # LLS-M with a learning-rate offset and a fast modulation update (the offset matters at once).
    ((9, 7, 6, 4), "lls-m", "square", 2, 2, {"norm_guard": 2, "mod_lr_shift": 2,
                                             "runtime_modes": (("sin", 2, 2), ("square", 0, 3))},
     [2, 1, 0, 1]),
]


@pytest.mark.parametrize("layers, rule, basis, lanes, offset, overrides, modes", MODE_CASES,
                         ids=[f"{'-'.join(map(str, c[0]))}-{c[1]}-{c[2]}-modes{''.join(map(str, c[6]))}"
                              for c in MODE_CASES])
def test_engine_runtime_modes_pysim(layers, rule, basis, lanes, offset, overrides, modes):
    """The LLS mode switched between steps: every step bit-exact with ``IntegerNetwork(config.mode(i))``."""
    config = default_config(rule, basis, layers, **overrides)
    records = simulate(config, lanes, steps=len(modes), seed=sum(layers), lr_offset=offset, modes=modes)
    assert records["modes"] == config.n_modes
    assert_bit_exact(records)


def test_engine_refuses_a_runtime_rule_switch():
    """LLS/DRTP is an elaboration choice: a run-time mode cannot name DRTP, nor can a DRTP engine have modes."""
    with pytest.raises(ValueError, match="runtime_modes.*LLS and DRTP"):
        default_config("drtp", None, (8, 5, 3), runtime_modes=(("square", 1, 8),))
    with pytest.raises(ValueError, match="runtime_modes: mode 1: unknown basis 'drtp'"):
        default_config("lls", "sin", (8, 5, 3), runtime_modes=(("drtp", 1, 8),))


def test_runtime_modes_config():
    """One EngineConfig holds every mode: ``mode(i)`` is the complete single-mode configuration,
    the modes survive JSON, a single-mode configuration keeps its digest, bad modes name the field."""
    import json as _json
    from golden.integer.config import EngineConfig

    plain = default_config("lls", "sin", (13, 9, 5))
    config = default_config("lls", "sin", (13, 9, 5), runtime_modes=(("square", 1, 8),))
    assert config.n_modes == 2 and plain.n_modes == 1 and config.hardware_basis == "sin"
    assert config.mode(0) == plain
    assert config.mode(1) == default_config("lls", "square", (13, 9, 5), lr_shift=plain.lr_shift)
    assert EngineConfig.from_dict(_json.loads(_json.dumps(config.to_dict()))) == config
    assert "runtime_modes" not in plain.to_dict() and config.digest() != plain.digest()
    assert default_config("lls", "square", (13, 9, 5), norm_guard=2,
                          runtime_modes=(("sin", 2, 2),)).hardware_basis == "sin"
    for modes, match in [((("sin", 2, 8),), "mode 1 .* invalid: EngineConfig.norm_guard"),
                         ((("square", 1),), "mode 1 must be"),
                         ((("sin", 2, 2),), "mode 1 .* repeats"),
                         ((("square", 4, 8), ("square", 4, 8)), "mode 2 .* repeats")]:
        with pytest.raises(ValueError, match=f"EngineConfig.runtime_modes: {match}"):
            default_config("lls", "sin", (13, 9, 5), runtime_modes=modes)
    with pytest.raises(ValueError, match="no mode 2"):
        config.mode(2)


def test_engine_without_trace_regions_pysim():
    """``trace=False`` (the board build): the same training, bit for bit; the trace regions read 0."""
    config = default_config("lls", None, (13, 9, 5))
    records = simulate(config, 4, steps=3, seed=3, trace=False)
    assert_bit_exact(records)
    assert records["output"] == [0] * config.n_classes
    assert any(simulate(config, 4, steps=1, seed=3)["output"]), "with trace, the logits read back"


def test_engine_infers_pysim():
    config = default_config("drtp", None, (12, 7, 4))
    records = simulate(config, 3, steps=4, seed=5, infer=True)
    assert all(a == b for a, b in (s["prediction"] for s in records["steps"]))


def test_engine_rejects_what_it_does_not_build():
    # A bias update multiplies delta by 2**bias_shift in a lane: it must fit the multiplier.
    with pytest.raises(ValueError, match="bias_shift"):
        Engine(default_config("lls", None, (8, 5, 3), input_frac=15), 2)


@pytest.mark.parametrize("pipelines", [{}, {"lane_latency": 4, "updater_stages": 3, "softmax_product_reg": True,
                                            "bank_shift": True}],
                         ids=["default", "ecp5"])
def test_lane_utilisation_digits_pysim(pipelines):
    """The default digits network on 8 lanes keeps them >= 90 % busy, by the RTL's own counters
    (with the ECP5 pipelines too)."""
    config = default_config("lls", "square", (64, 128, 10))
    records = simulate(config, 8, steps=2, seed=3, **pipelines)
    assert all(s["checksum"][0] == s["checksum"][1] for s in records["steps"])
    geo = LayerGeometry(config, 8)
    assert records["busy"] == 2 * geo.busy_per_step
    utilisation = records["busy"] / (8 * records["cycles"])
    assert utilisation >= 0.90, utilisation
    # Within a few cycles of one word per cycle: the sequencer never waits in this network.
    # Deeper pipelines drain for their extra stages at the end of each step.
    drain = (pipelines.get("lane_latency", 1) - 1 + pipelines.get("updater_stages", 1) - 1
             + pipelines.get("softmax_product_reg", False))
    assert records["cycles"] <= 2 * (geo.issue_cycles_per_step + 10 + drain)


# -- the single-port (SPRAM) weight store -----------------------------------------------------------
# (layers, rule, basis, lanes, offset, overrides, updater_stages): P <= 4 is one beat a word, P = 5..8 two.
SPRAM_CASES = [
    ((13, 9, 5), "drtp", None, 8, 3, {}, 1),
    # The largest offset (len(lr_decay)): an update op's x is not scaled at all.
    ((13, 9, 5), "drtp", None, 8, 4, {}, 2),
    # Seven decays: 2**7 x no longer fits the operand, and the updater shifts by the offset.
    ((13, 9, 5), "drtp", None, 8, 6, {"lr_decay": (10, 20, 30, 40, 50, 60, 70)}, 2),
    ((13, 9, 5), "lls", "square", 8, 1, {"rounding": "stochastic"}, 1),
    ((11, 7, 6, 5), "lls", "sin", 6, 0, {}, 2),
    ((9, 7, 5, 3), "lls-m", None, 7, 2, {}, 3),
    ((7, 10, 3, 5), "drtp", None, 3, 3, {"rounding": "stochastic"}, 1),
    ((10, 6, 4), "lls", None, 1, 1, {"activation": "hardtanh"}, 1),
    # Three beats: with two updater stages the update products are accumulator differences,
    # with three the lanes are cleared again.
    ((13, 21, 5), "drtp", None, 10, 1, {"rounding": "stochastic"}, 2),
    ((13, 21, 5), "lls", None, 10, 2, {}, 3),
]
# The lanes' operand registers (lane latency 2, the SB_MAC16's input registers): update slots of 2B + 1.
SPRAM_LATENCY2_CASES = [
    ((13, 9, 5), "drtp", None, 8, 3, {}, 2),
    ((13, 9, 5), "lls", "square", 8, 1, {"rounding": "stochastic"}, 2),
    ((9, 7, 5, 3), "lls-m", None, 7, 2, {}, 2),
    ((7, 10, 3, 5), "drtp", None, 3, 3, {"rounding": "stochastic"}, 1),
    ((10, 6, 4), "lls", None, 1, 1, {"activation": "hardtanh"}, 1),
    ((13, 21, 5), "drtp", None, 10, 1, {"rounding": "stochastic"}, 3),
]


def _spram_ids(cases):
    return [f"{'-'.join(map(str, c[0]))}-{c[1]}-p{c[3]}-u{c[6]}"
            f"{'-' + '-'.join(map(str, c[5].values())) if c[5] else ''}" for c in cases]


@pytest.mark.parametrize("layers, rule, basis, lanes, offset, overrides, updater_stages", SPRAM_CASES,
                         ids=_spram_ids(SPRAM_CASES))
def test_engine_spram_bit_exact_pysim(layers, rule, basis, lanes, offset, overrides, updater_stages):
    """Weights in one single-port RAM, a word in beats, the updater a beat wide: the same
    results, bit for bit, including the host's reads and writes of the weights."""
    config = default_config(rule, basis, layers, **overrides)
    records = simulate(config, lanes, steps=3, seed=sum(layers), lr_offset=offset, weight_store="spram",
                       updater_stages=updater_stages)
    assert_bit_exact(records)


@pytest.mark.parametrize("layers, rule, basis, lanes, offset, overrides, updater_stages", SPRAM_LATENCY2_CASES,
                         ids=_spram_ids(SPRAM_LATENCY2_CASES))
def test_engine_spram_lane_latency2_bit_exact_pysim(layers, rule, basis, lanes, offset, overrides, updater_stages):
    """SPRAM weights with the lanes' operand registers (on request; on the iCE40 the SB_MAC16's
    input registers): the products a cycle later, update ops a cycle further apart, the same
    results bit for bit, host reads and writes of the weights included."""
    config = default_config(rule, basis, layers, **overrides)
    records = simulate(config, lanes, steps=3, seed=sum(layers) + 1, lr_offset=offset, weight_store="spram",
                       updater_stages=updater_stages, lane_latency=2)
    assert_bit_exact(records)


@pytest.mark.parametrize("lane_latency", [1, 2])
@pytest.mark.parametrize("port_reg", [False, True])
@pytest.mark.parametrize("beats", [1, 2, 3])
@pytest.mark.parametrize("updater_stages", [1, 2, 3])
def test_spram_schedule_never_collides(beats, updater_stages, port_reg, lane_latency):
    """SPRAMSchedule's rules, played out for every spacing pattern of a few ops: no cycle both
    reads and writes the single port, and no op's multiply lands while the updater still reads
    an earlier update op's products. With the port registered every access happens a cycle
    after it is asked for, and so do S1, S2 and the updater's reads: the same checks hold. With
    the lanes' operand registers (lane latency 2) the products, S2, the updater and its writes
    are a cycle later still."""
    import itertools

    from rtl.spram_schedule import SPRAMSchedule

    B = beats
    e = lane_latency - 1
    if not B - 1 - port_reg <= updater_stages <= 2 * B - 1 - port_reg:
        with pytest.raises(ValueError, match="updater_stages"):
            SPRAMSchedule(B, updater_stages, port_reg, lane_latency)
        return
    schedule = SPRAMSchedule(B, updater_stages, port_reg, lane_latency)
    d0 = schedule.updater_delay
    # The updater's first write is asked for stages cycles after it takes beat 0.
    assert B + 1 + e + port_reg + d0 + updater_stages == schedule.write_delay
    for kinds in itertools.product("FU", repeat=3):
        for waits in itertools.product(range(4 * B + e + 1), repeat=2):
            # Greedy issue: each op waits `wait` cycles, then until the rules let it go.
            issued, t = [], 0
            for n, kind in enumerate(kinds):
                if n:
                    t = issued[-1][0] + 1 + waits[n - 1]
                while True:
                    previous = [(u, k) for u, k in issued]
                    if any(0 < t - u < B for u, _ in previous):
                        t += 1
                        continue
                    if any(k == "U" and t - u in schedule.blocked_after_update for u, k in previous):
                        t += 1
                        continue
                    break
                issued.append((t, kind))
            # (Accesses in the cycles they happen: a cycle after they are asked for with port_reg.)
            reads = {t + j + port_reg for t, _ in issued for j in range(B)}
            writes = {t + schedule.write_delay + j + port_reg for t, k in issued if k == "U" for j in range(B)}
            assert len(reads) == B * len(issued), (kinds, waits, issued)
            assert not reads & writes, (kinds, waits, issued)
            # Update op at t: S1 = t+B (+1 with port_reg), the updater reads its products at
            # S1+e+1+d0 .. S1+e+B+d0; the next op's multiply (or clear) is at the end of its S1+e.
            s1 = B + port_reg
            for (t, k), (t2, _) in zip(issued, issued[1:]):
                if k == "U":
                    assert t2 + s1 + e >= t + s1 + e + B + d0, (kinds, waits, issued)
    # Back-to-back update ops are 2B + e apart.
    assert schedule.update_slot == 2 * B + e
    assert 2 * B + e not in schedule.blocked_after_update and all(d in schedule.blocked_after_update
                                                                   for d in range(1, 2 * B + e))


def test_offset_fits_operand():
    """The default formats put the learning-rate offset in the lanes' operand (13 bits of 16);
    wider inputs or more decays do not fit it."""
    from rtl.layer_engine import offset_fits_operand
    assert offset_fits_operand(default_config("drtp", None, (64, 128, 10)))
    assert not offset_fits_operand(default_config("drtp", None, (64, 128, 10), input_bits=12))
    assert not offset_fits_operand(default_config("drtp", None, (64, 128, 10), lr_decay=(10, 20, 30, 40, 50, 60, 70)))
    assert not offset_fits_operand(default_config("drtp", None, (64, 128, 10), lr_decay=()))


def test_spram_choice_and_limits():
    """SPRAM is the iCE40's default; what it cannot hold or pipeline is refused at elaboration."""
    from types import SimpleNamespace

    from amaranth.hdl import Fragment

    from rtl.layer_engine import LayerEngine, default_lane_latency, default_weight_store

    assert default_weight_store(SimpleNamespace(family="iCE40")) == "spram"
    assert default_weight_store(SimpleNamespace(family="ecp5")) == "ebr"
    assert default_weight_store(None) == "ebr"
    # ECP5's deep lanes; the iCE40 keeps lane latency 1 (2 is built on request: see below).
    assert [default_lane_latency(SimpleNamespace(family=f)) for f in ("iCE40", "ecp5")] == [1, 4]
    assert default_lane_latency(None) == 1
    config = default_config("drtp", None, (8, 5, 3))
    with pytest.raises(ValueError, match="weight_store"):
        LayerEngine(config, 2, weight_store="flash")
    with pytest.raises(ValueError, match="lane latency 1 or 2"):
        Fragment.get(LayerEngine(config, 8, lane_latency=3, weight_store="spram"), None)
    wide = default_config("drtp", None, (8, 5, 3), weight_width=18, mult_bits=18)
    with pytest.raises(ValueError, match="at most 16 bits"):
        Fragment.get(LayerEngine(wide, 8, weight_store="spram"), None)
    big = default_config("drtp", None, (784, 128, 10))
    with pytest.raises(ValueError, match="SPRAM addresses"):
        Fragment.get(LayerEngine(big, 8, weight_store="spram"), None)
    engines = [LayerEngine(config, 8, weight_store="spram"), LayerEngine(config, 8), LayerEngine(config, 3, weight_store="spram"),
               LayerEngine(config, 8, updater_stages=3, weight_store="spram")]
    for engine in engines:
        engine._MustUse__silence = True
    # (Two beats and two updater stages: the store's port is registered, a read takes a cycle more.)
    assert [e.resolved_port_reg(None) for e in engines] == [True, False, False, False]
    assert [e.read_latency(None) for e in engines] == [3, 1, 1, 2]
    # Two updater stages let SPRAM lanes be cleared before every update op; one beat needs one.
    assert [e.resolved_updater_stages(None) for e in engines] == [2, 1, 1, 3]


def test_spram_cycles_digits_pysim():
    """The digits network on 8 lanes with SPRAM weights: a word is 2 beats of the 64-bit port,
    so forward words go every 2 cycles and update words (read and write) every 4, and each
    forward group waits for its sums to leave the lanes (no result bank), one every other cycle
    (the requantisers' ``every_other``): the lanes are busy a third of the time, and the busy
    count is the same as with EBR."""
    config = default_config("drtp", None, (64, 128, 10))
    records = simulate(config, 8, steps=2, seed=3, weight_store="spram")
    assert all(s["checksum"][0] == s["checksum"][1] and s["weights"] for s in records["steps"])
    geo = LayerGeometry(config, 8)
    assert records["busy"] == 2 * geo.busy_per_step
    words = sum(geo.words)
    floor = 2 * (words * 2 + words * 4)
    drain = sum(geo.groups) * (2 * 8 + 6)
    assert floor <= records["cycles"] <= floor + 2 * (drain + 40), (records["cycles"], floor)


# -- cocotb + Verilator system test -----------------------------------------------------------------

def random_config(seed):
    """A random valid engine configuration (odd sizes, 1-3 hidden layers, any rule, a third with
    stochastic rounding) and a lane count. Seeds from 24 on are LLS engines with run-time modes
    (the sine hardware, a square power-up mode or the reverse, sometimes a third mode)."""
    rng = random.Random(seed)
    kind = ["lls-square", "lls-sin", "drtp", "lls-m"][seed % 4]
    if seed >= 24:
        kind = ["lls-square", "lls-sin", "lls-m-sin", "lls-m"][seed % 4]
    rule, basis = {"lls-square": ("lls", "square"), "lls-sin": ("lls", "sin"), "drtp": ("drtp", None),
                   "lls-m": ("lls-m", "square"), "lls-m-sin": ("lls-m", "sin")}[kind]
    hidden = [rng.randrange(3, 40) | 1 for _ in range(1 + seed % 3)]
    layers = (rng.randrange(5, 60) | 1, *hidden, rng.randrange(2, 12))
    lanes = rng.choice([1, 2, 3, 5, 7, 8])
    rounding = "stochastic" if seed % 3 == 2 else "nearest"
    overrides = {}
    if seed >= 24:
        other = ("sin", 2, 2) if basis == "square" else ("square", 1, 8)
        overrides["runtime_modes"] = (other,) + ((("square", 0, 3),) if seed % 2 else ())
        if basis == "square":
            overrides["norm_guard"] = rng.choice([2, 8])
    return default_config(rule, basis, layers, seed=seed, rounding=rounding, **overrides), lanes


def run_system_test(tmp_path, config, lanes, steps, seed, **extra):
    """Run ``engine_trace``; on failure re-run with waves and report the first mismatch."""
    result = tmp_path / "result.json"
    try:
        run_engine(config, lanes, "engine_trace", steps=steps, seed=seed, result_file=str(result), **extra)
    except CocotbFailure as failure:
        text = str(failure)
        try:
            waves = run_engine(config, lanes, "engine_trace", steps=steps, seed=seed, waves=True, **extra).waves
        except CocotbFailure as again:
            # The message names the run's log; the waveform is beside it.
            logs = re.findall(r"(\S+)/sim\.log", str(again))
            waves = f"{logs[0]}/dump.fst" if logs else "(not written)"
        first = next((line.strip() for line in text.splitlines() if "first mismatch" in line), text[-2000:])
        pytest.fail(f"{'-'.join(map(str, config.layers))} {config.rule}/{config.basis} P={lanes}: {first}\n"
                    f"waveform: {waves}", pytrace=False)
    return json.loads(result.read_text())


FAST_SYSTEM = [
    # (layers, rule, basis, lanes, config overrides, test parameters)
    ((13, 9, 5), "lls", "square", 4, {}, {"random_weights": True, "infer_every": 3, "reinit": True}),
    ((11, 7, 6, 5), "drtp", None, 3, {}, {"infer_every": 2, "lr_offset": 2}),
    # LLS-M on the sine hardware, switching to a square mode and back between steps, with a
    # learning-rate offset (the modulation update's too).
    ((9, 7, 5), "lls-m", "sin", 3, {"runtime_modes": (("square", 1, 8),)},
     {"modes": [0, 1, 1, 0, 1, 0, 0, 1], "lr_offset": 2, "infer_every": 4}),
]


@pytest.mark.parametrize("layers, rule, basis, lanes, overrides, extra", FAST_SYSTEM,
                         ids=[f"{'-'.join(map(str, c[0]))}-{c[1]}-p{c[3]}{'-modes' if c[4] else ''}"
                              for c in FAST_SYSTEM])
def test_engine_system_fast(tmp_path, layers, rule, basis, lanes, overrides, extra):
    config = default_config(rule, basis, layers, seed=1, **overrides)
    run_system_test(tmp_path, config, lanes, steps=8, seed=1, **extra)


@pytest.mark.parametrize("layers, rule, basis, lanes, overrides, extra", FAST_SYSTEM[:2],
                         ids=[f"{'-'.join(map(str, c[0]))}-{c[1]}-p{c[3]}" for c in FAST_SYSTEM[:2]])
@pytest.mark.parametrize("multiplier", ["inferred", "mult18x18d"])
def test_engine_system_ecp5_pipelines(tmp_path, layers, rule, basis, lanes, overrides, extra, multiplier):
    """The ECP5 pipelines (fetch, lane operand and product registers, three updater stages, the
    softmax's product register, the shifting result bank), with the registered multipliers (the
    lanes', the softmax's, the LLS unit's) inferred or instantiated as the board builds them
    (MULT18X18D, on its model): every intermediate bit-exact."""
    config = default_config(rule, basis, layers, seed=1, **overrides)
    run_system_test(tmp_path, config, lanes, steps=8, seed=1, **extra,
                    engine_args={"lane_latency": 4, "updater_stages": 3, "softmax_product_reg": True,
                                 "bank_shift": True, "dsp": multiplier})


def test_engine_system_ecp5_wide(tmp_path):
    """The ECP5 pipelines with more lanes than a partial checksum fold holds (20 lanes of 16
    bits, 10 chunks of 32: partial folds of 8 and 2 chunks registered before the CRC), the
    board's MULT18X18D on their model: every intermediate bit-exact, every step's checksum
    included."""
    from rtl.layer_engine import FOLD_GROUP_CHUNKS
    from rtl.layer_geometry import CHECKSUM_CHUNK_BITS, LayerGeometry

    config = default_config("lls", "square", (13, 21, 5), seed=3)
    lanes = 20
    assert lanes * LayerGeometry(config, lanes).checksum_lane_bits // CHECKSUM_CHUNK_BITS > FOLD_GROUP_CHUNKS
    run_system_test(tmp_path, config, lanes, steps=6, seed=3, infer_every=4,
                    engine_args={"lane_latency": 4, "updater_stages": 2, "softmax_product_reg": True,
                                 "dsp": "mult18x18d"})


@pytest.mark.parametrize("layers, rule, basis, lanes, overrides, extra, steps",
                         [(*FAST_SYSTEM[0][:3], 8, *FAST_SYSTEM[0][4:], 8), (*FAST_SYSTEM[1], 8),
                          ((300, 7, 5), "drtp", None, 8, {}, {"random_weights": True}, 3)],
                         ids=["13-9-5-lls-p8", "11-7-6-5-drtp-p3", "300-7-5-drtp-p8-mixed-widths"])
def test_engine_system_spram(tmp_path, layers, rule, basis, lanes, overrides, extra, steps):
    """The weights in the single-port store (the iCE40's SPRAMs), two beats a word at P = 8 and
    one at P = 3, and layers of different weight widths (15 and 16 bits): every intermediate
    bit-exact, with host reads and writes of the weights."""
    config = default_config(rule, basis, layers, seed=1, **overrides)
    if layers[0] == 300:
        assert len(set(config.weight_bits)) > 1, config.weight_bits
    run_system_test(tmp_path, config, lanes, steps=steps, seed=1, **extra, engine_args={"weight_store": "spram"})


def test_engine_system_spram_lane_latency2(tmp_path):
    """Under Verilator: SPRAM weights in two beats, two updater stages, the registered port and
    the lanes' operand registers (lane latency 2, update slots of 5 cycles): every intermediate
    bit-exact, with host reads and writes of the weights."""
    config = default_config("drtp", None, (13, 9, 5), seed=2)
    run_system_test(tmp_path, config, 8, steps=4, seed=2,
                    engine_args={"weight_store": "spram", "lane_latency": 2, "updater_stages": 2})


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(28))
def test_engine_system_regression(tmp_path, seed):
    config, lanes = random_config(seed)
    offset = seed % (len(config.lr_decay) + 1)
    steps = 12
    # Run-time modes: a random mode per step, every mode used and switched to and from.
    modes = [random.Random(seed).randrange(config.n_modes) for _ in range(steps)]
    modes[:config.n_modes + 1] = list(range(1, config.n_modes)) + [0, 1]
    run_system_test(tmp_path, config, lanes, steps=steps, seed=seed, infer_every=5,
                    random_weights=seed % 5 == 4, lr_offset=offset,
                    **({"modes": modes} if config.n_modes > 1 else {}))


@pytest.mark.slow
@pytest.mark.parametrize("layers", [(64, 128, 10), (784, 128, 10)])
def test_lane_utilisation_verilator(tmp_path, layers):
    config = default_config("lls", "square", layers)
    counters = run_system_test(tmp_path, config, 8, steps=2, seed=0)
    assert counters["utilisation"] >= 0.90, counters


def test_engine_system_reports_a_mismatch(tmp_path):
    """The checker can fail: a corrupted golden δ is reported as the first mismatch, with a waveform."""
    config = default_config("lls", "square", (9, 7, 5), seed=2)
    with pytest.raises(pytest.fail.Exception) as failed:
        run_system_test(tmp_path, config, 2, steps=3, seed=2, inject_step=1)
    message = str(failed.value)
    assert "first mismatch" in message and "step 1" in message, message
    assert "waveform:" in message and "(not written)" not in message, message
