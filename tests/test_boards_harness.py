"""``boards.harness``: a block alone behind a shift chain (``synchrony synth --block``)."""

import pytest
from amaranth import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from boards.cli import board_config
from boards.harness import BLOCKS, BlockHarness, block_harness
from boards.platforms import BOARDS
from golden.cli import main


class Toy(wiring.Component):
    """Inputs of several shapes (a stream's payload and valid, its output's ready) and outputs
    that are functions of them."""

    i: In(stream.Signature(5))
    o: Out(stream.Signature(3))
    flag: In(1)
    parity: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o.payload.eq(self.i.payload[:3]), self.o.valid.eq(self.i.valid),
                     self.i.ready.eq(self.o.ready), self.parity.eq(self.flag ^ self.i.payload[4])]
        return m


def _run(bits, toy=None):
    """Shift ``bits`` into a harness around ``toy`` (a :class:`Toy`); the toy's inputs, its
    outputs (flattened, as the harness takes them) and the harness's ``uart_tx`` after each bit."""
    toy = toy or Toy()
    dut = BlockHarness(lambda config, lanes, platform: toy, None, 8, clk_freq=1e6)
    outputs = [value for _, member, value in toy.signature.flatten(toy) if member.flow == Out]
    seen = []

    async def bench(ctx):
        for bit in bits:
            ctx.set(dut.uart_rx, bit)
            await ctx.tick()
            seen.append((ctx.get(toy.i.payload), ctx.get(toy.i.valid), ctx.get(toy.o.ready), ctx.get(toy.flag),
                         ctx.get(Cat(*outputs)), ctx.get(dut.uart_tx)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


def _signature_tx(outputs, width):
    """``uart_tx`` by the model: the outputs registered, then XORed into the rotating
    signature register (bit 0 out), each step a cycle."""
    signature, registered, tx = 1, 0, []
    for value in outputs:
        tx.append(signature & 1)
        signature = ((signature << 1 | signature >> (width - 1)) & ((1 << width) - 1)) ^ registered
        registered = value
    return tx


def test_every_input_is_driven_from_the_chain():
    # 8 input bits (payload 5, valid, ready, flag), in that order from the chain's first bit,
    # where the bits enter: after the pattern (and the synchroniser's delay) its first bit is
    # the flag.
    pattern = [1, 0, 1, 1, 0, 0, 1, 0]
    seen = _run([0] * 8 + pattern + [0] * 8)
    chain = 0
    for bit in pattern:
        chain = chain << 1 | bit
    values = [payload | valid << 5 | ready << 6 | flag << 7 for payload, valid, ready, flag, *_ in seen]
    assert chain in values
    # Bit by bit on the way: each value is the previous one shifted up by one.
    start = values.index(chain) - len(pattern)
    assert values[start] == 0
    for before, after in zip(values[start:], values[start + 1:start + len(pattern) + 1]):
        assert after >> 1 == before & 0x7f


def test_outputs_reach_uart_tx():
    # uart_tx is bit 0 of the signature register fed by the registered outputs (o.payload: 3 bits
    # of i.payload, o.valid, i.ready: o.ready, parity), cycle for cycle as the model says.
    seen = _run([1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1] + [0] * 12)
    outputs = [out for *_, out, _ in seen]
    assert any(outputs)
    # The outputs seen after a tick were the ones registered at the next.
    assert [tx for *_, tx in seen] == _signature_tx([0] + outputs, 6)[1:]


class Twins(Toy):
    """Two equal outputs (``parity`` and ``twin``): one XOR of every output would cancel them."""

    twin: Out(1)

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.twin.eq(self.flag ^ self.i.payload[4])
        return m


def test_equal_outputs_do_not_cancel():
    pattern = [1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1] + [0] * 14
    seen = _run(pattern, Twins())
    outputs = [out for *_, out, _ in seen]
    twins = [out >> 5 & 1 for out in outputs]
    assert twins == [out >> 6 & 1 for out in outputs] and any(twins)
    tx = [tx for *_, tx in seen]
    assert tx == _signature_tx([0] + outputs, 7)[1:]
    # Without the twins' bits TX differs: they reach it, though equal.
    assert tx != _signature_tx([0] + [out & 0x1f for out in outputs], 7)[1:]


def test_block_harness_names_the_block():
    for name in BLOCKS:
        assert block_harness(name).__name__ == f"BlockHarness[{name}]"
    with pytest.raises(ValueError, match="unknown block 'nope'; choose one of engine, layer-engine"):
        block_harness("nope")


def test_every_block_elaborates_in_its_harness():
    from amaranth.back import rtlil
    config = board_config(BOARDS["icebreaker"], (16, 8, 4))
    for name in BLOCKS:
        harness = block_harness(name)(config, 8, clk_freq=12e6)
        assert "block" in rtlil.convert(harness, ports=[harness.uart_rx, harness.uart_tx, harness.leds])


def test_cli_refuses_to_program_a_block(capsys):
    assert main(["synth", "--board", "icebreaker", "--block", "layer-engine", "--program"]) != 0
    assert "--block builds a block alone" in capsys.readouterr().err
