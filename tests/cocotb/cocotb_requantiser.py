"""cocotb + Verilator bench of :class:`rtl.requantiser.Requantiser` against the golden requantisation
(``round_shift``, then ``IntegerNetwork._activate`` or ``saturate``)."""

import cocotb
from rtl_tb import ClockedTB, StreamSink, StreamSource, params

from rtl.requantiser import Requantiser


class TB(ClockedTB):
    """A source of accumulators, a sink checking each output against the golden model."""

    def __init__(self, dut, p, gap, stall):
        super().__init__(dut, seed=p["seed"] + int(gap * 10) + int(stall * 100))
        self.rq = Requantiser(acc_bits=p["acc_bits"], shift=p["shift"], out_bits=p["out_bits"],
                              activation=p["activation"])
        self.layout = self.rq.o.payload.shape()
        self.source = StreamSource(self, "i", idle=gap)
        self.sink = StreamSink(self, "o", stall=stall, on_item=self.check)
        self.accs, self.values, self.fprimes = [], [], []

    async def reset(self):
        await super().reset(["i__valid", "o__ready"])

    def send(self, accs):
        # The golden model is in the pytest-side test module; it is the same code imported here.
        from test_rtl_requantiser import golden_requantise
        values, fprimes = golden_requantise(self.rq, accs)
        self.accs += accs
        self.values += values
        self.fprimes += fprimes or [None] * len(accs)
        mask = (1 << self.rq.acc_bits) - 1
        self.source.send([a & mask for a in accs])

    def check(self, index, bits):
        out = self.layout.from_bits(bits)
        acc = self.accs[index]
        assert out.value == self.values[index], f"acc {acc}: value {out.value}, want {self.values[index]}"
        if self.rq.activation is not None:
            assert out.fprime == self.fprimes[index], f"acc {acc}: fprime {out.fprime}, want {self.fprimes[index]}"


@cocotb.test()
@cocotb.parametrize(pressure=[(0.0, 0.0), (0.3, 0.5)])
async def requantiser_matches_golden(dut, pressure):
    from test_rtl_requantiser import corner_accumulators

    p = params()
    tb = TB(dut, p, *pressure)
    await tb.reset()
    tb.send(corner_accumulators(tb.rq, tb.rng, p["count"]))
    tb.source.start()
    tb.sink.start()
    while len(tb.sink.items) < len(tb.accs):
        await tb.tick()
    tb.log.info(f"{len(tb.accs)} accumulators in {tb.cycle} cycles")
