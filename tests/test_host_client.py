"""The host client's retry logic against a scripted fake device: resends after BAD_CRC and lost
responses, a training step recovered from the counters instead of trained twice, stale responses
ignored, timeouts reported, checkpoints refused for another configuration."""

import struct

import pytest

from boards.host import Client, DeviceError, HostTimeout, load_checkpoint, save_checkpoint
from golden.integer.train import default_config
from rtl.host_protocol import COUNTERS, FrameParser, Geometry, Opcode, StatusCode, encode_frame

CONFIG = default_config("lls", None, (16, 6, 3))
GEO = Geometry.from_config(CONFIG, 4)


class FakeDevice:
    """Answers frames like the board; ``script`` lists what to do with each TRAIN request:
    ``"ok"``, ``"lose_response"`` (train, answer nothing), ``"lose_request"`` (do nothing),
    ``"bad_crc"`` (answer BAD_CRC without training), ``"stale"`` (answer with another tag first)."""

    def __init__(self, script):
        self.script = list(script)
        self.parser = FrameParser()
        self.out = bytearray()
        self.steps = 0
        self.timeout = 0.01

    def write(self, data):
        for code, tag, payload in self.parser.feed(data):
            self.handle(code, tag, payload)

    def read(self, n):
        data = bytes(self.out[:n])
        del self.out[:n]
        return data

    def reply(self, status, tag, payload=b""):
        self.out += encode_frame(status, tag, payload)

    def handle(self, code, tag, payload):
        if code == Opcode.IDENTIFY:
            return self.reply(StatusCode.OK, tag, GEO.to_bytes())
        if code == Opcode.READ_COUNTERS:
            values = {"steps": self.steps, "prediction": 2, "checksum": 0xC0FFEE}
            data = b"".join(values.get(name, 0).to_bytes(size, "little") for name, size in COUNTERS)
            return self.reply(StatusCode.OK, tag, data)
        if code == Opcode.TRAIN:
            action = self.script.pop(0) if self.script else "ok"
            if action == "lose_request":
                return
            if action == "bad_crc":
                return self.reply(StatusCode.BAD_CRC, tag)
            self.steps += 1
            if action == "stale":
                self.reply(StatusCode.OK, (tag - 1) & 0xFF, bytes(5))
            if action != "lose_response":
                self.reply(StatusCode.OK, tag, bytes([payload[0]]) + struct.pack("<I", 1000 + self.steps))
            return
        self.reply(StatusCode.UNKNOWN_COMMAND, tag)


def client(device, retries=2):
    return Client(device, timeout=0.05, retries=retries)


def test_plain_training_steps():
    device = FakeDevice(["ok", "stale", "ok"])
    c = client(device)
    assert [c.train([0] * 16, label) for label in (0, 1, 2)] == [(0, 1001), (1, 1002), (2, 1003)]
    assert device.steps == 3 and c.retried == 0


def test_lost_response_is_recovered_from_the_counters_not_retrained():
    device = FakeDevice(["lose_response", "ok"])
    c = client(device)
    assert c.train([0] * 16, 1) == (2, 0xC0FFEE)
    assert device.steps == 1 and c.retried == 1
    assert c.train([0] * 16, 1) == (1, 1002)
    assert device.steps == 2


def test_lost_request_and_bad_crc_are_resent():
    device = FakeDevice(["lose_request", "bad_crc", "ok"])
    c = client(device)
    assert c.train([0] * 16, 2) == (2, 1001)
    assert device.steps == 1 and c.retried == 2


def test_timeout_after_every_retry():
    device = FakeDevice(["lose_request"] * 5)
    c = client(device, retries=1)
    with pytest.raises(HostTimeout, match="TRAIN: no valid response"):
        c.train([0] * 16, 0)
    assert device.steps == 0


def test_refusal_is_a_device_error():
    c = client(FakeDevice([]))
    with pytest.raises(DeviceError, match="UNKNOWN_COMMAND"):
        c.initialise()


def test_checkpoint_refused_for_another_configuration(tmp_path):
    words = [[[1, 2, 3, 4]] * n for n in GEO.words]
    save_checkpoint(tmp_path / "w.json", GEO, words)
    assert load_checkpoint(tmp_path / "w.json", GEO) == words
    other = Geometry.from_config(default_config("lls", None, (16, 6, 3), seed=1), 4)
    with pytest.raises(ValueError, match="refusing to restore"):
        load_checkpoint(tmp_path / "w.json", other)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a weight checkpoint"):
        load_checkpoint(tmp_path / "bad.json", GEO)
