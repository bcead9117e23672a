"""The training engine: an MLP that learns online on-chip with a local rule (LLS, LLS-M or DRTP)."""

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .collision_free import assert_collision_free, collision_free_attrs
from .drtp_projection import DRTPProjection
from .fixed import write_element
from .layer_engine import CONTROL_GROUP_LANES, LayerEngine, default_multiplier, fabric_arithmetic
from .layer_geometry import OpKind
from .lls_signal import LLSLearningSignal
from .sequencer import Sequencer
from .single_port_ram import is_ice40
from .softmax_error import SoftmaxError
from .split_counter import SplitCounter
from .weight_init import WeightInitialiser

__all__ = ["Command", "Region", "Status", "SignalField", "Engine"]


class Command(enum.Enum, shape=2):
    """What the engine does next."""
    TRAIN = 0   #: one training step on the next sample
    INFER = 1   #: the forward pass only: the prediction
    INIT = 2    #: re-initialise the weights from the LFSR (done once after reset anyway)


class Region(enum.Enum, shape=3):
    """Address spaces of the ``access`` port (read and write when the engine is idle)."""
    WEIGHTS = 0      #: layer, word address -> P weights (writable)
    ACTIVATION = 1   #: hidden layer, neuron -> h (low 32 bits, signed), f' (bit 32)
    DELTA = 2        #: layer, group -> P learning signals (delta_bits each)
    OUTPUT = 3       #: class -> logit (bits 0-31), probability (32-63), error (64-95), signed
    SIGNAL = 4       #: hidden layer, SignalField << max(ceil_log2(C), 3) | class -> the signal unit's trace
    STATUS = 5       #: Status -> counters and flags (LR_OFFSET writable)


class Status(enum.IntEnum):
    """Addresses of the ``STATUS`` region.

    Writable (when idle, through ``access`` with ``write = 1``; a write's response is 0):
    ``LR_OFFSET`` (``o``, 0 … ``len(lr_decay)``; wider values are truncated) and ``LLS_MODE``.
    ``LLS_MODE`` selects the run-time LLS mode of the following steps: 0 is the configuration's own
    ``(basis, temp_shift, norm_guard)``, ``i`` is ``EngineConfig.runtime_modes[i - 1]``; the
    golden model of a step in mode ``i`` is ``IntegerNetwork(config.mode(i))``. A write of a
    value ``>= MODES`` is ignored (read back to check). ``MODES`` (read-only) is
    ``config.n_modes``: 1 for a single-mode engine, whose ``LLS_MODE`` reads 0.
    """
    CYCLES = 0        #: cycles spent in steps (training and inference)
    BUSY = 1          #: lane-cycles of real work (a load or a product for a neuron that exists)
    STEPS = 2         #: completed steps
    CHECKSUM = 3      #: the weight checksum of the last training step (``weight_checksum``)
    PREDICTION = 4    #: the last step's prediction
    READY = 5         #: initialised (weights and DRTP row states) and idle
    LANES = 6         #: P
    LR_OFFSET = 7     #: the learning-rate offset register o (writable): lr_shift[k] + o
    LLS_MODE = 8      #: the run-time LLS mode (writable): 0 = own, i = runtime_modes[i - 1]
    MODES = 9         #: number of run-time LLS modes (read-only)


class SignalField(enum.IntEnum):
    """Per-class (and scalar) fields of the ``SIGNAL`` region; address = field << max(ceil_log2(C), 3) | class."""
    RAW_LOGITS = 0
    LOGITS = 1
    PROBS = 2
    ERRORS = 3
    SCALED_ERRORS = 4
    SCALARS = 5        #: class 0 S, 1 zero, 2 e2, 3 R, 4 sigma, 5 kappa, 6 trace_valid
    LOCAL_LOGITS = 6   #: LLS-M only
    MODULATION = 7     #: LLS-M only


class _State(enum.Enum, shape=2):
    IDLE = 0
    RUN = 1
    DONE = 2
    INIT = 3


class Engine(wiring.Component):
    """The whole training engine of an :class:`~golden.integer.config.EngineConfig` on ``P`` lanes.

    Bit for bit :class:`golden.integer.network.IntegerNetwork`: a training step is its
    ``train_step``, an inference its ``infer``, and the weights after reset are
    ``initial_weights`` (the engine writes them itself, :class:`~rtl.weight_init.WeightInitialiser`).
    ``docs/architecture.md`` has the block diagram, memory map and timeline.

    Blocks: the :class:`~rtl.sequencer.Sequencer` issues one weight word per cycle to the
    :class:`~rtl.layer_engine.LayerEngine` (P MAC lanes, weight memories, updater,
    requantisers); per hidden layer an activation buffer (``h`` and ``f'``), a learning-signal
    unit (:class:`~rtl.lls_signal.LLSLearningSignal` or :class:`~rtl.drtp_projection.DRTPProjection`)
    and a δ memory; the output layer's logits stream into a :class:`~rtl.softmax_error.SoftmaxError`
    (``streams``) whose errors, its δ, stream into the last hidden layer's δ memory after that
    layer's words. The sample memory is double-buffered, so the next sample loads while a step
    runs. A response is read from the held request's sources, not copied into a register: no step
    starts while one waits. (With the lanes' group copies, on ECP5, the STATUS word is a register
    loaded from them until the response; a host weight write reaches the lanes a cycle after it
    is offered, and the learning-signal units start a cycle after the step.)

    The learning rule is fixed at elaboration (``config.rule``); with ``config.runtime_modes``
    the LLS basis and its per-mode constants are chosen per step by the ``STATUS``/``LLS_MODE``
    register (:class:`Status`). A run-time choice between LLS and DRTP is not built
    (``docs/architecture.md`` §5): ``EngineConfig`` refuses run-time modes with DRTP.

    Parameters
    ----------
    config : EngineConfig
    lanes : int
        ``P``, the MAC lanes (8 on an iCE40 UP5K: its SB_MAC16 count).
    trace : bool
        Serve the trace regions (``ACTIVATION``, ``DELTA``, ``OUTPUT``, ``SIGNAL``) on
        ``access``, for the system tests' step-by-step comparison. Without it they read as 0 and
        their read-back logic (a copy of the probabilities and errors, and the multiplexers) is not
        built: the host protocol never reads them, so :class:`~rtl.system.SystemTop` leaves it out.
    lane_latency, updater_stages, bank_shift : int, int, bool or None
        The MAC lanes' pipeline depth, the weight updater's register stages and the result
        bank's readout (:class:`~rtl.layer_engine.LayerEngine`); ``None``: by the platform (4, 2,
        mux on ECP5; 1, 2, mux on the iCE40 with its SPRAM weights; else 1, 1, mux). Results are
        the same for every choice.
    softmax_product_reg : bool or None
        The softmax's register before its parallel multiplier (:class:`~rtl.softmax_error.SoftmaxError`
        ``product_reg``), and with it the LLS units' write-back register
        (:class:`~rtl.lls_signal.LLSLearningSignal` ``writeback_reg``); ``None``: on ECP5 only.
    weight_store : str or None
        ``"ebr"`` or ``"spram"`` (:class:`~rtl.layer_engine.LayerEngine`); ``None``: SPRAM on
        the iCE40, else EBR. Results are the same; SPRAM spaces the word operations out.
    softmax_multiplier : {"serial", "parallel"} or None
        The softmax's ``E_c ρ`` (:class:`~rtl.softmax_error.SoftmaxError` ``multiplier``);
        ``None``: parallel on ECP5 (or with ``softmax_product_reg``), else serial: shift and add,
        hundreds of LUTs fewer on the iCE40 and time enough, as it runs while the hidden layers
        update (a network whose hidden updates are shorter than ~``C (exp_bits + 3)`` cycles
        waits for it).
    dsp : {"inferred", "mult18x18d"} or None
        The registered multipliers: the MAC lanes' (:class:`~rtl.layer_engine.LayerEngine`
        ``multiplier``, with lane latency 3 or 4), the softmax's (with its product register) and
        the LLS units' shared one, as Yosys infers them or each an instantiated ECP5 MULT18X18D
        holding its registers; ``None``: the MULT18X18D on ECP5, else inferred. Results are the same.

    Members
    -------
    pixels : In(stream.Signature(unsigned(input_bits)))
        Samples, ``layers[0]`` pixels each, into whichever of the two sample buffers is free.
    cmd : In(stream.Signature(StructLayout({"op": Command, "label"})))
        Commands, queued (2 deep). ``TRAIN`` and ``INFER`` each take the next complete sample;
        the label is used by ``TRAIN``.
    result : Out(stream.Signature(StructLayout({"prediction", "checksum", "train"})))
        One per ``TRAIN``/``INFER``: the prediction (first maximal logit, before the update) and,
        for training, the checksum of every weight word the step wrote, in write order
        (:func:`~rtl.layer_geometry.weight_checksum`: CRC-32 of each word's 32-bit fold).
    access : In(stream.Signature(StructLayout({"region": Region, "layer", "addr", "write", "data"})))
        Reads (and weight writes) of the memories and registers of :class:`Region`, served when
        the engine is idle; one response each.
    response : Out(stream.Signature(unsigned(access_bits)))
    ready : Out(1)
        Initialised and idle.
    """

    def __init__(self, config, lanes=8, lane_latency=None, updater_stages=None, softmax_product_reg=None,
                 bank_shift=None, softmax_multiplier=None, *, trace=True, weight_store=None, dsp=None):
        # A refused configuration is not an unused design.
        self._MustUse__silence = True
        if max(config.bias_shift(k) for k in range(config.n_layers)) > config.mult_bits - 2:
            raise ValueError("Engine: a bias update multiplies by 2**bias_shift, which must fit "
                             f"mult_bits={config.mult_bits} (input_frac or the hidden fraction too large)")
        self._MustUse__silence = False
        self.config = config
        self.lanes = lanes
        self.trace = trace
        self.layer_engine = LayerEngine(config, lanes, lane_latency, updater_stages, bank_shift, weight_store, dsp)
        self.dsp = dsp
        self.softmax_product_reg = softmax_product_reg
        self.softmax_multiplier = softmax_multiplier
        self.geometry = geo = self.layer_engine.geometry
        self.label_shape = unsigned(ceil_log2(config.n_classes) or 1)
        self.prob_shape = signed(config.prob_frac + 2)
        self.act_shape = unsigned(config.act_bits) if config.activation == "relu" else signed(config.act_bits)
        self.access_bits = max(lanes * self.layer_engine.word_shape.width, lanes * config.delta_bits, 96)
        self.addr_bits = max(16, geo.addr_bits)
        # SIGNAL addresses: the class (or scalar, up to 7 of them) in the low class_bits.
        self.class_bits = max(ceil_log2(config.n_classes), 3)
        super().__init__({
            "pixels": In(stream.Signature(unsigned(config.input_bits))),
            "cmd": In(stream.Signature(data.StructLayout({"op": Command, "label": self.label_shape}))),
            "result": Out(stream.Signature(data.StructLayout({
                "prediction": self.label_shape,
                "checksum": 32,
                "train": 1,
            }))),
            "access": In(stream.Signature(data.StructLayout({
                "region": Region,
                "layer": geo.layer_shape,
                "addr": self.addr_bits,
                "write": 1,
                "data": self.access_bits,
            }))),
            "response": Out(stream.Signature(unsigned(self.access_bits))),
            "ready": Out(1),
        })

    def signal_unit(self, k, platform):
        """The learning-signal unit of hidden layer ``k`` on ``platform`` (a new instance). An LLS
        unit's write-back, saturation, pass-1, operand and rounding registers go with the
        softmax's product register (all are for the fabric arithmetic of ECP5), and its shared
        multiplier maps as the engine's (``resolved_dsp``)."""
        if self.config.rule == "drtp":
            # On the iCE40 the row states are a ROM computed at elaboration (the seed is a
            # configuration constant): no walk at reset, its counters and registers (the UP5K is
            # full).
            return DRTPProjection.from_config(self.config, k, init="rom" if is_ice40(platform) else "walk")
        registered = self.resolved_softmax_product_reg(platform)
        return LLSLearningSignal.from_config(self.config, k, writeback_reg=registered, pass1_reg=registered,
                                             saturate_reg=registered, operand_reg=registered,
                                             round_reg=registered, dsp=self.resolved_dsp(platform))

    def sequencer(self, platform):
        """The step sequencer on ``platform`` (a new instance)."""
        lanes = self.layer_engine
        # With words of two beats or more the SPRAM store takes an op every other cycle at most:
        # the sequencer's comparisons can pass a register first.
        spram_beats = lanes.beats if lanes.resolved_weight_store(platform) == "spram" else 1
        return Sequencer(self.geometry, registered_can=spram_beats >= 2)

    def initialiser(self, platform):
        """The weight initialiser on ``platform`` (a new instance)."""
        lanes = self.layer_engine
        # With the lanes' group copies (ECP5) the initialiser's start and writes pass registers.
        return WeightInitialiser(self.geometry, lanes.word_layout, registered=lanes.group_copies(platform))

    def resolved_softmax_product_reg(self, platform):
        """Whether the softmax's products are registered on ``platform``."""
        if self.softmax_product_reg is None:
            return fabric_arithmetic(platform)
        return self.softmax_product_reg

    def resolved_dsp(self, platform):
        """The hard multipliers' mapping on ``platform``: ``dsp``, or the platform's default."""
        return self.dsp if self.dsp is not None else default_multiplier(platform, registered=True)

    def softmax_unit(self, platform):
        """The output layer's softmax and error unit on ``platform`` (a new instance)."""
        product_reg = self.resolved_softmax_product_reg(platform)
        multiplier = self.softmax_multiplier
        if multiplier is None:
            # The output layer's softmax runs while the hidden layers update: shift and add is
            # time enough and far smaller than the iCE40's fabric multiplier (ECP5 keeps its timing).
            multiplier = "parallel" if product_reg or fabric_arithmetic(platform) else "serial"
        # The logits stream in from the requantiser and the errors out into the δ memory.
        dsp = self.resolved_dsp(platform) if product_reg and multiplier == "parallel" else "inferred"
        return SoftmaxError.from_config(self.config, multiplier=multiplier, product_reg=product_reg,
                                        streams=True, dsp=dsp)

    def elaborate(self, platform):
        m = Module()
        config, geo, P = self.config, self.geometry, self.lanes
        L, C = geo.n_layers, config.n_classes
        M0 = geo.fan_in[0]
        lls = config.uses_basis

        m.submodules.lanes = lanes = self.layer_engine
        m.submodules.sequencer = seq = self.sequencer(platform)
        m.submodules.init = init = self.initialiser(platform)
        m.submodules.softmax = softmax = self.softmax_unit(platform)
        units = []
        for k in range(L - 1):
            unit = self.signal_unit(k, platform)
            m.submodules[f"signal{k}"] = unit
            units.append(unit)

        state = Signal(_State, init=_State.INIT)
        train = Signal()
        label = Signal(self.label_shape)
        op = lanes.op.payload
        wiring.connect(m, seq.op, lanes.op)
        m.d.comb += [seq.bank_ready.eq(lanes.bank_ready), seq.draws_ready.eq(lanes.draws_ready),
                     lanes.op_busy.eq(seq.busy)]

        # -- commands ---------------------------------------------------------------------------------
        m.submodules.commands = commands = fifo.SyncFIFOBuffered(width=len(self.cmd.payload.as_value()), depth=2)
        m.d.comb += [
            commands.w_data.eq(self.cmd.payload),
            commands.w_en.eq(self.cmd.valid),
            self.cmd.ready.eq(commands.w_rdy),
        ]
        command = data.View(self.cmd.payload.shape(), commands.r_data)

        # -- sample buffers (two, so the next sample loads during a step) -------------------------
        m.submodules.samples = samples = memory.Memory(shape=unsigned(config.input_bits), depth=2 * M0, init=[],
                                                       attrs=collision_free_attrs(platform))
        sample_write = samples.write_port()
        sample_read = samples.read_port()
        full = Signal(2)
        fill_bank = Signal()
        fill_count = Signal(range(M0))
        use_bank = Signal()
        m.d.comb += [
            self.pixels.ready.eq(~full.bit_select(fill_bank, 1)),
            sample_write.addr.eq(Mux(fill_bank, fill_count + M0, fill_count)),
            sample_write.data.eq(self.pixels.payload),
            sample_write.en.eq(self.pixels.valid & self.pixels.ready),
        ]
        with m.If(sample_write.en):
            m.d.sync += fill_count.eq(fill_count + 1)
            with m.If(fill_count == M0 - 1):
                m.d.sync += [fill_count.eq(0), fill_bank.eq(~fill_bank)]
                m.d.sync += full.bit_select(fill_bank, 1).eq(1)

        # -- per-step progress counters ----------------------------------------------------------
        h_avail = [Signal(range(n + 1), name=f"h_avail{k}") for k, n in enumerate(geo.fan_out)]
        delta_words = [Signal(range(g + 1), name=f"delta_words{k}") for k, g in enumerate(geo.groups)]
        m.d.comb += [seq.h_avail[k].eq(h_avail[k]) for k in range(L)]
        m.d.comb += [seq.delta_words[k].eq(delta_words[k]) for k in range(L)]

        # -- access port decode (used when idle) -------------------------------------------------------
        req = self.access.payload
        access_fire = self.access.valid & self.access.ready
        # The request, held until its response is taken: reads address the memories from it, so
        # their data (the response) stays put while the response waits.
        pending = Signal()
        held = Signal(self.access.payload.shape())
        issue = seq.op.valid & seq.op.ready

        # -- inputs of the lanes at S1 -------------------------------------------------------------------
        x_addr = (op.word - 1)[:max(1, ceil_log2(geo.max_fan_in))]
        # Taken with the op, and during a step the x and δ ports read only when an op is taken:
        # what the lanes see stays put until their S1, however many beats the weights take.
        # With the weight store's port registered (SPRAM), S1 comes a cycle later, and so do
        # these reads: their addresses and enables pass a register (`late_read`), so what the
        # lanes see still stays put until S1 (the next op is taken B cycles on at the earliest).
        delayed = lanes.resolved_port_reg(platform)

        def late_read(port, addr, en):
            if delayed:
                addr_q = Signal.like(port.addr, name=f"{port.addr.name}_q", reset_less=True)
                en_q = Signal(name=f"{port.en.name}_q")
                m.d.sync += [addr_q.eq(addr), en_q.eq(en)]
                addr, en = addr_q, en_q
            m.d.comb += [port.addr.eq(addr), port.en.eq(en)]

        s1_layer = Signal(geo.layer_shape)
        with m.If(issue):
            m.d.sync += s1_layer.eq(op.layer)
        read_layer = s1_layer if delayed else op.layer   # the layer of the op the x reads are for
        if delayed:
            issue_q = Signal()
            s1_layer_q = Signal(geo.layer_shape)
            m.d.sync += issue_q.eq(issue)
            with m.If(issue_q):
                m.d.sync += s1_layer_q.eq(s1_layer)
            s1_layer = s1_layer_q
        # A step owns the read ports (the host reads only when idle): the address multiplexers
        # follow the state register, not the sequencer's issue decision (a 10.7 ns path on the 25F).
        running = state == _State.RUN
        reading = issue | ~running
        late_read(sample_read, Mux(use_bank, x_addr + M0, x_addr), reading)
        # (The block RAMs' reads and writes never meet where a read is used, see
        # collision_free_attrs: a step reads its own bank, and the idle reads are the host's
        # of the activations; the δ and activations of a word are written before it is read.)
        assert_collision_free(m, platform, sample_write, sample_read, used=running, what="Engine's samples")
        activations = []
        act_reads = []
        act_streams = []
        act_layout = data.StructLayout({"h": self.act_shape, "fprime": 1})
        for k in range(L - 1):
            # (Not with LLS's second read port, whose reads run ahead of their use.)
            mem = memory.Memory(shape=act_layout, depth=geo.fan_out[k], init=[],
                                attrs={} if lls else collision_free_attrs(platform))
            m.submodules[f"activations{k}"] = mem
            activations.append(mem.write_port())
            read = mem.read_port()
            late_read(read, Mux(running, x_addr, held.addr), reading)
            act_reads.append(read)
            if not lls:
                # (Every op's x reads enable every x port; only the reads of layer k + 1's ops and
                # the host's, while idle, are used.)
                assert_collision_free(m, platform, activations[k], read, used=~running | (read_layer == k + 1),
                                      what=f"Engine's activations{k}")
            # Pass 2 of an LLS unit re-reads the activations through a port of its own.
            act_streams.append(mem.read_port() if lls else None)
        x = Signal(signed(config.mult_bits))
        with m.Switch(s1_layer):
            with m.Case(0):
                m.d.comb += x.eq(sample_read.data)
            for k in range(1, L):
                with m.Case(k):
                    m.d.comb += x.eq(act_reads[k - 1].data.h)
        m.d.comb += lanes.x.eq(x)

        delta_layout = data.ArrayLayout(signed(config.delta_bits), P)
        # One δ memory per hidden layer; the output layer's words follow the last hidden layer's
        # in its memory (the softmax streams its errors in as that unit's are done), so they share
        # its block RAM, its write port and its read port (own memory with no hidden layer).
        last = L - 1
        shared = max(L - 2, 0)
        out_base = geo.groups[shared] if L >= 2 else 0
        delta_writes, delta_reads = [], []
        split_delta = lanes.group_copies(platform)
        for k in range(max(L - 1, 1)):
            depth = (geo.groups[k] if k < L - 1 else 0) + (geo.groups[last] if k == shared else 0)
            if split_delta:
                write, read = _grouped_delta_memory(m, f"delta{k}", config, P, depth)
            else:
                mem = memory.Memory(shape=delta_layout, depth=depth, init=[], attrs=collision_free_attrs(platform))
                m.submodules[f"delta{k}"] = mem
                write = mem.write_port(granularity=1)
                read = mem.read_port()
                assert_collision_free(m, platform, write, read, what=f"Engine's delta{k}")
            delta_writes.append(write)
            delta_reads.append(read)
            # Read at a group's first update word; the port holds the word for the whole group.
            readers = [k] + ([last] if k == shared and last != k else [])
            group_start = ((op.kind == OpKind.UPDATE) & (op.word == 0)
                           & Cat(*(op.layer == j for j in readers)).any())
            if split_delta:
                # The groups' address registers load while the sequencer's next op (registers)
                # is a first update word, issued or not: its issue decision was 8 LUT levels
                # into their enables across the die. The read is combinational from those
                # registers, so it follows a δ written while the op waits; the next load comes
                # a cycle after the group's last word is issued, after that word's S1.
                group_start &= running
            else:
                group_start &= issue
            op_addr, held_addr = op.group, held.addr
            if k == shared:
                op_addr = op.group + Mux(op.layer == last, out_base, 0)
                held_addr = held.addr + Mux(held.layer == last, out_base, 0)
            late_read(read, Mux(running, op_addr, held_addr), group_start | pending)
        with m.Switch(s1_layer):
            for k in range(shared):
                with m.Case(k):
                    m.d.comb += lanes.delta.eq(delta_reads[k].data)
            with m.Default():
                m.d.comb += lanes.delta.eq(delta_reads[shared].data)

        # -- outputs of the lanes: activations, logits, pass 1 of the signal units ---------------------
        out = lanes.o.payload
        out_fire = lanes.o.valid & lanes.o.ready
        prediction = Signal(self.label_shape)
        pass1_done = Signal(max(1, L - 1))
        m.d.comb += lanes.o.ready.eq(1)
        # The lanes deliver outputs only within a step, so without the lanes' group copies (the
        # iCE40) their consumers are chosen without the engine's state: its decode was a LUT
        # level in front of the output's handshake, and so of the signal unit's LFSR and of
        # `h_avail` (22-24 ns on the UP5K).
        stepping = (state == _State.RUN) if split_delta else Const(1)
        for k in range(L - 1):
            unit = units[k]
            feeding = train & ~pass1_done[k] & stepping
            with m.If((out.layer == k) & feeding):
                m.d.comb += lanes.o.ready.eq(unit.h.ready)
            m.d.comb += [
                activations[k].addr.eq(out.index),
                activations[k].data.h.eq(out.value),
                activations[k].data.fprime.eq(out.fprime),
                activations[k].en.eq(out_fire & (out.layer == k)),
            ]
        with m.If(out_fire):
            with m.Switch(out.layer):
                for k in range(L):
                    with m.Case(k):
                        m.d.sync += h_avail[k].eq(h_avail[k] + 1)
        # The argmax a cycle later, from a register of the logit: the units' readiness (in
        # `out_fire`) and the compare were one 10.1 ns path into `best` on the ULX3S, 44.6 ns
        # on the UP5K (session 13: 4 more logic cells there). DONE still sees the last logit's:
        # it comes a cycle after `h_avail`, which counts it.
        logit_valid = Signal()
        logit = Signal(lanes.output_layout, name="logit")
        m.d.sync += [logit_valid.eq(out_fire & (out.layer == L - 1)), logit.eq(out)]
        if split_delta:
            best = Signal(signed(config.logit_bits))
            with m.If(logit_valid & ((logit.index == 0) | (logit.value > best))):
                m.d.sync += [best.eq(logit.value), prediction.eq(logit.index)]
        else:
            # Without the lanes' group copies (the iCE40) the maximum is kept as its key
            # ~best ^ sign (unsigned), as in SoftmaxError: `value > best` is then the carry out
            # of (value ^ sign) + key, no inverter in front of the carry chain (it was 6 LUT
            # levels into the maximum's and the prediction's enables on the UP5K, 23.4 ns).
            width = len(logit.value)
            sign = 1 << (width - 1)
            best_key = Signal(width)
            above = ((logit.value.as_unsigned() ^ sign) + best_key)[width]
            with m.If(logit_valid & ((logit.index == 0) | above)):
                m.d.sync += [best_key.eq(logit.value.as_unsigned() ^ (sign - 1)), prediction.eq(logit.index)]

        # -- hidden learning signals -------------------------------------------------------------------
        unit_busy = Const(0)
        for k, unit in enumerate(units):
            stream_read = act_streams[k]
            m.d.comb += unit.label.eq(label)
            unit_busy = unit_busy | unit.busy
            # Pass 1: straight from the requantiser.
            pass1 = Signal(name=f"pass1_{k}")
            m.d.comb += pass1.eq(train & ~pass1_done[k] & (state == _State.RUN))
            with m.If(pass1):
                m.d.comb += [
                    unit.h.valid.eq(lanes.o.valid & (out.layer == k)),
                    unit.h.payload.h.eq(out.value),
                    unit.h.payload.fprime.eq(out.fprime),
                ]
            with m.If(unit.h.valid & unit.h.ready & pass1 & (out.index == geo.fan_out[k] - 1)):
                m.d.sync += pass1_done[k].eq(1)
            if stream_read is not None:
                # Pass 2: re-stream h and f' from the activation buffer, one per cycle.
                fetch = Signal(range(geo.fan_out[k] + 1), name=f"pass2_fetch{k}")
                valid = Signal(name=f"pass2_valid{k}")
                advance = ~valid | unit.h.ready
                more = pass1_done[k] & train & (state == _State.RUN) & (fetch < geo.fan_out[k])
                m.d.comb += [stream_read.addr.eq(fetch), stream_read.en.eq(advance)]
                with m.If(advance):
                    m.d.sync += valid.eq(more)
                    with m.If(more):
                        m.d.sync += fetch.eq(fetch + 1)
                with m.If(~pass1):
                    m.d.comb += [
                        unit.h.valid.eq(valid),
                        unit.h.payload.eq(stream_read.data),
                    ]
                with m.If(state == _State.IDLE):
                    m.d.sync += fetch.eq(0)
            # δ in neuron order -> lane n mod P of word n div P.
            n_lane = Signal(range(P), name=f"delta_lane{k}")
            n_index = Signal(range(geo.fan_out[k]), name=f"delta_index{k}")
            write = delta_writes[k]
            m.d.comb += [
                unit.delta.ready.eq(1),
                write.addr.eq(delta_words[k]),
                write.en.eq(Mux(unit.delta.valid, 1 << n_lane, 0)),
            ]
            m.d.comb += _write_every_lane(write, unit.delta.payload)
            with m.If(unit.delta.valid):
                m.d.sync += [n_lane.eq(n_lane + 1), n_index.eq(n_index + 1)]
                with m.If((n_lane == P - 1) | (n_index == geo.fan_out[k] - 1)):
                    m.d.sync += [n_lane.eq(0), delta_words[k].eq(delta_words[k] + 1)]
                with m.If(n_index == geo.fan_out[k] - 1):
                    m.d.sync += n_index.eq(0)

        # -- output layer: softmax, errors -> δ words ----------------------------------------------
        # A training step's logits go to the softmax as the requantiser delivers them.
        to_softmax = train & stepping & (out.layer == last)
        m.d.comb += [
            softmax.i.valid.eq(lanes.o.valid & to_softmax),
            softmax.i.payload.logit.eq(out.value),
            softmax.i.payload.label.eq(label),
        ]
        with m.If(to_softmax):
            m.d.comb += lanes.o.ready.eq(softmax.i.ready)
        # Class c's error -> lane c mod P of output δ word c div P, when the hidden unit sharing
        # the memory does not write (it has no back-pressure; the softmax waits).
        hidden_writing = units[shared].delta.valid if L >= 2 else Const(0)
        out_write = delta_writes[shared]
        out_lane = Signal(range(P))
        out_class = Signal(range(C))
        error_fire = softmax.o.valid & softmax.o.ready
        m.d.comb += softmax.o.ready.eq(~hidden_writing)
        with m.If(softmax.o.valid & ~hidden_writing):
            m.d.comb += [out_write.addr.eq(out_base + delta_words[last]), out_write.en.eq(1 << out_lane)]
            m.d.comb += _write_every_lane(out_write, softmax.o.payload.error)
        with m.If(error_fire):
            m.d.sync += [out_lane.eq(out_lane + 1), out_class.eq(out_class + 1)]
            with m.If((out_lane == P - 1) | (out_class == C - 1)):
                m.d.sync += [out_lane.eq(0), delta_words[last].eq(delta_words[last] + 1)]
            with m.If(out_class == C - 1):
                m.d.sync += out_class.eq(0)
        if self.trace:
            # The logits and the softmax's outputs pass by once: a copy for Region.OUTPUT.
            logits = Signal(data.ArrayLayout(signed(config.logit_bits), C))
            with m.If(out_fire & (out.layer == last)):
                m.d.sync += logits[out.index[:ceil_log2(C) or 1]].eq(out.value)
            probs = Signal(data.ArrayLayout(self.prob_shape, C))
            errors = Signal(data.ArrayLayout(self.prob_shape, C))
            with m.If(error_fire):
                write_element(m, "sync", [probs[c] for c in range(C)], out_class, softmax.o.payload.prob)
                write_element(m, "sync", [errors[c] for c in range(C)], out_class, softmax.o.payload.error)

        # -- weight initialisation and host writes share the lanes' write port ---------------------
        # A weight write goes straight from the request, taken when the lanes take it (its
        # payload stays put meanwhile, a stream's rule: no copy of the word here).
        weight_request = req.write & (req.region == Region.WEIGHTS)
        can_access = (state == _State.IDLE) & ~pending & ~self.response.valid
        start_decided = Signal()   # (the iCE40's registered start decision, see below)
        if not split_delta:
            can_access &= ~start_decided
        booted = Signal()   # the initialisation after reset has started
        # With the lanes' group copies (ECP5), a host weight write goes to the lanes a cycle after
        # it is seen, from a register, and is taken then: the engine's state and the request's
        # decode were 5 LUT levels into the write enables of every weight memory (11.3 ns at 64
        # lanes on the ULX3S). The request holds still meanwhile (a stream's rule), and no step
        # starts while it waits.
        host_write = Signal()
        host_word = req.data[:len(lanes.write.payload.weights.as_value())]
        if split_delta:
            write_condition = self.access.valid & can_access & weight_request & ~init.busy & ~host_write
            m.d.sync += host_write.eq(write_condition)
            # The write port's source is chosen by host_write (a register; the initialiser is
            # idle while it is high), and each group of lanes takes its word's bits by a copy of
            # its own (`keep`): the initialiser's busy was one net into the data multiplexers of
            # every lane (1664 loads at 64 lanes, 10.1 ns on the ULX3S).
            lane_bits = lanes.word_shape.width
            words = lanes.write.payload.weights.as_value()
            init_word = init.write.payload.weights.as_value()
            for j, first in enumerate(range(0, P, CONTROL_GROUP_LANES)):
                host_copy = Signal(name=f"host_write{j}", attrs={"keep": 1})
                m.d.sync += host_copy.eq(write_condition)
                bits = slice(first * lane_bits, min(first + CONTROL_GROUP_LANES, P) * lane_bits)
                m.d.comb += words[bits].eq(Mux(host_copy, host_word[bits], init_word[bits]))
            m.d.comb += [
                lanes.write.valid.eq(host_write | init.write.valid),
                init.write.ready.eq(lanes.write.ready & ~host_write),
                lanes.write.payload.layer.eq(Mux(host_write, req.layer, init.write.payload.layer)),
                lanes.write.payload.addr.eq(Mux(host_write, req.addr, init.write.payload.addr)),
                lanes.write.payload.mask.eq(Mux(host_write, (1 << P) - 1, init.write.payload.mask)),
            ]
        else:
            # Without them (the iCE40) host_write is a register too, set a cycle after the request
            # is seen and held until its transfer (the lanes take a write in beats, and the request
            # with its word holds still meanwhile): the request's decode and the engine's state
            # were 8 LUT levels into the SPRAM's address through its source's select (25.2 ns on
            # the UP5K).
            # It is never high while the initialiser is busy (it waits for the boot's
            # initialisation, and a command's waits for the access port), so it alone chooses the
            # write port's source: the initialiser's busy was a net of 93 loads (the word's
            # multiplexers) in front of its own enables, 22.7 ns on the UP5K.
            with m.If(self.access.valid & can_access & weight_request & ~init.busy & booted):
                m.d.sync += host_write.eq(1)
            with m.If(access_fire):
                m.d.sync += host_write.eq(0)
            m.d.comb += [lanes.write.valid.eq(host_write | init.write.valid),
                         init.write.ready.eq(lanes.write.ready)]
            with m.If(host_write):
                m.d.comb += [
                    lanes.write.payload.layer.eq(req.layer),
                    lanes.write.payload.addr.eq(req.addr),
                    lanes.write.payload.mask.eq((1 << P) - 1),
                    lanes.write.payload.weights.eq(host_word),
                ]
            with m.Else():
                m.d.comb += lanes.write.payload.eq(init.write.payload)
                if lanes.resolved_weight_store(platform) == "spram":
                    # Every lane of an initialiser write holds one value (or 0): it goes in as
                    # the fill, so the store's write data selects between the updater and the
                    # host's word only (no 128-bit multiplexer in front of it).
                    m.d.comb += [lanes.write.payload.weights.eq(0),
                                 lanes.write_fill.eq(init.write.payload.weights[0])]
        # A read starts in the first cycle of its request's pending (the address is held from then).
        read_latency = lanes.read_latency(platform)
        read_wait = Signal(range(read_latency))
        if split_delta:
            m.d.comb += lanes.read_start.eq(pending & (read_wait == read_latency - 1) & ~held.write)
        else:
            # A register (the first cycle of a read's pending), for the same reason as host_write.
            host_read = Signal()
            m.d.sync += host_read.eq(access_fire & ~req.write)
            m.d.comb += lanes.read_start.eq(host_read)
        m.d.comb += [lanes.read_layer.eq(held.layer), lanes.read_addr.eq(held.addr)]

        # -- the learning-rate offset register (numerics §12), written by the host between epochs --
        lr_offset = Signal(range(len(config.lr_decay) + 1))
        m.d.comb += lanes.lr_offset.eq(lr_offset)
        for unit in units:
            # LLS-M's modulation update shifts by mod_lr_shift + o too (the unit samples it with start).
            if isinstance(unit, LLSLearningSignal) and unit.lls_m:
                m.d.comb += unit.lr_offset.eq(lr_offset)
        status_write = access_fire & req.write & (req.region == Region.STATUS)
        with m.If(status_write & (req.addr == Status.LR_OFFSET)):
            m.d.sync += lr_offset.eq(req.data)

        # -- the run-time LLS mode register (EngineConfig.runtime_modes), written between steps -----
        lls_mode = Signal(range(config.n_modes))
        if config.n_modes > 1:
            for unit in units:
                m.d.comb += unit.mode.eq(lls_mode)
            with m.If(status_write & (req.addr == Status.LLS_MODE) & (req.data < config.n_modes)):
                m.d.sync += lls_mode.eq(req.data)

        # -- counters ------------------------------------------------------------------------------
        cycles = Signal(48)
        busy_lanes = Signal(48)
        steps = Signal(32)
        # Without the lanes' group copies (the iCE40) both count from registers of their
        # increments, a cycle late: their decodes were in front of the 48-bit carry chains
        # (28-31 ns on the UP5K). They are read when idle, long after the last increment. (ECP5
        # keeps its netlist: its builds meet their targets.)
        if split_delta:
            m.d.sync += busy_lanes.eq(busy_lanes + lanes.busy_lanes)
        else:
            # And each as two halves with a registered carry (SplitCounter): the 48-bit chains
            # themselves were 22-23 ns. Both are exact two cycles after their last increment.
            busy_increment = Signal.like(lanes.busy_lanes, name="busy_increment")
            counting = Signal()
            m.submodules.cycle_counter = cycle_counter = SplitCounter(len(cycles))
            m.submodules.busy_counter = busy_counter = SplitCounter(len(busy_lanes), len(busy_increment))
            m.d.sync += busy_increment.eq(lanes.busy_lanes)
            m.d.comb += [cycle_counter.inc.eq(counting), cycles.eq(cycle_counter.value),
                         busy_counter.inc.eq(busy_increment), busy_lanes.eq(busy_counter.value)]

        # -- step control --------------------------------------------------------------------------
        units_ready = Const(1)
        for unit in units:
            if isinstance(unit, DRTPProjection):
                units_ready = units_ready & unit.init_done
        ready = Signal()
        m.d.comb += [ready.eq((state == _State.IDLE) & units_ready), self.ready.eq(ready)]
        sample_ready = full.bit_select(use_bank, 1)
        cmd_op = command.op
        starting = Signal()
        m.d.comb += commands.r_en.eq(0)
        # Not while a response waits: the step would change what it reads.
        may_start = ready & commands.r_rdy & ~self.access.valid & ~pending & ~self.response.valid
        if not split_delta:
            # Without the lanes' group copies (the iCE40) the decision is a register and acts a
            # cycle later (the access port waits meanwhile, so nothing it tested changes): it was
            # 6 LUT levels from the access port's valid into the command FIFO's read and the
            # engine's state on the UP5K (21.7 ns). A step starts a cycle later.
            m.d.sync += start_decided.eq(may_start & ~start_decided)
            may_start = start_decided
        with m.If(may_start):
            with m.If(cmd_op == Command.INIT):
                m.d.comb += [commands.r_en.eq(1), init.start.eq(1)]
                m.d.sync += state.eq(_State.INIT)
            with m.Elif(sample_ready):
                m.d.comb += [commands.r_en.eq(1), starting.eq(1)]
        is_train = cmd_op == Command.TRAIN
        # The CRC's and the draws' restarts one cycle late, from a register: the command decode is
        # not in front of their 32 and more flip-flops (a 13-LUT path on the 25F). Neither is
        # written or read that early in a step (the first weight write comes after a forward pass).
        train_start = Signal()
        m.d.sync += train_start.eq(starting & is_train)
        # Without the lanes' group copies (the iCE40) the output and δ counts restart a cycle late
        # too, from a register: the start decision (the command, the access port, the engine's
        # state) was 6 LUT levels into their 46 flip-flops' resets on the UP5K. Nothing reads them
        # in a step's first cycle: layer 0 needs no activations, the sequencer is busy from it on
        # (no DONE), and the first output, activation or δ comes later. (Not `pass1_done`: an LLS
        # unit's second pass would start from the last step's.)
        restart = [h.eq(0) for h in h_avail] + [d.eq(0) for d in delta_words]
        if not split_delta:
            step_start = Signal()
            m.d.sync += step_start.eq(starting)
            with m.If(step_start):
                m.d.sync += restart
        m.d.comb += [
            seq.start.valid.eq(starting),
            seq.start.payload.train.eq(is_train),
            lanes.checksum_start.eq(train_start),
            lanes.step_start.eq(train_start),
        ]
        with m.If(starting):
            m.d.sync += [state.eq(_State.RUN), train.eq(is_train), label.eq(command.label), pass1_done.eq(0)]
            if split_delta:
                m.d.sync += restart
        # The units start from train_start too, a cycle later, with the label from its register
        # (they sample it with start): the command decode was 5 LUT levels into the enables of
        # the LLS unit's basis phases and counters (11.2 ns on the ULX3S), and the step's start
        # decision into the DRTP unit's row-state read (26.2 ns on the UP5K). Their first input
        # comes a forward pass later.
        for unit in units:
            m.d.comb += unit.start.eq(train_start)
        if split_delta:
            with m.If(starting | (state == _State.RUN) | (state == _State.DONE)):
                m.d.sync += cycles.eq(cycles + 1)
        else:
            m.d.sync += counting.eq(starting | (state == _State.RUN) | (state == _State.DONE))

        # (A training step's softmax is done once the sequencer is: the output layer's update
        # waited for its last error.)
        finishing = (state == _State.RUN) & ~seq.busy & lanes.idle & ~unit_busy & (h_avail[last] == C)
        if lanes.resolved_weight_store(platform) == "spram":
            # With SPRAM weights (the iCE40) from a register, a cycle late: the lanes' idle
            # (every stage's valid, the store's and the CRC's work) was 5 LUT levels into the
            # state on the UP5K (23.6 ns). A step takes a cycle more.
            finished = Signal()
            m.d.sync += finished.eq(finishing)
            finishing = (state == _State.RUN) & finished
        with m.If(finishing):
            m.d.sync += state.eq(_State.DONE)
        result = self.result.payload
        m.d.comb += [
            self.result.valid.eq(state == _State.DONE),
            result.prediction.eq(prediction),
            result.checksum.eq(lanes.checksum),
            result.train.eq(train),
        ]
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += [state.eq(_State.IDLE), steps.eq(steps + 1), use_bank.eq(~use_bank)]
            m.d.sync += full.bit_select(use_bank, 1).eq(0)
            # A sample completing in this very cycle sets its own bank's flag (the other bank).

        with m.If((state == _State.INIT) & ~init.busy & ~init.start):
            m.d.sync += state.eq(_State.IDLE)
        # After reset: initialise once.
        with m.If(~booted):
            m.d.comb += init.start.eq(1)
            m.d.sync += booted.eq(1)

        # -- access port ---------------------------------------------------------------------------
        m.d.comb += self.access.ready.eq(can_access & ~init.busy
                                         & Mux(weight_request, host_write & lanes.write.ready, lanes.host_free))
        # Without the lanes' group copies (the iCE40) `held` follows the request in every cycle
        # without one pending or answered, the transfer's included (the payload is stable then):
        # its flip-flops' enable is one LUT of two registers, not the transfer's decision (34.4 ns
        # on the UP5K, from the lanes' `host_free`). ECP5 keeps its netlist.
        if split_delta:
            take_request = access_fire
            with m.If(access_fire):
                m.d.sync += [pending.eq(1), held.eq(req), read_wait.eq(read_latency - 1)]
        else:
            take_request = ~(pending | self.response.valid)
            with m.If(take_request):
                m.d.sync += held.eq(req)
            with m.If(access_fire):
                m.d.sync += [pending.eq(1), read_wait.eq(read_latency - 1)]
        with m.If(self.response.valid & self.response.ready):
            m.d.sync += self.response.valid.eq(0)
        # One word per region, each gated by its own decode and OR-ed: a write's response is 0.
        # With the lanes' group copies (ECP5) the STATUS word is a register, loaded from `held`
        # (set a cycle before the response) in every cycle without a response, so READY is
        # sampled as ready_q is: its 10-way multiplexer was 7 LUT levels into the bridge's shift
        # register (11.3 ns on the ULX3S).
        ready_q = Signal()
        status = Signal(48)

        def status_word(domain, ready_value):
            with m.Switch(held.addr):
                for addr, value in [(Status.CYCLES, cycles), (Status.BUSY, busy_lanes), (Status.STEPS, steps),
                                    (Status.CHECKSUM, lanes.checksum), (Status.PREDICTION, prediction),
                                    (Status.READY, ready_value), (Status.LANES, P), (Status.LR_OFFSET, lr_offset),
                                    (Status.LLS_MODE, lls_mode), (Status.MODES, config.n_modes)]:
                    with m.Case(addr):
                        m.d[domain] += status.eq(value)
                with m.Default():
                    m.d[domain] += status.eq(0)

        if split_delta:
            with m.If(~self.response.valid):
                status_word("sync", ready)
        else:
            status_word("comb", ready_q)
        sources = {Region.WEIGHTS: lanes.read_data, Region.STATUS: status}
        cb = self.class_bits
        if self.trace:
            sources[Region.ACTIVATION] = activation = Signal(33)
            with m.Switch(held.layer):
                for k in range(L - 1):
                    with m.Case(k):
                        entry = act_reads[k].data
                        m.d.comb += activation.eq(Cat(_field(entry.h, 32), entry.fprime))
            sources[Region.DELTA] = delta = Signal(delta_layout)
            with m.Switch(held.layer):
                for k in range(L):
                    with m.Case(k):
                        m.d.comb += delta.eq(delta_reads[min(k, shared)].data)
            c = held.addr[:ceil_log2(C) or 1]
            sources[Region.OUTPUT] = Cat(_field(logits[c], 32), _field(probs[c], 32), _field(errors[c], 32))
            sources[Region.SIGNAL] = signal = Signal(32)
            with m.Switch(held.layer):
                for k, unit in enumerate(units):
                    with m.Case(k):
                        m.d.comb += signal.eq(_signal_word(m, unit, held.addr[cb:cb + 3], held.addr[:cb]))
        word = Const(0, self.access_bits)
        for region, value in sources.items():
            selected = ~held.write & (held.region == region)
            value = Value.cast(value)
            if split_delta and region == Region.WEIGHTS:
                # The weight word's gate, per group of lanes from a register of its own set with
                # `held` (`keep`): one decode gated all P x weight_bits bits (1011 loads at 64
                # lanes). `held` resets to a WEIGHTS read: so do the copies.
                chunk = CONTROL_GROUP_LANES * lanes.word_shape.width
                for j, low in enumerate(range(0, len(value), chunk)):
                    gate = Signal(name=f"weights_read{j}", init=1, attrs={"keep": 1})
                    with m.If(take_request):
                        m.d.sync += gate.eq(~req.write & (req.region == Region.WEIGHTS))
                    word = word | Mux(gate, value[low:low + chunk], 0) << low
                continue
            word = word | Mux(selected, value, 0)
        # The response is read straight from the held request's sources: none changes while it
        # waits (no step starts, no access; the flag that can rise meanwhile, READY, is sampled).
        with m.If(pending):
            # A write is done by its transfer.
            with m.If(held.write | (read_wait == 0)):
                m.d.sync += [pending.eq(0), self.response.valid.eq(1), ready_q.eq(ready)]
            with m.Else():
                m.d.sync += read_wait.eq(read_wait - 1)
        m.d.comb += self.response.payload.eq(word)
        return m


def _grouped_delta_memory(m, name, config, lanes, depth):
    """A δ memory of ``depth`` words of ``lanes`` lanes as one memory per group of
    :data:`~rtl.layer_engine.CONTROL_GROUP_LANES` lanes, each read without a register at an
    address registered per group: ``(write, read)``. ``write`` has ``addr``, ``en`` (one bit per
    lane) and ``value``, written to every enabled lane (both writers write one δ at a time); the
    read port's members (``addr``, ``en``, ``data``) behave as a read port's.

    The read port's data register took ``en`` (the issue decision's) to all ``P x delta_bits``
    flip-flops (1024 at 64 lanes on the ULX3S); here ``en`` loads only the groups' address
    registers. The word read is the same while it is used: no δ word is written between its
    read at a group's first update word and the group's last (nor while the host reads it).
    A write takes effect a cycle after it is offered, from registers of each group's own
    (``keep``): the choice between the writers' values was one net into the write data of every
    lane (11.0 ns at 64 lanes on the ULX3S). It is still in before the word is read: the reads
    follow the writers' counters, which count at the offer, through a registered address.
    """
    layout = data.ArrayLayout(signed(config.delta_bits), lanes)
    write = SimpleNamespace(addr=Signal(range(depth), name=f"{name}_w_addr"), en=Signal(lanes, name=f"{name}_w_en"),
                            value=Signal(signed(config.delta_bits), name=f"{name}_w_value"))
    read = SimpleNamespace(addr=Signal(range(depth), name=f"{name}_r_addr"), en=Signal(name=f"{name}_r_en"),
                           data=Signal(layout, name=f"{name}_r_data"))
    for j, first in enumerate(range(0, lanes, CONTROL_GROUP_LANES)):
        group = range(first, min(first + CONTROL_GROUP_LANES, lanes))
        mem = memory.Memory(shape=data.ArrayLayout(signed(config.delta_bits), len(group)), depth=depth, init=[])
        m.submodules[f"{name}_{j}"] = mem
        w = mem.write_port(granularity=1)
        r = mem.read_port(domain="comb")
        # `keep`: Yosys would merge the groups' copies.
        addr = Signal(range(depth), name=f"{name}_r_addr{j}", attrs={"keep": 1})
        with m.If(read.en):
            m.d.sync += addr.eq(read.addr)
        w_addr = Signal(range(depth), name=f"{name}_w_addr{j}", attrs={"keep": 1})
        w_en = Signal(len(group), name=f"{name}_w_en{j}", attrs={"keep": 1})
        w_value = Signal(signed(config.delta_bits), name=f"{name}_w_value{j}", attrs={"keep": 1})
        m.d.sync += [w_addr.eq(write.addr), w_en.eq(write.en[first:group.stop]), w_value.eq(write.value)]
        m.d.comb += [w.addr.eq(w_addr), w.en.eq(w_en), r.addr.eq(addr)]
        m.d.comb += [w.data[q].eq(w_value) for q in range(len(group))]
        m.d.comb += [read.data[p].eq(r.data[q]) for q, p in enumerate(group)]
    return write, read


def _write_every_lane(write, value):
    """The statements that put ``value`` in every lane of a δ write (a memory's write port, or
    :func:`_grouped_delta_memory`'s ``write``, which takes it once)."""
    if hasattr(write, "value"):
        return [write.value.eq(value)]
    return [write.data[p].eq(value) for p in range(len(write.data))]


def _field(value, bits):
    """``value`` sign- (or zero-) extended to exactly ``bits`` bits."""
    value = Value.cast(value)
    pad = bits - len(value)
    if pad <= 0:
        return value[:bits]
    fill = value[-1].replicate(pad) if value.shape().signed else Const(0, pad)
    return Cat(value, fill)


def _signal_word(m, unit, field, c):
    """One trace value of a learning-signal unit (``Region.SIGNAL``), sign-extended to 32 bits."""
    word = Signal(32)
    if not isinstance(unit, LLSLearningSignal):
        return word
    per_class = {
        SignalField.RAW_LOGITS: unit.raw_logits,
        SignalField.LOGITS: unit.logits,
        SignalField.PROBS: unit.probs,
        SignalField.ERRORS: unit.errors,
        SignalField.SCALED_ERRORS: unit.scaled_errors,
    }
    if unit.lls_m:
        per_class[SignalField.LOCAL_LOGITS] = unit.local_logits
        per_class[SignalField.MODULATION] = unit.modulation
    scalars = [unit.S, unit.zero, unit.e2, unit.R, unit.sigma, unit.kappa, unit.trace_valid]
    with m.Switch(field):
        for name, array in per_class.items():
            with m.Case(name):
                m.d.comb += word.eq(_field(array[c], 32))
        with m.Case(SignalField.SCALARS):
            with m.Switch(c):
                for i, value in enumerate(scalars):
                    with m.Case(i):
                        m.d.comb += word.eq(_field(value, 32))
    return word
