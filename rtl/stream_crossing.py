"""A stream from one clock domain into another, one transfer at a time, the payload not copied."""

from amaranth import Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamCrossing", "DEFAULT_STAGES"]

#: The request's synchroniser stages: the payload has two destination periods to settle.
DEFAULT_STAGES = 3


class StreamCrossing(wiring.Component):
    """``i`` (in ``i_domain``) to ``o`` (in ``o_domain``) by a toggle handshake: the source's
    payload goes straight through, held by the source (a stream's payload stays put while it is
    valid and not taken), and only a request and an acknowledgement toggle cross, through
    flip-flop synchronisers.

    A transfer: ``i`` valid toggles the request; ``stages`` ``o_domain`` cycles later ``o`` is
    valid; its transfer toggles the acknowledgement, and two ``i_domain`` cycles after that ``i``
    is ready. About ``stages + 2`` cycles of the slower clock a transfer: for host traffic, a
    byte of which takes a UART hundreds of cycles, not for a datapath.

    Why no copy: the widest streams it carries on the iCE40 (a 128-bit weight word each way)
    would cost a logic cell a bit in flip-flops, or block RAMs, on a device with neither to spare.
    Why it is safe: the payload is stable from the request's toggle until the source sees the
    acknowledgement, and ``o`` is valid only in between, ``stages`` destination cycles after
    the toggle. So the payload's wires into ``o_domain`` (paths between unrelated clocks, which
    place-and-route does not time) have ``stages - 1`` destination periods to settle; the board
    flow checks nextpnr's cross-domain delays against that (``boards.flow``).

    Parameters
    ----------
    shape : shape-like
        The payload.
    i_domain, o_domain : str
        The domains of ``i`` and ``o``; both must come out of reset together (one reset source,
        synchronised into each), as the toggles start equal.
    stages : int
        Synchroniser stages of the request into ``o_domain`` (at least 2).

    Members
    -------
    i : In(stream.Signature(shape))
        In ``i_domain``.
    o : Out(stream.Signature(shape))
        In ``o_domain``: ``o.payload`` is ``i.payload``.
    """

    def __init__(self, shape, *, i_domain, o_domain, stages=DEFAULT_STAGES):
        if stages < 2:
            self._MustUse__silence = True
            raise ValueError(f"StreamCrossing: stages must be at least 2, got {stages}")
        self.i_domain = i_domain
        self.o_domain = o_domain
        self.stages = stages
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        request = Signal()         # i_domain: toggled to offer the payload
        acknowledge = Signal()     # o_domain: toggled when o is taken
        request_o = Signal()
        acknowledge_i = Signal()
        offered = Signal()         # i_domain: the payload on i has been offered
        m.submodules.request_sync = cdc.FFSynchronizer(request, request_o, o_domain=self.o_domain,
                                                       stages=self.stages)
        m.submodules.acknowledge_sync = cdc.FFSynchronizer(acknowledge, acknowledge_i, o_domain=self.i_domain)

        taken = Signal()
        m.d.comb += [taken.eq(offered & (request == acknowledge_i)), self.i.ready.eq(taken)]
        with m.If(~offered & self.i.valid):
            m.d[self.i_domain] += [request.eq(~request), offered.eq(1)]
        with m.If(taken):
            m.d[self.i_domain] += offered.eq(0)

        m.d.comb += [self.o.valid.eq(request_o != acknowledge), self.o.payload.eq(self.i.payload)]
        with m.If(self.o.valid & self.o.ready):
            m.d[self.o_domain] += acknowledge.eq(~acknowledge)
        return m
