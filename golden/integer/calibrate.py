"""The float reference of an engine configuration: the same network and rule without quantisation.

:class:`FloatMirror` runs exactly the step of :class:`~golden.integer.network.IntegerNetwork` in
float64, with the same initial weights, basis, DRTP matrices and effective learning rates, but
exact L2 normalisation, exact softmax and no rounding, tables or saturation (activations still
clip where the format does: that is the activation function, not a quantisation). The gap
between the two is what the integer numerics cost; ``docs/results.md`` reports it.
"""

import math

import torch

from .basis import basis_matrix
from .network import drtp_matrices, initial_weights
from .train import run_online

__all__ = ["FloatMirror", "train_float_mirror"]


class FloatMirror:
    """Float64 online training with the semantics of ``config`` (integer units kept for comparability).

    Values are held as floats *in integer units*: an activation of 37.25 is what the integer model
    would hold as 37 before rounding. So every shift of the integer model becomes an exact power
    of two here, and weights can be compared with the integer model's directly.

    Parameters
    ----------
    config : EngineConfig
    """

    def __init__(self, config):
        self.config = config
        weights, biases = initial_weights(config)
        self.weights = [w.double() for w in weights]
        self.biases = [b.double() for b in biases]
        hidden = config.layers[1:-1]
        self.bases = [basis_matrix(config, n).double() / (1 << config.basis_frac) for n in hidden] \
            if config.uses_basis else []
        self.drtp = [b.double() for b in drtp_matrices(config)] if config.rule == "drtp" else []
        self.lr_offset = 0
        self.modulations = [torch.full((config.n_classes,), config.mod_init / (1 << config.mod_frac),
                                       dtype=torch.float64) for _ in hidden] if config.rule == "lls-m" else []

    def _accumulate(self, k, x):
        return x @ self.weights[k].T + self.biases[k] * (1 << self.config.bias_shift(k))

    def _activate(self, q):
        config = self.config
        h = q.clamp(config.act_min, config.act_max)
        inside = (q > 0) if config.activation == "relu" else (q >= config.act_min)
        return h, (inside & (q <= config.act_max)).double()

    def _softmax_error(self, logits, label):
        """Base-2 softmax of logits in log2 units (no fraction bits), minus the one-hot target."""
        p = torch.softmax(logits * math.log(2), 0)
        p[label] -= 1
        return p * (1 << self.config.prob_frac)

    def infer(self, x):
        config = self.config
        h = torch.as_tensor(x).double()
        for k in range(config.n_layers):
            q = self._accumulate(k, h) / (1 << config.act_shift[k])
            h = self._activate(q)[0] if k < config.n_layers - 1 else q
        return h.argmax(dim=1)

    def _lls_delta(self, k, h, fprime, label):
        config = self.config
        norm = float(h.norm())
        if norm == 0:
            return torch.zeros_like(h)
        z_hat = h / norm
        u = self.bases[k] @ z_hat
        scale = 1 << config.temp_shift
        if config.rule == "lls-m":
            m = self.modulations[k]
            errors = self._softmax_error(m * u * scale, label)
            # The integer step is (e s0) >> mod_lr_shift with e, s0 and m in their fixed-point units.
            self.modulations[k] = m - errors * (u * scale * (1 << config.logit_frac)) \
                / (1 << (config.mod_lr_shift + self.lr_offset + config.mod_frac))
            errors = errors * m
        else:
            errors = self._softmax_error(u * scale, label)
        g = errors @ self.bases[k]
        if config.projection:
            g = g - z_hat * (z_hat @ g)
        return g * (1 << config.delta_shift) / norm * fprime

    def train_step(self, x, label):
        """One online step on one sample; returns the prediction before the update."""
        config = self.config
        h = torch.as_tensor(x).double()
        last = config.n_layers - 1
        inputs, outputs, fprimes = [], [], []
        for k in range(config.n_layers):
            q = self._accumulate(k, h) / (1 << config.act_shift[k])
            inputs.append(h)
            if k < last:
                h, fprime = self._activate(q)
                fprimes.append(fprime)
            else:
                h = q
            outputs.append(h)
        for k in range(config.n_layers):
            if k == last:
                delta = self._softmax_error(outputs[k] / (1 << config.logit_frac), label)
            elif config.rule == "drtp":
                delta = self.drtp[k][label] * fprimes[k]
            else:
                delta = self._lls_delta(k, outputs[k], fprimes[k], label)
            step = 1.0 / (1 << (config.lr_shift[k] + self.lr_offset))
            self.weights[k] -= torch.outer(delta, inputs[k]) * step
            self.biases[k] -= delta * ((1 << config.bias_shift(k)) * step)
        return int(outputs[-1].argmax())


def train_float_mirror(dataset, config, epochs=None, seed=0, on_epoch=None):
    """:func:`~golden.integer.train.train_integer` with :class:`FloatMirror`: same order, same record."""
    epochs = config.epochs if epochs is None else epochs
    return run_online(FloatMirror(config), dataset, config, epochs, seed, on_epoch, numerics="float-mirror")
