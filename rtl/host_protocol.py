"""The host protocol's single definition: framing, CRC, command and status codes, limits.

Both sides import this module: the gateware (:mod:`rtl.frame_decoder`, :mod:`rtl.frame_encoder`,
:mod:`rtl.host_bridge`) and the host tool (:mod:`boards.host`). ``docs/protocol.md`` is the
specification in prose.

A frame, in either direction::

    SYNC0 SYNC1 CODE TAG LEN_LO LEN_HI PAYLOAD[LEN] CRC_HI CRC_LO

``CODE`` is a :class:`Opcode` in a request and a :class:`StatusCode` in a response; ``TAG`` is
chosen by the host and echoed. The CRC (:data:`CRC`) covers ``CODE`` through the payload and is
sent most significant byte first, so that the receiver's CRC register ends on the algorithm's
residue exactly when the frame is intact.
"""

import enum
import struct

from amaranth.lib.crc import catalog

__all__ = [
    "PROTOCOL_VERSION", "SYNC", "HEADER_BYTES", "TRAILER_BYTES", "CRC", "CRC_PARAMETERS",
    "Opcode", "StatusCode", "ConfigField", "RULE_IDS", "BASIS_IDS", "COUNTERS",
    "frame_crc", "encode_frame", "FrameError", "FrameParser", "Geometry", "max_payload",
]

PROTOCOL_VERSION = 1
#: Two sync bytes: a frame start is rarely imitated by a single corrupted byte.
SYNC = bytes([0xA5, 0x5A])
#: SYNC0 SYNC1 CODE TAG LEN_LO LEN_HI.
HEADER_BYTES = 6
TRAILER_BYTES = 2
#: CRC-16/IBM-3740 (a.k.a. CCITT-FALSE): polynomial 0x1021, initial 0xFFFF, no reflection.
CRC = catalog.CRC16_IBM_3740
CRC_PARAMETERS = CRC(data_width=8)


class Opcode(enum.IntEnum):
    """Request codes."""
    IDENTIFY = 0x01        #: () -> identity record (:class:`Geometry`)
    CONFIGURE = 0x02       #: field u8, value u32 -> ()
    WRITE_WEIGHTS = 0x03   #: layer u8, addr u16, count u16, count words -> ()
    READ_WEIGHTS = 0x04    #: layer u8, addr u16, count u16 -> count words
    INITIALISE = 0x05      #: () -> () once the weights are re-initialised from the LFSR
    TRAIN = 0x06           #: label u8, pixels -> prediction u8, checksum u32
    INFER = 0x07           #: pixels -> prediction u8
    READ_COUNTERS = 0x08   #: () -> the :data:`COUNTERS`


class StatusCode(enum.IntEnum):
    """Response codes. A response with a code other than ``OK`` has an empty payload."""
    OK = 0x00
    BAD_CRC = 0x01           #: the frame's CRC does not match
    BAD_LENGTH = 0x02        #: LEN exceeds the buffer, or the payload is not the command's length
    UNKNOWN_COMMAND = 0x03   #: CODE is no :class:`Opcode`
    OUT_OF_RANGE = 0x04      #: a layer, address, count, label, pixel or weight value is out of range
    UNSUPPORTED = 0x05       #: a configure field/value this build cannot take
    BUSY = 0x06              #: the engine is not ready (initialising); retry


class ConfigField(enum.IntEnum):
    """Fields of ``CONFIGURE``."""
    LR_OFFSET = 0   #: the learning-rate offset register, 0 .. len(lr_decay)
    RULE = 1        #: :data:`RULE_IDS`; only the built rule is accepted until it is run-time selectable
    BASIS = 2       #: :data:`BASIS_IDS`; likewise
    SEED = 3        #: the weight-initialisation LFSR seed; only the built ``init_seed``


RULE_IDS = {"lls": 0, "lls-m": 1, "drtp": 2}
BASIS_IDS = {"square": 0, "sin": 1}

#: ``READ_COUNTERS`` response: (name, bytes), little-endian, in this order.
COUNTERS = (
    ("cycles", 8), ("busy_lane_cycles", 8), ("steps", 4), ("checksum", 4), ("prediction", 1),
    ("ready", 1), ("lr_offset", 1),
    ("frames_ok", 4), ("frames_rejected", 4), ("frames_dropped", 4),
)


def frame_crc(data):
    """The CRC of ``data`` (``CODE`` .. payload), as an int."""
    return CRC_PARAMETERS.compute(bytes(data))


def encode_frame(code, tag, payload=b""):
    """One frame (request or response) as bytes."""
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the 16-bit length field")
    body = bytes([int(code) & 0xFF, tag & 0xFF]) + struct.pack("<H", len(payload)) + payload
    return SYNC + body + struct.pack(">H", frame_crc(body))


class FrameError(Exception):
    """A received frame was malformed (bad CRC or length)."""


class FrameParser:
    """Incremental frame parser (host side): feed bytes, collect ``(code, tag, payload)`` frames.

    Bytes before a sync pattern are skipped; a frame whose CRC fails is skipped and counted in
    ``bad_frames``, and hunting resumes one byte after its sync pattern.
    """

    def __init__(self, max_payload=0xFFFF):
        self.max_payload = max_payload
        self.buffer = bytearray()
        self.bad_frames = 0
        self.skipped = 0

    def feed(self, data):
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(SYNC)
            if start < 0:
                keep = 1 if self.buffer[-1:] == SYNC[:1] else 0
                self.skipped += len(self.buffer) - keep
                del self.buffer[:len(self.buffer) - keep]
                return frames
            self.skipped += start
            del self.buffer[:start]
            if len(self.buffer) < HEADER_BYTES:
                return frames
            length = struct.unpack_from("<H", self.buffer, 4)[0]
            if length > self.max_payload:
                self.bad_frames += 1
                del self.buffer[:1]
                continue
            total = HEADER_BYTES + length + TRAILER_BYTES
            if len(self.buffer) < total:
                return frames
            body = bytes(self.buffer[2:HEADER_BYTES + length])
            (crc,) = struct.unpack_from(">H", self.buffer, HEADER_BYTES + length)
            if crc != frame_crc(body):
                self.bad_frames += 1
                del self.buffer[:1]
                continue
            frames.append((body[0], body[1], body[4:]))
            del self.buffer[:total]


def max_payload(config, lanes):
    """The largest payload a build accepts: a power of two holding a TRAIN request (>= 256)."""
    need = max(1 + config.layers[0] * pixel_bytes(config), 256)
    return 1 << (need - 1).bit_length()


def pixel_bytes(config):
    return (config.input_bits + 7) // 8


class Geometry:
    """What ``IDENTIFY`` reports, and the sizes both sides derive from it.

    Parameters
    ----------
    layers : tuple of int
    lanes : int
    word_bits : int
        Bits per lane of a weight word (``max(weight_bits)``).
    weight_bits : tuple of int
        Per layer: the widest value a weight may take (``WRITE_WEIGHTS`` rejects wider ones).
    input_bits : int
    max_payload : int
    digest : str
        ``EngineConfig.digest()``, hex.
    rule, basis : str
    lr_decay : tuple of int
        The epochs after which the host raises the learning-rate offset (``EngineConfig.lr_decay``).
    """

    _HEAD = struct.Struct("<BBBBBBHB32s")

    def __init__(self, layers, lanes, word_bits, weight_bits, input_bits, max_payload, digest,
                 rule, basis, lr_decay, version=PROTOCOL_VERSION):
        self.layers = tuple(layers)
        self.lanes = lanes
        self.word_bits = word_bits
        self.weight_bits = tuple(weight_bits)
        self.input_bits = input_bits
        self.max_payload = max_payload
        self.digest = digest
        self.rule = rule
        self.basis = basis
        self.lr_decay = tuple(lr_decay)
        self.version = version

    @classmethod
    def from_config(cls, config, lanes):
        return cls(config.layers, lanes, max(config.weight_bits), config.weight_bits, config.input_bits,
                   max_payload(config, lanes), config.digest(), config.rule, config.basis,
                   config.lr_decay)

    @property
    def lr_offsets(self):
        """The largest learning-rate offset."""
        return len(self.lr_decay)

    def lr_offset(self, epoch):
        """The learning-rate offset during ``epoch`` (1-based), as ``golden.integer.train.lr_offset``."""
        return sum(1 for e in self.lr_decay if e < epoch)

    # -- derived sizes ---------------------------------------------------------------------------

    @property
    def n_layers(self):
        return len(self.layers) - 1

    @property
    def n_classes(self):
        return self.layers[-1]

    @property
    def pixel_bytes(self):
        return (self.input_bits + 7) // 8

    @property
    def word_bytes(self):
        """Bytes of one weight word on the wire: ``lanes * word_bits`` bits, little-endian."""
        return (self.lanes * self.word_bits + 7) // 8

    @property
    def groups(self):
        return tuple((n + self.lanes - 1) // self.lanes for n in self.layers[1:])

    @property
    def words(self):
        """Weight words per layer (``LayerGeometry.words``)."""
        return tuple(g * (m + 1) for g, m in zip(self.groups, self.layers[:-1]))

    @property
    def words_per_frame(self):
        """Most weight words one ``READ_WEIGHTS``/``WRITE_WEIGHTS`` frame carries."""
        return (self.max_payload - 5) // self.word_bytes

    # -- wire format ------------------------------------------------------------------------------

    def to_bytes(self):
        rule = RULE_IDS[self.rule]
        basis = BASIS_IDS[self.basis]
        head = self._HEAD.pack(self.version, self.lanes, len(self.layers), self.word_bits, self.input_bits,
                               (rule << 4) | basis, self.max_payload, self.lr_offsets,
                               bytes.fromhex(self.digest))
        body = b"".join(struct.pack("<H", n) for n in self.layers)
        body += bytes(self.weight_bits) + bytes(self.lr_decay)
        return head + body

    @classmethod
    def from_bytes(cls, data):
        data = bytes(data)
        n = cls._HEAD.size
        if len(data) < n:
            raise FrameError(f"identity record of {len(data)} bytes, need at least {n}")
        version, lanes, n_sizes, word_bits, input_bits, rule_basis, payload, lr_offsets, digest = \
            cls._HEAD.unpack_from(data)
        if n_sizes < 2 or len(data) != n + 3 * n_sizes - 1 + lr_offsets:
            raise FrameError(f"identity record of {len(data)} bytes for {n_sizes} layer sizes")
        layers = struct.unpack_from(f"<{n_sizes}H", data, n)
        weight_bits = tuple(data[n + 2 * n_sizes:n + 3 * n_sizes - 1])
        lr_decay = tuple(data[n + 3 * n_sizes - 1:])
        rules = {v: k for k, v in RULE_IDS.items()}
        bases = {v: k for k, v in BASIS_IDS.items()}
        if rule_basis >> 4 not in rules or rule_basis & 15 not in bases:
            raise FrameError(f"identity record names an unknown rule/basis {rule_basis:#04x}")
        return cls(layers, lanes, word_bits, weight_bits, input_bits, payload, digest.hex(),
                   rules[rule_basis >> 4], bases[rule_basis & 15], lr_decay, version)

    def __eq__(self, other):
        return isinstance(other, Geometry) and self.to_bytes() == other.to_bytes() \
            and self.version == other.version

    def __repr__(self):
        return (f"Geometry(layers={self.layers}, lanes={self.lanes}, rule={self.rule}, "
                f"digest={self.digest[:12]})")

