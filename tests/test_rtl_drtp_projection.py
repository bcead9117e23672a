"""DRTPProjection (docs/numerics.md §9) against golden.integer.network.drtp_matrices."""

import random

import pytest
import torch
from _learning_sim import Sink, layout_spec, run_bench, simulate, step_source

from golden.integer.network import drtp_matrices
from golden.integer.train import default_config
from rtl.drtp_projection import DRTPProjection, row_states

# Two hidden layers (an odd N = 37, then 21) and an odd C = 7, hardtanh as DRTP needs.
SMALL = (16, 37, 21, 7)


def drtp_config(layers=SMALL, drtp_bits=1):
    return default_config("drtp", None, layers, activation="hardtanh", drtp_bits=drtp_bits)


def make_steps(config, layer, rng, count):
    """Every label once, then random; f' all ones, all zeros, then random densities."""
    C, N = config.n_classes, config.layers[layer + 1]
    steps = []
    for i in range(count):
        label = i if i < C else rng.randrange(C)
        density = [1.0, 0.0][i] if i < 2 else rng.random()
        fprime = [int(rng.random() < density) for _ in range(N)]
        h = [rng.randint(config.act_min, config.act_max) for _ in range(N)]
        steps.append((label, h, fprime))
    return steps


def expected_deltas(config, layer, steps):
    B = drtp_matrices(config)[layer]
    return [(B[label] * torch.tensor(fprime)).tolist() for label, _, fprime in steps]


def run_drtp(config, layer, steps, *, init="walk", gap=0.0, stall=0.0, seed=0):
    unit = DRTPProjection.from_config(config, layer, init=init)
    N = config.layers[layer + 1]
    sink = Sink(unit.delta, N * len(steps), stall=stall, seed=seed + 1)
    source = step_source(unit, steps, gap=gap, seed=seed)
    observed = {}

    async def watch_init(ctx):
        cycles = 0
        while not ctx.get(unit.init_done):
            assert not ctx.get(unit.h.ready)
            await ctx.tick()
            cycles += 1
        observed["init"] = cycles

    simulate(unit, sink.run, watch_init, background=[source.run])
    got = [sink.items[i * N:(i + 1) * N] for i in range(len(steps))]
    assert got == expected_deltas(config, layer, steps)
    return unit, sink, observed


def test_row_states_follow_the_stream():
    """The recorded states regenerate every row of every hidden layer's B."""
    from golden.integer.lfsr import LFSR, lfsr_values

    config = drtp_config(drtp_bits=2)
    matrices = drtp_matrices(config)
    for k, B in enumerate(matrices):
        states = row_states(config.lfsr_poly, config.drtp_seed, config.n_classes, config.layers[1:-1], k, 2)
        for c, state in enumerate(states):
            assert lfsr_values(LFSR(config.lfsr_poly, state), B.shape[1], 2) == B[c].tolist()


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("init", ["walk", "rom"])
@pytest.mark.parametrize("drtp_bits", [1, 3])
@pytest.mark.parametrize("pressure", [(0.0, 0.0), (0.4, 0.5)], ids=["free", "backpressure"])
def test_drtp_matches_golden(layer, init, drtp_bits, pressure):
    config = drtp_config(drtp_bits=drtp_bits)
    seed = 10 * layer + drtp_bits
    steps = make_steps(config, layer, random.Random(seed), 10)
    unit, _, observed = run_drtp(config, layer, steps, init=init, gap=pressure[0], stall=pressure[1], seed=seed)
    assert observed["init"] == unit.init_cycles


def test_default_shape_and_throughput():
    """C = 10, N = 128: one delta per cycle after the 2-cycle row load."""
    config = default_config("drtp", None, (64, 128, 10), activation="hardtanh")
    steps = make_steps(config, 0, random.Random(3), 3)
    unit, sink, observed = run_drtp(config, 0, steps)
    assert observed["init"] == unit.init_cycles == 9 * 128 + 1
    N = 128
    for i in range(len(steps)):
        cycles = sink.cycles[i * N:(i + 1) * N]
        assert cycles == list(range(cycles[0], cycles[0] + N))


def test_detects_a_wrong_reference():
    """Row c* + 1 instead of c*: the comparison fails."""
    config = drtp_config()
    steps = [(c, [0] * 37, [1] * 37) for c in range(2)]
    unit = DRTPProjection.from_config(config, 0)
    sink = Sink(unit.delta, 37 * 2)
    simulate(unit, sink.run, background=[step_source(unit, steps).run])
    wrong = [drtp_matrices(config)[0][(c + 1) % 7].tolist() for c in range(2)]
    assert [sink.items[:37], sink.items[37:]] != wrong
    assert [sink.items[:37], sink.items[37:]] == [drtp_matrices(config)[0][c].tolist() for c in range(2)]


@pytest.mark.parametrize("layer, drtp_bits", [(1, 1)])
def test_drtp_cocotb(layer, drtp_bits, tmp_path):
    """The reference simulator: layer 1 (the walk skips layer 0), C = 7, N = 21."""
    config = drtp_config(drtp_bits=drtp_bits)
    unit = DRTPProjection.from_config(config, layer)
    steps = make_steps(config, layer, random.Random(7), 12)
    cases = [{"label": label, "h": h, "fprime": fprime, "delta": delta}
             for (label, h, fprime), delta in zip(steps, expected_deltas(config, layer, steps))]
    vectors = {"h_spec": layout_spec(unit.h.payload.shape()), "delta_spec": layout_spec(unit.delta.payload.shape()),
               "cases": cases, "seed": 7, "init_cycles": unit.init_cycles}
    run_bench(unit, block=f"drtp_projection_k{layer}_b{drtp_bits}", module="cocotb_drtp_projection",
              run_name="golden", directory=tmp_path, vectors=vectors)
