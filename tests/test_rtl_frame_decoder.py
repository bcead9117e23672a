"""The frame decoder's timeout, to the cycle: a stall one cycle short of it keeps the frame, a stall
of ``timeout`` cycles drops it, and a drop waits for its counter; and its length checks (a length
past the buffer refused at once), each with the checks compared and registered."""

import pytest
from amaranth.sim import Simulator

from rtl.frame_decoder import FrameDecoder
from rtl.host_protocol import StatusCode, encode_frame

FRAME = encode_frame(1, 7, b"\x01\x02\x03")


def run(timeout, gap=0, at=None, drop_busy=0, registered_limit=False, stream=FRAME + FRAME):
    """Send ``stream`` back to back, with ``gap`` idle cycles before byte ``at``; with
    ``drop_busy`` the drop counter is busy that many cycles after the stall begins. Returns the
    offered frames' ``(status, length)`` and the drops."""
    dut = FrameDecoder(64, timeout, registered_limit=registered_limit)
    out = {"frames": [], "drops": 0}

    async def bench(ctx):
        ctx.set(dut.frame.ready, 1)
        ctx.set(dut.drop_ready, 1)
        for k, byte in enumerate(stream):
            if k == at:
                ctx.set(dut.drop_ready, 0 if drop_busy else 1)
                for cycle in range(gap):
                    if cycle == drop_busy:
                        ctx.set(dut.drop_ready, 1)
                    await ctx.tick()
                ctx.set(dut.drop_ready, 1)
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, byte)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
        for _ in range(40):
            await ctx.tick()

    async def watch(ctx):
        async for _, _, valid, status, length, dropped in ctx.tick().sample(
                dut.frame.valid, dut.frame.payload.status, dut.frame.payload.length, dut.dropped):
            if valid:
                out["frames"].append((status, length))
            out["drops"] += dropped

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    return out["frames"], out["drops"]


# The limit compared in front of the FSM (the iCE40's), and kept as a register (the ECP5's).
LIMIT = pytest.mark.parametrize("registered_limit", [False, True], ids=["compare", "register"])


@LIMIT
@pytest.mark.parametrize("timeout", [1, 2, 3, 7])
@pytest.mark.parametrize("at", [3, 5, 8])
def test_decoder_timeout_to_the_cycle(timeout, at, registered_limit):
    frames, drops = run(timeout, timeout - 1, at, registered_limit=registered_limit)
    assert (frames, drops) == ([(StatusCode.OK, 3)] * 2, 0), "a stall one cycle short of the timeout"
    frames, drops = run(timeout, timeout, at, registered_limit=registered_limit)
    # The first frame is dropped; its rest is hunted through as noise, the second is served.
    assert (frames, drops) == ([(StatusCode.OK, 3)], 1), "a stall of the timeout"


@LIMIT
def test_decoder_timeout_waits_for_the_drop_counter(registered_limit):
    # The counter is busy past the limit: the drop waits for it, counted once.
    frames, drops = run(4, 12, 5, drop_busy=9, registered_limit=registered_limit)
    assert (frames, drops) == ([(StatusCode.OK, 3)], 1)


@LIMIT
@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 128, 256, 300])
def test_decoder_checks_the_length(length, registered_limit):
    # A frame of `length` zero bytes, then FRAME: a length past the 64-byte buffer is refused at
    # once (its length not kept) and its payload hunted through; either way the next frame
    # arrives intact.
    frames, _ = run(0, registered_limit=registered_limit, stream=encode_frame(1, 7, bytes(length)) + FRAME)
    assert frames[1:] == [(StatusCode.OK, 3)]
    if length <= 64:
        assert frames[0] == (StatusCode.OK, length)
    else:
        assert frames[0][0] == StatusCode.BAD_LENGTH
