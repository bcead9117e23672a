"""One block of the engine alone on a board, for synthesis only: its Fmax and cells without the
rest of the design around it.

On the UP5K the whole system's clock (29-32 MHz) says little about any one block: the worst paths
are spread over the engine and the placement seed moves them by ±3 MHz. A block built alone,
behind registers, shows what that block itself reaches (``synchrony synth --block NAME``).
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import cdc, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BLOCKS", "BlockHarness", "block_harness"]


def _engine(config, lanes, platform):
    from rtl.engine import Engine
    # As the host protocol builds it (no trace regions).
    return Engine(config, lanes, trace=False)


def _builder(config, lanes, platform):
    """An engine that only builds parts (never elaborated itself, nor its layer engine)."""
    engine = _engine(config, lanes, platform)
    engine._MustUse__silence = engine.layer_engine._MustUse__silence = True
    return engine


def _layer_engine(config, lanes, platform):
    engine = _builder(config, lanes, platform)
    engine.layer_engine._MustUse__silence = False
    return engine.layer_engine


def _part(method):
    """A block the engine builds on ``platform``: ``Engine.<method>(platform)``."""
    def make(config, lanes, platform):
        return getattr(_builder(config, lanes, platform), method)(platform)
    return make


def _signal_unit(config, lanes, platform):
    return _builder(config, lanes, platform).signal_unit(0, platform)


#: The blocks ``synchrony synth --block`` builds alone: name -> ``make(config, lanes, platform)``,
#: each as the engine builds it on that platform.
BLOCKS = {
    "engine": _engine,
    "layer-engine": _layer_engine,
    "sequencer": _part("sequencer"),
    "initialiser": _part("initialiser"),
    "softmax": _part("softmax_unit"),
    "signal": _signal_unit,
}


class BlockHarness(wiring.Component):
    """A block behind a serial shift chain, with ``SystemTop``'s signature (for synthesis only).

    ``uart_rx`` shifts a chain of flip-flops that drives every input of the block (payloads,
    ``valid`` and ``ready`` bits), and every output is registered, then XORed into a bit of its
    own of a rotating signature register whose bit 0 is ``uart_tx``: no logic is optimised away
    (equal outputs do not cancel), and every path into and out of the block starts or ends at a
    flip-flop, as it would beside registered neighbours. It is no protocol.

    Parameters
    ----------
    make : callable
        ``make(config, lanes, platform)`` returns the block (a
        :class:`~amaranth.lib.wiring.Component`).
    config, lanes, clk_freq, host_domain :
        As ``SystemTop``'s; the block runs in ``sync`` whatever the host domain (its pins are
        asynchronous, and its LEDs are constant).

    Members
    -------
    uart_rx : In(1)
    uart_tx : Out(1)
    leds : Out(4)
        0.
    """

    def __init__(self, make, config, lanes, *, clk_freq, baud=115200, host_domain="sync"):
        self.make = make
        self.config = config
        self.lanes = lanes
        super().__init__({"uart_rx": In(1), "uart_tx": Out(1), "leds": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = block = self.make(self.config, self.lanes, platform)
        rx = Signal()
        m.submodules.rx_sync = cdc.FFSynchronizer(self.uart_rx, rx, init=1)

        inputs, outputs = [], []
        for _, member, value in block.signature.flatten(block):
            (inputs if member.flow == In else outputs).append(value)
        chain = Signal(sum(len(Cat(value)) for value in inputs))
        m.d.sync += chain.eq(Cat(rx, chain[:-1]))
        offset = 0
        for value in inputs:
            n = len(Cat(value))
            m.d.comb += Cat(value).eq(chain[offset:offset + n])
            offset += n

        # Registered first, then into a rotating signature register, each bit at a place of its
        # own: one XOR of every output cancelled equal outputs (the initialiser's lanes) and let
        # Yosys delete the logic behind them; a single XOR tree after the outputs would also be a
        # path of its own in front of TX.
        outputs_q = Signal(len(Cat(*outputs)))
        signature = Signal(len(outputs_q), init=1)
        m.d.sync += [outputs_q.eq(Cat(*outputs)), signature.eq(signature.rotate_left(1) ^ outputs_q)]
        m.d.comb += self.uart_tx.eq(signature[0])
        return m


def block_harness(name):
    """The system class (``BoardTop(system=...)``) that builds block ``name`` of :data:`BLOCKS`
    alone; its ``__name__`` (the report's ``design``) names the block."""
    try:
        make = BLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}; choose one of {', '.join(BLOCKS)}") from None

    def system(config, lanes, **kwargs):
        return BlockHarness(make, config, lanes, **kwargs)
    system.__name__ = f"BlockHarness[{name}]"
    return system
