"""The bit-exact integer model of the training engine: what the RTL must reproduce, step by step.

One :meth:`IntegerNetwork.train_step` is one online (batch 1) training step as defined in
``docs/numerics.md``: a forward pass through all layers with the current weights, then every
layer's update from its own learning signal. All arithmetic is on int64 tensors with explicit
shifts, rounding and saturation; the only state is the weights, biases, LLS-M scalars and the
stochastic-rounding LFSR.
"""

from dataclasses import dataclass, field

import torch

from .arith import round_shift, saturate
from .basis import basis_matrix
from .lfsr import LFSR, lfsr_values
from .normaliser import normalise, rsqrt_table
from .softmax import exp2_table, softmax_error

__all__ = ["IntegerNetwork", "LayerTrace", "StepTrace", "drtp_matrices", "initial_weights"]


@dataclass
class LayerTrace:
    """Every intermediate of one layer in one step (int64 tensors; ``None`` where not applicable).

    Attributes
    ----------
    x : input (M); acc : ``W x + (b << bias_shift)`` (N); out : activations ``h`` or, for the
    last layer, logits (N); fprime : activation derivative bits (N, hidden layers);
    raw_logits : ``B h`` (C, LLS); norm : :class:`~golden.integer.normaliser.Norm` (LLS, ``None``
    when ``h = 0``); logits : softmax input (C; LLS-M: after modulation); softmax :
    :class:`~golden.integer.softmax.Softmax`; scaled_errors : ``e / ||h||`` (C, LLS);
    sigma, kappa : projection scalars (LLS); delta : learning signal (N); dw, db : the applied
    decrements; weight, bias : values after the update; modulation : LLS-M ``m`` after the update.
    """

    x: torch.Tensor
    acc: torch.Tensor
    out: torch.Tensor
    fprime: torch.Tensor = None
    raw_logits: torch.Tensor = None
    norm: object = None
    logits: torch.Tensor = None
    softmax: object = None
    scaled_errors: torch.Tensor = None
    sigma: int = None
    kappa: int = None
    delta: torch.Tensor = None
    dw: torch.Tensor = None
    db: torch.Tensor = None
    weight: torch.Tensor = None
    bias: torch.Tensor = None
    modulation: torch.Tensor = None


@dataclass
class StepTrace:
    """One training step: the label, the prediction before the update, and one trace per layer."""

    label: int
    prediction: int
    layers: list = field(default_factory=list)


def initial_weights(config):
    """Initial weights from the ``init_seed`` LFSR; biases start at zero.

    One stream for the whole network, consumed layer by layer, row by row (output neuron ``n``
    outer, input ``m`` inner), ``init_bits[k]`` bits per weight mapped to odd values in
    ``+-(2**init_bits[k] - 1)`` by :func:`~golden.integer.lfsr.lfsr_values`.
    """
    lfsr = LFSR(config.lfsr_poly, config.init_seed)
    weights, biases = [], []
    for k in range(config.n_layers):
        fan_in, fan_out = config.layers[k], config.layers[k + 1]
        values = lfsr_values(lfsr, fan_out * fan_in, config.init_bits[k])
        weights.append(torch.tensor(values, dtype=torch.int64).reshape(fan_out, fan_in))
        biases.append(torch.zeros(fan_out, dtype=torch.int64))
    return weights, biases


def drtp_matrices(config):
    """DRTP's fixed ``B_k`` (C x N_k) for every hidden layer, from the ``drtp_seed`` LFSR.

    One stream, consumed layer by layer, class by class, neuron by neuron, ``drtp_bits`` bits
    per entry (odd values, so a single bit is a sign). The hardware keeps the LFSR state at the
    start of each row (C per hidden layer, recorded at reset) and regenerates row ``c*``.
    """
    lfsr = LFSR(config.lfsr_poly, config.drtp_seed)
    matrices = []
    for k in range(config.n_layers - 1):
        n = config.layers[k + 1]
        values = lfsr_values(lfsr, config.n_classes * n, config.drtp_bits)
        matrices.append(torch.tensor(values, dtype=torch.int64).reshape(config.n_classes, n))
    return matrices


class IntegerNetwork:
    """The integer MLP and its on-chip learning rule.

    Parameters
    ----------
    config : EngineConfig
        Widths, shifts, tables, seeds, rule and layer sizes.
    """

    def __init__(self, config):
        self.config = config
        self._weights, self._biases = initial_weights(config)
        self._exp2 = exp2_table(config.logit_frac, config.exp_bits)
        hidden = config.layers[1:-1]
        self._bases = [basis_matrix(config, n) for n in hidden] if config.uses_basis else []
        self._rsqrt = rsqrt_table(config.norm_index_bits, config.norm_bits) if config.uses_basis else None
        self._drtp = drtp_matrices(config) if config.rule == "drtp" else []
        self._modulations = [torch.full((config.n_classes,), config.mod_init, dtype=torch.int64)
                             for _ in hidden] if config.rule == "lls-m" else []
        self._round_lfsr = LFSR(config.lfsr_poly, config.round_seed)
        # The learning-rate offset register: added to every lr_shift and mod_lr_shift.
        self.lr_offset = 0

    # -- state ------------------------------------------------------------------------------------

    @property
    def weights(self):
        """Per layer, the ``(N, M)`` int64 weights (a step replaces these tensors, never mutates them)."""
        return list(self._weights)

    @property
    def biases(self):
        """Per layer, the ``(N,)`` int64 biases, in the weights' format."""
        return list(self._biases)

    @property
    def bases(self):
        """LLS: per hidden layer, the ``(C, N)`` basis the phase accumulators generate; else empty."""
        return list(self._bases)

    @property
    def modulations(self):
        """LLS-M: per hidden layer, the ``(C,)`` int64 modulation scalars; empty for other rules."""
        return list(self._modulations)

    def load_weights(self, weights, biases, modulations=None):
        """Replace the weights and biases (and LLS-M scalars) after checking shapes and ranges."""
        config = self.config
        if len(weights) != config.n_layers or len(biases) != config.n_layers:
            raise ValueError(f"load_weights: expected {config.n_layers} weight and bias tensors")
        new_w, new_b = [], []
        for k, (w, b) in enumerate(zip(weights, biases)):
            w = torch.as_tensor(w, dtype=torch.int64)
            b = torch.as_tensor(b, dtype=torch.int64)
            shape = (config.layers[k + 1], config.layers[k])
            if tuple(w.shape) != shape or tuple(b.shape) != shape[:1]:
                raise ValueError(f"load_weights: layer {k} needs weights {shape} and biases {shape[:1]}, "
                                 f"got {tuple(w.shape)} and {tuple(b.shape)}")
            bits = config.weight_bits[k]
            for name, t in (("weights", w), ("biases", b)):
                if not torch.equal(saturate(t, bits), t):
                    raise ValueError(f"load_weights: layer {k} {name} exceed weight_bits={bits}")
            new_w.append(w.clone())
            new_b.append(b.clone())
        if modulations is not None:
            if config.rule != "lls-m" or len(modulations) != len(self._modulations):
                raise ValueError("load_weights: modulations apply to lls-m, one tensor per hidden layer")
            self._modulations = [saturate(torch.as_tensor(m, dtype=torch.int64).clone(), config.mod_bits)
                                 for m in modulations]
        self._weights, self._biases = new_w, new_b

    # -- forward ----------------------------------------------------------------------------------

    def _accumulate(self, k, x):
        """``W x + (b << bias_shift)`` for a vector ``(M,)`` or a batch ``(B, M)``."""
        bias = self._biases[k] << self.config.bias_shift(k)
        return x @ self._weights[k].T + bias

    def _activate(self, q):
        """Hidden activation and its derivative bits from the requantised accumulator ``q``."""
        config = self.config
        h = q.clamp(config.act_min, config.act_max)
        # f' = 1 where the clamp left q unchanged, except ReLU's q <= 0 (slope 0 at and below 0).
        low = 1 if config.activation == "relu" else config.act_min
        return h, ((q >= low) & (q <= config.act_max)).to(torch.int64)

    def infer(self, x):
        """Predicted classes of a batch ``(B, n_in)`` of unsigned inputs: the first maximal logit."""
        config = self.config
        h = torch.as_tensor(x, dtype=torch.int64)
        for k in range(config.n_layers):
            q = round_shift(self._accumulate(k, h), config.act_shift[k])
            if k < config.n_layers - 1:
                h, _ = self._activate(q)
            else:
                h = saturate(q, config.logit_bits)
        return h.argmax(dim=1)

    # -- learning signals -------------------------------------------------------------------------

    def _lls_delta(self, k, h, fprime, label, trace):
        """LLS (and LLS-M) learning signal of hidden layer ``k``; fills ``trace``."""
        config = self.config
        basis = self._bases[k]
        raw = basis @ h
        trace.raw_logits = raw
        square = int(h @ h)
        if square == 0:
            # No direction to normalise: the layer learns nothing from this sample.
            return torch.zeros_like(h)
        norm = normalise(square, config.norm_index_bits, self._rsqrt)
        trace.norm = norm
        rb, e2, rsqrt = config.norm_bits, norm.half_exponent, norm.rsqrt
        # Pre-shift keeps norm_guard bits above the Cauchy-Schwarz bound so the product fits.
        pre = max(e2 - config.norm_guard, 0)
        post = rb + e2 - pre + config.basis_frac - config.temp_shift - config.logit_frac
        logits = saturate(round_shift(round_shift(raw, pre) * rsqrt, post), config.logit_bits)
        if config.rule == "lls-m":
            m = self._modulations[k]
            unmodulated = logits
            logits = saturate(round_shift(unmodulated * m, config.mod_frac), config.logit_bits)
        trace.logits = logits
        sm = softmax_error(logits, label, config, self._exp2)
        trace.softmax = sm
        errors = sm.errors
        if config.rule == "lls-m":
            # d loss / d u_c = e_c m_c; d loss / d m_c = e_c u_c, both with the old m.
            errors = round_shift(errors * m, config.mod_frac)
            step = round_shift(sm.errors * unmodulated, config.mod_lr_shift + self.lr_offset)
            self._modulations[k] = saturate(m - step, config.mod_bits)
            trace.modulation = self._modulations[k]
            logits = unmodulated
        scaled = saturate(round_shift(errors * rsqrt, rb + e2 - config.delta_shift), config.delta_bits)
        trace.scaled_errors = scaled
        g = scaled @ basis
        if config.basis_frac:
            g = round_shift(g, config.basis_frac)
        if config.projection:
            # z_hat (z_hat . g) = h (sum_c scaled_c u_c) / ||h||, with u_c from the logits.
            sigma = int(scaled @ logits)
            sigma = saturate(round_shift(sigma, config.temp_shift + config.logit_frac), config.delta_bits)
            # kappa = sigma 2**e2 / ||h|| stays within sigma's range; the e2 shift is per neuron.
            kappa = saturate(round_shift(sigma * rsqrt, rb), config.delta_bits)
            trace.sigma, trace.kappa = sigma, kappa
            g = g - round_shift(h * kappa, e2)
        return saturate(g, config.delta_bits) * fprime

    # -- training ---------------------------------------------------------------------------------

    def _update(self, k, x, delta, trace):
        """``W -= (delta x^T) >> lr_shift`` rounded; the bias is a weight whose input is ``1 << bias_shift``."""
        config = self.config
        shift = config.lr_shift[k] + self.lr_offset
        product = delta.unsqueeze(1) * x.unsqueeze(0)
        bias_product = delta << config.bias_shift(k)
        if config.rounding == "nearest":
            dw = round_shift(product, shift)
            db = round_shift(bias_product, shift)
        else:
            # One draw of lr_shift bits per output neuron, shared by its weights and its bias.
            draws = torch.tensor([self._round_lfsr.bits(shift) for _ in range(delta.numel())],
                                 dtype=torch.int64)
            dw = (product + draws.unsqueeze(1)) >> shift
            db = (bias_product + draws) >> shift
        bits = config.weight_bits[k]
        self._weights[k] = saturate(self._weights[k] - dw, bits)
        self._biases[k] = saturate(self._biases[k] - db, bits)
        if trace is not None:
            trace.delta, trace.dw, trace.db = delta, dw, db
            trace.weight, trace.bias = self._weights[k], self._biases[k]

    def train_step(self, x, label, record=False):
        """One online training step on one sample.

        Parameters
        ----------
        x : LongTensor[n_in]
            Unsigned inputs (pixels ``0 .. 2**input_bits - 1``).
        label : int
            Target class.
        record : bool
            Return a :class:`StepTrace` of every intermediate.

        Returns
        -------
        StepTrace or None
        """
        config = self.config
        label = int(label)
        h = torch.as_tensor(x, dtype=torch.int64)
        last = config.n_layers - 1
        # Forward through every layer with the current weights, then update each layer.
        traces = []
        for k in range(config.n_layers):
            acc = self._accumulate(k, h)
            q = round_shift(acc, config.act_shift[k])
            if k < last:
                out, fprime = self._activate(q)
                traces.append(LayerTrace(h, acc, out, fprime=fprime))
            else:
                out = saturate(q, config.logit_bits)
                traces.append(LayerTrace(h, acc, out, logits=out))
            h = out
        prediction = int(h.argmax())
        for k, trace in enumerate(traces):
            if k == last:
                trace.softmax = softmax_error(trace.out, label, config, self._exp2)
                delta = trace.softmax.errors
            elif config.rule == "drtp":
                delta = self._drtp[k][label] * trace.fprime
            else:
                delta = self._lls_delta(k, trace.out, trace.fprime, label, trace)
            self._update(k, trace.x, delta, trace if record else None)
        return StepTrace(label, prediction, traces) if record else None
