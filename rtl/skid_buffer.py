"""A stream register slice: ``i.ready``, ``o.valid`` and ``o.payload`` all come from flip-flops."""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Cuts both of a stream's combinational paths, at full throughput and a cycle of latency.

    ``o`` is an output register. Its source's transfer decision (and what that enables) does not
    wait for the sink's ``ready``: ``i.ready`` is a register too (the skid register is empty). A
    payload taken while the output register is held lands in the skid register, which refills the
    output register first.

    Parameters
    ----------
    shape : shape-like
        The payload.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    busy : Out(1)
        A payload is in the buffer (in either register).
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal(self.shape, name="skid")
        m.d.comb += [self.i.ready.eq(~skid_valid), self.busy.eq(self.o.valid | skid_valid)]
        with m.If(~self.o.valid | self.o.ready):
            # The output register takes the oldest payload: the skid register's, else i's.
            m.d.sync += [self.o.valid.eq(skid_valid | self.i.valid),
                         self.o.payload.eq(Mux(skid_valid, skid, self.i.payload)),
                         skid_valid.eq(0)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid_valid.eq(1), skid.eq(self.i.payload)]
        return m
