"""The protocol's CRC one bit a cycle: the frame decoder's and encoder's check in a third of the
logic of the byte-a-cycle circuit (``amaranth.lib.crc``), with a UART's time to spare."""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .host_protocol import CRC_PARAMETERS

__all__ = ["SerialCRC"]


class SerialCRC(wiring.Component):
    """:data:`~rtl.host_protocol.CRC_PARAMETERS` (CRC-16/IBM-3740: no reflection, no final XOR),
    most significant bit first: a byte in eight cycles.

    Members
    -------
    clear : In(1)
        Sets the register to the initial value (between bytes).
    i : In(stream.Signature(8))
        A byte, held (stream rules) while it is taken: ``ready`` on its eighth cycle.
    crc : Out(16)
        The CRC of the bytes taken since ``clear``.
    match : Out(1)
        ``crc`` is the residue: the bytes ended on their own CRC, high byte first (an intact frame).
    """

    def __init__(self):
        algorithm = CRC_PARAMETERS.algorithm
        if (algorithm.crc_width, algorithm.reflect_input, algorithm.reflect_output, algorithm.xor_output,
                CRC_PARAMETERS.data_width) != (16, False, False, 0, 8):
            raise ValueError(f"SerialCRC: built for a 16-bit CRC without reflection or final XOR, "
                             f"not {algorithm}")
        self.polynomial = algorithm.polynomial
        self.initial = algorithm.initial_crc
        self.residue = CRC_PARAMETERS.residue()
        super().__init__({"clear": In(1), "i": In(stream.Signature(8)), "crc": Out(16), "match": Out(1)})

    def elaborate(self, platform):
        m = Module()
        bit = Signal(3)                     # bits of the byte taken (from its most significant)
        # No reset: ``clear`` takes the flip-flops' synchronous set (no logic in front of them).
        crc = Signal(16, reset_less=True)
        m.d.comb += self.crc.eq(crc)
        feedback = crc[15] ^ self.i.payload[::-1].bit_select(bit, 1)
        shifted = Cat(feedback & (self.polynomial & 1),
                      *[crc[k - 1] ^ (feedback & ((self.polynomial >> k) & 1)) for k in range(1, 16)])
        with m.If(self.clear):
            m.d.sync += crc.eq(self.initial)
        with m.Elif(self.i.valid):
            m.d.sync += [crc.eq(shifted), bit.eq(bit + 1)]
        m.d.comb += [self.i.ready.eq(bit == 7), self.match.eq(crc == self.residue)]
        return m
