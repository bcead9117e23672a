"""cocotb pieces shared by the RTL foundation benches (LFSR, basis generator, MAC lane, requantiser).

Timing convention of every driver here: inputs are written just after a rising edge, and
handshakes are sampled in the read-only phase of the same cycle, so what is seen there is what
the next rising edge acts on (a transfer seen there happens at that edge). This holds on any
simulator, whatever the order of edge callbacks.

Payloads are decoded with the component's own Amaranth layouts (``layout.from_bits``): the
bench rebuilds the component from the parameters the pytest side passes in ``$SYNCHRONY_PARAMS``.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from sim.cocotb_runner import params

__all__ = ["ClockedTB", "StreamSink", "StreamSource", "params", "to_signed"]


def to_signed(value, bits):
    """Two's-complement reinterpretation of an unsigned ``bits``-bit integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class ClockedTB:
    """The clock, the reset and a seeded RNG around a DUT with Amaranth's ``clk``/``rst``.

    Parameters
    ----------
    dut : cocotb handle
    seed : int
        Seed of the bench's own RNG (stimulus, idle cycles, back-pressure).
    period_ns : int
        Clock period.
    """

    def __init__(self, dut, seed=0, period_ns=10):
        self.dut = dut
        self.log = dut._log
        self.rng = random.Random(seed)
        self.cycle = 0
        self.clock = Clock(dut.clk, period_ns, unit="ns")
        self.clock.start(start_high=False)

    async def reset(self, inputs=(), cycles=2):
        """Hold ``rst`` for ``cycles`` cycles with every named input at 0."""
        for name in inputs:
            getattr(self.dut, name).value = 0
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def tick(self):
        """To the next rising edge."""
        await RisingEdge(self.dut.clk)
        self.cycle += 1

    async def settle(self):
        """To the read-only phase of this cycle, after this cycle's inputs were written."""
        await ReadOnly()


class StreamSource:
    """Offers items on ``<name>__valid``/``__payload``, idling with probability ``idle``.

    ``valid`` is never withdrawn before the transfer. Items are ints (already packed).
    """

    def __init__(self, tb, name, idle=0.0):
        self.tb = tb
        self.valid = getattr(tb.dut, f"{name}__valid")
        self.ready = getattr(tb.dut, f"{name}__ready")
        self.payload = getattr(tb.dut, f"{name}__payload")
        self.idle = idle
        self.queue = []
        self.sent = 0
        self.valid.value = 0

    def send(self, items):
        self.queue.extend(items)

    def start(self):
        return cocotb.start_soon(self._run())

    async def _run(self):
        offering = False
        while True:
            if not offering and self.queue and self.tb.rng.random() >= self.idle:
                self.payload.value = self.queue.pop(0)
                offering = True
            self.valid.value = int(offering)
            await ReadOnly()
            if offering and self.ready.value:
                offering = False
                self.sent += 1
            await RisingEdge(self.tb.dut.clk)


class StreamSink:
    """Takes transfers from ``<name>__valid``/``__payload``, ``ready`` low with probability ``stall``.

    Checks the stream rules on the way (``valid`` held and ``payload`` stable until the
    transfer), unless ``flushed()`` says a flush (e.g. a restart) may drop the offer. Received
    payloads (unsigned ints) are in ``items``; ``on_item(index, bits)`` is called for each.
    """

    def __init__(self, tb, name, stall=0.0, on_item=None):
        self.tb = tb
        self.valid = getattr(tb.dut, f"{name}__valid")
        self.ready = getattr(tb.dut, f"{name}__ready")
        self.payload = getattr(tb.dut, f"{name}__payload")
        self.stall = stall
        self.on_item = on_item
        self.items = []
        self.flushed = lambda: False
        self.ready.value = 0

    def start(self):
        return cocotb.start_soon(self._run())

    async def _run(self):
        held = None
        while True:
            ready = int(self.tb.rng.random() >= self.stall)
            self.ready.value = ready
            await ReadOnly()
            if self.valid.value:
                bits = self.payload.value.to_unsigned()
                if held is not None:
                    assert bits == held, "payload changed while valid and not taken"
                if ready:
                    self.items.append(bits)
                    if self.on_item is not None:
                        self.on_item(len(self.items) - 1, bits)
                    held = None
                else:
                    held = bits
            else:
                assert held is None, "valid withdrawn before the transfer"
            if self.flushed():
                held = None
            await RisingEdge(self.tb.dut.clk)
