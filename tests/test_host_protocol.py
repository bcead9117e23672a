"""The host protocol: framing and CRC (host and gateware share one definition), and the protocol
unit (:class:`rtl.host_interface.HostInterface`, with a real engine) in the Amaranth simulator:
every command, every error code, bounds, atomic refusals, and a training step against the golden
model."""

import random

import pytest
import torch
from amaranth import ClockDomain, Module, Value
from amaranth.sim import Simulator

from boards.host import pack_word, parse_counters, requests, unpack_word
from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config
from rtl.host_interface import HostInterface
from rtl.host_protocol import (BASIS_IDS, CRC, ConfigField, FrameParser, Geometry, Opcode, StatusCode, encode_frame,
                               frame_crc)
from rtl.layer_geometry import LayerGeometry, pack_weights, weight_checksum

# 6 hidden neurons on 4 lanes: layer 0's last group has two padding lanes; layer 1's weights
# are narrower than the word's lanes.
CONFIG = default_config("lls", None, (16, 6, 3), weight_bits=(16, 12), weight_frac=(13, 9), init_bits=(11, 8),
                        act_shift=(15, 10))
LANES = 4


def test_crc_is_the_catalog_algorithm():
    # CRC-16/IBM-3740's check value; the gateware instantiates the same Parameters object.
    assert frame_crc(b"123456789") == 0x29B1
    assert CRC.crc_width == 16


def test_frame_round_trip_and_resync():
    frames = [encode_frame(Opcode.TRAIN, t, bytes(range(t))) for t in range(5)]
    noise = bytes([0xA5, 0x00, 0x5A, 0xA5, 0xA5])
    corrupt = bytearray(frames[2])
    corrupt[7] ^= 0x10
    parser = FrameParser()
    got = []
    for chunk in (noise + frames[0] + bytes(corrupt) + frames[1] + frames[3] + frames[4][:5], frames[4][5:]):
        got += parser.feed(chunk)
    assert [tag for _, tag, _ in got] == [0, 1, 3, 4]
    assert got[3] == (Opcode.TRAIN, 4, bytes(range(4)))
    assert parser.bad_frames >= 1


def test_identity_round_trip():
    geo = Geometry.from_config(CONFIG, LANES)
    back = Geometry.from_bytes(geo.to_bytes())
    assert back == geo and back.words == LayerGeometry(CONFIG, LANES).words


# -- the protocol unit in the Amaranth simulator ----------------------------------------------------

class Device:
    """Byte-level driver of a :class:`HostInterface` simulation."""

    def __init__(self, ctx, dut, received, domain="sync"):
        self.ctx, self.dut, self.received = ctx, dut, received
        self.domain = domain
        self.parser = FrameParser()
        self.tag = 0

    def tick(self):
        """A clock edge of the protocol's domain."""
        return self.ctx.tick(self.domain)

    async def send(self, data, gap=0):
        ctx, dut = self.ctx, self.dut
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await self.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        if gap:
            await self.tick().repeat(gap)

    async def frames(self, cycles):
        """Frames received within ``cycles`` (stops at the first)."""
        out = []
        for _ in range(cycles):
            if self.received:
                out += self.parser.feed(bytes(self.received))
                self.received.clear()
                if out:
                    return out
            await self.tick()
        return out

    async def request(self, opcode, payload=b"", cycles=20000):
        self.tag = (self.tag + 1) & 0xFF
        await self.send(encode_frame(opcode, self.tag, payload))
        got = await self.frames(cycles)
        assert len(got) == 1, f"{Opcode(opcode).name}: {len(got)} responses"
        status, tag, data = got[0]
        assert tag == self.tag
        return status, data

    async def read_weights(self, geo):
        """Every layer's weight words (lists of lane values), a frame's worth at a time."""
        out = []
        for k in range(geo.n_layers):
            words = []
            for addr in range(0, geo.words[k], geo.words_per_frame):
                count = min(geo.words_per_frame, geo.words[k] - addr)
                status, data = await self.request(*requests.read_weights(k, addr, count))
                assert status == StatusCode.OK
                words += [unpack_word(geo, data[i * geo.word_bytes:(i + 1) * geo.word_bytes]) for i in range(count)]
            out.append(words)
        return out

    async def write_weights(self, geo, weights):
        """Write every layer's words (lists of lane values), a frame's worth at a time."""
        for k in range(geo.n_layers):
            words = [pack_word(geo, w) for w in weights[k]]
            for addr in range(0, len(words), geo.words_per_frame):
                chunk = words[addr:addr + geo.words_per_frame]
                assert (await self.request(*requests.write_weights(k, addr, chunk)))[0] == StatusCode.OK


def run_device(script, timeout=64, wait_ready=True, config=CONFIG, max_payload=None, lanes=LANES,
               registered_enables=False, host_period=None):
    """``script(Device)`` against a :class:`HostInterface`; with ``host_period`` (in units of
    the engine's period) the protocol runs in a domain of its own on that clock, as on the iCE40."""
    domain = "host" if host_period else "sync"
    dut = HostInterface(config, lanes, frame_timeout=timeout, max_payload=max_payload,
                        registered_enables=registered_enables, host_domain=domain)
    received = []
    top = Module()
    top.domains.sync = ClockDomain("sync")
    top.submodules.dut = dut
    if host_period:
        top.domains.host = ClockDomain("host")
    sim = Simulator(top)
    sim.add_clock(1e-6)
    if host_period:
        sim.add_clock(host_period * 1e-6, domain="host")

    async def collect(ctx):
        ctx.set(dut.o.ready, 1)
        async for _, _, valid, payload in ctx.tick(domain).sample(dut.o.valid, dut.o.payload):
            if valid:
                received.append(payload)

    async def bench(ctx):
        if wait_ready:
            await ctx.tick(domain).until(dut.ready)
        await script(Device(ctx, dut, received, domain))

    def stream_rules(source_domain, streams):
        """A stream offered and not taken is offered again, its payload unchanged: what the clock
        crossings rely on (they pass the source's payload through, uncopied)."""
        async def monitor(ctx):
            signals = [x for s in streams for x in (s.valid, s.ready, Value.cast(s.payload))]
            held = [None] * len(streams)
            async for sample in ctx.tick(source_domain).sample(*signals):
                for j in range(len(streams)):
                    valid, ready, payload = sample[2 + 3 * j:5 + 3 * j]
                    if held[j] is not None:
                        assert valid and payload == held[j], f"stream {j} of {source_domain} changed while offered"
                    held[j] = payload if valid and not ready else None
        return monitor

    bridge, engine = dut.bridge, dut.engine
    sim.add_testbench(stream_rules(domain, [bridge.pixels, bridge.cmd, bridge.access]), background=True)
    sim.add_testbench(stream_rules("sync", [engine.result, engine.response]), background=True)
    sim.add_process(collect)
    sim.add_testbench(bench)
    sim.run()


# The bridge as the iCE40 builds it, and with the ECP5's registered shift-register enables.
ENABLES = pytest.mark.parametrize("registered_enables", [False, True], ids=["enable", "registered"])


# The iCE40's protocol runs from its 12 MHz oscillator, the engine at 48 MHz: 3.7 engine cycles a
# protocol cycle (not a whole number: the edges drift against each other).
@pytest.mark.parametrize("registered_enables, host_period", [(False, None), (True, None), (False, 3.7)],
                         ids=["enable", "registered", "host-domain"])
def test_protocol_unit_commands_and_errors(registered_enables, host_period):
    geo = Geometry.from_config(CONFIG, LANES)
    lgeo = LayerGeometry(CONFIG, LANES)
    net = IntegerNetwork(CONFIG)
    packed = [w.tolist() for w in pack_weights(lgeo, net.weights, net.biases)]
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (CONFIG.layers[0],), generator=gen)
    log = {}

    async def script(dev):
        status, data = await dev.request(*requests.identify())
        assert status == StatusCode.OK and Geometry.from_bytes(data) == geo

        assert await dev.read_weights(geo) == packed, "initial weights"

        # Errors: each with its code, nothing changed.
        bad = bytearray(encode_frame(Opcode.READ_COUNTERS, 7, b""))
        bad[-1] ^= 1
        await dev.send(bytes(bad))
        (status, tag, _), = await dev.frames(2000)
        log["bad_crc"] = (status, tag)
        assert (await dev.request(0x7E))[0] == StatusCode.UNKNOWN_COMMAND
        assert (await dev.request(Opcode.IDENTIFY, b"x"))[0] == StatusCode.BAD_LENGTH
        assert (await dev.request(Opcode.READ_WEIGHTS, b"\0\0"))[0] == StatusCode.BAD_LENGTH
        assert (await dev.request(*requests.read_weights(geo.n_layers, 0, 1)))[0] == StatusCode.OUT_OF_RANGE
        assert (await dev.request(*requests.read_weights(0, geo.words[0] - 1, 2)))[0] == StatusCode.OUT_OF_RANGE
        assert (await dev.request(*requests.read_weights(0, 0, 0)))[0] == StatusCode.OUT_OF_RANGE
        assert (await dev.request(*requests.read_weights(1, 0xFFFF, 1)))[0] == StatusCode.OUT_OF_RANGE
        word = pack_word(geo, [1] * geo.lanes)
        assert (await dev.request(*requests.write_weights(0, geo.words[0], [word])))[0] == StatusCode.OUT_OF_RANGE
        assert (await dev.request(*requests.write_weights(1, geo.words[1] - 1, [word, word])))[0] \
            == StatusCode.OUT_OF_RANGE
        # A length that disagrees with the count.
        op, payload = requests.write_weights(0, 0, [word])
        assert (await dev.request(op, payload + b"\0"))[0] == StatusCode.BAD_LENGTH
        # Padding lanes and values wider than the layer's weight_bits are refused, atomically
        # (the first word of each request is valid).
        last_group = (lgeo.groups[0] - 1) * (lgeo.fan_in[0] + 1)
        padded = pack_word(geo, [1, 1, 1, 0])
        assert (await dev.request(*requests.write_weights(0, last_group - 1, [word, padded])))[0] \
            == StatusCode.OUT_OF_RANGE
        too_big = pack_word(geo, [0, 1 << (CONFIG.weight_bits[1] - 1), 0, 0])
        assert (await dev.request(*requests.write_weights(1, 0, [word, too_big])))[0] == StatusCode.OUT_OF_RANGE
        assert (await dev.request(*requests.train(pixels, CONFIG.n_classes)))[0] == StatusCode.OUT_OF_RANGE
        assert (await dev.request(Opcode.TRAIN, b"\1" + bytes(3)))[0] == StatusCode.BAD_LENGTH
        assert (await dev.request(*requests.configure(ConfigField.LR_OFFSET, len(CONFIG.lr_decay) + 1)))[0] \
            == StatusCode.OUT_OF_RANGE
        assert (await dev.request(*requests.configure(ConfigField.RULE, 2)))[0] == StatusCode.UNSUPPORTED
        assert (await dev.request(*requests.configure(ConfigField.RULE, 0)))[0] == StatusCode.OK
        assert (await dev.request(*requests.configure(9, 0)))[0] == StatusCode.OUT_OF_RANGE
        # Every fixed field: its own value is accepted, any other refused.
        for field, own in ((ConfigField.BASIS, BASIS_IDS[CONFIG.basis]), (ConfigField.SEED, CONFIG.init_seed)):
            assert (await dev.request(*requests.configure(field, own)))[0] == StatusCode.OK
            assert (await dev.request(*requests.configure(field, own + 1)))[0] == StatusCode.UNSUPPORTED
        op, payload = requests.configure(ConfigField.RULE, 0)
        assert (await dev.request(op, payload[:4]))[0] == StatusCode.BAD_LENGTH
        assert (await dev.request(Opcode.INFER, bytes(CONFIG.layers[0] + 1)))[0] == StatusCode.BAD_LENGTH
        assert (await dev.request(Opcode.INITIALISE, b"\0"))[0] == StatusCode.BAD_LENGTH
        assert (await dev.request(Opcode.READ_COUNTERS, b"\0"))[0] == StatusCode.BAD_LENGTH
        # An oversized length is refused at once.
        await dev.send(b"\xa5\x5a\x03\x09\xff\xff")
        (status, tag, _), = await dev.frames(2000)
        log["too_long"] = (status, tag)
        # A truncated frame is dropped on the timeout; the next frame is served.
        await dev.send(encode_frame(Opcode.IDENTIFY, 3, b"")[:5], gap=200)
        log["after_truncation"] = await dev.request(*requests.identify())
        assert await dev.read_weights(geo) == packed, "weights after the refused commands"

        # Write and read back (the golden network takes the same weights).
        def padding(k, a, p):
            return a >= (lgeo.groups[k] - 1) * (lgeo.fan_in[k] + 1) and p >= lgeo.last_real[k]

        new = [[[0 if padding(k, a, p) else random.Random(k * 1000 + a).randrange(-300, 300)
                 for p in range(geo.lanes)] for a in range(geo.words[k])] for k in range(geo.n_layers)]
        new[1][0][1] = -(1 << (CONFIG.weight_bits[1] - 1))
        await dev.write_weights(geo, new)
        # More words than a frame holds.
        assert (await dev.request(*requests.read_weights(0, 0, geo.words_per_frame + 1)))[0] \
            == StatusCode.OUT_OF_RANGE
        assert await dev.read_weights(geo) == new
        # Back to the initial weights through INITIALISE; then one training step.
        assert (await dev.request(*requests.initialise()))[0] == StatusCode.OK
        assert await dev.read_weights(geo) == packed
        status, data = await dev.request(*requests.train(pixels, 2))
        assert status == StatusCode.OK
        log["train"] = (data[0], int.from_bytes(data[1:5], "little"))
        log["weights"] = await dev.read_weights(geo)
        status, data = await dev.request(*requests.infer(pixels))
        log["infer"] = data[0]
        status, data = await dev.request(*requests.read_counters())
        log["counters"] = parse_counters(data)

    run_device(script, registered_enables=registered_enables, host_period=host_period)
    assert log["bad_crc"] == (StatusCode.BAD_CRC, 7)
    assert log["too_long"] == (StatusCode.BAD_LENGTH, 9)
    assert log["after_truncation"][0] == StatusCode.OK
    trace = net.train_step(pixels, 2, record=True)
    assert log["train"] == (trace.prediction, weight_checksum(lgeo, net.weights, net.biases))
    assert log["weights"] == [w.tolist() for w in pack_weights(lgeo, net.weights, net.biases)]
    assert log["infer"] == int(net.infer(pixels.unsqueeze(0))[0])
    counters = log["counters"]
    assert counters["steps"] == 2 and counters["frames_dropped"] == 1
    assert counters["checksum"] == log["train"][1] and counters["prediction"] == log["infer"]
    assert counters["frames_rejected"] >= 18


def test_busy_while_the_engine_initialises():
    """Right after reset the engine writes its initial weights: engine commands are refused BUSY,
    IDENTIFY is answered, and the host's retry then succeeds."""
    log = []

    async def script(dev):
        log.append((await dev.request(*requests.read_counters()))[0])
        log.append((await dev.request(*requests.identify()))[0])
        await dev.ctx.tick().until(dev.dut.ready)
        log.append((await dev.request(*requests.read_counters()))[0])

    run_device(script, wait_ready=False)
    assert log == [StatusCode.BUSY, StatusCode.OK, StatusCode.OK]


@ENABLES
def test_configure_sets_the_learning_rate_offset(registered_enables):
    """CONFIGURE LR_OFFSET: the next step is the golden step with that offset (numerics §12)."""
    pixels = torch.randint(0, 256, (16,), generator=torch.Generator().manual_seed(4))
    offset = len(CONFIG.lr_decay)
    log = {}

    async def script(dev):
        log["set"] = (await dev.request(*requests.configure(ConfigField.LR_OFFSET, offset)))[0]
        status, data = await dev.request(*requests.train(pixels, 0))
        log["train"] = (data[0], int.from_bytes(data[1:5], "little"))
        log["counters"] = parse_counters((await dev.request(*requests.read_counters()))[1])

    run_device(script, registered_enables=registered_enables)
    net = IntegerNetwork(CONFIG)
    net.lr_offset = offset
    trace = net.train_step(pixels, 0, record=True)
    assert log["set"] == StatusCode.OK and log["counters"]["lr_offset"] == offset
    assert log["train"] == (trace.prediction, weight_checksum(LayerGeometry(CONFIG, LANES), net.weights, net.biases))


def test_configure_selects_a_runtime_lls_mode():
    """CONFIGURE LLS_MODE picks EngineConfig.runtime_modes; the step is the golden model of that mode."""
    config = default_config("lls", "sin", (16, 6, 3), runtime_modes=(("square", 1, 8),))
    pixels = torch.randint(0, 256, (16,), generator=torch.Generator().manual_seed(3))
    log = {}

    async def script(dev):
        status, data = await dev.request(*requests.identify())
        log["n_modes"] = Geometry.from_bytes(data).n_modes
        log["too_big"] = (await dev.request(*requests.configure(ConfigField.LLS_MODE, 2)))[0]
        log["set"] = (await dev.request(*requests.configure(ConfigField.LLS_MODE, 1)))[0]
        status, data = await dev.request(*requests.train(pixels, 1))
        log["train"] = (data[0], int.from_bytes(data[1:5], "little"))
        log["counters"] = parse_counters((await dev.request(*requests.read_counters()))[1])

    run_device(script, config=config)
    net = IntegerNetwork(config.mode(1))
    geo = LayerGeometry(config, LANES)
    trace = net.train_step(pixels, 1, record=True)
    assert log["n_modes"] == 2 and log["too_big"] == StatusCode.OUT_OF_RANGE and log["set"] == StatusCode.OK
    assert log["train"] == (trace.prediction, weight_checksum(geo, net.weights, net.biases))
    assert log["counters"]["lls_mode"] == 1


def test_system_top_identifies_over_its_uart_pins():
    """SystemTop in the Amaranth simulator: a host UART on its pins, IDENTIFY, the LEDs."""
    from amaranth import Module
    from rtl.system import LED_BUSY, LED_ERROR, LED_READY, SystemTop
    from rtl.uart import UARTRx, UARTTx

    m = Module()
    m.submodules.top = top = SystemTop(CONFIG, LANES, clk_freq=460800, baud=115200)
    m.submodules.host_tx = host_tx = UARTTx(top.divisor)
    m.submodules.host_rx = host_rx = UARTRx(top.divisor)
    m.d.comb += [top.uart_rx.eq(host_tx.tx), host_rx.rx.eq(top.uart_tx)]
    received = []
    seen = {"busy": 0, "ready": 0, "error": 0}

    async def collect(ctx):
        ctx.set(host_rx.o.ready, 1)
        async for _, _, valid, payload, leds in ctx.tick().sample(host_rx.o.valid, host_rx.o.payload, top.leds):
            if valid:
                received.append(payload)
            seen["busy"] |= (leds >> LED_BUSY) & 1
            seen["ready"] |= (leds >> LED_READY) & 1
            seen["error"] |= (leds >> LED_ERROR) & 1

    async def bench(ctx):
        corrupted = bytearray(encode_frame(Opcode.IDENTIFY, 41))
        corrupted[3] ^= 4
        for byte in bytes(corrupted) + encode_frame(Opcode.IDENTIFY, 42):
            ctx.set(host_tx.i.payload, byte)
            ctx.set(host_tx.i.valid, 1)
            await ctx.tick().until(host_tx.i.ready)
        ctx.set(host_tx.i.valid, 0)
        parser = FrameParser()
        for _ in range(20000):
            await ctx.tick()
            frames.extend(parser.feed(bytes(received)))
            received.clear()
            if len(frames) == 2:
                break

    frames = []
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_process(collect)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"busy": 1, "ready": 1, "error": 1}
    assert frames == [(StatusCode.BAD_CRC, 41 ^ 4, b""),
                      (StatusCode.OK, 42, Geometry.from_config(CONFIG, LANES).to_bytes())]


@ENABLES
def test_frame_counters_count_exactly(registered_enables):
    """frames_ok and frames_rejected are exact past a byte's carry (the bridge keeps them as
    byte-serial rings); a READ_COUNTERS counts its own response."""
    log = []

    async def script(dev):
        for _ in range(258):
            assert (await dev.request(*requests.configure(ConfigField.RULE, 0)))[0] == StatusCode.OK
        for _ in range(3):
            assert (await dev.request(0x7E))[0] == StatusCode.UNKNOWN_COMMAND
        for _ in range(2):
            status, data = await dev.request(*requests.read_counters())
            log.append(parse_counters(data))

    run_device(script, registered_enables=registered_enables)
    assert [(c["frames_ok"], c["frames_rejected"], c["frames_dropped"]) for c in log] == [(259, 3, 0), (260, 3, 0)]


def test_identity_from_a_rom_beside_a_large_buffer():
    """With a payload buffer of more than 256 bytes the identity record is a ROM of logic, not the
    buffer's block RAM tail; both answer the same, and the buffer still takes a long write."""
    geo = Geometry.from_config(CONFIG, LANES)
    geo.max_payload = 512
    log = {}

    async def script(dev):
        log["identify"] = await dev.request(*requests.identify())
        words = [pack_word(geo, [1, -2, 0, 0])] * geo.words[0]     # 277 bytes of payload
        log["write"] = (await dev.request(*requests.write_weights(0, 0, words)))[0]
        status, data = await dev.request(*requests.read_weights(0, 0, len(words)))
        log["read"] = (status, data)
        log["words"] = b"".join(words)

    run_device(script, max_payload=512)
    assert log["identify"] == (StatusCode.OK, geo.to_bytes())
    assert log["write"] == StatusCode.OK and log["read"] == (StatusCode.OK, log["words"])


def test_registered_enables_across_slices():
    """The registered enables with a word of 144 bits: three slices of the shift register (64, 64
    and 16 bits), each with its own copies. Weights read, written and read back; INITIALISE; a
    training step against the golden model."""
    from rtl.host_bridge import SHIFT_SLICE_BITS

    lanes = 9
    geo = Geometry.from_config(CONFIG, lanes)
    lgeo = LayerGeometry(CONFIG, lanes)
    assert SHIFT_SLICE_BITS < 8 * geo.word_bytes < 3 * SHIFT_SLICE_BITS
    net = IntegerNetwork(CONFIG)
    packed = [w.tolist() for w in pack_weights(lgeo, net.weights, net.biases)]
    pixels = torch.randint(0, 256, (CONFIG.layers[0],), generator=torch.Generator().manual_seed(5))
    rng = random.Random(5)

    def padding(k, a, p):
        return a >= (lgeo.groups[k] - 1) * (lgeo.fan_in[k] + 1) and p >= lgeo.last_real[k]

    new = [[[0 if padding(k, a, p) else rng.randrange(-(1 << (CONFIG.weight_bits[k] - 1)),
                                                      1 << (CONFIG.weight_bits[k] - 1))
             for p in range(lanes)] for a in range(geo.words[k])] for k in range(geo.n_layers)]
    log = {}

    async def script(dev):
        log["initial"] = await dev.read_weights(geo)
        await dev.write_weights(geo, new)
        log["written"] = await dev.read_weights(geo)
        assert (await dev.request(*requests.initialise()))[0] == StatusCode.OK
        status, data = await dev.request(*requests.train(pixels, 1))
        log["train"] = (status, data[0], int.from_bytes(data[1:5], "little"))
        log["weights"] = await dev.read_weights(geo)

    run_device(script, lanes=lanes, registered_enables=True)
    assert log["initial"] == packed
    assert log["written"] == new
    trace = net.train_step(pixels, 1, record=True)
    assert log["train"] == (StatusCode.OK, trace.prediction, weight_checksum(lgeo, net.weights, net.biases))
    assert log["weights"] == [w.tolist() for w in pack_weights(lgeo, net.weights, net.biases)]


@ENABLES
def test_frame_counters_read_while_a_frame_is_dropped(registered_enables):
    """A frame dropped (timed out) while READ_COUNTERS's response is sending the frame counters
    waits for the read: that read shows the counters as they were, and the next one counts the
    drop where it belongs (a pass over the ring started mid-read would add to a byte the read had
    turned to, not to frames_dropped's first). The partial frame follows the request by 1, 12,
    23, ... cycles, so its timeout lands before, inside and after the counters' bytes."""
    timeout = 64
    reads = []

    async def script(dev):
        ctx = dev.ctx
        for delay in range(1, 500, 11):
            opcode, payload = requests.read_counters()
            dev.tag = (dev.tag + 1) & 0xFF
            await dev.send(encode_frame(opcode, dev.tag, payload))
            await ctx.tick().repeat(delay)
            await dev.send(encode_frame(opcode, 0, payload)[:4])            # stalls mid-frame
            got = await dev.frames(20000)
            await ctx.tick().repeat(2 * timeout)                           # dropped by now
            assert len(got) == 1 and got[0][:2] == (StatusCode.OK, dev.tag), (delay, got)
            reads.append(parse_counters(got[0][2]))
        status, data = await dev.request(*requests.read_counters())
        reads.append(parse_counters(data))

    run_device(script, timeout=timeout, registered_enables=registered_enables)
    rounds = len(reads) - 1
    for i, counters in enumerate(reads):
        # READ_COUNTERS counts its own response; round i's drop may come before its read or after.
        assert counters["frames_ok"] == i + 1 and counters["frames_rejected"] == 0, (i, counters)
        assert counters["frames_dropped"] in ((i, i + 1) if i < rounds else (rounds,)), (i, counters)
