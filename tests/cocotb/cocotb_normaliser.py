"""cocotb + Verilator bench of :class:`rtl.normaliser.Normaliser`.

Vectors (from ``tests/test_rtl_normaliser.py``): ``cases`` of ``{"input": S, "output": {"e2",
"index", "rsqrt", "zero"}}`` (golden), the payload specs, ``seed``.
"""

import cocotb
from learning_tb import TB, check_cases, vectors


@cocotb.test()
@cocotb.parametrize(backpressure=[False, True])
async def normaliser_matches_golden(dut, backpressure):
    v = vectors()
    cases = v["cases"]
    tb = TB(dut, seed=v["seed"] + backpressure, gap=0.4 if backpressure else 0.0,
            stall=0.4 if backpressure else 0.0)
    await tb.reset(["i__valid", "o__ready"])

    cycles = await check_cases(tb, v)
    if not backpressure:
        assert cycles == len(cases) + 1, f"{len(cases)} results took {cycles} cycles"
    dut._log.info(f"{len(cases)} results in {cycles} cycles")
