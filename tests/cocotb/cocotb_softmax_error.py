"""cocotb + Verilator bench of :class:`rtl.softmax_error.SoftmaxError`.

Vectors (from ``tests/test_rtl_softmax_error.py``): ``in_spec``/``out_spec`` payload layouts,
``cases`` of ``{"input": {"logits", "label"}, "output": {"probs", "errors"}}`` (golden), ``seed``.
"""

import cocotb
from learning_tb import TB, check_cases, vectors


@cocotb.test()
@cocotb.parametrize(backpressure=[False, True])
async def softmax_matches_golden(dut, backpressure):
    v = vectors()
    cases = v["cases"]
    tb = TB(dut, seed=v["seed"] + backpressure, gap=0.3 if backpressure else 0.0,
            stall=0.4 if backpressure else 0.0)
    await tb.reset(["i__valid", "o__ready"])

    cycles = await check_cases(tb, v, one_at_a_time=True)
    dut._log.info(f"{len(cases)} uses in {cycles} cycles")
