"""The LLS (and LLS-M) learning signal of one hidden layer (``docs/numerics.md`` §7, §8)."""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .basis_generator import BasisGenerator
from .fixed import round_shift, round_shift_var, rounding_half, saturate, select, signed_width, write_element
from .normaliser import Normaliser
from .pipelined_multiplier import MULTIPLIERS, PipelinedMultiplier, fits_mult18x18d
from .softmax_error import SoftmaxError

__all__ = ["LLSLearningSignal"]


def elements(array):
    """The elements of an array view, as a list."""
    return [array[i] for i in range(len(array))]


class _Op(enum.Enum, shape=4):
    """What a product in the shared multiplier pipeline is for (decides its write-back)."""
    NONE = 0
    LOGIT = 1       # s0_c = sat(rnd(rnd(r_c, pre) R, post))
    MODLOGIT = 2    # LLS-M: s_c = sat(rnd(s0_c m_c, mod_frac))
    EMOD = 3        # LLS-M: e'_c = rnd(e_c m_c, mod_frac)
    MODUPD = 4      # LLS-M: m_c = sat(m_c - rnd(e_c s0_c, mod_lr_shift))
    SCALE = 5       # eps_c = sat(rnd(e_c R, norm_bits + e2 - delta_shift))
    SIGMA = 6       # sigma = sat(rnd(sum_c eps_c s0_c, temp_shift + logit_frac))
    KAPPA = 7       # kappa = sat(rnd(sigma R, norm_bits))
    DELTA = 8       # delta_n = sat(g_n - rnd(h_n kappa, e2)) f'_n


class LLSLearningSignal(wiring.Component):
    """``δ`` of LLS hidden layer ``k``, bit for bit ``IntegerNetwork._lls_delta`` of :mod:`golden.integer.network`.

    **Step protocol.** A ``start`` pulse while idle (``busy = 0``) begins a step: it samples
    ``label`` (and ``mode``, ``lr_offset``), clears the accumulators and restarts the basis generator (a ``start`` while busy
    is ignored). Then:

    1. *Pass 1*: exactly ``N`` transfers on ``h`` (neuron order, ``fprime`` ignored), one per
       cycle at best (``h.ready`` rises 1 cycle after ``start`` for the square basis, 2 for the
       sine basis, whose table read is a pipeline stage; one per ``C`` cycles with
       ``basis_lanes="serial"``). Each accumulates ``r_c += B[c, n] h_n`` for every class and
       ``S += h_n²``.
    2. *Compute* (``h.ready = 0``): normaliser, local logits, softmax/error (own
       :class:`~rtl.softmax_error.SoftmaxError`), scaled errors ``ε``, ``σ``, ``κ`` (and the
       LLS-M products), every scalar product through one shared, 2-stage pipelined multiplier,
       one class per cycle. It starts once the previous step's pass-2 products have left the
       multiplier pipeline (at once unless the consumer of ``delta`` stalls).
       :attr:`compute_cycles` long: ``3 C + 18 + SoftmaxError.latency`` = ``6 C + 35`` with
       the defaults (95 for ``C = 10``; LLS-M ``3 C + 9`` more; no projection ``C + 7`` fewer).
       If ``S = 0`` it skips everything after the normaliser (3 cycles).
    3. *Pass 2*: exactly ``N`` more transfers on ``h`` (the same activations and their ``f'``, in
       neuron order); ``h.ready`` stays low until the unit is ready for them. ``δ_n`` is in
       the ``delta`` output register 2 clock edges after its ``h`` transfer, so it can be taken
       at the 3rd edge (``C + 2`` and ``C + 3`` with ``basis_lanes="serial"``; an edge later each
       with ``writeback_reg``, ``saturate_reg``, ``operand_reg`` and ``round_reg``) (pipeline:
       ``g_n`` and the ``h_n κ`` operands;
       the product; the rounding, subtraction and saturation into the output register), one per
       cycle, in order; the whole pipeline stalls while ``delta`` is not taken
       (``h.ready`` requires ``~delta.valid | delta.ready``). ``δ = 0`` everywhere when
       ``S = 0``. After the ``N``-th transfer (serial lanes: ``C - 1`` cycles later, when its
       last class is done) the unit is idle (``busy = 0``) and a new ``start`` may come at once;
       up to 3 ``δ`` of the old step (one more each with ``writeback_reg``, ``saturate_reg``,
       ``operand_reg`` and ``round_reg``) may still be in flight and are delivered first.

    **Trace registers.** ``raw_logits`` and ``S`` are cleared by ``start`` and accumulate during
    pass 1; the others are written during compute (``probs``/``errors`` are the softmax unit's
    own output register) and hold until the next step's compute phase rewrites them.
    ``trace_valid`` rises when compute is complete and falls at the next ``start``; while it is
    high every trace register holds this step's value. When ``zero = 1`` (``S = 0``) only
    ``raw_logits`` (all zero), ``S`` and ``zero`` are meaningful (the model records nothing else).

    **Run-time modes.** With ``runtime_modes``, mode 0 is ``(basis, temp_shift, norm_guard)``
    and mode ``i`` is ``runtime_modes[i - 1]``, chosen per step by ``mode``. The unit is built for
    the sine basis if any mode uses it (:attr:`hardware_basis`); a square mode then reads the
    generator's sign bit (``BasisGenerator(runtime_square=True)``) through the same multipliers
    (``±1`` products are exact), so a square mode runs at the sine timing. The per-mode constants
    (``basis_frac``, ``temp_shift``, ``norm_guard``) are a small multiplexer each; the σ rounding
    becomes a variable shift when the modes' ``temp_shift`` differ.

    **Arithmetic.** With ``basis_lanes="parallel"``: square basis, pass 1 is one add/subtract cell
    per class (``r_c ± h_n``), pass 2 a tree of ``C - 1`` add/subtract nodes for ``g_n``, no
    multiplier; sine basis, ``C`` multipliers (``table_bits`` × ``delta_bits``), shared by both
    passes, and an adder tree. With ``"serial"``: one add/subtract (square) or one multiplier
    (sine) and one accumulator. Besides: one ``h²`` multiplier (pass 1), the shared scalar
    multiplier (compute, and ``h_n κ`` in pass 2) and the softmax unit's: 3 multipliers for the
    square basis, ``C + 3`` (parallel) or 4 (serial) for the sine basis.

    Parameters
    ----------
    n_classes, n_neurons : int
        ``C`` and ``N = N_k``.
    act_shape : ShapeLike
        ``unsigned(act_bits)`` (ReLU) or ``signed(act_bits)`` (hardtanh).
    act_max : int
        Largest ``|h|``.
    basis : str
        ``"square"`` or ``"sin"``; with ``phase_bits``, ``table_index_bits``, ``table_bits``
        as for :class:`~rtl.basis_generator.BasisGenerator`.
    mult_bits : int
        Signed operand width of the shared multiplier.
    logit_bits, logit_frac, exp_bits, prob_frac, recip_shift : int
        Softmax formats (:class:`~rtl.softmax_error.SoftmaxError`).
    delta_bits, temp_shift, norm_index_bits, norm_bits, norm_guard, delta_shift : int
        As in :class:`~golden.integer.config.EngineConfig`.
    projection : bool
        Keep the ``(I - ẑẑᵀ)`` projection (``σ``, ``κ``, ``P_n``).
    modulation : bool
        LLS-M (§8), with ``mod_bits``, ``mod_frac``, ``mod_init``, ``mod_lr_shift``.
    max_lr_offset : int
        LLS-M: largest value of the ``lr_offset`` input (``len(lr_decay)``).
    runtime_modes : tuple of (str, int, int)
        Further ``(basis, temp_shift, norm_guard)`` modes selectable by ``mode``
        (:attr:`~golden.integer.config.EngineConfig.runtime_modes`).
    basis_lanes : str
        ``"parallel"`` (default): all ``C`` classes of a neuron in one cycle, one ``h`` transfer
        per cycle in both passes. ``"serial"``: one class per cycle through one lane (one
        multiplier for the sine basis instead of ``C``), so each pass takes ``C`` cycles per
        neuron (``h.ready`` rises every ``C`` cycles; δ is issued with the neuron's last class).
        An area option, chiefly for the sine basis on the iCE40 (8 DSPs).
    writeback_reg : bool
        For fabric arithmetic (ECP5): a third stage in the shared multiplier pipeline, which
        registers the rounding shift before the subtraction, saturation and write-back (one 22 ns
        path at 64 lanes on the ULX3S), so every product takes a cycle more (``δ_n`` 3 edges
        after its ``h``, :attr:`compute_cycles` one more per product loop); and with parallel
        square-basis lanes the pass-2 ``g_n`` tree is cut by the stage-1 register after two of
        its levels (its root, negation and rounding before stage 2); and the unit's own softmax
        has its product register (:class:`~rtl.softmax_error.SoftmaxError` ``product_reg``, a
        cycle more of its latency) and reads its logits from a rotating ring (``ring``). Same
        results.
    pass1_reg : bool
        For fabric arithmetic (ECP5) too: pass 1 accumulates from registers, not from the
        ``h`` port: ``h_n`` (and with parallel square-basis lanes its basis column) is
        registered at its transfer, ``r_c`` adds from the register, ``h_n²`` is registered from
        it and ``S`` adds that (the requantiser's output, a multiplier and a 24-bit adder were
        one 15 ns path at 64 lanes on the ULX3S). The compute phase waits the 2 cycles for them;
        and the normaliser has two stages (:class:`~rtl.normaliser.Normaliser` ``stages``), a
        cycle more (:attr:`compute_cycles` and :attr:`zero_cycles` 3 more in all). Same results.
    saturate_reg : bool
        With ``writeback_reg``: a fourth stage in the shared multiplier pipeline, holding the
        subtraction's saturated result before the write-back's element multiplexers
        (``scaled_errors`` and ``delta`` were 14 ns paths at 64 lanes on the ULX3S), so every
        product takes a cycle more again (``δ_n`` 4 edges after its ``h``; :attr:`compute_cycles`
        one more per product loop). Same results.
    operand_reg : bool
        For ECP5 too: a stage 0 in front of the shared multiplier, which registers the issued
        operands (and what travels with them) in the fabric, so the operand selection (a class
        read, the variable shift of ``r_c``, the operand multiplexer; ``h_n`` from the port in
        pass 2) does not end at the DSP block's input register across the die (a 14.2 ns path at
        64 lanes on the ULX3S). With the ``g_n`` tree cut, its partial nodes are stage 0 and
        stage 1 holds the tree's root and its sign (the negation is beside the rounding into
        stage 2). And the local logits' first operands, ``rnd(r_c, pre)``, are registered for
        every class (each shifted by a copy of its own of ``pre``) in a cycle of their own before
        the loop, which then only selects one (the class multiplexer and the variable shift were
        still 14 ns into stage 0). With ``writeback_reg`` the product's rounding term is decoded
        from the shift a stage ahead. Every product takes a cycle more (``δ_n`` one edge later;
        :attr:`compute_cycles` one more per product loop, and one for the shifts). Same
        results.
    round_reg : bool
        With ``writeback_reg``: the product's rounding in two stages, its adder (the product plus
        the rounding term) registered before its variable shifter, so every product takes a cycle
        more again (``δ_n`` one edge later; :attr:`compute_cycles` one more per product loop).
        Same results.
    dsp : {"inferred", "mult18x18d"}
        The shared multiplier's operand and product registers (stages 1 and 2) and the
        multiplier between them as Yosys infers them, or one instantiated ECP5 MULT18X18D
        holding both (:class:`~rtl.pipelined_multiplier.PipelinedMultiplier`) where the operands
        fit it (18-bit signed; else inferred, see :attr:`dsp`). The same cycles.

    Members
    -------
    label : In(unsigned(ceil_log2(C) or 1))
        ``c*``, sampled with ``start``.
    mode : In(range(n_modes))
        With ``runtime_modes`` only: the step's mode, sampled with ``start``.
    lr_offset : In(range(max_lr_offset + 1))
        LLS-M only: the learning-rate offset ``o`` of numerics §12, sampled with ``start``; the
        modulation update shifts by ``mod_lr_shift + o``.
    start : In(1)
        Begin a step (while idle).
    h : In(stream.Signature(data.StructLayout({"h": act_shape, "fprime": 1})))
        Pass 1 then pass 2, ``N`` transfers each, neuron order.
    delta : Out(stream.Signature(signed(delta_bits)))
        ``δ_n`` in neuron order, one per pass-2 transfer.
    busy : Out(1)
        From ``start`` to the last pass-2 ``h`` transfer.
    trace_valid : Out(1)
        The compute-phase trace registers hold this step's values.
    raw_logits : Out(data.ArrayLayout(signed(raw_bits), C))
        ``r_c = Σ_n B[c, n] h_n``.
    S : Out(unsigned(square_bits))
        ``Σ_n h_n²``.
    zero : Out(1)
        ``S = 0``.
    e2 : Out(unsigned(e2_bits))
        Half the leading-one position of ``S``.
    R : Out(unsigned(norm_bits))
        The ``1/sqrt`` table entry.
    logits : Out(data.ArrayLayout(signed(logit_bits), C))
        The softmax input (LLS-M: after modulation).
    probs, errors : Out(data.ArrayLayout(signed(prob_frac + 2), C))
        The softmax unit's output (errors before LLS-M's modulation).
    scaled_errors : Out(data.ArrayLayout(signed(delta_bits), C))
        ``ε_c``.
    sigma, kappa : Out(signed(delta_bits))
        Projection scalars (0 without projection).
    local_logits : Out(data.ArrayLayout(signed(logit_bits), C))
        LLS-M only: the unmodulated logits ``s⁰``.
    modulation : Out(data.ArrayLayout(signed(mod_bits), C))
        LLS-M only: ``m``, reset to ``mod_init``, updated once per step (after the softmax).
    """

    def __init__(self, n_classes, n_neurons, *, act_shape=unsigned(8), act_max=255, basis="square",
                 phase_bits=32, table_index_bits=6, table_bits=8, mult_bits=16,
                 logit_bits=12, logit_frac=5, exp_bits=14, prob_frac=12, recip_shift=28,
                 delta_bits=16, temp_shift=1, norm_index_bits=3, norm_bits=10, norm_guard=8,
                 delta_shift=7, projection=True, modulation=False, mod_bits=16, mod_frac=12,
                 mod_init=4096, mod_lr_shift=20, basis_lanes="parallel", max_lr_offset=0, runtime_modes=(),
                 writeback_reg=False, pass1_reg=False, saturate_reg=False, operand_reg=False,
                 round_reg=False, dsp="inferred"):
        if n_classes < 2 or n_neurons < 1:
            raise ValueError(f"LLSLearningSignal needs C >= 2 and N >= 1, got {n_classes}, {n_neurons}")
        if basis_lanes not in ("parallel", "serial"):
            raise ValueError(f"LLSLearningSignal basis_lanes must be 'parallel' or 'serial', got {basis_lanes!r}")
        self.basis_lanes = basis_lanes
        self.serial = basis_lanes == "serial"
        self.writeback_reg = bool(writeback_reg)
        self.pass1_reg = bool(pass1_reg)
        if saturate_reg and not writeback_reg:
            raise ValueError("LLSLearningSignal: saturate_reg needs writeback_reg")
        self.saturate_reg = bool(saturate_reg)
        self.operand_reg = bool(operand_reg)
        if round_reg and not writeback_reg:
            raise ValueError("LLSLearningSignal: round_reg needs writeback_reg")
        self.round_reg = bool(round_reg)
        if dsp not in MULTIPLIERS:
            raise ValueError(f"LLSLearningSignal: dsp must be one of {MULTIPLIERS}, got {dsp!r}")
        self.dsp = dsp
        #: Cycles after pass 1's last transfer until ``S`` (and ``r_c``) hold its last term.
        self.pass1_drain = 2 if pass1_reg else 0
        self.n_classes = C = n_classes
        self.n_neurons = N = n_neurons
        self.act_shape = act_shape
        self.act_max = act_max
        #: Every mode's ``(basis, temp_shift, norm_guard)``; mode 0 is the parameters' own.
        self.modes = [(basis, temp_shift, norm_guard)] + [tuple(mode) for mode in runtime_modes]
        for mode_basis, _, _ in self.modes:
            if mode_basis not in ("square", "sin"):
                raise ValueError(f"LLSLearningSignal basis must be 'square' or 'sin', got {mode_basis!r}")
        #: The basis the datapath is built for: the sine table serves the square modes too.
        self.hardware_basis = "sin" if any(mode[0] == "sin" for mode in self.modes) else "square"
        self.basis = basis
        self.phase_bits = phase_bits
        self.table_index_bits = table_index_bits
        self.table_bits = table_bits
        self.mult_bits = mult_bits
        self.logit_bits = logit_bits
        self.logit_frac = logit_frac
        self.exp_bits = exp_bits
        self.prob_frac = prob_frac
        self.recip_shift = recip_shift
        self.delta_bits = delta_bits
        self.temp_shift = temp_shift
        self.norm_index_bits = norm_index_bits
        self.norm_bits = norm_bits
        self.norm_guard = norm_guard
        self.delta_shift = delta_shift
        self.projection = projection
        self.lls_m = modulation
        self.mod_bits = mod_bits
        self.mod_frac = mod_frac
        self.mod_init = mod_init
        self.mod_lr_shift = mod_lr_shift
        if max_lr_offset < 0:
            raise ValueError(f"LLSLearningSignal: max_lr_offset must be >= 0, got {max_lr_offset}")
        self.max_lr_offset = max_lr_offset

        sine_frac = table_bits - 1
        #: Per mode: the basis's fraction bits, the logit shift without e2, the guard, the σ shift.
        self.mode_basis_frac = [0 if b == "square" else sine_frac for b, _, _ in self.modes]
        self.mode_post_base = [norm_bits + frac - t - logit_frac
                               for frac, (_, t, _) in zip(self.mode_basis_frac, self.modes)]
        self.mode_norm_guard = [g for _, _, g in self.modes]
        self.mode_sigma_shift = [t + logit_frac for _, t, _ in self.modes]
        self.basis_frac = self.mode_basis_frac[0]
        self.post_base = self.mode_post_base[0]
        self.basis_max = 1 if self.hardware_basis == "square" else (1 << (table_bits - 1)) - 1
        bound = N * self.basis_max * act_max
        self.raw_bits = signed_width(-bound, bound)
        self.square_bits = max(1, (N * act_max * act_max).bit_length())
        if min(self.mode_post_base) < 0:
            raise ValueError("LLSLearningSignal: norm_bits + basis_frac must be >= temp_shift + logit_frac")
        if min(self.mode_norm_guard) < 0:
            raise ValueError(f"LLSLearningSignal: norm_guard must be >= 0, got {self.mode_norm_guard}")
        if not 0 <= delta_shift <= norm_bits:
            raise ValueError(f"LLSLearningSignal: delta_shift={delta_shift} must be 0..norm_bits")
        self.prob_shape = signed(prob_frac + 2)
        self.operand_bits = mult_bits
        if modulation:
            # e' = rnd(e m, mod_frac) is an operand of the scaled-error product. Its extremes
            # (e = -2**prob_frac, m = -2**(mod_bits-1)) can need one bit more than mult_bits,
            # which EngineConfig does not check: widen that operand rather than differ from the model.
            e_low, e_high = -(1 << prob_frac), 1 << prob_frac
            m_low, m_high = -(1 << (mod_bits - 1)), (1 << (mod_bits - 1)) - 1
            corners = [(e * mv + (1 << (mod_frac - 1) if mod_frac else 0)) >> mod_frac
                       for e in (e_low, e_high) for mv in (m_low, m_high)]
            self.emod_bits = signed_width(min(corners), max(corners))
            self.operand_bits = max(mult_bits, self.emod_bits)
        if not fits_mult18x18d(signed(self.operand_bits), signed(self.operand_bits)):
            self.dsp = "inferred"      # (LLS-M's widened operand can outgrow it)
        self._normaliser = Normaliser(self.square_bits, norm_index_bits=norm_index_bits, norm_bits=norm_bits,
                                      stages=2 if self.pass1_reg else 1)
        # Its own softmax takes the product register (and the DSP) with the write-back register.
        self._softmax = SoftmaxError(C, logit_bits=logit_bits, logit_frac=logit_frac, exp_bits=exp_bits,
                                     prob_frac=prob_frac, recip_shift=recip_shift, hold_input=True,
                                     product_reg=self.writeback_reg, dsp=dsp if self.writeback_reg else "inferred",
                                     ring="registers" if self.writeback_reg else None)
        self._basis = BasisGenerator(C, phase_bits, self.hardware_basis, table_index_bits, table_bits,
                                     runtime_square=self.hardware_basis == "sin"
                                     and any(mode[0] == "square" for mode in self.modes))
        self.e2_bits = self._normaliser.e2_bits
        self.label_shape = unsigned(ceil_log2(C) or 1)
        iterations = [C] * (2 + (3 if modulation else 0) + (1 if projection else 0)) + ([1] if projection else [])
        #: Cycles of the compute phase when nothing stalls and ``S != 0``: from the clock edge of the
        #: last pass-1 transfer to the first cycle in which ``h.ready`` can be high for pass 2
        #: (square basis; one more for the sine basis). Each product loop is ``iterations + 3``
        #: (one more each with ``writeback_reg``, ``saturate_reg``, ``operand_reg`` and ``round_reg``).
        self.compute_cycles = (5 + self.operand_reg
                               + sum(i + 3 + self.writeback_reg + self.saturate_reg + self.operand_reg
                                     + self.round_reg for i in iterations)
                               + self._softmax.latency
                               + self.pass1_drain + self._normaliser.latency - 1)
        #: The same when ``S = 0`` (normaliser only).
        self.zero_cycles = 3 + self.pass1_drain + self._normaliser.latency - 1
        members = {
            "label": In(self.label_shape),
            "start": In(1),
            "h": In(stream.Signature(data.StructLayout({"h": act_shape, "fprime": 1}))),
            "delta": Out(stream.Signature(signed(delta_bits))),
            "busy": Out(1),
            "trace_valid": Out(1),
            "raw_logits": Out(data.ArrayLayout(signed(self.raw_bits), C)),
            "S": Out(unsigned(self.square_bits)),
            "zero": Out(1),
            "e2": Out(unsigned(self.e2_bits)),
            "R": Out(unsigned(norm_bits)),
            "logits": Out(data.ArrayLayout(signed(logit_bits), C)),
            "probs": Out(data.ArrayLayout(self.prob_shape, C)),
            "errors": Out(data.ArrayLayout(self.prob_shape, C)),
            "scaled_errors": Out(data.ArrayLayout(signed(delta_bits), C)),
            "sigma": Out(signed(delta_bits)),
            "kappa": Out(signed(delta_bits)),
        }
        if len(self.modes) > 1:
            members["mode"] = In(range(len(self.modes)))
        if modulation:
            members["lr_offset"] = In(range(max_lr_offset + 1))
            members["local_logits"] = Out(data.ArrayLayout(signed(logit_bits), C))
            members["modulation"] = Out(data.ArrayLayout(signed(mod_bits), C), init=[mod_init] * C)
        super().__init__(members)

    @classmethod
    def from_config(cls, config, layer, basis_lanes="parallel", writeback_reg=False, pass1_reg=False,
                    saturate_reg=False, operand_reg=False, round_reg=False, dsp="inferred"):
        """The unit of LLS hidden layer ``layer`` of an :class:`~golden.integer.config.EngineConfig`
        (with its ``runtime_modes``; ``lr_offset`` up to ``len(lr_decay)``)."""
        if not config.uses_basis:
            raise ValueError(f"LLSLearningSignal needs rule lls or lls-m, got {config.rule!r}")
        if not 0 <= layer < config.n_layers - 1:
            raise ValueError(f"LLSLearningSignal: layer {layer} is not a hidden layer of {config.layers}")
        act_shape = unsigned(config.act_bits) if config.activation == "relu" else signed(config.act_bits)
        return cls(config.n_classes, config.layers[layer + 1], act_shape=act_shape,
                   act_max=config.act_max, basis=config.basis, phase_bits=config.phase_bits,
                   table_index_bits=config.table_index_bits, table_bits=config.table_bits,
                   mult_bits=config.mult_bits, logit_bits=config.logit_bits,
                   logit_frac=config.logit_frac, exp_bits=config.exp_bits, prob_frac=config.prob_frac,
                   recip_shift=config.recip_shift, delta_bits=config.delta_bits,
                   temp_shift=config.temp_shift, norm_index_bits=config.norm_index_bits,
                   norm_bits=config.norm_bits, norm_guard=config.norm_guard,
                   delta_shift=config.delta_shift, projection=config.projection,
                   modulation=config.rule == "lls-m", mod_bits=config.mod_bits,
                   mod_frac=config.mod_frac, mod_init=config.mod_init,
                   mod_lr_shift=config.mod_lr_shift, basis_lanes=basis_lanes,
                   max_lr_offset=len(config.lr_decay), runtime_modes=config.runtime_modes,
                   writeback_reg=writeback_reg, pass1_reg=pass1_reg, saturate_reg=saturate_reg,
                   operand_reg=operand_reg, round_reg=round_reg, dsp=dsp)

    def elaborate(self, platform):
        m = Module()
        C, N, M = self.n_classes, self.n_neurons, self.operand_bits
        m.submodules.normaliser = norm = self._normaliser
        m.submodules.softmax = softmax = self._softmax
        m.submodules.basis = basis = self._basis
        column = basis.o.payload

        label = Signal(self.label_shape)
        neuron = Signal(range(N))
        count = Signal(range(C))

        # -- the step's mode and learning-rate offset (sampled with start) ------------------------
        modes = len(self.modes)
        mode = Signal(range(modes))

        def per_mode(values, name):
            # A mode's constant: a constant when every mode agrees, else a small multiplexer.
            if len(set(values)) == 1:
                return Const(values[0], range(values[0] + 1))
            value = Signal(range(max(values) + 1), name=name)
            with m.Switch(mode):
                for i, v in enumerate(values):
                    with m.Case(i):
                        m.d.comb += value.eq(v)
            return value

        square_mode = per_mode([int(b == "square") for b, _, _ in self.modes], "square_mode")
        post_base = per_mode(self.mode_post_base, "post_base")
        guard = per_mode(self.mode_norm_guard, "norm_guard")
        sigma_shift = per_mode(self.mode_sigma_shift, "sigma_shift")
        if self._basis.runtime_square:
            m.d.comb += basis.square.eq(square_mode)
        lr_offset = Signal(range(self.max_lr_offset + 1))

        pre = Signal(range(1 << self.e2_bits))
        post = Signal(range(max(b + g for b, g in zip(self.mode_post_base, self.mode_norm_guard)) + 1))
        scale_shift = Signal(range(self.norm_bits - self.delta_shift + (1 << self.e2_bits)))
        local = self.local_logits if self.lls_m else self.logits
        errors_in = Signal(data.ArrayLayout(signed(self.emod_bits), C)) if self.lls_m else self.errors
        accumulator = Signal(signed(2 * M + ceil_log2(C) + 1))

        transfer = self.h.valid & self.h.ready
        h_value = self.h.payload.h
        in_pass1 = Signal()
        # What pass 1 accumulates: the port (the same cycle), or with pass1_reg its registered
        # copy (a cycle on) and h² registered from that (two cycles on).
        p1_valid, p1_h = in_pass1 & transfer, h_value
        p1_column = None
        sq_valid, sq_value = p1_valid, h_value * h_value
        if self.pass1_reg:
            p1_valid = Signal(name="pass1_valid")
            p1_h = Signal(self.act_shape, name="pass1_h")
            sq_valid = Signal(name="pass1_square_valid")
            sq_value = Signal(unsigned(2 * len(p1_h)), name="pass1_square")
            m.d.sync += [p1_valid.eq(in_pass1 & transfer), p1_h.eq(h_value),
                         sq_valid.eq(p1_valid), sq_value.eq(p1_h * p1_h)]
            if not self.serial and self.hardware_basis == "square":
                p1_column = Signal(C, name="pass1_negative")
                m.d.sync += p1_column.eq(Cat(column[c] < 0 for c in range(C)))
        pass1_pending = (p1_valid | sq_valid) if self.pass1_reg else Const(0)
        # The pass-1 and pass-2 handshakes, in terms the sequencer uses below:
        h_ready = Signal()          # h.ready while in a pass
        basis_take = Signal()       # basis.o.ready while in a pass
        pass_done = Signal()        # the pass's last neuron is complete this cycle
        issue_now = Signal()        # pass 2: issue δ_n's product this cycle
        issue_h = Signal(self.act_shape)
        issue_f = Signal()
        in_pass = Signal()
        step = Signal()             # a pass may advance (pass 2 stalls with the pipeline)

        # -- the shared multiplier pipeline --------------------------------------------------------
        # Stage 1 holds the operands (and g_n, f'_n for pass 2), stage 2 the product; the write-back
        # below reads stage 2. Everything moves only when the delta output register is free.
        enable = ~self.delta.valid | self.delta.ready
        issue_valid = Signal()
        issue_op = Signal(_Op)
        issue_a = Signal(signed(M))
        issue_b = Signal(signed(M))
        g_bits = signed_width(-C * (1 << (self.delta_bits - 1)) * self.basis_max,
                              C * (1 << (self.delta_bits - 1)) * self.basis_max)
        issue_g = Signal(signed(g_bits))
        valid1, valid2 = Signal(), Signal()
        op1, op2 = Signal(_Op), Signal(_Op)
        index1, index2 = Signal(range(C)), Signal(range(C))
        # Stage 1's operands, when the multiplier is inferred (else the DSP's input registers).
        a1, b1 = Signal(signed(M)), Signal(signed(M))
        product = Signal(signed(2 * M))
        g1 = Signal(signed(g_bits))
        g2 = Signal(signed(g_bits))
        fprime1, fprime2 = Signal(), Signal()
        # g_n's basis fraction travels with it: pass-2 products may still be in flight at the
        # next step's start, which may change the mode.
        square1 = Signal()
        shift_shape = range(max(max(b + g for b, g in zip(self.mode_post_base, self.mode_norm_guard)),
                                self.norm_bits - self.delta_shift + (1 << self.e2_bits), self.norm_bits,
                                self.mod_frac, self.mod_lr_shift + self.max_lr_offset,
                                1 << self.e2_bits) + 1)
        issue_shift = Signal(shift_shape)
        shift1, shift2 = Signal(shift_shape), Signal(shift_shape)
        # What stage 1 takes: the issue, or with operand_reg stage 0's registers holding it.
        issued = (issue_valid, issue_op, count, issue_shift, issue_f, square_mode, issue_a, issue_b)
        if self.operand_reg:
            stage0 = (Signal(name="valid0"), Signal(_Op, name="op0"), Signal(range(C), name="index0"),
                      Signal(shift_shape, name="shift0"), Signal(name="fprime0"), Signal(name="square0"),
                      Signal(signed(M), name="a0"), Signal(signed(M), name="b0"))
            with m.If(enable):
                m.d.sync += [q.eq(v) for q, v in zip(stage0, issued)]
            issued = stage0
        s0_valid, s0_op, s0_index, s0_shift, s0_f, s0_square, s0_a, s0_b = issued
        # With parallel square-basis lanes and writeback_reg, the g_n tree's partial nodes are
        # registered in stage 1 instead of g_n (set below), and g1 is the tree completed from them.
        g_tree_cut = self.writeback_reg and not self.serial and self.hardware_basis == "square"
        g_parts = []                # (stage-0 value, stage-1 register) of the cut tree's nodes
        if g_tree_cut:
            g1 = Signal(signed(g_bits), name="g1_tree")
        g1_value = g1
        if g_tree_cut and self.operand_reg:
            # Stage 1 holds the tree's root and its sign; the negation is after it, beside the
            # rounding (the tree's last levels and the negation were 12.6 ns into stage 1).
            g1_negate = Signal(name="g1_negate")
            g1_value = Mux(g1_negate, -g1, g1)
        fracs = set(self.mode_basis_frac)
        if len(fracs) == 1:
            g_rounded = round_shift(g1_value, fracs.pop())
        else:
            g_rounded = Mux(square1, g1_value, round_shift(g1_value, max(fracs)))
        # The write-back's inputs: stage 2, or with writeback_reg a stage 3 holding the rounded product.
        rounded = Signal(signed(2 * M + 1))
        if self.writeback_reg:
            valid3, op3, index3 = Signal(), Signal(_Op), Signal(range(C))
            g3, fprime3, product3 = Signal(signed(g_bits)), Signal(), Signal(signed(2 * M))
            wb_valid, wb_op, wb_index, wb_g, wb_fprime, wb_product = valid3, op3, index3, g3, fprime3, product3
            pipeline_empty = ~valid1 & ~valid2 & ~valid3
            if self.round_reg:
                # Stage 2b: the product plus its rounding term, and what travels with it.
                stage2b = (Signal(name="valid2b"), Signal(_Op, name="op2b"), Signal(range(C), name="index2b"),
                           Signal(signed(g_bits), name="g2b"), Signal(name="fprime2b"),
                           Signal(signed(2 * M), name="product2b"), Signal(shift_shape, name="shift2b"))
                pipeline_empty = pipeline_empty & ~stage2b[0]
        else:
            wb_valid, wb_op, wb_index, wb_g, wb_fprime, wb_product = valid2, op2, index2, g2, fprime2, product
            pipeline_empty = ~valid1 & ~valid2
        if self.operand_reg:
            pipeline_empty = pipeline_empty & ~s0_valid
        # One rounding shifter (the amount travels with the product) and one saturator per width.
        if self.projection:
            delta_value = Mux(wb_op == _Op.DELTA, wb_g - rounded, rounded)
        else:
            delta_value = Mux(wb_op == _Op.DELTA, wb_g, rounded)
        sat_delta = Signal(signed(self.delta_bits))
        sat_logit = Signal(signed(self.logit_bits))
        m.d.comb += [
            sat_delta.eq(saturate(delta_value, self.delta_bits)),
            sat_logit.eq(saturate(rounded, self.logit_bits)),
        ]
        wb_rounded = rounded
        if self.saturate_reg:
            # Stage 4: the saturated results and what the write-back reads beside them.
            stage3 = (wb_valid, wb_op, wb_index, wb_fprime, wb_product, sat_delta, sat_logit, rounded)
            stage4 = (Signal(name="valid4"), Signal(_Op, name="op4"), Signal(range(C), name="index4"),
                      Signal(name="fprime4"), Signal(signed(2 * M), name="product4"),
                      Signal(signed(self.delta_bits), name="sat_delta4"),
                      Signal(signed(self.logit_bits), name="sat_logit4"), Signal(signed(2 * M + 1), name="rounded4"))
            with m.If(enable):
                m.d.sync += [q.eq(v) for q, v in zip(stage4, stage3)]
            wb_valid, wb_op, wb_index, wb_fprime, wb_product, sat_delta, sat_logit, wb_rounded = stage4
            pipeline_empty = pipeline_empty & ~wb_valid
        with m.If(enable):
            m.d.sync += [
                valid1.eq(s0_valid), op1.eq(s0_op), index1.eq(s0_index), shift1.eq(s0_shift),
                shift2.eq(shift1),
                fprime1.eq(s0_f), square1.eq(s0_square),
                valid2.eq(valid1), op2.eq(op1), index2.eq(index1),
                g2.eq(g_rounded), fprime2.eq(fprime1),
                self.delta.valid.eq(wb_valid & (wb_op == _Op.DELTA)),
            ]
            if not g_tree_cut:
                if self.operand_reg:
                    g0 = Signal(signed(g_bits), name="g0")
                    m.d.sync += [g0.eq(issue_g), g1.eq(g0)]
                else:
                    m.d.sync += g1.eq(issue_g)
            if self.dsp == "inferred":
                m.d.sync += [a1.eq(s0_a), b1.eq(s0_b), product.eq(a1 * b1)]
            if self.writeback_reg:
                half2 = None
                if self.operand_reg:
                    # The rounding's half-LSB decoded a stage ahead, beside shift2: the product
                    # comes from the multiplier's output register straight into the adder (the
                    # decode, adder and shifter were 12.2 ns at 64 lanes on the ULX3S).
                    half2 = Signal(len(rounding_half(shift1)), name="half2")
                    m.d.sync += half2.eq(rounding_half(shift1))
                stage2 = (valid2, op2, index2, g2, fprime2, product)
                if self.round_reg:
                    # The adder and the shifter in stages of their own (10.3 ns at 64 lanes on
                    # the ULX3S, the product from the DSP block's output register).
                    if half2 is None:
                        half2 = rounding_half(shift2)
                    sum2b = Signal((product + half2).shape(), name="sum2b")
                    m.d.sync += [q.eq(v) for q, v in zip((*stage2b, sum2b), (*stage2, shift2, product + half2))]
                    *stage2, shift2b = stage2b
                    rounded_value = sum2b >> shift2b
                else:
                    rounded_value = round_shift_var(product, shift2, half2)
                m.d.sync += [q.eq(v) for q, v in zip((valid3, op3, index3, g3, fprime3, product3), stage2)]
                m.d.sync += rounded.eq(rounded_value)
        if self.dsp != "inferred":
            # The operand and product registers are the DSP block's (stage 1 and stage 2).
            m.submodules.multiplier = multiplier = PipelinedMultiplier(signed(M), signed(M), self.dsp)
            m.d.comb += [multiplier.a.eq(s0_a), multiplier.b.eq(s0_b), multiplier.en.eq(enable),
                         product.eq(multiplier.p)]

        # -- basis lanes: B[c, n] times h_n (pass 1) or eps_c (pass 2) -----------------------------
        m.d.comb += step.eq(in_pass1 | enable)
        if not self.serial:
            # One neuron per transfer. Square basis: pass 1 adds or subtracts h_n per class (one
            # add/subtract cell each, no negation); pass 2 sums ±ε_c in a tree whose nodes add or
            # subtract by the sign parity of their operands, with one conditional negation at the
            # root. Sine basis: C multipliers shared by both passes and an adder tree.
            m.d.comb += [
                h_ready.eq(basis.o.valid & step),
                basis_take.eq(self.h.valid & step),
                pass_done.eq(transfer & (neuron == N - 1)),
                issue_now.eq(transfer),
                issue_h.eq(h_value),
                issue_f.eq(self.h.payload.fprime),
            ]
            with m.If(in_pass & transfer):
                m.d.sync += neuron.eq(Mux(neuron == N - 1, 0, neuron + 1))
            if self.hardware_basis == "square":
                negative = [column[c] < 0 for c in range(C)]
                p1_negative = negative if p1_column is None else [p1_column[c] for c in range(C)]
                raw_next = [Mux(p1_negative[c], self.raw_logits[c] - p1_h, self.raw_logits[c] + p1_h)
                            for c in range(C)]
                terms = [(self.scaled_errors[c], negative[c]) for c in range(C)]
                level = 0
                while len(terms) > 1:
                    if g_tree_cut and level == 2:
                        # Stage 1 holds the nodes so far (and their signs); the rest is after it.
                        cut = []
                        for i, (node, sign) in enumerate(terms):
                            node_q = Signal.like(node, name=f"g_node{i}_q")
                            sign_q = Signal(name=f"g_sign{i}_q")
                            g_parts.append(((node, sign), (node_q, sign_q)))
                            cut.append((node_q, sign_q))
                        terms = cut
                    paired = []
                    for i in range(0, len(terms) - 1, 2):
                        (a, sa), (b, sb) = terms[i], terms[i + 1]
                        node = Signal(signed(len(a) + 1), name=f"g_tree{level}_{i // 2}")
                        m.d.comb += node.eq(Mux(sa ^ sb, a - b, a + b))
                        paired.append((node, sa))
                    if len(terms) % 2:
                        paired.append(terms[-1])
                    terms = paired
                    level += 1
                root, sign = terms[0]
                if g_tree_cut and g_parts:
                    # The nodes are registered at the issue (stage 0 with operand_reg, else 1).
                    with m.If(enable):
                        m.d.sync += [q.eq(v) for (node, sign_), (node_q, sign_q) in g_parts
                                     for q, v in ((node_q, node), (sign_q, sign_))]
                    if self.operand_reg:
                        with m.If(enable):
                            m.d.sync += [g1.eq(root), g1_negate.eq(sign)]
                    else:
                        m.d.comb += g1.eq(Mux(sign, -root, root))
                elif g_tree_cut:
                    # Too few classes for a cut (C < 4): g_n is registered whole.
                    g_whole = Mux(sign, -root, root)
                    if self.operand_reg:
                        g0 = Signal(signed(g_bits), name="g0")
                        with m.If(enable):
                            m.d.sync += g0.eq(g_whole)
                        g_whole = g0
                    with m.If(enable):
                        m.d.sync += g1.eq(g_whole)
                else:
                    m.d.comb += issue_g.eq(Mux(sign, -root, root))
            else:
                products = [column[c] * Mux(in_pass1, h_value, self.scaled_errors[c]) for c in range(C)]
                raw_next = [self.raw_logits[c] + products[c] for c in range(C)]
                raw_now = in_pass1 & transfer     # the sine products: from the port
                while len(products) > 1:
                    products = [products[i] + products[i + 1] for i in range(0, len(products) - 1, 2)] + \
                               ([products[-1]] if len(products) % 2 else [])
                m.d.comb += issue_g.eq(products[0])
            with m.If(p1_valid if self.hardware_basis == "square" else raw_now):
                for c in range(C):
                    m.d.sync += self.raw_logits[c].eq(raw_next[c])
        else:
            # One class per cycle: a transfer loads h_n (and f'_n) into a register, then C cycles
            # read B[c, n] from the held basis column (taken on the last one) and either
            # accumulate r_c (pass 1) or g_n (pass 2, issued with the last class); the next
            # transfer can coincide with the last class, so a neuron takes C cycles.
            lane = Signal(range(C))
            active = Signal()
            takes = Signal(range(N + 1))
            h_held = Signal(self.act_shape)
            f_held = Signal()
            g_sum = Signal(signed(g_bits))
            value = select(m, elements(column), lane, name="lane_basis")
            operand = Mux(in_pass1, h_held, select(m, elements(self.scaled_errors), lane, name="lane_error"))
            lane_product = Signal(signed(g_bits))
            if self.hardware_basis == "square":
                m.d.comb += lane_product.eq(Mux(value < 0, -operand, operand))
            else:
                m.d.comb += lane_product.eq(value * operand)
            finishing = active & (lane == C - 1) & step
            m.d.comb += [
                h_ready.eq(basis.o.valid & (~active | finishing) & (takes < N)),
                basis_take.eq(finishing),
                pass_done.eq(finishing & (takes == N)),
                issue_now.eq(finishing),
                issue_h.eq(h_held),
                issue_f.eq(f_held),
                issue_g.eq(g_sum + lane_product),
            ]
            with m.If(in_pass):
                with m.If(transfer):
                    m.d.sync += [h_held.eq(h_value), f_held.eq(self.h.payload.fprime), takes.eq(takes + 1)]
                with m.If(~active | finishing):
                    m.d.sync += [active.eq(transfer), lane.eq(0)]
                with m.Elif(step):
                    m.d.sync += lane.eq(lane + 1)
                with m.If(active & step):
                    with m.If(in_pass1):
                        current = select(m, elements(self.raw_logits), lane, name="lane_raw")
                        write_element(m, "sync", elements(self.raw_logits), lane, current + lane_product)
                    m.d.sync += g_sum.eq(Mux(lane == 0, lane_product, g_sum + lane_product))
                with m.If(pass_done):
                    m.d.sync += takes.eq(0)
            with m.If(self.start & ~self.busy):
                m.d.sync += [takes.eq(0), active.eq(0)]

        # -- write-back -----------------------------------------------------------------------------
        if not self.writeback_reg:
            m.d.comb += rounded.eq(round_shift_var(product, shift2))
        writeback = Signal()
        m.d.comb += writeback.eq(enable & wb_valid)
        with m.If(writeback):
            with m.Switch(wb_op):
                with m.Case(_Op.LOGIT):
                    write_element(m, "sync", elements(local), wb_index, sat_logit)
                if self.lls_m:
                    with m.Case(_Op.MODLOGIT):
                        write_element(m, "sync", elements(self.logits), wb_index, sat_logit)
                    with m.Case(_Op.EMOD):
                        write_element(m, "sync", elements(errors_in), wb_index, wb_rounded)
                    with m.Case(_Op.MODUPD):
                        old = select(m, elements(self.modulation), wb_index, name="modulation_old")
                        write_element(m, "sync", elements(self.modulation), wb_index,
                                      saturate(old - wb_rounded, self.mod_bits))
                with m.Case(_Op.SCALE):
                    write_element(m, "sync", elements(self.scaled_errors), wb_index, sat_delta)
                with m.Case(_Op.SIGMA):
                    # σ itself is rounded from the finished sum, as the loop ends (below).
                    m.d.sync += accumulator.eq(accumulator + wb_product)
                with m.Case(_Op.KAPPA):
                    m.d.sync += self.kappa.eq(sat_delta)
                with m.Case(_Op.DELTA):
                    m.d.sync += self.delta.payload.eq(Mux(wb_fprime & ~self.zero, sat_delta, 0))

        # -- pass 1: the squared norm ---------------------------------------------------------------
        with m.If(sq_valid):
            m.d.sync += self.S.eq(self.S + sq_value)

        # -- sequencer ------------------------------------------------------------------------------
        m.d.comb += [
            norm.i.payload.eq(self.S),
            softmax.i.payload.logits.eq(self.logits),
            softmax.i.payload.label.eq(label),
            self.probs.eq(softmax.o.payload.probs),
            self.errors.eq(softmax.o.payload.errors),
        ]
        def read(array, name):
            return select(m, elements(array), count, name=name)

        local_read = read(local, "local_read")
        pre_copies, half_copies = [], []
        if self.operand_reg:
            # rnd(r_c, pre) for every class, registered every cycle: valid from the cycle after
            # NORM_WAIT sets pre (LOGIT_SHIFT waits for it) until the next pass 1.
            # Each class shifts by a copy of its own of pre (`keep`): one register steered all C
            # shifters (10.6 ns at 64 lanes on the ULX3S, 7.7 of it routing).
            pre_copies = [Signal.like(pre, name=f"pre_class{c}", attrs={"keep": 1}) for c in range(C)]
            # And of its rounding term, loaded with it: the term's decode was in front of the
            # adder and the shifter (10.15 ns on the ULX3S, session 12).
            half_copies = [Signal(len(rounding_half(pre)), name=f"pre_half{c}", attrs={"keep": 1})
                           for c in range(C)]
            raw_shifted = Signal(data.ArrayLayout(signed(M), C), name="raw_shifted")
            m.d.sync += [raw_shifted[c].eq(round_shift_var(self.raw_logits[c], pre_copies[c], half_copies[c]))
                         for c in range(C)]
            logit_operand = read(raw_shifted, "raw_shifted_read")
        else:
            logit_operand = round_shift_var(read(self.raw_logits, "raw_read"), pre)
        operands = {
            _Op.LOGIT: (logit_operand, self.R),
            _Op.SCALE: (read(errors_in, "error_read"), self.R),
            _Op.SIGMA: (read(self.scaled_errors, "scaled_read"), local_read),
            _Op.KAPPA: (self.sigma, self.R),
        }
        if self.lls_m:
            modulation = read(self.modulation, "modulation_read")
            softmax_error = read(self.errors, "softmax_error_read")
            operands[_Op.MODLOGIT] = (local_read, modulation)
            operands[_Op.EMOD] = (softmax_error, modulation)
            operands[_Op.MODUPD] = (softmax_error, local_read)

        # The compute loops in order: (op, iterations). The softmax sits after the logit loops.
        before = [(_Op.LOGIT, C)] + ([(_Op.MODLOGIT, C)] if self.lls_m else [])
        after = ([(_Op.EMOD, C), (_Op.MODUPD, C)] if self.lls_m else []) + [(_Op.SCALE, C)]
        if self.projection:
            after += [(_Op.SIGMA, C), (_Op.KAPPA, 1)]

        shifts = {
            _Op.LOGIT: post, _Op.SCALE: scale_shift, _Op.KAPPA: self.norm_bits, _Op.SIGMA: 0,
            _Op.MODLOGIT: self.mod_frac, _Op.EMOD: self.mod_frac, _Op.MODUPD: self.mod_lr_shift + lr_offset,
        }

        def loop(op, iterations, next_state):
            # Issue one product per enabled cycle, then wait for the last write-back.
            with m.State(op.name):
                a, b = operands[op]
                m.d.comb += [issue_valid.eq(1), issue_op.eq(op), issue_a.eq(a), issue_b.eq(b),
                             issue_shift.eq(shifts[op])]
                with m.If(enable):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == iterations - 1):
                        m.d.sync += count.eq(0)
                        m.next = op.name + "_WAIT"
            with m.State(op.name + "_WAIT"):
                with m.If(pipeline_empty):
                    m.next = next_state
                    if op == _Op.SIGMA:
                        # From the accumulator register: its adder is not in front of the
                        # rounding and saturation (one 13.5 ns path at 64 lanes on the ULX3S).
                        sigma_rounded = (round_shift(accumulator, self.mode_sigma_shift[0])
                                         if len(set(self.mode_sigma_shift)) == 1
                                         else round_shift_var(accumulator, sigma_shift))
                        m.d.sync += self.sigma.eq(saturate(sigma_rounded, self.delta_bits))

        with m.FSM(name="sequencer") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [basis.restart.eq(1), softmax.o.ready.eq(1)]
                    m.d.sync += label.eq(self.label)
                    if modes > 1:
                        m.d.sync += mode.eq(self.mode)
                    if self.lls_m:
                        m.d.sync += lr_offset.eq(self.lr_offset)
                    m.d.sync += [
                        neuron.eq(0),
                        count.eq(0),
                        self.S.eq(0),
                        self.trace_valid.eq(0),
                        self.sigma.eq(0),
                        self.kappa.eq(0),
                        self.raw_logits.eq(0),
                    ]
                    m.next = "PASS1"

            with m.State("PASS1"):
                m.d.comb += [
                    in_pass1.eq(1),
                    in_pass.eq(1),
                    self.h.ready.eq(h_ready),
                    basis.o.ready.eq(basis_take),
                ]
                with m.If(pass_done):
                    m.next = "NORM"

            with m.State("NORM"):
                # The previous step's pass-2 products may still be in the pipeline (they read e2).
                # With pass1_reg, pass 1's last terms may still be on their way into S.
                m.d.comb += norm.i.valid.eq(pipeline_empty & ~pass1_pending)
                with m.If(norm.i.valid & norm.i.ready):
                    m.next = "NORM_WAIT"

            with m.State("NORM_WAIT"):
                result = norm.o.payload
                m.d.comb += norm.o.ready.eq(1)
                with m.If(norm.o.valid):
                    e2 = result.e2
                    new_pre = Mux(e2 > guard, e2 - guard, 0)
                    m.d.sync += [
                        self.e2.eq(e2),
                        self.R.eq(result.rsqrt),
                        self.zero.eq(result.zero),
                        *(r.eq(new_pre) for r in [pre, *pre_copies]),
                        # (pre's own bits: the shifter takes an unsigned amount.)
                        *(h.eq(rounding_half(new_pre.as_unsigned()[:len(pre)])) for h in half_copies),
                        post.eq(post_base + Mux(e2 > guard, guard, e2)),
                        scale_shift.eq(self.norm_bits - self.delta_shift + e2),
                    ]
                    with m.If(result.zero):
                        m.next = "PREP2"
                    with m.Else():
                        m.next = "LOGIT_SHIFT" if self.operand_reg else before[0][0].name

            if self.operand_reg:
                with m.State("LOGIT_SHIFT"):
                    # raw_shifted takes the new pre.
                    m.next = before[0][0].name

            for i, (op, iterations) in enumerate(before):
                loop(op, iterations, before[i + 1][0].name if i + 1 < len(before) else "SOFTMAX")

            with m.State("SOFTMAX"):
                # The logits stay in their registers until the result is in (hold_input).
                m.d.comb += softmax.i.valid.eq(1)
                with m.If(softmax.i.ready):
                    m.next = "SOFTMAX_WAIT"

            with m.State("SOFTMAX_WAIT"):
                # The result stays in the softmax unit's output register, not taken: it is the
                # probs/errors trace. The next start takes it, which frees the unit but leaves
                # the register's contents in place until the next result is written.
                with m.If(softmax.o.valid):
                    m.d.sync += accumulator.eq(0)
                    m.next = after[0][0].name

            for i, (op, iterations) in enumerate(after):
                loop(op, iterations, after[i + 1][0].name if i + 1 < len(after) else "PREP2")

            with m.State("PREP2"):
                m.d.comb += basis.restart.eq(1)
                m.d.sync += self.trace_valid.eq(1)
                m.next = "PASS2"

            with m.State("PASS2"):
                m.d.comb += [
                    in_pass.eq(1),
                    self.h.ready.eq(h_ready),
                    basis.o.ready.eq(basis_take),
                    issue_valid.eq(issue_now),
                    issue_op.eq(_Op.DELTA),
                    issue_a.eq(issue_h),
                    issue_b.eq(self.kappa),
                    issue_shift.eq(self.e2),
                ]
                with m.If(pass_done):
                    m.next = "IDLE"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))

        return m
