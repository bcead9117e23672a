"""The weight update of ``docs/numerics.md`` §10 for one memory word of P weights per cycle."""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .fixed import saturate

__all__ = ["OuterProductUpdater"]


class OuterProductUpdater(wiring.Component):
    """``W <- sat(W - rnd(δ·x, lr_shift[k] + o))`` for the ``P`` weights of one word, one word per cycle.

    The products ``δ_p · x_m`` come from the MAC lanes (the same multipliers as the forward pass);
    this unit is the fabric behind them: the per-layer rounding shift, the subtraction and the
    saturation to ``weight_bits[k]``. The shift is a constant per layer plus the run-time
    learning-rate offset ``o`` (``docs/numerics.md`` §12, at most ``len(lr_decay)``):
    ``rnd(p, s + o) = ((p + 2**(s+o-1)) >> s) >> o`` exactly (floor shifts compose), so it is one
    adder with a small choice of constants, wires, and an ``o``-way shifter, shared by the layers. A bias word
    is the same operation with ``x = 2**bias_shift(k)`` (§10: the bias's input is 1.0), so it
    needs no case of its own. One register stage (two with ``stages=2``: the rounded, shifted
    products are registered before the ``o``-way shifter, the subtraction and the saturation;
    three with ``stages=3``: the ``o``-way shifter's outputs are registered too); no
    back-pressure (the write port always takes a word). From stage 2 on, the layer and the offset
    are registered once per :attr:`COPY_LANES` lanes, so no one flip-flop fans out to all ``P``.

    With ``stochastic``, the rounding constant is the lane's draw ``ρ`` instead of
    ``2**(s+o-1)``: ``((p + ρ) >> s) >> o`` (§10; the draws come from
    :class:`~rtl.rounding_draws.RoundingDraws`).

    Parameters
    ----------
    lanes : int
        ``P``, the weights per word.
    weight_bits : tuple of int
        Per layer, the signed weight width; words carry ``max(weight_bits)``-bit lanes.
    lr_shift : tuple of int
        Per layer, the update's rounding shift.
    product_bits : int
        Signed width of a product (``EngineConfig.update_product_bits``: every ``δ x`` fits).
    addr_bits : int
        Width of the word address carried alongside.
    max_offset : int
        Largest learning-rate offset ``o``.
    stochastic : bool
        Stochastic rounding: add ``draws`` instead of half an LSB.
    stages : int
        Register stages, 1, 2 or 3: the latency from ``i`` to ``o``.
    rounded_products : bool
        The products come with the rounding constant ``2**(s+o-1)`` already added (the SPRAM
        lanes load it into their accumulators before an update op's multiply): no rounding adder
        here. Nearest rounding only; ``product_bits`` is then one more than the products'.
    group_copies : bool
        Take the word's layer once more per :attr:`COPY_LANES` lanes (``group_layer``, each copy
        from a flip-flop of the caller's) for stage A's per-layer shifts, and give ``o.valid``
        once per :attr:`COPY_LANES` lanes (``group_valid``, for the write port's data
        multiplexers): no one flip-flop drives all ``P`` lanes there (1165 and 1228 loads at 64
        lanes on the ULX3S).

    Members
    -------
    i : In(stream.Signature(data.StructLayout({"layer", "addr", "weights": Array(P), "products": Array(P)}), always_ready=True))
        The word as read (lanes of ``signed(max(weight_bits))``) and the lane products.
    o : Out(stream.Signature(data.StructLayout({"layer", "addr", "weights": Array(P)}), always_ready=True))
        The updated word, ``stages`` cycles later, for the memory's write port.
    lr_offset : In(range(max_offset + 1))
        ``o``, added to every layer's ``lr_shift``.
    draws : In(data.ArrayLayout(unsigned(max(lr_shift) + max_offset), P))
        With ``stochastic``: the lanes' draws for the word at ``i``.
    busy : Out(1)
        A word is inside (between ``i`` and ``o``) or on ``o``.
    group_layer : In(data.ArrayLayout(layer_shape, ceil(P / COPY_LANES)))
    group_offset : In(data.ArrayLayout(range(max_offset + 1), ceil(P / COPY_LANES)))
        With ``group_copies``: copies of ``i.payload.layer`` and of ``lr_offset``, copy ``j``
        for lanes ``j * COPY_LANES`` up; each group's rounding constant is decoded from its own
        (one constant for all ``P`` lanes was a 64-way fan-out in front of their adders, 11.2 ns
        on the ULX3S).
    group_valid : Out(ceil(P / COPY_LANES))
        With ``group_copies``: copies of ``o.valid``, one per group of lanes.
    """

    #: Lanes per copy of the registered layer and offset (stages 2 and 3).
    COPY_LANES = 4

    def __init__(self, *, lanes, weight_bits, lr_shift, product_bits, addr_bits, max_offset=0,
                 stochastic=False, stages=1, group_copies=False, rounded_products=False):
        if stages not in (1, 2, 3):
            self._MustUse__silence = True
            raise ValueError(f"OuterProductUpdater: stages must be 1, 2 or 3, got {stages!r}")
        if len(weight_bits) != len(lr_shift) or not weight_bits:
            raise ValueError("OuterProductUpdater: weight_bits and lr_shift need one entry per layer")
        if min(lr_shift) < 0:
            raise ValueError(f"OuterProductUpdater: negative lr_shift in {lr_shift}")
        self.lanes = lanes
        self.weight_bits = tuple(weight_bits)
        self.lr_shift = tuple(lr_shift)
        self.product_bits = product_bits
        self.weight_shape = signed(max(weight_bits))
        self.layer_shape = unsigned(ceil_log2(len(weight_bits)) or 1)
        self.addr_bits = addr_bits
        self.max_offset = max_offset
        self.stochastic = stochastic
        self.stages = stages
        self.word_layout = data.ArrayLayout(self.weight_shape, lanes)
        self.group_copies = bool(group_copies)
        if rounded_products and stochastic:
            self._MustUse__silence = True
            raise ValueError("OuterProductUpdater: rounded_products needs nearest rounding")
        self.rounded_products = bool(rounded_products)
        self.copies = (lanes + self.COPY_LANES - 1) // self.COPY_LANES
        copy_members = {"group_layer": In(data.ArrayLayout(self.layer_shape, self.copies)),
                        "group_offset": In(data.ArrayLayout(range(max_offset + 1), self.copies)),
                        "group_valid": Out(self.copies)} if self.group_copies else {}
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "layer": self.layer_shape,
                "addr": unsigned(addr_bits),
                "weights": self.word_layout,
                "products": data.ArrayLayout(signed(product_bits), lanes),
            }), always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "layer": self.layer_shape,
                "addr": unsigned(addr_bits),
                "weights": self.word_layout,
            }), always_ready=True)),
            "lr_offset": In(range(max_offset + 1)),
            "draws": In(data.ArrayLayout(unsigned(max(max(lr_shift) + max_offset, 1)), lanes)),
            "busy": Out(1),
            **copy_members,
        })

    @classmethod
    def from_config(cls, config, lanes, addr_bits, stages=1, group_copies=False, rounded_products=False,
                    offset_in_products=False):
        """The updater of an :class:`~golden.integer.config.EngineConfig` with ``lanes`` lanes (with
        ``rounded_products``, products of ``update_product_bits + 1`` bits).

        With ``offset_in_products`` (and ``rounded_products``) the products come as
        ``δ x 2**(D - o) + 2**(s + D - 1)``, ``D = len(lr_decay)`` (the layer engine scales the
        update ops' ``x``): ``rnd(δ x, s + o) = rnd(δ x 2**(D - o), s + D)`` exactly, so the
        updater shifts by ``lr_shift + D``, a constant per layer, and has no offset shifter
        (``max_offset`` 0); the products are ``D`` bits wider.
        """
        decays = len(config.lr_decay)
        if offset_in_products and not rounded_products:
            raise ValueError("OuterProductUpdater: offset_in_products needs rounded_products")
        lr_shift = tuple(s + decays for s in config.lr_shift) if offset_in_products else config.lr_shift
        return cls(lanes=lanes, weight_bits=config.weight_bits, lr_shift=lr_shift,
                   product_bits=config.update_product_bits + bool(rounded_products) + offset_in_products * decays,
                   addr_bits=addr_bits, max_offset=0 if offset_in_products else decays,
                   stochastic=config.rounding == "stochastic", stages=stages, group_copies=group_copies,
                   rounded_products=rounded_products)

    def elaborate(self, platform):
        m = Module()
        i, o = self.i.payload, self.o.payload

        # Stage A (from i): the rounding constant, the sum, the per-layer shift. Stage B: the
        # offset's shift. Stage C (to o): the subtraction, the saturation. stages=2 registers
        # between A and B, stages=3 between B and C too; what the later stages need (valid,
        # layer, address, weights, offset) travels beside.
        # The layer and the offset steer every lane's shifter and saturation: after stage A they
        # are registered once per group of COPY_LANES lanes (kept apart from Yosys's opt_merge by
        # `keep`, see boards/flow.py), so no one flip-flop drives all P lanes (the offset's
        # fan-out was 2.7 ns of a 10.4 ns path on the 24-lane 25F).
        copies = self.copies
        valid, addr, weights = self.i.valid, i.addr, i.weights.as_value()
        layer, offset = [i.layer] * copies, [self.lr_offset] * copies
        if self.group_copies:
            layer = [self.group_layer[j] for j in range(copies)]
            offset = [self.group_offset[j] for j in range(copies)]
        busy = []

        def stage(name):
            nonlocal valid, layer, addr, weights, offset
            regs = (Signal(name=f"valid_{name}"), Signal(self.addr_bits, name=f"addr_{name}"),
                    # Flat (a View's per-lane wires can collide with ABC9's names: YosysHQ/yosys#4349).
                    Signal(self.word_layout.size, name=f"weights_{name}"))
            m.d.sync += [r.eq(v) for r, v in zip(regs, (valid, addr, weights))]
            valid, addr, weights = regs
            layer_regs = [Signal(self.layer_shape, name=f"layer_{name}{j}", attrs={"keep": 1})
                          for j in range(copies)]
            offset_regs = [Signal.like(self.lr_offset, name=f"offset_{name}{j}", attrs={"keep": 1})
                           for j in range(copies)]
            m.d.sync += [r.eq(v) for r, v in zip(layer_regs + offset_regs, layer + offset)]
            layer, offset = layer_regs, offset_regs
            busy.append(valid)

        # One datapath per lane, shared by the layers: the rounding constant, the shift and the
        # saturation width are per-layer constants chosen by multiplexers around one adder and
        # one subtractor (a copy per layer doubled the updater's LUTs).
        # With nearest rounding, product bits below 2**(min lr_shift - 1) never reach a result
        # (the rounding constant is a multiple of it, and floor shifts compose): drop them first.
        low = 0 if self.stochastic else max(min(self.lr_shift) - 1, 0)
        half_shape = range(((1 << (max(self.lr_shift) + self.max_offset)) >> 1 >> low) + 1)
        if self.group_copies:
            halves = [Signal(half_shape, name=f"half{j}") for j in range(copies)]
            sources = list(zip(layer, offset))
        else:
            halves = [Signal(half_shape, name="half")]
            sources = [(i.layer, self.lr_offset)]
        for half, (half_layer, half_offset) in zip(halves, sources):
            with m.Switch(half_layer):
                for k, shift in enumerate(self.lr_shift):
                    with m.Case(k):
                        with m.Switch(half_offset):
                            for extra in range(self.max_offset + 1):
                                with m.Case(extra):
                                    # 2**(shift + o - 1), or 0 when shift + o = 0.
                                    m.d.comb += half.eq(((1 << (shift + extra)) >> 1) >> low)
        min_shift = min(self.lr_shift) - low
        lane_values = []
        for p in range(self.lanes):
            # Two bits for the rounding adder's carry and sign; none without the adder.
            total = Signal(signed(self.product_bits - low + 2 * (not self.rounded_products)), name=f"total{p}")
            if self.rounded_products:
                # The products already hold the rounding constant (a multiple of 2**low).
                m.d.comb += total.eq(i.products[p] >> low)
            else:
                bias = self.draws[p] if self.stochastic else halves[p // self.COPY_LANES if self.group_copies else 0]
                m.d.comb += total.eq((i.products[p] >> low) + bias)
            shifted = Signal(signed(len(total) - min_shift), name=f"shifted{p}")
            with m.Switch(layer[p // self.COPY_LANES]):
                for k, shift in enumerate(self.lr_shift):
                    with m.Case(k):
                        m.d.comb += shifted.eq(total >> (shift - low))
            lane_values.append(shifted)
        # With rounded products (the UP5K's) the registers hold the values' complements ~v: the
        # subtraction is then W + ~v + 1, an addition, with no inverter (a LUT level) in front of
        # its carry chain. (~v >> o = ~(v >> o): the complement commutes with the shifts.)
        complemented = self.rounded_products and self.stages >= 2
        # Without an offset shift after it, the value can be clamped to wmax + 1 bits first: every
        # W - v that saturates still does (|W| <= 2**(wmax - 1)), and the others are unchanged, so the
        # subtraction is wmax + 2 bits and its saturation one LUT per bit (three top bits and one).
        wmax = self.weight_shape.width
        if complemented and self.max_offset == 0 and len(lane_values[0]) > wmax + 1:
            lane_values = [saturate(v, wmax + 1) for v in lane_values]
        if self.stages >= 2:
            stage("b")
            lane_values = [self._register(m, ~v if complemented else v, f"shifted{p}_b")
                           for p, v in enumerate(lane_values)]
        lane_values = [v >> offset[p // self.COPY_LANES] for p, v in enumerate(lane_values)]
        if self.stages >= 3:
            stage("c")
            lane_values = [self._register(m, v, f"scaled{p}_c") for p, v in enumerate(lane_values)]
        weights = data.View(self.word_layout, weights)
        if self.group_copies:
            # `keep`: Yosys would merge the copies with o.valid.
            group_valid = [Signal(name=f"valid_o{j}", attrs={"keep": 1}) for j in range(copies)]
            m.d.sync += [v.eq(valid) for v in group_valid]
            m.d.comb += self.group_valid.eq(Cat(*group_valid))
        m.d.sync += [
            self.o.valid.eq(valid),
            o.layer.eq(layer[0]),
            o.addr.eq(addr),
        ]
        m.d.comb += self.busy.eq(Cat(self.o.valid, *busy).any())
        widths = sorted(set(self.weight_bits))
        for p, value in enumerate(lane_values):
            diff = Signal(signed(max(len(value), self.weight_shape.width) + 1), name=f"diff{p}")
            if complemented:
                # (2W + 1) + (2~v + 1) = 2(W - v): the carry into bit 1 is the "+ 1".
                doubled = Cat(Const(1, 1), weights[p]).as_signed() + Cat(Const(1, 1), value).as_signed()
                m.d.comb += diff.eq(doubled[1:].as_signed())
            else:
                m.d.comb += diff.eq(weights[p] - value)
            if len(widths) == 1:
                with m.Switch(layer[p // self.COPY_LANES]):
                    for k, bits in enumerate(self.weight_bits):
                        with m.Case(k):
                            m.d.sync += o.weights[p].eq(saturate(diff, bits))
                continue
            # Layers of different widths: one clamp whose limit follows the layer. Where the
            # layer's width holds the difference its bits are the result (sign-extended);
            # otherwise bit i of the limit is the sign from bit bits-1 up and its inverse below:
            # one LUT per bit, not a saturation per width and a multiplexer between them.
            fits = Signal(name=f"fits{p}")
            narrow = {b: Signal(name=f"narrow{p}_{b}") for b in widths}   # the layer is b bits wide
            with m.Switch(layer[p // self.COPY_LANES]):
                for k, bits in enumerate(self.weight_bits):
                    with m.Case(k):
                        top = diff[bits - 1:]
                        m.d.comb += [fits.eq(top.all() | ~top.any()), narrow[bits].eq(1)]
            sign = diff[-1]
            result = []
            for i in range(self.weight_shape.width):
                # The limit's bit i is the sign where the layer's width is at most i + 1.
                at_top = Cat(*(narrow[b] for b in widths if b <= i + 1)).any() if i + 1 >= widths[0] else Const(0)
                result.append(Mux(fits, diff[i], Mux(at_top, sign, ~sign)))
            m.d.sync += o.weights[p].eq(Cat(*result))
        return m

    @staticmethod
    def _register(m, value, name):
        reg = Signal(value.shape(), name=name)
        m.d.sync += reg.eq(value)
        return reg
