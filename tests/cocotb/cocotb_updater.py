"""cocotb test of the outer-product updater: the cases and expected words come from pytest."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from sim.engine_sim import params

ACC = 32


def _pack(values, bits):
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word


def _unpack(word, bits, count):
    out = []
    for i in range(count):
        v = (word >> (i * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


@cocotb.test()
async def updater_words(dut):
    p = params()
    lanes, width = p["lanes"], p["width"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.valid.value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    for n, ((layer, offset, weights, products), want) in enumerate(zip(p["cases"], p["expected"])):
        await FallingEdge(dut.clk)
        dut.valid.value = 1
        dut.layer.value = layer
        dut.offset.value = offset
        dut.weights.value = _pack(weights, width)
        dut.products.value = _pack(products, ACC)
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert int(dut.o_valid.value) == 1
        got = _unpack(int(dut.o_weights.value), width, lanes)
        assert got == want, (f"case {n}: layer {layer} offset {offset} weights={weights} "
                             f"products={products}: {got} != {want}")
