"""SoftmaxError (docs/numerics.md §5) against golden.integer.softmax.softmax_error, every output compared."""

import random
from types import SimpleNamespace

import pytest
import torch
from _learning_sim import Sink, Source, layout_spec, run_bench, simulate

from golden.integer.softmax import exp2_table, softmax_error
from golden.integer.train import default_config
from rtl.softmax_error import SoftmaxError

# (C, logit_bits, logit_frac, exp_bits, prob_frac, recip_shift): the defaults, an odd C, the
# smallest C, and narrower formats (a 8-entry table, a shorter divider).
FORMATS = [
    (10, 12, 5, 14, 12, 28),
    (7, 12, 5, 14, 12, 28),
    (2, 12, 5, 14, 12, 28),
    (5, 9, 3, 10, 8, 20),
]


def unit_and_config(C, logit_bits, logit_frac, exp_bits, prob_frac, recip_shift, hold_input=False,
                    product_reg=False, multiplier="parallel", ring=None):
    unit = SoftmaxError(C, logit_bits=logit_bits, logit_frac=logit_frac, exp_bits=exp_bits,
                        prob_frac=prob_frac, recip_shift=recip_shift, hold_input=hold_input,
                        product_reg=product_reg, multiplier=multiplier, ring=ring)
    config = SimpleNamespace(n_classes=C, logit_bits=logit_bits, logit_frac=logit_frac, exp_bits=exp_bits,
                             prob_frac=prob_frac, recip_shift=recip_shift)
    return unit, config


def cases_for(config, rng, count):
    """Corners (saturated logits, ties, every label, huge spreads), then random spreads."""
    C = config.n_classes
    low, high = -(1 << (config.logit_bits - 1)), (1 << (config.logit_bits - 1)) - 1
    cases = [
        ([0] * C, 0),
        ([high] * C, C - 1),
        ([low] * C, C // 2),
        ([low] * (C - 1) + [high], C - 1),
        ([high] + [low] * (C - 1), 1),
        ([high, high] + [low] * (C - 2), 0),
        ([low, high] * (C // 2) + [high] * (C % 2), 0),
        ([high - c for c in range(C)], 1),
        ([max(low, -c << config.logit_frac) for c in range(C)], C - 1),   # integer steps: E = 2**eb >> c
        ([max(low, high - c * (config.exp_bits << config.logit_frac)) for c in range(C)], 0),  # shifts up to exp_bits + 1 and past
        ([rng.choice([low, high]) for _ in range(C)], rng.randrange(C)),
    ]
    cases += [([rng.randint(-3, 3) for _ in range(C)], c) for c in range(C)]   # every label
    while len(cases) < count:
        spread = rng.choice([2, 16, 64, 300, high])
        logits = [max(low, min(high, rng.randint(-spread, spread) + rng.randint(-spread, spread)))
                  for _ in range(C)]
        cases.append((logits, rng.randrange(C)))
    return cases


def run_softmax(fmt, count, *, gap, stall, seed, reference=None, product_reg=False, multiplier="parallel",
                ring=None):
    unit, config = unit_and_config(*fmt, product_reg=product_reg, multiplier=multiplier, ring=ring)
    table = exp2_table(config.logit_frac, config.exp_bits)
    rng = random.Random(seed)
    cases = cases_for(config, rng, count)
    source = Source(unit.i, [{"logits": s, "label": y} for s, y in cases], gap=gap, seed=seed + 1)
    sink = Sink(unit.o, len(cases), stall=stall, seed=seed + 2)
    simulate(unit, sink.run, background=[source.run])
    reference = reference or softmax_error
    for (logits, label), out in zip(cases, sink.items):
        gold = reference(torch.tensor(logits), label, config, table)
        assert list(out.probs) == gold.probs.tolist(), (logits, label)
        assert list(out.errors) == gold.errors.tolist(), (logits, label)
    return unit, sink


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"C{f[0]}-lf{f[2]}-eb{f[3]}")
@pytest.mark.parametrize("pressure", [(0.0, 0.0), (0.4, 0.5)], ids=["free", "backpressure"])
@pytest.mark.parametrize("multiplier", ["parallel", "serial"])
def test_softmax_matches_golden(fmt, pressure, multiplier):
    gap, stall = pressure
    run_softmax(fmt, 60, gap=gap, stall=stall, seed=fmt[0] * 7 + int(gap * 10), multiplier=multiplier)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"C{f[0]}-lf{f[2]}-eb{f[3]}")
@pytest.mark.parametrize("ring", [None, "registers"], ids=["", "ring"])
def test_softmax_product_reg_matches_golden(fmt, ring):
    """The ECP5 options (a register before the multiplier; the logits in a rotating ring): the
    same outputs, with back-pressure."""
    run_softmax(fmt, 60, gap=0.4, stall=0.5, seed=fmt[0] * 11, product_reg=True, ring=ring)


@pytest.mark.parametrize("multiplier, product_reg, ring, latency", [
    ("parallel", False, None, 3 * 10 + 28 - 14 + 3),
    ("parallel", True, None, 3 * 10 + 28 - 14 + 4),
    ("parallel", True, "registers", 3 * 10 + 28 - 14 + 4),
    # C = 10 products of exp_bits + 1 = 15 shift-and-add cycles and one load cycle each; 2 more
    # for the serial unit's registered shifted exponential (one in EXP, one before the first product).
    ("serial", False, None, 10 * (14 + 4) + 28 - 14 + 5),
])
def test_latency_and_throughput(multiplier, product_reg, ring, latency):
    """Without gaps or stalls: input transfer at edge t, ``o.valid`` from edge ``t + latency``,
    output transfer at edge ``t + latency + 1``, next input at the edge after (period ``latency + 2``)."""
    unit, sink = run_softmax(FORMATS[0], 12, gap=0.0, stall=0.0, seed=3, product_reg=product_reg,
                             multiplier=multiplier, ring=ring)
    assert unit.latency == latency
    periods = [b - a for a, b in zip(sink.cycles, sink.cycles[1:])]
    assert set(periods) == {unit.latency + 2}
    assert sink.cycles[0] == 1 + unit.latency + 1


@pytest.mark.parametrize("multiplier, ring", [("parallel", None), ("serial", None), ("parallel", "registers")])
@pytest.mark.parametrize("fmt", FORMATS[1:3], ids=lambda f: f"C{f[0]}")
def test_hold_input(fmt, multiplier, ring):
    """``hold_input=True`` (no copy of the logits): correct while the producer holds the payload
    from the input transfer to the output transfer, as the LLS unit and the engine do (with the
    ring, which copies them anyway)."""
    unit, config = unit_and_config(*fmt, hold_input=True, multiplier=multiplier, ring=ring)
    table = exp2_table(config.logit_frac, config.exp_bits)
    cases = cases_for(config, random.Random(config.n_classes), 30)
    rng = random.Random(1)
    results = []

    async def bench(ctx):
        for logits, label in cases:
            ctx.set(unit.i.payload, {"logits": logits, "label": label})
            ctx.set(unit.i.valid, 1)
            await ctx.tick().until(unit.i.ready)
            ctx.set(unit.i.valid, 0)
            while True:
                ready = rng.random() < 0.5
                ctx.set(unit.o.ready, ready)
                *_, valid, payload = await ctx.tick().sample(unit.o.valid, unit.o.payload)
                if valid and ready:
                    results.append(payload)
                    break
            ctx.set(unit.o.ready, 0)

    simulate(unit, bench)
    for (logits, label), out in zip(cases, results):
        gold = softmax_error(torch.tensor(logits), label, config, table)
        assert (list(out.probs), list(out.errors)) == (gold.probs.tolist(), gold.errors.tolist())


def test_worked_example():
    """docs/numerics.md §16: the hidden layer's local softmax and the output layer's."""
    unit, config = unit_and_config(3, 12, 5, 14, 12, 28)
    cases = [([-68, 71, -58], 1), ([6, -3, -12], 1)]
    expected = [([181, 3689, 226], [181, -407, 226]), ([1638, 1348, 1109], [1638, -2748, 1109])]
    source = Source(unit.i, [{"logits": s, "label": y} for s, y in cases])
    sink = Sink(unit.o, 2)
    simulate(unit, sink.run, background=[source.run])
    assert [(list(o.probs), list(o.errors)) for o in sink.items] == expected


@pytest.mark.parametrize("multiplier", ["parallel", "serial"])
def test_detects_a_wrong_reference(multiplier):
    """The comparison can fail: a reference whose label error, or one probability, is one LSB off is caught."""
    def wrong_error(logits, label, config, table):
        gold = softmax_error(logits, label, config, table)
        gold.errors[label] += 1
        return gold

    def wrong_prob(logits, label, config, table):
        gold = softmax_error(logits, label, config, table)
        gold.probs[(label + 1) % len(logits)] -= 1
        return gold

    for wrong in (wrong_error, wrong_prob):
        with pytest.raises(AssertionError):
            run_softmax(FORMATS[1], 4, gap=0.0, stall=0.0, seed=5, reference=wrong, multiplier=multiplier)


def test_multiplier_choice_refused():
    """Only the two multipliers exist, and ``product_reg`` belongs to the parallel one."""
    with pytest.raises(ValueError, match="multiplier"):
        SoftmaxError(4, multiplier="booth")
    with pytest.raises(ValueError, match="product_reg"):
        SoftmaxError(4, multiplier="serial", product_reg=True)
    with pytest.raises(ValueError, match="ring"):
        SoftmaxError(4, streams=True, ring="fifo")
    with pytest.raises(ValueError, match="ring='memory' needs streams"):
        SoftmaxError(4, ring="memory")


@pytest.mark.parametrize("classes, multiplier", [(10, "parallel"), (7, "parallel"), (10, "serial")])
def test_softmax_cocotb(classes, multiplier, tmp_path):
    """The reference simulator: Verilator, with and without random gaps and back-pressure."""
    config = default_config("lls", "square", (16, 16, classes))
    unit = SoftmaxError.from_config(config, multiplier=multiplier)
    table = exp2_table(config.logit_frac, config.exp_bits)
    cases = []
    for logits, label in cases_for(config, random.Random(classes), 40):
        gold = softmax_error(torch.tensor(logits), label, config, table)
        cases.append({"input": {"logits": logits, "label": label},
                      "output": {"probs": gold.probs.tolist(), "errors": gold.errors.tolist()}})
    vectors = {"in_spec": layout_spec(unit.i.payload.shape()), "out_spec": layout_spec(unit.o.payload.shape()),
               "cases": cases, "seed": classes}
    run_bench(unit, block=f"softmax_error_c{classes}_{multiplier}", module="cocotb_softmax_error",
              run_name="golden", directory=tmp_path, vectors=vectors)


@pytest.mark.parametrize("multiplier, product_reg, ring", [
    ("parallel", False, "registers"), ("parallel", True, "registers"), ("serial", False, "registers"),
    ("parallel", False, "memory"), ("serial", False, "memory")])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"C{f[0]}-lf{f[2]}-eb{f[3]}")
@pytest.mark.parametrize("pressure", [(0.0, 0.0), (0.4, 0.5)], ids=["free", "backpressure"])
def test_streams_match_golden(fmt, pressure, multiplier, product_reg, ring):
    """``streams=True`` (the engine's output layer): ``C`` input transfers (one logit each) and
    ``C`` output transfers (one class's ``p_c`` and ``e_c`` each) per use, in class order, with
    gaps and back-pressure; without them the timing attributes hold. The logit ring as registers
    (ECP5) and as a memory (elsewhere) behave the same."""
    gap, stall = pressure
    unit = SoftmaxError(fmt[0], logit_bits=fmt[1], logit_frac=fmt[2], exp_bits=fmt[3], prob_frac=fmt[4],
                        recip_shift=fmt[5], multiplier=multiplier, product_reg=product_reg, streams=True,
                        ring=ring)
    config = SimpleNamespace(n_classes=fmt[0], logit_bits=fmt[1], logit_frac=fmt[2], exp_bits=fmt[3],
                             prob_frac=fmt[4], recip_shift=fmt[5])
    table = exp2_table(config.logit_frac, config.exp_bits)
    rng = random.Random(fmt[0] * 13 + int(gap * 10))
    cases = cases_for(config, rng, 30)
    C = config.n_classes
    source = Source(unit.i, [{"logit": s, "label": y} for logits, y in cases for s in logits], gap=gap, seed=2)
    sink = Sink(unit.o, C * len(cases), stall=stall, seed=3)
    simulate(unit, sink.run, background=[source.run])
    for i, (logits, label) in enumerate(cases):
        gold = softmax_error(torch.tensor(logits), label, config, table)
        outs = sink.items[i * C:(i + 1) * C]
        assert [o.prob for o in outs] == gold.probs.tolist(), (logits, label)
        assert [o.error for o in outs] == gold.errors.tolist(), (logits, label)
    if not gap and not stall:
        # Logits at edges 1 .. C, the last class's o.valid from edge C + latency, its transfer at
        # the next edge; the next use's logits from the edge after that.
        lasts = sink.cycles[C - 1::C]
        assert lasts[0] == C + unit.latency + 1
        assert all(b - a == unit.output_period for a, b in zip(sink.cycles, sink.cycles[1:C]))
        assert all(b - a == C + unit.latency + 1 for a, b in zip(lasts, lasts[1:]))
