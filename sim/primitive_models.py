"""Simulation models of the vendor primitives the gateware instantiates itself (``sim/models/``).

Yosys's own models (``+/<family>/cells_sim.v``) cover what it infers; these cover the modes the
RTL instantiates directly, so Verilator can run the design as the board builds it.
"""

from pathlib import Path

__all__ = ["MODELS_DIR", "model_verilog"]

MODELS_DIR = Path(__file__).resolve().parent / "models"


def model_verilog(primitive):
    """The Verilog model of ``primitive`` (e.g. ``"MULT18X18D"``); a clear error if there is none."""
    path = MODELS_DIR / f"{primitive}.v"
    if not path.is_file():
        known = sorted(p.stem for p in MODELS_DIR.glob("*.v"))
        raise FileNotFoundError(f"no simulation model of {primitive} in {MODELS_DIR} (have: {', '.join(known)})")
    return path.read_text()
