"""The stochastic-rounding draws of ``docs/numerics.md`` §10, one word of P draws per update group."""

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layer_geometry import LayerGeometry
from .lfsr import galois_step

__all__ = ["RoundingDraws"]


class RoundingDraws(wiring.Component):
    """Draws ``ρ_n`` of ``lr_shift[k] + o`` bits from the ``round_seed`` LFSR, in update order.

    Bit for bit the stream of ``IntegerNetwork._update`` with ``rounding = "stochastic"``: one
    draw per real output neuron and step, layer 0 first, neuron 0 first, continuing across steps
    (the LFSR is never restarted). A draw takes the next ``s = lr_shift[k] + o`` bits, first bit
    most significant; its ``s`` LFSR steps are unrolled into one cycle (one copy per layer and
    offset), so a group's ``P`` draws take ``P`` cycles.

    Double-buffered: while the lanes update a group with the ``current`` draws, the ``next``
    group's are generated. The sequencer issues a group's first update word only when ``ready``
    (the next draws are complete and not yet claimed) and claims them (``claim``); they become
    ``current`` when that word reaches the updater (``take``), which starts the next group's.

    Parameters
    ----------
    geometry : LayerGeometry

    Members
    -------
    start : In(1)
        A training step begins: generate from layer 0, group 0 (the host changes ``lr_offset``
        only between steps).
    lr_offset : In(range(len(lr_decay) + 1))
    ready : Out(1)
        The next group's draws are complete and unclaimed.
    claim : In(1)
        The sequencer issued the next group's first update word.
    take : In(1)
        That word reached the updater: ``next`` becomes ``current``.
    current : Out(data.ArrayLayout(unsigned(max_shift), P))
        The draws of the group being updated (0 for padding lanes).
    next : Out(data.ArrayLayout(unsigned(max_shift), P))
        The next group's draws (what ``take`` makes ``current``).
    """

    def __init__(self, geometry):
        if not isinstance(geometry, LayerGeometry):
            raise TypeError("RoundingDraws needs a LayerGeometry")
        self.geometry = geo = geometry
        config = geo.config
        self.max_offset = len(config.lr_decay)
        self.max_shift = max(config.lr_shift) + self.max_offset
        super().__init__({
            "start": In(1),
            "lr_offset": In(range(self.max_offset + 1)),
            "ready": Out(1),
            "claim": In(1),
            "take": In(1),
            "current": Out(data.ArrayLayout(unsigned(max(self.max_shift, 1)), geo.lanes)),
            "next": Out(data.ArrayLayout(unsigned(max(self.max_shift, 1)), geo.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geometry
        config, P, L = geo.config, geo.lanes, geo.n_layers
        poly = config.lfsr_poly
        width = poly.bit_length() - 1

        state = Signal(width, init=config.round_seed)
        layer = Signal(geo.layer_shape)
        group = Signal(range(geo.max_groups))
        lane = Signal(range(P))
        filling = Signal()
        full = Signal()
        claimed = Signal()
        following = self.next
        m.d.comb += self.ready.eq(full & ~claimed)

        # One draw: s = lr_shift[k] + o bits and the state after them, for every (k, o).
        draw = Signal(max(self.max_shift, 1))
        after = Signal(width)
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    with m.Switch(self.lr_offset):
                        for o in range(self.max_offset + 1):
                            with m.Case(o):
                                s, bits = state, []
                                for step in range(config.lr_shift[k] + o):
                                    bit, stepped = galois_step(s, poly, width)
                                    # A signal per step keeps the expression linear in the steps.
                                    s = Signal(width, name=f"round{k}_{o}_{step}")
                                    m.d.comb += s.eq(stepped)
                                    bits.append(bit)
                                # The first bit is the most significant.
                                m.d.comb += [draw.eq(Cat(*reversed(bits)) if bits else 0), after.eq(s)]

        real = Signal(range(P + 1))
        last_group = Signal()
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    m.d.comb += [
                        last_group.eq(group == geo.groups[k] - 1),
                        real.eq(Mux(group == geo.groups[k] - 1, geo.last_real[k], P)),
                    ]

        with m.If(filling):
            m.d.sync += [state.eq(after), following[lane].eq(draw), lane.eq(lane + 1)]
            with m.If(lane == real - 1):
                m.d.sync += [filling.eq(0), full.eq(1), lane.eq(0)]

        with m.If(self.claim):
            m.d.sync += claimed.eq(1)
        with m.If(self.take):
            m.d.sync += [self.current.eq(following), full.eq(0), claimed.eq(0), following.eq(0)]
            # Move on to the next group of the update order, if any.
            with m.If(last_group):
                m.d.sync += group.eq(0)
                with m.If(layer != L - 1):
                    m.d.sync += [layer.eq(layer + 1), filling.eq(1)]
            with m.Else():
                m.d.sync += [group.eq(group + 1), filling.eq(1)]
        with m.If(self.start):
            m.d.sync += [layer.eq(0), group.eq(0), lane.eq(0), filling.eq(1), full.eq(0),
                         claimed.eq(0), following.eq(0)]
        return m

