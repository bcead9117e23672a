"""Online training of the integer model, and the tuned default engine configuration per rule.

The host presents the training samples one at a time in a seeded random order per epoch
(``torch.randperm`` from a ``torch.Generator`` seeded with the run's seed, one permutation per
epoch from the same generator); the engine does the rest.
"""

import math
import time
from dataclasses import fields
from types import SimpleNamespace

import torch

from ..history import History
from .config import EngineConfig
from .network import IntegerNetwork

__all__ = ["accuracy", "default_config", "default_epochs", "flatten", "init_seed", "lr_offset", "lr_segments", "run_online",
           "train_integer"]

# Per rule: the learning rates 2**-lr_log2 of hidden and output layers in float terms (converted
# to lr_shift by default_config) and EngineConfig fields. Tuned in docs/results.md for both one
# epoch of digits (the RTL's `make sim`) and 10 epochs: the rate halves after 60, 80, 90 and 95 %
# of the run's samples, which lets a high initial rate (2**-2 on the classifier) settle.
LR_DECAY = (60, 80, 90, 95)
RULE_DEFAULTS = {
    "lls":   dict(hidden_lr_log2=5, output_lr_log2=2,
                  fields=dict(activation="relu", epochs=10, lr_decay=LR_DECAY)),
    # LLS-M keeps 2**-6: with 2**-3 on the classifier the integer model fell to 87 % on MNIST
    # (its float mirror 95.6 %; docs/results.md).
    "lls-m": dict(hidden_lr_log2=6, output_lr_log2=6,
                  fields=dict(activation="relu", epochs=10, lr_decay=LR_DECAY)),
    # DRTP needs an activation that can go negative; 4-bit B entries beat signs (docs/results.md).
    "drtp":  dict(hidden_lr_log2=10, output_lr_log2=7,
                  fields=dict(activation="hardtanh", epochs=10, lr_decay=LR_DECAY, drtp_bits=4)),
}
# Weights span +-2**WEIGHT_RANGE_LOG2 (trained weights stay within +-2.5: docs/results.md, bit widths).
WEIGHT_RANGE_LOG2 = 2
# ReLU activations span [0, 2**RELU_RANGE_LOG2); hardtanh spans +-1.
RELU_RANGE_LOG2 = 2
# Output logits, log2 units: a float logit a is a * 2**OUTPUT_GAIN.
OUTPUT_GAIN = 0
# Fields that default_config derives; an override of one of them is taken as given.
DERIVED = ("weight_bits", "weight_frac", "init_bits", "act_shift", "lr_shift")


def _largest_weight_bits(fan_in, in_max, in_frac, acc_bits, limit):
    """Widest weights (<= ``limit``) whose worst-case accumulation fits ``acc_bits``."""
    for bits in range(limit, 1, -1):
        worst = (1 << (bits - 1)) * (fan_in * in_max + (1 << in_frac))
        if worst <= (1 << (acc_bits - 1)) - 1:
            return bits
    raise ValueError(f"no weight width fits a fan-in of {fan_in} in {acc_bits} bits")


def init_seed(seed):
    """The weight-initialisation LFSR seed of run ``seed``: odd, so never 0, and bit-balanced."""
    return (0x9E3779B9 * (2 * seed + 1)) & 0xFFFFFFFF


def default_config(rule, basis, layers, seed=0, *, weight_width=16, hidden_lr_log2=None, output_lr_log2=None,
                   **overrides):
    """The tuned :class:`EngineConfig` for ``rule`` on a network of ``layers``.

    Formats follow from a few choices: weights of ``weight_width`` bits (narrower where the
    accumulator bound demands it) spanning ``+-4``; activations spanning ``[0, 4)`` (ReLU) or
    ``+-1`` (hardtanh); then every shift is derived so that the integer step is the float step
    with learning rate ``2**-lr_log2``.

    Parameters
    ----------
    rule : str
        ``lls``, ``lls-m`` or ``drtp``.
    basis : str or None
        LLS basis (``square`` or ``sin``; ``None`` = ``square``). Must be ``None`` or ``square`` for ``drtp``.
    layers : tuple of int
        ``(inputs, hidden..., classes)``.
    seed : int
        Selects the initial weights (``init_seed``); the other LFSR seeds stay fixed.
    weight_width : int
        Widest weight format.
    hidden_lr_log2, output_lr_log2 : int, optional
        Learning rates as ``2**-lr_log2`` (default: the rule's tuned values).
    **overrides
        Any :class:`EngineConfig` field. Non-derived fields (e.g. ``act_bits``, ``delta_shift``)
        are applied before the derivation, derived ones (``weight_bits``, ``weight_frac``,
        ``init_bits``, ``act_shift``, ``lr_shift``) replace its result.
    """
    if rule not in RULE_DEFAULTS:
        raise ValueError(f"unknown rule {rule!r} for the integer model; choose one of {', '.join(RULE_DEFAULTS)}")
    if basis is None or rule == "drtp":
        if basis not in (None, "square"):
            raise ValueError(f"rule {rule!r} uses no basis, got --basis {basis}")
        basis = "square"
    layers = tuple(int(v) for v in layers)
    d = RULE_DEFAULTS[rule]
    hidden_lr_log2 = d["hidden_lr_log2"] if hidden_lr_log2 is None else hidden_lr_log2
    output_lr_log2 = d["output_lr_log2"] if output_lr_log2 is None else output_lr_log2
    # The sine basis's rows have norm sqrt(N/2) against sqrt(N) for the square wave: its logits
    # are smaller, and a temperature one shift lower measured 0.4 point better on MNIST.
    values = dict(layers=layers, rule=rule, basis=basis, init_seed=init_seed(seed),
                  norm_guard=8 if basis == "square" else 2, temp_shift=1 if basis == "square" else 2,
                  **d["fields"])
    values.update({k: v for k, v in overrides.items() if k not in DERIVED})
    # The non-derived fields as they will be, for the derivation.
    base = SimpleNamespace(**{f.name: values.get(f.name, f.default) for f in fields(EngineConfig)})
    n_layers = len(layers) - 1
    relu = base.activation == "relu"
    act_frac = base.act_bits - RELU_RANGE_LOG2 if relu else base.act_bits - 1
    act_max = (1 << base.act_bits) - 1 if relu else (1 << (base.act_bits - 1)) - 1
    in_fracs = [base.input_frac] + [act_frac] * (n_layers - 1)
    in_maxes = [(1 << base.input_bits) - 1] + [act_max] * (n_layers - 1)
    weight_bits = tuple(_largest_weight_bits(layers[k], in_maxes[k], in_fracs[k], base.acc_bits, weight_width)
                        for k in range(n_layers))
    weight_frac = tuple(bits - 1 - WEIGHT_RANGE_LOG2 for bits in weight_bits)
    # Uniform init bound 2**round(-log2(sqrt(fan_in))), a power of two near PyTorch's 1/sqrt(fan_in).
    init_bits = tuple(weight_frac[k] - math.floor(math.log2(layers[k]) / 2 + 0.5) for k in range(n_layers))
    out_fracs = [act_frac] * (n_layers - 1) + [base.logit_frac + OUTPUT_GAIN]
    act_shift = tuple(in_fracs[k] + weight_frac[k] - out_fracs[k] for k in range(n_layers))
    lr_shift = []
    for k in range(n_layers):
        # (delta x) >> lr_shift, in the weights' format, is 2**-lr_log2 times the float update.
        align = in_fracs[k] - weight_frac[k]
        if k == n_layers - 1:
            lr_shift.append(align + base.prob_frac + output_lr_log2)
        elif rule == "drtp":
            lr_shift.append(align + hidden_lr_log2)
        else:
            lr_shift.append(align + base.prob_frac + base.delta_shift - act_frac - base.temp_shift
                            + hidden_lr_log2)
    values.update(weight_bits=weight_bits, weight_frac=weight_frac, init_bits=init_bits, act_shift=act_shift,
                  lr_shift=tuple(lr_shift))
    values.update({k: v for k, v in overrides.items() if k in DERIVED})
    return EngineConfig(**values)


def default_epochs(rule):
    """Epochs of the documented run of ``rule`` (also ``default_config(...).epochs``)."""
    if rule not in RULE_DEFAULTS:
        raise ValueError(f"unknown rule {rule!r} for the integer model; choose one of {', '.join(RULE_DEFAULTS)}")
    return RULE_DEFAULTS[rule]["fields"]["epochs"]


def lr_offset(config, sample, total):
    """The learning-rate offset register while sample ``sample`` (0-based) of a run of ``total`` trains.

    The decays already passed (``docs/numerics.md`` §12): ``#{d in lr_decay : 100 * sample >= d * total}``.
    ``config`` is anything with ``lr_decay``: an ``EngineConfig``, or a board's identity record.
    """
    return sum(1 for d in config.lr_decay if 100 * sample >= d * total)


def lr_segments(config, total):
    """The host's register writes for a run of ``total`` samples: ``[(start, stop, offset), ...]``.

    Consecutive, non-empty ranges of samples covering ``range(total)``, each trained with the
    learning-rate offset ``lr_offset(config, start, total)``.
    """
    # Decay d takes effect at the first sample s with 100 * s >= d * total.
    bounds = sorted({0, total} | {min(total, -(-d * total // 100)) for d in config.lr_decay})
    return [(start, stop, lr_offset(config, start, total)) for start, stop in zip(bounds, bounds[1:])
            if start < stop]


def flatten(images):
    """``(N, H, W)`` uint8 images to ``(N, H*W)`` int64 engine inputs."""
    return images.reshape(images.shape[0], -1).to(torch.int64)


def accuracy(net, x, y, batch_size=1000):
    """Fraction of ``x`` that ``net`` classifies as ``y``."""
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += int((net.infer(x[i:i + batch_size]) == y[i:i + batch_size]).sum())
    return correct / x.shape[0]


def train_integer(dataset, config, epochs=None, seed=0, on_epoch=None, progress=None):
    """Train the integer model online on ``dataset``.

    Parameters
    ----------
    dataset : golden.datasets.Dataset
    config : EngineConfig
    epochs : int, optional
        Default: ``config.epochs``. The learning-rate schedule (``lr_segments``) spans them all.
    seed : int
        Seeds the presentation order (the initial weights come from ``config.init_seed``).
    on_epoch : callable, optional
        Called with each epoch's record.
    progress : callable, optional
        ``progress(total)`` returns an object with ``update(n)`` and ``close()`` (e.g. ``tqdm``).

    Returns
    -------
    dict
        ``{"epochs": [{"epoch", "train_accuracy", "test_accuracy", "seconds"}, ...],
        "test_accuracy", "train_accuracy", "seconds", "dataset", "config", "config_digest"}``;
        accuracies are fractions.
    """
    if config.layers[0] != dataset.n_inputs or config.n_classes != dataset.n_classes:
        raise ValueError(f"layers {config.layers} do not fit {dataset.name}: "
                         f"{dataset.n_inputs} inputs, {dataset.n_classes} classes")
    epochs = config.epochs if epochs is None else epochs
    if epochs < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    history = run_online(IntegerNetwork(config), dataset, config, epochs, seed, on_epoch, progress,
                         config_digest=config.digest())
    return history


def run_online(net, dataset, config, epochs, seed, on_epoch=None, progress=None, **fields):
    """The host's online run (``docs/numerics.md`` §12) of ``net`` on ``dataset``: a seeded
    permutation per epoch, the learning-rate offset of the run-wide schedule before every sample.

    ``net`` is an :class:`IntegerNetwork` or anything with its ``lr_offset``, ``train_step`` and
    ``infer`` (the float mirror). Returns the history of :func:`train_integer`, with ``fields`` added.
    """
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = flatten(dataset.train_x), dataset.train_y
    test_x, test_y = flatten(dataset.test_x), dataset.test_y
    labels = train_y.tolist()
    history = History(on_epoch, config=config.to_dict(), dataset=dataset.name, **fields)
    total, seen = epochs * len(labels), 0
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(len(labels), generator=generator).tolist()
        bar = progress(len(order)) if progress else None
        for i in order:
            net.lr_offset = lr_offset(config, seen, total)
            net.train_step(train_x[i], labels[i])
            seen += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        history.add_epoch(epoch, epoch_start, accuracy(net, train_x, train_y), accuracy(net, test_x, test_y))
    return history.finish()
