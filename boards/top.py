"""The board top: PLL and reset, UART pins and LEDs around the system (engine + host protocol)."""

from amaranth import ClockDomain, Elaboratable, Module, Signal
from amaranth.build import ResourceError
from amaranth.lib import io

from .pll import ClockReset

__all__ = ["BoardTop", "system_class"]


def system_class():
    """``rtl.system.SystemTop``: the engine and the UART host protocol."""
    from rtl.system import SystemTop
    return SystemTop


class BoardTop(Elaboratable):
    """Everything on the FPGA of one :class:`~boards.platforms.Board`.

    - the oscillator into a PLL making ``sync`` at ``target_mhz`` (:class:`~boards.pll.ClockReset`),
      and with the board's ``host_mhz`` a ``host`` domain on the oscillator's own clock for all
      but the engine;
    - reset while the PLL is unlocked or button 0 is pressed;
    - the system (``SystemTop(config, lanes, clk_freq=...)``, or ``system``'s class: a block
      alone, :mod:`boards.harness`) on the board's UART;
    - its four state LEDs, registered, on the first LEDs of the board (the OrangeCrab's RGB LED
      shows three).
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

        def buffer(name, direction, port):
            m.submodules[name] = buf = io.Buffer(direction, port)
            return buf

        clk_port = platform.request(b.clk, dir="-")
        if b.family == "ice40":
            # SB_PLL40_PAD takes the pad itself.
            clk_pin = clk_port.io
        else:
            clk_pin = buffer("clk_buffer", "i", clk_port).i
        m.domains.sync = sync = ClockDomain("sync")
        host = "sync"
        host_domain = None
        if b.host_mhz is not None:
            host = "host"
            m.domains.host = host_domain = ClockDomain("host")
        m.submodules.clock = self.clock = clock = ClockReset(b.family, clk_pin, b.clk_mhz, self.target_mhz, sync,
                                                             host_domain=host_domain)
        m.d.comb += clock.button.eq(buffer("button_buffer", "i", platform.request("button", 0, dir="-")).i)

        if host_domain is None:
            m.submodules.system = system = self.system_cls(self.config, self.lanes,
                                                           clk_freq=int(clock.f_out * 1e6))
        else:
            m.submodules.system = system = self.system_cls(self.config, self.lanes,
                                                           clk_freq=int(b.host_mhz * 1e6), host_domain=host)
        uart = platform.request("uart", 0, dir="-")
        m.d.comb += [system.uart_rx.eq(buffer("uart_rx_buffer", "i", uart.rx).i),
                     buffer("uart_tx_buffer", "o", uart.tx).o.eq(system.uart_tx)]

        leds = []
        for i in range(4):
            try:
                leds.append(platform.request("led", i, dir="-"))
            except ResourceError:
                break
        if not leds:
            rgb = platform.request("rgb_led", 0, dir="-")
            leds = [rgb.g, rgb.b, rgb.r]
        # From a register: the LED states are decoded from the system's state (a path of ~10 ns
        # to the pins on the ULX3S); a cycle later, no glitches.
        leds_q = Signal(len(system.leds), name="leds_q")
        m.d[host] += leds_q.eq(system.leds)
        m.d.comb += [buffer(f"led_buffer{i}", "o", led).o.eq(leds_q[i]) for i, led in enumerate(leds)]
        return m
