"""cocotb + Verilator bench of :class:`rtl.lls_signal.LLSLearningSignal`.

Vectors (from ``tests/test_rtl_lls_signal.py``): ``cases`` of ``{"label", "h", "fprime",
"delta", "trace"}`` (golden ``δ`` and trace registers), the ``h``/``delta`` payload specs,
``trace_specs`` (port name -> spec), ``compute_cycles``, ``basis_delay``, ``seed``.
"""

import cocotb
from learning_tb import TB, read, run_steps, unpack, vectors


@cocotb.test()
@cocotb.parametrize(backpressure=[False, True])
async def lls_matches_golden(dut, backpressure):
    v = vectors()
    cases = v["cases"]
    tb = TB(dut, seed=v["seed"] + backpressure, gap=0.3 if backpressure else 0.0,
            stall=0.4 if backpressure else 0.0)
    await tb.reset(["start", "label", "h__valid", "delta__ready"])

    checked = []

    def check_trace(step, case):
        checked.append(step)
        for name, value in case["trace"].items():
            got = unpack(v["trace_specs"][name], read(getattr(dut, name)))
            assert got == value, f"step {step}: {name} = {got}, expected {value}"

    cycles = await run_steps(tb, cases, v["h_spec"], v["delta_spec"], passes=2, trace=check_trace)
    assert checked == list(range(len(cases))), f"trace registers checked for steps {checked}"
    if not backpressure:
        n = len(cases[0]["h"])
        for step in range(len(cases)):
            burst = cycles[step * n:(step + 1) * n]
            assert burst == list(range(burst[0], burst[0] + n)), f"step {step}: not one delta per cycle"
    dut._log.info(f"{len(cases)} steps in {tb.cycles} cycles")
