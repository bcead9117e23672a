"""Run cocotb test modules against an Amaranth component under Verilator.

:func:`run_cocotb` converts an elaborated :class:`amaranth.lib.wiring.Component` to Verilog, builds
it with Verilator in a directory of its own (``sim_build/<block>/<hash>/``, the hash covering the
Verilog and every build option, so one configuration is one build and an unchanged design is never
rebuilt), runs the cocotb module(s) through :mod:`cocotb_tools.runner`, and raises
:class:`CocotbFailure` when any cocotb test fails. Test parameters reach the cocotb side as JSON in
the ``SYNCHRONY_PARAMS`` environment variable (:func:`params` reads them back on the cocotb side).

Builds share Verilator's runtime objects (``verilated.o``, ``verilated_vpi.o``, ...: ~80 % of a
build's compile time, identical for every design) through ``sim_build/.runtime/<hash>/``: the first
build compiles and saves them, later ones copy them in between the ``verilator`` and ``make`` steps.

Port names are Amaranth's: ``clk`` and ``rst`` of the ``sync`` domain, and ``<member>__<sub>``
for interface members (``o__valid``, ``o__payload``, ...), payloads flattened to one vector.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from . import toolchain

__all__ = ["PARAMS_ENV", "CocotbFailure", "CocotbRun", "REPO_ROOT", "deep_recursion", "params", "run_cocotb",
           "to_verilog"]

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_ENV = "SYNCHRONY_PARAMS"

# Amaranth's Verilog is lint-clean for simulation but trips Verilator's style warnings (unused
# bits, width extensions); none of them changes behaviour, so they are not fatal.
DEFAULT_BUILD_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")

# Bump when the way a build is made changes without the Verilog or the arguments changing.
_BUILD_SCHEME = 1


class CocotbFailure(AssertionError):
    """One or more cocotb tests failed (or the simulator died); the message names them."""


@dataclass(frozen=True)
class CocotbRun:
    """Where a run left its files."""

    build_dir: Path
    test_dir: Path
    results: Path
    log: Path
    waves: Path = None
    rebuilt: bool = False


def params():
    """On the cocotb side: the ``params`` dict ``run_cocotb`` was given (``{}`` if none)."""
    return json.loads(os.environ.get(PARAMS_ENV, "{}"))


def deep_recursion(work):
    """``work()`` in a thread with a large stack and recursion limit: Amaranth walks expressions
    recursively, and the wide reductions of a 64-lane engine (a CRC over 1024 bits, ...) nest
    deeper than Python's defaults allow. Returns its value; re-raises its exception."""
    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    limit = sys.getrecursionlimit()
    size = threading.stack_size(512 * 1024 * 1024)
    sys.setrecursionlimit(max(limit, 200_000))
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(size)
        sys.setrecursionlimit(limit)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def to_verilog(component, toplevel):
    """Verilog text of ``component`` as module ``toplevel`` (no source locations, so the text
    changes only when the logic does)."""
    from amaranth.back import verilog
    return deep_recursion(lambda: verilog.convert(component, name=toplevel, emit_src=False))


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path):
    """Exclusive lock on ``path`` (pytest-xdist workers may build the same configuration)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _on_sys_path(directories):
    # cocotb's runner hands the simulator PYTHONPATH = our sys.path, so this is how test modules
    # outside the installed packages are found.
    added = [str(Path(d).resolve()) for d in directories]
    added = [d for d in dict.fromkeys(added) if d not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for d in added:
            sys.path.remove(d)


def _failures(results):
    """``: name (message); ...`` for the failed test cases of a cocotb results file."""
    import xml.etree.ElementTree as ET
    try:
        cases = ET.parse(results).getroot().iter("testcase")
    except (OSError, ET.ParseError):
        return ""
    failed = []
    for case in cases:
        failure = case.find("failure")
        if failure is not None:
            message = (failure.get("message") or "").strip().splitlines()
            failed.append(f"{case.get('name')} ({message[0][:200] if message else 'failed'})")
    return ": " + "; ".join(failed) if failed else ""


def _tail(path, lines=60):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _global_objects(build_dir):
    """Names of the runtime ("global") objects a Verilator build links (from ``Vtop_classes.mk``)."""
    names, collecting = [], False
    for line in (Path(build_dir) / "Vtop_classes.mk").read_text().splitlines():
        if line.startswith(("VM_GLOBAL_FAST", "VM_GLOBAL_SLOW")):
            collecting = True
        elif collecting and line.strip() not in ("", "\\"):
            names.append(line.strip().rstrip("\\").strip())
        elif collecting:
            collecting = False
    return [n for n in names if n]


def _restore_runtime(cache_dir, build_dir):
    """Copy cached runtime objects into ``build_dir``, stamped newer than the fresh ``Vtop.mk``.

    Runs as a build step between ``verilator`` (which rewrites ``Vtop.mk``, a prerequisite of
    these objects) and ``make``, so ``make`` finds them up to date.
    """
    import shutil
    cache_dir, build_dir = Path(cache_dir), Path(build_dir)
    if not (cache_dir / "complete").exists():
        return
    wanted = set(_global_objects(build_dir))
    for obj in cache_dir.glob("*.o"):
        if obj.stem in wanted:
            for path in (obj, obj.with_suffix(".d")):
                if path.exists():
                    shutil.copyfile(path, build_dir / path.name)
    for name in wanted:
        for suffix in (".d", ".o"):     # the object last: newer than its dependency file
            target = build_dir / f"{name}{suffix}"
            if target.exists():
                os.utime(target)


def _save_runtime(cache_dir, build_dir):
    """Keep a finished build's runtime objects for the next builds (atomically, once)."""
    import shutil
    import tempfile
    cache_dir, build_dir = Path(cache_dir), Path(build_dir)
    if (cache_dir / "complete").exists():
        return
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir.parent, prefix=".staging-"))
    for name in _global_objects(build_dir):
        for suffix in (".o", ".d"):
            if (build_dir / f"{name}{suffix}").exists():
                shutil.copyfile(build_dir / f"{name}{suffix}", staging / f"{name}{suffix}")
    (staging / "complete").write_text("")
    try:
        staging.rename(cache_dir)
    except OSError:                     # another worker saved it first
        shutil.rmtree(staging, ignore_errors=True)


def _tool_versions():
    """What a build depends on besides its inputs: Verilator's root and version, cocotb's version."""
    from importlib.metadata import PackageNotFoundError, version
    found = [os.environ.get("VERILATOR_ROOT", "")]
    for package in ("verilator", "cocotb"):
        try:
            found.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            found.append(f"{package}: not installed")
    return " ".join(found)


def _have_lz4():
    """Whether the C++ compiler finds ``lz4.h``, which Verilator's FST writer needs."""
    import subprocess
    try:
        result = subprocess.run(["c++", "-E", "-x", "c++", "-"], input="#include <lz4.h>\n",
                                capture_output=True, text=True)
    except OSError:
        return False
    return result.returncode == 0


def _waves_format(waves):
    """``"fst"``, ``"vcd"`` or ``None`` for ``run_cocotb(waves=...)``; FST falls back to VCD
    (with a warning) when the lz4 headers are missing."""
    if not waves:
        return None
    wanted = "fst" if waves is True else str(waves).lower()
    if wanted not in ("fst", "vcd"):
        raise ValueError(f"run_cocotb: waves must be True, False, 'fst' or 'vcd', got {waves!r}")
    if wanted == "fst" and not _have_lz4():
        import warnings
        warnings.warn("Verilator's FST writer needs lz4.h (liblz4-dev); recording VCD instead", stacklevel=3)
        return "vcd"
    return wanted


def _runner(runtime_cache):
    """cocotb's Verilator runner, with the runtime-object restore step in its build."""
    from cocotb_tools.runner import Verilator

    class CachingVerilator(Verilator):
        def _build_command(self):
            commands = list(super()._build_command())
            restore = [sys.executable, "-c",
                       "import sys; from sim.cocotb_runner import _restore_runtime; "
                       "_restore_runtime(sys.argv[1], sys.argv[2])",
                       str(runtime_cache), str(self.build_dir)]
            # [verilator, make] -> [verilator, restore, make]
            return commands[:1] + [restore] + commands[1:]

    return CachingVerilator()


def run_cocotb(component, *, block, test_module, test_paths=(), params=None, extra_env=None,
               toplevel=None, testcase=None, seed=None, waves=False, build_args=(),
               build_root=None, run_name=None, timescale=("1ns", "1ps"), verilog=None):
    """Build ``component`` with Verilator (once per distinct design) and run cocotb tests on it.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design, already constructed with its parameters.
    block : str
        Name of the block: the first level of the build tree, and the default toplevel name.
    test_module : str or sequence of str
        Python module name(s) holding the ``@cocotb.test`` functions.
    test_paths : sequence of path-like
        Directories to put on the simulator's Python path so ``test_module`` imports.
    params : dict, optional
        JSON-able parameters for the cocotb side, passed in ``$SYNCHRONY_PARAMS``.
    extra_env : dict, optional
        More environment variables for the simulator process.
    toplevel : str, optional
        Verilog module name (default: ``block``).
    testcase : str or sequence of str, optional
        Run only these cocotb tests.
    seed : int, optional
        ``COCOTB_RANDOM_SEED``; by default cocotb picks one and logs it.
    waves : bool or str
        Record waveforms in the run directory (a separate, traced build): ``True`` or ``"fst"``
        for ``dump.fst`` (``dump.vcd`` if the lz4 headers FST needs are missing), ``"vcd"``.
    build_args : sequence of str
        Extra Verilator arguments (part of the build's hash).
    build_root : path-like, optional
        Root of the build tree (default ``<repo>/sim_build``).
    run_name : str, optional
        Sub-directory of the build for this run's results (default: a hash of the run's
        parameters, so concurrent runs of one build do not collide).
    timescale : (str, str)
        Verilator ``--timescale``.
    verilog : str, optional
        Verilog to simulate instead of converting ``component`` (which may then be ``None``),
        e.g. a post-synthesis netlist; its top module must be named ``toplevel``.

    Returns
    -------
    CocotbRun

    Raises
    ------
    CocotbFailure
        A cocotb test failed, or the simulator exited abnormally; the message holds the log's tail.
    RuntimeError
        The Verilator build failed; the message holds the build log's tail.
    """
    toolchain.setup()
    from cocotb_tools.runner import get_results, get_runner

    toplevel = toplevel or block
    modules = [test_module] if isinstance(test_module, str) else list(test_module)
    build_root = Path(build_root) if build_root is not None else REPO_ROOT / "sim_build"
    waves_format = _waves_format(waves)
    trace_args = {"fst": ["--trace-fst", "--trace-structs"], "vcd": ["--trace-structs"], None: []}[waves_format]
    args = [*DEFAULT_BUILD_ARGS, *trace_args, *build_args]

    verilog_text = to_verilog(component, toplevel) if verilog is None else verilog
    tools = _tool_versions()
    key = _digest(str(_BUILD_SCHEME), toplevel, verilog_text, json.dumps(args), json.dumps(timescale), tools)
    build_dir = build_root / block / key[:16]
    executable = build_dir / toplevel
    stamp = build_dir / "build.stamp"

    rebuilt = False
    with _locked(build_root / block / f"{key[:16]}.lock"):
        if not (executable.exists() and stamp.exists() and stamp.read_text() == key):
            build_dir.mkdir(parents=True, exist_ok=True)
            stamp.unlink(missing_ok=True)
            source = build_dir / f"{toplevel}.v"
            source.write_text(verilog_text)
            build_log = build_dir / "build.log"
            runtime_cache = build_root / ".runtime" / _digest(str(_BUILD_SCHEME), json.dumps(args), tools)[:16]
            runner = _runner(runtime_cache)
            try:
                with _on_sys_path([REPO_ROOT]):
                    runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                                 build_args=args, waves=bool(waves_format), timescale=timescale,
                                 log_file=build_log)
            except (RuntimeError, SystemExit) as error:
                raise RuntimeError(f"Verilator build of {block} failed ({error}); "
                                   f"{build_log}:\n{_tail(build_log)}") from None
            _save_runtime(runtime_cache, build_dir)
            stamp.write_text(key)
            rebuilt = True

    env = dict(extra_env or {})
    if "COCOTB_REWRITE_ASSERTION_FILES" not in os.environ:
        # cocotb's default "*.py" has pytest rewrite the asserts of every module imported, with no
        # bytecode cache: importing torch then takes ~18 s instead of ~2 s. Only benches need it.
        patterns = {f"{name.rsplit('.', 1)[-1]}.py" for name in modules} | {"cocotb_*.py", "*_tb.py"}
        env.setdefault("COCOTB_REWRITE_ASSERTION_FILES", " ".join(sorted(patterns)))
    if params is not None:
        env[PARAMS_ENV] = json.dumps(params, sort_keys=True)
    # cocotb's runner lets os.environ override extra_env: refuse a silent clash.
    for name, value in env.items():
        if name in os.environ and os.environ[name] != value:
            raise ValueError(f"run_cocotb: {name} is set in the environment and would override the test's value")

    if run_name is None:
        run_name = _digest(json.dumps(env, sort_keys=True), ",".join(modules), str(testcase), str(seed))[:12]
    test_dir = build_dir / "runs" / run_name
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    log = test_dir / "sim.log"

    runner = get_runner("verilator")
    runner.build_dir = build_dir
    with _on_sys_path([REPO_ROOT, *test_paths]):
        try:
            runner.test(test_module=modules, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                        build_dir=build_dir, test_dir=test_dir, results_xml=str(results),
                        extra_env=env, testcase=testcase, seed=seed, waves=bool(waves_format),
                        timescale=timescale, log_file=log)
        except SystemExit:
            # Under pytest the runner exits on failures; the results file says which.
            pass
    try:
        total, failed = get_results(results)
    except RuntimeError as error:
        raise CocotbFailure(f"{block}: simulator produced no results ({error}); {log}:\n{_tail(log)}") from None
    if failed or total == 0:
        raise CocotbFailure(f"{block}: {failed} of {total} cocotb tests failed{_failures(results)}\n"
                            f"{log}:\n{_tail(log)}")
    return CocotbRun(build_dir, test_dir, results, log,
                     test_dir / f"dump.{waves_format}" if waves_format else None, rebuilt)
