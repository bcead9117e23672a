"""The board-independent system: UART, host protocol and engine behind two pins and four LEDs."""

import math

from amaranth import Cat, DomainRenamer, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .host_interface import HostInterface
from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["SystemTop", "LED_READY", "LED_BUSY", "LED_ERROR", "LED_HEARTBEAT"]

LED_READY = 0       #: the engine is initialised and idle
LED_BUSY = 1        #: a frame is being received, executed or answered (training, ...)
LED_ERROR = 2       #: lit for 0.2-0.3 s after a refused or dropped frame, or a UART error
LED_HEARTBEAT = 3   #: blinks at 1 Hz: the clock runs


class SystemTop(wiring.Component):
    """:class:`~rtl.engine.Engine` driven over a UART by the host protocol (``docs/protocol.md``).

    UART receiver (8N1) -> a 16-byte FIFO -> :class:`~rtl.host_interface.HostInterface` (frame
    decoder, bridge, engine, frame encoder) -> UART transmitter. Platform-independent: a board top
    supplies the clock (``sync`` domain, and the host domain if it is another) and wires the
    pins; ``clk_freq`` only sets the UART divisor, the frame timeout and the LED timings.

    Parameters
    ----------
    config : EngineConfig
    lanes : int
    clk_freq : float
        The host domain's clock frequency in Hz (``sync``'s unless ``host_domain`` is given).
    baud : int
        UART rate (8N1).
    frame_timeout : float
        Seconds a frame may stall mid-way before the decoder drops it.
    host_domain : str
        The domain of everything but the engine (UART, protocol, LEDs): see
        :class:`~rtl.host_interface.HostInterface`.

    Members
    -------
    uart_rx : In(1)
        From the host (idles high).
    uart_tx : Out(1)
        To the host (idles high).
    leds : Out(4)
        :data:`LED_READY`, :data:`LED_BUSY`, :data:`LED_ERROR`, :data:`LED_HEARTBEAT`.
    """

    def __init__(self, config, lanes=8, *, clk_freq, baud=115200, frame_timeout=0.02, host_domain="sync"):
        self.config = config
        self.host_domain = host_domain
        self.lanes = lanes
        self.clk_freq = clk_freq
        self.baud = baud
        self.divisor = uart_divisor(clk_freq, baud)
        self.frame_timeout = max(1, math.ceil(frame_timeout * clk_freq))
        self.interface = HostInterface(config, lanes, frame_timeout=self.frame_timeout, host_domain=host_domain)
        self.max_payload = self.interface.max_payload
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "leds": Out(4)})

    def elaborate(self, platform):
        m = Module()
        host = self.host_domain

        def add(name, block):
            m.submodules[name] = block if host == "sync" else DomainRenamer(host)(block)
            return block

        m.submodules.interface = interface = self.interface
        rx = add("uart_rx", UARTRx(self.divisor))
        tx = add("uart_tx", UARTTx(self.divisor))
        # The host sends one frame, then waits: the FIFO only absorbs the decoder's pauses.
        rx_fifo = add("rx_fifo", fifo.SyncFIFOBuffered(width=8, depth=16))

        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        m.d.comb += [
            rx_fifo.w_data.eq(rx.o.payload), rx_fifo.w_en.eq(rx.o.valid), rx.o.ready.eq(1),
            interface.i.payload.eq(rx_fifo.r_data), interface.i.valid.eq(rx_fifo.r_rdy),
            rx_fifo.r_en.eq(interface.i.ready),
        ]
        # A byte register between the encoder and the transmitter: the UART sits by its pin, far
        # from the bridge, and its ready was a 10.27 ns path across the OrangeCrab into the
        # bridge's enables. (A bubble a byte: nothing beside a UART's ten bit times.)
        tx_byte = Signal(8, reset_less=True)
        tx_full = Signal()
        m.d.comb += [interface.o.ready.eq(~tx_full), tx.i.valid.eq(tx_full), tx.i.payload.eq(tx_byte)]
        with m.If(tx_full):
            with m.If(tx.i.ready):
                m.d[host] += tx_full.eq(0)
        with m.Elif(interface.o.valid):
            m.d[host] += [tx_byte.eq(interface.o.payload), tx_full.eq(1)]

        # One 0.1 s prescaler times both LEDs (a 1 Hz heartbeat; the error LED for 0.2-0.3 s).
        tenth = max(1, int(self.clk_freq // 10))
        beat = Signal(range(tenth))
        tick = Signal()
        m.d.comb += tick.eq(beat == tenth - 1)
        m.d[host] += beat.eq(Mux(tick, 0, beat + 1))
        tenths = Signal(range(5))
        heartbeat = Signal()
        with m.If(tick):
            m.d[host] += tenths.eq(Mux(tenths == 4, 0, tenths + 1))
            with m.If(tenths == 4):
                m.d[host] += heartbeat.eq(~heartbeat)
        error_hold = Signal(range(4))
        with m.If(interface.error | rx.framing_error | (rx_fifo.w_en & ~rx_fifo.w_rdy)):
            m.d[host] += error_hold.eq(3)
        with m.Elif(tick & (error_hold != 0)):
            m.d[host] += error_hold.eq(error_hold - 1)
        # Busy from the first bit of a request's last byte to the last bit of its response, so
        # a simulation may stop the clock whenever it is low and no byte is on its way in.
        busy = rx.busy | rx_fifo.r_rdy | interface.busy | tx_full | tx.busy
        m.d.comb += self.leds.eq(Cat(interface.ready, busy, error_hold != 0, heartbeat))
        return m
