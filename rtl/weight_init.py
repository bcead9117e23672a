"""The engine initialises its own weights from the LFSR (``docs/numerics.md`` §3)."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

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
    intermediate states serve the narrower layers. The write address is one counter (``+1``
    along a row, ``+2`` into the next group past its bias word, back to the row's start).

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
        poly = config.lfsr_poly
        width = poly.bit_length() - 1

        state = Signal(width)
        clearing = Signal()
        filling = Signal()
        layer = Signal(geo.layer_shape)
        addr = Signal(geo.addr_bits)       # the word written: clearing, then (row, input col)
        row_start = Signal(geo.addr_bits)  # word address of (row div P, input 0)
        row = Signal(range(geo.max_fan_out))
        lane = Signal(range(P))
        col = Signal(range(geo.max_fan_in))
        generating = clearing | filling

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
        value = Signal(signed(max(config.init_bits) + 1))
        after = Signal(width)
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    b = config.init_bits[k]
                    u = bits_of[b]
                    # 2u + 1 - 2**b, b + 1 bits: u's top bit inverted is the sign (no adder).
                    m.d.comb += [value.eq(Cat(Const(1, 1), u[:b - 1], ~u[b - 1]).as_signed()),
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
                gen.payload.value.eq(Mux(clearing, 0, value)),
                self.write.valid.eq(out.o.valid), out.o.ready.eq(self.write.ready),
                w.layer.eq(out.o.payload.layer), w.addr.eq(out.o.payload.addr),
                w.mask.eq(out.o.payload.mask),
                *(w.weights[p].eq(out.o.payload.value) for p in range(P)),
            ]
        else:
            gen = self.write
            start = self.start & ~self.busy
            m.d.comb += self.busy.eq(generating)
            with m.If(~clearing):
                m.d.comb += [w.weights[p].eq(value) for p in range(P)]
        m.d.comb += [gen.valid.eq(generating), gen.payload.layer.eq(layer), gen.payload.addr.eq(addr)]
        with m.If(clearing):
            m.d.comb += gen.payload.mask.eq((1 << P) - 1)
        with m.Else():
            m.d.comb += gen.payload.mask.eq(1 << lane)

        last_addr = Signal()
        last_col = Signal()
        last_row = Signal()
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    m.d.comb += [
                        last_addr.eq(addr == geo.words[k] - 1),
                        last_col.eq(col == geo.fan_in[k] - 1),
                        last_row.eq(row == geo.fan_out[k] - 1),
                    ]

        # The next input's word is addr + 1; after a group's last row, the next group's first
        # input is addr + 2 (past its bias word); other rows restart at row_start.
        next_group = lane == P - 1
        past_bias = filling & last_col & next_group
        step = Signal(geo.addr_bits)
        if self.registered:
            # Both sums, then the choice: the column and lane compares stay off the carry chain
            # (one adder after them was the ULX3S's critical path, 10.37 ns, session 12). addr + 2
            # is addr[1:] + 1 above addr[0], or Yosys's opt_share folds the two adders back into one.
            m.d.comb += step.eq(Mux(past_bias, Cat(addr[0], addr[1:] + 1), addr + 1))
        else:
            m.d.comb += step.eq(addr + Mux(past_bias, 2, 1))     # one adder (the UP5K is full)
        with m.If(gen.valid & gen.ready):
            m.d.sync += addr.eq(step)
            with m.If(clearing):
                with m.If(last_addr):
                    m.d.sync += [addr.eq(0), layer.eq(layer + 1)]
                    with m.If(layer == L - 1):
                        m.d.sync += [clearing.eq(0), filling.eq(1), layer.eq(0), row.eq(0),
                                     lane.eq(0), col.eq(0), addr.eq(1), row_start.eq(1)]
            with m.Else():
                m.d.sync += [state.eq(after), col.eq(col + 1)]
                with m.If(last_col):
                    m.d.sync += [col.eq(0), row.eq(row + 1), lane.eq(lane + 1)]
                    with m.If(next_group):
                        m.d.sync += [lane.eq(0), row_start.eq(step)]
                    with m.Else():
                        m.d.sync += addr.eq(row_start)
                    with m.If(last_row):
                        m.d.sync += [row.eq(0), lane.eq(0), addr.eq(1), row_start.eq(1), layer.eq(layer + 1)]
                        with m.If(layer == L - 1):
                            m.d.sync += filling.eq(0)
        # Last, so it takes priority: constant loads become the flip-flops' synchronous set/reset.
        with m.If(start):
            m.d.sync += [clearing.eq(1), layer.eq(0), addr.eq(0), state.eq(config.init_seed)]
            if self.registered:
                m.d.sync += start.eq(0)
        return m
