"""cocotb + Verilator bench of :class:`rtl.pipelined_multiplier.PipelinedMultiplier`: random
operands (extremes a quarter of the time) and a random clock enable; ``p`` checked every cycle
against the product of the operands presented two enabled edges before."""

import cocotb
from rtl_tb import ClockedTB, params, to_signed


class TB(ClockedTB):
    def __init__(self, dut, p):
        super().__init__(dut, seed=p["seed"])
        self.shapes = [(p["a_bits"], p["a_signed"]), (p["b_bits"], p["b_signed"])]
        self.p_bits = p["a_bits"] + p["b_bits"]
        self.p_signed = p["a_signed"] or p["b_signed"]

    def operand(self, bits, signed):
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if self.rng.random() < 0.25:
            return self.rng.choice([low, high, low + 1, 0, 1, high - 1])
        return self.rng.randint(low, high)


@cocotb.test()
async def pipelined_multiplier_random(dut):
    p = params()
    tb = TB(dut, p)
    await tb.reset(["a", "b", "en"])
    stages = [None, None]         # the operands in stage 1, the product in stage 2
    checked = 0
    for _ in range(p["cycles"]):
        a, b = (tb.operand(*shape) for shape in tb.shapes)
        en = int(tb.rng.random() < p["enable"])
        dut.a.value, dut.b.value, dut.en.value = a, b, en
        await tb.settle()
        if stages[1] is not None:
            raw = int(dut.p.value)
            got = to_signed(raw, tb.p_bits) if tb.p_signed else raw
            assert got == stages[1], f"cycle {tb.cycle}: p = {got}, want {stages[1]}"
            checked += 1
        if en:
            stages = [a * b, stages[0]]
        await tb.tick()
    assert checked > p["cycles"] // 2, checked
