"""The 8N1 UART: transmitter into receiver, bit timing, framing errors, divisor checks."""

import random

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from rtl.uart import UARTRx, UARTTx, uart_divisor


@pytest.mark.parametrize("divisor", [4, 5, 13])
def test_loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [random.Random(divisor).randrange(256) for _ in range(40)] + [0x00, 0xFF, 0x55]
    got = []

    async def send(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def receive(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            _, _, valid, payload, error = await ctx.tick().sample(rx.o.valid, rx.o.payload, rx.framing_error)
            assert not error
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(send, background=True)
    sim.add_testbench(receive)
    sim.run()
    assert got == data


def test_tx_bit_timing():
    tx = UARTTx(4)
    line = []

    async def bench(ctx):
        ctx.set(tx.i.payload, 0b1010_0011)
        ctx.set(tx.i.valid, 1)
        await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)
        for _ in range(4 * 11):
            line.append(ctx.get(tx.tx))
            await ctx.tick()

    sim = Simulator(tx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    bits = line[::4]
    # start, 8 data bits LSB first, stop, idle
    assert bits == [0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1]
    assert all(line[i] == bits[i // 4] for i in range(len(line)))


def test_framing_error_drops_byte():
    rx = UARTRx(4)
    events = {"bytes": [], "errors": 0}

    async def drive(ctx):
        def frame(byte, stop):
            return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]
        for bit in [1] * 3 + frame(0x3C, 0) + [1] * 12 + frame(0xC3, 1) + [1] * 12:
            ctx.set(rx.rx, bit)
            await ctx.tick().repeat(4)

    async def watch(ctx):
        ctx.set(rx.o.ready, 1)
        async for _, _, valid, payload, error in ctx.tick().sample(rx.o.valid, rx.o.payload, rx.framing_error):
            if valid:
                events["bytes"].append(payload)
            events["errors"] += error

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_process(watch)
    sim.add_testbench(drive)
    sim.run()
    assert events == {"bytes": [0xC3], "errors": 1}


def test_divisor():
    assert uart_divisor(12e6, 115200) == 104
    assert uart_divisor(460800, 115200) == 4
    with pytest.raises(ValueError, match="off"):
        uart_divisor(300e3, 115200)
    with pytest.raises(ValueError, match="at least 2"):
        uart_divisor(115200, 115200)
