"""The engine's stream ports driven from an Amaranth simulator testbench (``amaranth.sim``).

The Amaranth-simulator counterpart of :class:`sim.engine_sim.EngineTB` (cocotb under Verilator):
the fast unit tests (``tests/test_rtl_engine.py``) and the simulator benchmark
(:func:`bench.rtl.run_pysim`) use the same handshakes.
"""

from rtl.engine import Command

__all__ = ["EnginePorts"]


class EnginePorts:
    """One transfer at a time on an :class:`~rtl.engine.Engine`'s ``pixels``, ``cmd``,
    ``result``, ``access`` and ``response`` streams; each method awaits its handshakes.

    Parameters
    ----------
    dut : Engine
        The simulated engine (its ports are read and set through the testbench's ``ctx``).
    """

    def __init__(self, dut):
        self.dut = dut

    async def access(self, ctx, region, layer=0, addr=0, write=0, data=0):
        """One access-port request; returns the response's payload (a write's too)."""
        dut = self.dut
        ctx.set(dut.access.payload.region, region)
        ctx.set(dut.access.payload.layer, layer)
        ctx.set(dut.access.payload.addr, int(addr))
        ctx.set(dut.access.payload.write, write)
        ctx.set(dut.access.payload.data, data)
        ctx.set(dut.access.valid, 1)
        await ctx.tick().until(dut.access.ready)
        ctx.set(dut.access.valid, 0)
        ctx.set(dut.response.ready, 1)
        value, = await ctx.tick().sample(dut.response.payload).until(dut.response.valid)
        ctx.set(dut.response.ready, 0)
        return value

    async def step(self, ctx, pixels, label, infer=False):
        """Streams one sample's ``pixels``, issues ``TRAIN`` (``INFER`` with ``infer``) with
        ``label`` and returns the result's ``(prediction, checksum)``."""
        dut = self.dut
        for px in pixels:
            ctx.set(dut.pixels.payload, px)
            ctx.set(dut.pixels.valid, 1)
            await ctx.tick().until(dut.pixels.ready)
        ctx.set(dut.pixels.valid, 0)
        ctx.set(dut.cmd.payload.op, Command.INFER if infer else Command.TRAIN)
        ctx.set(dut.cmd.payload.label, label)
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        ctx.set(dut.result.ready, 1)
        prediction, checksum = await ctx.tick().sample(
            dut.result.payload.prediction, dut.result.payload.checksum).until(dut.result.valid)
        ctx.set(dut.result.ready, 0)
        return prediction, checksum
