"""Sends host protocol frames: sync, header, a streamed payload and the CRC."""

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .host_protocol import SYNC, StatusCode
from .serial_crc import SerialCRC

__all__ = ["FrameEncoder", "response_layout", "payload_layout"]


def response_layout():
    return data.StructLayout({"status": 8, "tag": 8, "length": 16})


def payload_layout():
    """A response payload byte; ``last`` marks the frame's last one."""
    return data.StructLayout({"data": 8, "last": 1})


class FrameEncoder(wiring.Component):
    """Frames a response (``rtl.host_protocol``): ``SYNC``, status, tag, length, payload, CRC.

    The header is taken at once (so the request it answers can be released); its ``length``
    payload bytes then follow on ``payload``, the last one marked ``last`` (the sender counts
    them, not the encoder). The CRC takes each byte in eight cycles before it is sent
    (:class:`~rtl.serial_crc.SerialCRC`): far less than a UART's byte time.

    Parameters
    ----------
    max_length : int
        The longest payload sent (the width of the held length).

    Members
    -------
    header : In(stream.Signature(response_layout()))
        Starts a frame: a :class:`~rtl.host_protocol.StatusCode`, the tag and the payload length.
    payload : In(stream.Signature(payload_layout()))
    o : Out(stream.Signature(8))
        The frame's bytes.
    busy : Out(1)
        A frame is being sent.
    """

    def __init__(self, max_length=0xFFFF):
        if not 0 <= max_length <= 0xFFFF:
            raise ValueError(f"FrameEncoder: max_length must be 0..65535, got {max_length}")
        self.max_length = max_length
        super().__init__({
            "header": In(stream.Signature(response_layout())),
            "payload": In(stream.Signature(payload_layout())),
            "o": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = SerialCRC()
        status = Signal(range(max(StatusCode) + 1), reset_less=True)   # (set as a header is taken)
        tag = Signal(8, reset_less=True)
        length = Signal(range(self.max_length + 1), reset_less=True)
        fire = self.o.valid & self.o.ready
        digested = Signal()     # the CRC has taken the byte on offer
        m.d.comb += crc.i.payload.eq(self.o.payload)

        def emit(value, next_state, checked=True):
            m.d.comb += self.o.payload.eq(value)
            if checked:
                # The CRC takes the byte first (eight cycles), then it is offered.
                m.d.comb += [crc.i.valid.eq(~digested), self.o.valid.eq(digested)]
                with m.If(crc.i.ready):
                    m.d.sync += digested.eq(1)
            else:
                m.d.comb += self.o.valid.eq(1)
            with m.If(fire):
                m.d.sync += digested.eq(0)
                m.next = next_state

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += [self.header.ready.eq(1), crc.clear.eq(1)]
                with m.If(self.header.valid):
                    header = self.header.payload
                    m.d.sync += [status.eq(header.status), tag.eq(header.tag), length.eq(header.length)]
                    m.next = "SYNC0"
            with m.State("SYNC0"):
                emit(SYNC[0], "SYNC1", checked=False)
            with m.State("SYNC1"):
                emit(SYNC[1], "CODE", checked=False)
            with m.State("CODE"):
                emit(status, "TAG")
            with m.State("TAG"):
                emit(tag, "LEN0")
            with m.State("LEN0"):
                emit(length[:8], "LEN1")
            with m.State("LEN1"):
                emit(length >> 8, "PAYLOAD")
                with m.If(length == 0):
                    with m.If(fire):
                        m.next = "CRC0"
            with m.State("PAYLOAD"):
                emit(self.payload.payload.data, "PAYLOAD")
                m.d.comb += [crc.i.valid.eq(~digested & self.payload.valid), self.payload.ready.eq(fire)]
                with m.If(fire & self.payload.payload.last):
                    m.next = "CRC0"
            with m.State("CRC0"):
                emit(crc.crc[8:], "CRC1", checked=False)
            with m.State("CRC1"):
                emit(crc.crc[:8], "IDLE", checked=False)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
