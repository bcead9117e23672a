"""Receives host protocol frames from a byte stream into a payload buffer and checks their CRC."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .host_protocol import SYNC, StatusCode
from .layer_engine import fabric_arithmetic
from .serial_crc import SerialCRC

__all__ = ["FrameDecoder", "frame_layout"]


def frame_layout():
    """A received frame's header: ``status`` is ``OK``, ``BAD_CRC`` or ``BAD_LENGTH`` (whose
    ``length``, beyond the payload buffer, is not kept)."""
    return data.StructLayout({"code": 8, "tag": 8, "length": 16, "status": 8})


class FrameDecoder(wiring.Component):
    """Hunts for ``SYNC``, takes the header, stores the payload, checks the CRC (``rtl.host_protocol``).

    A frame is offered on ``frame`` with its status; while it is offered (until taken) no byte is
    accepted, so the payload buffer stays valid for the command that executes it. A length beyond
    ``max_payload`` is offered at once as ``BAD_LENGTH`` (the rest of that frame is then hunted
    through as noise). A frame that stalls mid-way for ``timeout`` cycles is dropped (``dropped``
    pulses) and hunting resumes, so a truncated frame never blocks the next. The CRC takes a byte
    in eight cycles (:class:`~rtl.serial_crc.SerialCRC`): far less than a UART's byte time.

    Parameters
    ----------
    max_payload : int
        Payload buffer size in bytes.
    timeout : int
        Idle cycles inside a frame before it is dropped (0: never).
    tail : bytes
        Constant bytes stored after the payload buffer (at ``max_payload`` on), read through
        the same port: the bridge's identity record, where the block RAM has room for it.
    registered_limit : bool, optional
        Keep ``idle == timeout - 1`` as a register beside the stall counter, not a compare in
        front of the FSM (its 21 bits were an 11.7 ns path into the next state on the ULX3S).
        The same behaviour, a flip-flop more. The length's checks and the payload's end are
        registered too: the CRC holds each byte for eight cycles, so a compare made the cycle
        before the byte is taken sees it (the length's compare and the CRC's ready were one
        10.9 ns path into the next state on the ULX3S). ``None``: on ECP5
        (:func:`~rtl.layer_engine.fabric_arithmetic`).

    Members
    -------
    i : In(stream.Signature(8))
        Received bytes.
    frame : Out(stream.Signature(frame_layout()))
        One per complete (or refused) frame.
    read_addr : In(range(max_payload + len(tail)))
    read_data : Out(8)
        The payload buffer's read port: the byte at ``read_addr`` two cycles later (the block
        RAM's output is registered before it leaves: on the OrangeCrab it was a 10.75 ns path
        into the bridge's logic).
    dropped : Out(1)
        Pulses when a partial frame is dropped on the timeout.
    drop_ready : In(1)
        The drop can be counted; a timed-out frame waits for it (taking no byte).
    receiving : Out(1)
        Inside a frame, waiting for its next byte.
    busy : Out(1)
        A complete frame is being checked or offered.
    """

    def __init__(self, max_payload, timeout=0, tail=b"", *, registered_limit=None):
        if not 1 <= max_payload <= 0xFFFF:
            raise ValueError(f"FrameDecoder: max_payload must be 1..65535, got {max_payload}")
        self.max_payload = max_payload
        self.tail = bytes(tail)
        self.timeout = timeout
        self.registered_limit = registered_limit
        super().__init__({
            "i": In(stream.Signature(8)),
            "frame": Out(stream.Signature(frame_layout())),
            "read_addr": In(range(max_payload + len(self.tail))),
            "read_data": Out(8),
            "dropped": Out(1),
            "drop_ready": In(1, init=1),
            "receiving": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = memory.Memory(shape=8, depth=self.max_payload + len(self.tail),
                                                     init=[0] * self.max_payload + list(self.tail))
        write = buffer.write_port()
        read = buffer.read_port()
        m.d.comb += read.addr.eq(self.read_addr)
        m.d.sync += self.read_data.eq(read.data)
        m.submodules.crc = crc = SerialCRC()

        byte = self.i.payload
        fire = self.i.valid & self.i.ready
        # The header, as narrow as it can be: a length beyond the buffer is only ever refused.
        # (No resets: each is set before the frame is offered.)
        code = Signal(8, reset_less=True)
        tag = Signal(8, reset_less=True)
        # At least a byte wide: LEN0's byte is kept whole (a buffer under 128 bytes would take a
        # length of 128 for 0).
        length = Signal(range(max(self.max_payload, 255) + 1), reset_less=True)
        status = Signal(range(StatusCode.BAD_LENGTH + 1), reset_less=True)
        m.d.comb += [self.frame.payload.code.eq(code), self.frame.payload.tag.eq(tag),
                     self.frame.payload.length.eq(length), self.frame.payload.status.eq(status)]
        count = Signal(range(self.max_payload), reset_less=True)
        count_next = Signal(range(self.max_payload + 1))
        m.d.comb += [count_next.eq(count + 1), write.addr.eq(count), write.data.eq(byte),
                     crc.i.payload.eq(byte)]

        idle = Signal(range(max(self.timeout, 1) + 1), reset_less=True)   # cleared outside a frame
        expecting = Signal()   # inside a frame, waiting for its next byte
        checked = Signal()     # ... a byte the CRC covers: it takes the byte (eight cycles)
        timed_out = Signal()
        hold = Signal()
        registered = self.registered_limit
        if registered is None:
            registered = fabric_arithmetic(platform)
        if self.timeout:
            if registered:
                # idle == timeout - 1, kept beside the counter (set as it counts up to it).
                at_limit = Signal(init=self.timeout == 1)
                restart = at_limit.eq(self.timeout == 1)
                count_up = at_limit.eq(idle == self.timeout - 2)
            else:
                at_limit = idle == self.timeout - 1
                restart = count_up = []
            # The drop's counter is busy (a few cycles): wait, taking no byte meanwhile.
            m.d.comb += hold.eq(expecting & at_limit & ~self.drop_ready)
            # A byte on offer (the CRC taking it) is no stall.
            with m.If((self.i.valid & ~hold) | ~expecting):
                m.d.sync += [idle.eq(0), restart]
            with m.Elif(at_limit):
                with m.If(self.drop_ready):
                    m.d.sync += [idle.eq(0), restart]
                    m.d.comb += [timed_out.eq(1), self.dropped.eq(1)]
            with m.Else():
                m.d.sync += [idle.eq(idle + 1), count_up]

        # The length (LEN1's byte) and the payload's end, checked: at once, or (registered) from
        # the byte and the count of the cycle before, the same while the CRC holds the byte.
        full = Signal(16)
        m.d.comb += full.eq(Cat(length[:8], byte))
        checks = [full > self.max_payload, full == 0, count_next == length]
        if registered:
            too_long, empty, payload_end = (Signal(name=name) for name in ("too_long", "empty", "payload_end"))
            m.d.sync += [too_long.eq(checks[0]), empty.eq(checks[1]), payload_end.eq(checks[2])]
        else:
            too_long, empty, payload_end = checks

        def drop_if_timed_out():
            with m.If(timed_out):
                m.next = "HUNT"

        with m.FSM() as fsm:
            with m.State("HUNT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(fire & (byte == SYNC[0])):
                    m.next = "SYNC1"
            with m.State("SYNC1"):
                m.d.comb += [expecting.eq(1), self.i.ready.eq(1), crc.clear.eq(1)]
                with m.If(fire):
                    with m.If(byte == SYNC[1]):
                        m.next = "CODE"
                    with m.Elif(byte != SYNC[0]):
                        m.next = "HUNT"
                drop_if_timed_out()
            with m.State("CODE"):
                m.d.comb += [expecting.eq(1), checked.eq(1)]
                with m.If(fire):
                    m.d.sync += code.eq(byte)
                    m.next = "TAG"
                drop_if_timed_out()
            with m.State("TAG"):
                m.d.comb += [expecting.eq(1), checked.eq(1)]
                with m.If(fire):
                    m.d.sync += tag.eq(byte)
                    m.next = "LEN0"
                drop_if_timed_out()
            with m.State("LEN0"):
                m.d.comb += [expecting.eq(1), checked.eq(1)]
                with m.If(fire):
                    m.d.sync += length.eq(byte)
                    m.next = "LEN1"
                drop_if_timed_out()
            with m.State("LEN1"):
                m.d.comb += [expecting.eq(1), checked.eq(1)]
                with m.If(fire):
                    m.d.sync += [length.eq(full), count.eq(0)]
                    with m.If(too_long):
                        m.d.sync += status.eq(StatusCode.BAD_LENGTH)
                        m.next = "OFFER"
                    with m.Elif(empty):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                drop_if_timed_out()
            with m.State("PAYLOAD"):
                m.d.comb += [expecting.eq(1), checked.eq(1), write.en.eq(fire)]
                with m.If(fire):
                    m.d.sync += count.eq(count_next)
                    with m.If(payload_end):
                        m.next = "CRC0"
                drop_if_timed_out()
            with m.State("CRC0"):
                m.d.comb += [expecting.eq(1), checked.eq(1)]
                with m.If(fire):
                    m.next = "CRC1"
                drop_if_timed_out()
            with m.State("CRC1"):
                m.d.comb += [expecting.eq(1), checked.eq(1)]
                with m.If(fire):
                    m.next = "CHECK"
                drop_if_timed_out()
            with m.State("CHECK"):
                # The CRC register has taken the last byte: the residue means an intact frame.
                m.d.sync += status.eq(Mux(crc.match, StatusCode.OK, StatusCode.BAD_CRC))
                m.next = "OFFER"
            with m.State("OFFER"):
                m.d.comb += self.frame.valid.eq(1)
                with m.If(self.frame.ready):
                    m.next = "HUNT"

        with m.If(checked):
            m.d.comb += [crc.i.valid.eq(self.i.valid & ~hold), self.i.ready.eq(crc.i.ready)]
        with m.If(hold):
            m.d.comb += self.i.ready.eq(0)
        m.d.comb += [self.receiving.eq(expecting), self.busy.eq(fsm.ongoing("CHECK") | fsm.ongoing("OFFER"))]
        return m
