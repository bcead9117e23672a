# amaranth: UnusedElaboratable=no
"""rtl.mac_lane.MACLane: every cycle's accumulator against exact integer arithmetic, and whole
neurons against the golden network's accumulators (``LayerTrace.acc``)."""

import random
from pathlib import Path

import pytest
import torch
from amaranth.sim import Simulator

from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config
from rtl.mac_lane import MACLane
from sim.primitive_models import model_verilog

COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"

# (mult_bits, acc_bits, input_regs): SB_MAC16 with and without the DSP's input registers, and
# MULT18X18D with a fabric accumulator.
CONFIGS = [(16, 32, False), (16, 32, True), (18, 40, False)]
# (mult_bits, acc_bits, input_regs, product_reg): the lanes' pipelines on ECP5 (LANE_LATENCIES).
PIPELINED = [(16, 32, False, True), (16, 32, True, True), (18, 40, True, True)]


def wrap(value, bits):
    """``value`` in ``bits``-bit two's complement, as the accumulator register holds it."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def random_operand(rng, bits):
    """Extremes a quarter of the time, else uniform: products at both signs' limits."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return rng.choice([low, high, low + 1, -1, 0, 1]) if rng.random() < 0.25 else rng.randint(low, high)


def random_ops(rng, mult_bits, acc_bits, count):
    """``(load, en, a, b, load_value)`` per cycle; loads near the accumulator's limits too."""
    ops = []
    for _ in range(count):
        draw = rng.random()
        load, en = draw < 0.1, draw < 0.05 or 0.1 <= draw < 0.85   # some cycles have both
        top = (1 << (acc_bits - 1)) - 1
        load_value = rng.choice([top, -top - 1, top - 5, 5 - top, 0]) if rng.random() < 0.3 else \
            rng.randint(-top - 1, top)
        ops.append((int(load), int(en), random_operand(rng, mult_bits), random_operand(rng, mult_bits), load_value))
    return ops


def expected_accs(ops, acc_bits):
    """The accumulator after each op, ``None`` until the first load (undefined after reset)."""
    acc, out = None, []
    for load, en, a, b, load_value in ops:
        if load:
            acc = load_value
        elif en and acc is not None:
            acc = wrap(acc + a * b, acc_bits)
        out.append(acc)
    return out


def run_lane(lane, ops, *, golden=expected_accs):
    """Drive ``ops`` one per cycle; compare ``acc`` after each (at its latency)."""
    want = golden(ops, lane.acc_bits)
    latency = lane.latency

    async def bench(ctx):
        got = []
        for load, en, a, b, load_value in ops + [(0, 0, 0, 0, 0)] * latency:
            for port, value in ((lane.load, load), (lane.en, en), (lane.a, a), (lane.b, b),
                                (lane.load_value, load_value)):
                ctx.set(port, value)
            await ctx.tick()
            got.append(ctx.get(lane.acc))
        got = got[latency - 1:latency - 1 + len(ops)]
        for i, (g, w) in enumerate(zip(got, want)):
            assert w is None or g == w, f"cycle {i}: op {ops[i]}: acc {g}, want {w}"

    sim = Simulator(lane)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def neuron_ops(config, k, weights, bias, x):
    """One neuron's schedule: load the shifted bias, then one product per input."""
    ops = [(1, 0, 0, 0, int(bias) << config.bias_shift(k))]
    ops += [(0, 1, int(w), int(v), 0) for w, v in zip(weights, x)]
    return ops


@pytest.mark.parametrize("mult_bits, acc_bits, input_regs", CONFIGS)
def test_mac_lane_random_ops(mult_bits, acc_bits, input_regs):
    rng = random.Random(mult_bits + acc_bits + input_regs)
    lane = MACLane(mult_bits, acc_bits, input_regs)
    run_lane(lane, random_ops(rng, mult_bits, acc_bits, 1500))


@pytest.mark.parametrize("mult_bits, acc_bits, input_regs, product_reg", PIPELINED)
def test_mac_lane_pipelined_random_ops(mult_bits, acc_bits, input_regs, product_reg):
    """With a product register (and operand registers) the lane is the same, ``latency`` cycles on."""
    rng = random.Random(mult_bits + acc_bits + input_regs + 7)
    lane = MACLane(mult_bits, acc_bits, input_regs, product_reg)
    assert lane.latency == 1 + input_regs + product_reg
    run_lane(lane, random_ops(rng, mult_bits, acc_bits, 1500))


def test_mac_lane_pipelined_cocotb():
    """The ECP5 lane (operand and product registers) under Verilator, golden neurons included."""
    from sim.cocotb_runner import run_cocotb

    config = default_config("lls", None, (64, 24, 10))
    run_cocotb(MACLane(16, 32, True, True), block="mac_lane_l3", toplevel="mac_lane_l3",
               test_module="cocotb_mac_lane", test_paths=[COCOTB_DIR],
               params={"mult_bits": 16, "acc_bits": 32, "input_regs": True, "product_reg": True,
                       "cycles": 3000, "seed": 11, "config": config.to_dict()})


def mult18x18d_lane_verilog(mult_bits, acc_bits, model=None):
    """The lane with an instantiated MULT18X18D, and the primitive's model beside it."""
    from sim.cocotb_runner import to_verilog

    lane = MACLane(mult_bits, acc_bits, input_regs=True, product_reg=True, multiplier="mult18x18d")
    return to_verilog(lane, "mac_lane") + (model or model_verilog("MULT18X18D"))


@pytest.mark.parametrize("mult_bits, acc_bits", [(16, 32), (18, 40)])
def test_mac_lane_mult18x18d_cocotb(mult_bits, acc_bits):
    """The ECP5 lane whose operand and product registers are the MULT18X18D's own (the ports,
    the signed modes, the clock and the latency), under Verilator with a model of the primitive
    (``sim/models/MULT18X18D.v``): the same random operations and golden neurons as the others."""
    from sim.cocotb_runner import run_cocotb

    config = default_config("lls", None, (64, 24, 10))
    run_cocotb(None, verilog=mult18x18d_lane_verilog(mult_bits, acc_bits), block=f"mac_lane_mult18x18d_{mult_bits}",
               toplevel="mac_lane", test_module="cocotb_mac_lane", test_paths=[COCOTB_DIR],
               params={"mult_bits": mult_bits, "acc_bits": acc_bits, "input_regs": True, "product_reg": True,
                       "cycles": 3000, "seed": 5 + mult_bits, "config": config.to_dict()})


def test_mac_lane_mult18x18d_check_can_fail():
    """A primitive whose operands are unsigned (SIGNEDA ignored) fails the same bench."""
    from sim.cocotb_runner import CocotbFailure, run_cocotb

    model = model_verilog("MULT18X18D").replace("signed_a_reg <= SIGNEDA;", "signed_a_reg <= 1'b0;")
    assert "1'b0;" in model
    config = default_config("lls", None, (64, 24, 10))
    with pytest.raises(CocotbFailure, match="1 of 1 cocotb tests failed"):
        run_cocotb(None, verilog=mult18x18d_lane_verilog(16, 32, model), block="mac_lane_mult18x18d_unsigned",
                   toplevel="mac_lane", test_module="cocotb_mac_lane", test_paths=[COCOTB_DIR],
                   testcase="mac_lane_random_ops",
                   params={"mult_bits": 16, "acc_bits": 32, "input_regs": True, "product_reg": True,
                           "cycles": 300, "seed": 3, "config": config.to_dict()})


@pytest.mark.parametrize("kwargs", [dict(input_regs=False, product_reg=True),
                                    dict(input_regs=True, product_reg=False),
                                    dict(mult_bits=20, input_regs=True, product_reg=True)])
def test_mac_lane_mult18x18d_needs_its_registers(kwargs):
    with pytest.raises(ValueError, match="mult18x18d"):
        MACLane(**{"mult_bits": 16, "acc_bits": 32, **kwargs}, multiplier="mult18x18d")
    with pytest.raises(ValueError, match="multiplier"):
        MACLane(16, 32, multiplier="dsp48")


def extreme_network(config, rng):
    """The golden network with weights and biases pushed to their limits (and random values)."""
    net = IntegerNetwork(config)
    weights, biases = [], []
    for k in range(config.n_layers):
        top = (1 << (config.weight_bits[k] - 1)) - 1
        shape = net.weights[k].shape
        w = torch.tensor([rng.choice([top, -top - 1, rng.randint(-top - 1, top)]) for _ in range(shape.numel())])
        b = torch.tensor([rng.choice([top, -top - 1, 0, rng.randint(-top - 1, top)]) for _ in range(shape[0])])
        weights.append(w.reshape(shape))
        biases.append(b)
    net.load_weights(weights, biases)
    return net


@pytest.mark.parametrize("rule, extreme", [("lls", False), ("lls", True), ("drtp", True)])
def test_mac_lane_neurons_match_golden_accumulators(rule, extreme):
    """Whole neurons of every layer equal ``LayerTrace.acc`` = ``W x + (b << bias_shift)``."""
    rng = random.Random(len(rule) + extreme)
    config = default_config(rule, None, (64, 24, 10))
    net = extreme_network(config, rng) if extreme else IntegerNetwork(config)
    weights = [w.clone() for w in net.weights]
    biases = [b.clone() for b in net.biases]
    # Saturated inputs (all 255) give the largest sums when the weights are extreme.
    x = torch.full((64,), 255) if extreme else torch.tensor([rng.randrange(256) for _ in range(64)])
    trace = net.train_step(x, label=3, record=True)
    lane = MACLane.from_config(config)
    ops, want = [], []
    for k, layer in enumerate(trace.layers):
        for n in range(config.layers[k + 1]):
            ops += neuron_ops(config, k, weights[k][n].tolist(), biases[k][n], layer.x.tolist())
            want.append(int(layer.acc[n]))
    # Compare at each neuron's last op: the lane's accumulator there is the neuron's sum.
    ends = []
    position = 0
    for k in range(config.n_layers):
        for n in range(config.layers[k + 1]):
            position += 1 + config.layers[k]
            ends.append(position - 1)

    def golden(ops, acc_bits):
        out = [None] * len(ops)
        for end, value in zip(ends, want):
            out[end] = value
        return out

    run_lane(lane, ops, golden=golden)


def test_mac_lane_check_can_fail():
    """A reference that forgets the wrap-around is caught."""
    ops = [(1, 0, 0, 0, (1 << 31) - 1)] + [(0, 1, 32767, 32767, 0)] * 3

    def no_wrap(ops, acc_bits):
        return [(1 << 31) - 1 + i * 32767 * 32767 for i in range(len(ops))]

    run_lane(MACLane(16, 32), ops)
    with pytest.raises(AssertionError, match="cycle 1"):
        run_lane(MACLane(16, 32), ops, golden=no_wrap)


@pytest.mark.parametrize("mult_bits, acc_bits, input_regs", [CONFIGS[0], CONFIGS[1]])
def test_mac_lane_cocotb(mult_bits, acc_bits, input_regs):
    """The reference simulator: Verilator, random operations and golden neurons."""
    from sim.cocotb_runner import run_cocotb

    config = default_config("lls", None, (64, 24, 10))
    run_cocotb(MACLane(mult_bits, acc_bits, input_regs), block="mac_lane", test_module="cocotb_mac_lane",
               test_paths=[COCOTB_DIR],
               params={"mult_bits": mult_bits, "acc_bits": acc_bits, "input_regs": input_regs,
                       "cycles": 3000, "seed": acc_bits + input_regs, "config": config.to_dict()})


@pytest.mark.synth
@pytest.mark.parametrize("input_regs", [False, True])
def test_mac_lane_packs_into_sb_mac16(input_regs, tmp_path, request):
    """Yosys maps the whole lane (multiplier, adder, accumulator, load mux) into one SB_MAC16.

    Stops before LUT mapping (``-run begin:map_luts``): DSP inference is done by then, and the
    YoWASP build of ABC is not needed (see ``sim/synth_check.py``). About a second; skipped
    when the first YoWASP run (a ~2 min compile) is still to come, unless ``--regress``.
    """
    from sim import toolchain
    from sim.synth_check import ice40_cells

    if not (toolchain.yosys_is_warm() or request.config.getoption("--regress", default=False)):
        pytest.skip("Yosys not warmed up (first YoWASP run compiles for ~2 min): python -m sim.synth_check")
    cells = ice40_cells(MACLane(16, 32, input_regs), "mac_lane", tmp_path)
    assert cells.get("SB_MAC16") == 1, cells
    # What is left in fabric: the clock-enable OR (and its inversion) and, with input
    # registers, the two registered controls. No adder, no accumulator flip-flops.
    assert not any(name.startswith(("SB_CARRY", "$_DFF", "$alu", "$add")) for name in cells), cells
    assert sum(n for name, n in cells.items() if "DFF" in name) == (2 if input_regs else 0), cells


@pytest.mark.synth
@pytest.mark.parametrize("input_regs", [False, True])
def test_mac_lane_sb_mac16_netlist_cocotb(input_regs, tmp_path, request):
    """The netlist Yosys packs into SB_MAC16 (simulated through Yosys's own SB_MAC16 model)
    passes the same bench as the RTL: the DSP's signed modes, accumulator and load are right."""
    from sim import toolchain
    from sim.cocotb_runner import run_cocotb
    from sim.synth_check import ice40_dsp_netlist

    if not (toolchain.yosys_is_warm() or request.config.getoption("--regress", default=False)):
        pytest.skip("Yosys not warmed up (first YoWASP run compiles for ~2 min): python -m sim.synth_check")
    netlist = ice40_dsp_netlist(MACLane(16, 32, input_regs), "mac_lane", tmp_path)
    config = default_config("lls", None, (64, 24, 10))
    run_cocotb(None, verilog=netlist, block="mac_lane_sb_mac16", toplevel="mac_lane",
               test_module="cocotb_mac_lane", test_paths=[COCOTB_DIR],
               params={"mult_bits": 16, "acc_bits": 32, "input_regs": input_regs,
                       "cycles": 3000, "seed": 7 + input_regs, "config": config.to_dict()})


@pytest.mark.synth
def test_mac_lane_mult18x18d_holds_its_registers(tmp_path, request):
    """On ECP5 the instantiated MULT18X18D holds the operand and product registers: 64 flip-flops
    (a, b: 16 each; the product: 32) fewer in the fabric than Yosys's inferred lane, which keeps
    the multiplier combinational. What stays: the controls and the load value (twice), the
    accumulator."""
    from sim import toolchain
    from sim.synth_check import ecp5_cells

    if not (toolchain.yosys_is_warm() or request.config.getoption("--regress", default=False)):
        pytest.skip("Yosys not warmed up (first YoWASP run compiles for ~2 min): python -m sim.synth_check")
    flip_flops = {}
    for multiplier in ("inferred", "mult18x18d"):
        lane = MACLane(16, 32, True, True, own_registers=True, multiplier=multiplier)
        cells = ecp5_cells(lane, "mac_lane", tmp_path / multiplier)
        assert cells.get("MULT18X18D") == 1, cells
        flip_flops[multiplier] = cells.get("TRELLIS_FF", 0)
    assert flip_flops == {"inferred": 164, "mult18x18d": 100}, flip_flops
