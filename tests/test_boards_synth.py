"""Bitstream builds for real (Yosys + nextpnr), their reports checked. Marked ``synth``: skipped
by ``make test``, run by ``make synth-test`` (``pytest --synth -m synth``), a step of ``.ci/run``.
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _processes import processes_in
from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from boards.cli import board_config
from boards.flow import ProgrammingRefused, SynthesisError, build, build_seeds, program_bitstream, summary_line
from boards.platforms import BOARDS
from rtl.mac_lane import MACLane

pytestmark = pytest.mark.synth


class LanesOnly(wiring.Component):
    """``P`` MAC lanes behind a shift register on ``uart_rx``: a small design with
    ``SystemTop``'s signature that exercises the whole flow (PLL, DSP inference, report) in a
    couple of minutes."""

    def __init__(self, config, lanes, *, clk_freq, baud=115200, host_domain="sync"):
        # All of it runs in sync, whatever the board's host domain: its pins are asynchronous and
        # its LEDs levels (the board top registers them in the host domain).
        self.config = config
        self.lanes = lanes
        super().__init__({"uart_rx": In(1), "uart_tx": Out(1), "leds": Out(4)})

    def elaborate(self, platform):
        m = Module()
        chain = Signal(2 * self.config.mult_bits + 2)
        m.d.sync += chain.eq(Cat(self.uart_rx, chain[:-1]))
        n = self.config.mult_bits
        sums = []
        for p in range(self.lanes):
            lane = MACLane.from_config(self.config)
            m.submodules[f"lane{p}"] = lane
            m.d.comb += [lane.a.eq(chain[:n] ^ p), lane.b.eq(chain[n:2 * n]), lane.en.eq(chain[-1]),
                         lane.load.eq(chain[-2]), lane.load_value.eq(chain)]
            # One registered parity per lane: the pins' logic stays off the lanes' paths.
            parity = Signal(name=f"parity{p}")
            m.d.sync += parity.eq(lane.acc.xor())
            sums.append(parity)
        tx = Signal()
        m.d.sync += tx.eq(Cat(*sums).xor())
        m.d.comb += [self.uart_tx.eq(tx), self.leds.eq(Cat(*sums)[:4])]
        return m


def _programmer(tmp_path, monkeypatch):
    """A stand-in for iceprog, first on ``PATH`` with ``ICEPROG`` unset (as on a user's machine),
    that keeps a copy of the bitstream it was given: the copy's path."""
    record = tmp_path / "programmed.bin"
    tools = tmp_path / "tools"
    tools.mkdir(parents=True)
    script = tools / "iceprog"
    script.write_text(f"#!/bin/sh\ncp \"$1\" {record}\n")
    script.chmod(0o755)
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    return record


def test_flow_end_to_end_icebreaker_lanes(tmp_path, monkeypatch):
    """The flow completes (Yosys to its end, no unmapped cells, a nextpnr report), the lanes
    take the 8 SB_MAC16 with their accumulators, 48 MHz is met, and the bitstream goes to the
    programmer."""
    board = BOARDS["icebreaker"]
    config = board_config(board, (64, 32, 10))
    programmed = _programmer(tmp_path / "programmer", monkeypatch)
    monkeypatch.delenv("SYNCHRONY_SYNTH_OPTS", raising=False)
    monkeypatch.delenv("SYNCHRONY_NEXTPNR_OPTS", raising=False)
    report = build("icebreaker", config, build_root=tmp_path, system=LanesOnly, force=True, program=True,
                   log=lambda *_: None)
    print(summary_line(report))
    assert programmed.read_bytes() == (tmp_path / "icebreaker" / "top.bin").read_bytes()
    assert (tmp_path / "icebreaker" / "top.bin").stat().st_size > 0
    written = json.loads((tmp_path / "icebreaker" / "report.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert set(written["resources"]) == {"lut", "ff", "dsp", "ram", "spram"}
    assert report["resources"]["dsp"] == {"used": 8, "total": 8}
    assert report["design"] == "LanesOnly"
    assert report["timing"] == "pass" and report["fmax_mhz"] >= 48
    # The board's own tool options reach the tools, and the report names them.
    assert report["synth_opts"] == list(board.synth_opts) and report["nextpnr_opts"] == list(board.nextpnr_opts)
    assert f"synth_ice40 {' '.join(board.synth_opts)} " in (tmp_path / "icebreaker" / "top.ys").read_text()
    assert f" {' '.join(board.nextpnr_opts)}" in (tmp_path / "icebreaker" / "build_top.sh").read_text()


def test_flow_does_not_program_a_build_that_fails_timing(tmp_path, monkeypatch):
    """A bitstream that does not meet timing is built and reported but not programmed (it may
    compute wrong results on the board), unless forced."""
    board = BOARDS["icebreaker"]
    config = board_config(board, (64, 32, 10))
    programmed = _programmer(tmp_path, monkeypatch)
    # The lanes alone reach ~86 MHz.
    with pytest.raises(ProgrammingRefused, match=r"timing is not met at .* --target-mhz \d+, or add --force"):
        build("icebreaker", config, build_root=tmp_path / "build", system=LanesOnly, target_mhz=200, program=True,
              force=False, log=lambda *_: None)
    report = json.loads((tmp_path / "build" / "icebreaker" / "report.json").read_text())
    assert report["timing"] == "fail"
    assert (tmp_path / "build" / "icebreaker" / "top.bin").stat().st_size > 0
    assert not programmed.exists()
    program_bitstream(report, tmp_path / "build", force=True)
    assert programmed.read_bytes() == (tmp_path / "build" / "icebreaker" / "top.bin").read_bytes()


def test_flow_keeps_the_best_of_several_seeds(tmp_path, monkeypatch):
    """One build per seed, the best copied to the board's directory with every seed's figures in
    its report and programmed; a seed whose build fails is recorded, not fatal, unless every seed
    fails."""
    board = BOARDS["icebreaker"]
    config = board_config(board, (64, 32, 10))
    programmed = _programmer(tmp_path / "programmer", monkeypatch)
    report = build_seeds("icebreaker", config, seeds=[1, 2], build_root=tmp_path, system=LanesOnly, force=True,
                         program=True, log=lambda *_: None)
    seeds = {s["seed"]: s for s in report["seed_sweep"]["seeds"]}
    assert set(seeds) == {1, 2}
    for seed in (1, 2):
        built = json.loads((tmp_path / f"seed{seed}" / "icebreaker" / "report.json").read_text())
        assert built["seed"] == seed and seeds[seed]["fmax_mhz"] == built["fmax_mhz"]
    best = max(seeds.values(), key=lambda s: s["fmax_mhz"])
    assert report["seed"] == best["seed"] and report["fmax_mhz"] == best["fmax_mhz"]
    assert report["seed_sweep"]["mean_fmax_mhz"] == round((seeds[1]["fmax_mhz"] + seeds[2]["fmax_mhz"]) / 2, 2)
    kept = tmp_path / "icebreaker"
    assert json.loads((kept / "report.json").read_text()) == json.loads(json.dumps(report))
    assert (kept / "top.bin").read_bytes() == (tmp_path / f"seed{best['seed']}" / "icebreaker" / "top.bin").read_bytes()
    assert programmed.read_bytes() == (kept / "top.bin").read_bytes()

    import boards.flow

    real_build = boards.flow.build

    def stalling_build(*args, seed, **kwargs):
        if seed == 5:
            raise SynthesisError("the build took longer than its 1 s timeout and was stopped")
        return real_build(*args, seed=seed, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(boards.flow, "build", stalling_build)
        report = build_seeds("icebreaker", config, seeds=[5, 1], build_root=tmp_path / "one", system=LanesOnly,
                             force=True, log=lambda *_: None)
    assert report["seed"] == 1 and report["seed_sweep"]["seeds"] == [
        {"seed": 5, "error": "the build took longer than its 1 s timeout and was stopped"},
        {"seed": 1, "fmax_mhz": report["fmax_mhz"], "timing": report["timing"]}]
    assert report["seed_sweep"]["mean_fmax_mhz"] == report["fmax_mhz"]

    with pytest.raises(SynthesisError, match="no seed of"):
        build_seeds("icebreaker", config, seeds=[3], build_root=tmp_path / "stalled", system=LanesOnly, force=True,
                    timeout=0.5, log=lambda *_: None)
    with pytest.raises(ValueError, match="distinct"):
        build_seeds("icebreaker", config, seeds=[1, 1], build_root=tmp_path, system=LanesOnly)


def test_flow_timeout_stops_the_tools(tmp_path):
    """A build past its timeout is a clear error, and no tool it started is left running."""
    board = BOARDS["icebreaker"]
    config = board_config(board, (64, 32, 10))
    with pytest.raises(SynthesisError, match=r"longer than its 3 s timeout"):
        build("icebreaker", config, build_root=tmp_path, system=LanesOnly, force=True, timeout=3,
              log=lambda *_: None)
    assert processes_in(tmp_path) == []
    assert not (tmp_path / "icebreaker" / "report.json").exists()


def test_flow_board_default_timeout(tmp_path, monkeypatch):
    """Without a timeout of its own a build is bounded by its board's (the iCEBreaker's router2
    can stall for good), and the error says whose it was and what to try."""
    monkeypatch.setitem(BOARDS, "icebreaker", dataclasses.replace(BOARDS["icebreaker"], timeout=3))
    config = board_config(BOARDS["icebreaker"], (64, 32, 10))
    with pytest.raises(SynthesisError,
                       match=r"longer than the icebreaker's default 3 s timeout .*another --seed"):
        build("icebreaker", config, build_root=tmp_path, system=LanesOnly, force=True, log=lambda *_: None)
    assert processes_in(tmp_path) == []


def test_flow_stopped_stops_the_tools(tmp_path):
    """A build whose process is stopped (SIGTERM) stops every tool it started too."""
    script = (f"import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}, {os.getcwd()!r}]\n"
              "from test_boards_synth import LanesOnly\n"
              "from boards.cli import board_config\n"
              "from boards.flow import build\n"
              "from boards.platforms import BOARDS\n"
              f"build('icebreaker', board_config(BOARDS['icebreaker'], (64, 32, 10)), build_root={str(tmp_path)!r}, "
              "system=LanesOnly, force=True, log=print)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for line in process.stdout:        # the tools start after this line
        if line.startswith("building icebreaker"):
            break
    # Elaboration comes first, then the script is written, then the tools start: on a loaded
    # machine (two CI runs at once) elaboration alone took over a minute, so the tools get
    # their minute from the script's appearance.
    script_file = tmp_path / "icebreaker" / "build_top.sh"
    deadline = time.monotonic() + 600
    while not script_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert script_file.exists(), "the build never wrote its script"
    deadline = time.monotonic() + 60
    while not processes_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_in(tmp_path), "the build's tools never started"
    process.terminate()
    assert process.wait(timeout=30) != 0
    assert processes_in(tmp_path) == []


# In `make synth-test` since session 20: with router1 (the board's default) the 81 %-full UP5K
# routes at every seed tried, in about 2 minutes (router2 stalled on half of them).
def test_icebreaker_bitstream(tmp_path):
    """The engine's own UP5K build (64-128-10 DRTP, 8 lanes, the board top with the host
    protocol) at the board's defaults: it must fit, with the 8 SB_MAC16 as its lanes and the
    weights in the 4 SPRAMs, and meet 48 MHz (at the board's placement seed, 4, with the pinned
    tools: 49.16 MHz in session 23; seeds 1, 3, 5: 48.14-50.63, docs/results.md)."""
    board = BOARDS["icebreaker"]
    config = board_config(board, (64, 128, 10))
    report = build("icebreaker", config, build_root=tmp_path, log=lambda *_: None)
    print(summary_line(report))
    resources = report["resources"]
    assert resources["dsp"] == {"used": 8, "total": 8}
    assert resources["spram"] == {"used": 4, "total": 4}
    assert resources["lut"]["used"] <= resources["lut"]["total"]
    assert report["pipelines"]["weight_store"] == "spram"
    assert report["seed"] == 4 and report["target_mhz"] == 48
    assert report["timing"] == "pass", (f"timing: {report['fmax_mhz']} MHz against {report['target_mhz']} MHz "
                                        f"(critical path {report['critical_path']})")
    assert report["fmax_mhz"] >= 48
