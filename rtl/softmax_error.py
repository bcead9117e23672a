"""The softmax/error unit (``docs/numerics.md`` §5): base-2 exponentials from a table, one divider."""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.integer.softmax import exp2_table

from .collision_free import assert_collision_free, collision_free_attrs
from .fixed import round_shift, select, write_element
from .layer_engine import fabric_arithmetic
from .pipelined_multiplier import MULTIPLIERS, PipelinedMultiplier, fits_mult18x18d

__all__ = ["SoftmaxError"]


class _State(enum.Enum, shape=3):
    IDLE = 0
    MAX = 1
    EXP = 2
    DIV = 3
    PROD = 4
    OUT = 5


class SoftmaxError(wiring.Component):
    """Probabilities and errors of ``C`` logits, bit for bit :func:`golden.integer.softmax.softmax_error`.

    One use is one transfer on ``i`` (the logits and the label) and, later, one transfer on
    ``o``. Inside, everything is sequential, with one comparator, one exp2 table read port, one
    non-restoring divider and one multiplier:

    ====== =========================== ===========================================================
    phase  cycles                      work
    ====== =========================== ===========================================================
    MAX    ``C - 1``                   ``max_c s_c`` (the first logit is taken at the transfer)
    EXP    ``C + 1`` (parallel),       ``E_c = X[j_c] >> min(i_c, exp_bits + 1)``, ``Σ += E_c``
           ``C + 2`` (serial)          (one synchronous table read per class, pipelined; serial:
                                       the shifted value registered too)
    DIV    ``recip_shift - exp_bits    ``ρ = floor(2**recip_shift / Σ)``, one quotient bit per
           + 1``                       cycle (``Σ >= 2**exp_bits`` bounds the quotient)
    PROD   ``C + 2`` (parallel),       ``E_c`` again (not stored), then
           ``C (exp_bits + 2) + 3``    ``p_c = rnd(E_c ρ, recip_shift - prob_frac)`` into a
           (serial)                    register per class (pipelined product, or shift and add)
    ====== =========================== ===========================================================

    so ``o.valid`` rises :attr:`latency` cycles after the clock edge of the input transfer
    (parallel: ``3 C + recip_shift - exp_bits + 3``, 47 cycles for the defaults and ``C = 10``;
    serial: ``C (exp_bits + 4) + recip_shift - exp_bits + 5``, 199 cycles) and stays up, with
    ``o.payload`` stable, until ``o.ready``; the output transfer can be at the next edge.
    ``i.ready`` is high exactly when the unit is idle (after reset and from the cycle after the
    output transfer), so back-to-back uses take ``latency + 2`` cycles each. Only ``p_c`` is
    stored (``prob_frac + 1`` bits: ``p_c <= 2**prob_frac``); ``e_c = p_c - 2**prob_frac [c = c*]``
    is derived from it and the label, which is why the label must stay put with ``hold_input``.

    Parameters
    ----------
    n_classes : int
        ``C >= 2``.
    logit_bits, logit_frac : int
        Signed logit format (log2 units); the exp2 table has ``2**logit_frac`` entries.
    exp_bits : int
        Table values are ``round(2**exp_bits 2**(-j / 2**logit_frac))``.
    prob_frac : int
        Fraction bits of probabilities and errors.
    recip_shift : int
        The reciprocal is ``floor(2**recip_shift / Σ)``.
    multiplier : {"parallel", "serial"}
        ``E_c ρ`` (``exp_bits + 1`` by ``recip_shift - exp_bits + 1`` bits): one product per
        cycle (a multiplier cell; a fabric adder tree where the flow's ``booth`` pass makes one),
        or shift and add, one bit of ``E_c`` per cycle (``exp_bits + 2`` cycles a class, one adder
        and a ``{hi, lo}`` register: the area choice where the unit has time, e.g. the engine's
        output layer on the iCE40, whose softmax runs while the hidden layers update). Serial
        is the iCE40's timing choice too: the exp2 table in a block RAM, the shifted exponential
        registered (``latency`` 2 cycles more) and, with ``streams``, a finished product waiting
        in ``{hi, lo}`` for the output register rather than the next one for ``o.ready``.
    product_reg : bool
        Timing option of the parallel multiplier: register the shifted exponential before it
        (one cycle more of ``latency``). Where the multiplier is a fabric adder tree (ECP5: the
        ``booth`` pass), the table read, the shifter and the multiplier were one 10 ns path.
    dsp : {"inferred", "mult18x18d"}
        With ``product_reg``: the two registers and the multiplier between them as Yosys infers
        them, or one instantiated ECP5 MULT18X18D holding both
        (:class:`~rtl.pipelined_multiplier.PipelinedMultiplier`) where the operands fit it (else
        inferred, see :attr:`dsp`). The same cycles.
    hold_input : bool
        Area option: the producer promises to keep ``i.payload`` unchanged from the input
        transfer until the output transfer (e.g. it is a register the producer does not touch
        meanwhile), so the unit does not copy the logits and label (saves ``C · logit_bits``
        flip-flops). Default ``False``: the payload matters only during the transfer.
    streams : bool
        Interface option (the engine's output layer): a use is ``C`` transfers on ``i``, one
        logit each in class order (with the label), and ``C`` on ``o``, one class each in order.
        The logits go into a ring of registers read by rotation (no ``C``-way multiplexer), their
        maximum is taken as they arrive (no MAX phase), and the products leave one at a time
        (one class in flight, no ``C`` output registers): :attr:`latency` counts from the last
        logit's transfer to ``o.valid`` of the last class, classes ``output_period`` apart
        without back-pressure (``hold_input`` does not apply).
    ring : {"registers", "memory"} or None
        With ``streams``, an area option: the ring of logits as ``C`` registers (a shift
        register), or as a ``C``-word memory read one class ahead (a block RAM where the flow has
        one, the same timing). ``None``: registers on ECP5, else memory (on the iCE40 a register
        fed by a register costs a logic cell each, a block RAM none).
        Without ``streams``, a timing option: ``"registers"`` copies the logits at the transfer
        into a ring of ``C`` registers read by rotation (``C · logit_bits`` flip-flops, even with
        ``hold_input``), so the running maximum and the exponent's distance start from a
        register, not a ``C``-way multiplexer (a 14 ns path at 64 lanes on the ULX3S); ``None``:
        the multiplexer. The same cycles.
        With registers either way, the exponentials' loops (EXP, PROD) count their class with a
        counter of their own, not the shared ``count``.

    Members
    -------
    i : In(stream.Signature(data.StructLayout({"logits": data.ArrayLayout(signed(logit_bits), C), "label": unsigned(ceil_log2(C) or 1)})))
        The logits and the label ``c*`` of one use (``streams``: ``{"logit", "label"}``, one class
        per transfer).
    o : Out(stream.Signature(data.StructLayout({"probs": data.ArrayLayout(signed(prob_frac + 2), C), "errors": data.ArrayLayout(signed(prob_frac + 2), C)})))
        Probabilities ``p_c`` and errors ``e_c = p_c - 2**prob_frac [c = c*]`` (``streams``:
        ``{"prob", "error"}``, one class per transfer).
    """

    def __init__(self, n_classes, *, logit_bits=12, logit_frac=5, exp_bits=14, prob_frac=12,
                 recip_shift=28, hold_input=False, multiplier="parallel", product_reg=False,
                 streams=False, ring=None, dsp="inferred"):
        # A refused configuration is not an unused design.
        self._MustUse__silence = True
        if n_classes < 2:
            raise ValueError(f"SoftmaxError needs n_classes >= 2, got {n_classes}")
        if not 1 <= logit_frac < logit_bits:
            raise ValueError(f"SoftmaxError: logit_frac={logit_frac} must be 1..logit_bits-1")
        if not (exp_bits >= 1 and recip_shift > prob_frac and recip_shift > exp_bits):
            raise ValueError(f"SoftmaxError: need exp_bits >= 1 and recip_shift={recip_shift} > "
                             f"prob_frac={prob_frac}, exp_bits={exp_bits}")
        if multiplier not in ("parallel", "serial"):
            raise ValueError(f"SoftmaxError: multiplier must be 'parallel' or 'serial', got {multiplier!r}")
        if product_reg and multiplier != "parallel":
            raise ValueError("SoftmaxError: product_reg is the parallel multiplier's input register")
        if dsp not in MULTIPLIERS:
            raise ValueError(f"SoftmaxError: dsp must be one of {MULTIPLIERS}, got {dsp!r}")
        if dsp == "mult18x18d" and not product_reg:
            raise ValueError("SoftmaxError: dsp='mult18x18d' holds product_reg's registers: it needs product_reg")
        if ring not in (None, "registers", "memory"):
            raise ValueError(f"SoftmaxError: ring must be 'registers', 'memory' or None, got {ring!r}")
        if ring == "memory" and not streams:
            raise ValueError("SoftmaxError: ring='memory' needs streams (without, the ring is registers or none)")
        self._MustUse__silence = False
        self.n_classes = n_classes
        self.logit_bits = logit_bits
        self.logit_frac = logit_frac
        self.exp_bits = exp_bits
        self.prob_frac = prob_frac
        self.recip_shift = recip_shift
        self.hold_input = hold_input
        self.multiplier = multiplier
        self.streams = streams
        self.ring = ring
        self.product_reg = bool(product_reg)
        # Inferred where the operands do not fit the MULT18X18D (wide exp_bits or recip_shift).
        fits = fits_mult18x18d(unsigned(exp_bits + 1), unsigned(recip_shift - exp_bits + 1))
        self.dsp = dsp if fits else "inferred"
        self.table = exp2_table(logit_frac, exp_bits)
        self.label_shape = unsigned(ceil_log2(n_classes) or 1)
        self.prob_shape = signed(prob_frac + 2)
        # Quotient bits: rho <= 2**(recip_shift - exp_bits) because the sum is >= 2**exp_bits.
        self.quotient_bits = recip_shift - exp_bits + 1
        # MAX, EXP and DIV, then C products: C + 2 cycles in parallel, C (exp_bits + 2) + 3 in series
        # (whose EXP is a cycle longer too: the registered shifted exponential).
        if multiplier == "serial":
            self.latency = n_classes * (exp_bits + 4) + self.quotient_bits + 4
            product_period = exp_bits + 2
        else:
            self.latency = 3 * n_classes + self.quotient_bits + 2 + self.product_reg
            product_period = 1
        if streams:
            # One class in flight: its product, then the output register (taken at once at best).
            self.output_period = product_period + 1 + (self.product_reg if multiplier == "parallel" else 0)
            self.latency += (n_classes - 1) * (self.output_period - product_period)
            # ... and from the last logit's transfer: the maximum is found while they arrive.
            self.latency -= n_classes - 1
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(
                {"logit": signed(logit_bits), "label": self.label_shape} if streams else {
                    "logits": data.ArrayLayout(signed(logit_bits), n_classes),
                    "label": self.label_shape,
                }))),
            "o": Out(stream.Signature(data.StructLayout(
                {"prob": self.prob_shape, "error": self.prob_shape} if streams else {
                    "probs": data.ArrayLayout(self.prob_shape, n_classes),
                    "errors": data.ArrayLayout(self.prob_shape, n_classes),
                }))),
        })

    @classmethod
    def from_config(cls, config, layer=None, *, hold_input=False, multiplier="parallel", product_reg=False,
                    streams=False, ring=None, dsp="inferred"):
        """The unit of an :class:`~golden.integer.config.EngineConfig` (the same for every layer)."""
        return cls(config.n_classes, logit_bits=config.logit_bits, logit_frac=config.logit_frac,
                   exp_bits=config.exp_bits, prob_frac=config.prob_frac, recip_shift=config.recip_shift,
                   hold_input=hold_input, multiplier=multiplier, product_reg=product_reg,
                   streams=streams, ring=ring, dsp=dsp)

    def elaborate(self, platform):
        m = Module()
        C, lf, eb = self.n_classes, self.logit_frac, self.exp_bits
        count_shape = range(max(C, self.quotient_bits) + 1)

        state = Signal(_State)
        # The running maximum as its key ~top ^ sign (unsigned): `a > top` is then the carry out
        # of (a ^ sign) + key and top - a is key(key + a), no inverter before either carry chain
        # (on the UP5K the inverter was a LUT level in front of each).
        sign = 1 << (self.logit_bits - 1)
        top_key = Signal(self.logit_bits)

        def key(value):
            return value.as_unsigned() ^ (sign - 1)

        def above_top(value):
            return ((value.as_unsigned() ^ sign) + top_key)[self.logit_bits]

        count = Signal(count_shape)
        total = Signal(range(C * (1 << eb) + 1))
        remainder = Signal(signed(len(total) + 1))
        recip = Signal(self.quotient_bits)
        rotate = Signal()   # EXP and PROD: the next class
        # `more`: EXP or PROD with classes left to read; `producing`: `state == PROD`. Flags of
        # their own: on the UP5K the decodes were LUT levels in front of the table's stall and
        # the ring's rotation, behind the multiplier's handshake.
        more = Signal()
        producing = Signal()

        serial = self.multiplier == "serial"
        # i.ready is `state == IDLE` kept as a flag of its own: the decode was a LUT level in
        # front of every input enable (and of the producer's ready).
        idle_in = Signal(init=1)
        m.d.comb += self.i.ready.eq(idle_in)
        if self.streams:
            # -- input: one logit per transfer into a ring whose stage 0 is the class being read
            # (EXP and PROD rotate it once each); the maximum as they arrive, no MAX phase --------
            label = Signal(self.label_shape)
            load = self.i.valid & self.i.ready
            logit = self.i.payload.logit
            ring_kind = self.ring or ("registers" if fabric_arithmetic(platform) else "memory")
            class_counter = ring_kind == "registers" or serial
            if ring_kind == "registers":
                ring = [Signal(signed(self.logit_bits), name=f"logit{c}") for c in range(C)]
                with m.If(load | rotate):
                    m.d.sync += [ring[c].eq(ring[c + 1]) for c in range(C - 1)]
                    m.d.sync += ring[C - 1].eq(Mux(load, logit, ring[0]))
                current = ring[0]
            else:
                # Class `count` is written at its transfer; `head` is the class the ring's stage 0
                # would hold (EXP and PROD each advance it C times, back to 0), read a cycle ahead.
                # No read whose data is used meets a write of its class (the writes come while
                # idle, the reads in EXP and PROD, and the last write's cycle reads class 0
                # ahead): on the UP5K, Yosys's read-first logic put the address compare behind
                # the ring's rotation, 4 LUT levels into a flip-flop (25.5 ns).
                m.submodules.logits = logits = memory.Memory(shape=signed(self.logit_bits), depth=C, init=[],
                                                             attrs=collision_free_attrs(platform))
                write, read = logits.write_port(), logits.read_port()
                head = Signal(range(C))
                head_next = Mux(head == C - 1, 0, head + 1)
                with m.If(rotate):
                    m.d.sync += head.eq(head_next)
                m.d.comb += [write.addr.eq(count), write.data.eq(logit), write.en.eq(load),
                             read.addr.eq(Mux(rotate, head_next, head))]
                assert_collision_free(m, platform, write, read, used=~idle_in | (load & (count == C - 1)),
                                      what="SoftmaxError's ring")
                current = read.data
            # `first` is `count == 0` kept as a flag: with it the maximum's enable is one LUT after
            # the comparator's carry chain (5 LUT levels, 25 ns, on the UP5K with the decodes).
            first = Signal(init=1)
            with m.If(load):
                m.d.sync += [label.eq(self.i.payload.label), count.eq(count + 1), first.eq(0)]
                with m.If(first | above_top(logit)):
                    m.d.sync += top_key.eq(key(logit))
                with m.If(count == C - 1):
                    # (Serial: Σ is cleared at DIV's end instead.)
                    clear_total = [] if serial else [total.eq(0)]
                    m.d.sync += [count.eq(0), first.eq(1), *clear_total, state.eq(_State.EXP), idle_in.eq(0),
                                 more.eq(1)]
        else:
            # (Without a ring `count` selects the logit: the exponentials' class.)
            ring = class_counter = self.ring == "registers"
            if self.hold_input:
                # The producer keeps the payload stable until the output transfer: no copy.
                logits, label = self.i.payload.logits, self.i.payload.label
            else:
                # Flat, viewed as classes (YosysHQ/yosys#4349); the ring, if any, is the copy.
                logits_layout = data.ArrayLayout(signed(self.logit_bits), C)
                logits = None if ring else data.View(logits_layout, Signal(logits_layout.size, name="logits"))
                label = Signal(self.label_shape)
            # -- input ----------------------------------------------------------------------------
            load = self.i.valid & self.i.ready
            with m.If(load):
                if not self.hold_input:
                    m.d.sync += label.eq(self.i.payload.label)
                    if not ring:
                        m.d.sync += logits.eq(self.i.payload.logits)
                m.d.sync += [
                    top_key.eq(key(self.i.payload.logits[0])),
                    count.eq(1),
                    total.eq(0),
                    state.eq(_State.MAX),
                    idle_in.eq(0),
                ]

            # -- max over the classes (the first is taken at the transfer) ----------------------
            if ring:
                # Stage 0 holds class `count`: loaded a class ahead (MAX starts at class 1), then
                # rotated once per MAX cycle (back to class 0 for EXP) and once per class in EXP
                # and PROD.
                ring_regs = [Signal(signed(self.logit_bits), name=f"logit{c}") for c in range(C)]
                with m.If(load):
                    m.d.sync += [ring_regs[c].eq(self.i.payload.logits[(c + 1) % C]) for c in range(C)]
                with m.Elif(rotate | (state == _State.MAX)):
                    m.d.sync += [ring_regs[c].eq(ring_regs[(c + 1) % C]) for c in range(C)]
                current = ring_regs[0]
            else:
                current = select(m, [logits[c] for c in range(C)], count, name="current")
            with m.If(state == _State.MAX):
                with m.If(above_top(current)):
                    m.d.sync += top_key.eq(key(current))
                m.d.sync += count.eq(count + 1)
                with m.If(count == C - 1):
                    m.d.sync += [count.eq(0), state.eq(_State.EXP), more.eq(1)]

        # -- exponentials, twice (EXP: the sum; PROD: the products), so none is stored: address
        # the table in one cycle, shift in the next (serial: register the shifted value, use it in
        # a third) -------------------------------------------------------------------------------
        # Serial (the UP5K's choice): the table in a block RAM. As logic its read was 3 LUT levels
        # after the distance's carry chain (23 ns from the logits' RAM); the block's address
        # takes the distance directly, and it frees about 40 logic cells.
        m.submodules.table = table = memory.Memory(shape=unsigned(eb + 1), depth=1 << lf, init=self.table,
                                                   attrs={"ram_style": "block"} if serial else None)
        port = table.read_port()
        take = Signal()   # the multiplier takes E_c (PROD)
        distance = Signal(unsigned(self.logit_bits))
        m.d.comb += [
            distance.eq(key(top_key + current.as_unsigned())),
            port.addr.eq(distance[:lf]),
        ]
        exp_valid = Signal()
        exp_index = Signal(range(C))
        exp_shift = Signal(range(eb + 2))
        integer = distance[lf:]
        # The table read and exp_* advance together; in PROD they wait for the multiplier to take E_c.
        # With a ring of registers (the ECP5's timing choice) or the serial multiplier (the UP5K's)
        # the class they are at has a counter of its own, zero outside EXP and PROD: `count`'s
        # other uses made its next value a wide multiplexer behind `advance` (11.4 ns on the
        # ULX3S, 8 LUT levels on the UP5K). Otherwise it is `count`.
        exp_class = Signal(range(C)) if class_counter else count
        advance = Signal()
        exp_value = Signal(unsigned(eb + 1))
        if serial:
            # The shifter (4 LUT levels) was between the table and both the sum's adder and the
            # multiplier's load (23.6 and 24.8 ns on the UP5K): a stage of its own, which the
            # pipeline's valid, index and stall follow (one cycle more in EXP and in PROD).
            value_valid = Signal()
            value_index = Signal(range(C))
            with m.If(advance):
                m.d.sync += [exp_value.eq(port.data >> exp_shift), value_valid.eq(exp_valid),
                             value_index.eq(exp_index)]
        else:
            m.d.comb += exp_value.eq(port.data >> exp_shift)
            value_valid, value_index = exp_valid, exp_index
        # `offered`: PROD's exponential is there for the multiplier (`value_valid & producing`,
        # a flag: with it `take` and `advance` are one LUT each).
        offered = Signal()
        with m.If(advance):
            m.d.sync += offered.eq(producing & (exp_valid if serial else more))
        m.d.comb += [advance.eq(~offered | take), port.en.eq(advance)]
        m.d.comb += rotate.eq(advance & more)
        with m.If(advance):
            m.d.sync += [
                exp_valid.eq(more),
                exp_index.eq(exp_class),
                exp_shift.eq(Mux(integer > eb + 1, eb + 1, integer)),
            ]
        with m.If(rotate):
            m.d.sync += exp_class.eq(exp_class + 1)
            with m.If(exp_class == C - 1):
                m.d.sync += more.eq(0)
                if class_counter:
                    m.d.sync += exp_class.eq(0)
        # (The pipeline is empty in DIV: a valid exponential outside PROD is EXP's.)
        summing = value_valid & ~producing
        with m.If(summing):
            m.d.sync += total.eq(total + exp_value)

        # -- non-restoring division: the numerator's remaining bits are all zero -----------------
        # The restoring divider's multiplexer after the subtractor (its sign fanned out to every
        # bit) was a 19.7 ns path on the UP5K. Here the partial remainder goes negative instead
        # (-Σ <= it < Σ); the next is 2 r - Σ from r >= 0, 2 r + Σ from r < 0, one adder whose
        # operand's complement the register's sign selects; the quotient bits are the same.
        # The remainder is zero outside DIV (its registers' synchronous reset, all alike: a load
        # took a fourth LUT input in every adder cell, or a set bit a reset of its own, and the
        # UP5K's tiles then broke the carry chain, 3.3 ns a break); DIV's first cycle ORs the
        # first partial remainder, 2**recip_shift >> quotient_bits = 2**(exp_bits - 1) < Σ, in.
        div_first = Signal()
        with m.If(state == _State.DIV):
            negative = remainder[-1]
            # 2 r - Σ = (2 r + 1) + ~Σ: the doubling's zero bit is the carry in.
            trial = Signal(len(remainder) + 1)
            m.d.comb += trial.eq(Cat(~negative, remainder | (div_first << (eb - 1)))
                                 + (total.as_unsigned() ^ Mux(negative, 0, (1 << len(trial)) - 1)))
            fits = ~trial[len(remainder) - 1]
            m.d.sync += [
                remainder.eq(trial[:len(remainder)]),
                recip.eq((recip << 1) | fits),
                count.eq(count + 1),
            ]
            with m.If(count == self.quotient_bits - 1):
                m.d.sync += [count.eq(0), state.eq(_State.PROD), producing.eq(1), more.eq(1)]
                if serial and self.streams:
                    # Σ is cleared once ρ is known, not at the last logit's transfer: the input's
                    # handshake (the engine's state behind its valid) was 5 LUT levels into Σ's
                    # 17 enables on the UP5K.
                    m.d.sync += total.eq(0)
        with m.Else():
            m.d.sync += remainder.eq(0)
        m.d.sync += div_first.eq(0)
        with m.If(summing & (value_index == C - 1)):
            # (No clear of ρ: DIV shifts all of its bits in.)
            m.d.sync += [state.eq(_State.DIV), div_first.eq(1)]
            if not class_counter:
                m.d.sync += count.eq(0)

        # -- products: E_c ρ, rounded to p_c; e_c is p_c with the label's one taken off -----------
        if serial:
            # Streams: the product waits for the output register, so that taking the next E_c
            # does not wait for `o.ready` (it was 3 LUT levels into the multiplier's and the
            # table's enables, 22 ns on the UP5K); the same cycles without back-pressure.
            release = (~self.o.valid | self.o.ready) if self.streams else 1
            busy, prob_valid, prob_index, prob = self._serial_product(m, exp_value, value_index, take, recip,
                                                                      release)
            idle, in_flight = ~busy, busy | prob_valid
        else:
            prob_valid, prob_index, prob, in_flight = self._parallel_product(m, exp_value, value_index, take, recip)
            idle = 1
        pf = self.prob_frac

        def error_of(p, is_label):
            # e_c = p_c - 2**pf at the label: p_c = 2**pf gives 0, smaller p_c the bits 11 above its
            # fraction (p_c - 2**pf in two's complement); no subtractor.
            return Cat(p[:pf], p[pf] ^ is_label, is_label & ~p[pf]).as_signed()

        # p_c <= 2**prob_frac (E_c ρ <= Σ ρ <= 2**recip_shift), so prob_frac + 1 unsigned bits hold it.
        if self.streams:
            # One class at a time: its p_c waits in the output register until taken.
            if serial:
                m.d.comb += take.eq(offered & ~in_flight)
                out_load = prob_valid & release
            else:
                m.d.comb += take.eq(offered & ~in_flight & (~self.o.valid | self.o.ready))
                out_load = prob_valid
            out_prob = Signal(unsigned(pf + 1))
            out_index = Signal(range(C))
            m.d.comb += [
                self.o.payload.prob.eq(out_prob),
                self.o.payload.error.eq(error_of(out_prob, label == out_index)),
            ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += self.o.valid.eq(0)
                with m.If(out_index == C - 1):
                    m.d.sync += [state.eq(_State.IDLE), idle_in.eq(1), producing.eq(0)]
                    if not class_counter:
                        m.d.sync += count.eq(0)
            # (After the transfer's statements: a product can follow at once.)
            with m.If(out_load):
                m.d.sync += [out_prob.eq(prob), out_index.eq(prob_index), self.o.valid.eq(1)]
        else:
            m.d.comb += take.eq(offered & idle)
            probs_layout = data.ArrayLayout(unsigned(pf + 1), C)
            probs = data.View(probs_layout, Signal(probs_layout.size, name="probs"))
            with m.If(prob_valid):
                write_element(m, "sync", [probs[c] for c in range(C)], prob_index, prob)
                with m.If(prob_index == C - 1):
                    m.d.sync += [self.o.valid.eq(1), state.eq(_State.OUT), producing.eq(0)]
            for c in range(C):
                is_label = Signal(name=f"is_label{c}")
                m.d.comb += [
                    is_label.eq(label == c),
                    self.o.payload.probs[c].eq(probs[c]),
                    self.o.payload.errors[c].eq(error_of(probs[c], is_label)),
                ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += [self.o.valid.eq(0), state.eq(_State.IDLE), idle_in.eq(1)]

        return m

    def _parallel_product(self, m, factor, index, valid, recip):
        """One product per cycle (``product_reg``: a register before the multiplier)."""
        in_flight = Const(0, 1)
        if self.dsp == "mult18x18d":
            # The block's input and output registers are the two stages; valid and index beside.
            m.submodules.product = multiplier = PipelinedMultiplier(factor.shape(), recip.shape(), self.dsp)
            m.d.comb += [multiplier.a.eq(factor), multiplier.b.eq(recip)]
            valid_q = Signal(name="factor_valid_q")
            index_q = Signal.like(index, name="factor_index_q")
            prod_valid = Signal()
            prod_index = Signal.like(index, name="prod_index")
            m.d.sync += [valid_q.eq(valid), index_q.eq(index), prod_valid.eq(valid_q), prod_index.eq(index_q)]
            return (prod_valid, prod_index, round_shift(multiplier.p, self.recip_shift - self.prob_frac),
                    valid_q | prod_valid)
        if self.product_reg:
            factor_q = Signal.like(factor, name="factor_q")
            valid_q = Signal(name="factor_valid_q")
            index_q = Signal.like(index, name="factor_index_q")
            m.d.sync += [factor_q.eq(factor), valid_q.eq(valid), index_q.eq(index)]
            factor, valid, index = factor_q, valid_q, index_q
            in_flight = valid_q
        product = Signal(unsigned(len(factor) + self.quotient_bits))
        prod_valid = Signal()
        prod_index = Signal.like(index, name="prod_index")
        m.d.sync += [product.eq(factor * recip), prod_valid.eq(valid), prod_index.eq(index)]
        return (prod_valid, prod_index, round_shift(product, self.recip_shift - self.prob_frac),
                in_flight | prod_valid)

    def _serial_product(self, m, factor, index, take, recip, release):
        """Shift and add, one bit of ``E_c`` per cycle (LSB first): ``exp_bits + 1`` cycles a product.

        The product is then ``done`` and stays in ``{hi, lo}`` until the cycle of ``release``
        (always: a one-cycle ``done``).

        ``acc`` is ``{hi, lo}`` with ``lo = E_c`` at the start; each cycle adds ``ρ`` to ``hi`` when
        ``lo``'s bit 0 is set and shifts the whole right by one, so ``{hi, lo}`` ends as
        ``E_c ρ + hi_0``. ``hi_0 = 2**(r - 1)`` is the rounding constant of ``rnd(·, r)``, so
        ``p_c`` is just ``acc >> r``: no rounding adder.
        """
        n = len(factor)
        r = self.recip_shift - self.prob_frac
        lo = Signal(n)
        hi = Signal(max(self.quotient_bits, r) + 1)
        steps = Signal(range(n + 1))
        index_q = Signal.like(index, name="mul_index")
        # `busy` is `steps != 0` as a flag: the decode was a LUT level before `take` and all
        # behind it (the table's stall, the ring's rotation).
        busy = Signal()
        done = Signal()
        # `ρ [lo's bit 0]` a cycle ahead, registered: `lo[0]` fanned out to every bit's AND gate
        # in front of the carry chain (a 4.8 ns net and a LUT level on the UP5K).
        addend = Signal.like(recip, name="mul_addend")
        total = hi + addend
        with m.If(take):
            m.d.sync += [lo.eq(factor), hi.eq(1 << (r - 1)), steps.eq(n), index_q.eq(index), busy.eq(1),
                         addend.eq(Mux(factor[0], recip, 0))]
        with m.Elif(busy):
            m.d.sync += [Cat(lo, hi).eq(Cat(lo, total) >> 1), steps.eq(steps - 1),
                         addend.eq(Mux(lo[1], recip, 0))]
            with m.If(steps == 1):
                m.d.sync += [busy.eq(0), done.eq(1)]
        with m.If(done & release):
            m.d.sync += done.eq(0)
        return busy, done, index_q, Cat(lo, hi)[r:]
