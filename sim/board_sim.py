"""The simulated board: :class:`rtl.system.SystemTop` (UART pins included) or the bare protocol
unit under Verilator, exchanging *bytes* with cocotb, and a TCP bridge so the host tool talks to it
through ``socket://127.0.0.1:PORT`` exactly as it talks to a board.

- :class:`ByteHarness` (gateware, simulation only): Python never sits in the per-bit or per-byte
  loop. Bytes go in as bursts of up to :data:`BURST` (one wide value and a sequence number) and
  come out through a window of the last :data:`BURST` bytes and a byte count. In ``"uart"`` mode
  a harness UART is wired pin to pin to ``SystemTop.uart_rx``/``uart_tx``; in ``"direct"`` mode
  the bursts feed :class:`rtl.host_interface.HostInterface` (the protocol unit) at a byte per
  cycle, for the fuzz test.
- :class:`ByteTB` (cocotb side): clock, reset, ``send``, ``advance``, ``quiet``.
- :func:`serve_tcp` (cocotb side): the bridge loop. The simulated clock stops whenever the device
  is quiet and no byte is on its way in: a host that thinks for a second costs no simulation.
- :func:`run_board` builds and runs a cocotb test of ``tests/cocotb/cocotb_system.py``.
"""

import json
import os

from amaranth import ClockDomain, DomainRenamer, Module, Mux, ResetSignal, Signal
from amaranth.lib import cdc, wiring
from amaranth.lib.wiring import In, Out

from rtl.host_interface import HostInterface
from rtl.system import LED_BUSY, SystemTop
from rtl.uart import UARTRx, UARTTx

from .cocotb_runner import PARAMS_ENV, REPO_ROOT, run_cocotb
from .engine_sim import BUILD_ARGS, MAKE_VARIABLES, add_sim_clock

__all__ = ["BURST", "SIM_BAUD", "SIM_DIVISOR", "ByteHarness", "ByteTB", "serve_tcp", "run_board", "params"]

#: Bytes per input burst and in the output window.
BURST = 64
#: The simulated UART: 4 clock cycles per bit at a nominal 115200 baud (so clk_freq = 460.8 kHz;
#: the frame timeout and LED timings scale with it).
SIM_BAUD = 115200
SIM_DIVISOR = 4
COCOTB_MODULE = "cocotb_system"


def params():
    return json.loads(os.environ.get(PARAMS_ENV, "{}"))


class ByteHarness(wiring.Component):
    """A byte pipe between cocotb and the device (``SystemTop`` over a UART, or ``HostInterface``).

    Members
    -------
    in_seq, in_len, in_data : In
        A burst of ``in_len`` bytes (byte ``i`` in bits ``8i``) is taken when ``in_seq`` differs
        from ``in_taken`` and the previous burst has been sent.
    in_taken : Out(16)
    in_idle : Out(1)
        No input byte is waiting or being sent.
    out_count : Out(32)
        Bytes received from the device so far.
    out_window : Out(8 * BURST)
        The last ``BURST`` bytes, the newest in bits 0-7.
    out_ack : In(32)
        ``out_count`` as far as cocotb has read it; in ``direct`` mode the device waits when
        ``BURST`` bytes are unread (a UART cannot wait: cocotb reads often enough).
    busy : Out(1)
        The device has work in progress (``SystemTop``'s busy LED).
    receiving : Out(1)
        ``direct`` mode: the decoder is inside a frame.
    leds : Out(4)
    reset, clk : In(1)

    With ``host_divider`` above 1 the device's protocol (and this harness's byte logic) runs in a
    ``host`` domain on ``clk`` divided by it, the engine on ``clk``, through the device's clock
    crossings: the iCEBreaker's arrangement (engine 48 MHz, protocol 12 MHz) is 4.
    """

    def __init__(self, config, lanes, mode, *, frame_timeout=None, host_divider=1):
        if mode not in ("uart", "direct"):
            raise ValueError(f"ByteHarness: mode must be 'uart' or 'direct', got {mode!r}")
        if host_divider < 1 or host_divider != int(host_divider):
            raise ValueError(f"ByteHarness: host_divider must be a positive integer, got {host_divider!r}")
        self.mode = mode
        self.config = config
        self.lanes = lanes
        self.host_divider = int(host_divider)
        host = "host" if self.host_divider > 1 else "sync"
        if mode == "uart":
            self.device = SystemTop(config, lanes, clk_freq=SIM_BAUD * SIM_DIVISOR, baud=SIM_BAUD, host_domain=host)
        else:
            self.device = HostInterface(config, lanes, frame_timeout=frame_timeout or 256, host_domain=host)
        super().__init__({
            "in_seq": In(16), "in_len": In(range(BURST + 1)), "in_data": In(8 * BURST),
            "in_taken": Out(16), "in_idle": Out(1),
            "out_count": Out(32), "out_window": Out(8 * BURST), "out_ack": In(32),
            "busy": Out(1), "receiving": Out(1), "leds": Out(4),
            "reset": In(1), "clk": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        add_sim_clock(m, self.clk, self.reset)
        host = "sync"
        if self.host_divider > 1:
            # clk divided (a register's clock: Verilator schedules it as a clock of its own), reset
            # from sync's reset.
            host = "host"
            m.domains.host = cd_host = ClockDomain("host")
            phase = Signal(range(self.host_divider))
            m.d.por += phase.eq(Mux(phase == self.host_divider - 1, 0, phase + 1))
            host_clk = Signal()
            m.d.por += host_clk.eq(phase < self.host_divider // 2)
            m.d.comb += cd_host.clk.eq(host_clk)
            m.submodules.host_reset = cdc.ResetSynchronizer(ResetSignal("sync"), domain="host")

        m.submodules.device = device = self.device
        if self.mode == "uart":
            # The harness's UART at the device's bit rate: in its host domain.
            host_tx, host_rx = UARTTx(device.divisor), UARTRx(device.divisor)
            m.submodules.host_tx = DomainRenamer(host)(host_tx)
            m.submodules.host_rx = DomainRenamer(host)(host_rx)
            m.d.comb += [device.uart_rx.eq(host_tx.tx), host_rx.rx.eq(device.uart_tx)]
            sink, source = host_tx.i, host_rx.o
            sending = host_tx.busy
            m.d.comb += [self.busy.eq(device.leds[LED_BUSY]), self.leds.eq(device.leds)]
        else:
            sink, source = device.i, device.o
            sending = 0
            m.d.comb += [self.busy.eq(device.busy), self.receiving.eq(device.receiving),
                         self.leds.eq(device.ready)]

        # Input bursts.
        data = Signal(8 * BURST)
        left = Signal(range(BURST + 1))
        with m.If((left == 0) & (self.in_seq != self.in_taken)):
            m.d[host] += [data.eq(self.in_data), left.eq(self.in_len), self.in_taken.eq(self.in_seq)]
        m.d.comb += [sink.valid.eq(left != 0), sink.payload.eq(data[:8])]
        with m.If(sink.valid & sink.ready):
            m.d[host] += [data.eq(data >> 8), left.eq(left - 1)]
        m.d.comb += self.in_idle.eq((left == 0) & (self.in_seq == self.in_taken) & ~sending)

        # Output window.
        m.d.comb += source.ready.eq((self.out_count - self.out_ack) < BURST)
        with m.If(source.valid & source.ready):
            m.d[host] += [self.out_window.eq((self.out_window << 8) | source.payload),
                          self.out_count.eq(self.out_count + 1)]
        return m


class ByteTB:
    """cocotb side of a :class:`ByteHarness`: bursts in, bytes out, time in slices.

    Parameters
    ----------
    dut : the harness toplevel
    period_ns : int
    """

    def __init__(self, dut, period_ns=10):
        self.dut = dut
        self.period_ns = period_ns
        self.in_seq = 0
        self.seen = 0
        self.cycles = 0
        self.queue = bytearray()

    async def reset(self):
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import ClockCycles

        dut = self.dut
        for name in ("in_seq", "in_len", "in_data", "out_ack"):
            getattr(dut, name).value = 0
        cocotb.start_soon(Clock(dut.clk, self.period_ns, unit="ns").start())
        dut.reset.value = 1
        await ClockCycles(dut.clk, 3)
        dut.reset.value = 0
        await ClockCycles(dut.clk, 3)
        self.in_seq = int(dut.in_taken.value)
        self.seen = int(dut.out_count.value)

    def send(self, data):
        """Queue bytes for the device (handed over in bursts by :meth:`advance`)."""
        self.queue += data

    def _load(self):
        dut = self.dut
        if self.queue and int(dut.in_taken.value) == self.in_seq:
            burst = bytes(self.queue[:BURST])
            del self.queue[:BURST]
            dut.in_data.value = int.from_bytes(burst, "little")
            dut.in_len.value = len(burst)
            self.in_seq = (self.in_seq + 1) & 0xFFFF
            dut.in_seq.value = self.in_seq

    def collect(self):
        """Bytes the device sent since the last call."""
        dut = self.dut
        count = int(dut.out_count.value)
        new = (count - self.seen) & 0xFFFFFFFF
        if not new:
            return b""
        if new > BURST:
            raise AssertionError(f"the output window overflowed: {new} bytes unread")
        window = int(dut.out_window.value).to_bytes(BURST, "little")
        self.seen = count
        dut.out_ack.value = count
        return bytes(reversed(window[:new]))

    async def advance(self, cycles):
        """Run ``cycles`` clock cycles (handing queued bytes over first); the bytes received."""
        from cocotb.triggers import Timer
        self._load()
        await Timer(cycles * self.period_ns, unit="ns")
        self.cycles += cycles
        self._load()
        return self.collect()

    def quiet(self):
        """Nothing queued or being sent in, the device idle: time may stop."""
        dut = self.dut
        return (not self.queue and int(dut.in_idle.value) and not int(dut.busy.value)
                and int(dut.out_count.value) == self.seen)

    def receiving(self):
        return bool(int(self.dut.receiving.value))


async def serve_tcp(tb, server, *, sessions=0, slice_cycles=512, log=None):
    """Bridge TCP clients to the device, one at a time, until ``sessions`` have ended (0: forever)."""
    import select
    done = 0
    while not sessions or done < sessions:
        conn, peer = server.accept()
        if log:
            log(f"client {peer[0]}:{peer[1]} connected")
        conn.setblocking(False)
        open_ = True
        while open_ or not tb.quiet():
            if open_:
                if tb.quiet():
                    # Nothing to simulate: wait for the host (the simulated clock stands still).
                    select.select([conn], [], [], None)
                try:
                    data = conn.recv(65536)
                    if data:
                        tb.send(data)
                    else:
                        open_ = False
                except BlockingIOError:
                    pass
                except OSError:
                    open_ = False
            out = await tb.advance(slice_cycles)
            if out and open_:
                try:
                    conn.setblocking(True)
                    conn.sendall(out)
                    conn.setblocking(False)
                except OSError:
                    open_ = False
        conn.close()
        done += 1
        if log:
            log(f"client {peer[0]}:{peer[1]} closed ({tb.cycles} cycles simulated so far)")


def run_board(config, lanes, test, *, mode="uart", host_divider=1, waves=False, build_root=None, run_name=None,
              **extra):
    """Build a :class:`ByteHarness` and run cocotb test ``test`` of ``tests/cocotb/cocotb_system.py``."""
    top = ByteHarness(config, lanes, mode, host_divider=host_divider)
    block = (f"board_{mode}_" + "_".join(map(str, config.layers)) + f"_{config.rule}_p{lanes}"
             + (f"_host{host_divider}" if host_divider > 1 else ""))
    payload = {"config": config.to_dict(), "lanes": lanes, "mode": mode, **extra}
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{saved or ''} -- {MAKE_VARIABLES}".strip()
    try:
        return run_cocotb(top, block=block, toplevel="board_top", test_module=COCOTB_MODULE,
                          test_paths=[REPO_ROOT / "tests" / "cocotb"], params=payload, testcase=test,
                          waves=waves, build_root=build_root, run_name=run_name, build_args=BUILD_ARGS)
    finally:
        if saved is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = saved
