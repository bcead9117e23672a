"""cocotb + Verilator bench of :class:`rtl.normaliser.Normaliser`.

Vectors (from ``tests/test_rtl_normaliser.py``): ``cases`` of ``{"input": S, "output": {"e2",
"index", "rsqrt", "zero"}}`` (golden), the payload specs, ``seed``.
"""

import cocotb
from learning_tb import TB, pack, unpack, vectors


@cocotb.test()
@cocotb.parametrize(backpressure=[False, True])
async def normaliser_matches_golden(dut, backpressure):
    v = vectors()
    cases = v["cases"]
    tb = TB(dut, seed=v["seed"] + backpressure, gap=0.4 if backpressure else 0.0,
            stall=0.4 if backpressure else 0.0)
    await tb.reset(["i__valid", "o__ready"])

    sent = received = 0
    held = None
    while received < len(cases):
        if sent < len(cases) and not tb.idle():
            dut.i__valid.value = 1
            dut.i__payload.value = pack(v["in_spec"], cases[sent]["input"])
        else:
            dut.i__valid.value = 0
        ready = tb.ready()
        dut.o__ready.value = ready
        await tb.settle()
        if dut.i__valid.value and dut.i__ready.value:
            sent += 1
        if dut.o__valid.value:
            bits = dut.o__payload.value.to_unsigned()
            assert held is None or bits == held, "o.payload changed while o.valid was high"
            held = bits
            if ready:
                out = unpack(v["out_spec"], bits)
                case = cases[received]
                assert out == case["output"], f"S = {case['input']}: got {out}, expected {case['output']}"
                received += 1
                held = None
        await tb.tick()
    if not backpressure:
        assert tb.cycles == len(cases) + 1, f"{len(cases)} results took {tb.cycles} cycles"
    dut._log.info(f"{len(cases)} results in {tb.cycles} cycles")
