"""cocotb + Verilator bench of :class:`rtl.softmax_error.SoftmaxError`.

Vectors (from ``tests/test_rtl_softmax_error.py``): ``in_spec``/``out_spec`` payload layouts,
``cases`` of ``{"input": {"logits", "label"}, "output": {"probs", "errors"}}`` (golden), ``seed``.
"""

import cocotb
from learning_tb import TB, pack, unpack, vectors


@cocotb.test()
@cocotb.parametrize(backpressure=[False, True])
async def softmax_matches_golden(dut, backpressure):
    v = vectors()
    cases = v["cases"]
    tb = TB(dut, seed=v["seed"] + backpressure, gap=0.3 if backpressure else 0.0,
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
            assert not dut.o__valid.value, "input accepted while a result is pending"
            sent += 1
        if dut.o__valid.value:
            bits = dut.o__payload.value.to_unsigned()
            assert held is None or bits == held, "o.payload changed while o.valid was high"
            held = bits
            if ready:
                out = unpack(v["out_spec"], bits)
                case = cases[received]
                assert out == case["output"], f"case {received} {case['input']}: got {out}, expected {case['output']}"
                received += 1
                held = None
        await tb.tick()
    dut._log.info(f"{len(cases)} uses in {tb.cycles} cycles")
