"""The LLS basis generator: one phase accumulator per class, no stored ``C x N`` matrix."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.integer.basis import phase_increments, sine_quarter_table

__all__ = ["BasisGenerator"]


class BasisGenerator(wiring.Component):
    """Streams column ``n`` of the LLS basis, ``B[:, n]`` for ``n = 0, 1, 2, ...``.

    Bit for bit :func:`golden.integer.basis.basis_matrix`: class ``c`` keeps a ``phase_bits``
    accumulator that starts at 0 and adds ``inc_c`` (:func:`~golden.integer.basis.phase_increments`)
    once per neuron, so it holds ``n * inc_c mod 2**P``. ``"square"`` emits the sign of the phase
    as ``+-1`` (:func:`~golden.integer.basis.square_wave`); ``"sin"`` reads a quarter-wave table
    (:func:`~golden.integer.basis.sine_quarter_table`) at the mirrored index and negates in the
    lower half cycle (:func:`~golden.integer.basis.sine_wave`).

    The stream never ends: the consumer counts neurons and asserts ``restart`` before the next
    pass. The ``"square"`` stream is valid from reset with zero latency; the ``"sin"`` stream has
    one pipeline stage (the synchronous table read), whose output register is the table's read
    port, so it runs at one column per cycle under any back-pressure.

    The ``"sin"`` table has one read port per class: on iCE40 each port is its own EBR (or fabric);
    serialising classes over fewer ports is the alternative when that matters.

    With ``runtime_square`` a ``"sin"`` generator can also emit the square wave, chosen by the
    ``square`` input: the sign of the phase is the top bit of the quadrant it already registers,
    so the square wave costs a 2-way mux per class and keeps the sine stream's one-stage latency.

    Parameters
    ----------
    n_classes : int
        ``C``, the number of basis rows.
    phase_bits : int
        Width ``P`` of each phase accumulator.
    basis : str
        ``"square"`` or ``"sin"``.
    table_index_bits, table_bits : int
        ``"sin"``: quarter-wave table of ``2**table_index_bits`` entries of ``table_bits`` signed
        bits (magnitudes up to ``2**(table_bits - 1) - 1``).
    runtime_square : bool
        ``"sin"`` only: add the ``square`` input (run-time choice of the square wave).

    Members
    -------
    o : Out(stream.Signature(data.ArrayLayout(value_shape, n_classes)))
        Column ``n``: element ``c`` is ``B[c, n]``. ``value_shape`` is ``signed(2)`` (``+-1``) for
        ``"square"``, ``signed(table_bits)`` for ``"sin"``.
    restart : In(1)
        Go back to ``n = 0`` at the next clock edge. It drops a column being offered (a flush, not
        a transfer); the first column after it is ``n = 0``.
    square : In(1)
        With ``runtime_square`` only: emit ``+-1`` (the sign of the phase) instead of the sine
        table; it selects the output of the column already fetched, so change it between passes.
    """

    def __init__(self, n_classes, phase_bits, basis="square", table_index_bits=6, table_bits=8,
                 runtime_square=False):
        # A refused configuration is not an unused design (Amaranth warns on unused elaboratables).
        self._MustUse__silence = True
        if n_classes < 1:
            raise ValueError(f"BasisGenerator needs n_classes >= 1, got {n_classes}")
        if basis not in ("square", "sin"):
            raise ValueError(f"BasisGenerator basis must be 'square' or 'sin', got {basis!r}")
        if basis == "sin" and not (1 <= table_index_bits <= phase_bits - 2 and table_bits >= 2):
            raise ValueError(f"BasisGenerator: table_index_bits={table_index_bits} must be "
                             f"1..phase_bits-2={phase_bits - 2} and table_bits >= 2")
        if runtime_square and basis != "sin":
            raise ValueError("BasisGenerator: runtime_square needs basis 'sin' (a square generator has "
                             "no sine table to switch to)")
        self._MustUse__silence = False
        self.runtime_square = runtime_square
        self.n_classes = n_classes
        self.phase_bits = phase_bits
        self.basis = basis
        self.table_index_bits = table_index_bits
        self.table_bits = table_bits
        self.increments = phase_increments(n_classes, phase_bits)
        self.value_shape = signed(2) if basis == "square" else signed(table_bits)
        members = {
            "o": Out(stream.Signature(data.ArrayLayout(self.value_shape, n_classes))),
            "restart": In(1),
        }
        if runtime_square:
            members["square"] = In(1)
        super().__init__(members)

    @classmethod
    def from_config(cls, config):
        """The generator of an :class:`~golden.integer.config.EngineConfig`'s basis."""
        return cls(config.n_classes, config.phase_bits, config.basis,
                   config.table_index_bits, config.table_bits)

    def elaborate(self, platform):
        m = Module()
        P, C = self.phase_bits, self.n_classes
        phases = [Signal(P, name=f"phase{c}") for c in range(C)]

        if self.basis == "square":
            m.d.comb += self.o.valid.eq(1)
            for c in range(C):
                # +1 = 0b01 and -1 = 0b11: the sign bit fills the top, the low bit is always 1.
                m.d.comb += self.o.payload[c].eq(Mux(phases[c][-1], -1, 1))
            advance = self.o.ready
        else:
            ib = self.table_index_bits
            magnitudes = sine_quarter_table(ib, self.table_bits)
            m.submodules.table = table = memory.Memory(
                shape=unsigned(self.table_bits - 1), depth=1 << ib, init=magnitudes)
            # The read ports' data registers are the output stage; they hold while not fetching.
            advance = ~self.o.valid | self.o.ready
            with m.If(advance):
                m.d.sync += self.o.valid.eq(1)
            for c in range(C):
                top = phases[c][P - ib - 2:]
                quadrant, index = top[ib:], top[:ib]
                port = table.read_port()
                negate = Signal(name=f"negate{c}")
                # Quadrants 1 and 3 read backwards: 2**ib - 1 - i is ~i in ib bits.
                m.d.comb += [
                    port.en.eq(advance),
                    port.addr.eq(Mux(quadrant[0], ~index, index)),
                ]
                sine = Mux(negate, -port.data, port.data)
                if self.runtime_square:
                    # The quadrant's top bit is the phase's sign bit: the square wave of this column.
                    m.d.comb += self.o.payload[c].eq(Mux(self.square, Mux(negate, -1, 1), sine))
                else:
                    m.d.comb += self.o.payload[c].eq(sine)
                with m.If(advance):
                    m.d.sync += negate.eq(quadrant[1])

        with m.If(self.restart):
            m.d.sync += [phase.eq(0) for phase in phases]
            if self.basis == "sin":
                m.d.sync += self.o.valid.eq(0)
        with m.Elif(advance):
            m.d.sync += [phase.eq(phase + inc) for phase, inc in zip(phases, self.increments)]

        return m
