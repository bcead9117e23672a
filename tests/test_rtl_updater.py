"""The outer-product updater against ``docs/numerics.md`` §10 on constrained-random words.

Corners: exact rounding ties (both signs), products at the accumulator's extremes, weights at
and next to both saturation limits, shifts of 0 and of the full accumulator width.
"""

import random

import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from golden.integer.arith import round_shift, saturate
from rtl.outer_product_updater import OuterProductUpdater
from sim.cocotb_runner import run_cocotb

ACC = 32


def golden_word(weights, products, bits, shift):
    return [saturate(w - round_shift(p, shift), bits) for w, p in zip(weights, products)]


def random_cases(rng, lanes, weight_bits, lr_shift, count, max_offset=0):
    """``(layer, offset, weights, products)`` with a bias towards the corners."""
    cases = []
    for _ in range(count):
        k = rng.randrange(len(weight_bits))
        offset = rng.randrange(max_offset + 1)
        bits, shift = weight_bits[k], lr_shift[k] + offset
        top = 1 << (bits - 1)
        weights, products = [], []
        for _ in range(lanes):
            kind = rng.randrange(6)
            w = rng.choice([-top, -top + 1, top - 1, top - 2, 0, 1, -1]) if kind < 2 else rng.randrange(-top, top)
            if kind == 2 and shift:
                # An exact tie: (2t + 1) * 2**(shift-1), either sign.
                t = rng.randrange(-(1 << max(0, ACC - shift - 2)), 1 << max(0, ACC - shift - 2))
                p = (2 * t + 1) << (shift - 1)
            elif kind == 3:
                p = rng.choice([-(1 << (ACC - 1)), (1 << (ACC - 1)) - 1, 0, 1, -1])
            elif kind == 4:
                # Large enough to saturate the weight either way.
                p = rng.choice([-1, 1]) * rng.randrange(top << shift, 1 << (ACC - 1)) if (top << shift) < (1 << (ACC - 1)) else 0
            else:
                p = rng.randrange(-(1 << (ACC - 1)), 1 << (ACC - 1))
            weights.append(w)
            products.append(p)
        cases.append((k, offset, weights, products))
    return cases


def stream_words(dut, cases, golden_shift, product_of, drive=lambda ctx, k, offset: None):
    """One word of ``cases`` (``(layer, offset, weights, products)``) per cycle into ``dut``, each
    product presented as ``product_of(layer, offset, product)``; every output is checked
    ``stages`` cycles later (valid, busy, layer, address, every weight) against §10 with the
    shift ``golden_shift(layer, offset)``. ``drive(ctx, layer, offset)`` sets any other input."""
    stages, lanes = dut.stages, dut.lanes

    async def bench(ctx):
        i = dut.i.payload
        for n in range(len(cases) + stages - 1):
            if n < len(cases):
                k, offset, weights, products = cases[n]
                ctx.set(dut.i.valid, 1)
                ctx.set(i.layer, k)
                ctx.set(i.addr, n & 0xFF)
                drive(ctx, k, offset)
                for p in range(lanes):
                    ctx.set(i.weights[p], weights[p])
                    ctx.set(i.products[p], product_of(k, offset, products[p]))
            else:
                ctx.set(dut.i.valid, 0)
            await ctx.tick()
            done = n + 1 - stages
            if done < 0:
                assert not ctx.get(dut.o.valid) and ctx.get(dut.busy)
                continue
            k, offset, weights, products = cases[done]
            assert ctx.get(dut.o.valid) and ctx.get(dut.busy)
            assert ctx.get(dut.o.payload.layer) == k and ctx.get(dut.o.payload.addr) == done & 0xFF
            got = [ctx.get(dut.o.payload.weights[p]) for p in range(lanes)]
            want = golden_word(weights, products, dut.weight_bits[k], golden_shift(k, offset))
            assert got == want, f"case {done}: layer {k} offset {offset} w={weights} products={products}"
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        assert not ctx.get(dut.o.valid) and not ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("stages, group_copies, rounded", [(1, False, False), (2, False, False), (3, False, False),
                                                      (2, True, False), (3, True, False), (1, False, True),
                                                      (2, False, True), (3, True, True)],
                         ids=["1", "2", "3", "2-copies", "3-copies", "1-rounded", "2-rounded", "3-copies-rounded"])
@pytest.mark.parametrize("lanes, weight_bits, lr_shift, max_offset", [
    (8, (16, 16), (16, 13), 3),
    (3, (14, 16, 12), (0, 1, 28), 3),
    (5, (16,), (20,), 0),
])
def test_updater_matches_golden(lanes, weight_bits, lr_shift, max_offset, stages, group_copies, rounded):
    """One word per cycle, every cycle's output checked ``stages`` cycles after its input; with
    ``group_copies`` the layer and offset copies (here equal to ``i``'s) steer each group; with
    ``rounded_products`` each product comes with the rounding constant ``2**(s + o - 1)`` added
    (one bit wider), as the SPRAM lanes' accumulators deliver it."""
    dut = OuterProductUpdater(lanes=lanes, weight_bits=weight_bits, lr_shift=lr_shift, product_bits=ACC + rounded,
                              addr_bits=8, max_offset=max_offset, stages=stages, group_copies=group_copies,
                              rounded_products=rounded)
    cases = random_cases(random.Random(lanes), lanes, weight_bits, lr_shift, 400, max_offset)

    def drive(ctx, k, offset):
        # (With the copies, lr_offset itself is not used: another value shows it.)
        ctx.set(dut.lr_offset, (offset + group_copies) % (max_offset + 1))
        if group_copies:
            for j in range(dut.copies):
                ctx.set(dut.group_layer[j], k)
                ctx.set(dut.group_offset[j], offset)

    def product_of(k, offset, product):
        return product + ((1 << (lr_shift[k] + offset)) >> 1 if rounded else 0)

    stream_words(dut, cases, lambda k, offset: lr_shift[k] + offset, product_of, drive)


@pytest.mark.parametrize("stages", [1, 2])
def test_updater_offset_in_products_matches_golden(stages):
    """``from_config(..., offset_in_products=True)``: the products come as
    ``δx 2**(D - o) + 2**(s + D - 1)`` (the SPRAM layer engine scales the update ops' x) and the
    updater shifts by ``lr_shift + D`` alone; every word equals §10's ``sat(W - rnd(δx, s + o))``
    for every offset ``o`` in ``0 .. D``, ties and saturating products included."""
    from golden.integer.config import EngineConfig
    config = EngineConfig(layers=(64, 128, 10), rule="drtp")
    decays, bits = len(config.lr_decay), config.update_product_bits
    dut = OuterProductUpdater.from_config(config, 4, 8, stages=stages, rounded_products=True,
                                          offset_in_products=True)
    assert dut.max_offset == 0 and dut.lr_shift == tuple(s + decays for s in config.lr_shift)
    rng = random.Random(stages)
    cases = []
    for n in range(600):
        k, offset = rng.randrange(config.n_layers), n % (decays + 1)
        shift, top = config.lr_shift[k] + offset, 1 << (config.weight_bits[k] - 1)
        weights = [rng.choice([-top, top - 1, 0, rng.randrange(-top, top)]) for _ in range(4)]
        limit = 1 << (bits - 1)
        products = [rng.choice([-limit + 1, limit - 1, ((2 * rng.randrange(-99, 99) + 1) << (shift - 1)),
                                rng.randrange(-limit + 1, limit)]) for _ in range(4)]
        cases.append((k, offset, weights, products))

    def product_of(k, offset, product):
        return (product << (decays - offset)) + (1 << (config.lr_shift[k] + decays - 1))

    stream_words(dut, cases, lambda k, offset: config.lr_shift[k] + offset, product_of)


def test_updater_rounded_products_need_nearest_rounding():
    """Stochastic draws cannot be loaded into the accumulators beforehand: refused; and the
    offset in the products comes only with the rounding constant there too."""
    from golden.integer.config import EngineConfig
    with pytest.raises(ValueError, match="rounded_products needs nearest rounding"):
        OuterProductUpdater(lanes=4, weight_bits=(16,), lr_shift=(13,), product_bits=ACC + 1, addr_bits=8,
                            stochastic=True, rounded_products=True)
    with pytest.raises(ValueError, match="offset_in_products needs rounded_products"):
        OuterProductUpdater.from_config(EngineConfig(layers=(64, 128, 10), rule="drtp"), 4, 8,
                                        offset_in_products=True)


class UpdaterTop(wiring.Component):
    """The updater with plain ports (its streams are always-ready, which a toplevel cannot be)."""

    def __init__(self, lanes, weight_bits, lr_shift, max_offset):
        self.updater = OuterProductUpdater(lanes=lanes, weight_bits=weight_bits, lr_shift=lr_shift,
                                           product_bits=ACC, addr_bits=8, max_offset=max_offset)
        wide = max(weight_bits)
        super().__init__({
            "valid": In(1), "layer": In(self.updater.layer_shape), "offset": In(range(max_offset + 1)),
            "weights": In(data.ArrayLayout(signed(wide), lanes)),
            "products": In(data.ArrayLayout(signed(ACC), lanes)),
            "o_valid": Out(1), "o_weights": Out(data.ArrayLayout(signed(wide), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.updater = u = self.updater
        m.d.comb += [
            u.i.valid.eq(self.valid), u.i.payload.layer.eq(self.layer), u.lr_offset.eq(self.offset),
            u.i.payload.weights.eq(self.weights), u.i.payload.products.eq(self.products),
            self.o_valid.eq(u.o.valid), self.o_weights.eq(u.o.payload.weights),
        ]
        return m


def test_updater_cocotb():
    lanes, weight_bits, lr_shift, max_offset = 4, (16, 14), (13, 16), 3
    cases = random_cases(random.Random(7), lanes, weight_bits, lr_shift, 300, max_offset)
    expected = [golden_word(w, p, weight_bits[k], lr_shift[k] + o) for k, o, w, p in cases]
    run_cocotb(UpdaterTop(lanes, weight_bits, lr_shift, max_offset), block="updater", test_module="cocotb_updater",
               test_paths=[str(__import__("pathlib").Path(__file__).parent / "cocotb")],
               params={"lanes": lanes, "width": max(weight_bits), "cases": cases, "expected": expected})
