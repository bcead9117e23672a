"""rtl.requantiser.Requantiser against the golden model's requantisation, every output compared.

The reference is the golden code itself: :func:`golden.integer.arith.round_shift`, then
``IntegerNetwork._activate`` for hidden layers (value and ``f'``) or
:func:`golden.integer.arith.saturate` for logits.
"""

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from amaranth.sim import Simulator

from golden.integer.arith import round_shift, saturate
from golden.integer.config import EngineConfig
from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config
from rtl.requantiser import Requantiser

COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"

# (acc_bits, shift, out_bits, activation): the default layers (relu and hardtanh hidden layers,
# logits), a shift of 1 (ties at every odd input), no shift, and a narrow accumulator whose
# rounded range barely covers the output range.
CONFIGS = [
    (32, 15, 8, "relu"),
    (32, 14, 12, None),
    (32, 12, 8, "hardtanh"),
    (32, 1, 8, "relu"),
    (24, 0, 10, "hardtanh"),
    (12, 3, 8, None),
    (12, 3, 8, "relu"),
]


def config_id(cfg):
    acc_bits, shift, out_bits, activation = cfg
    return f"a{acc_bits}-s{shift}-o{out_bits}-{activation or 'logit'}"


def golden_requantise(rq, accs):
    """``(values, fprimes)`` of the golden model for the requantiser ``rq``'s parameters."""
    q = round_shift(torch.tensor(accs, dtype=torch.int64), rq.shift)
    if rq.activation is None:
        return saturate(q, rq.out_bits).tolist(), None
    # _activate reads only config.activation, act_min and act_max: give it those, computed by
    # EngineConfig's own properties from (activation, act_bits).
    fields = SimpleNamespace(activation=rq.activation, act_bits=rq.out_bits)
    config = SimpleNamespace(activation=rq.activation, act_max=EngineConfig.act_max.fget(fields))
    config.act_min = EngineConfig.act_min.fget(SimpleNamespace(activation=rq.activation, act_max=config.act_max))
    h, fprime = IntegerNetwork._activate(SimpleNamespace(config=config), q)
    return h.tolist(), fprime.tolist()


def corner_accumulators(rq, rng, count):
    """Rounding ties and saturation edges for every threshold, the accumulator's extremes, then
    random values (uniform, and near the output range)."""
    A, s = rq.acc_bits, rq.shift
    low, high = -(1 << (A - 1)), (1 << (A - 1)) - 1
    half = (1 << (s - 1)) if s else 0
    thresholds = {rq.out_min, rq.out_max, rq.out_min - 1, rq.out_max + 1, 0, 1, -1}
    values = [low, low + 1, high, high - 1, 0, 1, -1]
    for t in thresholds:
        for d in {-half - 1, -half, -half + 1, -1, 0, 1, half - 1, half, half + 1}:
            values.append((t << s) + d)
    for _ in range(20):
        k = rng.randint(-(1 << (A - s - 1)), (1 << (A - s - 1)) - 1)
        values.append((k << s) + half)                       # exact ties, both signs
    span = (max(abs(rq.out_min), rq.out_max) + 2) << s
    while len(values) < count:
        values.append(rng.randint(low, high) if rng.random() < 0.4 else rng.randint(-span, span))
    return [min(high, max(low, v)) for v in values]


def run_requantiser(rq, accs, *, gap, stall, seed, reference=golden_requantise):
    """Stream ``accs`` through ``rq`` with random gaps and back-pressure; compare every output."""
    rng = random.Random(seed)
    values, fprimes = reference(rq, accs)
    received = []

    async def source(ctx):
        for n, acc in enumerate(accs):
            while rng.random() < gap:
                await ctx.tick()
            ctx.set(rq.i.payload, acc)
            if rq.tag_bits:
                ctx.set(rq.i_tag, n % (1 << rq.tag_bits))
            ctx.set(rq.i.valid, 1)
            await ctx.tick().until(rq.i.ready)
            ctx.set(rq.i.valid, 0)

    async def sink(ctx):
        held = None
        while len(received) < len(accs):
            ready = int(rng.random() >= stall)
            ctx.set(rq.o.ready, ready)
            valid, payload = ctx.get(rq.o.valid), ctx.get(rq.o.payload)
            item = (payload.value, payload.fprime if rq.activation is not None else None,
                    ctx.get(rq.o_tag) if rq.tag_bits else None)
            if valid:
                if held is not None:
                    assert item == held, "payload changed while valid and not taken"
                held = None if ready else item
                if ready:
                    received.append(item)
            await ctx.tick()

    sim = Simulator(rq)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    for i, ((value, fprime, tag), acc) in enumerate(zip(received, accs)):
        assert value == values[i], f"acc {acc}: value {value}, want {values[i]}"
        if rq.tag_bits:
            assert tag == i % (1 << rq.tag_bits), f"output {i}: tag {tag}"
        if fprimes is not None:
            assert fprime == fprimes[i], f"acc {acc}: fprime {fprime}, want {fprimes[i]}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("pressure", [(0.0, 0.0), (0.3, 0.5)], ids=["free", "backpressure"])
@pytest.mark.parametrize("parallel_clamp, stages", [(False, 1), (True, 1), (True, 2)],
                         ids=["", "parallel_clamp", "parallel_clamp-2stages"])
def test_requantiser_matches_golden(cfg, pressure, parallel_clamp, stages):
    """Both forms of the clamp (behind the rounding adder, or beside it on the accumulator), and
    the compares registered apart from the clamp's multiplexer (two stages, with a tag that
    travels beside)."""
    acc_bits, shift, out_bits, activation = cfg
    rq = Requantiser(acc_bits=acc_bits, shift=shift, out_bits=out_bits, activation=activation,
                     parallel_clamp=parallel_clamp, stages=stages, tag_bits=5 if stages == 2 else 0)
    rng = random.Random(acc_bits * 100 + shift)
    run_requantiser(rq, corner_accumulators(rq, rng, 400), gap=pressure[0], stall=pressure[1], seed=shift)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("pressure", [(0.0, 0.0), (0.3, 0.5)], ids=["free", "backpressure"])
@pytest.mark.parametrize("parallel_clamp", [False, True], ids=["", "parallel_clamp"])
def test_requantiser_every_other_cycle(cfg, pressure, parallel_clamp):
    """``every_other`` (the UP5K's, with ``parallel_clamp``): ``i.ready`` is ``~o.valid``, so an
    accumulator is taken only while the output is empty: the same values, and never two
    transfers in a row."""
    acc_bits, shift, out_bits, activation = cfg
    rq = Requantiser(acc_bits=acc_bits, shift=shift, out_bits=out_bits, activation=activation, every_other=True,
                     parallel_clamp=parallel_clamp)
    rng = random.Random(acc_bits * 100 + shift + 1)
    run_requantiser(rq, corner_accumulators(rq, rng, 200), gap=pressure[0], stall=pressure[1], seed=shift)
    taken = []

    async def bench(ctx):
        ctx.set(rq.i.valid, 1)
        ctx.set(rq.o.ready, 1)
        for _ in range(20):
            taken.append(ctx.get(rq.i.ready))
            await ctx.tick()

    sim = Simulator(rq)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # Always offered, always taken at the output: one accumulator every other cycle.
    assert taken == [1, 0] * 10
    with pytest.raises(ValueError, match="every_other needs one stage"):
        Requantiser(acc_bits=acc_bits, shift=shift, out_bits=out_bits, activation=activation, every_other=True,
                    stages=2)


@pytest.mark.parametrize("rule", ["lls", "drtp"])
def test_requantiser_from_config_matches_network(rule):
    """from_config on every layer reproduces the golden network's forward pass (``LayerTrace``)."""
    config = default_config(rule, None, (64, 32, 16, 10))
    net = IntegerNetwork(config)
    gen = torch.Generator().manual_seed(len(rule))
    for step in range(3):
        trace = net.train_step(torch.randint(0, 256, (64,), generator=gen), label=step, record=True)
        for k, layer in enumerate(trace.layers):
            rq = Requantiser.from_config(config, k)

            def reference(rq, accs, layer=layer):
                return layer.out.tolist(), None if layer.fprime is None else layer.fprime.tolist()

            run_requantiser(rq, layer.acc.tolist(), gap=0.2, stall=0.2, seed=k, reference=reference)


def test_requantiser_check_can_fail():
    """A reference that rounds ties down instead of up is caught."""
    def ties_down(rq, accs):
        q = [(a + (1 << (rq.shift - 1)) - 1) >> rq.shift for a in accs]
        unshifted = SimpleNamespace(shift=0, out_bits=rq.out_bits, activation=rq.activation)
        return golden_requantise(unshifted, q)

    rq = Requantiser(acc_bits=32, shift=4, out_bits=8, activation="hardtanh")
    with pytest.raises(AssertionError, match="acc 8: value"):
        run_requantiser(rq, [0, 7, 8, 9, -8, -9], gap=0.0, stall=0.0, seed=0, reference=ties_down)


@pytest.mark.parametrize("cfg, parallel_clamp", [(CONFIGS[0], False), (CONFIGS[1], False), (CONFIGS[2], False),
                                                 (CONFIGS[2], True)],
                         ids=lambda v: config_id(v) if isinstance(v, tuple) else ("parallel_clamp" if v else ""))
def test_requantiser_cocotb(cfg, parallel_clamp):
    """The reference simulator: Verilator, with and without random gaps and back-pressure."""
    from sim.cocotb_runner import run_cocotb

    acc_bits, shift, out_bits, activation = cfg
    rq = Requantiser(acc_bits=acc_bits, shift=shift, out_bits=out_bits, activation=activation,
                     parallel_clamp=parallel_clamp)
    run_cocotb(rq, block="requantiser", test_module="cocotb_requantiser",
               test_paths=[COCOTB_DIR, COCOTB_DIR.parent],
               params={"acc_bits": acc_bits, "shift": shift, "out_bits": out_bits, "activation": activation,
                       "count": 3000, "seed": shift})
