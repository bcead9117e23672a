"""cocotb + Verilator bench of :class:`rtl.drtp_projection.DRTPProjection`.

Vectors (from ``tests/test_rtl_drtp_projection.py``): ``cases`` of ``{"label", "h", "fprime",
"delta"}`` (golden ``δ``), the ``h``/``delta`` payload specs, ``init_cycles``, ``seed``.
"""

import cocotb
from learning_tb import TB, run_steps, vectors


@cocotb.test()
@cocotb.parametrize(backpressure=[False, True])
async def drtp_matches_golden(dut, backpressure):
    v = vectors()
    tb = TB(dut, seed=v["seed"] + backpressure, gap=0.3 if backpressure else 0.0,
            stall=0.4 if backpressure else 0.0)
    await tb.reset(["start", "label", "h__valid", "delta__ready"])
    # The row walk after reset: init_done rises after exactly init_cycles cycles.
    while True:
        await tb.settle()
        if dut.init_done.value:
            break
        assert not dut.h__ready.value
        await tb.tick()
    init = tb.cycles
    assert init == v["init_cycles"], f"init took {init} cycles, expected {v['init_cycles']}"
    await tb.tick()
    cycles = await run_steps(tb, v["cases"], v["h_spec"], v["delta_spec"], passes=1)
    if not backpressure:
        n = len(v["cases"][0]["h"])
        for step in range(len(v["cases"])):
            burst = cycles[step * n:(step + 1) * n]
            assert burst == list(range(burst[0], burst[0] + n)), f"step {step}: not one delta per cycle"
    dut._log.info(f"{len(v['cases'])} steps in {tb.cycles} cycles")
