"""cocotb + Verilator bench of :class:`rtl.basis_generator.BasisGenerator` against golden.integer.basis."""

import cocotb
from cocotb.triggers import RisingEdge
from rtl_tb import ClockedTB, StreamSink, params

from golden.integer.basis import phases, sine_quarter_table, sine_wave, square_wave
from rtl.basis_generator import BasisGenerator


class TB(ClockedTB):
    """The generator, a sink with random back-pressure, and random restarts.

    The sink checks the stream rules; a restart is a flush, so the sink forgets the offered
    column in a restart cycle and the expected neuron index goes back to 0.
    """

    def __init__(self, dut, p, stall, restart_rate):
        super().__init__(dut, seed=p["seed"] + int(stall * 10) + int(restart_rate * 1000))
        self.gen = BasisGenerator(p["n_classes"], p["phase_bits"], p["basis"],
                                  p["table_index_bits"], p["table_bits"])
        self.layout = self.gen.o.payload.shape()
        self.restart_rate = restart_rate
        self.want = self.golden(p["columns"])
        self.n = 0
        self.checked = 0
        self.restarts = 0
        self.restarting = False
        self.sink = StreamSink(self, "o", stall=stall, on_item=self.check)
        self.sink.flushed = lambda: self.restarting

    def golden(self, count):
        gen = self.gen
        phase = phases(gen.increments, count, gen.phase_bits)
        if gen.basis == "square":
            matrix = square_wave(phase, gen.phase_bits)
        else:
            table = sine_quarter_table(gen.table_index_bits, gen.table_bits)
            matrix = sine_wave(phase, gen.phase_bits, table, gen.table_index_bits)
        return matrix.T.tolist()

    def check(self, index, bits):
        column = list(self.layout.from_bits(bits))
        assert column == self.want[self.n], f"n={self.n}: got {column}, want {self.want[self.n]}"
        self.n += 1
        self.checked += 1

    async def reset(self):
        await super().reset(["restart", "o__ready"])

    async def drive_restarts(self):
        """Restart with probability ``restart_rate`` per cycle (sampled with the handshake)."""
        while True:
            self.restarting = self.rng.random() < self.restart_rate
            self.dut.restart.value = int(self.restarting)
            await self.settle()
            if self.restarting:
                self.restarts += 1
            await RisingEdge(self.dut.clk)
            if self.restarting:
                # The sink has counted this cycle's transfer (if any); the next column is n = 0.
                self.n = 0


@cocotb.test()
@cocotb.parametrize(stall=[0.0, 0.5], restart_rate=[0.0, 0.02])
async def basis_matches_golden(dut, stall, restart_rate):
    p = params()
    tb = TB(dut, p, stall, restart_rate)
    await tb.reset()
    tb.sink.start()
    cocotb.start_soon(tb.drive_restarts())
    while tb.checked < p["columns"]:
        await tb.tick()
    tb.log.info(f"{tb.checked} columns in {tb.cycle} cycles, {tb.restarts} restarts")
