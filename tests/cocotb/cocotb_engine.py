"""cocotb tests of the whole engine (``sim.engine_sim.SimTop``) against the integer golden model.

Run through :func:`sim.engine_sim.run_engine` (from pytest or ``synchrony sim``), which passes
the configuration and the test's parameters in ``$SYNCHRONY_PARAMS``.

- ``engine_trace``: single steps; after each one every intermediate the golden ``StepTrace``
  records is read back through the access port and compared (activations, ``f'``, logits,
  probabilities, errors, δ, the LLS unit's registers, every weight and bias, the checksum);
  the first difference fails the test with the tensor, index, both values and the step. With
  ``modes`` (a list, cycled over the steps) the run-time LLS mode register is rewritten before
  each step whose mode differs, and the golden model follows (``GoldenChecker.select_mode``).
- ``engine_epoch``: the ``synchrony sim`` run: online training in the host order of
  ``docs/numerics.md`` §12 with the next sample always queued (the engine never waits for
  Python), every step checked by prediction and weight checksum, all weights read and compared
  at the end, then inference on the held-out set.
"""

import gc
import json
import time

import cocotb
import torch

from golden.integer.network import initial_weights
from rtl.engine import Command, Region, Status
from rtl.layer_geometry import pack_weights
from sim.engine_sim import EngineTB, GoldenChecker, config_from_params, dataset_from_params, params, result_path


def _fail(message):
    raise AssertionError(message)


@cocotb.test()
async def engine_trace(dut):
    """Every intermediate of every step, compared with the golden trace."""
    p = params()
    config, lanes = config_from_params(p)
    tb = EngineTB(dut, config, lanes)
    checker = GoldenChecker(config, lanes)
    net = checker.net
    gen = torch.Generator().manual_seed(int(p.get("seed", 0)))
    n_in, n_classes = config.layers[0], config.n_classes
    await tb.reset()

    found = await checker.compare_weights(tb, "init")
    if found:
        _fail(f"initial weights differ from initial_weights(): {found}")

    if p.get("random_weights"):
        # Weights anywhere in their range: saturating activations, logits and updates.
        weights, biases = [], []
        for k in range(config.n_layers):
            top = 1 << (config.weight_bits[k] - 1)
            shape = (config.layers[k + 1], config.layers[k])
            weights.append(torch.randint(-top, top, shape, generator=gen))
            biases.append(torch.randint(-top, top, shape[:1], generator=gen))
        net.load_weights(weights, biases)
        for k, words in enumerate(pack_weights(checker.geometry, weights, biases)):
            await tb.write_weight_words(k, words.tolist())
        found = await checker.compare_weights(tb, "load")
        if found:
            _fail(f"weights written through the access port read back differently: {found}")

    offset = int(p.get("lr_offset", 0))
    if offset:
        await tb.set_lr_offset(offset)
        net.lr_offset = offset

    modes = [int(i) for i in p.get("modes", [])]
    mode = 0
    if modes:
        if await tb.status(Status.MODES) != config.n_modes:
            _fail(f"Status.MODES reads {await tb.status(Status.MODES)}, want {config.n_modes}")
        # An out-of-range mode is ignored.
        await tb.access(Region.STATUS, 0, Status.LLS_MODE, write=True, data=config.n_modes)
        if await tb.status(Status.LLS_MODE) != 0:
            _fail(f"LLS_MODE took the out-of-range value {config.n_modes}")

    infer_every = int(p.get("infer_every", 0))
    for step in range(int(p["steps"])):
        if modes and modes[step % len(modes)] != mode:
            mode = modes[step % len(modes)]
            await tb.set_lls_mode(mode)
            checker.select_mode(mode)
            net = checker.net
        x = torch.randint(0, 1 << config.input_bits, (n_in,), generator=gen)
        label = int(torch.randint(0, n_classes, (1,), generator=gen))
        await tb.submit(Command.TRAIN, x.tolist(), label)
        prediction, checksum = await tb.result()
        trace = net.train_step(x, label, record=True)
        if p.get("inject_step") == step:
            # Self-test of the failure report: a golden value the hardware cannot match.
            trace.layers[-1].delta[0] += 1
        found = await checker.check_step(tb, step, trace, prediction, checksum)
        if found:
            _fail(f"first mismatch: {found}")
        if infer_every and step % infer_every == infer_every - 1:
            x = torch.randint(0, 1 << config.input_bits, (n_in,), generator=gen)
            await tb.submit(Command.INFER, x.tolist())
            prediction, _ = await tb.result()
            want = int(net.infer(x.unsqueeze(0))[0])
            if prediction != want:
                _fail(f"step {step}: inference predicted {prediction}, golden {want}")

    if p.get("reinit"):
        await tb.submit(Command.INIT)
        while int(dut.ready.value):
            await dut.ready.value_change
        while not int(dut.ready.value):
            await dut.ready.value_change
        checker.net.load_weights(*initial_weights(config))
        found = await checker.compare_weights(tb, "reinit")
        if found:
            _fail(f"INIT did not restore initial_weights(): {found}")

    counters = await tb.counters()
    counters["utilisation"] = counters["busy"] / (lanes * max(counters["cycles"], 1))
    dut._log.info(json.dumps(counters))
    path = result_path(p)
    if path is not None:
        path.write_text(json.dumps(counters) + "\n")


@cocotb.test()
async def engine_epoch(dut):
    """Online training in the host order, checked every sample, then the held-out test."""
    from golden.integer.train import lr_segments

    p = params()
    config, lanes = config_from_params(p)
    tb = EngineTB(dut, config, lanes)
    checker = GoldenChecker(config, lanes)
    net = checker.net
    train_x, train_y, test_x, test_y = dataset_from_params(p)
    generator = torch.Generator().manual_seed(int(p["seed"]))
    epochs = []
    for _ in range(int(p["epochs"])):
        epoch = torch.randperm(len(train_y), generator=generator).tolist()
        epochs.append(epoch[:p["samples"]] if p.get("samples") else epoch)
    order = [i for epoch in epochs for i in epoch]
    progress = open(p["progress_file"], "a", buffering=1) if p.get("progress_file") else None
    began = time.perf_counter()

    await tb.reset()
    first = await checker.compare_weights(tb, "init")
    # The lock-step model makes no reference cycles worth collecting; the collector's passes
    # over torch's objects cost more than the simulation of a step.
    gc.collect()
    gc.disable()

    def on_train(i, prediction, checksum):
        nonlocal first
        index = order[i]
        trace = net.train_step(train_x[index], train_y[index], record=True)
        found = checker.record(i, "prediction", prediction, trace.prediction) or \
            checker.record(i, "checksum", checksum, checker.checksum())
        first = first or found
        if progress:
            progress.write(f"{i}\n")

    for start, stop, offset in lr_segments(config, len(order)):
        # The host's learning-rate schedule: the offset register, written between two samples
        # once the engine has finished the earlier ones (run_jobs drains its jobs).
        net.lr_offset = offset
        await tb.set_lr_offset(offset)
        await tb.run_jobs([(Command.TRAIN, train_x[i].tolist(), train_y[i]) for i in order[start:stop]],
                          lambda i, prediction, checksum, start=start: on_train(start + i, prediction, checksum))
    train_counters = await tb.counters()
    found = await checker.compare_weights(tb, len(order))
    first = first or found

    golden_predictions = net.infer(test_x).tolist()
    predictions = [None] * len(test_y)

    def on_infer(i, prediction, checksum):
        nonlocal first
        predictions[i] = prediction
        first = first or checker.record(f"test{i}", "test prediction", prediction, golden_predictions[i])
        if progress:
            progress.write(f"t{i}\n")

    await tb.run_jobs([(Command.INFER, test_x[i].tolist(), 0) for i in range(len(test_y))], on_infer)
    counters = await tb.counters()
    gc.enable()
    wall = time.perf_counter() - began
    correct = sum(int(a == b) for a, b in zip(predictions, test_y))
    golden_correct = sum(int(a == b) for a, b in zip(golden_predictions, test_y))
    cycles, busy = train_counters["cycles"], train_counters["busy"]
    summary = {
        "bit_exact": not checker.mismatches,
        "mismatches": len(checker.mismatches),
        "first_mismatch": str(first) if first else None,
        "samples": len(order),
        "test_samples": len(test_y),
        "test_accuracy": correct / len(test_y),
        "golden_test_accuracy": golden_correct / len(test_y),
        "train_cycles": cycles,
        "busy_lane_cycles": busy,
        "cycles_per_sample": cycles / max(len(order), 1),
        "lane_utilisation": busy / (lanes * max(cycles, 1)),
        "infer_cycles_per_sample": (counters["cycles"] - cycles) / max(len(test_y), 1),
        "total_cycles": counters["cycles"],
        "sim_seconds": wall,
        "lanes": lanes,
        "config_digest": config.digest(),
    }
    if progress:
        progress.close()
    path = result_path(p)
    if path is not None:
        path.write_text(json.dumps(summary, indent=2) + "\n")
    dut._log.info(json.dumps(summary))
    if first and p.get("fail_on_mismatch", True):
        _fail(f"first mismatch: {first}")
