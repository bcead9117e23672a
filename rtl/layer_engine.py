"""The MAC-lane datapath: P lanes shared by every layer's forward pass and weight update."""

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.hdl import Assert
from amaranth.lib import crc, data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .fixed import select
from .layer_geometry import CHECKSUM_CHUNK_BITS, LayerGeometry, OpKind, op_layout
from .mac_lane import MACLane
from .outer_product_updater import OuterProductUpdater
from .pipelined_multiplier import MULT18X18D_BITS, MULTIPLIERS
from .requantiser import Requantiser
from .single_port_ram import SPRAM_DEPTH, SPRAM_LANE_BITS, SPRAM_WIDTH, SinglePortRAM, is_ice40
from .skid_buffer import SkidBuffer
from .spram_schedule import SPRAMSchedule

__all__ = ["LayerEngine", "LANE_LATENCIES", "WEIGHT_STORES", "fabric_arithmetic", "default_lane_latency",
           "default_multiplier", "default_updater_stages", "default_weight_store", "offset_fits_operand",
           "CONTROL_GROUP_LANES", "WIDE_UPDATER_LANES", "HEAD_GROUP_LANES", "FOLD_GROUP_CHUNKS"]


#: Lanes that share one copy of the lanes' controls (the fetch register's op fields, the last
#: lane stage's valid) when the pipelines are deep enough to register them per group.
CONTROL_GROUP_LANES = 4


#: With the fetch register, the result bank's head (the neuron the requantisers see) is loaded in
#: this many slices of bits, each selected by a copy of its own of the next neuron's index.
HEAD_SLICES = 4
#: With the fetch register and more lanes than this, the head is loaded from per-group heads of
#: this many lanes (a power of 2), each loaded a neuron ahead from its group's lanes: two
#: registered levels of multiplexers instead of one ``P``-way one across the die.
HEAD_GROUP_LANES = 8


#: With the deep (ECP5) pipelines the checksum's fold is XORed in partial folds of this many
#: 32-bit chunks (two 16-bit lanes each) first, each registered.
FOLD_GROUP_CHUNKS = 8


#: The MAC lanes' pipelines by latency (cycles from S1 to the accumulator): ``(fetch_reg,
#: input_regs, product_reg)``, the last two of :class:`~rtl.mac_lane.MACLane`; ``fetch_reg``
#: registers what arrives at S1 (the word read, ``x``, ``delta``, the op) before the lanes'
#: operand multiplexers, so the memories' outputs and the wide fan-out to the lanes are paths of
#: their own.
LANE_LATENCIES = {
    1: (False, False, False),   # operands straight into the multiplier, product into the adder
    2: (False, True, False),    # operand registers first
    3: (False, True, True),     # operand registers, then a product register before the adder
    4: (True, True, True),      # and the fetch register before the operand multiplexers
}


def fabric_arithmetic(platform):
    """Whether ``platform`` builds the engine's arithmetic mostly in the fabric (ECP5: the
    MULT18X18D is only a multiplier, its adder and every other multiplier are LUTs and carry
    chains), so the deeper pipelines pay; ``False`` for the iCE40 and without a platform."""
    return getattr(platform, "family", None) == "ecp5"


def default_lane_latency(platform):
    """The lane latency a platform builds when none is given: 4 on ECP5 (the MULT18X18D is
    unregistered and its adder is in the fabric: memory -> operand mux -> multiplier -> adder
    was one 16 ns path; the fetch register keeps the block RAMs' 4.3 ns clock-to-output and the
    fan-out to 24 lanes apart), 1 elsewhere (the iCE40's SB_MAC16 holds the adder; simulation).
    The iCE40 keeps 1: with SPRAM weights lane latency 2 (the SB_MAC16's input registers) makes
    an update op's slot a cycle longer, 16 % more cycles a digits step, for no gain in the UP5K's
    clock yet (``docs/results.md``, session 19)."""
    return 4 if fabric_arithmetic(platform) else 1


def offset_fits_operand(config):
    """Whether every update op's ``x`` (an input, an activation or a bias word's
    ``2**bias_shift``) times ``2**len(lr_decay)`` fits the lanes' ``signed(mult_bits)`` operand,
    and the product so scaled, with its rounding constant, the accumulator: then
    :class:`LayerEngine` with SPRAM weights puts the learning-rate offset in that operand."""
    decays = len(config.lr_decay)
    x_max = max(max(config.in_max(k), 1 << config.bias_shift(k)) for k in range(config.n_layers))
    return (decays > 0 and x_max.bit_length() + 1 + decays <= config.mult_bits
            and config.update_product_bits + decays + 1 <= config.acc_bits)


def default_multiplier(platform, registered):
    """The lanes' multiplier a platform builds when none is given: on ECP5, when the lanes have
    operand and product registers (``registered``), the instantiated MULT18X18D that holds them
    (Yosys infers none of its registers: they were fabric flip-flops around a combinational
    multiplier, a 13.5 ns path at 64 lanes on the ULX3S); else ``"inferred"``."""
    return "mult18x18d" if fabric_arithmetic(platform) and registered else "inferred"


#: From this many lanes on, the ECP5 updater has three stages (:func:`default_updater_stages`).
WIDE_UPDATER_LANES = 64


def default_updater_stages(platform, lanes=None):
    """The updater's register stages when none are given: 2 on ECP5 (its rounding adder, shifts,
    subtraction and saturation were one 13 ns path at 8 lanes), 3 there from
    :data:`WIDE_UPDATER_LANES` lanes on (at 64 lanes on the ULX3S the offset's shift, the
    subtraction and the saturation into the output word were a 12.8 ns path), 1 elsewhere.
    (With two stages the offset's fan-out to 24 lanes' shifters was still 2.7 ns of a 10.4 ns
    path, now split by the updater's per-lane-group copies; the one 24-lane build with three
    stages and ``bank_shift`` stalled in routing: measured defaults only.)"""
    if not fabric_arithmetic(platform):
        return 1
    return 3 if lanes is not None and lanes >= WIDE_UPDATER_LANES else 2


#: Where the weights live: ``"ebr"``, one simple dual-port block RAM per layer (a read and a
#: write every cycle); ``"spram"``, every layer in one 64-bit single-port RAM
#: (:class:`~rtl.single_port_ram.SinglePortRAM`: the iCE40 UP5K's SPRAMs, 1 Mbit against its
#: 120 Kbit of EBR), a word in ``ceil(P / 4)`` beats and a read or a write per cycle.
WEIGHT_STORES = ("ebr", "spram")


def default_weight_store(platform):
    """``"spram"`` on an iCE40 (the UP5K's EBR holds neither the digits network nor an MNIST
    one), ``"ebr"`` elsewhere."""
    return "spram" if is_ice40(platform) else "ebr"


class LayerEngine(wiring.Component):
    """``P`` MAC lanes, the weight memories, the outer-product updater and the requantisers.

    Every operation is one weight word of one layer (:func:`op_layout`), issued by the
    sequencer on ``op`` at most once per cycle, never stalled afterwards:

    ======= ===================================================================================
    stage   work
    ======= ===================================================================================
    S0      ``op``: the word's address goes to the layer's weight memory read port; the caller
            addresses its input buffer (``x_{word-1}``) and its δ memory (word ``group``) too
    S1      the word, ``x`` and ``delta`` are here. Forward: word 0 (the biases) loads every
            lane with ``b << bias_shift``, word ``1 + m`` accumulates ``W[gP+p, m] · x_m``.
            Update: every word multiplies ``δ_p · x_m``, the bias word with ``x = 2**bias_shift``
    S2      forward, last word: the ``P`` sums go to the result bank. Update: the products are
            the accumulators' increments (``acc - acc_prev`` in ``update_product_bits``: the
            lanes never reload during an update, the DSP's accumulator keeps running) and enter
            the :class:`~rtl.outer_product_updater.OuterProductUpdater`
    S3      the updated word is written back (1R1W memory); its 32-bit fold is registered and
            enters the CRC a cycle later
    ======= ===================================================================================

    With a lane latency ``λ > 1`` (``lane_latency``, :data:`LANE_LATENCIES`) the lanes' operand
    (and product, and fetch) registers sit between S1 and the accumulator, and S2, S3 come ``λ - 1``
    cycles later: the op and the word that was read travel alongside. With
    ``updater_stages = 2`` the write-back (S3) is one cycle later again. ``x`` and ``delta`` are
    still due at S1, ``busy_lanes`` still counts at S1; results are the same, bit for bit.

    The result bank is read out one neuron per cycle through the layer's
    :class:`~rtl.requantiser.Requantiser` onto ``o``. It is one bank, reserved when a forward
    group's last word is issued (``bank_ready``) and freed when its last neuron has left, so the
    lanes stall only if a group is shorter than ``P + 2 + λ`` words.

    Parameters
    ----------
    config : EngineConfig
    lanes : int
        ``P``.
    lane_latency : int or None
        ``λ``, the lanes' pipeline (a key of :data:`LANE_LATENCIES`); ``None`` chooses by the
        platform at elaboration (:func:`default_lane_latency`: 4 on ECP5, else 1).
    updater_stages : int or None
        The :class:`~rtl.outer_product_updater.OuterProductUpdater`'s register stages (1 to 3);
        ``None``: by the platform and ``P`` (:func:`default_updater_stages`: 2 on ECP5, 3 there
        from 64 lanes on, else 1).
    bank_shift : bool or None
        Read the result bank out as a shift register (lane 0 always to the requantisers)
        instead of through a ``P``-way multiplexer: more flip-flop inputs, no wide mux in front
        of the requantiser's adder. ``None``: off (the 24-lane ECP5 build that had it stalled in
        routing).
    weight_store : str or None
        ``"ebr"`` or ``"spram"`` (:data:`WEIGHT_STORES`); ``None``: by the platform
        (:func:`default_weight_store`). With ``"spram"`` a word is read in ``B = ceil(P / 4)``
        beats, so S1 comes ``B`` cycles after S0 (``x`` and ``delta`` held until then),
        ``op.ready`` spaces the ops by the rules of :class:`~rtl.spram_schedule.SPRAMSchedule`, the
        updater is one beat (4 lanes) wide and takes a word's beats one per cycle, and host reads
        (``read_start``) take ``B`` cycles. Needs lane latency 1 or 2 (the operand registers: an
        update op's slot is a cycle longer) and at most 16-bit weights.
    multiplier : str or None
        The lanes' :class:`~rtl.mac_lane.MACLane` ``multiplier``; ``None``: by the platform
        (:func:`default_multiplier`: the instantiated MULT18X18D on ECP5 when the lanes have
        operand and product registers). ``"mult18x18d"`` needs lane latency 3 or 4.

    Members
    -------
    op : In(stream.Signature(op_layout(geometry)))
        The word operation at S0, taken with ``op.ready`` (always 1 with ``"ebr"``).
    x : In(signed(mult_bits))
        The input ``x_{word-1}`` of the op taken the cycle before (ignored for word 0). With
        ``"spram"`` it must be there from the cycle before the op's S1 and stay put until S1,
        ``B`` (``B + 1`` with the port registered) cycles after the op was taken (no op is taken
        in between: a read port that reads only when an op is taken, a cycle late with the port
        registered, does it); an update op's ``x`` is registered then, times
        ``2**(len(lr_decay) - lr_offset)`` (:func:`offset_fits_operand`).
    delta : In(data.ArrayLayout(signed(delta_bits), P))
        The learning signal of the group of the op taken the cycle before (update ops); held
        like ``x``.
    bank_ready : Out(1)
        A forward group's last word may be issued (the result bank is free).
    o : Out(stream.Signature(StructLayout({"layer", "index", "value", "fprime"})))
        Requantised outputs in neuron order: activations and ``f'`` of hidden layers, logits of the
        last layer (``fprime`` 0).
    busy_lanes : Out(range(P + 1))
        Lanes doing real work at S1 this cycle (load or multiply for a neuron that exists).
    idle : Out(1)
        Nothing in flight (S1..S3 and the lane stages between, bank, requantisers, the SPRAM
        store's writes and CRC bytes); with EBR ``checksum`` takes the last word's fold in this
        cycle and is complete from the next.
    checksum_start : In(1)
        Restart the weight CRC.
    checksum : Out(32)
        CRC-32 of the folds of the words written since ``checksum_start``
        (:func:`~rtl.layer_geometry.weight_checksum`).
    write : In(stream.Signature(StructLayout({"layer", "addr", "mask", "weights"})))
        Host and initialiser writes: lanes with ``mask`` set are written. With ``"ebr"`` ready
        when the updater is not writing; with ``"spram"`` the word is written in ``B`` beats,
        from the cycle after it is first offered, and taken with the last (the payload must stay
        put: a stream's rule anyway); ready is high at that beat whether or not a word is offered.
    write_fill : In(signed(max(weight_bits)))
        OR-ed into every lane of a ``write`` (0 for a plain write): a writer of one value to
        every lane (the initialiser) passes it here and zero ``weights``, so the store's write
        data needs no multiplexer between two whole words.
    read_start, read_layer, read_addr : In
        Host reads, when no ``op`` is taken and ``host_free``: ``read_data`` holds the word
        :attr:`read_latency` cycles after ``read_start`` (1 with ``"ebr"``, which reads
        ``read_addr`` whenever no op is taken; with the fetch register, whenever ``op_busy`` is
        low, and host reads must wait for that).
    op_busy : In(1)
        With ``"ebr"`` and the fetch register (the ECP5 pipelines): high from a cycle before the
        op source's first op to the transfer of its last (the sequencer's ``busy``, a
        register). The weight memories' read address is ``op.addr`` while it is high, else
        ``read_addr`` (and the word's layer ``op.layer``, else ``read_layer``): chosen by a
        register, not by the transfer (the sequencer's decision in front of every block RAM's
        address pins was a 12.3 ns path at 64 lanes on the ULX3S).
        Ignored otherwise.
    read_data : Out(data.ArrayLayout(signed(max(weight_bits)), P))
        The word at ``read_addr``, :meth:`read_latency` cycles after ``read_start``.
    host_free : Out(1)
        A host read or write may start: the weight store is not busy with the datapath.
    lr_offset : In(range(len(lr_decay) + 1))
        The learning-rate offset added to every ``lr_shift`` (``docs/numerics.md`` §12).
    step_start : In(1)
        A training step begins (restarts the stochastic-rounding draws' group order).
    draws_ready : Out(1)
        Stochastic rounding: the next update group's draws are ready (always 1 otherwise).
    """

    def __init__(self, config, lanes, lane_latency=None, updater_stages=None, bank_shift=None, weight_store=None,
                 multiplier=None):
        # A refused configuration is not an unused design.
        if lane_latency is not None and lane_latency not in LANE_LATENCIES:
            self._MustUse__silence = True
            raise ValueError(f"lane_latency must be one of {sorted(LANE_LATENCIES)} or None, got {lane_latency!r}")
        if updater_stages not in (None, 1, 2, 3):
            self._MustUse__silence = True
            raise ValueError(f"updater_stages must be 1, 2, 3 or None, got {updater_stages!r}")
        if weight_store not in (None, *WEIGHT_STORES):
            self._MustUse__silence = True
            raise ValueError(f"weight_store must be one of {WEIGHT_STORES} or None, got {weight_store!r}")
        if multiplier not in (None, *MULTIPLIERS):
            self._MustUse__silence = True
            raise ValueError(f"multiplier must be one of {MULTIPLIERS} or None, got {multiplier!r}")
        if multiplier == "mult18x18d" and (lane_latency not in (None, 3, 4) or config.mult_bits > MULT18X18D_BITS):
            self._MustUse__silence = True
            raise ValueError("multiplier='mult18x18d' needs lane latency 3 or 4 (operand and product "
                             f"registers) and mult_bits <= {MULT18X18D_BITS}, got lane_latency={lane_latency}, "
                             f"mult_bits={config.mult_bits}")
        self.multiplier = multiplier
        self.config = config
        self.geometry = geo = LayerGeometry(config, lanes)
        self.lanes = lanes
        self.weight_store = weight_store
        self.beats = -(-lanes * SPRAM_LANE_BITS // SPRAM_WIDTH)
        self.spram_depth = sum(geo.words) * self.beats
        self.lane_latency = lane_latency
        self.updater_stages = updater_stages
        self.bank_shift = bank_shift
        self.word_shape = signed(max(config.weight_bits))
        self.word_layout = data.ArrayLayout(self.word_shape, lanes)
        self.value_shape = signed(max(config.act_bits + 1, config.logit_bits))
        self.output_layout = data.StructLayout({
            "layer": geo.layer_shape,
            "index": range(geo.max_fan_out),
            "value": self.value_shape,
            "fprime": 1,
        })
        super().__init__({
            "op": In(stream.Signature(op_layout(geo))),
            "x": In(signed(config.mult_bits)),
            "delta": In(data.ArrayLayout(signed(config.delta_bits), lanes)),
            "bank_ready": Out(1),
            "o": Out(stream.Signature(self.output_layout)),
            "busy_lanes": Out(range(lanes + 1)),
            "idle": Out(1),
            "checksum_start": In(1),
            "checksum": Out(32),
            "write": In(stream.Signature(data.StructLayout({
                "layer": geo.layer_shape,
                "addr": unsigned(geo.addr_bits),
                "mask": unsigned(lanes),
                "weights": self.word_layout,
            }))),
            "write_fill": In(self.word_shape),
            "read_start": In(1),
            "op_busy": In(1),
            "read_layer": In(geo.layer_shape),
            "read_addr": In(unsigned(geo.addr_bits)),
            "read_data": Out(self.word_layout),
            "host_free": Out(1),
            "lr_offset": In(range(len(config.lr_decay) + 1)),
            "step_start": In(1),
            "draws_ready": Out(1),
        })

    def resolved_weight_store(self, platform):
        """The weight store built on ``platform``: ``weight_store``, or the platform's default."""
        return self.weight_store or default_weight_store(platform)

    def resolved_updater_stages(self, platform):
        """The updater's stages on ``platform``: ``updater_stages``, or 2 with SPRAM weights of two
        beats or more (the lanes are cleared before every update op then, see ``elaborate``), or
        the platform's default (:func:`default_updater_stages`)."""
        if self.updater_stages:
            return self.updater_stages
        if self.resolved_weight_store(platform) == "spram" and self.beats >= 2:
            return 2
        return default_updater_stages(platform, self.lanes)

    def resolved_port_reg(self, platform):
        """Whether the SPRAM store's port is registered on ``platform``: with two beats or more,
        where the updater leaves time for it (``SPRAMSchedule``: ``updater_stages <= 2B - 2``)."""
        if self.resolved_weight_store(platform) != "spram" or self.beats < 2:
            return False
        return self.resolved_updater_stages(platform) <= 2 * self.beats - 2

    def resolved_lane_latency(self, platform):
        """The lanes' latency on ``platform``: ``lane_latency``, or the platform's default."""
        return self.lane_latency if self.lane_latency is not None else default_lane_latency(platform)

    def resolved_multiplier(self, platform):
        """The lanes' multiplier on ``platform``: ``multiplier``, or the platform's default."""
        if self.multiplier is not None:
            return self.multiplier
        _, input_regs, product_reg = LANE_LATENCIES[self.resolved_lane_latency(platform)]
        return default_multiplier(platform, input_regs and product_reg and self.config.mult_bits <= MULT18X18D_BITS)

    def group_copies(self, platform):
        """Whether each group of :data:`CONTROL_GROUP_LANES` lanes has copies of its own of the
        controls on ``platform`` (with the fetch register, and weights in EBR): the caller's δ
        memory follows (:class:`~rtl.engine.Engine`)."""
        return (LANE_LATENCIES[self.resolved_lane_latency(platform)][0]
                and self.resolved_weight_store(platform) != "spram")

    def read_latency(self, platform):
        """Cycles from ``read_start`` to ``read_data`` on ``platform``."""
        if self.resolved_weight_store(platform) == "spram":
            return self.beats + self.resolved_port_reg(platform)
        # With the fetch register a host read is taken from it, a cycle after the memories.
        return 1 + LANE_LATENCIES[self.resolved_lane_latency(platform)][0]

    def elaborate(self, platform):
        config, geo, P = self.config, self.geometry, self.lanes
        L = geo.n_layers
        # The op as it travels down the stages, with its word-0 test done once at issue (the
        # word index itself is not needed after S0).
        op_shape = data.StructLayout({**{name: field.shape for name, field in op_layout(geo)}, "first": 1})
        latency = self.resolved_lane_latency(platform)
        fetch_reg, input_regs, product_reg = LANE_LATENCIES[latency]
        spram = self.resolved_weight_store(platform) == "spram"
        B = self.beats
        updater_stages = self.resolved_updater_stages(platform)
        bank_shift = bool(self.bank_shift)
        if spram:
            if latency not in (1, 2):
                raise ValueError(f"LayerEngine: SPRAM weights need lane latency 1 or 2, got {latency}")
            if self.word_shape.width > SPRAM_LANE_BITS:
                raise ValueError(f"LayerEngine: SPRAM weights are at most {SPRAM_LANE_BITS} bits, "
                                 f"got {self.word_shape.width}")
            if self.spram_depth > SPRAM_DEPTH:
                raise ValueError(f"LayerEngine: {sum(geo.words)} words of {B} beats need {self.spram_depth} "
                                 f"SPRAM addresses, more than {SPRAM_DEPTH}")
            if bank_shift:
                raise ValueError("LayerEngine: bank_shift needs a result bank; SPRAM weights read the lanes instead")
            port_reg = self.resolved_port_reg(platform)
            schedule = SPRAMSchedule(B, updater_stages, port_reg, latency)
        # Lane groups (CONTROL_GROUP_LANES each) with copies of their controls of their own.
        n_groups = -(-P // CONTROL_GROUP_LANES)
        m = Module()

        op = self.op.payload
        issue = self.op.valid & self.op.ready

        if not spram:
            # -- weight memories: one 1R1W block RAM per layer ----------------------------------
            reads, writes = [], []
            for k in range(L):
                # `no_rw_check`: a read and a write of the same word in one cycle never meet where
                # the word read is used (an update writes a word some cycles after reading it, in
                # address order; forward passes and host reads never overlap a write of their
                # layer), so the flow lets the block RAM return anything then instead of Yosys's
                # read-first emulation (P x weight_bits flip-flops and multiplexers per layer;
                # boards/flow.py).
                mem = memory.Memory(shape=data.ArrayLayout(signed(config.weight_bits[k]), P),
                                    depth=geo.words[k], init=[], attrs={"no_rw_check": 1})
                m.submodules[f"weights{k}"] = mem
                reads.append(mem.read_port())
                writes.append(mem.write_port(granularity=1))
            m.d.comb += self.op.ready.eq(1)

            # S0: the datapath's address, or the host's when nothing is issued.
            # The layer selects every lane's bits of the word: with the fetch register, a copy
            # per group of lanes (`keep`), or one flip-flop drove P x weight_bits multiplexers
            # (1024 at 64 lanes). With it the layer and the address are chosen by the
            # sequencer's `busy` (a register; host reads come only while it is low), not by its
            # issue decision (5 LUT levels).
            word_layers = [Signal(geo.layer_shape, name=f"word_layer{j}", attrs={"keep": 1})
                           for j in range(n_groups)] if fetch_reg else [Signal(geo.layer_shape, name="word_layer")]
            address_select = self.op_busy if fetch_reg else issue
            m.d.sync += [c.eq(Mux(address_select, op.layer, self.read_layer)) for c in word_layers]
            for k in range(L):
                m.d.comb += reads[k].addr.eq(Mux(address_select, op.addr, self.read_addr))

            # S1: the word that was read, lanes sign-extended to the widest layer.
            word = Signal(self.word_layout)
            for p in range(P):
                with m.Switch(word_layers[p // CONTROL_GROUP_LANES if fetch_reg else 0]):
                    for k in range(L):
                        with m.Case(k):
                            m.d.comb += word[p].eq(reads[k].data[p])
            x, delta = self.x, self.delta
        else:
            word, x, delta = self._spram_reads(m, platform, issue)

        s1 = Signal(op_shape)
        s1_valid = Signal()
        m.d.sync += [s1[name].eq(op[name]) for name, _ in op_layout(geo)]
        m.d.sync += [s1.first.eq(op.word == 0), s1_valid.eq(issue)]
        extra_busy = []
        pre_s1, pre_s1_valid = None, None
        if spram:
            # S1 is B cycles after S0 (B + 1 with the port registered): the op waits for its
            # last beat.
            for i in range(B - 1 + port_reg):
                pre_s1, pre_s1_valid = s1, s1_valid
                later, later_valid = Signal(op_shape, name=f"beat_op{i}"), Signal(name=f"beat_valid{i}")
                m.d.sync += [later.eq(s1), later_valid.eq(s1_valid)]
                extra_busy.append(s1_valid)
                s1, s1_valid = later, later_valid

        # The lanes that hold real neurons, counted at S1.
        real = Signal(range(P + 1))
        with m.Switch(s1.layer):
            for k in range(L):
                with m.Case(k):
                    m.d.comb += real.eq(Mux(s1.group == geo.groups[k] - 1, geo.last_real[k], P))
        m.d.comb += self.busy_lanes.eq(Mux(s1_valid, real, 0))

        # -- fetch register (lane_latency 4): S1's inputs once more before the operand muxes --------
        f_op, f_valid, f_word, f_x, f_delta = s1, s1_valid, word, x, delta
        fetch_valids = []
        if fetch_reg:
            f_op = Signal(op_shape, name="fetch_op")
            f_valid = Signal(name="fetch_valid")
            # Flat signals viewed as arrays (see lane_word below: YosysHQ/yosys#4349).
            f_word = data.View(self.word_layout, Signal(self.word_layout.size, name="fetch_word"))
            f_x = Signal.like(self.x, name="fetch_x")
            delta_layout = self.delta.shape()
            f_delta = data.View(delta_layout, Signal(delta_layout.size, name="fetch_delta"))
            m.d.sync += [f_op.eq(s1), f_valid.eq(s1_valid), f_word.eq(word), f_x.eq(x),
                         f_delta.eq(delta)]
            fetch_valids.append(f_valid)
        # The host's reads: with the fetch register from it (a register loaded every cycle: the
        # block RAMs' 5.8 ns clock-to-output and the way across the die to the bridge were one
        # 10.7 ns path at 64 lanes), else straight from the memories.
        m.d.comb += self.read_data.eq(f_word)
        forward = f_valid & (f_op.kind == OpKind.FORWARD)
        update = f_valid & (f_op.kind == OpKind.UPDATE)
        first = f_op.first

        def bias_one_of(layer):
            # Per-layer constant at the lanes' inputs: the bias alignment.
            value = Signal(signed(config.mult_bits))
            with m.Switch(layer):
                for k in range(L):
                    with m.Case(k):
                        m.d.comb += value.eq(1 << config.bias_shift(k))
            return value
        bias_one = bias_one_of(f_op.layer)

        # The lanes' controls, per group of CONTROL_GROUP_LANES lanes. With the fetch register,
        # each group has its own registered copy (`keep`: Yosys would merge them): one flip-flop
        # selecting 64 lanes' operands drove over 1000 loads across the ULX3S.
        def group_controls(j):
            if not fetch_reg:
                return forward, update, first, f_op.layer, bias_one
            own = {"keep": 1}
            g_forward = Signal(name=f"fetch_forward{j}", attrs=own)
            g_update = Signal(name=f"fetch_update{j}", attrs=own)
            g_first = Signal(name=f"fetch_first{j}", attrs=own)
            g_layer = Signal(geo.layer_shape, name=f"fetch_layer{j}", attrs=own)
            m.d.sync += [g_forward.eq(s1_valid & (s1.kind == OpKind.FORWARD)),
                         g_update.eq(s1_valid & (s1.kind == OpKind.UPDATE)),
                         g_first.eq(s1.word == 0), g_layer.eq(s1.layer)]
            return g_forward, g_update, g_first, g_layer, bias_one_of(g_layer)
        controls = [group_controls(j) for j in range(n_groups)]

        # -- lanes ------------------------------------------------------------------------------------
        # With SPRAM (two beats or more) the cycle before S1 is free: a forward group's lanes are
        # cleared then and the biases multiplied in by 2**bias_shift at S1, like an update's
        # bias word, instead of loaded shifted: no per-layer shift multiplexer per lane. When
        # the updater is done with an update op's products by the next op's clear (d0 < B),
        # the lanes are cleared before every update op too, and the accumulator is the product:
        # no acc_prev registers and subtractors.
        bias_by_multiply = spram and B >= 2
        clear_updates = bias_by_multiply and schedule.updater_delay < B
        # With the lanes cleared before every update op and nearest rounding, the update op's
        # clear loads the rounding constant 2**(s + o - 1) instead of 0: the accumulator ends as
        # the rounded product's numerator, and the updater has no rounding adder.
        # (The constant fits the product's bits plus one: 2**(s + o - 1) <= 2**(product_bits - 1).)
        rounded_products = (clear_updates and config.rounding != "stochastic"
                            and max(config.lr_shift) + len(config.lr_decay) <= config.update_product_bits)
        # And where 2**D x still fits the multiplier (D = len(lr_decay)), an update op's x is
        # x * 2**(D - o), registered the cycle before S1: rnd(δ x, s + o) = rnd(δ x 2**(D-o), s + D)
        # exactly, so the updater shifts by a constant per layer and has no offset shifter
        # (OuterProductUpdater's offset_in_products), and the lanes' x comes from a register.
        offset_in_operand = rounded_products and offset_fits_operand(config)
        decays = len(config.lr_decay)
        clear_value = Const(0, signed(config.acc_bits))
        if bias_by_multiply:
            clear = pre_s1_valid & (pre_s1.kind == OpKind.FORWARD) & pre_s1.first
            if clear_updates:
                clear = clear | (pre_s1_valid & (pre_s1.kind == OpKind.UPDATE))
            if rounded_products:
                clear_value = Signal(signed(config.acc_bits), name="clear_value")
                with m.If(pre_s1.kind == OpKind.UPDATE):
                    with m.Switch(pre_s1.layer):
                        for k, shift in enumerate(config.lr_shift):
                            with m.Case(k):
                                if offset_in_operand:
                                    m.d.comb += clear_value.eq(1 << (shift + decays - 1))
                                    continue
                                with m.Switch(self.lr_offset):
                                    for extra in range(decays + 1):
                                        with m.Case(extra):
                                            m.d.comb += clear_value.eq((1 << (shift + extra)) >> 1)
            if offset_in_operand:
                # x is there from the cycle before S1 (the caller holds it from the cycle after
                # the op is taken, and S1 is B >= 2 cycles on).
                scaled_x = Signal.like(f_x, name="scaled_x")
                amount = Signal(range(decays + 1), name="x_scale")
                m.d.comb += amount.eq(Mux(pre_s1.kind == OpKind.UPDATE, decays - self.lr_offset, 0))
                m.d.sync += scaled_x.eq(Mux(pre_s1.first, bias_one_of(pre_s1.layer), f_x) << amount)
        multiplier = self.resolved_multiplier(platform)
        if multiplier == "mult18x18d" and not (input_regs and product_reg):
            raise ValueError(f"LayerEngine: multiplier='mult18x18d' needs lane latency 3 or 4, not {latency}")
        lanes = []
        for p in range(P):
            lane = MACLane.from_config(config, input_regs, product_reg, own_registers=fabric_arithmetic(platform),
                                       multiplier=multiplier)
            m.submodules[f"lane{p}"] = lane
            lanes.append(lane)
            g_forward, g_update, g_first, g_layer, g_bias_one = controls[p // CONTROL_GROUP_LANES]
            if bias_by_multiply:
                m.d.comb += [
                    lane.a.eq(Mux(g_update, f_delta[p], f_word[p])),
                    lane.b.eq(scaled_x if offset_in_operand else Mux(g_first, g_bias_one, f_x)),
                    lane.load.eq(clear),
                    lane.load_value.eq(clear_value),
                    lane.en.eq(g_forward | g_update),
                ]
                continue
            load_value = Signal(signed(config.acc_bits))
            with m.Switch(g_layer):
                for k in range(L):
                    with m.Case(k):
                        m.d.comb += load_value.eq(f_word[p] << config.bias_shift(k))
            m.d.comb += [
                lane.a.eq(Mux(g_update, f_delta[p], f_word[p])),
                lane.b.eq(Mux(g_update & g_first, g_bias_one, f_x)),
                lane.load.eq(g_forward & g_first),
                lane.load_value.eq(load_value),
                lane.en.eq((g_forward & ~g_first) | g_update),
            ]

        # -- lane stages: the op and its word travel beside the lanes' registers ------------------
        late, late_valid, late_word = f_op, f_valid, f_word
        lane_valids = list(fetch_valids)
        n_stages = lanes[0].latency - 1
        # The last stage's valid enables the old word and the products per lane: per group a
        # copy of its own (one flip-flop enabled 2638 bits at 64 lanes).
        group_valids = None
        for i in range(n_stages):
            stage = Signal(op_shape, name=f"lane_op{i}")
            stage_valid = Signal(name=f"lane_valid{i}")
            # Flat: a View's per-lane wires ("lane_word0[3]") can collide with ABC9's per-bit
            # names in Yosys (YosysHQ/yosys#4349: "Assert `count_id(wire->name) == 0'").
            stage_word = Signal(self.word_layout.size, name=f"lane_word{i}")
            m.d.sync += [stage.eq(late), stage_valid.eq(late_valid), stage_word.eq(late_word)]
            if i == n_stages - 1 and len(controls) > 1:
                group_valids = [Signal(name=f"lane_valid{i}_{j}", attrs={"keep": 1}) for j in range(len(controls))]
                m.d.sync += [valid.eq(late_valid) for valid in group_valids]
            late, late_valid, late_word = stage, stage_valid, stage_word
            lane_valids.append(stage_valid)
        if group_valids is None:
            group_valids = [late_valid] * len(controls)
        lane_valid = [group_valids[p // CONTROL_GROUP_LANES] for p in range(P)]

        # -- S2: capture sums / form the update products ------------------------------------------
        s2 = Signal(op_shape)
        s2_valid = Signal()
        if spram:
            # The earlier beats stay in their registers until the next op's arrive, after the
            # updater has read them (SPRAMSchedule): only the last beat needs a copy, taken at
            # S1 (with the lanes' operand registers the port has moved on by the last stage).
            last_beat = Signal(SPRAM_WIDTH)
            with m.If(s1_valid):
                m.d.sync += last_beat.eq(self._store.read_data)
            old = self._lanes_of(m, Cat(*self._kept_beats, last_beat), "old")
        else:
            # Flat, viewed as lanes (YosysHQ/yosys#4349, see the lane stages).
            old = data.View(self.word_layout, Signal(self.word_layout.size, name="old_word"))
            late_bits, width = Value.cast(late_word), self.word_shape.width
            for p in range(P):
                with m.If(lane_valid[p]):
                    m.d.sync += old[p].eq(late_bits[p * width:(p + 1) * width])
        # Only the low update_product_bits of the increments matter: every δ x fits them, and
        # (acc - acc_prev) mod 2**bits needs only the low bits of both.
        product_bits = config.update_product_bits
        m.d.sync += s2_valid.eq(late_valid)
        # Taken with the op's multiply and held until the next one: the SPRAM updater reads the
        # op, its old word and its products for B cycles.
        with m.If(late_valid):
            m.d.sync += s2.eq(late)
        if rounded_products:
            # p + 2**(s + o - 1): one bit more than the product (p 2**(D - o) + 2**(s + D - 1): D
            # bits more again, with the offset in the operand).
            products = [lane.acc[:product_bits + offset_in_operand * decays + 1] for lane in lanes]
        elif clear_updates:
            products = [lane.acc[:product_bits] for lane in lanes]
        else:
            acc_prev = [Signal(signed(product_bits), name=f"acc_prev{p}") for p in range(P)]
            for p, (prev, lane) in enumerate(zip(acc_prev, lanes)):
                with m.If(lane_valid[p]):
                    m.d.sync += prev.eq(lane.acc[:product_bits])
            # Exact modulo 2**product_bits, and |δ x| < 2**(product_bits-1) (update_product_bits).
            products = [(lane.acc[:product_bits] - prev)[:product_bits] for lane, prev in zip(lanes, acc_prev)]

        # The updater takes the whole word at S2, or with SPRAM one beat of Q lanes a cycle.
        Q = min(P, SPRAM_WIDTH // SPRAM_LANE_BITS) if spram else P
        updater_addr_bits = (ceil_log2(self.spram_depth) or 1) if spram else geo.addr_bits
        # With the fetch register, per group of lanes copies of S2's layer (taken like s2) and of
        # the updater's output valid (see OuterProductUpdater's group_copies).
        group_copies = fetch_reg and not spram
        m.submodules.updater = updater = OuterProductUpdater.from_config(config, Q, updater_addr_bits,
                                                                         updater_stages, group_copies,
                                                                         rounded_products=rounded_products,
                                                                         offset_in_products=offset_in_operand)
        if not offset_in_operand:
            m.d.comb += updater.lr_offset.eq(self.lr_offset)
        m.d.comb += updater.i.payload.layer.eq(s2.layer)
        if group_copies:
            s2_layers = [Signal(geo.layer_shape, name=f"s2_layer{j}", attrs={"keep": 1})
                         for j in range(updater.copies)]
            with m.If(late_valid):
                m.d.sync += [c.eq(late.layer) for c in s2_layers]
            m.d.comb += [updater.group_layer[j].eq(c) for j, c in enumerate(s2_layers)]
            # And of the learning-rate offset, a cycle behind it: it changes only between steps
            # (the host's CONFIGURE, while the engine is idle), so at every update they agree.
            s2_offsets = [Signal.like(self.lr_offset, name=f"s2_offset{j}", attrs={"keep": 1})
                          for j in range(updater.copies)]
            m.d.sync += [c.eq(self.lr_offset) for c in s2_offsets]
            m.d.comb += [updater.group_offset[j].eq(c) for j, c in enumerate(s2_offsets)]
        s2_update = s2_valid & (s2.kind == OpKind.UPDATE)
        if config.rounding == "stochastic":
            from .rounding_draws import RoundingDraws
            m.submodules.draws = draws = RoundingDraws(geo)
            group_first = (op.kind == OpKind.UPDATE) & (op.word == 0)
            m.d.comb += [
                draws.start.eq(self.step_start),
                draws.lr_offset.eq(self.lr_offset),
                draws.claim.eq(issue & group_first),
                draws.take.eq(s2_update & s2.first),
                self.draws_ready.eq(draws.ready),
            ]
            # A group's first word takes its draws at this very edge: pass them straight through.
            word_draws = Signal.like(draws.current, name="word_draws")
            m.d.comb += word_draws.eq(Mux(draws.take, draws.next, draws.current))
        else:
            m.d.comb += self.draws_ready.eq(1)
            word_draws = None
        updater_busy = [updater.busy]
        if not spram:
            m.d.comb += [
                updater.i.valid.eq(s2_update),
                updater.i.payload.addr.eq(s2.addr),
                updater.i.payload.weights.eq(old),
            ]
            m.d.comb += [updater.i.payload.products[p].eq(products[p]) for p in range(P)]
            if word_draws is not None:
                m.d.comb += updater.draws.eq(word_draws)
        else:
            # Beat j enters d0 + j cycles after S2 (SPRAMSchedule).
            chain = [s2_update]
            for d in range(schedule.updater_delay + B - 1):
                later = Signal(name=f"update_beat{d}")
                m.d.sync += later.eq(chain[-1])
                chain.append(later)
                updater_busy.append(later)
            # The op's store word, kept from its read (read_word changes with the next op's
            # issue: for an update op, 2B cycles on, after its S1 even with the port registered):
            # no copy of the op's address down the stages.
            s2_word = Signal.like(self._read_word, name="s2_word")
            with m.If(late_valid):
                m.d.sync += s2_word.eq(self._read_word)
            beats = chain[schedule.updater_delay:schedule.updater_delay + B]
            m.d.comb += updater.i.valid.eq(Cat(*beats).any())
            # Beat 0 is the default, not a case: the beats' data multiplexers are steered by the
            # later beats' registers alone, not by S2's update decode (a LUT level before the
            # updater's first stage on the UP5K).
            def take_beat(j):
                m.d.comb += updater.i.payload.addr.eq(s2_word * B + j)
                for q in range(Q):
                    p = j * Q + q
                    # Past the last lane, zeros (the checksum folds the whole beat).
                    m.d.comb += [updater.i.payload.weights[q].eq(old[p] if p < P else 0),
                                 updater.i.payload.products[q].eq(products[p] if p < P else 0)]
                    if word_draws is not None:
                        m.d.comb += updater.draws[q].eq(word_draws[p] if p < P else 0)

            take_beat(0)
            for j in range(1, B):
                with m.If(beats[j]):
                    take_beat(j)

        # -- S3: write back, checksum -----------------------------------------------------------
        new = updater.o.payload
        if not spram:
            m.d.comb += [self.write.ready.eq(~updater.o.valid), self.host_free.eq(~updater.o.valid)]
            # The data multiplexers follow the updater's per-group copies of its valid, if any.
            data_valid = [updater.group_valid[p // updater.COPY_LANES] if group_copies else updater.o.valid
                          for p in range(P)]
            for k in range(L):
                with m.If(updater.o.valid):
                    m.d.comb += [
                        writes[k].addr.eq(new.addr),
                        writes[k].en.eq(Mux(new.layer == k, (1 << P) - 1, 0)),
                    ]
                with m.Else():
                    m.d.comb += [
                        writes[k].addr.eq(self.write.payload.addr),
                        writes[k].en.eq(Mux(self.write.valid & (self.write.payload.layer == k),
                                            self.write.payload.mask, 0)),
                    ]
                m.d.comb += [writes[k].data[p].eq(Mux(data_valid[p], new.weights[p],
                                                      self.write.payload.weights[p] | self.write_fill))
                             for p in range(P)]
        else:
            store_busy, store_gate = self._spram_writes(m, platform, schedule, issue, updater, updater_busy)
            extra_busy.append(store_busy)

        cb = geo.checksum_lane_bits
        chunk = CHECKSUM_CHUNK_BITS
        # SPRAM: an update word comes every 2B cycles, so the CRC takes its fold a byte (B = 1:
        # two bytes) a cycle, a quarter of the XOR trees of a 32-bit input.
        crc_width = chunk if not spram else (16 if B == 1 else 8)
        m.submodules.crc = checksum = crc.catalog.CRC32_ISO_HDLC(data_width=crc_width).create()
        extended = [Signal(signed(cb), name=f"crc_lane{q}") for q in range(Q)]
        m.d.comb += [e.eq(new.weights[q]) for q, e in enumerate(extended)]
        flat = Cat(*extended)
        if len(flat) % chunk:
            flat = Cat(flat, Const(0, -len(flat) % chunk))
        n_chunks = len(flat) // chunk

        def fold(first):
            # fold_word's XOR of rotated chunks, chunk j of the beat being chunk first + j of the word.
            folded = Const(0, chunk)
            for j in range(n_chunks):
                folded = folded ^ flat[j * chunk:(j + 1) * chunk].rotate_left((first + j) % chunk)
            return folded

        m.d.comb += [checksum.start.eq(self.checksum_start), self.checksum.eq(checksum.crc)]
        if not spram:
            # The fold is registered before the CRC: the XOR trees of both were one 10 ns path on
            # the 25F. The CRC takes the last fold in the cycle `idle` rises, so `checksum` is
            # complete from the next cycle on, when the engine's result (DONE) reads it.
            fold_reg = Signal(chunk)
            fold_valid = Signal()
            if fetch_reg and n_chunks > FOLD_GROUP_CHUNKS:
                # With the deep (ECP5) pipelines, partial folds of FOLD_GROUP_CHUNKS chunks are
                # registered first: a 32-input XOR across the die per bit was a 12 ns path at 64
                # lanes. They fold a copy of the word, registered beside them: the updater's
                # output sits by the block RAMs it writes, and its route to the fold trees was
                # 11.7-13.3 ns. `idle` waits for both, so the CRC still takes the last fold as
                # it rises.
                word_copy = Signal(len(flat), name="fold_word")
                copy_valid = Signal(name="fold_word_valid")
                m.d.sync += [word_copy.eq(flat), copy_valid.eq(updater.o.valid)]
                partials = []
                for g in range(0, n_chunks, FOLD_GROUP_CHUNKS):
                    part = Const(0, chunk)
                    for j in range(g, min(g + FOLD_GROUP_CHUNKS, n_chunks)):
                        part = part ^ word_copy[j * chunk:(j + 1) * chunk].rotate_left(j % chunk)
                    partial = Signal(chunk, name=f"fold_part{g // FOLD_GROUP_CHUNKS}")
                    m.d.sync += partial.eq(part)
                    partials.append(partial)
                partial_valid = Signal(name="fold_part_valid")
                m.d.sync += [partial_valid.eq(copy_valid), fold_valid.eq(partial_valid)]
                extra_busy.append(copy_valid)
                folded = Const(0, chunk)
                for partial in partials:
                    folded = folded ^ partial
                m.d.sync += fold_reg.eq(folded)
                extra_busy.append(partial_valid)
            else:
                m.d.sync += [fold_reg.eq(fold(0)), fold_valid.eq(updater.o.valid)]
            m.d.comb += [checksum.valid.eq(fold_valid), checksum.data.eq(fold_reg)]
        else:
            if B > 1 and (Q * cb) % chunk:
                raise ValueError(f"LayerEngine: a beat of {Q} lanes of {cb} bits is no whole number of "
                                 f"{chunk}-bit checksum chunks")
            # A word's fold is the XOR of its beats' folds: the earlier beats' is kept, the last
            # beat's completes it.
            out_beat = Signal(range(B))
            partial = Signal(chunk)
            beat_fold = Signal(chunk)
            with m.Switch(out_beat):
                for j in range(B):
                    with m.Case(j):
                        m.d.comb += beat_fold.eq(fold(j * n_chunks))
            word_fold = Mux(out_beat == 0, 0, partial) ^ beat_fold
            with m.If(updater.o.valid):
                m.d.sync += [out_beat.eq(out_beat + 1), partial.eq(word_fold)]
                with m.If(out_beat == B - 1):
                    m.d.sync += out_beat.eq(0)
            # The fold goes to the CRC from a shift register (zlib's byte order: the low bits
            # first), from the cycle after the word's last beat: the fold's XORs and the CRC's
            # were one 7-level path from the updater's output on the UP5K. A word's last piece
            # goes in the cycle the next word's fold is loaded (2B cycles apart at the closest).
            pieces = chunk // crc_width
            assert pieces <= 2 * B
            rest = Signal(chunk)
            rest_left = Signal(range(pieces + 1))
            complete = updater.o.valid & (out_beat == B - 1)
            with m.If(rest_left != 0):
                m.d.comb += [checksum.valid.eq(1), checksum.data.eq(rest[:crc_width])]
                m.d.sync += [rest.eq(rest[crc_width:]), rest_left.eq(rest_left - 1)]
            with m.If(complete):
                m.d.sync += [rest.eq(word_fold), rest_left.eq(pieces)]
            extra_busy.append(rest_left != 0)

        # -- result bank -> requantisers -> o -------------------------------------------------------
        # With SPRAM the sums are read out of the lanes themselves (no copy: on the UP5K a
        # register costs a logic cell), and no op is taken until they have all left: the
        # lanes idle some 2P + 5 cycles a forward group (a sum every other cycle), in a
        # schedule with a free slot in two.
        bankless = spram
        if bankless:
            bank = data.View(data.ArrayLayout(signed(config.acc_bits), P), Cat(*(lane.acc for lane in lanes)))
        else:
            bank_layout = data.ArrayLayout(signed(config.acc_bits), P)
            bank = data.View(bank_layout, Signal(bank_layout.size, name="bank"))
        bank_valid = Signal()
        bank_layer = Signal(geo.layer_shape)
        bank_group = Signal(range(geo.max_groups))
        bank_last = Signal(range(P))
        reserved = Signal()
        m.d.comb += self.bank_ready.eq(~reserved)
        capture = s2_valid & (s2.kind == OpKind.FORWARD) & s2.last
        # The neuron the requantisers see, bank[serial], from a register: the P-way multiplexer
        # sits in front of it (indexed by the next neuron) instead of the requantisers' adders.
        head = Signal(signed(config.acc_bits))
        if not bankless:
            # With the fetch register each group of lanes captures by a copy of its own of
            # `capture`, taken from the stage before S2 (one net enabled 1200 flip-flops).
            if fetch_reg:
                captures = [Signal(name=f"capture{j}", attrs={"keep": 1}) for j in range(n_groups)]
                m.d.sync += [c.eq(late_valid & (late.kind == OpKind.FORWARD) & late.last) for c in captures]
            else:
                captures = [capture]
            for p in range(P):
                with m.If(captures[p // CONTROL_GROUP_LANES if fetch_reg else 0]):
                    m.d.sync += bank[p].eq(lanes[p].acc)
        # Two levels (see HEAD_GROUP_LANES): group head g holds bank[G g + upcoming % G] and its
        # select the lane after that, so that at a send the head takes group head
        # upcoming // G while every group head takes its next lane.
        G = HEAD_GROUP_LANES
        two_level_head = fetch_reg and not bankless and not bank_shift and P > G
        if two_level_head:
            assert G & (G - 1) == 0
            group_heads = [Signal(signed(config.acc_bits), name=f"group_head{g}") for g in range(-(-P // G))]
            group_selects = [Signal(range(G), name=f"group_head_select{g}", attrs={"keep": 1})
                             for g in range(len(group_heads))]
            for g, (group_head, group_select) in enumerate(zip(group_heads, group_selects)):
                # After a capture the next neuron is 1 (the head takes neuron 0 from lane 0).
                with m.If(captures[min(G * g + 1, P - 1) // CONTROL_GROUP_LANES]):
                    m.d.sync += group_select.eq(2 % G)
                    if G * g + 1 < P:
                        m.d.sync += group_head.eq(lanes[G * g + 1].acc)
        with m.If(capture):
            m.d.sync += [
                head.eq(lanes[0].acc),
                bank_valid.eq(1),
                bank_layer.eq(s2.layer),
                bank_group.eq(s2.group),
            ]
            with m.Switch(s2.layer):
                for k in range(L):
                    with m.Case(k):
                        m.d.sync += bank_last.eq(Mux(s2.group == geo.groups[k] - 1,
                                                     geo.last_real[k] - 1, P - 1))

        serial = Signal(range(P))
        # With the fetch register the requantisers have two stages (their compares registered
        # apart from the clamp: 11.4 ns at 64 lanes), and a neuron's index travels through them
        # as their tag; with one stage, an output leaves before the next neuron is sent, and the
        # index is a register set at the send.
        out_layer = Signal(geo.layer_shape)
        out_index = Signal(range(geo.max_fan_out))
        tag_bits = len(out_index) if fetch_reg else 0
        requantisers = []
        for k in range(L):
            # With SPRAM (no result bank: the sums are read out of the lanes) a neuron every other
            # cycle, so that the consumers' readiness is not in front of the bank head's enable,
            # and the clamp compares beside the rounding adder (on the UP5K they followed it:
            # 27.2 ns, the system's second-worst group, in 44 logic cells more).
            req = Requantiser.from_config(config, k, parallel_clamp=fetch_reg or spram,
                                          stages=2 if fetch_reg else 1,
                                          tag_bits=tag_bits, every_other=spram and not fetch_reg)
            m.submodules[f"requantiser{k}"] = req
            requantisers.append(req)
        index = Signal(range(geo.max_groups * P))
        m.d.comb += index.eq(bank_group * P + serial)
        # The bank's send. With the fetch register the head reaches the requantisers through a
        # register slice, so that the send is two registers ANDed (`bank_valid`, the slice's
        # ready), not the requantisers' readiness; and each group of the flip-flops it enables
        # (a slice of the head, a group head) has copies of its own of both (`keep`): one
        # decision enabled 288 flip-flops across the die (10.3 ns at 64 lanes on the ULX3S).
        feed_layout = data.StructLayout({"layer": geo.layer_shape, "index": range(geo.max_fan_out),
                                         "value": signed(config.acc_bits)})
        slice_bits = -(-config.acc_bits // HEAD_SLICES)
        head_slices = list(range(0, config.acc_bits, slice_bits)) if fetch_reg and not bank_shift else []
        sent = Signal()
        sends = []
        send_busy = Const(0)
        if fetch_reg:
            n_sends = len(head_slices) + (len(group_heads) if two_level_head else 0)
            m.submodules.send_slice = send_slice = SkidBuffer(feed_layout, ready_copies=n_sends)
            m.d.comb += [
                send_slice.i.valid.eq(bank_valid),
                send_slice.i.payload.layer.eq(bank_layer),
                send_slice.i.payload.index.eq(index),
                send_slice.i.payload.value.eq(bank[0] if bank_shift else head),
                sent.eq(bank_valid & send_slice.i.ready),
            ]
            valid_copies = [Signal(name=f"bank_valid{j}", attrs={"keep": 1}) for j in range(n_sends)]
            sends = [Signal(name=f"send{j}") for j in range(n_sends)]
            m.d.comb += [send.eq(valid & send_slice.ready_copies[j])
                         for j, (send, valid) in enumerate(zip(sends, valid_copies))]
            with m.If(capture):
                m.d.sync += [valid.eq(1) for valid in valid_copies]
            for send, valid in zip(sends, valid_copies):
                with m.If(send & (serial == bank_last)):
                    m.d.sync += valid.eq(0)
            feed = send_slice.o
            send_busy = send_slice.busy
        else:
            feed = stream.Signature(feed_layout).create(path=("bank_head",))
            m.d.comb += [
                feed.valid.eq(bank_valid),
                feed.payload.layer.eq(bank_layer),
                feed.payload.index.eq(index),
                feed.payload.value.eq(bank[0] if bank_shift else head),
                sent.eq(feed.valid & feed.ready),
            ]
        # The requantisers' output: `o`, or with the fetch register through a register slice
        # (a cycle later), so that their ready is a register, not the consumers' ready (the
        # engine's state and the units' readiness: a 12.3 ns path into the group heads at 64
        # lanes), and what the consumers see is a register too.
        out = stream.Signature(self.output_layout).create(path=("requantised",))
        for k, req in enumerate(requantisers):
            # One layer's output at a time keeps o in neuron order across a layer change.
            others = [r.busy for j, r in enumerate(requantisers) if j != k]
            clear = ~Cat(*others).any() if others else Const(1)
            to_this = (feed.payload.layer == k) & clear
            m.d.comb += [
                req.i.valid.eq(feed.valid & to_this),
                req.i.payload.eq(feed.payload.value),
            ]
            with m.If(to_this):
                m.d.comb += feed.ready.eq(req.i.ready)
            if tag_bits:
                m.d.comb += req.i_tag.eq(feed.payload.index)
            with m.If(req.i.valid & req.i.ready):
                m.d.sync += out_layer.eq(k)
                if not tag_bits:
                    m.d.sync += out_index.eq(feed.payload.index)
            m.d.comb += req.o.ready.eq(out.ready)
            with m.If(req.o.valid):
                m.d.comb += [
                    out.valid.eq(1),
                    out.payload.value.eq(req.o.payload.value),
                ]
                if k < L - 1:
                    m.d.comb += out.payload.fprime.eq(req.o.payload.fprime)
                if tag_bits:
                    m.d.comb += out.payload.index.eq(req.o_tag)
        m.d.comb += out.payload.layer.eq(out_layer)
        if not tag_bits:
            m.d.comb += out.payload.index.eq(out_index)
        output_busy = Const(0)
        if fetch_reg:
            m.submodules.output_slice = output_slice = SkidBuffer(self.output_layout)
            wiring.connect(m, out, output_slice.i)
            wiring.connect(m, output_slice.o, wiring.flipped(self.o))
            output_busy = output_slice.busy
        else:
            wiring.connect(m, out, wiring.flipped(self.o))
        if fetch_reg:
            # The next neuron's index from registers of its own, one per HEAD_SLICES slice of the
            # head (`keep`): serial + 1 drove the selects of the 32-bit P-way multiplexer, 550
            # loads at 64 lanes. Each counts like serial + 1 (1 after a group's last).
            for j, low in enumerate(head_slices):
                upcoming = Signal(range(P + 1), name=f"serial_next{j}", init=1, attrs={"keep": 1})
                with m.If(sends[j]):
                    m.d.sync += upcoming.eq(Mux(serial == bank_last, 1, upcoming + 1))
                    if two_level_head:
                        source = select(m, [h[low:low + slice_bits] for h in group_heads],
                                        upcoming >> (G.bit_length() - 1), name=f"head_source{j}")
                    else:
                        source = bank[upcoming][low:low + slice_bits]
                    m.d.sync += head[low:low + slice_bits].eq(source)
            if two_level_head:
                for g, (group_head, group_select) in enumerate(zip(group_heads, group_selects)):
                    with m.If(sends[len(head_slices) + g]):
                        lanes_of_group = [bank[p] for p in range(G * g, min(G * (g + 1), P))]
                        m.d.sync += [group_head.eq(select(m, lanes_of_group, group_select,
                                                          name=f"group_head_next{g}")),
                                     group_select.eq(group_select + 1)]
        with m.If(sent):
            m.d.sync += serial.eq(serial + 1)
            if bank_shift:
                # The next neuron moves to lane 0 (a capture never meets a send: the bank is
                # reserved until its last neuron has left).
                m.d.sync += bank.eq(bank.as_value()[config.acc_bits:])
            elif not fetch_reg:
                m.d.sync += head.eq(bank[serial + 1])
            with m.If(serial == bank_last):
                m.d.sync += [serial.eq(0), bank_valid.eq(0), reserved.eq(0)]
        # Taken when a group's last word is issued; the sequencer waits for bank_ready first.
        with m.If(issue & (op.kind == OpKind.FORWARD) & op.last):
            m.d.sync += reserved.eq(1)
        if spram:
            m.d.comb += self.op.ready.eq(store_gate & ~reserved)

        m.d.comb += self.idle.eq(~s1_valid & ~Cat(*lane_valids).any() & ~s2_valid
                                 & ~Cat(*updater_busy, *extra_busy).any()
                                 & ~bank_valid & ~reserved & ~Cat(*(r.busy for r in requantisers)).any()
                                 & ~send_busy & ~output_busy)
        return m

    # -- the single-port (SPRAM) weight store --------------------------------------------------------
    def _word_addr(self, m, layer, addr, name):
        """The store's word address of word ``addr`` of ``layer``: the layers one after another."""
        geo = self.geometry
        word = Signal(range(sum(geo.words)), name=f"{name}_word")
        with m.Switch(layer):
            for k in range(geo.n_layers):
                with m.Case(k):
                    m.d.comb += word.eq(addr + sum(geo.words[:k]))
        return word

    def _spram_reads(self, m, platform, issue):
        """The store and its read side: an op's (or a host read's) word in ``B`` beats, the
        earlier beats kept (until the next read's arrive) beside the last."""
        B, op = self.beats, self.op.payload
        port_reg = self.resolved_port_reg(platform)
        m.submodules.store = store = SinglePortRAM(self.spram_depth, registered=port_reg)
        self._store = store
        # One address adder for the ops and the host's reads (never together: the host's only
        # between steps), chosen by the host read's start, not by the issue decision (a long
        # path of its own: the sequencer's comparisons). The writes have one of their own, into
        # a register (see _spram_writes).
        sel_layer = Mux(self.read_start, self.read_layer, op.layer)
        sel_addr = Mux(self.read_start, self.read_addr, op.addr)
        start_word = self._word_addr(m, sel_layer, sel_addr, "start")

        self._read_pending = pending = Signal()   # beats 1 .. B-1 of a read are due
        self._read_word = read_word = Signal.like(start_word, name="read_word")
        read_beat = Signal(range(B), name="read_beat")
        self._read_addr = read_addr = Signal(range(self.spram_depth), name="spram_read_addr")
        arriving = Signal(range(B), name="arriving_beat")
        arrival = Signal()   # a beat arrives on read_data
        m.d.sync += arrival.eq(pending | issue | self.read_start)
        # Only reads that are wanted: read_data (a host read's last beat) then stays put.
        m.d.comb += store.read_en.eq(pending | issue | self.read_start)
        with m.If(pending):
            m.d.comb += read_addr.eq(read_word * B + read_beat)
            m.d.sync += [read_beat.eq(read_beat + 1), arriving.eq(read_beat)]
            with m.If(read_beat == B - 1):
                m.d.sync += pending.eq(0)
        with m.Else():
            m.d.comb += read_addr.eq(start_word * B)
            m.d.sync += arriving.eq(0)
            with m.If(issue | self.read_start):
                m.d.sync += read_word.eq(start_word)
                if B > 1:
                    m.d.sync += [read_beat.eq(1), pending.eq(1)]
        if port_reg:
            # The beats arrive a cycle later.
            arrival_q, arriving_q = Signal(name="arrival_q"), Signal.like(arriving, name="arriving_q")
            m.d.sync += [arrival_q.eq(arrival), arriving_q.eq(arriving)]
            arrival, arriving = arrival_q, arriving_q
        beats = []
        for j in range(B - 1):
            kept = Signal(SPRAM_WIDTH, name=f"beat{j}")
            with m.If(arrival & (arriving == j)):
                m.d.sync += kept.eq(store.read_data)
            beats.append(kept)
        self._kept_beats = beats
        word = self._lanes_of(m, Cat(*beats, store.read_data), "word")
        # x and delta are held by the caller until S1 (see the Members): no copies here.
        return word, self.x, self.delta

    def _lanes_of(self, m, raw, name):
        """The word of ``P`` lanes in ``raw`` beats (lane ``p`` in bits ``16p`` up)."""
        word = Signal(self.word_layout, name=name)
        m.d.comb += [word[p].eq(raw[p * SPRAM_LANE_BITS:][:self.word_shape.width]) for p in range(self.lanes)]
        return word

    def _spram_writes(self, m, platform, schedule, issue, updater, updater_busy):
        """The store's port: the updater's beats, else a host write's beat, else the read.
        Returns two signals: the store has work in flight, and :class:`~rtl.spram_schedule.SPRAMSchedule` lets an
        op be taken."""
        B, config, store = self.beats, self.config, self._store
        # history[i]: an update op was taken i + 1 cycles ago.
        history = Signal(schedule.history)
        taken_update = issue & (self.op.payload.kind == OpKind.UPDATE)
        m.d.sync += history.eq(Cat(taken_update, history[:-1]))
        # `blocked` (an update op was taken d cycles ago, d in blocked_after_update) is a
        # register, set from the history's next value: exact, and the OR of its taps is not in
        # front of op.ready and so of the sequencer's transfer (its counters and busy, 21-22.6 ns
        # on the UP5K).
        blocked = Signal()
        m.d.sync += blocked.eq(Cat(*(taken_update if d == 1 else history[d - 2]
                                     for d in schedule.blocked_after_update)).any())

        host_beat = Signal(range(B))
        # Nothing in flight, from a register a cycle behind: the host's and the initialiser's
        # writes (and the host's reads) come only while the engine is idle, when nothing new can
        # start, so a cycle-old "quiet" still holds; the port's multiplexers and enables then
        # do not wait for the history and the updater (8 LUT levels into the store's address
        # and write data on the UP5K).
        quiet = Signal()
        m.d.sync += quiet.eq(~self._read_pending & ~history.any() & ~Cat(*updater_busy).any() & ~self.op.valid)
        m.d.comb += self.host_free.eq(quiet & (host_beat == 0))
        gate = ~self._read_pending & ~blocked & (host_beat == 0)

        host = self.write.payload
        host_data = Signal(B * SPRAM_WIDTH)
        host_mask = Signal(B * (SPRAM_WIDTH // SPRAM_LANE_BITS))
        for p in range(self.lanes):
            value = host.weights[p] | self.write_fill
            if len(set(config.weight_bits)) > 1:
                # The layer's own width, as its EBR would keep it.
                value = Signal(self.word_shape, name=f"host_lane{p}")
                with m.Switch(host.layer):
                    for k, bits in enumerate(config.weight_bits):
                        with m.Case(k):
                            m.d.comb += value.eq((host.weights[p] | self.write_fill)[:bits].as_signed())
            m.d.comb += [host_data[p * SPRAM_LANE_BITS:(p + 1) * SPRAM_LANE_BITS].eq(value),
                         host_mask[p].eq(host.mask[p])]
        lanes_per_beat = SPRAM_WIDTH // SPRAM_LANE_BITS
        updated = [Signal(signed(SPRAM_LANE_BITS), name=f"updated{q}") for q in range(len(updater.o.payload.weights))]
        m.d.comb += [u.eq(w) for u, w in zip(updated, updater.o.payload.weights)]
        # The data is the updater's beat or the host's whatever the cycle does (without a write
        # enable it is not used): only the updater's valid, a register, selects it, not the
        # host write's conditions (8 LUT levels into the store's write data on the UP5K).
        host_beat_data = host_data.word_select(host_beat, SPRAM_WIDTH)
        m.d.comb += store.write_data.eq(Mux(updater.o.valid, Cat(*updated), host_beat_data))
        # A write's word address is a register, loaded in every cycle from the write's payload,
        # so its first beat waits for a cycle of the payload offered (`write_held`): the
        # initialiser's busy chose the address adder's operands, 8 levels into the store's
        # address on the UP5K. A word then takes B + 1 cycles.
        write_word = Signal(range(sum(self.geometry.words)), name="write_word")
        m.d.sync += write_word.eq(self._word_addr(m, self.write.payload.layer, self.write.payload.addr, "write"))
        write_held = Signal()
        m.d.sync += write_held.eq(self.write.valid & ~self.write.ready)
        first_beat_ok = (quiet & write_held) | (host_beat != 0)
        # Ready at the write's last beat whether or not a write is offered (a write once offered
        # stays until taken): a ready behind the valid put the host's write decision, through
        # the initialiser's ready, into the initialiser's enables (27 ns on the UP5K). Nor does
        # it wait for the updater, whose valid drives the store's write data (a net of about 100
        # loads in front of those enables, 22.5 ns): the updater writes only within a step, the
        # host and the initialiser only between steps (asserted in simulation).
        m.d.comb += self.write.ready.eq((host_beat == B - 1) & first_beat_ok)
        if platform is None:
            m.d.sync += Assert(~(updater.o.valid & self.write.valid & first_beat_ok),
                               "LayerEngine: a host or initialiser write met the updater's")
        with m.If(updater.o.valid):
            m.d.comb += [
                store.addr.eq(updater.o.payload.addr),
                store.write_en.eq(-1),
            ]
        with m.Elif(self.write.valid & first_beat_ok):
            m.d.comb += [
                store.addr.eq(write_word * B + host_beat),
                store.write_en.eq(host_mask.word_select(host_beat, lanes_per_beat)),
            ]
            m.d.sync += host_beat.eq(host_beat + 1)
            with m.If(host_beat == B - 1):
                m.d.sync += host_beat.eq(0)
        with m.Else():
            m.d.comb += store.addr.eq(self._read_addr)
        return history.any() | self._read_pending | (host_beat != 0), gate

