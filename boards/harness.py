"""A stand-in for ``rtl.system.SystemTop`` while the host protocol is not there: the engine with
every port reachable from the UART pins, so synthesis keeps all of it and its resources and
timing can be measured. It is no protocol: the board tops use ``SystemTop`` when it exists."""

from amaranth import Cat, Module, Signal
from amaranth.lib import cdc, wiring
from amaranth.lib.wiring import In, Out

from rtl.engine import Engine

__all__ = ["EngineHarness"]


class EngineHarness(wiring.Component):
    """The :class:`~rtl.engine.Engine` behind a serial shift chain (for synthesis only).

    ``uart_rx`` shifts a chain of flip-flops holding every engine input (payloads and valid /
    ready bits); ``uart_tx`` is the registered XOR of every engine output, so no logic is
    optimised away. It has ``SystemTop``'s signature.

    Members
    -------
    uart_rx : In(1)
    uart_tx : Out(1)
    leds : Out(4)
        Engine ready, a training result, an inference result, a response.
    """

    def __init__(self, config, lanes, *, clk_freq, baud=115200, host_domain="sync"):
        # All of it runs in sync, whatever the board's host domain: its pins are asynchronous and
        # its LEDs levels (the board top registers them in the host domain).
        self.config = config
        self.lanes = lanes
        self.clk_freq = clk_freq
        self.baud = baud
        super().__init__({"uart_rx": In(1), "uart_tx": Out(1), "leds": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = Engine(self.config, self.lanes)
        rx = Signal()
        m.submodules.rx_sync = cdc.FFSynchronizer(self.uart_rx, rx, init=1)

        inputs = [engine.pixels.payload, engine.pixels.valid, engine.cmd.payload, engine.cmd.valid,
                  engine.access.payload, engine.access.valid, engine.result.ready, engine.response.ready]
        width = sum(len(Cat(v)) for v in inputs)
        chain = Signal(width)
        m.d.sync += chain.eq(Cat(rx, chain[:-1]))
        offset = 0
        for value in inputs:
            n = len(Cat(value))
            m.d.comb += Cat(value).eq(chain[offset:offset + n])
            offset += n

        outputs = Cat(engine.result.payload, engine.result.valid, engine.response.payload,
                      engine.response.valid, engine.pixels.ready, engine.cmd.ready, engine.access.ready)
        tx = Signal(init=1)
        m.d.sync += tx.eq(outputs.xor())
        m.d.comb += self.uart_tx.eq(tx)

        seen = Signal(3)
        with m.If(engine.result.valid):
            with m.If(engine.result.payload.train):
                m.d.sync += seen[0].eq(1)
            with m.Else():
                m.d.sync += seen[1].eq(1)
        with m.If(engine.response.valid):
            m.d.sync += seen[2].eq(1)
        m.d.comb += self.leds.eq(Cat(engine.ready, seen))
        return m
