"""How much each benchmark measures: the full run and ``--quick``."""

from dataclasses import dataclass

__all__ = ["Budget", "FULL", "QUICK", "RULES", "NETWORKS"]

# (rule, basis, label): the rules the engine runs.
RULES = (("lls", "square", "LLS square"), ("lls", "sin", "LLS sine"), ("drtp", None, "DRTP"))
# (dataset, layers): the digits net, and two MNIST nets.
NETWORKS = (("digits", (64, 128, 10)), ("mnist", (784, 128, 10)), ("mnist", (784, 256, 256, 10)))


@dataclass(frozen=True)
class Budget:
    """Sample counts of one benchmark run.

    Attributes
    ----------
    name : str
        ``"full"`` or ``"quick"``.
    rtl : tuple of (layers, rule, basis)
        The engine configurations simulated (8 lanes); the others are listed as skipped.
    short_samples : int
        Training samples of an efficiency-only RTL run (networks without an RTL learning curve).
    digits_samples, digits_every : int
        Learning curves on digits: samples trained (float and integer), evaluation interval.
    digits_rtl_points, digits_rtl_test : tuple of int, int
        The RTL's digits curve: the sample counts at which it classifies the first
        ``digits_rtl_test`` held-out samples (``None``: all); the last is the samples trained.
    mnist_samples, mnist_every, mnist_test : int
        Learning curves on MNIST (float and integer); ``mnist_test`` held-out samples (``None``: all).
    mnist_rtl_points, mnist_rtl_test : tuple of int, int
        The RTL's MNIST curve (no points: none).
    pysim_samples : int
        Training samples timed under Amaranth's simulator (and the same ones under Verilator).
    cpu_samples : int
        Samples of the CPU (PyTorch float32) throughput runs.
    synth : bool
        Run ``synchrony synth`` for boards without a report.
    """

    name: str
    rtl: tuple
    short_samples: int
    digits_samples: int
    digits_every: int
    digits_rtl_points: tuple
    digits_rtl_test: int
    mnist_samples: int
    mnist_every: int
    mnist_test: int
    mnist_rtl_points: tuple
    mnist_rtl_test: int
    pysim_samples: int
    cpu_samples: int
    synth: bool


FULL = Budget(
    name="full",
    rtl=tuple((layers, rule, basis) for _, layers in NETWORKS for rule, basis, _ in RULES),
    short_samples=4,
    # One epoch of digits, the whole test set; the RTL classifies it at 6 points of the epoch.
    digits_samples=1437, digits_every=100, digits_rtl_points=(0, 100, 300, 600, 1000, 1437), digits_rtl_test=None,
    mnist_samples=8000, mnist_every=500, mnist_test=None,
    # The RTL on MNIST: 200 samples, the first 150 test samples at 0, 100 and 200 (~11 M cycles per rule).
    mnist_rtl_points=(0, 100, 200), mnist_rtl_test=150,
    pysim_samples=5, cpu_samples=300, synth=True,
)

QUICK = Budget(
    name="quick",
    rtl=(((64, 128, 10), "lls", "square"), ((784, 128, 10), "lls", "square")),
    short_samples=2,
    digits_samples=200, digits_every=50, digits_rtl_points=(0, 30, 60), digits_rtl_test=60,
    mnist_samples=200, mnist_every=100, mnist_test=500,
    mnist_rtl_points=(), mnist_rtl_test=0,
    pysim_samples=2, cpu_samples=100, synth=False,
)
