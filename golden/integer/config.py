"""The engine configuration: every width, shift, table size, seed and layer size of the hardware.

One frozen :class:`EngineConfig` configures the bit-exact integer model now and elaborates the
RTL later, so it holds plain ints, tuples and strings only. ``docs/numerics.md`` defines what
each field does; :meth:`EngineConfig.__post_init__` rejects any combination the datapath cannot
carry (an accumulator that could overflow, an operand wider than the multiplier, a shift that
would have to go the wrong way), naming the field.
"""

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace

from .lfsr import POLY32, is_primitive

__all__ = ["ACTIVATIONS", "BASES", "MODE_FIELDS", "ROUNDINGS", "RULES", "EngineConfig"]

RULES = ("lls", "lls-m", "drtp")
# "square": the phase's sign bit; "sin": the phase read through a quarter-wave sine table.
BASES = ("square", "sin")
ACTIVATIONS = ("relu", "hardtanh")
ROUNDINGS = ("nearest", "stochastic")
# What a run-time LLS mode sets (``EngineConfig.runtime_modes``): the constants of the LLS unit
# that differ between bases. Everything else (rule, lr_shift, formats) is shared by all modes.
MODE_FIELDS = ("basis", "temp_shift", "norm_guard")

# Fields that hold one value per layer (weights, shifts) and must be as long as ``layers`` - 1.
PER_LAYER = ("weight_bits", "weight_frac", "init_bits", "act_shift", "lr_shift")


@dataclass(frozen=True)
class EngineConfig:
    """A complete, self-validating description of the training engine.

    The field defaults are the tuned LLS configuration of a 64-128-10 network
    (``default_config("lls", "square", (64, 128, 10))``).

    Layer ``k`` (``0 <= k < L``, ``L = len(layers) - 1``) maps ``layers[k]`` inputs to
    ``layers[k + 1]`` outputs; the last layer is the classifier. Formats are written
    ``(bits, frac)``: an integer ``v`` stands for ``v / 2**frac``.

    Parameters
    ----------
    layers : tuple of int
        ``(inputs, hidden..., classes)``.
    rule : str
        Hidden-layer learning rule, one of :data:`RULES`.
    basis : str
        LLS basis, one of :data:`BASES` (unused by ``drtp``, which must leave it ``"square"``).
    runtime_modes : tuple of tuple
        LLS only: further modes the engine can switch to at run time (its ``LLS_MODE`` register),
        each ``(basis, temp_shift, norm_guard)`` (:data:`MODE_FIELDS`). Mode 0 is this
        configuration's own ``basis``, ``temp_shift``, ``norm_guard``; mode ``i`` is
        ``runtime_modes[i - 1]``, and :meth:`mode` gives its complete configuration (the golden
        model of a step in mode ``i`` is ``IntegerNetwork(config.mode(i))``). The engine then
        holds the sine table if any mode uses it. ``lr_shift`` is the updater's and shared by
        all modes; a run-time choice between LLS and DRTP is not built (``docs/architecture.md`` §5).
    activation : str
        Hidden non-linearity, one of :data:`ACTIVATIONS`.
    input_bits, input_frac : int
        Unsigned pixel format: ``0 .. 2**input_bits - 1`` standing for ``[0, 1)``.
    act_bits : int
        Hidden activation width: unsigned for ``relu``, two's complement for ``hardtanh``.
    acc_bits : int
        Accumulator width of the MAC lanes (32 for SB_MAC16).
    mult_bits : int
        Signed operand width of the multipliers (16 for SB_MAC16); every multiplier operand fits it.
    weight_bits, weight_frac : tuple of int
        Per layer: signed weight (and bias) width and its fraction bits.
    init_bits : tuple of int
        Per layer: initial weights are odd integers uniform in ``+-(2**init_bits - 1)`` from the LFSR.
    act_shift : tuple of int
        Per layer: accumulator -> activation (hidden layers) or -> logit (last layer) rounding shift.
    lr_shift : tuple of int
        Per layer: weight update ``round((delta * x) >> lr_shift)`` (the learning rate).
    logit_bits, logit_frac : int
        Signed logit format, in log2 units (the softmax works in base 2); the exp2 table has
        ``2**logit_frac`` entries.
    exp_bits : int
        exp2 table values are ``round(2**exp_bits * 2**(-j / 2**logit_frac))``.
    prob_frac : int
        Probabilities and errors ``e = p - y`` have ``prob_frac`` fraction bits.
    recip_shift : int
        The softmax reciprocal is ``floor(2**recip_shift / sum)``.
    delta_bits : int
        Signed width of every learning signal (``delta``, scaled errors, projection scalar).
    temp_shift : int
        LLS temperature as a shift: local logits are ``(z_hat . B_c) * 2**temp_shift`` log2 units.
    norm_index_bits, norm_bits, norm_guard : int
        LLS normaliser: the ``1/sqrt`` table is indexed by the parity of the leading-one position
        of ``||h||^2`` and the ``norm_index_bits`` bits below it, holds ``norm_bits``-fraction
        values, and raw logits are pre-shifted to keep ``norm_guard`` bits above that bound.
    delta_shift : int
        LLS: scaled errors are ``e * 2**delta_shift / ||h||``.
    projection : bool
        LLS: keep the ``(I - z_hat z_hat^T)`` projection of the normalisation's gradient.
    phase_bits : int
        Width of the basis phase accumulator.
    table_index_bits, table_bits : int
        ``sin`` basis: quarter-wave table of ``2**table_index_bits`` entries, ``table_bits`` signed.
    drtp_bits : int
        DRTP: LFSR bits per entry of ``B_k``; values are odd in ``+-(2**drtp_bits - 1)``.
    mod_bits, mod_frac, mod_init, mod_lr_shift : int
        LLS-M: signed modulation scalars ``m_c`` (``(mod_bits, mod_frac)``), their initial value
        and update shift.
    rounding : str
        Weight update rounding, one of :data:`ROUNDINGS`.
    lfsr_poly : int
        Feedback polynomial of every LFSR (bit ``i`` = coefficient of ``x**i``); must be primitive.
    init_seed, drtp_seed, round_seed : int
        LFSR seeds: weight initialisation, DRTP matrices, stochastic rounding.
    epochs : int
        Host side: training epochs of a run.
    lr_decay : tuple of int
        Host side: once each listed percentage of a run's samples has been trained, every
        ``lr_shift`` (and ``mod_lr_shift``) grows by 1 (the host rewrites the engine's
        learning-rate offset register between two samples; ``docs/numerics.md`` §12).
    """

    layers: tuple = (64, 128, 10)
    rule: str = "lls"
    basis: str = "square"
    runtime_modes: tuple = ()
    activation: str = "relu"
    input_bits: int = 8
    input_frac: int = 8
    act_bits: int = 8
    acc_bits: int = 32
    mult_bits: int = 16
    weight_bits: tuple = (16, 16)
    weight_frac: tuple = (13, 13)
    init_bits: tuple = (10, 9)
    act_shift: tuple = (15, 14)
    lr_shift: tuple = (12, 7)
    logit_bits: int = 12
    logit_frac: int = 5
    exp_bits: int = 14
    prob_frac: int = 12
    recip_shift: int = 28
    delta_bits: int = 16
    temp_shift: int = 1
    norm_index_bits: int = 3
    norm_bits: int = 10
    norm_guard: int = 8
    delta_shift: int = 7
    projection: bool = True
    phase_bits: int = 32
    table_index_bits: int = 6
    table_bits: int = 8
    drtp_bits: int = 4
    mod_bits: int = 16
    mod_frac: int = 12
    mod_init: int = 4096
    mod_lr_shift: int = 11
    rounding: str = "nearest"
    lfsr_poly: int = POLY32
    # Seeds with balanced bits: a sparse seed (e.g. 1) starts the stream with a run of zeros.
    init_seed: int = 0x9E3779B9
    drtp_seed: int = 0x7F4A7C15
    round_seed: int = 0x85EBCA6B
    epochs: int = 10
    lr_decay: tuple = (60, 80, 90, 95)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        # Modes come back from JSON as lists of lists.
        object.__setattr__(self, "runtime_modes", tuple(tuple(mode) if isinstance(mode, (list, tuple)) else mode
                                                        for mode in self.runtime_modes))
        self._validate()
        self._validate_runtime_modes()

    # -- derived formats -------------------------------------------------------------------------

    @property
    def n_layers(self):
        """Number of weight layers ``L`` (hidden layers + the classifier)."""
        return len(self.layers) - 1

    @property
    def n_classes(self):
        return self.layers[-1]

    @property
    def act_max(self):
        """Largest hidden activation; ``relu`` is unsigned, ``hardtanh`` symmetric signed."""
        if self.activation == "relu":
            return (1 << self.act_bits) - 1
        return (1 << (self.act_bits - 1)) - 1

    @property
    def act_min(self):
        return 0 if self.activation == "relu" else -self.act_max

    def in_max(self, k):
        """Largest ``|x|`` at the input of layer ``k``."""
        return (1 << self.input_bits) - 1 if k == 0 else max(self.act_max, -self.act_min)

    def in_frac(self, k):
        """Fraction bits of the input of layer ``k``."""
        return self.input_frac if k == 0 else self.out_frac(k - 1)

    def out_frac(self, k):
        """Fraction bits of layer ``k``'s output (activation, or logit for the last layer)."""
        return self.in_frac(k) + self.weight_frac[k] - self.act_shift[k]

    def update_product_max(self, k):
        """Largest ``|δ x|`` of layer ``k``'s update (the bias's input is ``2**bias_shift``)."""
        return (1 << (self.delta_bits - 1)) * max(self.in_max(k), 1 << self.bias_shift(k))

    @property
    def update_product_bits(self):
        """Signed width that holds every update product ``δ x`` (at most ``acc_bits``): the
        hardware keeps only these low bits of the accumulator's increments (``docs/numerics.md`` §10)."""
        worst = max(self.update_product_max(k) for k in range(self.n_layers))
        return min(self.acc_bits, worst.bit_length() + 1)

    def bias_shift(self, k):
        """Biases share the weights' format; ``b << bias_shift`` aligns them to the accumulator."""
        return self.in_frac(k)

    @property
    def basis_frac(self):
        """Fraction bits of a basis value: 0 for ``+-1``, ``table_bits - 1`` for the sine table."""
        return 0 if self.basis == "square" else self.table_bits - 1

    @property
    def basis_max(self):
        return 1 if self.basis == "square" else (1 << (self.table_bits - 1)) - 1

    @property
    def uses_basis(self):
        return self.rule in ("lls", "lls-m")

    # -- run-time modes ---------------------------------------------------------------------------

    @property
    def n_modes(self):
        """Run-time LLS modes: 1 (this configuration) + ``len(runtime_modes)``."""
        return 1 + len(self.runtime_modes)

    def mode(self, index):
        """The complete single-mode configuration of run-time mode ``index`` (0 = this one's own).

        Mode ``index`` of a multi-mode engine is bit for bit the engine of ``mode(index)``.
        """
        if not 0 <= index < self.n_modes:
            raise ValueError(f"EngineConfig.mode: no mode {index}; this configuration has {self.n_modes}")
        values = dict(zip(MODE_FIELDS, (self.basis, self.temp_shift, self.norm_guard)))
        if index:
            values.update(zip(MODE_FIELDS, self.runtime_modes[index - 1]))
        return replace(self, runtime_modes=(), **values)

    @property
    def hardware_basis(self):
        """The basis the LLS hardware is built for: ``"sin"`` if any mode uses the sine table
        (the square wave is its phase's sign bit, so a sine engine also runs square modes)."""
        used = {self.basis} | {mode[0] for mode in self.runtime_modes}
        return "sin" if "sin" in used else "square"

    # -- serialisation ----------------------------------------------------------------------------

    def to_dict(self):
        """Plain JSON-able dict (tuples become lists). An empty ``runtime_modes`` is left out, so a
        single-mode configuration keeps the digest it had before the field existed."""
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        data["runtime_modes"] = [list(mode) for mode in self.runtime_modes]
        if not self.runtime_modes:
            del data["runtime_modes"]
        return data

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"EngineConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def digest(self):
        """sha256 of the canonical JSON: the configuration hash shared by model, RTL and reports."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    # -- validation -------------------------------------------------------------------------------

    def _validate(self):
        def fail(field, message):
            raise ValueError(f"EngineConfig.{field}: {message}")

        def need(condition, field, message):
            if not condition:
                fail(field, message)

        def fits(value, bits):
            return abs(value) <= (1 << (bits - 1)) - 1

        need(len(self.layers) >= 2 and all(isinstance(v, int) and v > 0 for v in self.layers),
             "layers", f"needs at least inputs and classes, all positive integers, got {self.layers}")
        need(self.layers[-1] >= 2, "layers", f"needs at least 2 classes, got {self.layers[-1]}")
        need(self.rule in RULES, "rule", f"unknown rule {self.rule!r}; choose one of {', '.join(RULES)}")
        need(self.basis in BASES, "basis", f"unknown basis {self.basis!r}; choose one of {', '.join(BASES)}")
        need(self.uses_basis or self.basis == "square", "basis",
             f"rule {self.rule!r} uses no basis; leave it 'square'")
        need(self.activation in ACTIVATIONS, "activation",
             f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        need(self.rounding in ROUNDINGS, "rounding",
             f"unknown rounding {self.rounding!r}; choose one of {', '.join(ROUNDINGS)}")
        for name in PER_LAYER:
            value = getattr(self, name)
            need(isinstance(value, tuple) and len(value) == self.n_layers
                 and all(isinstance(v, int) for v in value), name,
                 f"needs one integer per layer ({self.n_layers} for layers={self.layers}), got {value}")

        M = self.mult_bits
        need(8 <= M <= 32, "mult_bits", f"must be 8..32, got {M}")
        need(self.acc_bits <= 62, "acc_bits", f"must be <= 62 (int64 model), got {self.acc_bits}")
        need(1 <= self.input_bits and self.input_bits + 1 <= M, "input_bits",
             f"unsigned inputs need input_bits + 1 <= mult_bits={M}, got {self.input_bits}")
        need(0 <= self.input_frac <= 16, "input_frac", f"must be 0..16, got {self.input_frac}")
        operand = self.act_bits + (1 if self.activation == "relu" else 0)
        need(2 <= self.act_bits and operand <= M, "act_bits",
             f"a {self.activation} activation of {self.act_bits} bits needs {operand} signed bits > mult_bits={M}")
        need(2 <= self.delta_bits <= M, "delta_bits", f"must be 2..mult_bits={M}, got {self.delta_bits}")

        for k in range(self.n_layers):
            wb, fan_in = self.weight_bits[k], self.layers[k]
            need(2 <= wb <= M, "weight_bits", f"layer {k}: {wb} bits, must be 2..mult_bits={M}")
            need(1 <= self.init_bits[k] < wb, "init_bits",
                 f"layer {k}: {self.init_bits[k]} must be 1..weight_bits-1={wb - 1}")
            need(self.act_shift[k] >= 1, "act_shift", f"layer {k}: must be >= 1, got {self.act_shift[k]}")
            need(self.out_frac(k) >= 0, "act_shift",
                 f"layer {k}: {self.act_shift[k]} exceeds in_frac + weight_frac = "
                 f"{self.in_frac(k) + self.weight_frac[k]} (negative output fraction)")
            need(self.weight_frac[k] >= 0, "weight_frac", f"layer {k}: must be >= 0")
            # Worst case |W x + (b << bias_shift)|: every weight and the bias at -2**(wb-1).
            worst = (1 << (wb - 1)) * (fan_in * self.in_max(k) + (1 << self.bias_shift(k)))
            need(fits(worst, self.acc_bits), "acc_bits",
                 f"{self.acc_bits} bits too narrow for layer {k}: fan-in {fan_in} x |x| <= {self.in_max(k)} "
                 f"x |w| <= 2**{wb - 1} (+ bias) reaches {worst}, needing {worst.bit_length() + 1} bits; "
                 f"narrow weight_bits[{k}] or widen acc_bits")
            need(0 <= self.lr_shift[k] <= self.acc_bits, "lr_shift",
                 f"layer {k}: must be 0..acc_bits={self.acc_bits}, got {self.lr_shift[k]}")
            need(fits(self.update_product_max(k), self.acc_bits),
                 "delta_bits", f"layer {k}: delta x input product exceeds acc_bits")

        need(2 <= self.logit_bits <= M, "logit_bits", f"must be 2..mult_bits={M}, got {self.logit_bits}")
        need(1 <= self.logit_frac < self.logit_bits, "logit_frac",
             f"must be 1..logit_bits-1={self.logit_bits - 1}, got {self.logit_frac}")
        need(self.logit_frac <= 8, "logit_frac", f"exp2 table of 2**{self.logit_frac} entries is too big (max 8)")
        need(1 <= self.exp_bits <= M - 2, "exp_bits", f"must be 1..mult_bits-2={M - 2}, got {self.exp_bits}")
        need(1 <= self.prob_frac and self.prob_frac + 1 <= self.delta_bits - 1, "prob_frac",
             f"errors of {self.prob_frac} fraction bits need delta_bits >= prob_frac + 2")
        need(self.recip_shift > self.prob_frac, "recip_shift",
             f"must exceed prob_frac={self.prob_frac}, got {self.recip_shift}")
        need(self.recip_shift - self.exp_bits <= M - 2, "recip_shift",
             f"reciprocal up to 2**{self.recip_shift - self.exp_bits} does not fit mult_bits={M}")
        need(self.recip_shift <= self.acc_bits - 1, "recip_shift", f"must be < acc_bits={self.acc_bits}")

        need(is_primitive(self.lfsr_poly), "lfsr_poly", f"{self.lfsr_poly:#x} is not a primitive polynomial")
        width = self.lfsr_poly.bit_length() - 1
        for name in ("init_seed", "drtp_seed", "round_seed"):
            seed = getattr(self, name)
            need(isinstance(seed, int) and 0 < seed < (1 << width), name,
                 f"LFSR seed must be 1..2**{width}-1, got {seed}")
        need(self.rounding == "nearest" or max(self.lr_shift) + len(self.lr_decay) <= width, "rounding",
             f"stochastic rounding of {max(self.lr_shift) + len(self.lr_decay)} bits needs a wider LFSR than {width}")

        need(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        need(all(isinstance(e, int) for e in self.lr_decay) and list(self.lr_decay) == sorted(set(self.lr_decay))
             and all(1 <= e <= 99 for e in self.lr_decay), "lr_decay",
             f"must be increasing percentages of a run in 1 .. 99, got {self.lr_decay}")
        worst_lr = max(self.lr_shift) + len(self.lr_decay)
        need(worst_lr <= self.acc_bits, "lr_decay", f"lr_shift + decays reaches {worst_lr} > acc_bits")
        if self.rule == "drtp":
            need(1 <= self.drtp_bits <= self.delta_bits - 1, "drtp_bits",
                 f"must be 1..delta_bits-1={self.delta_bits - 1}, got {self.drtp_bits}")
        if not self.uses_basis:
            return
        need(8 <= self.phase_bits <= 40, "phase_bits", f"must be 8..40, got {self.phase_bits}")
        need(1 <= self.table_index_bits and self.table_index_bits + 2 <= self.phase_bits, "table_index_bits",
             f"must be 1..phase_bits-2, got {self.table_index_bits}")
        need(self.table_index_bits <= 10, "table_index_bits", f"table of 2**{self.table_index_bits} is too big (max 10)")
        need(3 <= self.table_bits <= M, "table_bits", f"must be 3..mult_bits={M}, got {self.table_bits}")
        need(0 <= self.norm_index_bits <= 6, "norm_index_bits", f"must be 0..6, got {self.norm_index_bits}")
        need(1 <= self.norm_bits <= M - 2, "norm_bits", f"must be 1..mult_bits-2={M - 2}, got {self.norm_bits}")
        need(0 <= self.temp_shift <= 4, "temp_shift", f"must be 0..4, got {self.temp_shift}")
        need(self.norm_bits + self.basis_frac >= self.temp_shift + self.logit_frac, "norm_bits",
             "norm_bits + basis_frac must be >= temp_shift + logit_frac (the logit shift would go left)")
        need(0 <= self.delta_shift <= self.norm_bits, "delta_shift",
             f"must be 0..norm_bits={self.norm_bits}, got {self.delta_shift}")
        need(self.prob_frac + 1 + self.norm_bits + 1 <= 2 * M - 1, "norm_bits",
             "error x 1/sqrt product exceeds the multiplier")
        for k in range(self.n_layers - 1):
            n = self.layers[k + 1]
            need(fits(n * self.act_max ** 2, self.acc_bits), "acc_bits",
                 f"layer {k}: ||h||^2 of {n} activations exceeds acc_bits={self.acc_bits}")
            # Cauchy-Schwarz: |h . B_c| <= ||h|| sqrt(N) max|B| < 2**(e2 + 1) sqrt(N) max|B|, so the
            # raw logit pre-shifted by e2 - norm_guard is below 2**(norm_guard + 1) sqrt(N) max|B|.
            ceil_sqrt_n = math.isqrt(n - 1) + 1
            bound = (1 << (self.norm_guard + 1)) * ceil_sqrt_n * self.basis_max + 1
            need(fits(bound, M), "norm_guard",
                 f"layer {k}: {self.norm_guard} guard bits let the pre-shifted logit reach {bound}, "
                 f"beyond mult_bits={M}")
        if self.rule == "lls-m":
            need(2 <= self.mod_bits <= M and 0 <= self.mod_frac < self.mod_bits, "mod_bits",
                 f"modulation format ({self.mod_bits}, {self.mod_frac}) invalid for mult_bits={M}")
            need(fits(self.mod_init, self.mod_bits), "mod_init", f"{self.mod_init} does not fit mod_bits")
            need(self.mod_lr_shift >= 1, "mod_lr_shift", f"must be >= 1, got {self.mod_lr_shift}")

    def _validate_runtime_modes(self):
        modes = self.runtime_modes
        if not modes:
            return

        def fail(message):
            raise ValueError(f"EngineConfig.runtime_modes: {message}")

        if not self.uses_basis:
            fail(f"rule {self.rule!r} has no run-time modes: they select an LLS basis, and a run-time "
                 f"switch between LLS and DRTP is not built (docs/architecture.md, section 5)")
        own = (self.basis, self.temp_shift, self.norm_guard)
        for i, mode in enumerate(modes, start=1):
            if not (isinstance(mode, tuple) and len(mode) == len(MODE_FIELDS)):
                fail(f"mode {i} must be ({', '.join(MODE_FIELDS)}), got {mode!r}")
            basis, temp_shift, norm_guard = mode
            if basis not in BASES:
                fail(f"mode {i}: unknown basis {basis!r}; a mode selects one of {', '.join(BASES)} "
                     f"(a run-time switch between LLS and DRTP is not built)")
            if not (isinstance(temp_shift, int) and isinstance(norm_guard, int)):
                fail(f"mode {i}: temp_shift and norm_guard must be integers, got {mode!r}")
            if mode == own or mode in modes[:i - 1]:
                fail(f"mode {i} {mode!r} repeats an earlier mode")
            try:
                self.mode(i)
            except ValueError as error:
                fail(f"mode {i} {mode!r} is invalid: {error}")
