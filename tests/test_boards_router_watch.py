"""The flow's watch on nextpnr's router2 (``boards.flow.RouterStallWatch``): a build whose router
has stalled is stopped with a clear error, long before the board's timeout, and one that still
makes progress is left alone. Fast: no real tools."""

import time

import pytest
from _processes import processes_in

from boards import flow
from boards.cli import board_config
from boards.flow import RouterStallWatch, SynthesisError, _run_script, build
from boards.platforms import BOARDS


def _line(iteration, overused):
    return f"Info:     iter={iteration} wires=60000 overused={overused} overuse={overused} archfail=NA\n"


def test_a_plateau_of_overused_wires_is_a_stall(tmp_path):
    log = tmp_path / "top.tim"
    watch = RouterStallWatch(log, iterations=50)
    assert watch() is None                                  # nextpnr has not started
    log.write_text("Info: Running router2...\n" + "".join(_line(i, max(300 - 20 * i, 2)) for i in range(1, 61)))
    # 2 wires from iteration 15 on: 45 iterations, not yet 50.
    assert watch() is None
    with log.open("a") as out:
        out.write("".join(_line(i, 2) for i in range(61, 65)))
        out.write("Info:     iter=65 wires=60000 over")  # a line being written
    assert watch() is None
    with log.open("a") as out:
        out.write("used=2 overuse=2 archfail=NA\n")
    assert watch() == ("nextpnr's router2 stalled: 2 or more wires overused for 50 iterations "
                       "(since iteration 15)")


def test_slow_progress_is_not_a_stall(tmp_path):
    """A new lowest count now and then, however slowly, and a router that finishes (0 wires),
    are left alone: session 14's 784-80-10 went 1552 iterations without a new lowest and routed."""
    log = tmp_path / "top.tim"
    watch = RouterStallWatch(log, iterations=50)
    with log.open("w") as out:
        for i in range(1, 400):
            out.write(_line(i, 100 - i // 49))
    assert watch() is None and watch.lowest == 92
    with log.open("a") as out:
        out.write("".join(_line(i, 0) for i in range(400, 500)))
    assert watch() is None


def test_a_stalled_router_is_stopped(tmp_path):
    """A script that logs a plateau and then runs on (as a stalled nextpnr does) is stopped within a
    few polls, every process it started with it."""
    lines = "".join(_line(i, 3) for i in range(1, 201))
    (tmp_path / "router.sh").write_text(f"cat > top.tim <<'LOG'\n{lines}LOG\nsleep 120 &\nsleep 120\n")
    start = time.monotonic()
    verdict = _run_script(tmp_path, "router.sh", timeout=60,
                          watch=RouterStallWatch(tmp_path / "top.tim", iterations=100), poll=0.1)
    assert verdict.startswith("nextpnr's router2 stalled: 3 or more wires overused for 199 iterations")
    assert time.monotonic() - start < 30
    assert processes_in(tmp_path) == []


def test_a_script_without_a_stall_runs_to_its_end(tmp_path):
    (tmp_path / "quick.sh").write_text("echo done > out.txt\nexit 3\n")
    assert _run_script(tmp_path, "quick.sh", timeout=60, watch=RouterStallWatch(tmp_path / "top.tim"),
                       poll=0.1) == 3
    assert (tmp_path / "out.txt").read_text() == "done\n"


class _Planned(Exception):
    """Raised by a stand-in for the script's run: the build got that far."""


def _stand_in(seen, verdict=None):
    def run(build_dir, script, timeout, watch=None, poll=2.0):
        seen["watch"] = watch
        if verdict is None:
            raise _Planned()
        return verdict
    return run


@pytest.mark.parametrize("router", ["router2", "router1"])
def test_the_build_watches_router2(tmp_path, monkeypatch, router):
    """``build`` follows nextpnr's log while router2 runs (router1 logs no such iterations)."""
    from test_boards_synth import LanesOnly

    seen = {}
    monkeypatch.setattr(flow, "_run_script", _stand_in(seen))
    config = board_config(BOARDS["icebreaker"], (64, 32, 10))
    with pytest.raises(_Planned):
        build("icebreaker", config, build_root=tmp_path, system=LanesOnly, force=True, router=router,
              log=lambda *_: None)
    if router == "router2":
        assert isinstance(seen["watch"], RouterStallWatch)
        assert seen["watch"].path == tmp_path / "icebreaker" / "top.tim"
        assert seen["watch"].iterations == flow.ROUTER_STALL_ITERATIONS
    else:
        assert seen["watch"] is None


def test_the_build_names_a_stall(tmp_path, monkeypatch):
    """A stall is a SynthesisError that names it and what to try, and leaves no report."""
    from test_boards_synth import LanesOnly

    verdict = "nextpnr's router2 stalled: 2 or more wires overused for 4000 iterations (since iteration 9)"
    monkeypatch.setattr(flow, "_run_script", _stand_in({}, verdict))
    config = board_config(BOARDS["icebreaker"], (64, 32, 10))
    with pytest.raises(SynthesisError, match=r"stopped: nextpnr's router2 stalled: 2 or more wires .*another --seed"):
        build("icebreaker", config, build_root=tmp_path, system=LanesOnly, force=True, router="router2",
              log=lambda *_: None)
    assert not (tmp_path / "icebreaker" / "report.json").exists()
