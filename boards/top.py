"""The board top: PLL and reset, UART pins and LEDs around the system (engine + host protocol)."""

from amaranth import ClockDomain, Elaboratable, Module
from amaranth.build import ResourceError

from .pll import ClockReset

__all__ = ["BoardTop", "system_class"]


def system_class():
    """``rtl.system.SystemTop`` (engine + UART host protocol), or the synthesis stand-in
    :class:`~boards.harness.EngineHarness` where the host protocol is not there yet."""
    try:
        from rtl.system import SystemTop
        return SystemTop
    except ImportError:
        from .harness import EngineHarness
        return EngineHarness


class BoardTop(Elaboratable):
    """Everything on the FPGA of one :class:`~boards.platforms.Board`.

    - the oscillator into a PLL making ``sync`` at ``target_mhz`` (:class:`~boards.pll.ClockReset`);
    - reset while the PLL is unlocked or button 0 is pressed;
    - the system (``SystemTop(config, lanes, clk_freq=...)``) on the board's UART;
    - its four state LEDs on the first LEDs of the board (the OrangeCrab's RGB LED shows three).
    """

    def __init__(self, board, config, lanes, target_mhz=None, system=None):
        self.board = board
        self.config = config
        self.lanes = lanes
        self.target_mhz = target_mhz or board.target_mhz
        self.clock = None
        self.system_cls = system or system_class()

    def elaborate(self, platform):
        m = Module()
        b = self.board
        if b.family == "ice40":
            # SB_PLL40_PAD takes the pad itself.
            clk_pin = platform.request(b.clk, dir="-").io
        else:
            clk_pin = platform.request(b.clk).i
        m.domains.sync = sync = ClockDomain("sync")
        m.submodules.clock = self.clock = clock = ClockReset(b.family, clk_pin, b.clk_mhz, self.target_mhz, sync)
        m.d.comb += clock.button.eq(platform.request("button", 0).i)

        m.submodules.system = system = self.system_cls(self.config, self.lanes,
                                                       clk_freq=int(clock.f_out * 1e6))
        uart = platform.request("uart", 0)
        m.d.comb += [system.uart_rx.eq(uart.rx.i), uart.tx.o.eq(system.uart_tx)]

        leds = []
        for i in range(4):
            try:
                leds.append(platform.request("led", i).o)
            except ResourceError:
                break
        if not leds:
            rgb = platform.request("rgb_led", 0)
            leds = [rgb.g.o, rgb.b.o, rgb.r.o]
        m.d.comb += [led.eq(system.leds[i]) for i, led in enumerate(leds)]
        return m
