"""The golden models as benchmarks: online learning curves and training throughput.

Both models train online (batch 1) on a given order of training-set indices, so that they see
the same samples as the RTL run, and are evaluated at given sample counts. Times cover the
training steps only (evaluations excluded), on one thread, as ``synchrony train`` runs.
"""

import time

import torch

from golden.integer.network import IntegerNetwork
from golden.integer.train import flatten
from golden.netspec import NetSpec

__all__ = ["float_online", "integer_online"]


def _accuracy(predictions, labels):
    return float((predictions == labels).float().mean()) if len(labels) else 0.0


def float_online(dataset, layers, rule, basis, order, *, evaluate_at=(), test_indices=None, seed=0, warmup=10):
    """Float32 online SGD (batch 1) of ``rule`` on ``order``: the rule's online recipe at a
    constant learning rate (the first epoch of a run, before any decay). ``warmup`` untimed steps
    of a throw-away network come first, so that PyTorch's first-call costs are not timed.

    Returns ``{"samples", "seconds", "samples_per_second", "curve": [{"samples_seen",
    "accuracy", "subset_accuracy"}], "config"}``.
    """
    from golden.network import Network
    from golden.rules import make_rule
    from golden.train import _inputs, default_config

    torch.set_num_threads(1)
    spec = NetSpec(tuple(layers))
    config = default_config(rule, spec, batch_size=1, basis=basis, schedule="constant", seed=seed)
    train_x, train_y = _inputs(dataset.train_x), dataset.train_y

    def build(generator):
        net = Network(spec, config.activation, generator)
        learner = make_rule(config.rule, net, generator, basis=config.basis, temperature=config.temperature,
                            feedback_lr=config.feedback_lr)
        return net, learner, torch.optim.SGD(learner.param_groups(config.lr), lr=config.lr)

    def step(learner, optimizer, i):
        optimizer.zero_grad(set_to_none=True)
        _, objectives = learner.objectives(train_x[i:i + 1], train_y[i:i + 1])
        sum(objectives).backward()
        optimizer.step()

    if warmup:
        _, learner, optimizer = build(torch.Generator().manual_seed(seed + 1))
        for i in list(order)[:warmup]:
            step(learner, optimizer, i)
    net, learner, optimizer = build(torch.Generator().manual_seed(seed))
    test_x, test_y = _inputs(dataset.test_x), dataset.test_y
    subset = list(range(len(test_y))) if test_indices is None else list(test_indices)
    evaluate_at = sorted(set(evaluate_at))
    curve = []

    def evaluate(seen):
        with torch.no_grad():
            predictions = net(test_x).argmax(1)
        curve.append({"samples_seen": seen, "accuracy": _accuracy(predictions, test_y),
                      "subset_accuracy": _accuracy(predictions[subset], test_y[subset])})

    order = list(order)
    seconds = _timed_run(order, evaluate_at, lambda i: step(learner, optimizer, i), evaluate)
    return {"samples": len(order), "seconds": seconds, "samples_per_second": len(order) / max(seconds, 1e-9),
            "curve": curve, "config": {"rule": config.rule, "basis": config.basis, "lr": config.lr,
                                       "activation": config.activation, "optimizer": "sgd", "batch_size": 1}}


def _timed_run(order, evaluate_at, step, evaluate):
    """Train ``step(i)`` for every ``i`` of ``order``, calling ``evaluate(seen)`` (untimed) at
    each point of ``evaluate_at``; returns the seconds spent training."""
    if 0 in evaluate_at:
        evaluate(0)
    bounds = [b for b in evaluate_at if 0 < b <= len(order)]
    if not bounds or bounds[-1] != len(order):
        bounds.append(len(order))
    lo, seconds = 0, 0.0
    for hi in bounds:
        start = time.perf_counter()
        for i in order[lo:hi]:
            step(i)
        seconds += time.perf_counter() - start
        if hi in evaluate_at:
            evaluate(hi)
        lo = hi
    return seconds


def integer_online(dataset, config, order, *, evaluate_at=(), test_indices=None, compare_indices=(), warmup=10):
    """The integer model (``IntegerNetwork``) trained online on ``order`` at learning-rate offset 0.

    Returns ``{"samples", "seconds", "samples_per_second", "curve": [{"samples_seen",
    "accuracy", "subset_accuracy", "predictions"}]}``: accuracy on the whole test set and on
    ``test_indices``; ``predictions`` on ``compare_indices`` (a digit string for <= 10
    classes), to compare with the RTL's.
    """
    torch.set_num_threads(1)
    train_x, train_y = flatten(dataset.train_x), dataset.train_y.tolist()
    scratch = IntegerNetwork(config)     # untimed warm-up on a throw-away network
    for i in list(order)[:warmup]:
        scratch.train_step(train_x[i], train_y[i])
    net = IntegerNetwork(config)
    test_x, test_y = flatten(dataset.test_x), dataset.test_y
    subset = list(range(len(test_y))) if test_indices is None else list(test_indices)
    evaluate_at = sorted(set(evaluate_at))
    curve = []

    def evaluate(seen):
        predictions = net.infer(test_x)
        chosen = predictions[list(compare_indices)].tolist()
        curve.append({"samples_seen": seen, "accuracy": _accuracy(predictions, test_y),
                      "subset_accuracy": _accuracy(predictions[subset], test_y[subset]),
                      "predictions": "".join(map(str, chosen)) if config.n_classes <= 10 else chosen})

    order = list(order)
    seconds = _timed_run(order, evaluate_at, lambda i: net.train_step(train_x[i], train_y[i]), evaluate)
    return {"samples": len(order), "seconds": seconds, "samples_per_second": len(order) / max(seconds, 1e-9),
            "curve": curve}
