"""The host side of the protocol: a client for a board (or the simulated board) over pyserial.

:class:`Client` frames requests (``rtl.host_protocol``), matches responses by tag, and retries
with explicit timeouts: a request the device refused as corrupted (``BAD_CRC``) or could not take
(``BUSY``) is resent, a lost response is re-requested, and a training step whose response was
lost is recovered from the counters rather than trained twice.
"""

import json
import struct
import time

from rtl.host_protocol import (COUNTERS, ConfigField, FrameParser, Geometry, Opcode, StatusCode,
                               encode_frame)

__all__ = ["HostError", "HostTimeout", "DeviceError", "Client", "requests", "pack_word", "unpack_word",
           "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "synchrony-weights/1"


class HostError(OSError):
    """The device could not be talked to, or answered nonsense."""


class HostTimeout(HostError):
    """No (valid) response within the timeout, after every retry."""


class DeviceError(HostError):
    """The device refused a request with a status code."""

    def __init__(self, opcode, status):
        self.opcode, self.status = opcode, status
        name = StatusCode(status).name if status in StatusCode._value2member_map_ else f"{status:#04x}"
        super().__init__(f"{Opcode(opcode).name}: the device answered {name}")


# -- request payloads (pure: shared with the simulation tests) ---------------------------------------

class requests:
    """Payload builders, one per :class:`~rtl.host_protocol.Opcode`: ``(opcode, payload)``."""

    @staticmethod
    def identify():
        return Opcode.IDENTIFY, b""

    @staticmethod
    def configure(field, value):
        return Opcode.CONFIGURE, struct.pack("<BI", int(field), int(value))

    @staticmethod
    def write_weights(layer, addr, word_bytes_list):
        data = b"".join(word_bytes_list)
        return Opcode.WRITE_WEIGHTS, struct.pack("<BHH", layer, addr, len(word_bytes_list)) + data

    @staticmethod
    def read_weights(layer, addr, count):
        return Opcode.READ_WEIGHTS, struct.pack("<BHH", layer, addr, count)

    @staticmethod
    def initialise():
        return Opcode.INITIALISE, b""

    @staticmethod
    def train(pixels, label):
        return Opcode.TRAIN, bytes([int(label)]) + bytes(int(p) for p in pixels)

    @staticmethod
    def infer(pixels):
        return Opcode.INFER, bytes(int(p) for p in pixels)

    @staticmethod
    def read_counters():
        return Opcode.READ_COUNTERS, b""


def parse_counters(payload):
    values, offset = {}, 0
    for name, size in COUNTERS:
        values[name] = int.from_bytes(payload[offset:offset + size], "little")
        offset += size
    if offset != len(payload):
        raise HostError(f"READ_COUNTERS: {len(payload)} bytes, expected {offset}")
    return values


def pack_word(geometry, lanes):
    """A weight word's lanes (signed ints) as its wire bytes."""
    bits = geometry.word_bits
    value = 0
    for p, v in enumerate(lanes):
        value |= (int(v) & ((1 << bits) - 1)) << (p * bits)
    return value.to_bytes(geometry.word_bytes, "little")


def unpack_word(geometry, data):
    bits = geometry.word_bits
    value = int.from_bytes(data, "little")
    out = []
    for p in range(geometry.lanes):
        v = (value >> (p * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


# -- the client ------------------------------------------------------------------------------------

class Client:
    """Requests to one device over a pyserial port (a device path or a URL such as
    ``socket://127.0.0.1:PORT``).

    Parameters
    ----------
    port : str or file-like
        Opened with ``serial.serial_for_url``; or an object with ``write``, ``read`` and
        ``timeout`` (tests).
    baud : int
    timeout : float
        Seconds to wait for one response.
    retries : int
        Resends of a request after a timeout, ``BAD_CRC`` or ``BUSY``.
    """

    def __init__(self, port, *, baud=115200, timeout=2.0, retries=3):
        if timeout <= 0 or retries < 0:
            raise ValueError("--timeout must be positive and --retries >= 0")
        self.timeout = timeout
        self.retries = retries
        self.port_name = port if isinstance(port, str) else repr(port)
        if isinstance(port, str):
            import serial
            try:
                self.port = serial.serial_for_url(port, baudrate=baud, timeout=0.05)
            except (serial.SerialException, ValueError) as error:
                raise HostError(f"cannot open {port}: {error}") from None
        else:
            self.port = port
        self.parser = FrameParser()
        self.tag = 0
        self.retried = 0
        self.geometry = None
        self.steps = None

    def close(self):
        close = getattr(self.port, "close", None)
        if close:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- one request ------------------------------------------------------------------------------

    def _write(self, frame):
        import serial
        try:
            self.port.write(frame)
            flush = getattr(self.port, "flush", None)
            if flush:
                flush()
        except (serial.SerialException, OSError) as error:
            raise HostError(f"{self.port_name}: write failed: {error}") from None

    def _response(self, tag, deadline):
        import serial
        while True:
            for code, got_tag, payload in self._pending:
                if got_tag == tag:
                    self._pending.clear()
                    return code, payload
            self._pending.clear()
            if time.monotonic() > deadline:
                return None
            try:
                data = self.port.read(4096)
            except (serial.SerialException, OSError) as error:
                raise HostError(f"{self.port_name}: read failed: {error}") from None
            if data:
                self._pending.extend(self.parser.feed(data))

    def exchange(self, opcode, payload=b"", *, retry=True):
        """Send one request; return ``(status, payload)`` of its response (retrying as configured)."""
        attempts = 1 + (self.retries if retry else 0)
        self._pending = []
        for attempt in range(attempts):
            self.tag = (self.tag + 1) & 0xFF
            self._write(encode_frame(opcode, self.tag, payload))
            answer = self._response(self.tag, time.monotonic() + self.timeout)
            if answer is None:
                if attempt + 1 < attempts:
                    self.retried += 1
                continue
            status, data = answer
            if status in (StatusCode.BAD_CRC, StatusCode.BUSY) and attempt + 1 < attempts:
                self.retried += 1
                time.sleep(0.01 if status == StatusCode.BUSY else 0)
                continue
            return status, data
        raise HostTimeout(f"{Opcode(opcode).name}: no valid response from {self.port_name} within "
                          f"{self.timeout:g} s ({attempts} attempt{'s' if attempts > 1 else ''})")

    def request(self, opcode, payload=b"", *, retry=True):
        """Like :meth:`exchange`, raising :class:`DeviceError` unless the status is ``OK``."""
        status, data = self.exchange(opcode, payload, retry=retry)
        if status != StatusCode.OK:
            raise DeviceError(opcode, status)
        return data

    # -- commands ---------------------------------------------------------------------------------

    def identify(self):
        data = self.request(*requests.identify())
        try:
            self.geometry = Geometry.from_bytes(data)
        except Exception as error:
            raise HostError(f"IDENTIFY: malformed identity record: {error}") from None
        self.parser.max_payload = self.geometry.max_payload
        return self.geometry

    def _need_geometry(self):
        if self.geometry is None:
            self.identify()
        return self.geometry

    def configure(self, field, value):
        self.request(*requests.configure(ConfigField(field), value))

    def set_lr_offset(self, offset):
        self.configure(ConfigField.LR_OFFSET, offset)

    def counters(self):
        return parse_counters(self.request(*requests.read_counters()))

    def initialise(self):
        self.request(*requests.initialise())

    def read_words(self, layer, addr, count):
        geo = self._need_geometry()
        data = self.request(*requests.read_weights(layer, addr, count))
        if len(data) != count * geo.word_bytes:
            raise HostError(f"READ_WEIGHTS: {len(data)} bytes for {count} words")
        return [unpack_word(geo, data[i * geo.word_bytes:(i + 1) * geo.word_bytes]) for i in range(count)]

    def write_words(self, layer, addr, words):
        geo = self._need_geometry()
        self.request(*requests.write_weights(layer, addr, [pack_word(geo, w) for w in words]))

    def read_weights(self, progress=None):
        """Every layer's weight words: ``[layer][word] -> P lane values``."""
        geo = self._need_geometry()
        out = []
        for k, total in enumerate(geo.words):
            words = []
            for addr in range(0, total, geo.words_per_frame):
                words += self.read_words(k, addr, min(geo.words_per_frame, total - addr))
                if progress:
                    progress(len(words))
            out.append(words)
        return out

    def write_weights(self, layers):
        geo = self._need_geometry()
        if len(layers) != geo.n_layers or any(len(w) != n for w, n in zip(layers, geo.words)):
            raise ValueError(f"weights of {[len(w) for w in layers]} words do not fit the device's "
                             f"{list(geo.words)}")
        for k, words in enumerate(layers):
            for addr in range(0, len(words), geo.words_per_frame):
                self.write_words(k, addr, words[addr:addr + geo.words_per_frame])

    def _sync_steps(self):
        if self.steps is None:
            self.steps = self.counters()["steps"]

    def train(self, pixels, label):
        """One training step: ``(prediction, checksum)``. A lost response is recovered from the
        counters (never trained twice)."""
        self._sync_steps()
        opcode, payload = requests.train(pixels, label)
        attempts = 1 + self.retries
        for attempt in range(attempts):
            try:
                data = self.request(opcode, payload, retry=False)
            except HostTimeout:
                counters = self.counters()
                if counters["steps"] == self.steps + 1:
                    self.steps += 1
                    self.retried += 1
                    return counters["prediction"], counters["checksum"]
                if counters["steps"] != self.steps or attempt + 1 == attempts:
                    raise
                self.retried += 1
                continue
            except DeviceError as error:
                if error.status in (StatusCode.BAD_CRC, StatusCode.BUSY) and attempt + 1 < attempts:
                    self.retried += 1
                    continue
                raise
            if len(data) != 5:
                raise HostError(f"TRAIN: {len(data)}-byte result, expected 5")
            self.steps += 1
            return data[0], int.from_bytes(data[1:5], "little")
        raise HostTimeout("TRAIN: no result")

    def infer(self, pixels):
        retried = self.retried
        data = self.request(*requests.infer(pixels))
        if len(data) != 1:
            raise HostError(f"INFER: {len(data)}-byte result, expected 1")
        if self.retried != retried:
            # A resent inference may have run twice: recount the steps before the next training step.
            self.steps = None
        elif self.steps is not None:
            self.steps += 1
        return data[0]


# -- checkpoints -----------------------------------------------------------------------------------

def save_checkpoint(path, geometry, layers):
    """Weight words with the configuration digest they belong to (JSON)."""
    record = {"format": CHECKPOINT_FORMAT, "config_digest": geometry.digest, "layers": list(geometry.layers),
              "lanes": geometry.lanes, "word_bits": geometry.word_bits, "weights": layers}
    with open(path, "w") as handle:
        json.dump(record, handle)
        handle.write("\n")


def load_checkpoint(path, geometry):
    """The weight words of a checkpoint, refused unless it was saved from the same configuration."""
    try:
        with open(path) as handle:
            record = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a weight checkpoint ({error})") from None
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    if record.get("config_digest") != geometry.digest or record.get("lanes") != geometry.lanes:
        raise ValueError(f"{path}: saved from configuration {str(record.get('config_digest'))[:12]} on "
                         f"{record.get('lanes')} lanes; the device is {geometry.digest[:12]} on "
                         f"{geometry.lanes} lanes: refusing to restore")
    return record["weights"]
