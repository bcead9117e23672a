"""The host protocol's frame counters, kept in one small ring memory."""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["FrameCounters"]


class FrameCounters(wiring.Component):
    """The protocol's frame counters (``frames_ok``, ``frames_rejected``, ``frames_dropped``: 32
    bits each) as one ring of twelve bytes. A pass turns it once (twelve cycles) through one 8-bit
    adder, adding one to every counter with an increment waiting; reading the counters is turning
    it once too, a byte at a time, least significant first. An 8-bit adder, not three 32-bit
    adders and a 12:1 byte multiplexer.

    The ring is a twelve-byte memory (a block RAM: on the iCE40 a flip-flop fed by a flip-flop
    costs a logic cell) with a head pointer, read one byte ahead; after a reset a clearing pass
    zeroes it (twelve cycles, not ``idle``), as a reset cleared the flip-flops it was before.

    Members
    -------
    inc : In(3)
        Count one (bit ``k``: counter ``k``), taken only while ``inc_ready[k]`` (as a stream's
        transfer): one increment per counter waits while a pass is in progress or the ring is
        being read (``hold``).
    inc_ready : Out(3)
    hold : In(1)
        The ring is being read: no pass starts, so increments wait. A reader waits for ``idle``,
        then holds until its twelfth turn (a pass started mid-read would add to the bytes the
        read had turned to, and change the byte on offer).
    turn : In(1)
        Advance the ring one byte (only while ``idle`` or ``hold``; twelve turns restore it).
    byte : Out(8)
        The ring's next byte (when ``idle`` and unturned: ``frames_ok``'s least significant).
    idle : Out(1)
        No increment in progress or waiting.
    """

    def __init__(self):
        super().__init__({"inc": In(3), "inc_ready": Out(3), "hold": In(1), "turn": In(1), "byte": Out(8),
                          "idle": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ring = ring = Memory(shape=8, depth=12, init=[])
        write, read = ring.write_port(), ring.read_port()
        head = Signal(range(12))        # the ring's byte 0
        pending = Signal(3)
        adding = Signal(3)              # the counters this pass increments
        busy = Signal(init=1)           # (after reset: the clearing pass)
        clearing = Signal(init=1)
        step = Signal(4)                # the byte the pass is at: counter step[2:], byte step[:2]
        carry = Signal()
        carry_in = Signal()
        total = Signal(9)
        turning = busy | self.turn
        head_next = Mux(head == 11, 0, head + 1)
        m.d.comb += [carry_in.eq(adding.bit_select(step[2:], 1) & ((step[:2] == 0) | carry)),
                     total.eq(read.data + carry_in), self.byte.eq(read.data),
                     read.addr.eq(Mux(turning, head_next, head)),
                     write.addr.eq(head), write.data.eq(Mux(clearing, 0, total[:8])), write.en.eq(busy),
                     self.idle.eq(~busy & (pending == 0)), self.inc_ready.eq(~pending)]
        with m.If(turning):
            m.d.sync += head.eq(head_next)
        start = ~busy & ~self.hold & ~self.turn    # a pass takes what is pending
        with m.If(busy):
            m.d.sync += [carry.eq(total[8]), step.eq(step + 1)]
            with m.If(step == 11):
                m.d.sync += [busy.eq(0), clearing.eq(0), step.eq(0)]
        with m.Elif(start & (pending != 0)):
            m.d.sync += [busy.eq(1), adding.eq(pending)]
        # Only what is offered while ready is taken: in the cycle a pass takes the waiting
        # increments, one offered while not ready would otherwise be counted as well.
        m.d.sync += pending.eq(Mux(start, 0, pending) | (self.inc & self.inc_ready))
        return m
