"""A stream register slice: ``i.ready``, ``o.valid`` and ``o.payload`` all come from flip-flops."""

from amaranth import Cat, Module, Mux, Signal
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
    ready_copies : int
        Flip-flop copies of ``i.ready`` (``keep``, so Yosys does not merge them), for a source
        whose transfer decision enables many flip-flops across the die: each group of them can
        decide from copies of its own.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    busy : Out(1)
        A payload is in the buffer (in either register).
    ready_copies : Out(ready_copies)
        With ``ready_copies``: each bit equals ``i.ready`` every cycle.
    """

    def __init__(self, shape, *, ready_copies=0):
        if ready_copies < 0:
            raise ValueError(f"ready_copies must be 0 or more, got {ready_copies!r}")
        self.shape = shape
        self.n_ready_copies = ready_copies
        members = {
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "busy": Out(1),
        }
        if ready_copies:
            members["ready_copies"] = Out(ready_copies)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal(self.shape, name="skid")
        # i.ready is "the skid register is empty"; its copies are set and cleared with it.
        copies = [Signal(name=f"ready_copy{j}", init=1, attrs={"keep": 1})
                  for j in range(self.n_ready_copies)]
        m.d.comb += [self.i.ready.eq(~skid_valid), self.busy.eq(self.o.valid | skid_valid)]
        if copies:
            m.d.comb += self.ready_copies.eq(Cat(*copies))
        with m.If(~self.o.valid | self.o.ready):
            # The output register takes the oldest payload: the skid register's, else i's.
            m.d.sync += [self.o.valid.eq(skid_valid | self.i.valid),
                         self.o.payload.eq(Mux(skid_valid, skid, self.i.payload)),
                         skid_valid.eq(0),
                         *(c.eq(1) for c in copies)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid_valid.eq(1), skid.eq(self.i.payload), *(c.eq(0) for c in copies)]
        return m
