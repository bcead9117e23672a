"""An 8N1 UART: a receiver and a transmitter with stream interfaces (Amaranth has none in its stdlib)."""

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "uart_divisor"]


def uart_divisor(clk_freq, baud):
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz; refuses a rate more than 2 % off."""
    if baud <= 0 or clk_freq <= 0:
        raise ValueError(f"UART: clock {clk_freq} Hz and baud rate {baud} must be positive")
    divisor = round(clk_freq / baud)
    if divisor < 2:
        raise ValueError(f"UART: {baud} baud needs at least 2 cycles per bit at {clk_freq} Hz")
    error = abs(clk_freq / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"UART: {baud} baud at {clk_freq} Hz is {error:.1%} off (divisor {divisor}); "
                         "8N1 tolerates about 2 %")
    return divisor


class UARTTx(wiring.Component):
    """8N1 transmitter: one start bit, eight data bits LSB first, one stop bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; taken when the previous byte's stop bit has been sent.
    tx : Out(1)
        The line (idles high).
    busy : Out(1)
        A byte is being sent.
    """

    def __init__(self, divisor):
        if divisor < 2:
            raise ValueError(f"UARTTx: divisor must be >= 2, got {divisor}")
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        timer = Signal(range(self.divisor), reset_less=True)   # (set as a byte is taken)
        m.d.comb += [self.tx.eq(shift[0]), self.busy.eq(bits != 0), self.i.ready.eq(bits == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))), bits.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [shift.eq(Cat(shift[1:], Const(1, 1))), bits.eq(bits - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """8N1 receiver: samples each bit in its middle; a byte whose stop bit is low is dropped.

    There is no flow control on a UART line: a byte not taken before the next one completes is
    overwritten (``overrun`` pulses).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    rx : In(1)
        The line (synchronised here).
    o : Out(stream.Signature(8))
        Received bytes.
    framing_error : Out(1)
        Pulses when a byte is dropped for a low stop bit.
    overrun : Out(1)
        Pulses when a byte overwrites one not yet taken.
    busy : Out(1)
        A byte is being received.
    """

    def __init__(self, divisor):
        if divisor < 2:
            raise ValueError(f"UARTRx: divisor must be >= 2, got {divisor}")
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)), "framing_error": Out(1),
                          "overrun": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = cdc.FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor), reset_less=True)   # (set on a start bit)
        bits = Signal(range(11))   # 10: start bit, 9..2: data, 1: stop bit
        shift = Signal(8, reset_less=True)
        m.d.comb += self.busy.eq(bits != 0)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(bits == 0):
            with m.If(~rx):
                # A falling edge: sample the start bit half a bit later.
                m.d.sync += [bits.eq(10), timer.eq(self.divisor // 2 - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [timer.eq(self.divisor - 1), bits.eq(bits - 1)]
            with m.If(bits == 10):
                with m.If(rx):
                    m.d.sync += bits.eq(0)   # a glitch, not a start bit
            with m.Elif(bits != 1):
                m.d.sync += shift.eq(Cat(shift[1:], rx))
            with m.Elif(rx):
                m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                m.d.comb += self.overrun.eq(self.o.valid & ~self.o.ready)
            with m.Else():
                m.d.comb += self.framing_error.eq(1)
        return m
