"""The bit-exact integer model of the training engine: the hardware's numerics, in int64 PyTorch.

``docs/numerics.md`` defines every operation; this package implements exactly that page, and
the RTL is compared with it bit for bit through :class:`~golden.integer.network.StepTrace`.

- :mod:`~golden.integer.config`: :class:`EngineConfig`, every width, shift, table, seed and size;
- :mod:`~golden.integer.arith`: rounding shifts and saturation;
- :mod:`~golden.integer.lfsr`: the Galois LFSR and the proof of its period;
- :mod:`~golden.integer.basis`: the LLS basis from phase accumulators;
- :mod:`~golden.integer.normaliser`, :mod:`~golden.integer.softmax`: the LLS normaliser and the
  softmax/error unit;
- :mod:`~golden.integer.network`: :class:`IntegerNetwork`, one online training step;
- :mod:`~golden.integer.train`: the training loop and the tuned :func:`default_config`;
- :mod:`~golden.integer.calibrate`: the float mirror the integer model is measured against;
- :mod:`~golden.integer.sweep`: the accuracy sweeps of ``docs/results.md``.
"""

from .config import EngineConfig
from .network import IntegerNetwork, LayerTrace, StepTrace
from .train import default_config, train_integer

__all__ = ["EngineConfig", "IntegerNetwork", "LayerTrace", "StepTrace", "default_config", "train_integer"]
