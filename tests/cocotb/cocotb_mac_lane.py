"""cocotb + Verilator bench of :class:`rtl.mac_lane.MACLane`: random operations against exact
integer arithmetic, and whole neurons against the golden network's ``LayerTrace.acc``."""

import cocotb
from rtl_tb import ClockedTB, params


def wrap(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class TB(ClockedTB):
    """Drives one operation per cycle and checks ``acc`` at the lane's latency, every cycle."""

    def __init__(self, dut, p):
        super().__init__(dut, seed=p["seed"])
        self.mult_bits, self.acc_bits = p["mult_bits"], p["acc_bits"]
        self.latency = 1 + bool(p["input_regs"]) + bool(p.get("product_reg", False))

    async def reset(self):
        await super().reset(["load", "en", "a", "b", "load_value"])

    def operand(self):
        low, high = -(1 << (self.mult_bits - 1)), (1 << (self.mult_bits - 1)) - 1
        if self.rng.random() < 0.25:
            return self.rng.choice([low, high, low + 1, -1, 0, 1])
        return self.rng.randint(low, high)

    async def run(self, ops, expected):
        """``ops``: (load, en, a, b, load_value); ``expected[i]``: acc after op i, or None.

        Op ``i`` is driven in cycle ``i``; its result is visible ``latency`` cycles later.
        """
        dut = self.dut
        idle = (0, 0, 0, 0, 0)
        for i, (load, en, a, b, load_value) in enumerate(ops + [idle] * self.latency):
            dut.load.value, dut.en.value = load, en
            dut.a.value, dut.b.value, dut.load_value.value = a, b, load_value
            await self.settle()
            done = i - self.latency
            if 0 <= done and expected[done] is not None:
                got = dut.acc.value.to_signed()
                assert got == expected[done], f"op {done} {ops[done]}: acc {got}, want {expected[done]}"
            await self.tick()


@cocotb.test()
async def mac_lane_random_ops(dut):
    p = params()
    tb = TB(dut, p)
    await tb.reset()
    top = (1 << (tb.acc_bits - 1)) - 1
    ops, expected, acc = [], [], None
    for _ in range(p["cycles"]):
        draw = tb.rng.random()
        load, en = draw < 0.1, draw < 0.05 or 0.1 <= draw < 0.85
        load_value = tb.rng.choice([top, -top - 1, top - 5, 5 - top, 0]) if tb.rng.random() < 0.3 else \
            tb.rng.randint(-top - 1, top)
        a, b = tb.operand(), tb.operand()
        ops.append((int(load), int(en), a, b, load_value))
        if load:
            acc = load_value
        elif en and acc is not None:
            acc = wrap(acc + a * b, tb.acc_bits)
        expected.append(acc)
    await tb.run(ops, expected)


@cocotb.test()
async def mac_lane_golden_neurons(dut):
    """Every neuron of a golden network step, default weights and weights at their limits."""
    import random

    import torch

    from golden.integer.config import EngineConfig
    from golden.integer.network import IntegerNetwork

    p = params()
    config = EngineConfig.from_dict(p["config"])
    if config.mult_bits != p["mult_bits"] or config.acc_bits != p["acc_bits"]:
        config = EngineConfig.from_dict({**p["config"], "mult_bits": p["mult_bits"], "acc_bits": p["acc_bits"]})
    tb = TB(dut, p)
    await tb.reset()
    rng = random.Random(p["seed"])
    for extreme in (False, True):
        net = IntegerNetwork(config)
        if extreme:
            weights, biases = [], []
            for k in range(config.n_layers):
                top = (1 << (config.weight_bits[k] - 1)) - 1
                shape = net.weights[k].shape
                weights.append(torch.tensor([rng.choice([top, -top - 1]) for _ in range(shape.numel())]).reshape(shape))
                biases.append(torch.tensor([rng.choice([top, -top - 1]) for _ in range(shape[0])]))
            net.load_weights(weights, biases)
        weights = [w.clone() for w in net.weights]
        biases = [b.clone() for b in net.biases]
        n_in = config.layers[0]
        x = torch.full((n_in,), (1 << config.input_bits) - 1) if extreme else \
            torch.tensor([rng.randrange(1 << config.input_bits) for _ in range(n_in)])
        trace = net.train_step(x, label=rng.randrange(config.n_classes), record=True)
        ops, expected = [], []
        for k, layer in enumerate(trace.layers):
            for n in range(config.layers[k + 1]):
                ops.append((1, 0, 0, 0, int(biases[k][n]) << config.bias_shift(k)))
                expected.append(None)
                for w, v in zip(weights[k][n].tolist(), layer.x.tolist()):
                    ops.append((0, 1, w, v, 0))
                    expected.append(None)
                expected[-1] = int(layer.acc[n])
        await tb.run(ops, expected)
        tb.log.info(f"{sum(config.layers[1:])} neurons checked (extreme={extreme})")
