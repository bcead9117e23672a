"""rtl.basis_generator.BasisGenerator against golden.integer.basis, every column compared."""

import random
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from golden.integer.basis import basis_matrix, phases, sine_quarter_table, sine_wave, square_wave
from golden.integer.train import default_config
from rtl.basis_generator import BasisGenerator

COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"

# (C, P, basis, table_index_bits, table_bits): the defaults, a tiny table that wraps quickly
# (every quadrant and mirror path many times), the widest formats, and the smallest.
CONFIGS = [
    (10, 32, "square", 6, 8),
    (10, 32, "sin", 6, 8),
    (3, 12, "sin", 3, 5),
    (7, 40, "sin", 10, 16),
    (2, 8, "square", 6, 8),
]


def config_id(cfg):
    C, P, basis, ib, tb = cfg
    return f"C{C}-P{P}-{basis}" + (f"-t{ib}x{tb}" if basis == "sin" else "")


def golden_columns(gen, count):
    """Columns ``0 .. count-1`` of the golden basis of ``gen``'s parameters, as lists."""
    phase = phases(gen.increments, count, gen.phase_bits)
    if gen.basis == "square":
        matrix = square_wave(phase, gen.phase_bits)
    else:
        table = sine_quarter_table(gen.table_index_bits, gen.table_bits)
        matrix = sine_wave(phase, gen.phase_bits, table, gen.table_index_bits)
    return matrix.T.tolist()


def run_basis(gen, count, *, stall, restart_rate, seed, reference=golden_columns, square=None):
    """Take ``count`` columns under random back-pressure and restarts; compare every one.
    ``square`` drives the ``runtime_square`` generator's ``square`` input.

    Returns the number of cycles taken.
    """
    rng = random.Random(seed)
    want = reference(gen, count)
    result = {}

    async def bench(ctx):
        n = got = cycles = 0
        held = None
        if square is not None:
            ctx.set(gen.square, square)
        while got < count:
            ready = int(rng.random() >= stall)
            restart = int(rng.random() < restart_rate)
            ctx.set(gen.o.ready, ready)
            ctx.set(gen.restart, restart)
            valid = ctx.get(gen.o.valid)
            column = list(ctx.get(gen.o.payload))
            if valid:
                if held is not None:
                    assert column == held, f"column changed while offered (cycle {cycles})"
                if ready:
                    assert column == want[n], f"n={n}: got {column}, want {want[n]}"
                    n += 1
                    got += 1
                held = None if ready else column
            else:
                assert held is None, "valid withdrawn before the transfer"
            if restart:
                # A flush: the offered column may be dropped, and the next one is n = 0.
                n, held = 0, None
            await ctx.tick()
            cycles += 1
        result["cycles"] = cycles

    sim = Simulator(gen)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return result["cycles"]


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("stall", [0.0, 0.5], ids=["free", "backpressure"])
def test_basis_matches_golden(cfg, stall):
    gen = BasisGenerator(*cfg)
    run_basis(gen, 300, stall=stall, restart_rate=0.0, seed=cfg[0] + int(stall * 10))


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=config_id)
def test_basis_restart(cfg):
    """Random restarts (n back to 0), with and without a column being offered."""
    gen = BasisGenerator(*cfg)
    run_basis(gen, 300, stall=0.3, restart_rate=0.03, seed=7)


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1]], ids=config_id)
def test_basis_throughput(cfg):
    """One column per cycle without back-pressure (plus the sine table's one-cycle latency)."""
    gen = BasisGenerator(*cfg)
    cycles = run_basis(gen, 100, stall=0.0, restart_rate=0.0, seed=1)
    assert cycles == 100 + (cfg[2] == "sin")


@pytest.mark.parametrize("rule, basis", [("lls", "square"), ("lls", "sin")])
def test_basis_from_config_is_basis_matrix(rule, basis):
    """from_config streams exactly the basis the golden network uses (``basis_matrix``)."""
    config = default_config(rule, basis, (64, 40, 10))
    gen = BasisGenerator.from_config(config)
    run_basis(gen, 40, stall=0.2, restart_rate=0.0, seed=3,
              reference=lambda g, n: basis_matrix(config, n).T.tolist())


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[2]], ids=config_id)
def test_runtime_square(cfg):
    """A sine generator with ``runtime_square`` streams the square wave of the same phases when
    ``square`` is high, the sine otherwise."""
    gen = BasisGenerator(*cfg, runtime_square=True)
    square_columns = lambda g, n: square_wave(phases(g.increments, n, g.phase_bits), g.phase_bits).T.tolist()
    run_basis(gen, 300, stall=0.3, restart_rate=0.02, seed=11, reference=square_columns, square=1)
    run_basis(gen, 300, stall=0.3, restart_rate=0.02, seed=12, square=0)
    with pytest.raises(ValueError, match="runtime_square"):
        BasisGenerator(*CONFIGS[0], runtime_square=True)


def test_basis_check_can_fail():
    """A reference with one value of one column negated is caught."""
    def wrong(gen, count):
        columns = golden_columns(gen, count)
        columns[5][1] = -columns[5][1]
        return columns

    with pytest.raises(AssertionError, match="n=5"):
        run_basis(BasisGenerator(*CONFIGS[1]), 20, stall=0.0, restart_rate=0.0, seed=0, reference=wrong)


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[3]], ids=config_id)
def test_basis_cocotb(cfg):
    """The reference simulator: Verilator, free-running and under random back-pressure/restarts."""
    from sim.cocotb_runner import run_cocotb

    C, P, basis, ib, tb = cfg
    run_cocotb(BasisGenerator(*cfg), block="basis_generator", test_module="cocotb_basis_generator",
               test_paths=[COCOTB_DIR],
               params={"n_classes": C, "phase_bits": P, "basis": basis, "table_index_bits": ib,
                       "table_bits": tb, "columns": 1500, "seed": C + P})
