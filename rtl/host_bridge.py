"""Executes host protocol commands on the engine's streams, checking every field first."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .engine import Command, Region, Status
from .frame_decoder import frame_layout
from .frame_counters import FrameCounters
from .frame_encoder import payload_layout, response_layout
from .host_protocol import BASIS_IDS, COUNTERS, RULE_IDS, ConfigField, Geometry, Opcode, StatusCode
from .layer_engine import fabric_arithmetic
from .layer_geometry import LayerGeometry

__all__ = ["HostBridge", "SHIFT_SLICE_BITS"]

#: With registered enables, each slice of this many bits of the bridge's shift register has its own
#: flip-flop copies of the load and shift enables (:class:`HostBridge`).
SHIFT_SLICE_BITS = 64

# A response payload after its header is a list of fields, each from an engine STATUS address (or
# the bridge's own frame counters, one 12-byte field): TRAIN/INFER send the first one or two,
# READ_COUNTERS the rest.
_RESULT_FIELDS = (("prediction", 1), ("checksum", 4))
_FIELD_SOURCES = {
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

    Built for a small FPGA: the frame stays in the decoder (``frame`` is taken with the response
    header), and one shift register holds, in turn, the first five payload bytes (the command's
    parameters), a weight word being assembled from the payload buffer, and a word or counter
    being sent byte by byte. A weight write therefore reads its words twice: a checking pass, then
    (the parameters fetched again) a writing pass. The result of a step is read back through the
    engine's ``STATUS`` registers, like the counters.

    Parameters
    ----------
    engine : Engine
        The engine this bridge drives (its stream shapes, configuration and lanes).
    max_payload : int, optional
        The decoder's payload buffer (default :func:`~rtl.host_protocol.max_payload`).
    registered_enables : bool, optional
        The shift register's load and shift take effect a cycle after they are decided, from
        flip-flop copies of the decisions, one per :data:`SHIFT_SLICE_BITS` bits (``keep``), and
        the states that read the register wait a cycle for it (a response is taken the cycle
        after it is seen). On the 64-lane ULX3S the register is 1024 bits across the die, and
        its enable, decoded from the state and the encoder's ``ready``, was the worst path
        (12.9 ns, 4.2 of it the fan-out). ``None``: on ECP5
        (:func:`~rtl.layer_engine.fabric_arithmetic`); the iCE40 keeps one enable.

    Members
    -------
    frame : In(stream.Signature(frame_layout()))
        The next received frame; taken when its response header is, so its fields (and the payload
        buffer) stay put while the command executes.
    read_addr : Out(range(max_payload + len(buffer_tail)))
    read_data : In(8)
        The decoder's payload buffer, and the identity record after it (``buffer_tail``; two
        cycles' latency: the address, then the block RAM, then its output register).
    header : Out(stream.Signature(response_layout()))
    payload : Out(stream.Signature(payload_layout()))
        The response, to the encoder (``last`` marks the payload's last byte).
    pixels, cmd, access : Out(stream.Signature)
    result, response : In(stream.Signature)
    engine_ready : In(1)
        The engine's ``ready``.
    dropped : In(1)
        The decoder dropped a partial frame (counted).
    drop_ready : Out(1)
        A drop can be counted now (the decoder waits for it).
    busy : Out(1)
        A command is executing (from its frame to its response's last byte).
    rejected : Out(1)
        Pulses when a frame is answered with an error.
    """

    def __init__(self, engine, max_payload=None, *, registered_enables=None):
        config, lanes = engine.config, engine.lanes
        self.registered_enables = registered_enables
        self.config = config
        self.lanes = lanes
        self.geometry = LayerGeometry(config, lanes)
        self.identity = Geometry.from_config(config, lanes)
        self.max_payload = max_payload or self.identity.max_payload
        self.identity.max_payload = self.max_payload
        if config.input_bits > 8:
            raise ValueError(f"HostBridge: pixels of {config.input_bits} bits; the protocol carries one "
                             "byte per pixel (input_bits <= 8)")
        if len(config.lr_decay) > 255 or config.n_modes > 256:
            raise ValueError("HostBridge: CONFIGURE passes its (checked) value to the engine as one byte")
        if self.max_payload < 1 + config.layers[0] or self.max_payload < 5 + self.identity.word_bytes:
            raise ValueError(f"HostBridge: a payload buffer of {self.max_payload} bytes cannot hold a sample "
                             f"of {config.layers[0]} pixels and its label, or one weight word")
        self.access_bits = engine.access_bits
        self.addr_bits = engine.addr_bits
        #: The longest response payload (the encoder's length register).
        self.max_response = max(self.max_payload, len(self.identity.to_bytes()), sum(n for _, n in COUNTERS))
        #: The identity record goes into the decoder's block RAM after the payload buffer (see
        #: :class:`~rtl.frame_decoder.FrameDecoder`'s ``tail``) when a block holds both: a buffer of
        #: up to 256 bytes (a 512-byte iCE40 block, a 2 KiB ECP5 one). Otherwise: a ROM of logic.
        identity = self.identity.to_bytes()
        self.buffer_tail = identity if self.max_payload <= 256 and len(identity) <= 256 else b""
        super().__init__({
            "frame": In(stream.Signature(frame_layout())),
            "read_addr": Out(range(self.max_payload + len(self.buffer_tail))),
            "read_data": In(8),
            "header": Out(stream.Signature(response_layout())),
            "payload": Out(stream.Signature(payload_layout())),
            "pixels": Out(stream.Signature(engine.pixels.payload.shape())),
            "cmd": Out(stream.Signature(engine.cmd.payload.shape())),
            "result": In(stream.Signature(engine.result.payload.shape())),
            "access": Out(stream.Signature(engine.access.payload.shape())),
            "response": In(stream.Signature(engine.response.payload.shape())),
            "engine_ready": In(1),
            "dropped": In(1),
            "drop_ready": Out(1),
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
        frame = self.frame.payload
        # An intact frame's length is within the buffer (the decoder refuses longer ones at once).
        code, length = frame.code, frame.length[:self.max_payload.bit_length()]

        # Registers without a reset are set before they are used: without one, a load of zero can
        # take an iCE40 flip-flop's synchronous reset instead of logic.

        # -- the shift register: parameters, a word in, a word or counter out ---------------------
        # Bytes enter at the top (from the payload buffer, or zeros) and leave at the bottom.
        sr_bits = max(8 * word_bytes, 64)
        sr = Signal(sr_bits, reset_less=True)
        word = sr[sr_bits - 8 * word_bytes:]        # the word assembled from the payload buffer
        p_layer = sr[-40:-32]                       # after FETCH: the payload's first five bytes
        p_addr = sr[-32:-16]
        p_count = sr[-16:]
        p_field = p_layer
        p_value = sr[-32:]
        zero_fill = Signal(reset_less=True)                        # shift zeros in, not buffer bytes
        status_region = Signal(reset_less=True)                    # engine accesses go to STATUS, not WEIGHTS
        byte_in = Mux(zero_fill, 0, self.read_data)
        shift = Signal()
        load = Signal()                             # the engine's response
        registered = self.registered_enables
        if registered is None:
            registered = fabric_arithmetic(platform)
        if registered:
            # Each slice loads or shifts by flip-flop copies of the decisions made the cycle
            # before (with the byte that came in then): the FSM's decode drives 2 x 16 flip-flops,
            # not the enables of 1024.
            byte_q = Signal(8, reset_less=True)
            m.d.sync += byte_q.eq(byte_in)
            shifted = Cat(sr[8:], byte_q)
            for j, low in enumerate(range(0, sr_bits, SHIFT_SLICE_BITS)):
                part = slice(low, min(low + SHIFT_SLICE_BITS, sr_bits))
                load_q = Signal(name=f"sr_load{j}", attrs={"keep": 1})
                shift_q = Signal(name=f"sr_shift{j}", attrs={"keep": 1})
                m.d.sync += [load_q.eq(load), shift_q.eq(shift)]
                with m.If(load_q):
                    m.d.sync += sr[part].eq(self.response.payload[part])
                with m.Elif(shift_q):
                    m.d.sync += sr[part].eq(shifted[part])
        else:
            # One assignment with one priority, so that it maps onto flip-flop enables and a 2:1 mux.
            with m.If(load):
                m.d.sync += sr.eq(self.response.payload)
            with m.Elif(shift):
                m.d.sync += sr.eq(Cat(sr[8:], byte_in))
        byte_left = Signal(range(max(word_bytes, 12) + 1), reset_less=True)

        # p_count * word_bytes, registered in the COUNT state: a multiplier (a MULT18X18D on
        # ECP5 when word_bytes is no power of 2) in front of DISPATCH's compare and state logic
        # was a 12 ns path on the 24-lane OrangeCrab.
        count_bytes = Signal(range(((1 << 16) - 1) * word_bytes + 1))

        # -- the response ----------------------------------------------------------------------------
        reply_status = Signal(range(max(StatusCode) + 1), reset_less=True)
        reply_length = Signal(range(self.max_response + 1))
        counters_length = sum(size for _, size in COUNTERS)
        with m.Switch(code):                        # the frame is held until its header is taken
            for op, n in ((Opcode.IDENTIFY, len(identity)), (Opcode.READ_WEIGHTS, count_bytes),
                          (Opcode.TRAIN, 5), (Opcode.INFER, 1), (Opcode.READ_COUNTERS, counters_length)):
                with m.Case(op):
                    m.d.comb += reply_length.eq(Mux(reply_status == StatusCode.OK, n, 0))
        m.d.comb += [self.header.payload.status.eq(reply_status), self.header.payload.tag.eq(frame.tag),
                     self.header.payload.length.eq(reply_length), self.payload.payload.data.eq(sr[:8])]
        header_fire = Signal()
        m.d.comb += header_fire.eq(self.header.valid & self.header.ready)
        m.d.comb += self.frame.ready.eq(header_fire)

        # -- protocol counters -----------------------------------------------------------------------
        # A ring of bytes (FrameCounters): a header waits while its counter cannot take it (a few
        # cycles, never in practice: responses are a frame apart), and so does the decoder's drop.
        m.submodules.frame_counters = counters = FrameCounters()
        ok = reply_status == StatusCode.OK
        header_ready = Signal()
        m.d.comb += [
            header_ready.eq(Mux(ok, counters.inc_ready[0], counters.inc_ready[1])),
            counters.inc.eq(Cat(header_fire & ok, header_fire & ~ok, self.dropped)),
            self.drop_ready.eq(counters.inc_ready[2]),
            self.rejected.eq(header_fire & ~ok),
        ]

        # -- where a command is ----------------------------------------------------------------------
        tail = len(self.buffer_tail)
        ptr = Signal(range(self.max_payload + max(tail, 1)), reset_less=True)   # the payload (or identity) byte being read
        m.d.comb += self.read_addr.eq(ptr)
        index = Signal(range(max(len(identity), M0) + 1), reset_less=True)       # identity bytes, pixels
        words_left = Signal(range(ident.words_per_frame + 1), reset_less=True)
        # The word (or STATUS) address: as wide as the largest layer's words (a walk starts only
        # once its range is checked; a wider p_addr is refused).
        waddr = Signal(range(max(max(geo.words), max(Status) + 1)), reset_less=True)
        layer = Signal(geo.layer_shape, reset_less=True)
        committing = Signal(reset_less=True)               # second pass: the checks passed
        training = Signal(reset_less=True)
        assert COUNTERS[-3:] == (("frames_ok", 4), ("frames_rejected", 4), ("frames_dropped", 4))
        fields = _RESULT_FIELDS + COUNTERS[:-3] + (("frames", 12),)
        field = Signal(range(len(fields)), reset_less=True)
        last_field = Signal(range(len(fields)), reset_less=True)

        # -- per-layer constants ---------------------------------------------------------------------
        words = Signal(range(max(geo.words) + 1))              # of the requested layer (p_layer)
        with m.Switch(p_layer[:len(layer)]):
            for k in range(L):
                with m.Case(k):
                    m.d.comb += words.eq(geo.words[k])
        in_last_group = Signal()
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    m.d.comb += in_last_group.eq(waddr >= (geo.groups[k] - 1) * (geo.fan_in[k] + 1))

        # A weight word's lanes fit the layer's weight_bits; padding lanes and spare bits are zero.
        # (With registered enables, each lane's check and the spare bits' separately.)
        checked = Signal(P + (P * word_bits < 8 * word_bytes)) if registered else Signal(name="word_ok")
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
                        checks.append(Mux(in_last_group, lane == 0, fits) if padding else fits)
                    spare = word[P * word_bits:]
                    if len(spare):
                        checks.append(spare == 0)
                    m.d.comb += checked.eq(Cat(*checks) if registered else Cat(*checks).all())
        # Registered every cycle, read in WRITE_CHECK (after WRITE_WORD, the word unchanged): the
        # 384-bit check in front of the FSM's decision was a 10.5 ns path on the 24-lane 25F.
        # With registered enables, each lane's check is registered first, then their AND (the
        # 1024-bit check was 11.2 ns on the 64-lane ULX3S), and WRITE_CHECK waits a cycle more.
        word_ok_reg = Signal()
        if registered:
            lanes_ok_reg = Signal.like(checked, name="lanes_ok_reg")
            m.d.sync += [lanes_ok_reg.eq(checked), word_ok_reg.eq(lanes_ok_reg.all())]
        else:
            m.d.sync += word_ok_reg.eq(checked)

        sample_bytes = M0
        lr_offsets = len(config.lr_decay)
        n_modes = config.n_modes

        if not tail:
            m.submodules.identity = rom = Memory(shape=8, depth=len(identity), init=list(identity))
            rom_read = rom.read_port(domain="comb")
            m.d.comb += rom_read.addr.eq(index)

        access = self.access.payload
        label = Signal(range(C), reset_less=True)
        m.d.comb += [self.cmd.payload.label.eq(label), self.pixels.payload.eq(sr[-8:]),
                     access.addr.eq(waddr), access.layer.eq(layer), access.data.eq(word),
                     access.region.eq(Mux(status_region, Region.STATUS, Region.WEIGHTS))]
        # The engine's request valid (and its direction) comes from registers set on the way
        # into the waiting states, not from the state decode: behind it is the engine's host
        # access logic (an 11-LUT path on the UP5K).
        access_valid = Signal()
        access_write = Signal(reset_less=True)
        m.d.comb += [self.access.valid.eq(access_valid), access.write.eq(access_write)]

        def request(write):
            m.d.sync += [access_valid.eq(1), access_write.eq(write)]
            m.next = "WRITE_WAIT" if write else "REQUEST"

        def reply(value):
            m.d.sync += reply_status.eq(value)
            m.next = "SEND_HEADER"

        # The weight commands' length and range checks, registered every cycle: their operands
        # are stable from COUNT on, and CHECK always follows DISPATCH (two adders and compares
        # less in front of CHECK's decision).
        write_length_bad = Signal(reset_less=True)
        words_out_of_range = Signal(reset_less=True)
        # addr + count > words, over the bits that matter once count <= words_per_frame.
        span_bits = max(max(geo.words), ident.words_per_frame).bit_length()
        span = Signal(span_bits + 1)
        m.d.comb += span.eq(p_addr[:span_bits] + p_count[:span_bits])
        m.d.sync += [
            write_length_bad.eq(length != 5 + count_bytes),
            words_out_of_range.eq((p_layer >= L) | (p_count == 0) | (p_count > ident.words_per_frame)
                                  | (p_addr[span_bits:] != 0) | (span > words)),
        ]

        if registered:
            # FETCH's shifts from a flag set the cycle before (high only in FETCH, which runs to
            # ptr 7): the compare of ptr was 4 LUT levels in front of the decision's copies.
            fetch_shift = Signal()
            m.d.sync += fetch_shift.eq(0)
            m.d.comb += shift.eq(fetch_shift)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.sync += [ptr.eq(0), committing.eq(0), zero_fill.eq(0)]
                with m.If(self.frame.valid):
                    m.next = "FETCH"

            # The first five payload bytes, whatever the command (beyond LEN they are not used):
            # byte k arrives while ptr is k + 2 (with registered enables, it is in the register
            # two cycles later, not one: a cycle more).
            with m.State("FETCH"):
                m.d.sync += ptr.eq(ptr + 1)
                if registered:
                    m.d.sync += fetch_shift.eq((ptr >= 1) & (ptr <= 5))   # ptr + 1 in 2..6
                else:
                    m.d.comb += shift.eq(ptr >= 2)
                with m.If(ptr == (7 if registered else 6)):
                    m.next = "COUNT"

            with m.State("COUNT"):
                # Shifts and adds of the constant's set bits: a `*` took a MULT18X18D on ECP5 (the
                # 25F's 28 are for the lanes).
                m.d.sync += count_bytes.eq(sum(p_count << k for k in range(word_bytes.bit_length())
                                               if word_bytes >> k & 1))
                m.next = "DISPATCH"

            with m.State("DISPATCH"):
                with m.If(frame.status != StatusCode.OK):
                    reply(frame.status)
                with m.Elif(code == Opcode.IDENTIFY):
                    m.d.sync += [index.eq(0), ptr.eq(self.max_payload)]
                    reply(Mux(length != 0, StatusCode.BAD_LENGTH, StatusCode.OK))
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
                is_words = (code == Opcode.READ_WEIGHTS) | (code == Opcode.WRITE_WEIGHTS)
                m.d.sync += [layer.eq(p_layer), waddr.eq(p_addr), words_left.eq(p_count),
                             status_region.eq(~is_words)]
                with m.Switch(code):
                    with m.Case(Opcode.CONFIGURE):
                        # The value (at most a byte once checked) is written like a weight word
                        # (one, already checked): its first byte, then zeros, zero-extended.
                        m.d.sync += [ptr.eq(1), byte_left.eq(word_bytes), words_left.eq(1), committing.eq(1)]
                        with m.If(length != 5):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Elif(p_field == ConfigField.LR_OFFSET):
                            with m.If(p_value > lr_offsets):
                                reply(StatusCode.OUT_OF_RANGE)
                            with m.Else():
                                m.d.sync += waddr.eq(Status.LR_OFFSET)
                                m.next = "WRITE_ADDR"
                        with m.Elif(p_field == ConfigField.LLS_MODE):
                            with m.If(p_value >= n_modes):
                                reply(StatusCode.OUT_OF_RANGE)
                            with m.Else():
                                m.d.sync += waddr.eq(Status.LLS_MODE)
                                m.next = "WRITE_ADDR"
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
                        m.d.sync += [ptr.eq(5), byte_left.eq(word_bytes)]
                        with m.If(Mux(is_write, write_length_bad, length != 5)):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Elif(words_out_of_range):
                            reply(StatusCode.OUT_OF_RANGE)
                        with m.Elif(is_write):
                            m.next = "WRITE_ADDR"
                        with m.Else():
                            reply(StatusCode.OK)
                    with m.Case(Opcode.INITIALISE):
                        with m.If(length != 0):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Else():
                            m.next = "INIT_CMD"
                    with m.Case(Opcode.TRAIN, Opcode.INFER):
                        is_train = code == Opcode.TRAIN
                        m.d.sync += [training.eq(is_train), label.eq(Mux(is_train, p_layer, 0)), ptr.eq(is_train),
                                     index.eq(0), field.eq(0), last_field.eq(is_train)]
                        with m.If(length != Mux(is_train, 1 + sample_bytes, sample_bytes)):
                            reply(StatusCode.BAD_LENGTH)
                        with m.Elif(is_train & (p_layer >= C)):
                            reply(StatusCode.OUT_OF_RANGE)
                        with m.Else():
                            # Narrow pixels are range-checked in a first pass; bytes need none.
                            m.d.sync += committing.eq(config.input_bits == 8)
                            m.next = "PIXEL_ADDR"
                    with m.Case(Opcode.READ_COUNTERS):
                        m.d.sync += [field.eq(len(_RESULT_FIELDS)), last_field.eq(len(fields) - 1)]
                        reply(Mux(length != 0, StatusCode.BAD_LENGTH, StatusCode.OK))

            # -- the response header; then its payload, by command (the frame is still held) ---------
            with m.State("SEND_HEADER"):
                m.d.comb += self.header.valid.eq(header_ready)
                with m.If(header_fire):
                    with m.If(reply_status != StatusCode.OK):
                        m.next = "IDLE"
                    with m.Elif(code == Opcode.IDENTIFY):
                        m.next = "IDENTITY_ADDR" if tail else "SEND_IDENTITY"
                    with m.Elif(code == Opcode.READ_WEIGHTS):
                        request(write=False)
                    with m.Elif((code == Opcode.TRAIN) | (code == Opcode.INFER) | (code == Opcode.READ_COUNTERS)):
                        m.next = "FIELD"
                    with m.Else():
                        m.next = "IDLE"

            with m.State("SEND_IDENTITY"):
                last = index == len(identity) - 1
                m.d.comb += [self.payload.valid.eq(1), self.payload.payload.last.eq(last),
                             self.payload.payload.data.eq(self.read_data if tail else rom_read.data)]
                with m.If(self.payload.ready):
                    m.d.sync += [index.eq(index + 1), ptr.eq(ptr + 1)]
                    with m.If(last):
                        m.next = "IDLE"
                    with m.Elif(tail):
                        m.next = "IDENTITY_ADDR"
            # (The payload buffer's read: an address state and a read state before each byte.)
            with m.State("IDENTITY_ADDR"):
                m.next = "IDENTITY_READ"
            with m.State("IDENTITY_READ"):
                m.next = "SEND_IDENTITY"

            # -- READ_WEIGHTS words, and fields (TRAIN/INFER results, READ_COUNTERS) -----------------
            with m.State("FIELD"):
                with m.Switch(field):
                    for i, (name, size) in enumerate(fields):
                        with m.Case(i):
                            m.d.sync += byte_left.eq(size)
                            if name == "frames":
                                with m.If(counters.idle):
                                    m.next = "EMIT"
                            else:
                                m.d.sync += waddr.eq(_FIELD_SOURCES[name])
                                request(write=False)
            with m.State("REQUEST"):
                with m.If(self.access.ready):
                    m.d.sync += access_valid.eq(0)
                    m.next = "WAIT"
            with m.State("WAIT"):
                # (With registered enables the response is taken in TAKE, the cycle after it is
                # seen: a stream's payload stays put until then, and the load takes effect then.)
                m.d.comb += self.response.ready.eq(not registered)
                with m.If(self.response.valid):
                    m.d.comb += load.eq(1)
                    with m.If(~status_region):
                        m.d.sync += byte_left.eq(word_bytes)
                    m.next = "TAKE" if registered else "EMIT"
            if registered:
                with m.State("TAKE"):
                    m.d.comb += self.response.ready.eq(1)
                    m.next = "EMIT"
            # The frame counters' bytes: FIELD saw the counters idle, and no pass starts until the
            # twelfth byte is taken.
            frames_field = status_region & (field == len(fields) - 1)
            with m.State("EMIT"):
                item_done = byte_left == 1
                last_item = Mux(status_region, field == last_field, words_left == 1)
                m.d.comb += [self.payload.valid.eq(1), self.payload.payload.last.eq(item_done & last_item)]
                with m.If(frames_field):
                    m.d.comb += [self.payload.payload.data.eq(counters.byte), counters.hold.eq(1),
                                 counters.turn.eq(self.payload.ready)]
                with m.If(self.payload.ready):
                    m.d.comb += shift.eq(1)
                    m.d.sync += byte_left.eq(byte_left - 1)
                    with m.If(item_done):
                        m.d.sync += [field.eq(field + 1), waddr.eq(waddr + 1), words_left.eq(words_left - 1)]
                        with m.If(last_item):
                            m.next = "IDLE"
                        with m.Elif(status_region):
                            m.next = "FIELD"
                        with m.Else():
                            request(write=False)
                    if registered:
                        with m.Else():
                            m.next = "EMIT_SHIFT"
            if registered:
                with m.State("EMIT_SHIFT"):         # the shift takes effect
                    m.d.comb += counters.hold.eq(frames_field)
                    m.next = "EMIT"

            # -- WRITE_WEIGHTS: pass 0 checks every word, pass 1 writes them; CONFIGURE's value ----
            with m.State("WRITE_ADDR"):
                m.next = "WRITE_READ"
            with m.State("WRITE_READ"):
                m.next = "WRITE_DATA"
            with m.State("WRITE_DATA"):
                m.d.comb += shift.eq(1)
                m.d.sync += [ptr.eq(ptr + 1), byte_left.eq(byte_left - 1), zero_fill.eq(status_region)]
                with m.If(byte_left == 1):
                    m.next = "WRITE_WORD"
                with m.Else():
                    m.next = "WRITE_ADDR"
            with m.State("WRITE_WORD"):
                m.d.sync += byte_left.eq(word_bytes)
                with m.If(~committing):
                    m.next = "WRITE_SETTLE" if registered else "WRITE_CHECK"
                with m.Else():
                    request(write=True)
            if registered:
                with m.State("WRITE_SETTLE"):       # the last byte's shift takes effect
                    m.next = "WRITE_LANES_CHECKED"
                with m.State("WRITE_LANES_CHECKED"):  # the lanes' checks are registered
                    m.next = "WRITE_CHECK"
            with m.State("WRITE_CHECK"):
                with m.If(~word_ok_reg):
                    reply(StatusCode.OUT_OF_RANGE)
                with m.Elif(words_left == 1):
                    # Every word checked: fetch the parameters again, and write.
                    m.d.sync += [committing.eq(1), ptr.eq(0)]
                    m.next = "FETCH"
                with m.Else():
                    m.d.sync += [waddr.eq(waddr + 1), words_left.eq(words_left - 1)]
                    m.next = "WRITE_ADDR"
            with m.State("WRITE_WAIT"):
                # (The request is taken first: its response follows it.)
                with m.If(self.access.ready):
                    m.d.sync += access_valid.eq(0)
                m.d.comb += self.response.ready.eq(~access_valid)
                with m.If(self.response.valid & ~access_valid):
                    with m.If(words_left == 1):
                        reply(StatusCode.OK)
                    with m.Else():
                        m.d.sync += [waddr.eq(waddr + 1), words_left.eq(words_left - 1)]
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
                m.next = "PIXEL_READ"
            with m.State("PIXEL_READ"):
                m.next = "PIXEL_DATA"
            with m.State("PIXEL_DATA"):
                m.d.comb += shift.eq(1)
                m.d.sync += ptr.eq(ptr + 1)
                m.next = "PIXEL_SETTLE" if registered else "PIXEL"
            if registered:
                with m.State("PIXEL_SETTLE"):       # the shift takes effect
                    m.next = "PIXEL"
            with m.State("PIXEL"):
                pixel = sr[-8:]
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
                # The prediction and checksum are read back from STATUS (PREDICTION, CHECKSUM).
                m.d.comb += self.result.ready.eq(1)
                with m.If(self.result.valid):
                    reply(StatusCode.OK)

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
