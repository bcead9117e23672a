"""Accumulator -> activation: rounding shift, saturation, and the derivative bit."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ACTIVATIONS", "Requantiser"]

# None: the classifier's logits, saturated to the full two's-complement range, no derivative.
ACTIVATIONS = ("relu", "hardtanh", None)


class Requantiser(wiring.Component):
    """A pipeline (one stage, or two) from a MAC accumulator to a layer output, as the golden model does it.

    With ``q = (acc + 2**(shift-1)) >> shift`` (:func:`golden.integer.arith.round_shift`: round to
    nearest, ties towards +infinity, the bias already inside ``acc``):

    - ``"relu"``: ``value = clamp(q, 0, 2**out_bits - 1)`` (unsigned), ``fprime = 1 <= q <= max``;
    - ``"hardtanh"``: ``value = clamp(q, -max, max)`` with ``max = 2**(out_bits-1) - 1``
      (symmetric: ``-2**(out_bits-1)`` never occurs), ``fprime = -max <= q <= max``;
    - ``None`` (logits): ``value = saturate(q, out_bits)``, the full two's-complement range.

    These are :meth:`golden.integer.network.IntegerNetwork._activate` and the logit path of
    :meth:`~golden.integer.network.IntegerNetwork.train_step`. ``fprime`` is 1 exactly where the
    clamp left ``q`` unchanged, except that ReLU's slope is 0 at ``q = 0``.

    Parameters
    ----------
    acc_bits : int
        Signed accumulator width.
    shift : int
        Rounding shift (``act_shift[k]``); 0 passes the accumulator through unrounded.
    out_bits : int
        Output width (``act_bits`` for hidden layers, ``logit_bits`` for the classifier).
    activation : str or None
        One of :data:`ACTIVATIONS`.
    parallel_clamp : bool
        Timing: compare the accumulator itself with the clamp bounds (``q`` is monotonic in it:
        ``q >= b`` exactly when ``acc >= b 2**shift - 2**(shift-1)``), beside a rounding adder
        only as wide as the output's bits, instead of comparing ``q`` behind the full-width adder
        (a 12 ns path at 64 lanes on the ULX3S; on the UP5K two carry chains in series, 27 ns,
        and 44 logic cells more than beside). The same results; off, the compares are on
        ``q``'s bits, not ``acc``'s.
    stages : int
        1, or 2: the compares and ``q`` are registered before the clamp's multiplexer into ``o``
        (a cycle more, the same throughput).
    tag_bits : int
        The width of ``i_tag`` and ``o_tag``: a tag that travels with each accumulator (0: none).
    every_other : bool
        With one stage: ``i.ready`` is ``~o.valid``, a register, not ``~o.valid | o.ready``, so
        the consumer's readiness is not in front of the producer's enables (on the UP5K it was
        6-8 LUT levels into the bank head's), for one accumulator every other cycle at most.

    Members
    -------
    i : In(stream.Signature(signed(acc_bits)))
        Accumulators.
    o : Out(stream.Signature(data.StructLayout({"value": value_shape, "fprime": 1})))
        Outputs, ``stages`` cycles later; ``value_shape`` is ``unsigned(out_bits)`` for
        ``"relu"``, ``signed(out_bits)`` otherwise. No ``fprime`` field for logits.
    busy : Out(1)
        An accumulator is inside (an output on ``o``, or with two stages in the first).
    i_tag : In(tag_bits)
    o_tag : Out(tag_bits)
        With ``tag_bits``: ``o_tag`` is the ``i_tag`` that came with ``o``'s accumulator.
    """

    def __init__(self, *, acc_bits, shift, out_bits, activation, parallel_clamp=False, stages=1, tag_bits=0,
                 every_other=False):
        if stages not in (1, 2):
            raise ValueError(f"Requantiser stages must be 1 or 2, got {stages!r}")
        if every_other and stages != 1:
            self._MustUse__silence = True
            raise ValueError(f"Requantiser every_other needs one stage, got stages={stages}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Requantiser activation must be one of {ACTIVATIONS}, got {activation!r}")
        if shift < 0 or shift >= acc_bits:
            raise ValueError(f"Requantiser shift must be 0..acc_bits-1={acc_bits - 1}, got {shift}")
        if out_bits < 2:
            raise ValueError(f"Requantiser out_bits must be >= 2, got {out_bits}")
        self.acc_bits = acc_bits
        self.parallel_clamp = bool(parallel_clamp)
        self.stages = stages
        self.tag_bits = tag_bits
        self.every_other = bool(every_other)
        self.shift = shift
        self.out_bits = out_bits
        self.activation = activation
        if activation == "relu":
            self.value_shape = unsigned(out_bits)
            self.out_min, self.out_max = 0, (1 << out_bits) - 1
            self.fprime_min = 1
        elif activation == "hardtanh":
            self.value_shape = signed(out_bits)
            self.out_max = (1 << (out_bits - 1)) - 1
            self.out_min = self.fprime_min = -self.out_max
        else:
            self.value_shape = signed(out_bits)
            self.out_min, self.out_max = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
        fields = {"value": self.value_shape}
        if activation is not None:
            fields["fprime"] = 1
        super().__init__({
            "i": In(stream.Signature(signed(acc_bits))),
            "o": Out(stream.Signature(data.StructLayout(fields))),
            "busy": Out(1),
            **({"i_tag": In(tag_bits), "o_tag": Out(tag_bits)} if tag_bits else {}),
        })

    @classmethod
    def from_config(cls, config, layer, *, parallel_clamp=False, stages=1, tag_bits=0, every_other=False):
        """The requantiser of layer ``layer`` of an :class:`~golden.integer.config.EngineConfig`."""
        if not 0 <= layer < config.n_layers:
            raise ValueError(f"Requantiser.from_config: layer {layer} not in 0..{config.n_layers - 1}")
        if layer == config.n_layers - 1:
            return cls(acc_bits=config.acc_bits, shift=config.act_shift[layer],
                       out_bits=config.logit_bits, activation=None, parallel_clamp=parallel_clamp, stages=stages,
                       tag_bits=tag_bits, every_other=every_other)
        return cls(acc_bits=config.acc_bits, shift=config.act_shift[layer],
                   out_bits=config.act_bits, activation=config.activation, parallel_clamp=parallel_clamp,
                   stages=stages, tag_bits=tag_bits, every_other=every_other)

    def elaborate(self, platform):
        m = Module()

        acc = self.i.payload
        shift, half = self.shift, (1 << (self.shift - 1)) if self.shift else 0
        if self.parallel_clamp:
            # q = (acc + half) >> shift is monotonic in acc: each clamp compare is acc against a
            # constant, beside the adder, which only makes the bits of q that reach the output.
            def q_at_least(bound):
                # q >= bound  <=>  acc + half >= bound * 2**shift
                return acc >= (bound << shift) - half

            width = min(shift + self.out_bits, len(acc))
            q = (acc[:width] + half)[shift:shift + self.out_bits] if shift else acc[:width]
            over, under = q_at_least(self.out_max + 1), ~q_at_least(self.out_min)
        else:
            # One more bit: acc + 2**(shift-1) can pass the accumulator's maximum.
            q = (acc + half) >> shift if shift else acc
            over, under = q > self.out_max, q < self.out_min
        if self.activation is not None:
            if self.parallel_clamp:
                fprime = q_at_least(self.fprime_min) & ~over
            else:
                fprime = (q >= self.fprime_min) & (q <= self.out_max)
        else:
            fprime = 0
        tag = self.i_tag if self.tag_bits else None
        take = self.i.valid & self.i.ready
        advance = ~self.o.valid | self.o.ready          # o is free, or taken now
        if self.stages == 2:
            # Stage 1: q, its compares and f' (and the tag).
            valid1, q1 = Signal(), Signal(len(q), name="q1")
            over1, under1, fprime1 = Signal(), Signal(), Signal()
            m.d.comb += [self.i.ready.eq(~valid1 | advance), self.busy.eq(valid1 | self.o.valid)]
            with m.If(self.i.ready):
                m.d.sync += [valid1.eq(self.i.valid), q1.eq(q), over1.eq(over), under1.eq(under),
                             fprime1.eq(fprime)]
                if tag is not None:
                    tag1 = Signal(self.tag_bits, name="tag1")
                    m.d.sync += tag1.eq(tag)
            q = q1.as_signed() if q.shape().signed else q1
            take, over, under, fprime = valid1 & advance, over1, under1, fprime1
            if tag is not None:
                tag = tag1
        else:
            m.d.comb += [self.i.ready.eq(~self.o.valid if self.every_other else advance), self.busy.eq(self.o.valid)]
        value = Mux(over, self.out_max, Mux(under, self.out_min, q))
        with m.If(take):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.value.eq(value),
            ]
            if self.activation is not None:
                m.d.sync += self.o.payload.fprime.eq(fprime)
            if tag is not None:
                m.d.sync += self.o_tag.eq(tag)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        return m
