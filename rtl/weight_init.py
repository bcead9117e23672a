"""The engine initialises its own weights from the LFSR (``docs/numerics.md`` §3)."""

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layer_engine import LayerGeometry
from .lfsr import galois_step

__all__ = ["WeightInitialiser"]


class WeightInitialiser(wiring.Component):
    """Writes the initial weights, bit for bit :func:`golden.integer.network.initial_weights`.

    Two passes over the weight memories, one write per cycle:

    1. clear every word (biases start at 0, padding lanes stay 0);
    2. one LFSR stream from ``init_seed``, layer 0 first, row by row (output ``n`` outer, input
       ``m`` inner): ``W_k[n, m]`` takes the next ``init_bits[k]`` bits ``u`` as ``2u + 1 -
       2**init_bits[k]`` and is written into lane ``n mod P`` of word
       ``(n div P)(M_k + 1) + 1 + m`` (a masked write).

    The ``init_bits[k]`` LFSR steps of one weight are unrolled into one cycle
    (:func:`~rtl.lfsr.galois_step`), one unrolled copy per distinct width.

    Parameters
    ----------
    geometry : LayerGeometry

    Members
    -------
    start : In(1)
        Begin (ignored while busy).
    busy : Out(1)
    write : Out(stream.Signature(StructLayout({"layer", "addr", "mask", "weights"})))
        Masked word writes, as :attr:`~rtl.layer_engine.LayerEngine.write` takes them.
    """

    def __init__(self, geometry, word_layout):
        if not isinstance(geometry, LayerGeometry):
            raise TypeError("WeightInitialiser needs a LayerGeometry")
        self.geometry = geo = geometry
        self.word_layout = word_layout
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
        addr = Signal(geo.addr_bits)
        row = Signal(range(geo.max_fan_out))
        lane = Signal(range(P))
        col = Signal(range(geo.max_fan_in))
        base = Signal(geo.addr_bits)      # word address of (row div P, input 0)
        m.d.comb += self.busy.eq(clearing | filling)

        with m.If(self.start & ~self.busy):
            m.d.sync += [clearing.eq(1), layer.eq(0), addr.eq(0), state.eq(config.init_seed)]

        # The next weight and the state after its bits, per layer width.
        value = Signal(signed(max(config.init_bits) + 1))
        after = Signal(width)
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    bits = config.init_bits[k]
                    s, u = state, []
                    for step in range(bits):
                        bit, after_step = galois_step(s, poly, width)
                        # A signal per step keeps the expression linear in the step count.
                        s = Signal(width, name=f"lfsr{k}_{step}")
                        m.d.comb += s.eq(after_step)
                        u.append(bit)
                    # u[0] is the first (most significant) bit.
                    unsigned_value = 0
                    for bit in u:
                        unsigned_value = (unsigned_value << 1) | bit
                    m.d.comb += [value.eq(2 * unsigned_value + 1 - (1 << bits)), after.eq(s)]

        w = self.write.payload
        m.d.comb += [w.layer.eq(layer), self.write.valid.eq(self.busy)]
        with m.If(clearing):
            m.d.comb += [w.addr.eq(addr), w.mask.eq((1 << P) - 1), w.weights.eq(0)]
        with m.Else():
            m.d.comb += [w.addr.eq(base + 1 + col), w.mask.eq(1 << lane)]
            m.d.comb += [w.weights[p].eq(value) for p in range(P)]

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
        fan_in_plus_one = Signal(geo.addr_bits)
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    m.d.comb += fan_in_plus_one.eq(geo.fan_in[k] + 1)

        with m.If(self.write.valid & self.write.ready):
            with m.If(clearing):
                m.d.sync += addr.eq(addr + 1)
                with m.If(last_addr):
                    m.d.sync += [addr.eq(0), layer.eq(layer + 1)]
                    with m.If(layer == L - 1):
                        m.d.sync += [clearing.eq(0), filling.eq(1), layer.eq(0), row.eq(0),
                                     lane.eq(0), col.eq(0), base.eq(0)]
            with m.Else():
                m.d.sync += [state.eq(after), col.eq(col + 1)]
                with m.If(last_col):
                    m.d.sync += [col.eq(0), row.eq(row + 1), lane.eq(lane + 1)]
                    with m.If(lane == P - 1):
                        m.d.sync += [lane.eq(0), base.eq(base + fan_in_plus_one)]
                    with m.If(last_row):
                        m.d.sync += [row.eq(0), lane.eq(0), base.eq(0), layer.eq(layer + 1)]
                        with m.If(layer == L - 1):
                            m.d.sync += filling.eq(0)
        return m
