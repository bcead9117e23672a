"""What fails timing besides nextpnr's one critical path: every endpoint's arrival, named.

A build with ``SYNCHRONY_TIMING_DETAIL=1`` asks nextpnr for ``--detailed-timing-report``: its
``pnr_report.json`` then holds every endpoint's arrival time. Yosys ``autoname`` is skipped in the
flow, so endpoint cells are called ``$auto$ff.cc:...``; this names each by the source signal its
flip-flop drives (from ``top.json``) and groups them (the bit index dropped)::

    python -m boards.timing_endpoints build/orangecrab [--period 10] [--top 40] [--clock clk]

With two clocks (the iCEBreaker's engine ``clk`` and protocol ``host_clk``) ``--clock`` keeps the
paths launched and captured by that one.
"""

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

__all__ = ["endpoint_groups", "names_by_bit", "output_bits", "main"]


def names_by_bit(module):
    """Net bit -> the best name for it (a public name over a ``$`` one, the shortest)."""
    best = {}
    for name, net in module["netnames"].items():
        hidden = net.get("hide_name", 0) or name.startswith("$")
        for index, bit in enumerate(net["bits"]):
            if isinstance(bit, str):
                continue
            label = f"{name}[{index}]" if len(net["bits"]) > 1 else name
            rank = (hidden, len(label))
            if bit not in best or rank < best[bit][0]:
                best[bit] = (rank, label)
    return {bit: label for bit, (_, label) in best.items()}


def output_bits(cell):
    """A netlist cell's output net bits: a flip-flop's ``Q``, else its first output port's."""
    outputs = [port for port, direction in cell.get("port_directions", {}).items() if direction == "output"]
    for port in sorted(outputs, key=lambda p: (p != "Q", p)):
        bits = [bit for bit in cell["connections"].get(port, []) if not isinstance(bit, str)]
        if bits:
            return bits
    return []


def _cell_names(module, depth=4):
    """Cell -> the name of what it drives (a flip-flop's Q, a RAM's or DSP's first output).

    A cell whose output only has a tool-made name (a LUT out of ABC) is named after the first
    publicly named net found up to ``depth`` cells downstream, as ``~> name``.
    """
    names = names_by_bit(module)
    public = {bit for bit, label in names.items() if not label.startswith("$")}
    cells = module["cells"]
    readers = defaultdict(list)
    for cell, info in cells.items():
        for port, direction in info.get("port_directions", {}).items():
            if direction == "input":
                for bit in info["connections"].get(port, []):
                    if not isinstance(bit, str):
                        readers[bit].append(cell)

    out = {}
    for cell, info in cells.items():
        bits = output_bits(info)
        if not bits or bits[0] not in names:
            continue
        out[cell] = names[bits[0]]
        if bits[0] in public:
            continue
        frontier, seen = [bits[0]], {cell}
        for _ in range(depth):
            named = [bit for bit in frontier if bit in public]
            if named:
                out[cell] = "~> " + names[named[0]]
                break
            nxt = []
            for bit in frontier:
                for reader in readers.get(bit, ()):
                    if reader not in seen:
                        seen.add(reader)
                        nxt.extend(output_bits(cells[reader])[:1])
            frontier = nxt
    return out


def endpoint_groups(build_dir, period_ns=None, clock=None):
    """``[(group, worst arrival ns, endpoints)]``, worst first, from a build directory; with
    ``clock``, only paths within that clock."""
    build_dir = Path(build_dir)
    report = json.loads((build_dir / "pnr_report.json").read_text())
    if "detailed_net_timings" not in report:
        raise SystemExit("no detailed_net_timings: rebuild with SYNCHRONY_TIMING_DETAIL=1")
    module = json.loads((build_dir / "top.json").read_text())["modules"]["top"]
    names = _cell_names(module)
    groups = defaultdict(list)
    for net in report["detailed_net_timings"]:
        for end in net["endpoints"]:
            if clock is not None and not (net.get("event") == end.get("event") == f"posedge {clock}"):
                continue
            cell = end["cell"]
            # nextpnr-ice40 packs a Yosys cell into a logic cell named after it plus a suffix.
            label = names.get(cell) or names.get(re.sub(r"_(DFF)?LC$", "", cell), cell)
            group = re.sub(r"\[\d+\]$", "", label)
            delay = end["delay"]
            # [earliest, latest] arrival (older nextpnr: one number).
            groups[group].append(float(delay[-1] if isinstance(delay, list) else delay))
    rows = [(group, max(delays), len(delays)) for group, delays in groups.items()]
    rows.sort(key=lambda row: -row[1])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--period", type=float, default=10.0, help="clock period, ns (default 10)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--clock", help="only paths within this clock (nextpnr's name, e.g. clk)")
    args = parser.parse_args(argv)
    rows = endpoint_groups(args.build_dir, clock=args.clock)
    failing = sum(n for _, worst, n in rows if worst > args.period)
    print(f"{'arrival ns':>10} {'endpoints':>9}  group   ({failing} endpoints in groups over {args.period} ns)")
    for group, worst, count in rows[:args.top]:
        print(f"{worst:>10.2f} {count:>9}  {group}")


if __name__ == "__main__":
    main()
