"""The engine initialises its own weights from the LFSR (``docs/numerics.md`` §3)."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .fixed import select
from .layer_geometry import LayerGeometry
from .lfsr import galois_advance
from .skid_buffer import SkidBuffer

__all__ = ["WeightInitialiser"]


class WeightInitialiser(wiring.Component):
    """Writes the initial weights, bit for bit :func:`golden.integer.network.initial_weights`.

    Two passes over the weight memories, one write per cycle:

    1. clear every word (biases start at 0, padding lanes stay 0);
    2. one LFSR stream from ``init_seed``, layer 0 first, row by row (output ``n`` outer, input
       ``m`` inner): ``W_k[n, m]`` takes the next ``init_bits[k]`` bits ``u`` as ``2u + 1 -
       2**init_bits[k]`` and is written into lane ``n mod P`` of word
       ``(n div P)(M_k + 1) + 1 + m`` (a masked write).

    The ``init_bits[k]`` LFSR steps of one weight are unrolled into one cycle: one chain of flat
    XORs (:func:`~rtl.lfsr.galois_advance`) from the narrowest width to the widest, whose
    intermediate states serve the narrower layers; the value written is a register, loaded with
    the next weight at each write. The write address is one counter (``+1`` along a row, ``+2``
    into the next group past its bias word, back to the row's start). The counters' end flags
    are registers set a write ahead, and a pass leaves every register as after reset.

    Parameters
    ----------
    geometry : LayerGeometry
    word_layout : Layout
        A weight word (one value per lane).
    registered : bool
        Take ``start`` a cycle late and send the writes through a register slice
        (:class:`~rtl.skid_buffer.SkidBuffer`) of one value, the mask and the address, so that
        ``write`` and ``start`` are flip-flops on both sides and the LFSR's enable waits for no
        ``ready`` from outside: at 64 lanes on the ULX3S, the engine's state into ``start`` and
        the XOR chain into every lane's write data were 11.2 ns paths across the die. A cycle
        more at the start and a cycle of latency; the same writes in the same order.

    Members
    -------
    start : In(1)
        Begin (ignored while busy).
    busy : Out(1)
    write : Out(stream.Signature(StructLayout({"layer", "addr", "mask", "weights"})))
        Masked word writes, as :attr:`~rtl.layer_engine.LayerEngine.write` takes them.
    """

    def __init__(self, geometry, word_layout, *, registered=False):
        if not isinstance(geometry, LayerGeometry):
            raise TypeError("WeightInitialiser needs a LayerGeometry")
        self.geometry = geo = geometry
        self.word_layout = word_layout
        self.registered = bool(registered)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "write": Out(stream.Signature(data.StructLayout({
                "layer": geo.layer_shape,
                "addr": geo.addr_bits,
                "mask": geo.lanes,
                "weights": word_layout,
            }))),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geometry
        config, P, L = geo.config, geo.lanes, geo.n_layers
        fan_in, fan_out, words = geo.fan_in, geo.fan_out, geo.words
        poly = config.lfsr_poly
        width = poly.bit_length() - 1

        # The write in flight. A pass ends with every register back at its value after reset
        # (counters at 0, the LFSR at the seed), so that a start only sets `generating` and
        # `clearing`: the counters' enables are one LUT of `ready` and a flag (each LUT level in
        # front of a 20-40 flip-flop enable net cost 3-10 ns of routing on the UP5K).
        generating = Signal()              # clearing | filling
        clearing = Signal()
        filling = Signal()
        layer = Signal(geo.layer_shape)
        addr = Signal(geo.addr_bits)       # the word written: clearing, then (row, input col)
        row_start = Signal(geo.addr_bits, init=1)  # word address of (row div P, input 0)
        row = Signal(range(geo.max_fan_out))
        lane = Signal(range(P))
        col = Signal(range(geo.max_fan_in))
        value = Signal(signed(max(config.init_bits) + 1))  # the weight written (0 while clearing)
        state = Signal(width, init=config.init_seed)       # the LFSR before the next weight's bits

        # Flags of the write in flight, each set a write ahead from the counters: the column
        # compare, the +1/+2 choice, the address adder and the address multiplexer were one
        # 7-level path on the UP5K (25.6 ns).
        last_addr = Signal()      # clearing: the layer's last word
        clear_end = Signal()      # clearing: the last layer's last word
        last_col = Signal()       # filling: the row's last input (0 while clearing)
        last_row = Signal(init=fan_out[0] == 1)  # the layer's last output (with last_col)
        next_group = Signal(init=P == 1)         # lane P - 1, the group's last row (with last_col)
        past_bias = Signal()      # filling: last_col & next_group (the next input is addr + 2)
        layer_end = last_col & last_row
        last_layer = layer == L - 1
        final = layer_end & last_layer

        def by_layer(name, value_of):
            """``value_of(k)`` for the current layer ``k`` (constants fold per layer)."""
            return select(m, [value_of(k) for k in range(L)], layer, name=name)

        def before_last(counter, limit):
            # counter == limit - 2: the next count is the last (never, if the limit is 1).
            return counter == limit - 2 if limit >= 2 else 0

        # The next weight's bits and the state after them, per distinct width: one chain of flat
        # XORs (galois_advance) from the narrowest width up, shared by every layer.
        after_of, bits_of = {}, {}
        s, done, bits = state, 0, Const(0, 0)
        for b in sorted(set(config.init_bits)):
            more, s_next = galois_advance(s, poly, width, b - done)
            s = Signal(width, name=f"lfsr_after{b}")
            m.d.comb += s.eq(s_next)
            bits = Cat(more, bits)          # the first bit most significant
            after_of[b], bits_of[b], done = s, bits, b
        # The next weight's layer: the first after clearing, the following one past a layer's end.
        value_layer = Signal(geo.layer_shape)
        m.d.comb += value_layer.eq(Mux(clearing, 0, Mux(layer_end, layer + 1, layer)))
        next_value = Signal.like(value)
        after = Signal(width)
        with m.Switch(value_layer):
            for k in range(L):
                with m.Case(k):
                    b = config.init_bits[k]
                    u = bits_of[b]
                    # 2u + 1 - 2**b, b + 1 bits: u's top bit inverted is the sign (no adder).
                    m.d.comb += [next_value.eq(Cat(Const(1, 1), u[:b - 1], ~u[b - 1]).as_signed()),
                                 after.eq(after_of[b])]

        w = self.write.payload
        if self.registered:
            # One value for every lane (0 while clearing) in the slice, spread after it.
            m.submodules.slice = out = SkidBuffer(data.StructLayout({
                "layer": geo.layer_shape, "addr": geo.addr_bits, "mask": P, "value": value.shape()}))
            gen = out.i
            start = Signal()
            with m.If(self.start & ~self.busy):
                m.d.sync += start.eq(1)
            m.d.comb += [
                self.busy.eq(generating | start | out.busy),
                gen.payload.value.eq(value),
                self.write.valid.eq(out.o.valid), out.o.ready.eq(self.write.ready),
                w.layer.eq(out.o.payload.layer), w.addr.eq(out.o.payload.addr),
                w.mask.eq(out.o.payload.mask),
                *(w.weights[p].eq(out.o.payload.value) for p in range(P)),
            ]
        else:
            gen = self.write
            start = self.start & ~self.busy
            m.d.comb += [self.busy.eq(generating), *(w.weights[p].eq(value) for p in range(P))]
        m.d.comb += [gen.valid.eq(generating), gen.payload.layer.eq(layer), gen.payload.addr.eq(addr)]
        with m.If(clearing):
            m.d.comb += gen.payload.mask.eq((1 << P) - 1)
        with m.Else():
            m.d.comb += gen.payload.mask.eq(1 << lane)

        # The next input's word is addr + 1; after a group's last row, the next group's first
        # input is addr + 2 (past its bias word); other rows restart at row_start.
        step = Signal(geo.addr_bits)
        if self.registered:
            # Both sums, then the choice: the choice stays off the carry chain (one adder after
            # the column and lane compares was the ULX3S's critical path, 10.37 ns, session 12).
            # addr + 2 is addr[1:] + 1 above addr[0], or Yosys's opt_share folds the two adders
            # back into one.
            m.d.comb += step.eq(Mux(past_bias, Cat(addr[0], addr[1:] + 1), addr + 1))
        else:
            m.d.comb += step.eq(addr + Mux(past_bias, 2, 1))     # one adder (the UP5K is full)

        # The flags' next values when a counter steps on (not past its end) ...
        addr_before_last = by_layer("addr_before_last", lambda k: before_last(addr, words[k]))
        col_before_last = by_layer("col_before_last", lambda k: before_last(col, fan_in[k]))
        row_before_last = by_layer("row_before_last", lambda k: before_last(row, fan_out[k]))
        lane_before_last = before_last(lane, P)
        # ... and when it starts again (a count of 1 is at its end at once; a layer's words are
        # at least 2). After the last layer, the first layer's row flags: they wait for the next pass.
        fan_in_1 = by_layer("fan_in_1", lambda k: fan_in[k] == 1)
        next_fan_in_1 = by_layer("next_fan_in_1", lambda k: k + 1 < L and fan_in[k + 1] == 1)
        next_fan_out_1 = by_layer("next_fan_out_1", lambda k: fan_out[(k + 1) % L] == 1)
        assert min(words) >= 2

        take = gen.valid & gen.ready
        if self.registered:
            with m.If(take):
                m.d.sync += addr.eq(step)
                with m.If(clearing):
                    with m.If(last_addr):
                        m.d.sync += addr.eq(last_layer)     # the first weight's word is 1
                with m.Elif(last_col):
                    with m.If(last_row):
                        m.d.sync += addr.eq(~last_layer)
                    with m.Elif(~next_group):
                        m.d.sync += addr.eq(row_start)
        else:
            # The same choice as one multiplexer after the adder, its select and its other input
            # from flags and registers only: as a priority chain it was 3 LUT levels after the
            # carry chain on the UP5K (21.4 ns).
            restart = (clearing & last_addr) | (~clearing & last_col & (last_row | ~next_group))
            restart_addr = Mux(clearing, last_layer, Mux(last_row, ~last_layer, row_start))
            with m.If(take):
                m.d.sync += addr.eq(Mux(restart, restart_addr, step))
        with m.If(take & ((clearing & last_addr) | layer_end)):
            m.d.sync += layer.eq(Mux(last_layer, 0, layer + 1))
        with m.If(gen.ready & clearing):
            m.d.sync += [last_addr.eq(addr_before_last), clear_end.eq(addr_before_last & last_layer)]
        with m.If(gen.ready & clear_end):
            m.d.sync += [clearing.eq(0), filling.eq(1)]
        with m.If(gen.ready & final):
            m.d.sync += [filling.eq(0), generating.eq(0)]

        # The next weight (the first one after clearing); the column and its flags.
        with m.If(gen.ready & (filling | clear_end)):
            m.d.sync += [value.eq(next_value), state.eq(after)]
            with m.If(clear_end):
                m.d.sync += [last_col.eq(fan_in[0] == 1), past_bias.eq(fan_in[0] == 1 and P == 1)]
            with m.Elif(~last_col):
                m.d.sync += [col.eq(col + 1), last_col.eq(col_before_last),
                             past_bias.eq(col_before_last & next_group)]
            with m.Elif(~last_row):
                m.d.sync += [col.eq(0), last_col.eq(fan_in_1),
                             past_bias.eq(fan_in_1 & Mux(next_group, P == 1, lane_before_last))]
            with m.Else():
                m.d.sync += [col.eq(0), last_col.eq(next_fan_in_1), past_bias.eq(next_fan_in_1 & (P == 1))]
                with m.If(last_layer):
                    m.d.sync += [value.eq(0), state.eq(config.init_seed)]
        # The row and its flags (last_col is 0 but while filling).
        with m.If(gen.ready & last_col):
            m.d.sync += [row.eq(row + 1), lane.eq(lane + 1), last_row.eq(row_before_last),
                         next_group.eq(lane_before_last)]
            with m.If(next_group):
                m.d.sync += [lane.eq(0), row_start.eq(step), next_group.eq(P == 1)]
            with m.If(last_row):
                m.d.sync += [row.eq(0), lane.eq(0), row_start.eq(1), last_row.eq(next_fan_out_1),
                             next_group.eq(P == 1)]
        with m.If(start):
            m.d.sync += [generating.eq(1), clearing.eq(1)]
            if self.registered:
                m.d.sync += start.eq(0)
        return m
