"""The LLS normaliser (``docs/numerics.md`` §7.3): ``1/||h||`` as a shift ``e2`` and a table entry ``R``."""

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.integer.normaliser import rsqrt_table

__all__ = ["Normaliser"]


class Normaliser(wiring.Component):
    """``S = ||h||^2`` to ``(e2, R)`` with ``1/||h|| ~= R / 2**(norm_bits + e2)``, as :func:`golden.integer.normaliser.normalise`.

    With ``E`` the position of the leading one of ``S``: ``e2 = E >> 1``, the table index is
    ``(E & 1) << K | μ`` with ``μ`` the ``K = norm_index_bits`` bits just below the leading one
    (zero-padded when ``E < K``), and ``R = Rtab[E & 1][μ]``
    (:func:`~golden.integer.normaliser.rsqrt_table`).

    A one-stage pipeline: a leading-one detector, one barrel shift for ``μ``, and the table read
    through a synchronous read port whose data register is the output stage. ``o`` carries the
    result one cycle after the ``i`` transfer (:attr:`latency`) and holds it under back-pressure;
    ``i.ready = ~o.valid | o.ready`` (one result per cycle when nothing stalls). With
    ``stages=2`` the leading one's position is registered first (with ``S``), so the detector
    and the barrel shift are in different cycles: the result comes two cycles after the
    transfer.

    ``S = 0`` has no leading one (the golden function refuses it; an LLS layer then learns
    nothing): the result has ``zero = 1``, ``e2 = 0``, ``index = 0`` and ``rsqrt = Rtab[0][0]``.

    Parameters
    ----------
    square_bits : int
        Width of ``S`` (unsigned; ``acc_bits`` in the engine).
    norm_index_bits : int
        ``K``, the mantissa bits indexing the table (``2 * 2**K`` entries).
    norm_bits : int
        Fraction bits of the table values (each is below ``2**norm_bits``).
    stages : int
        1, or 2 for fabric timing (ECP5): the detector, the shift and the table read were one
        12 ns path at 64 lanes on the ULX3S.

    Members
    -------
    i : In(stream.Signature(unsigned(square_bits)))
        ``S``.
    o : Out(stream.Signature(data.StructLayout({"e2": unsigned(e2_bits), "index": unsigned(K + 1), "rsqrt": unsigned(norm_bits), "zero": 1})))
        ``e2 = E >> 1`` (``e2_bits`` holds ``(square_bits - 1) >> 1``), the table index
        ``(E & 1) << K | μ``, ``R``, and ``zero = [S = 0]``.
    """

    def __init__(self, square_bits=32, *, norm_index_bits=3, norm_bits=10, stages=1):
        # A refused configuration is not an unused design.
        self._MustUse__silence = True
        if square_bits < 1:
            raise ValueError(f"Normaliser needs square_bits >= 1, got {square_bits}")
        if not 0 <= norm_index_bits <= 8 or norm_bits < 1:
            raise ValueError(f"Normaliser: norm_index_bits={norm_index_bits} must be 0..8 and "
                             f"norm_bits={norm_bits} >= 1")
        if stages not in (1, 2):
            raise ValueError(f"Normaliser: stages must be 1 or 2, got {stages!r}")
        self._MustUse__silence = False
        self.stages = stages
        #: Cycles from the ``i`` transfer to ``o.valid`` when nothing stalls.
        self.latency = stages
        self.square_bits = square_bits
        self.norm_index_bits = norm_index_bits
        self.norm_bits = norm_bits
        self.table = rsqrt_table(norm_index_bits, norm_bits)
        self.e2_bits = max(1, ((square_bits - 1) >> 1).bit_length())
        self.result_layout = data.StructLayout({
            "e2": unsigned(self.e2_bits),
            "index": unsigned(norm_index_bits + 1),
            "rsqrt": unsigned(norm_bits),
            "zero": 1,
        })
        super().__init__({
            "i": In(stream.Signature(unsigned(square_bits))),
            "o": Out(stream.Signature(self.result_layout)),
        })

    @classmethod
    def from_config(cls, config, layer=None, *, stages=1):
        """The normaliser of an :class:`~golden.integer.config.EngineConfig` (``S`` in ``acc_bits``)."""
        return cls(config.acc_bits, norm_index_bits=config.norm_index_bits, norm_bits=config.norm_bits,
                   stages=stages)

    def elaborate(self, platform):
        m = Module()
        W, K = self.square_bits, self.norm_index_bits
        square = self.i.payload

        # Leading one: the last assignment wins, so scanning upwards leaves the highest set bit.
        exponent = Signal(range(W))
        for bit in range(W):
            with m.If(square[bit]):
                m.d.comb += exponent.eq(bit)
        zero = square == 0
        advance = ~self.o.valid | self.o.ready
        valid = self.i.valid
        take = advance
        if self.stages == 2:
            # Stage 1 holds S, its leading one's position and its zero flag.
            valid1 = Signal(name="valid1")
            square1 = Signal.like(square, name="square1")
            exponent1 = Signal.like(exponent, name="exponent1")
            zero1 = Signal(name="zero1")
            take = ~valid1 | advance
            with m.If(take):
                m.d.sync += [valid1.eq(self.i.valid), square1.eq(square), exponent1.eq(exponent),
                             zero1.eq(zero)]
            square, exponent, zero, valid = square1, exponent1, zero1, valid1
        # μ: the K bits below the leading one, ((S << K) >> E) & (2**K - 1).
        mantissa = Signal(K)
        if K:
            m.d.comb += mantissa.eq((square << K) >> exponent)
        index = Signal(K + 1)
        m.d.comb += index.eq(Cat(mantissa, exponent[0]))

        entries = [r for row in self.table for r in row]
        m.submodules.table = table = memory.Memory(shape=unsigned(self.norm_bits), depth=len(entries),
                                                   init=entries)
        port = table.read_port()
        m.d.comb += [
            self.i.ready.eq(take),
            port.en.eq(advance),
            port.addr.eq(index),
            self.o.payload.rsqrt.eq(port.data),
        ]
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(valid),
                self.o.payload.e2.eq(exponent >> 1),
                self.o.payload.index.eq(index),
                self.o.payload.zero.eq(zero),
            ]
        return m
