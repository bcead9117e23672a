"""The DRTP learning signal of one hidden layer (``docs/numerics.md`` §9): row ``c*`` of an LFSR matrix."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.integer.lfsr import LFSR as GoldenLFSR

from .lfsr import LFSR

__all__ = ["DRTPProjection", "row_states"]


def row_states(poly, seed, n_classes, hidden_sizes, layer, bits):
    """LFSR states at the start of each of the ``C`` rows of hidden layer ``layer``'s ``B``.

    The stream of :func:`golden.integer.network.drtp_matrices`: hidden layer 0 first, class by
    class, neuron by neuron, ``bits`` bits per entry.
    """
    lfsr = GoldenLFSR(poly, seed)
    for n in hidden_sizes[:layer]:
        lfsr.bits(n_classes * n * bits)
    states = []
    for _ in range(n_classes):
        states.append(lfsr.state)
        lfsr.bits(hidden_sizes[layer] * bits)
    return tuple(states)


class _State(enum.Enum, shape=3):
    SKIP = 0
    ROWS = 1
    IDLE = 2
    LOAD = 3
    RUN = 4


class DRTPProjection(wiring.Component):
    """``δ_n = B_k[c*, n] · f'_n`` for hidden layer ``k``, bit for bit :func:`golden.integer.network.drtp_matrices`.

    No matrix is stored: one :class:`~rtl.lfsr.LFSR` (``drtp_bits`` steps per entry) and the
    ``C`` LFSR states at the starts of layer ``k``'s rows.

    **Initialisation.** With ``init="walk"`` (``docs/numerics.md`` §9), after reset the unit
    walks the ``drtp_seed`` stream one entry per cycle through every earlier hidden layer
    (``C · N_j`` entries each) and through layer ``k``, writing the state at the start of each
    of its rows into a ``C``-word memory; this takes ``Σ_{j<k} C N_j + (C - 1) N_k + 1`` cycles,
    then ``init_done`` rises and stays high. With ``init="rom"`` the same ``C`` states are
    computed at elaboration (:func:`row_states`; the seed is a configuration constant) and held
    in a ROM: ``init_done`` is high from reset and no walk logic exists (cheaper: ``C`` 32-bit
    constants instead of ``C`` 32-bit registers and the counters).

    **One step.** A ``start`` pulse while idle (``busy = 0`` and ``init_done = 1``) samples
    ``label``; ignored otherwise. The unit reads row ``c*``'s state and loads the LFSR (2
    cycles: ``h.ready`` can rise from the second cycle after ``start``), then takes exactly
    ``N_k`` transfers on ``h`` (neuron order; only ``fprime`` is used) and emits one ``δ_n`` per
    transfer on ``delta``, one cycle later, through a single output register
    (``h.ready = ~delta.valid | delta.ready`` while running: one per cycle without
    back-pressure). After the ``N_k``-th transfer it is idle again (``busy`` falls with that
    transfer's clock edge; the last ``δ`` may still be waiting in the output register).

    Parameters
    ----------
    n_classes : int
        ``C``.
    hidden_sizes : sequence of int
        ``N_0 .. N_k`` at least: the widths of the hidden layers up to this one.
    layer : int
        ``k``.
    act_shape : ShapeLike
        Shape of the activation field of ``h`` (unused here; it makes the stream the LLS unit's).
    drtp_bits : int
        LFSR bits per entry; ``B`` values are odd in ``±(2**drtp_bits - 1)``.
    delta_bits : int
        Signed width of ``δ`` (``> drtp_bits``).
    poly, seed : int
        LFSR polynomial and the ``drtp_seed``.
    init : str
        ``"walk"`` or ``"rom"``, see above.

    Members
    -------
    label : In(unsigned(ceil_log2(C) or 1))
        ``c*``, sampled with ``start``.
    start : In(1)
        Begin a step (while idle).
    h : In(stream.Signature(data.StructLayout({"h": act_shape, "fprime": 1})))
        The layer's activations and derivative bits, in neuron order, ``N_k`` per step.
    delta : Out(stream.Signature(signed(delta_bits)))
        ``δ_n``, in neuron order.
    init_done : Out(1)
        The row states are ready; ``start`` is honoured from now on.
    busy : Out(1)
        A step is in progress (from ``start`` to the ``N_k``-th ``h`` transfer), or not initialised.
    """

    def __init__(self, n_classes, hidden_sizes, layer, *, act_shape=unsigned(8), drtp_bits=1,
                 delta_bits=16, poly=0x100400007, seed=0x7F4A7C15, init="walk"):
        hidden_sizes = tuple(hidden_sizes)
        if n_classes < 2:
            raise ValueError(f"DRTPProjection needs n_classes >= 2, got {n_classes}")
        if not 0 <= layer < len(hidden_sizes) or any(n < 1 for n in hidden_sizes):
            raise ValueError(f"DRTPProjection: layer {layer} needs hidden_sizes up to it, got {hidden_sizes}")
        if not 1 <= drtp_bits < delta_bits:
            raise ValueError(f"DRTPProjection: drtp_bits={drtp_bits} must be 1..delta_bits-1")
        if init not in ("walk", "rom"):
            raise ValueError(f"DRTPProjection init must be 'walk' or 'rom', got {init!r}")
        self.n_classes = n_classes
        self.hidden_sizes = hidden_sizes[:layer + 1]
        self.layer = layer
        self.n_neurons = hidden_sizes[layer]
        self.act_shape = act_shape
        self.drtp_bits = drtp_bits
        self.delta_bits = delta_bits
        self.poly = poly
        self.seed = seed
        self.init = init
        self.states = row_states(poly, seed, n_classes, self.hidden_sizes, layer, drtp_bits)
        self.skip = sum(n_classes * n for n in self.hidden_sizes[:layer])
        self.init_cycles = 0 if init == "rom" else self.skip + (n_classes - 1) * self.n_neurons + 1
        self.label_shape = unsigned(ceil_log2(n_classes) or 1)
        super().__init__({
            "label": In(self.label_shape),
            "start": In(1),
            "h": In(stream.Signature(data.StructLayout({"h": act_shape, "fprime": 1}))),
            "delta": Out(stream.Signature(signed(delta_bits))),
            "init_done": Out(1),
            "busy": Out(1),
        })

    @classmethod
    def from_config(cls, config, layer, init="walk"):
        """The unit of hidden layer ``layer`` of an :class:`~golden.integer.config.EngineConfig`."""
        act_shape = unsigned(config.act_bits) if config.activation == "relu" else signed(config.act_bits)
        return cls(config.n_classes, config.layers[1:-1], layer, act_shape=act_shape,
                   drtp_bits=config.drtp_bits, delta_bits=config.delta_bits,
                   poly=config.lfsr_poly, seed=config.drtp_seed, init=init)

    def elaborate(self, platform):
        m = Module()
        C, N = self.n_classes, self.n_neurons
        width = self.poly.bit_length() - 1

        m.submodules.lfsr = lfsr = LFSR(self.poly, self.seed, self.drtp_bits)
        walk = self.init == "walk"
        m.submodules.rows = rows = memory.Memory(shape=unsigned(width), depth=C,
                                                 init=[] if walk else self.states)
        read = rows.read_port()

        if walk:
            initial = _State.SKIP if self.skip else _State.ROWS
        else:
            initial = _State.IDLE
        state = Signal(_State, init=initial)
        neuron = Signal(range(N))
        m.d.comb += [
            self.init_done.eq((state != _State.SKIP) & (state != _State.ROWS)),
            self.busy.eq(state != _State.IDLE),
            read.addr.eq(self.label),
        ]

        if walk:
            write = rows.write_port()
            row = Signal(range(C))
            skip = Signal(range(self.skip + 1), init=self.skip)
            with m.If(state == _State.SKIP):
                m.d.comb += lfsr.next.eq(1)
                m.d.sync += skip.eq(skip - 1)
                with m.If(skip == 1):
                    m.d.sync += state.eq(_State.ROWS)
            with m.If(state == _State.ROWS):
                m.d.comb += [
                    write.addr.eq(row),
                    write.data.eq(lfsr.state),
                    write.en.eq(neuron == 0),
                ]
                with m.If((neuron == 0) & (row == C - 1)):
                    m.d.sync += state.eq(_State.IDLE)
                with m.Else():
                    m.d.comb += lfsr.next.eq(1)
                    m.d.sync += neuron.eq(Mux(neuron == N - 1, 0, neuron + 1))
                    with m.If(neuron == N - 1):
                        m.d.sync += row.eq(row + 1)

        with m.If((state == _State.IDLE) & self.start):
            m.d.sync += state.eq(_State.LOAD)
        with m.If(state == _State.LOAD):
            m.d.comb += [lfsr.load.eq(1), lfsr.load_value.eq(read.data)]
            m.d.sync += [neuron.eq(0), state.eq(_State.RUN)]

        free = ~self.delta.valid | self.delta.ready
        m.d.comb += self.h.ready.eq((state == _State.RUN) & free)
        with m.If(self.delta.valid & self.delta.ready):
            m.d.sync += self.delta.valid.eq(0)
        with m.If(self.h.valid & self.h.ready):
            m.d.comb += lfsr.next.eq(1)
            m.d.sync += [
                self.delta.valid.eq(1),
                self.delta.payload.eq(Mux(self.h.payload.fprime, lfsr.value, 0)),
                neuron.eq(neuron + 1),
            ]
            with m.If(neuron == N - 1):
                m.d.sync += state.eq(_State.IDLE)

        return m
