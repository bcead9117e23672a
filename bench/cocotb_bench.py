"""The benchmark's cocotb test: timed online training of :class:`sim.engine_sim.SimTop`, checked afterwards.

Run through :func:`bench.rtl.run_rtl`, which passes the parameters in ``$SYNCHRONY_PARAMS``:
the engine configuration, the data set, the training order (``order``: training-set indices),
segment boundaries (``segments``: cumulative sample counts), the boundaries at which the
held-out subset ``test_indices`` is classified (``evaluate_at``), and ``result_file``.

Each segment is first run on the engine alone (timed, the next sample always queued, results
recorded), then replayed on the integer golden model, which must give the same prediction and
weight checksum at every step: the timings measure the simulator, not the checker. At the end
every weight is read back and compared.
"""

import gc
import json
import time

import cocotb
from cocotb.utils import get_sim_time

from rtl.engine import Command
from sim.engine_sim import EngineTB, GoldenChecker, config_from_params, dataset_from_params, params, result_path


@cocotb.test()
async def bench_train(dut):
    p = params()
    config, lanes = config_from_params(p)
    tb = EngineTB(dut, config, lanes)
    checker = GoldenChecker(config, lanes)
    net = checker.net
    train_x, train_y, test_x, test_y = dataset_from_params(p)
    order = [int(i) for i in p["order"]]
    test_indices = [int(i) for i in p.get("test_indices", [])]
    evaluate_at = set(int(b) for b in p.get("evaluate_at", []))
    boundaries = sorted(set([0, *(int(b) for b in p["segments"]), len(order)]))

    await tb.reset()
    first = await checker.compare_weights(tb, "init")
    gc.collect()
    gc.disable()

    segments, evaluations = [], []

    async def evaluate(seen):
        nonlocal first
        jobs = [(Command.INFER, test_x[i].tolist(), 0) for i in test_indices]
        start = time.perf_counter()
        results = await tb.run_jobs(jobs)
        wall = time.perf_counter() - start
        predictions = [r[0] for r in results]
        golden = net.infer(test_x[test_indices]).tolist() if test_indices else []
        for i, (a, b) in enumerate(zip(predictions, golden)):
            found = checker.record(f"test{i}@{seen}", "test prediction", a, b)
            first = first or found
        labels = [test_y[i] for i in test_indices]
        evaluations.append({
            "samples_seen": seen,
            "accuracy": sum(int(a == b) for a, b in zip(predictions, labels)) / max(len(labels), 1),
            "golden_accuracy": sum(int(a == b) for a, b in zip(golden, labels)) / max(len(labels), 1),
            "predictions": "".join(map(str, predictions)) if config.n_classes <= 10 else predictions,
            "seconds": wall,
        })

    if 0 in evaluate_at:
        await evaluate(0)
    for lo, hi in zip(boundaries, boundaries[1:]):
        before = await tb.counters()
        jobs = [(Command.TRAIN, train_x[i].tolist(), train_y[i]) for i in order[lo:hi]]
        clock_start = get_sim_time("ns")
        start = time.perf_counter()
        results = await tb.run_jobs(jobs)
        wall = time.perf_counter() - start
        clock_cycles = (get_sim_time("ns") - clock_start) / tb.period_ns
        after = await tb.counters()
        # The golden replay, untimed.
        for step, (index, (prediction, checksum)) in enumerate(zip(order[lo:hi], results), start=lo):
            trace = net.train_step(train_x[index], train_y[index], record=True)
            found = checker.record(step, "prediction", prediction, trace.prediction) or \
                checker.record(step, "checksum", checksum, checker.checksum())
            first = first or found
        segments.append({
            "start": lo, "end": hi,
            "cycles": after["cycles"] - before["cycles"],
            "busy": after["busy"] - before["busy"],
            "steps": after["steps"] - before["steps"],
            "clock_cycles": clock_cycles,
            "seconds": wall,
        })
        if hi in evaluate_at:
            await evaluate(hi)
    found = await checker.compare_weights(tb, len(order))
    first = first or found
    gc.enable()

    summary = {
        "bit_exact": not checker.mismatches,
        "mismatches": len(checker.mismatches),
        "first_mismatch": str(first) if first else None,
        "lanes": lanes,
        "config_digest": config.digest(),
        "segments": segments,
        "evaluations": evaluations,
    }
    path = result_path(p)
    if path is not None:
        path.write_text(json.dumps(summary, indent=1) + "\n")
    dut._log.info("bench: %d segments, bit_exact=%s", len(segments), summary["bit_exact"])
