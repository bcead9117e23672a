"""Synthesis reports as benchmark inputs: what each board's build reached.

A report is ``build/<board>/report.json``, written by ``synchrony synth --board B`` with the
schema ``{"board", "device", "layers", "rule", "lanes", "config_digest", "resources": {"lut":
{"used", "total"}, "ff", "dsp", "ram"}, "clocks", "fmax_mhz", "target_mhz", "timing",
"seconds", "tools"}``. A missing or unreadable report is reported as such, with the reason:
the benchmark never makes up a clock.
"""

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["BOARDS", "RESOURCES", "definition", "load_report", "parse_rule", "synth_available", "run_synth",
           "weight_store", "spram_fits"]

BOARDS = ("icebreaker", "orangecrab", "ulx3s")
RESOURCES = ("lut", "ff", "dsp", "ram")


def parse_rule(text):
    """``(rule, basis)`` of a report's ``rule`` field: ``lls``, ``lls-square``, ``lls-sin``, ``drtp``, ..."""
    text = str(text).lower().replace("/", "-").replace(" ", "-")
    for basis in ("square", "sin"):
        if text.endswith("-" + basis):
            return text[:-len(basis) - 1], basis
    return text, (None if text == "drtp" else "square")


def load_report(build_root, board):
    """The report of ``board`` checked against the schema, or ``{"board", "missing": reason}``."""
    path = Path(build_root) / board / "report.json"
    if not path.exists():
        return {"board": board, "missing": f"no synthesis report ({path} does not exist)"}
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return {"board": board, "missing": f"unreadable synthesis report {path}: {error}"}
    problems = []
    for key in ("layers", "rule", "lanes", "resources", "fmax_mhz"):
        if key not in report:
            problems.append(f"no {key!r}")
    for name in RESOURCES:
        entry = report.get("resources", {}).get(name)
        if not isinstance(entry, dict) or not {"used", "total"} <= set(entry):
            problems.append(f"no resources.{name}.used/total")
    fmax = report.get("fmax_mhz")
    if not isinstance(fmax, (int, float)) or not fmax > 0:
        problems.append(f"fmax_mhz is {fmax!r}")
    if problems:
        return {"board": board, "missing": f"{path} does not follow the report schema: {'; '.join(problems)}"}
    report = dict(report)
    report["board"] = board
    report["path"] = str(path)
    report["layers"] = [int(v) for v in (report["layers"].split("-") if isinstance(report["layers"], str)
                                         else report["layers"])]
    return report


def definition(board):
    """What ``synchrony synth`` builds for ``board`` by default (``boards/platforms.py``): lanes,
    rule, multipliers on the part, target clock; ``None`` without the boards package."""
    try:
        from boards.platforms import BOARDS as DEFINED
    except ImportError:
        return None
    b = DEFINED.get(board)
    if b is None:
        return None
    return {"lanes": b.lanes, "rule": b.rule, "multipliers": b.dsp, "target_mhz": b.target_mhz,
            "device": b.device, "layers": [64, 128, 10]}


def weight_store(board):
    """Where ``board``'s engine keeps its weights: ``"spram"`` on a board with SPRAM (the
    iCEBreaker, as :func:`rtl.layer_engine.default_weight_store` builds it), else ``"ebr"``."""
    try:
        from boards.platforms import BOARDS as DEFINED
    except ImportError:
        return "ebr"
    b = DEFINED.get(board)
    return "spram" if b is not None and b.spram else "ebr"


def spram_fits(board, layers, rule, basis, lanes):
    """Whether the network's weights fit ``board``'s SPRAM weight store (``boards/budget.py``)."""
    from boards.budget import check_budget
    from boards.platforms import BOARDS as DEFINED
    from golden.integer.train import default_config

    budget = check_budget(DEFINED[board], default_config(rule, basis, tuple(layers)), lanes, refuse=False)
    return not any("SPRAM" in problem for problem in budget.problems)


def synth_available():
    """Whether this checkout has ``synchrony synth`` (the boards issue)."""
    from golden.cli import build_parser
    parser = build_parser()
    action = next(a for a in parser._actions if getattr(a, "choices", None) and "sim" in a.choices)
    return "synth" in action.choices


def run_synth(board, build_root, log_path):
    """Run ``synchrony synth --board board --build-dir build_root`` (output in ``log_path``);
    returns the exit code."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        return subprocess.run([sys.executable, "-m", "golden.cli", "synth", "--board", board,
                               "--build-dir", str(build_root)], stdout=log, stderr=subprocess.STDOUT).returncode
