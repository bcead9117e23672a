# amaranth: UnusedElaboratable=no
"""rtl.pipelined_multiplier.PipelinedMultiplier: every cycle's product under a random clock
enable, inferred (Amaranth's simulator and Verilator) and as the instantiated MULT18X18D
(Verilator, on ``sim/models/MULT18X18D.v``); the ECP5 tools accept the instance."""

import random
from pathlib import Path

import pytest
from amaranth import signed, unsigned
from amaranth.sim import Simulator

from rtl.pipelined_multiplier import PipelinedMultiplier, fits_mult18x18d
from sim.primitive_models import model_verilog

COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"

# (a bits, a signed, b bits, b signed): the lanes', the softmax's (unsigned) and the widest.
SHAPES = [(16, True, 16, True), (15, False, 15, False), (18, True, 17, False)]


def bench_params(shape, seed, cycles=2000, enable=0.7):
    a_bits, a_signed, b_bits, b_signed = shape
    return {"a_bits": a_bits, "a_signed": a_signed, "b_bits": b_bits, "b_signed": b_signed,
            "cycles": cycles, "seed": seed, "enable": enable}


def make(shape, multiplier):
    a_bits, a_signed, b_bits, b_signed = shape
    return PipelinedMultiplier((signed if a_signed else unsigned)(a_bits),
                               (signed if b_signed else unsigned)(b_bits), multiplier)


@pytest.mark.parametrize("shape", SHAPES)
def test_inferred_pysim(shape):
    dut = make(shape, "inferred")
    rng = random.Random(sum(shape))
    a_bits, a_signed, b_bits, b_signed = shape

    def operand(bits, is_signed):
        return rng.randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else rng.randrange(1 << bits)

    async def bench(ctx):
        stages = [None, None]
        for cycle in range(1500):
            a, b, en = operand(a_bits, a_signed), operand(b_bits, b_signed), int(rng.random() < 0.7)
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.en, en)
            if stages[1] is not None:
                assert ctx.get(dut.p) == stages[1], f"cycle {cycle}"
            if en:
                stages = [a * b, stages[0]]
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("multiplier", ["inferred", "mult18x18d"])
@pytest.mark.parametrize("shape", SHAPES)
def test_verilator(shape, multiplier):
    """The same bench under Verilator; the instance on the primitive's model: its ports, signed
    modes, clock enable and two register stages."""
    from sim.cocotb_runner import run_cocotb, to_verilog

    dut = make(shape, multiplier)
    verilog = to_verilog(dut, "pipelined_multiplier")
    if multiplier == "mult18x18d":
        verilog += model_verilog("MULT18X18D")
    name = "_".join(map(str, map(int, shape)))
    run_cocotb(None, verilog=verilog, block=f"pipelined_multiplier_{multiplier}_{name}",
               toplevel="pipelined_multiplier", test_module="cocotb_pipelined_multiplier",
               test_paths=[COCOTB_DIR], params=bench_params(shape, seed=sum(shape)))


def test_check_can_fail():
    """A primitive whose clock enable does not hold its output register fails the bench."""
    from sim.cocotb_runner import CocotbFailure, run_cocotb, to_verilog

    model = model_verilog("MULT18X18D")
    broken = model.replace("p_reg <= a_ext * b_ext;", "")
    broken = broken.replace("always @(posedge CLK0) begin", "always @(posedge CLK0) p_reg <= a_ext * b_ext;\n"
                            "    always @(posedge CLK0) begin", 1)
    assert broken != model
    verilog = to_verilog(make(SHAPES[0], "mult18x18d"), "pipelined_multiplier") + broken
    with pytest.raises(CocotbFailure, match="1 of 1 cocotb tests failed"):
        run_cocotb(None, verilog=verilog, block="pipelined_multiplier_broken_ce",
                   toplevel="pipelined_multiplier", test_module="cocotb_pipelined_multiplier",
                   test_paths=[COCOTB_DIR], params=bench_params(SHAPES[0], seed=1, cycles=300))


def test_refuses_what_does_not_fit():
    assert fits_mult18x18d(signed(18), unsigned(17)) and not fits_mult18x18d(unsigned(18), signed(2))
    with pytest.raises(ValueError, match="do not fit"):
        PipelinedMultiplier(signed(19), signed(8), "mult18x18d")
    with pytest.raises(ValueError, match="multiplier must be one of"):
        PipelinedMultiplier(signed(8), signed(8), "dsp48")
    with pytest.raises(FileNotFoundError, match="no simulation model of SB_MAC16"):
        model_verilog("SB_MAC16")


@pytest.mark.synth
def test_ecp5_tools_take_the_instance(tmp_path):
    """Yosys, nextpnr-ecp5 and ecppack accept the instance and pack its registers: nextpnr times
    it as a registered block (no path through it), and ecppack writes its configuration (it
    failed on a SOURCEB_MODE prjtrellis does not know). About a minute."""
    import os
    import shutil
    import subprocess

    from sim import toolchain
    from sim.cocotb_runner import to_verilog

    toolchain.setup()
    (tmp_path / "top.v").write_text(to_verilog(make(SHAPES[0], "mult18x18d"), "top"))
    run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    yosys = run(toolchain.yosys_command(), "-q", "-p", "read_verilog top.v; synth_ecp5 -top top -json top.json")
    assert yosys.returncode == 0, yosys.stderr[-2000:]
    pnr = run(shutil.which(os.environ["NEXTPNR_ECP5"]), "--25k", "--package", "CSFBGA285", "--json", "top.json",
              "--textcfg", "top.config", "--lpf-allow-unconstrained", "--freq", "200")
    assert pnr.returncode == 0, pnr.stderr[-2000:]
    assert "MULT18X18D:       1/" in pnr.stderr, pnr.stderr[-3000:]
    config = (tmp_path / "top.config").read_text()
    for key, value in (("REG_INPUTA_CLK", "CLK0"), ("REG_INPUTB_CLK", "CLK0"), ("REG_OUTPUT_CLK", "CLK0")):
        assert f".{key} {value}" in config, key
    pack = run(shutil.which(os.environ["ECPPACK"]), "--input", "top.config", "--bit", "top.bit")
    assert pack.returncode == 0 and (tmp_path / "top.bit").stat().st_size > 0, pack.stderr[-2000:]
