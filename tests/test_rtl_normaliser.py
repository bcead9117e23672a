"""Normaliser (docs/numerics.md §7.3) against golden.integer.normaliser.normalise."""

import random

import pytest
from _learning_sim import Sink, Source, layout_spec, run_bench, simulate

from golden.integer.normaliser import normalise
from golden.integer.train import default_config
from rtl.normaliser import Normaliser


def squares(bits, rng, count):
    """0, every leading-one position with all-zero, all-one and random mantissas, then random."""
    values = [0, 1, 2, 3, (1 << bits) - 1]
    for e in range(bits):
        values += [1 << e, (2 << e) - 1, (1 << e) | rng.getrandbits(e) if e else 1]
    while len(values) < count:
        values.append(rng.getrandbits(rng.randint(1, bits)))
    return values


def expected(unit, square):
    """The golden result as the unit's output fields (``zero`` for S = 0, which the model refuses)."""
    if square == 0:
        return {"e2": 0, "index": 0, "rsqrt": unit.table[0][0], "zero": 1}
    n = normalise(square, unit.norm_index_bits, unit.table)
    return {"e2": n.half_exponent, "index": n.index, "rsqrt": n.rsqrt, "zero": 0}


def run_normaliser(unit, values, *, gap, stall, seed):
    source = Source(unit.i, values, gap=gap, seed=seed)
    sink = Sink(unit.o, len(values), stall=stall, seed=seed + 1)
    simulate(unit, sink.run, background=[source.run])
    for square, out in zip(values, sink.items):
        got = {"e2": out.e2, "index": out.index, "rsqrt": out.rsqrt, "zero": out.zero}
        assert got == expected(unit, square), square
    return sink


@pytest.mark.parametrize("bits, index_bits, norm_bits", [(32, 3, 10), (23, 3, 10), (16, 0, 8), (20, 5, 12)])
@pytest.mark.parametrize("pressure", [(0.0, 0.0), (0.5, 0.5)], ids=["free", "backpressure"])
@pytest.mark.parametrize("stages", [1, 2])
def test_normaliser_matches_golden(bits, index_bits, norm_bits, pressure, stages):
    unit = Normaliser(bits, norm_index_bits=index_bits, norm_bits=norm_bits, stages=stages)
    values = squares(bits, random.Random(bits), 3 * bits + 60)
    run_normaliser(unit, values, gap=pressure[0], stall=pressure[1], seed=bits)


@pytest.mark.parametrize("stages", [1, 2])
def test_one_result_per_cycle(stages):
    """One result per cycle, ``latency`` (= ``stages``) cycles after its transfer."""
    unit = Normaliser(32, stages=stages)
    assert unit.latency == stages
    sink = run_normaliser(unit, list(range(1, 40)), gap=0.0, stall=0.0, seed=0)
    assert sink.cycles == list(range(1 + stages, 40 + stages))


def test_stages_refused():
    with pytest.raises(ValueError, match="stages"):
        Normaliser(32, stages=3)


def test_worked_example():
    """docs/numerics.md §16: S = 65434 -> e2 = 7, index 15, R = 520."""
    unit = Normaliser.from_config(default_config("lls", "square", (4, 6, 3)))
    sink = run_normaliser(unit, [65434], gap=0.0, stall=0.0, seed=0)
    out = sink.items[0]
    assert (out.e2, out.index, out.rsqrt, out.zero) == (7, 15, 520, 0)


def test_normaliser_cocotb(tmp_path):
    config = default_config("lls", "square", (16, 37, 10))
    unit = Normaliser.from_config(config)
    values = squares(config.acc_bits, random.Random(1), 300)
    vectors = {"in_spec": layout_spec(unit.i.payload.shape()), "out_spec": layout_spec(unit.o.payload.shape()),
               "cases": [{"input": s, "output": expected(unit, s)} for s in values], "seed": 1}
    run_bench(unit, block="normaliser", module="cocotb_normaliser", run_name="golden",
              directory=tmp_path, vectors=vectors)
