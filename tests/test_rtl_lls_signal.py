"""LLSLearningSignal (docs/numerics.md §7, §8) against IntegerNetwork._lls_delta, every trace value and δ compared."""

import random

import pytest
import torch
from _learning_sim import Sink, layout_spec, run_bench, simulate, step_source

from golden.integer.arith import round_shift, saturate
from golden.integer.network import IntegerNetwork, LayerTrace
from golden.integer.train import default_config
from rtl.lls_signal import LLSLearningSignal

# name: (rule, basis, layers, overrides). Odd N = 37, C = 10 and an odd C = 7, both activations.
CONFIGS = {
    "square-c10": ("lls", "square", (16, 37, 10), {}),
    "square-c7-hardtanh": ("lls", "square", (16, 37, 7), {"activation": "hardtanh"}),
    "sin-c10": ("lls", "sin", (16, 37, 10), {}),
    "sin-c7-hardtanh": ("lls", "sin", (16, 37, 7), {"activation": "hardtanh"}),
    "square-noproj": ("lls", "square", (16, 37, 7), {"projection": False}),
    "sin-noproj": ("lls", "sin", (16, 21, 7), {"projection": False, "activation": "hardtanh"}),
    # Narrower formats: a 4-bit activation, norm_index_bits 0, a small guard, temp_shift 0.
    "square-narrow": ("lls", "square", (16, 29, 5), {"act_bits": 4, "norm_index_bits": 0, "norm_guard": 3,
                                                    "temp_shift": 0, "delta_shift": 4}),
    # LLS-M; the fast-moving variant drives m into saturation within a few steps.
    "llsm-square": ("lls-m", "square", (16, 37, 7), {}),
    "llsm-sin-fast": ("lls-m", "sin", (16, 37, 10), {"mod_lr_shift": 1, "mod_bits": 12, "mod_frac": 8,
                                                      "mod_init": 256}),
}


def make_config(name):
    rule, basis, layers, overrides = CONFIGS[name]
    return default_config(rule, basis, layers, **overrides)


def make_steps(config, layer, rng, count):
    """Corner steps (h = 0, all at the maximum, one unit, one neuron, saturated negatives, every
    label), then random sparse and dense activations with random derivative bits."""
    C, N = config.n_classes, config.layers[layer + 1]
    low, high = config.act_min, config.act_max
    corners = [
        [0] * N,
        [high] * N,
        [1] + [0] * (N - 1),
        [0] * (N - 1) + [high],
        [low] * N,
        [high if n % 2 else low for n in range(N)],
        [high if n % 3 == 0 else 0 for n in range(N)],
    ]
    steps = []
    for i in range(count):
        if i < len(corners):
            h = corners[i]
        else:
            density = rng.choice([0.1, 0.5, 1.0])
            scale = rng.choice([1, 8, high])
            h = [max(low, min(high, rng.randint(-scale, scale))) if rng.random() < density else 0
                 for _ in range(N)]
            if low == 0:
                h = [abs(v) for v in h]
        label = i % C if i < 2 * C else rng.randrange(C)
        fprime = [1] * N if i in (1, 4) else [int(rng.random() < 0.7) for _ in range(N)]
        steps.append((label, h, fprime))
    return steps


def golden_steps(config, layer, steps, settings=None):
    """δ and the expected trace registers of every step, from ``IntegerNetwork._lls_delta`` (which
    also carries LLS-M's modulation from step to step).

    ``settings`` (one dict per step, optional): the step's ``mode`` (its golden model is
    ``IntegerNetwork(config.mode(mode))``, the modulation carried over) and ``lr_offset``."""
    nets = [IntegerNetwork(config.mode(i)) for i in range(config.n_modes)]
    net = nets[0]
    results = []
    for i, (label, h, fprime) in enumerate(steps):
        setting = settings[i] if settings else {}
        if config.rule == "lls-m" and nets[setting.get("mode", 0)] is not net:
            nets[setting["mode"]].load_weights(net.weights, net.biases, net.modulations)
        net = nets[setting.get("mode", 0)]
        net.lr_offset = setting.get("lr_offset", 0)
        config_now = net.config
        trace = LayerTrace(None, None, torch.tensor(h), fprime=torch.tensor(fprime))
        delta = net._lls_delta(layer, torch.tensor(h), torch.tensor(fprime), label, trace)
        S = sum(v * v for v in h)
        expected = {"raw_logits": trace.raw_logits.tolist(), "S": S, "zero": int(S == 0)}
        if trace.norm is not None:
            norm = trace.norm
            expected.update(e2=norm.half_exponent, R=norm.rsqrt, logits=trace.logits.tolist(),
                            probs=trace.softmax.probs.tolist(), errors=trace.softmax.errors.tolist(),
                            scaled_errors=trace.scaled_errors.tolist())
            if config.projection:
                expected.update(sigma=trace.sigma, kappa=trace.kappa)
            if config.rule == "lls-m":
                expected["modulation"] = trace.modulation.tolist()
                # The unmodulated logits of §7.4 (the model does not record them).
                e2 = norm.half_exponent
                pre = max(e2 - config_now.norm_guard, 0)
                post = (config.norm_bits + e2 - pre + config_now.basis_frac - config_now.temp_shift
                        - config.logit_frac)
                local = saturate(round_shift(round_shift(trace.raw_logits, pre) * norm.rsqrt, post),
                                 config.logit_bits)
                expected["local_logits"] = local.tolist()
        results.append((delta.tolist(), expected))
    return results


def run_lls(config, steps, *, layer=0, gap=0.0, stall=0.0, seed=0, unit=None, results=None, watch=None,
            basis_lanes="parallel", settings=None):
    """Run ``steps`` through the unit with random gaps/back-pressure; compare every δ and, when
    ``trace_valid`` rises, every trace register against the golden model.

    ``settings``: per step, the inputs (``mode``, ``lr_offset``) to drive when the step's first
    ``h`` is offered, i.e. possibly while the previous step is still busy (they count from
    ``start``)."""
    unit = unit or LLSLearningSignal.from_config(config, layer, basis_lanes=basis_lanes)
    N = config.layers[layer + 1]
    results = results or golden_steps(config, layer, steps, settings)
    sink = Sink(unit.delta, N * len(steps), stall=stall, seed=seed + 1)
    source = step_source(unit, steps, gap=gap, seed=seed, passes=2)
    if settings:
        started = source.before

        async def before(ctx, index):
            if index % (2 * N) == 0:
                for name, value in settings[index // (2 * N)].items():
                    ctx.set(getattr(unit, name), value)
            await started(ctx, index)

        source.before = before
    traces = []

    async def monitor(ctx):
        for i in range(len(steps)):
            await ctx.tick().until(unit.trace_valid)
            traces.append({name: _value(ctx.get(getattr(unit, name))) for name in TRACE_NAMES
                           if hasattr(unit, name)})
            if i + 1 < len(steps):
                await ctx.tick().until(~unit.trace_valid)

    simulate(unit, sink.run, monitor, *([watch] if watch else []), background=[source.run])
    for i, (delta, expected) in enumerate(results):
        for name, value in expected.items():
            assert traces[i][name] == value, (i, name, traces[i][name], value)
        assert sink.items[i * N:(i + 1) * N] == delta, (i, steps[i][0])
    return unit, sink


TRACE_NAMES = ["raw_logits", "S", "zero", "e2", "R", "logits", "probs", "errors", "scaled_errors",
               "sigma", "kappa", "local_logits", "modulation"]


def _value(value):
    try:
        return [int(v) for v in value]
    except TypeError:
        return int(value)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("pressure", [(0.0, 0.0), (0.3, 0.4)], ids=["free", "backpressure"])
def test_lls_matches_golden(name, pressure):
    config = make_config(name)
    seed = sum(map(ord, name)) + int(10 * pressure[0])
    steps = make_steps(config, 0, random.Random(seed), 2 * config.n_classes)
    run_lls(config, steps, gap=pressure[0], stall=pressure[1], seed=seed)


@pytest.mark.parametrize("name, pressure", [
    ("sin-c10", (0.0, 0.0)),
    ("sin-c7-hardtanh", (0.3, 0.4)),
    ("square-c7-hardtanh", (0.3, 0.4)),
    ("llsm-sin-fast", (0.0, 0.0)),
], ids=["sin-c10-free", "sin-c7-hardtanh-backpressure", "square-c7-backpressure", "llsm-sin-free"])
def test_serial_lanes(name, pressure):
    """``basis_lanes="serial"``: one class per cycle, the same results."""
    config = make_config(name)
    seed = sum(map(ord, name)) + 1
    steps = make_steps(config, 0, random.Random(seed), 12)
    run_lls(config, steps, gap=pressure[0], stall=pressure[1], seed=seed, basis_lanes="serial")


def test_serial_throughput():
    """Serial lanes: one h every C cycles in both passes, δ taken C + 3 cycles after its h."""
    config = make_config("sin-c7-hardtanh")
    C, N = config.n_classes, config.layers[1]
    steps = make_steps(config, 0, random.Random(6), 3)[1:]
    transfers = []

    async def watch(ctx):
        cycle = 0
        while len(transfers) < 2 * N * len(steps):
            *_, valid, ready = await ctx.tick().sample(unit.h.valid, unit.h.ready)
            cycle += 1
            if valid and ready:
                transfers.append(cycle)

    unit = LLSLearningSignal.from_config(config, 0, basis_lanes="serial")
    _, sink = run_lls(config, steps, unit=unit, watch=watch)
    for s in range(len(steps)):
        for p in range(2):
            burst = transfers[(2 * s + p) * N:(2 * s + p + 1) * N]
            assert burst == list(range(burst[0], burst[0] + C * N, C))
        pass2 = transfers[(2 * s + 1) * N:(2 * s + 2) * N]
        assert sink.cycles[N * s:N * (s + 1)] == [c + C + 3 for c in pass2]


# Run-time modes: a sine engine switching to square with its own temp_shift/norm_guard, and the
# reverse order (a square power-up mode on the sine hardware), LLS-M included.
MODE_CONFIGS = {
    "sin+square": ("lls", "sin", (16, 37, 10), {"runtime_modes": (("square", 1, 8),)}),
    "square+sin-hardtanh": ("lls", "square", (16, 37, 7),
                            {"activation": "hardtanh", "norm_guard": 2, "runtime_modes": (("sin", 2, 2),)}),
    "llsm-sin+square+square": ("lls-m", "sin", (16, 29, 7),
                               {"runtime_modes": (("square", 1, 8), ("square", 0, 3))}),
}


@pytest.mark.parametrize("name, basis_lanes", [(name, "parallel") for name in MODE_CONFIGS]
                         + [("sin+square", "serial")])
def test_runtime_modes(name, basis_lanes):
    """The mode is chosen per step (set while the previous step still runs); every step matches
    ``IntegerNetwork(config.mode(i))``, LLS-M's modulation carried across the switches."""
    rule, basis, layers, overrides = MODE_CONFIGS[name]
    config = default_config(rule, basis, layers, **overrides)
    rng = random.Random(sum(map(ord, name)))
    steps = make_steps(config, 0, rng, 12)
    settings = [{"mode": rng.randrange(config.n_modes)} for _ in steps]
    settings[1]["mode"], settings[2]["mode"] = 0, 1
    pressure = (0.2, 0.3) if basis_lanes == "parallel" else (0.0, 0.0)
    run_lls(config, steps, gap=pressure[0], stall=pressure[1], seed=3, settings=settings, basis_lanes=basis_lanes)


def test_runtime_modes_check_can_fail():
    """Checked against the wrong mode's model, a switching run fails."""
    rule, basis, layers, overrides = MODE_CONFIGS["sin+square"]
    config = default_config(rule, basis, layers, **overrides)
    steps = make_steps(config, 0, random.Random(2), 6)
    settings = [{"mode": i % 2} for i in range(len(steps))]
    wrong = golden_steps(config, 0, steps, [{"mode": 0}] * len(steps))
    with pytest.raises(AssertionError):
        run_lls(config, steps, settings=settings, results=wrong)


def test_llsm_lr_offset():
    """LLS-M's modulation update shifts by mod_lr_shift + o (numerics §12), o changing between steps."""
    config = make_config("llsm-sin-fast")
    rng = random.Random(21)
    steps = make_steps(config, 0, rng, 16)
    offsets = [0, 0, 1, 1, 3, 2, 3, 0] + [rng.randrange(len(config.lr_decay) + 1) for _ in steps[8:]]
    settings = [{"lr_offset": o} for o in offsets]
    run_lls(config, steps, gap=0.2, stall=0.2, seed=21, settings=settings)
    # Without the offset the model differs: the test can fail.
    results = golden_steps(config, 0, steps)
    with pytest.raises(AssertionError):
        run_lls(config, steps, settings=settings, results=results)


def test_second_hidden_layer():
    """Layer k = 1 of a two-hidden-layer network (its own N; the same basis)."""
    config = default_config("lls", "sin", (16, 24, 37, 7))
    steps = make_steps(config, 1, random.Random(4), 12)
    run_lls(config, steps, layer=1, gap=0.2, stall=0.2, seed=4)


def test_default_network():
    """The tuned 64-128-10 configuration: N = 128, large S (pre-shift > 0)."""
    config = default_config("lls", "square", (64, 128, 10))
    steps = make_steps(config, 0, random.Random(5), 10)
    run_lls(config, steps, seed=5)


@pytest.mark.parametrize("registers", [False, True], ids=["", "ecp5-registers"])
def test_worked_example(registers):
    """docs/numerics.md §16: h = [9, 0, 255, 18, 2, 0], label 1 -> δ = [15, 0, 0, -153, 3, 0];
    with the ECP5 registers too (C = 3: g_n registered whole, behind stage 0)."""
    config = default_config("lls", "square", (4, 6, 3))
    steps = [(1, [9, 0, 255, 18, 2, 0], [1, 0, 0, 1, 1, 0])]
    unit = LLSLearningSignal.from_config(config, 0, writeback_reg=registers, pass1_reg=registers,
                                         saturate_reg=registers, operand_reg=registers, round_reg=registers)
    unit, sink = run_lls(config, steps, unit=unit)
    assert sink.items == [15, 0, 0, -153, 3, 0]


@pytest.mark.parametrize("name", ["square-c10", "sin-c7-hardtanh", "llsm-square"])
@pytest.mark.parametrize("writeback_reg, pass1_reg, saturate_reg, operand_reg, round_reg",
                         [(False, False, False, False, False), (True, False, False, False, False),
                          (True, True, False, False, False), (True, True, True, False, False),
                          (True, True, True, True, False), (True, False, False, False, True),
                          (True, True, True, True, True)],
                         ids=["", "writeback_reg", "writeback_reg-pass1_reg", "writeback_reg-pass1_reg-saturate_reg",
                              "all-but-round_reg", "writeback_reg-round_reg", "all"])
def test_throughput(name, writeback_reg, pass1_reg, saturate_reg, operand_reg, round_reg):
    """Pass 1 and pass 2 at one transfer per cycle, δ 3 cycles after its h (a cycle more each
    with ``writeback_reg``, ``saturate_reg``, ``operand_reg`` and ``round_reg``), compute in
    compute_cycles (2 more with ``pass1_reg``)."""
    config = make_config(name)
    N = config.layers[1]
    steps = make_steps(config, 0, random.Random(6), 3)[1:]  # non-zero h
    transfers = []

    async def watch(ctx):
        cycle = 0
        while len(transfers) < 2 * N * len(steps):
            *_, valid, ready = await ctx.tick().sample(unit.h.valid, unit.h.ready)
            cycle += 1
            if valid and ready:
                transfers.append(cycle)

    unit = LLSLearningSignal.from_config(config, 0, writeback_reg=writeback_reg, pass1_reg=pass1_reg,
                                         saturate_reg=saturate_reg, operand_reg=operand_reg, round_reg=round_reg)
    assert unit.pass1_drain == 2 * pass1_reg
    _, sink = run_lls(config, steps, unit=unit, watch=watch)
    basis_delay = 1 if config.basis == "sin" else 0
    for s in range(len(steps)):
        pass1 = transfers[2 * N * s:2 * N * s + N]
        pass2 = transfers[2 * N * s + N:2 * N * (s + 1)]
        assert pass1 == list(range(pass1[0], pass1[0] + N))
        assert pass2 == list(range(pass2[0], pass2[0] + N))
        assert pass2[0] - pass1[-1] == unit.compute_cycles + 1 + basis_delay
        assert sink.cycles[N * s:N * (s + 1)] == [c + 3 + writeback_reg + saturate_reg + operand_reg + round_reg
                                                  for c in pass2]


@pytest.mark.parametrize("name, basis_lanes, pressure", [
    ("square-c10", "parallel", (0.3, 0.4)),
    ("square-c7-hardtanh", "parallel", (0.0, 0.0)),
    ("sin-c7-hardtanh", "parallel", (0.3, 0.4)),
    ("llsm-square", "parallel", (0.3, 0.4)),
    ("sin-c7-hardtanh", "serial", (0.3, 0.4)),
])
@pytest.mark.parametrize("pass1_reg, saturate_reg, operand_reg, round_reg",
                         [(False, False, False, False), (True, True, False, False), (True, True, True, False),
                          (False, False, False, True), (True, True, True, True)],
                         ids=["", "pass1-saturate", "pass1-saturate-operand", "round", "pass1-saturate-operand-round"])
def test_writeback_reg(name, basis_lanes, pressure, pass1_reg, saturate_reg, operand_reg, round_reg):
    """``writeback_reg`` (ECP5): the rounding registered before the write-back and the square
    basis's g tree cut after two levels; with ``pass1_reg`` pass 1 accumulates from registers
    too, with ``saturate_reg`` the saturated results are registered before the write-back, with
    ``operand_reg`` the operands before the multiplier, with ``round_reg`` the rounding's sum
    before its shifter. The same results, under gaps and back-pressure."""
    config = make_config(name)
    seed = sum(map(ord, name)) + 7 + pass1_reg
    steps = make_steps(config, 0, random.Random(seed), 12)
    unit = LLSLearningSignal.from_config(config, 0, basis_lanes=basis_lanes, writeback_reg=True, pass1_reg=pass1_reg,
                                         saturate_reg=saturate_reg, operand_reg=operand_reg, round_reg=round_reg)
    run_lls(config, steps, gap=pressure[0], stall=pressure[1], seed=seed, unit=unit)


@pytest.mark.parametrize("pass1_reg", [False, True], ids=["", "pass1_reg"])
def test_zero_step_is_short(pass1_reg):
    """S = 0: δ = 0 and pass 2 follows pass 1 after the normaliser only (and pass 1's drain)."""
    config = make_config("square-c10")
    unit = LLSLearningSignal.from_config(config, 0, writeback_reg=pass1_reg, pass1_reg=pass1_reg)
    assert unit.zero_cycles == 3 + 3 * pass1_reg
    run_lls(config, [(3, [0] * 37, [1] * 37)], unit=unit)


def test_detects_a_wrong_reference():
    """A reference with one δ off by one LSB fails the comparison."""
    config = make_config("square-c7-hardtanh")
    steps = make_steps(config, 0, random.Random(8), 9)
    results = golden_steps(config, 0, steps)
    results[8][0][5] += 1
    with pytest.raises(AssertionError):
        run_lls(config, steps, results=results)


COCOTB_CONFIGS = ["square-c10", "sin-c7-hardtanh"]


def cocotb_vectors(config, unit, steps):
    cases = []
    for (label, h, fprime), (delta, expected) in zip(steps, golden_steps(config, 0, steps)):
        cases.append({"label": label, "h": h, "fprime": fprime, "delta": delta, "trace": expected})
    trace_specs = {name: layout_spec(unit.signature.members[name].shape) for name in TRACE_NAMES
                   if name in unit.signature.members}
    return {"h_spec": layout_spec(unit.h.payload.shape()), "delta_spec": layout_spec(unit.delta.payload.shape()),
            "trace_specs": trace_specs, "cases": cases, "seed": 9,
            "compute_cycles": unit.compute_cycles, "basis_delay": 1 if config.basis == "sin" else 0}


@pytest.mark.parametrize("name", COCOTB_CONFIGS)
def test_lls_cocotb(name, tmp_path):
    """The reference simulator, square (C = 10) and sine (C = 7, hardtanh) bases, N = 37."""
    config = make_config(name)
    unit = LLSLearningSignal.from_config(config, 0)
    steps = make_steps(config, 0, random.Random(9), 14)
    run_bench(unit, block=f"lls_signal_{name}", module="cocotb_lls_signal", run_name="golden",
              directory=tmp_path, vectors=cocotb_vectors(config, unit, steps))


@pytest.mark.slow
def test_llsm_cocotb(tmp_path):
    config = make_config("llsm-sin-fast")
    unit = LLSLearningSignal.from_config(config, 0)
    steps = make_steps(config, 0, random.Random(10), 14)
    run_bench(unit, block="lls_signal_llsm-sin-fast", module="cocotb_lls_signal", run_name="golden",
              directory=tmp_path, vectors=cocotb_vectors(config, unit, steps))


@pytest.mark.parametrize("option", ["saturate_reg", "round_reg"])
def test_stage_options_need_writeback_reg(option):
    config = make_config("square-c10")
    with pytest.raises(ValueError, match=f"{option} needs writeback_reg"):
        LLSLearningSignal.from_config(config, 0, **{option: True})
