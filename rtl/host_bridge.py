"""Executes host protocol commands on the engine's streams, checking every field first."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .engine import Command, Region, Status
from .frame_decoder import frame_layout
from .frame_encoder import response_layout
from .host_protocol import BASIS_IDS, COUNTERS, RULE_IDS, ConfigField, Geometry, Opcode, StatusCode
from .layer_engine import LayerGeometry

__all__ = ["HostBridge"]

# READ_COUNTERS: where each field comes from (an engine STATUS address, or the bridge's own).
_COUNTER_SOURCES = {
    "cycles": Status.CYCLES, "busy_lane_cycles": Status.BUSY, "steps": Status.STEPS,
    "checksum": Status.CHECKSUM, "prediction": Status.PREDICTION, "ready": Status.READY,
    "lr_offset": Status.LR_OFFSET, "lls_mode": Status.LLS_MODE,
}


class HostBridge(wiring.Component):
    """One command at a time: a frame from the :class:`~rtl.frame_decoder.FrameDecoder`, its
    checks, its work on the :class:`~rtl.engine.Engine`, and its response to the
    :class:`~rtl.frame_encoder.FrameEncoder` (``docs/protocol.md``).

    Every field is checked before anything is done: a refused command changes nothing. A weight
    write is checked whole (layer, address range, every lane's value against the layer's
    ``weight_bits``, padding lanes zero) before its first word is written; a sample's label and
    pixels before its first pixel enters the engine.

    Parameters
    ----------
    engine : Engine
        The engine this bridge drives (its stream shapes, configuration and lanes).
    max_payload : int, optional
        The decoder's payload buffer (default :func:`~rtl.host_protocol.max_payload`).

    Members
    -------
    frame : In(stream.Signature(frame_layout()))
        The next received frame.
    read_addr : Out(range(max_payload))
    read_data : In(8)
        The decoder's payload buffer (one cycle latency).
    header : Out(stream.Signature(response_layout()))
    payload : Out(stream.Signature(8))
        The response, to the encoder.
    pixels, cmd, access : Out(stream.Signature)
    result, response : In(stream.Signature)
    engine_ready : In(1)
        The engine's ``ready``.
    dropped : In(1)
        The decoder dropped a partial frame (counted).
    busy : Out(1)
        A command is executing (from its frame to its response header).
    rejected : Out(1)
        Pulses when a frame is answered with an error.
    """

    def __init__(self, engine, max_payload=None):
        config, lanes = engine.config, engine.lanes
        self.config = config
        self.lanes = lanes
        self.geometry = LayerGeometry(config, lanes)
        self.identity = Geometry.from_config(config, lanes)
        self.max_payload = max_payload or self.identity.max_payload
        self.identity.max_payload = self.max_payload
        if config.input_bits > 8:
            raise ValueError(f"HostBridge: pixels of {config.input_bits} bits; the protocol carries one "
                             "byte per pixel (input_bits <= 8)")
        if self.max_payload < 1 + config.layers[0] or self.max_payload < 5 + self.identity.word_bytes:
            raise ValueError(f"HostBridge: a payload buffer of {self.max_payload} bytes cannot hold a sample "
                             f"of {config.layers[0]} pixels and its label, or one weight word")
        self.access_bits = engine.access_bits
        self.addr_bits = engine.addr_bits
        super().__init__({
            "frame": In(stream.Signature(frame_layout())),
            "read_addr": Out(range(self.max_payload)),
            "read_data": In(8),
            "header": Out(stream.Signature(response_layout())),
            "payload": Out(stream.Signature(8)),
            "pixels": Out(stream.Signature(engine.pixels.payload.shape())),
            "cmd": Out(stream.Signature(engine.cmd.payload.shape())),
            "result": In(stream.Signature(engine.result.payload.shape())),
            "access": Out(stream.Signature(engine.access.payload.shape())),
            "response": In(stream.Signature(engine.response.payload.shape())),
            "engine_ready": In(1),
            "dropped": In(1),
            "busy": Out(1),
            "rejected": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config, geo, P = self.config, self.geometry, self.lanes
        L, C, M0 = geo.n_layers, config.n_classes, config.layers[0]
        ident = self.identity
        word_bytes, word_bits = ident.word_bytes, ident.word_bits
        identity = ident.to_bytes()

        # -- the frame in hand -----------------------------------------------------------------------
        code = Signal(8)
        tag = Signal(8)
        length = Signal(16)
        status = Signal(8)
        params = Signal(40)                 # the payload's first 5 bytes
        p_layer = params[:8]
        p_addr = params[8:24]
        p_count = params[24:40]
        p_field = params[:8]
        p_value = params[8:40]
        layer = Signal(geo.layer_shape)
        m.d.comb += layer.eq(p_layer)
        # p_count * word_bytes, registered in the COUNT state: a multiplier (a MULT18X18D on
        # ECP5 when word_bytes is no power of 2) in front of DISPATCH's compare and state logic
        # was a 12 ns path on the 24-lane OrangeCrab.
        count_bytes = Signal(range(((1 << 16) - 1) * word_bytes + 1))

        # -- the response ----------------------------------------------------------------------------
        reply_status = Signal(8)
        reply_length = Signal(16)
        m.d.comb += [self.header.payload.status.eq(reply_status), self.header.payload.tag.eq(tag),
                     self.header.payload.length.eq(reply_length)]
        shift_bits = max(self.access_bits, 64, 8 * word_bytes)
        shifter = Signal(shift_bits)
        emit_left = Signal(range(shift_bits // 8 + 1))
        m.d.comb += self.payload.payload.eq(shifter[:8])

        # -- protocol counters -----------------------------------------------------------------------
        frames_ok = Signal(32)
        frames_rejected = Signal(32)
        frames_dropped = Signal(32)
        with m.If(self.dropped):
            m.d.sync += frames_dropped.eq(frames_dropped + 1)
        with m.If(self.header.valid & self.header.ready):
            with m.If(reply_status == StatusCode.OK):
                m.d.sync += frames_ok.eq(frames_ok + 1)
            with m.Else():
                m.d.sync += frames_rejected.eq(frames_rejected + 1)
                m.d.comb += self.rejected.eq(1)

        # -- per-layer constants ---------------------------------------------------------------------
        words = Signal(range(max(geo.words) + 1))
        last_group_start = Signal(range(max(geo.words) + 1))
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    m.d.comb += [words.eq(geo.words[k]),
                                 last_group_start.eq((geo.groups[k] - 1) * (geo.fan_in[k] + 1))]

        # -- word assembly from the payload buffer (two cycles a byte: address, then data) ---------
        ptr = Signal(range(self.max_payload + 1))
        m.d.comb += self.read_addr.eq(ptr)
        word = Signal(8 * word_bytes)
        word_left = Signal(range(word_bytes + 1))
        index = Signal(16)                  # words (or pixels, counters) done
        committing = Signal()               # second pass: the checks passed
        word_addr = Signal(17)
        m.d.comb += word_addr.eq(p_addr + index)

        # A weight word's lanes fit the layer's weight_bits; padding lanes and spare bits are zero.
        word_ok = Signal()
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    bits = config.weight_bits[k]
                    checks = []
                    for p in range(P):
                        lane = word[p * word_bits:(p + 1) * word_bits]
                        top = lane[bits - 1:]
                        fits = (top == 0) | (top == (1 << len(top)) - 1)
                        padding = p >= geo.last_real[k]
                        checks.append(Mux(word_addr >= last_group_start, lane == 0, fits) if padding else fits)
                    spare = word[P * word_bits:]
                    if len(spare):
                        checks.append(spare == 0)
                    m.d.comb += word_ok.eq(Cat(*checks).all())
        # Registered every cycle, read in WRITE_CHECK (after WRITE_WORD, the word unchanged): the
        # 384-bit check in front of the FSM's decision was a 10.5 ns path on the 24-lane 25F.
        word_ok_reg = Signal()
        m.d.sync += word_ok_reg.eq(word_ok)

        sample_bytes = M0
        lr_offsets = len(config.lr_decay)
        n_modes = config.n_modes
        status_addr = Signal(range(max(Status) + 1))
        counter_fields = [(name, size) for name, size in COUNTERS]
        local_counters = {"frames_ok": frames_ok, "frames_rejected": frames_rejected,
                          "frames_dropped": frames_dropped}
        counters_length = sum(size for _, size in counter_fields)

        m.submodules.identity = rom = Memory(shape=8, depth=len(identity), init=list(identity))
        rom_read = rom.read_port(domain="comb")
        m.d.comb += rom_read.addr.eq(index)

        access = self.access.payload
        label = Signal(8)
        m.d.comb += [self.cmd.payload.label.eq(label), self.pixels.payload.eq(word[-8:])]
        training = Signal()

        def reply(value, payload_length=0, then="SEND_HEADER"):
            m.d.sync += [reply_status.eq(value), reply_length.eq(payload_length)]
            m.next = then

        # The weight commands' length and range checks, registered every cycle: their operands
        # are stable from COUNT on, and CHECK always follows DISPATCH (two adders and compares
        # less in front of CHECK's decision).
        write_length_bad = Signal()
        words_out_of_range = Signal()
        span = Signal(17)
        m.d.comb += span.eq(p_addr + p_count)
        m.d.sync += [
            write_length_bad.eq(length != 5 + count_bytes),
            words_out_of_range.eq((p_layer >= L) | (p_count == 0) | (span > words)
                                  | (p_count > ident.words_per_frame)),
        ]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.frame.ready.eq(1)
                with m.If(self.frame.valid):
                    frame = self.frame.payload
                    m.d.sync += [code.eq(frame.code), tag.eq(frame.tag), length.eq(frame.length),
                                 status.eq(frame.status), ptr.eq(0), index.eq(0), committing.eq(0)]
                    m.next = "FETCH"

            # The first five payload bytes, whatever the command (beyond LEN they are not used).
            with m.State("FETCH"):
                m.d.sync += ptr.eq(ptr + 1)
                with m.If(ptr != 0):
                    m.d.sync += params.eq(Cat(params[8:], self.read_data))
                with m.If(ptr == 5):
                    m.next = "COUNT"

            with m.State("COUNT"):
                # Shifts and adds of the constant's set bits: a `*` took a MULT18X18D on ECP5 (the
                # 25F's 28 are for the lanes).
                m.d.sync += count_bytes.eq(sum(p_count << k for k in range(word_bytes.bit_length())
                                               if word_bytes >> k & 1))
                m.next = "DISPATCH"

            with m.State("DISPATCH"):
                with m.If(status != StatusCode.OK):
                    reply(status)
                with m.Elif(code == Opcode.IDENTIFY):
                    with m.If(length != 0):
                        reply(StatusCode.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += index.eq(0)
                        reply(StatusCode.OK, len(identity), then="SEND_IDENTITY_HEADER")
                with m.Elif((code == Opcode.CONFIGURE) | (code == Opcode.WRITE_WEIGHTS)
                            | (code == Opcode.READ_WEIGHTS) | (code == Opcode.INITIALISE)
                            | (code == Opcode.TRAIN) | (code == Opcode.INFER)
                            | (code == Opcode.READ_COUNTERS)):
                    with m.If(~self.engine_ready):
                        reply(StatusCode.BUSY)
                    with m.Else():
                        m.next = "CHECK"
                with m.Else():
                    reply(StatusCode.UNKNOWN_COMMAND)

            with m.State("CHECK"):
                # (DISPATCH, the state before, registered the weight commands' checks.)
                with m.Switch(code):
                    with m.Case(Opcode.CONFIGURE):
                        with m.If(length != 5):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Elif(p_field == ConfigField.LR_OFFSET):
                            with m.If(p_value > lr_offsets):
                                reply(StatusCode.OUT_OF_RANGE)
                            with m.Else():
                                m.d.sync += status_addr.eq(Status.LR_OFFSET)
                                m.next = "STATUS_WRITE"
                        with m.Elif(p_field == ConfigField.LLS_MODE):
                            with m.If(p_value >= n_modes):
                                reply(StatusCode.OUT_OF_RANGE)
                            with m.Else():
                                m.d.sync += status_addr.eq(Status.LLS_MODE)
                                m.next = "STATUS_WRITE"
                        with m.Elif(p_field == ConfigField.RULE):
                            reply(Mux(p_value == RULE_IDS[config.rule], StatusCode.OK, StatusCode.UNSUPPORTED))
                        with m.Elif(p_field == ConfigField.BASIS):
                            reply(Mux(p_value == BASIS_IDS[config.basis], StatusCode.OK, StatusCode.UNSUPPORTED))
                        with m.Elif(p_field == ConfigField.SEED):
                            reply(Mux(p_value == config.init_seed, StatusCode.OK, StatusCode.UNSUPPORTED))
                        with m.Else():
                            reply(StatusCode.OUT_OF_RANGE)
                    with m.Case(Opcode.READ_WEIGHTS, Opcode.WRITE_WEIGHTS):
                        is_write = code == Opcode.WRITE_WEIGHTS
                        with m.If(is_write & write_length_bad):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Elif(~is_write & (length != 5)):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Elif(words_out_of_range):
                            reply(StatusCode.OUT_OF_RANGE)
                        with m.Elif(is_write):
                            m.d.sync += [ptr.eq(5), index.eq(0), word_left.eq(word_bytes)]
                            m.next = "WRITE_ADDR"
                        with m.Else():
                            m.d.sync += index.eq(0)
                            reply(StatusCode.OK, count_bytes, then="SEND_WORDS_HEADER")
                    with m.Case(Opcode.INITIALISE):
                        with m.If(length != 0):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Else():
                            m.next = "INIT_CMD"
                    with m.Case(Opcode.TRAIN, Opcode.INFER):
                        is_train = code == Opcode.TRAIN
                        m.d.sync += [training.eq(is_train), label.eq(Mux(is_train, p_layer, 0)),
                                     ptr.eq(is_train), index.eq(0), word_left.eq(1)]
                        with m.If(length != Mux(is_train, 1 + sample_bytes, sample_bytes)):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Elif(is_train & (p_layer >= C)):
                            reply(StatusCode.OUT_OF_RANGE)
                        with m.Else():
                            # Narrow pixels are range-checked in a first pass; bytes need none.
                            m.d.sync += committing.eq(config.input_bits == 8)
                            m.next = "PIXEL_ADDR"
                    with m.Case(Opcode.READ_COUNTERS):
                        with m.If(length != 0):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Else():
                            m.d.sync += index.eq(0)
                            reply(StatusCode.OK, counters_length, then="SEND_COUNTERS_HEADER")

            # -- responses -------------------------------------------------------------------------
            with m.State("SEND_HEADER"):
                m.d.comb += self.header.valid.eq(1)
                with m.If(self.header.ready):
                    m.next = "IDLE"

            with m.State("SEND_IDENTITY_HEADER"):
                m.d.comb += self.header.valid.eq(1)
                with m.If(self.header.ready):
                    m.next = "SEND_IDENTITY"
            with m.State("SEND_IDENTITY"):
                m.d.comb += [self.payload.valid.eq(1), self.payload.payload.eq(rom_read.data)]
                with m.If(self.payload.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == len(identity) - 1):
                        m.next = "IDLE"

            # -- CONFIGURE LR_OFFSET, LLS_MODE: an engine register ---------------------------------
            with m.State("STATUS_WRITE"):
                m.d.comb += [self.access.valid.eq(1), access.region.eq(Region.STATUS),
                             access.addr.eq(status_addr), access.write.eq(1), access.data.eq(p_value)]
                with m.If(self.access.ready):
                    m.next = "STATUS_WAIT"
            with m.State("STATUS_WAIT"):
                m.d.comb += self.response.ready.eq(1)
                with m.If(self.response.valid):
                    reply(StatusCode.OK)

            # -- READ_WEIGHTS ------------------------------------------------------------------------
            with m.State("SEND_WORDS_HEADER"):
                m.d.comb += self.header.valid.eq(1)
                with m.If(self.header.ready):
                    m.next = "READ_REQUEST"
            with m.State("READ_REQUEST"):
                m.d.comb += [self.access.valid.eq(1), access.region.eq(Region.WEIGHTS),
                             access.layer.eq(layer), access.addr.eq(word_addr)]
                with m.If(self.access.ready):
                    m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                m.d.comb += self.response.ready.eq(1)
                with m.If(self.response.valid):
                    m.d.sync += [shifter.eq(self.response.payload), emit_left.eq(word_bytes)]
                    m.next = "READ_EMIT"
            with m.State("READ_EMIT"):
                m.d.comb += self.payload.valid.eq(1)
                with m.If(self.payload.ready):
                    m.d.sync += [shifter.eq(shifter >> 8), emit_left.eq(emit_left - 1)]
                    with m.If(emit_left == 1):
                        m.d.sync += index.eq(index + 1)
                        m.next = "READ_NEXT"
            with m.State("READ_NEXT"):
                with m.If(index == p_count):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "READ_REQUEST"

            # -- WRITE_WEIGHTS: pass 0 checks every word, pass 1 writes them ----------------------
            with m.State("WRITE_ADDR"):
                m.next = "WRITE_DATA"
            with m.State("WRITE_DATA"):
                m.d.sync += [word.eq(Cat(word[8:], self.read_data)), ptr.eq(ptr + 1),
                             word_left.eq(word_left - 1)]
                with m.If(word_left == 1):
                    m.next = "WRITE_WORD"
                with m.Else():
                    m.next = "WRITE_ADDR"
            with m.State("WRITE_WORD"):
                m.d.sync += word_left.eq(word_bytes)
                with m.If(~committing):
                    m.next = "WRITE_CHECK"
                with m.Else():
                    m.d.comb += [self.access.valid.eq(1), access.region.eq(Region.WEIGHTS),
                                 access.layer.eq(layer), access.addr.eq(word_addr), access.write.eq(1),
                                 access.data.eq(word)]
                    with m.If(self.access.ready):
                        m.next = "WRITE_WAIT"
            with m.State("WRITE_CHECK"):
                with m.If(~word_ok_reg):
                    reply(StatusCode.OUT_OF_RANGE)
                with m.Elif(index == p_count - 1):
                    m.d.sync += [committing.eq(1), index.eq(0), ptr.eq(5)]
                    m.next = "WRITE_ADDR"
                with m.Else():
                    m.d.sync += index.eq(index + 1)
                    m.next = "WRITE_ADDR"
            with m.State("WRITE_WAIT"):
                m.d.comb += self.response.ready.eq(1)
                with m.If(self.response.valid):
                    with m.If(index == p_count - 1):
                        reply(StatusCode.OK)
                    with m.Else():
                        m.d.sync += index.eq(index + 1)
                        m.next = "WRITE_ADDR"

            # -- INITIALISE --------------------------------------------------------------------------
            with m.State("INIT_CMD"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(Command.INIT)]
                with m.If(self.cmd.ready):
                    m.next = "INIT_START"
            with m.State("INIT_START"):
                with m.If(~self.engine_ready):
                    m.next = "INIT_WAIT"
            with m.State("INIT_WAIT"):
                with m.If(self.engine_ready):
                    reply(StatusCode.OK)

            # -- TRAIN / INFER: (check pass for narrow pixels), pixels, command, result -------------
            with m.State("PIXEL_ADDR"):
                m.next = "PIXEL_DATA"
            with m.State("PIXEL_DATA"):
                m.d.sync += [word.eq(Cat(word[8:], self.read_data)), ptr.eq(ptr + 1)]
                m.next = "PIXEL"
            with m.State("PIXEL"):
                pixel = word[-8:]
                with m.If(~committing):
                    with m.If(pixel >> config.input_bits != 0):
                        reply(StatusCode.OUT_OF_RANGE)
                    with m.Elif(index == M0 - 1):
                        m.d.sync += [committing.eq(1), index.eq(0), ptr.eq(training)]
                        m.next = "PIXEL_ADDR"
                    with m.Else():
                        m.d.sync += index.eq(index + 1)
                        m.next = "PIXEL_ADDR"
                with m.Else():
                    m.d.comb += self.pixels.valid.eq(1)
                    with m.If(self.pixels.ready):
                        m.d.sync += index.eq(index + 1)
                        with m.If(index == M0 - 1):
                            m.next = "SAMPLE_CMD"
                        with m.Else():
                            m.next = "PIXEL_ADDR"
            with m.State("SAMPLE_CMD"):
                m.d.comb += [self.cmd.valid.eq(1),
                             self.cmd.payload.op.eq(Mux(training, Command.TRAIN, Command.INFER))]
                with m.If(self.cmd.ready):
                    m.next = "SAMPLE_RESULT"
            with m.State("SAMPLE_RESULT"):
                m.d.comb += self.result.ready.eq(1)
                with m.If(self.result.valid):
                    result = self.result.payload
                    m.d.sync += [shifter.eq(Cat(result.prediction, Const(0, 8 - len(result.prediction)),
                                                result.checksum)),
                                 emit_left.eq(Mux(training, 5, 1))]
                    reply(StatusCode.OK, Mux(training, 5, 1), then="SEND_RESULT_HEADER")
            with m.State("SEND_RESULT_HEADER"):
                m.d.comb += self.header.valid.eq(1)
                with m.If(self.header.ready):
                    m.next = "RESULT_EMIT"
            with m.State("RESULT_EMIT"):
                m.d.comb += self.payload.valid.eq(1)
                with m.If(self.payload.ready):
                    m.d.sync += [shifter.eq(shifter >> 8), emit_left.eq(emit_left - 1)]
                    with m.If(emit_left == 1):
                        m.next = "IDLE"

            # -- READ_COUNTERS -------------------------------------------------------------------------
            with m.State("SEND_COUNTERS_HEADER"):
                m.d.comb += self.header.valid.eq(1)
                with m.If(self.header.ready):
                    m.next = "COUNTER"
            with m.State("COUNTER"):
                with m.Switch(index):
                    for i, (name, size) in enumerate(counter_fields):
                        with m.Case(i):
                            m.d.sync += emit_left.eq(size)
                            if name in local_counters:
                                m.d.sync += shifter.eq(local_counters[name])
                                m.next = "COUNTER_EMIT"
                            else:
                                m.d.comb += [self.access.valid.eq(1), access.region.eq(Region.STATUS),
                                             access.addr.eq(_COUNTER_SOURCES[name])]
                                with m.If(self.access.ready):
                                    m.next = "COUNTER_WAIT"
            with m.State("COUNTER_WAIT"):
                m.d.comb += self.response.ready.eq(1)
                with m.If(self.response.valid):
                    m.d.sync += shifter.eq(self.response.payload)
                    m.next = "COUNTER_EMIT"
            with m.State("COUNTER_EMIT"):
                m.d.comb += self.payload.valid.eq(1)
                with m.If(self.payload.ready):
                    m.d.sync += [shifter.eq(shifter >> 8), emit_left.eq(emit_left - 1)]
                    with m.If(emit_left == 1):
                        m.d.sync += index.eq(index + 1)
                        with m.If(index == len(counter_fields) - 1):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "COUNTER"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
