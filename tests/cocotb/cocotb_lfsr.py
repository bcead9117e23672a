"""cocotb + Verilator bench of :class:`rtl.lfsr.LFSR` against :class:`golden.integer.lfsr.LFSR`."""

import cocotb
from rtl_tb import ClockedTB, params, to_signed

from golden.integer.lfsr import LFSR as GoldenLFSR
from golden.integer.lfsr import lfsr_values


class TB(ClockedTB):
    """Drives ``next``/``load``/``load_value`` and mirrors them on the golden LFSR."""

    def __init__(self, dut, poly, seed, bits, rng_seed):
        super().__init__(dut, seed=rng_seed)
        self.poly, self.seed, self.bits = poly, seed, bits
        self.width = poly.bit_length() - 1

    async def reset(self):
        await super().reset(["next", "load", "load_value"])

    def expect(self, state):
        """(bits, value, state after) of the next advance from ``state``."""
        model = GoldenLFSR(self.poly, state)
        if params().get("wrong_reference"):
            model.step()                # a reference one step ahead: the bench must fail
        out = model.bits(self.bits)
        return out, 2 * out + 1 - (1 << self.bits), model.state

    def check(self, state):
        out, value, after = self.expect(state)
        dut = self.dut
        assert dut.state.value.to_unsigned() == state, (self.cycle, hex(dut.state.value.to_unsigned()), hex(state))
        assert dut.out.value.to_unsigned() == out, (self.cycle, dut.out.value.to_unsigned(), out)
        assert dut.value.value.to_signed() == value, (self.cycle, dut.value.value.to_signed(), value)
        return after


@cocotb.test()
@cocotb.parametrize(load_rate=[0.0, 0.15])
async def lfsr_matches_golden(dut, load_rate):
    """Random advance/hold/load; state, bits and value compared every cycle."""
    p = params()
    tb = TB(dut, p["poly"], p["seed"], p["bits"], rng_seed=p["bits"] + int(load_rate * 100))
    await tb.reset()
    state = p["seed"]
    saved = [state]
    for _ in range(p["cycles"]):
        draw = tb.rng.random()
        load = draw < load_rate
        step = int(draw < 0.75 or load and tb.rng.random() < 0.5)
        value = tb.rng.choice(saved) if tb.rng.random() < 0.5 else tb.rng.randrange(1, 1 << tb.width)
        dut.next.value = step
        dut.load.value = int(load)
        dut.load_value.value = value
        await tb.settle()
        after = tb.check(state)
        await tb.tick()
        state = value if load else after if step else state
        if tb.rng.random() < 0.05:
            saved.append(state)
    tb.log.info(f"{p['cycles']} cycles, bits={p['bits']}")


@cocotb.test()
async def lfsr_values_stream(dut):
    """Free-running from reset: ``value`` is exactly ``lfsr_values``'s stream."""
    p = params()
    tb = TB(dut, p["poly"], p["seed"], p["bits"], rng_seed=0)
    await tb.reset()
    count = p["cycles"]
    model = GoldenLFSR(p["poly"], p["seed"])
    if p.get("wrong_reference"):
        model.step()
    want = lfsr_values(model, count, p["bits"])
    got = []
    dut.next.value = 1
    for _ in range(count):
        await tb.settle()
        got.append(to_signed(dut.value.value.to_unsigned(), p["bits"] + 1))
        await tb.tick()
    assert got == want
