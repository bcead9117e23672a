"""Training the float golden model: one loop for every rule, online or mini-batch.

The defaults are per rule and per training mode (online = batch 1, the mode the hardware runs),
tuned so that the bare ``synchrony train`` command reproduces ``docs/results.md``.
"""

import time
from dataclasses import asdict, dataclass, replace

import torch

from .history import History
from .netspec import NetSpec
from .network import Network
from .rules import LLS_RULES, RULES, make_rule

__all__ = ["TrainConfig", "default_config", "evaluate", "train"]


# Per rule: the mini-batch recipe, and what changes for online training (batch 1, plain SGD).
RULE_DEFAULTS = {
    "bp":      dict(activation="relu", lr=3e-3),
    "dfa":     dict(activation="tanh", lr=3e-3),
    "drtp":    dict(activation="tanh", lr=3e-3, online=dict(lr=0.03, epochs=20)),
    "lls":     dict(activation="leaky_relu", lr=1e-3, basis="square"),
    "lls-m":   dict(activation="leaky_relu", lr=1e-3, basis="square"),
    "lls-mxm": dict(activation="leaky_relu", lr=1e-3, basis="square"),
    "ddfa":    dict(activation="relu", lr=1e-3, feedback_lr=1e-3, online=dict(feedback_lr=0.03)),
}
# What every rule shares unless it says otherwise: Adam mini-batches, or plain SGD online.
COMMON_DEFAULTS = dict(optimizer="adam", batch_size=32, epochs=60)
ONLINE_DEFAULTS = dict(optimizer="sgd", batch_size=1, lr=0.03, epochs=10)

# The default network per dataset: one hidden layer of 128, as the float calibration.
DEFAULT_HIDDEN = (128,)

# Random translation, in pixels, of mini-batch training images of 16x16 pixels or more.
MINI_BATCH_SHIFT = 2

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a float training run. The same config and seed give the same result."""

    rule: str
    spec: NetSpec
    basis: str = None
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    shift: int = 0
    batch_size: int = 32
    epochs: int = 40
    schedule: str = "cosine"
    temperature: float = 0.5
    feedback_lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if self.basis is not None and self.rule not in LLS_RULES:
            raise ValueError(f"--basis only applies to {', '.join(LLS_RULES)}, not to --rule {self.rule}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.shift < 0:
            raise ValueError(f"--shift must be >= 0, got {self.shift}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"--batch-size and --epochs must be >= 1, got {self.batch_size} and {self.epochs}")
        if not self.lr > 0 or not self.temperature > 0 or not self.feedback_lr > 0:
            raise ValueError("--lr, the temperature and the feedback learning rate must be > 0")

    @property
    def online(self):
        return self.batch_size == 1

    def to_dict(self):
        d = asdict(self)
        d["spec"] = {"layers": list(self.spec.layers), "conv": list(self.spec.conv)}
        return d


def default_config(rule, spec, *, batch_size=None, **overrides):
    """The tuned defaults for ``rule``, with any explicit ``overrides`` (``None`` means default).

    ``batch_size=1`` selects the rule's online recipe: plain SGD and its own learning rate.
    Mini-batch runs on images of 16x16 pixels or more are augmented by random translations.
    """
    if rule not in RULE_DEFAULTS:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    defaults = dict(COMMON_DEFAULTS, **RULE_DEFAULTS[rule])
    online = defaults.pop("online", {})
    if batch_size == 1:
        defaults.update(ONLINE_DEFAULTS, **online)
    elif batch_size is not None:
        defaults["batch_size"] = batch_size
    elif spec.image_shape[1] >= 16:
        # Mini-batch runs on real-size images are augmented; online runs see the raw stream, as
        # the hardware does.
        defaults["shift"] = MINI_BATCH_SHIFT
    defaults.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(rule=rule, spec=spec, **defaults)


def shifted(images, max_shift, generator):
    """Each image translated by its own random ``(dy, dx)`` in ``[-max_shift, max_shift]``, zero-filled.

    The only augmentation the float model uses: it is what closes BP's overfitting gap on the
    8000-sample MNIST split.
    """
    n, height, width = images.shape
    pad = max_shift
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(height)[None, :])[:, :, None].expand(n, height, width)
    cols = (dx[:, None] + torch.arange(width)[None, :])[:, None, :].expand(n, height, width)
    return padded[torch.arange(n)[:, None, None], rows, cols]


def _inputs(images):
    """Pixels 0..255 to float inputs in [0, 1], flattened."""
    return images.reshape(images.shape[0], -1).to(torch.float32) / 255.0


@torch.no_grad()
def evaluate(net, x, y, batch_size=1000):
    """Accuracy of ``net`` on inputs ``x`` and labels ``y``."""
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += (net(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    return correct / x.shape[0]


def train(dataset, config, progress=None, on_epoch=None):
    """Train a float network on ``dataset`` as ``config`` says.

    Parameters
    ----------
    dataset : golden.datasets.Dataset
    config : TrainConfig
    progress : callable, optional
        ``progress(total)`` returns a context manager with ``update(n)`` (e.g. ``tqdm``).
    on_epoch : callable, optional
        Called with each epoch's record.

    Returns
    -------
    history : dict
        ``{"config", "dataset", "epochs": [...], "test_accuracy", "train_accuracy", "seconds"}``,
        JSON-serialisable.
    net : Network
        The trained network.
    """
    if config.spec.layers[0] != dataset.n_inputs:
        raise ValueError(f"--layers starts with {config.spec.layers[0]} inputs, but {dataset.name} "
                         f"has {dataset.n_inputs} ({'x'.join(map(str, dataset.image_shape[1:]))} images)")
    if config.spec.n_classes != dataset.n_classes:
        raise ValueError(f"--layers ends with {config.spec.n_classes} classes, but {dataset.name} "
                         f"has {dataset.n_classes}")
    # One thread: batch-1 steps are dominated by overhead, and fixed reductions keep runs repeatable.
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(config.seed)
    spec = replace(config.spec, image_shape=dataset.image_shape) if config.spec.conv else config.spec
    net = Network(spec, config.activation, generator)
    rule = make_rule(config.rule, net, generator, basis=config.basis,
                     temperature=config.temperature, feedback_lr=config.feedback_lr)
    groups = rule.param_groups(config.lr)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(dataset.train_y) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    else:
        scheduler = None

    train_x, train_y = _inputs(dataset.train_x), dataset.train_y
    test_x, test_y = _inputs(dataset.test_x), dataset.test_y
    history = History(on_epoch, config=config.to_dict(), dataset=dataset.name)
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(len(train_y), generator=generator)
        inputs = _inputs(shifted(dataset.train_x, config.shift, generator)) if config.shift else train_x
        bar = progress(len(order)) if progress else None
        for i in range(0, len(order), config.batch_size):
            batch = order[i:i + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            _, objectives = rule.objectives(inputs[batch], train_y[batch])
            sum(objectives).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        history.add_epoch(epoch, epoch_start, evaluate(net, train_x, train_y), evaluate(net, test_x, test_y))
    return history.finish(), net
