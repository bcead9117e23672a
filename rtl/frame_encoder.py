"""Sends host protocol frames: sync, header, a streamed payload and the CRC."""

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .host_protocol import CRC_PARAMETERS, SYNC

__all__ = ["FrameEncoder", "response_layout"]


def response_layout():
    return data.StructLayout({"status": 8, "tag": 8, "length": 16})


class FrameEncoder(wiring.Component):
    """Frames a response (``rtl.host_protocol``): ``SYNC``, status, tag, length, payload, CRC.

    Members
    -------
    header : In(stream.Signature(response_layout()))
        Starts a frame; its ``length`` payload bytes then follow on ``payload``.
    payload : In(stream.Signature(8))
    o : Out(stream.Signature(8))
        The frame's bytes.
    busy : Out(1)
        A frame is being sent.
    """

    def __init__(self):
        super().__init__({
            "header": In(stream.Signature(response_layout())),
            "payload": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC_PARAMETERS.create()
        held = Signal(response_layout())
        count = Signal(16)
        fire = self.o.valid & self.o.ready
        m.d.comb += crc.data.eq(self.o.payload)

        def emit(value, next_state, checked=True):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
            if checked:
                m.d.comb += crc.valid.eq(fire)
            with m.If(fire):
                m.next = next_state

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.header.ready.eq(1)
                with m.If(self.header.valid):
                    m.d.sync += [held.eq(self.header.payload), count.eq(0)]
                    m.next = "SYNC0"
            with m.State("SYNC0"):
                emit(SYNC[0], "SYNC1", checked=False)
            with m.State("SYNC1"):
                emit(SYNC[1], "CODE", checked=False)
            with m.State("CODE"):
                m.d.comb += crc.start.eq(1)
                emit(held.status, "TAG")
            with m.State("TAG"):
                emit(held.tag, "LEN0")
            with m.State("LEN0"):
                emit(held.length[:8], "LEN1")
            with m.State("LEN1"):
                emit(held.length[8:], "PAYLOAD")
                with m.If(held.length == 0):
                    with m.If(fire):
                        m.next = "CRC0"
            with m.State("PAYLOAD"):
                m.d.comb += [self.o.valid.eq(self.payload.valid), self.o.payload.eq(self.payload.payload),
                             self.payload.ready.eq(self.o.ready), crc.valid.eq(fire)]
                with m.If(fire):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == held.length - 1):
                        m.next = "CRC0"
            with m.State("CRC0"):
                emit(crc.crc[8:], "CRC1", checked=False)
            with m.State("CRC1"):
                emit(crc.crc[:8], "IDLE", checked=False)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
