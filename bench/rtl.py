"""The engine under simulation: timed training runs under Verilator and under Amaranth's simulator.

:func:`run_rtl` builds :class:`sim.engine_sim.SimTop` with Verilator (the build is shared with
``synchrony sim``: same Verilog, same options) and runs :mod:`bench.cocotb_bench` on it.
:func:`run_pysim` trains the same :class:`rtl.engine.Engine` on the same samples under
``amaranth.sim``, timed, then checks every step against the integer golden model.
"""

import json
import os
import tempfile
import time
from pathlib import Path

from golden.integer.train import flatten

__all__ = ["run_rtl", "run_pysim"]

TEST_MODULE = "bench.cocotb_bench"


def run_rtl(config, lanes, dataset_name, order, *, segments=(), test_indices=(), evaluate_at=(),
            data_dir=None, weight_store=None):
    """Train the Verilator model of the engine on ``order`` (training-set indices).

    Returns the summary of :func:`bench.cocotb_bench.bench_train` (segments with the RTL's
    cycle and busy-lane counters, evaluations on ``test_indices``, ``bit_exact``) plus
    ``wall_seconds`` (build and all) and ``rebuilt``. ``weight_store``: the engine's
    (``"spram"`` for the iCEBreaker's schedule; ``None``: EBR, as simulated without a platform).
    """
    from sim import toolchain
    from sim.cocotb_runner import REPO_ROOT, run_cocotb, to_verilog
    from sim.engine_sim import BUILD_ARGS, MAKE_VARIABLES, SimTop

    toolchain.setup()       # the Yosys that converts to Verilog, as run_cocotb would have it
    top = SimTop(config, lanes, **({"weight_store": weight_store} if weight_store else {}))
    # The same text run_cocotb would make (so the same build), converted with room to recurse.
    verilog = to_verilog(top, "engine_top")
    block = "engine_" + "_".join(map(str, config.layers)) + f"_{config.rule}_p{lanes}"
    if weight_store:
        block += f"_weight_store{weight_store}"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="synchrony-bench-") as tmp:
        result = Path(tmp) / "result.json"
        payload = {"config": config.to_dict(), "lanes": lanes, "dataset": dataset_name,
                   "data_dir": str(data_dir) if data_dir else None, "order": list(map(int, order)),
                   "segments": list(map(int, segments)), "test_indices": list(map(int, test_indices)),
                   "evaluate_at": list(map(int, evaluate_at)), "result_file": str(result)}
        saved = os.environ.get("MAKEFLAGS")
        os.environ["MAKEFLAGS"] = f"{saved or ''} -- {MAKE_VARIABLES}".strip()
        try:
            run = run_cocotb(top, block=block, toplevel="engine_top", test_module=TEST_MODULE,
                             test_paths=[REPO_ROOT], params=payload, testcase="bench_train",
                             build_args=BUILD_ARGS, verilog=verilog)
        finally:
            if saved is None:
                del os.environ["MAKEFLAGS"]
            else:
                os.environ["MAKEFLAGS"] = saved
        summary = json.loads(result.read_text())
    summary["wall_seconds"] = time.perf_counter() - start
    summary["rebuilt"] = run.rebuilt
    return summary


def run_pysim(config, lanes, dataset, order):
    """Train ``Engine(config, lanes)`` on ``order`` under ``amaranth.sim``; check it afterwards.

    The testbench streams each sample's pixels, issues ``TRAIN`` and waits for the result (no
    access-port reads inside the timed run). Returns the simulated engine cycles (the RTL's
    own ``CYCLES`` counter), busy lane-cycles, the wall seconds of ``sim.run()``, the
    elaboration seconds, and whether every prediction and checksum matched the golden model.
    """
    from amaranth.sim import Simulator

    from golden.integer.network import IntegerNetwork
    from rtl.engine import Engine, Region, Status
    from rtl.layer_geometry import weight_checksum
    from sim.engine_ports import EnginePorts

    start = time.perf_counter()
    dut = Engine(config, lanes)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    xs = flatten(dataset.train_x[list(order)])
    ys = dataset.train_y[list(order)].tolist()
    results, counters = [], {}

    ports = EnginePorts(dut)

    async def bench(ctx):
        await ctx.tick().until(dut.ready)
        counters["start"] = time.perf_counter()
        for i in range(len(ys)):
            results.append(await ports.step(ctx, xs[i].tolist(), ys[i]))
        counters["end"] = time.perf_counter()
        counters["cycles"] = await ports.access(ctx, Region.STATUS, addr=Status.CYCLES)
        counters["busy"] = await ports.access(ctx, Region.STATUS, addr=Status.BUSY)

    sim.add_testbench(bench)
    elaborated = time.perf_counter()
    sim.run()

    net = IntegerNetwork(config)
    geometry = dut.geometry
    matched = True
    for i, (prediction, checksum) in enumerate(results):
        trace = net.train_step(xs[i], ys[i], record=True)
        matched &= int(prediction) == trace.prediction
        matched &= int(checksum) == weight_checksum(geometry, net.weights, net.biases)
    return {
        "samples": len(ys),
        "cycles": int(counters["cycles"]),
        "busy": int(counters["busy"]),
        "seconds": counters["end"] - counters["start"],
        "setup_seconds": elaborated - start,
        "bit_exact": bool(matched) and len(results) == len(ys),
    }
