"""cocotb tests of the simulated board (``sim.board_sim.ByteHarness``).

Run through :func:`sim.board_sim.run_board`, which passes the parameters in ``$SYNCHRONY_PARAMS``.

- ``board_serve``: ``SystemTop`` with its UART, bridged to a TCP socket for the host tool
  (``synchrony sim-board``, and the host-tool-over-simulated-UART test).
- ``protocol_fuzz``: random, truncated, bit-flipped, wrong-CRC and ill-formed frames into the
  protocol unit; every one must be refused with its error code or dropped, and the unit must
  answer a probe after each. The weights before and after, and a training step afterwards, go to
  the result file; the test in pytest compares them with the golden model (torch stays out of the
  simulator's Python: importing it there costs ~19 s).
"""

import json
import random
import socket
import struct
import time
from pathlib import Path

import cocotb

from boards.host import pack_word, parse_counters, requests, unpack_word
from golden.integer.config import EngineConfig
from rtl.host_protocol import (SYNC, ConfigField, FrameParser, Geometry, Opcode, StatusCode, encode_frame)
from rtl.layer_geometry import LayerGeometry
from sim.board_sim import ByteTB, params, serve_tcp


def _frame(request, tag):
    opcode, payload = request
    return encode_frame(opcode, tag, payload)


def _config(p):
    return EngineConfig.from_dict(p["config"]), int(p["lanes"])


async def _until_ready(tb):
    for _ in range(10000):
        await tb.advance(256)
        if int(tb.dut.leds.value) & 1:
            return
    raise AssertionError("the engine never became ready")


@cocotb.test()
async def board_serve(dut):
    """Serve TCP clients until ``sessions`` of them have disconnected."""
    p = params()
    tb = ByteTB(dut)
    await tb.reset()
    await _until_ready(tb)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((p.get("host", "127.0.0.1"), int(p.get("port", 0))))
    server.listen(1)
    host, port = server.getsockname()[:2]
    dut._log.info(f"simulated board listening on socket://{host}:{port}")
    if p.get("port_file"):
        # Written last, atomically: its appearance means the board is ready.
        path = Path(p["port_file"])
        path.with_suffix(".tmp").write_text(f"{port}\n")
        path.with_suffix(".tmp").rename(path)
    start = time.perf_counter()
    try:
        await serve_tcp(tb, server, sessions=int(p.get("sessions", 0)), log=dut._log.info)
    finally:
        server.close()
    dut._log.info(f"{tb.cycles} cycles in {time.perf_counter() - start:.1f} s")


# -- fuzzing ----------------------------------------------------------------------------------------

class Fuzzer:
    """Frames, good and bad, for one configuration (all from one seeded generator)."""

    def __init__(self, config, lanes, seed):
        self.config = config
        self.geo = Geometry.from_config(config, lanes)
        self.lgeo = LayerGeometry(config, lanes)
        self.rng = random.Random(seed)
        self.tag = 0

    def next_tag(self):
        self.tag = (self.tag + 1) & 0xFF
        return self.tag

    def _padding(self, k, addr, p):
        g = self.lgeo
        return addr >= (g.groups[k] - 1) * (g.fan_in[k] + 1) and p >= g.last_real[k]

    def _word(self, k, addr):
        top = 1 << (self.config.weight_bits[k] - 1)
        return pack_word(self.geo, [0 if self._padding(k, addr, p) else self.rng.randrange(-top, top)
                                    for p in range(self.geo.lanes)])

    def _pixels(self):
        return [self.rng.randrange(1 << self.config.input_bits) for _ in range(self.config.layers[0])]

    def valid_request(self):
        """Any well-formed request (it may change state: only ever sent corrupted)."""
        rng, geo = self.rng, self.geo
        k = rng.randrange(geo.n_layers)
        addr = rng.randrange(geo.words[k])
        count = rng.randint(1, min(4, geo.words[k] - addr))
        choice = rng.randrange(8)
        if choice == 0:
            return requests.write_weights(k, addr, [self._word(k, addr + i) for i in range(count)])
        if choice == 1:
            return requests.train(self._pixels(), rng.randrange(geo.n_classes))
        if choice == 2:
            return requests.infer(self._pixels())
        if choice == 3:
            return requests.initialise()
        if choice == 4:
            return requests.configure(ConfigField.LR_OFFSET, rng.randint(0, geo.lr_offsets))
        if choice == 5:
            return requests.read_weights(k, addr, count)
        if choice == 6:
            return requests.read_counters()
        return requests.identify()

    def readonly_request(self):
        rng, geo = self.rng, self.geo
        k = rng.randrange(geo.n_layers)
        addr = rng.randrange(geo.words[k])
        choice = rng.randrange(3)
        if choice == 0:
            return requests.read_weights(k, addr, rng.randint(1, min(geo.words_per_frame, geo.words[k] - addr)))
        if choice == 1:
            return requests.read_counters()
        return requests.identify()

    def ill_formed(self):
        """A frame with a good CRC and a bad field: ``(frame, expected status)``."""
        rng, geo, config = self.rng, self.geo, self.config
        tag = self.next_tag()
        k = rng.randrange(geo.n_layers)
        choice = rng.randrange(12)
        S = StatusCode
        if choice == 0:
            code = rng.choice([c for c in range(256) if c not in set(Opcode)])
            return encode_frame(code, tag, bytes(rng.randrange(256) for _ in range(rng.randrange(8)))), S.UNKNOWN_COMMAND
        if choice == 1:
            opcode, payload = self.valid_request()
            if opcode == Opcode.WRITE_WEIGHTS:
                payload = payload[:-1] if rng.random() < 0.5 else payload + b"\0"
            else:
                payload = payload + bytes(rng.randint(1, 3)) if rng.random() < 0.5 or not payload else payload[:-1]
            return encode_frame(opcode, tag, payload), S.BAD_LENGTH
        if choice == 2:
            layer = rng.randrange(geo.n_layers, 256)
            return _frame(requests.read_weights(layer, 0, 1), tag), S.OUT_OF_RANGE
        if choice == 3:
            # addr + count beyond the layer's words.
            addr = rng.randrange(0x10000)
            least = max(1, geo.words[k] - addr + 1)
            return _frame(requests.read_weights(k, addr, min(least + rng.randrange(3), 0xFFFF)), tag), \
                S.OUT_OF_RANGE
        if choice == 4:
            return _frame(requests.read_weights(k, 0, 0), tag), S.OUT_OF_RANGE
        if choice == 5:
            addr = rng.randrange(geo.words[k], 0x10000)
            return _frame(requests.write_weights(k, addr, [self._word(k, 0)]), tag), S.OUT_OF_RANGE
        if choice == 6:
            # One lane beyond the layer's weight_bits (or a padding lane set), after good words.
            addr = rng.randrange(geo.words[k])
            count = rng.randint(1, min(4, geo.words[k] - addr))
            words = [bytearray(self._word(k, addr + i)) for i in range(count)]
            bad = rng.randrange(count)
            lanes = unpack_word(geo, bytes(words[bad]))
            p = rng.randrange(geo.lanes)
            if self._padding(k, addr + bad, p):
                lanes[p] = rng.choice([1, -1])
            else:
                bits = config.weight_bits[k]
                if bits == geo.word_bits:
                    return _frame(requests.train(self._pixels(), rng.randrange(geo.n_classes, 256)),
                                        tag), S.OUT_OF_RANGE
                lanes[p] = rng.choice([1 << (bits - 1), -(1 << (bits - 1)) - 1])
            words[bad] = bytearray(pack_word(geo, lanes))
            return _frame(requests.write_weights(k, addr, [bytes(w) for w in words]), tag), S.OUT_OF_RANGE
        if choice == 7:
            return _frame(requests.train(self._pixels(), rng.randrange(geo.n_classes, 256)), tag), \
                S.OUT_OF_RANGE
        if choice == 8:
            return _frame(requests.configure(ConfigField.LR_OFFSET,
                                                    rng.randrange(geo.lr_offsets + 1, 1 << 32)), tag), S.OUT_OF_RANGE
        if choice == 9:
            return _frame(requests.configure(rng.randrange(4, 256), rng.randrange(1 << 32)), tag), \
                S.OUT_OF_RANGE
        if choice == 10:
            wrong = [v for v in range(3) if v != {"lls": 0, "lls-m": 1, "drtp": 2}[config.rule]]
            return _frame(requests.configure(ConfigField.RULE, rng.choice(wrong)), tag), S.UNSUPPORTED
        # A length beyond the buffer: refused on the header.
        length = rng.randrange(geo.max_payload + 1, 0x10000)
        return SYNC + bytes([Opcode.WRITE_WEIGHTS, tag]) + struct.pack("<H", length), S.BAD_LENGTH

    def bad_frame(self):
        """``(kind, frame bytes, expected status or None, gap)``."""
        rng = self.rng
        kind = rng.choice(["random", "truncated", "bitflip", "bad_crc", "ill_formed"])
        if kind == "random":
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 100)))
            if rng.random() < 0.3:
                data = SYNC + data
            return kind, data, None, True
        if kind == "ill_formed":
            frame, status = self.ill_formed()
            return kind, frame, status, True
        frame = bytearray(_frame(self.valid_request(), self.next_tag()))
        if kind == "truncated":
            cut = rng.randrange(1, len(frame))
            # With no pause the next frame's bytes follow: if the first of them is the byte cut
            # off, the device receives the frame whole (not a bad frame), so pause then.
            gap = rng.random() < 0.5 or frame[cut] == SYNC[0]
            return kind, bytes(frame[:cut]), None, gap
        if kind == "bitflip":
            for bit in rng.sample(range(8 * len(frame)), rng.randint(1, 3)):
                frame[bit // 8] ^= 1 << (bit % 8)
            return kind, bytes(frame), None, True
        frame[-2:] = struct.pack(">H", struct.unpack(">H", frame[-2:])[0] ^ rng.randrange(1, 1 << 16))
        return kind, bytes(frame), StatusCode.BAD_CRC, True


class Link:
    """Frames to and from the harness, with settling: run until a response or the device is idle."""

    def __init__(self, tb):
        self.tb = tb
        self.parser = FrameParser()

    async def settle(self, tag=None, limit=400_000):
        got = []
        spent = 0
        while True:
            got += self.parser.feed(await self.tb.advance(64))
            spent += 64
            if tag is not None and any(t == tag for _, t, _ in got):
                return got
            if self.tb.quiet() and not self.tb.receiving():
                return got
            if spent > limit:
                raise AssertionError(f"the protocol unit hangs: no response and never idle in {limit} cycles")

    async def request(self, opcode, payload, tag, others=None):
        """The response to one request (``None`` if none came); other frames go to ``others``."""
        self.tb.send(encode_frame(opcode, tag, payload))
        answer = None
        for code, t, data in await self.settle(tag):
            if t == tag:
                answer = code, data
            elif others is not None:
                others.append((code, t, data))
        return answer


@cocotb.test()
async def protocol_fuzz(dut):
    p = params()
    config, lanes = _config(p)
    tb = ByteTB(dut)
    await tb.reset()
    await _until_ready(tb)
    fuzz = Fuzzer(config, lanes, int(p.get("seed", 0)))
    geo, rng = fuzz.geo, fuzz.rng
    link = Link(tb)
    result = {"frames": int(p["frames"]), "sent": {}, "rejected": {}, "dropped": {}, "unexpected": [],
              "probe_retries": 0, "readonly_ok": 0, "rejected_late": {},
              "truncated_no_pause": 0, "answered": {}}

    async def ok(opcode, payload=b""):
        tag = fuzz.next_tag()
        answer = await link.request(opcode, payload, tag)
        assert answer is not None and answer[0] == StatusCode.OK, f"{Opcode(opcode).name}: {answer}"
        return answer[1]

    async def read_all():
        out = []
        for k in range(geo.n_layers):
            words = []
            for addr in range(0, geo.words[k], geo.words_per_frame):
                count = min(geo.words_per_frame, geo.words[k] - addr)
                data = await ok(*requests.read_weights(k, addr, count))
                words += [unpack_word(geo, data[i * geo.word_bytes:(i + 1) * geo.word_bytes]) for i in range(count)]
            out.append(words)
        return out

    # A few training steps first, so that a stray INITIALISE would show.
    warmup = p["warmup"]
    result["warmup"] = []
    for pixels, label in warmup:
        data = await ok(*requests.train(pixels, label))
        result["warmup"].append([data[0], int.from_bytes(data[1:5], "little")])
    result["weights_before"] = await read_all()
    counters_before = parse_counters(await ok(*requests.read_counters()))
    start = time.perf_counter()
    start_cycles = tb.cycles

    for i in range(result["frames"]):
        if rng.random() < 0.05:
            opcode, payload = fuzz.readonly_request()
            await ok(opcode, payload)
            result["readonly_ok"] += 1
            continue
        kind, frame, expected, gap = fuzz.bad_frame()
        result["sent"][kind] = result["sent"].get(kind, 0) + 1
        tb.send(frame)
        if gap:
            answers = await link.settle()
            if not answers:
                result["dropped"][kind] = result["dropped"].get(kind, 0) + 1
            else:
                result["answered"][kind] = result["answered"].get(kind, 0) + 1
            for code, _, _ in answers:
                name = StatusCode(code).name if code in set(StatusCode) else hex(code)
                result["rejected"][name] = result["rejected"].get(name, 0) + 1
                if code == StatusCode.OK or (expected is not None and code != expected):
                    result["unexpected"].append([i, kind, frame.hex(), name, len(answers)])
            if expected is not None and not answers:
                result["unexpected"].append([i, kind, frame.hex(), "no response", 0])
        else:
            # Answered (or not) together with the probe: counted in rejected_late.
            result["truncated_no_pause"] += 1
        # The probe: the unit must answer within three attempts (a frame cut short with no
        # pause swallows the first).
        for attempt in range(3):
            tag = fuzz.next_tag()
            others = []
            answer = await link.request(Opcode.IDENTIFY, b"", tag, others)
            for code, _, _ in others:
                # Answers to the bad frame that arrive with the probe (a frame cut short with no
                # pause completes on the probe's bytes and fails its CRC).
                name = StatusCode(code).name if code in set(StatusCode) else hex(code)
                result["rejected_late"][name] = result["rejected_late"].get(name, 0) + 1
                if code == StatusCode.OK:
                    result["unexpected"].append([i, kind, frame.hex(), "OK with the probe", attempt])
            if answer is not None and answer[0] == StatusCode.OK:
                assert Geometry.from_bytes(answer[1]) == geo
                break
            result["probe_retries"] += 1
        else:
            raise AssertionError(f"frame {i} ({kind}, {frame.hex()}): no resynchronisation in 3 probes")
    result["fuzz_seconds"] = time.perf_counter() - start
    result["fuzz_cycles"] = tb.cycles - start_cycles

    result["weights_after"] = await read_all()
    counters = parse_counters(await ok(*requests.read_counters()))
    result["counters_before"], result["counters_after"] = counters_before, counters
    # After the fuzzing: one more training step, its result and the weights.
    pixels, label = p["after"]
    data = await ok(*requests.train(pixels, label))
    result["after"] = [data[0], int.from_bytes(data[1:5], "little")]
    result["weights_final"] = await read_all()
    Path(p["result_file"]).write_text(json.dumps(result) + "\n")
    dut._log.info(json.dumps({k: v for k, v in result.items() if not k.startswith("weights")}))
