"""Logic levels into every flip-flop, RAM and DSP input of a mapped netlist, grouped by what the
endpoint drives: where a design is deep, before and without place-and-route's noise.

On a nearly full UP5K a LUT level costs 3.5-4 ns with its routing, so nextpnr's one critical path
says little about how many paths are too deep; this counts them all in the ``top.json`` a build
leaves (Yosys's mapped netlist)::

    python -m boards.logic_depth build/icebreaker/top.json [--min 8] [--top 40] [--path GROUP]

A LUT counts one level, a carry cell 0.1 (the carry chain is fast); flip-flops, RAMs, DSPs and
ports start and end paths. ECP5 netlists (``LUT4``, ``CCU2C``) are counted the same way.
"""

import argparse
import json
import re
from collections import defaultdict

from .timing_endpoints import names_by_bit, output_bits

__all__ = ["LEVELS", "LogicDepth", "main"]

#: Levels each combinational cell type adds; every other cell starts or ends a path.
LEVELS = {"SB_LUT4": 1.0, "SB_CARRY": 0.1, "LUT4": 1.0, "CCU2C": 0.1, "PFUMX": 0.2, "L6MUX21": 0.2}


class LogicDepth:
    """The levels of a Yosys JSON module (``modules[top]``)."""

    def __init__(self, module):
        self.cells = module["cells"]
        self.names = names_by_bit(module)
        self.driver = {}
        for cell, info in self.cells.items():
            for port, direction in info["port_directions"].items():
                if direction == "output":
                    for bit in info["connections"][port]:
                        if not isinstance(bit, str):
                            self.driver[bit] = cell
        self._memo, self._pred = {}, {}

    def _inputs(self, cell):
        info = self.cells[cell]
        for port, direction in info["port_directions"].items():
            if direction == "input":
                for bit in info["connections"][port]:
                    if not isinstance(bit, str):
                        yield port, bit

    def depth(self, bit):
        """``(levels, start cell)`` of the deepest path ending at net ``bit`` (iteratively: the
        netlists are deep enough to overflow Python's recursion)."""
        cell = self.driver.get(bit)
        if cell is None:
            return 0.0, None
        if self.cells[cell]["type"] not in LEVELS:
            return 0.0, cell
        stack = [cell]
        while stack:
            top = stack[-1]
            if top in self._memo:
                stack.pop()
                continue
            pending = [self.driver[b] for _, b in self._inputs(top)
                       if b in self.driver and self.cells[self.driver[b]]["type"] in LEVELS
                       and self.driver[b] not in self._memo and self.driver[b] not in stack]
            if pending:
                stack.extend(pending)
                continue
            best, best_bit = (0.0, None), None
            for _, b in self._inputs(top):
                source = self.driver.get(b)
                if source is None:
                    continue
                value = self._memo.get(source, (0.0, source)) if self.cells[source]["type"] in LEVELS \
                    else (0.0, source)
                if best_bit is None or value[0] > best[0]:
                    best, best_bit = value, b
            self._memo[top] = (best[0] + LEVELS[self.cells[top]["type"]], best[1])
            self._pred[top] = best_bit
            stack.pop()
        return self._memo[cell]

    def cell_name(self, cell):
        """What a cell drives (a flip-flop's Q first), bit index dropped."""
        bits = output_bits(self.cells[cell])
        return re.sub(r"\[\d+\]$", "", self.names.get(bits[0], cell)) if bits else cell

    def endpoint_groups(self, min_levels):
        """``[(group, worst levels, endpoints, start of the worst, port)]`` at ``min_levels`` or
        more, deepest first."""
        groups = defaultdict(list)
        for cell, info in self.cells.items():
            if info["type"] in LEVELS:
                continue
            for port, bit in self._inputs(cell):
                if port in ("C", "CLK", "CLOCK", "RCLK", "WCLK"):
                    continue
                levels, start = self.depth(bit)
                if levels >= min_levels:
                    groups[self.cell_name(cell)].append((levels, self.cell_name(start) if start else "-", port))
        rows = [(group, *max(v), len(v)) for group, v in groups.items()]
        rows = [(group, levels, count, start, port) for group, levels, start, port, count in rows]
        rows.sort(key=lambda row: (-row[1], row[0]))
        return rows

    def path(self, group):
        """The cells of the deepest path into ``group``, from its start: ``[(type, net)]``."""
        worst = None
        for cell, info in self.cells.items():
            if info["type"] in LEVELS or self.cell_name(cell) != group:
                continue
            for _, bit in self._inputs(cell):
                levels = self.depth(bit)[0]
                if worst is None or levels > worst[0]:
                    worst = (levels, bit)
        steps = []
        bit = worst[1] if worst else None
        while bit is not None and self.driver.get(bit) in self._pred:
            cell = self.driver[bit]
            steps.append((self.cells[cell]["type"], self.names.get(bit, "?")))
            bit = self._pred[cell]
        if bit is not None:
            steps.append(("start", self.names.get(bit, "?")))
        return steps[::-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("netlist", help="a build's top.json")
    parser.add_argument("--min", type=float, default=8, help="list endpoints at this many levels or more")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--path", metavar="GROUP", help="print the deepest path into GROUP")
    args = parser.parse_args(argv)
    try:
        with open(args.netlist) as f:
            netlist = json.load(f)
        tops = [name for name, mod in netlist["modules"].items() if mod.get("attributes", {}).get("top")]
        depth = LogicDepth(netlist["modules"][tops[0] if tops else "top"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"logic_depth: {args.netlist} is not a Yosys JSON netlist with a top module: {error!r}")
    rows = depth.endpoint_groups(args.min)
    print(f"{sum(r[2] for r in rows)} endpoints at >= {args.min:g} levels, {len(rows)} groups")
    print(f"{'levels':>6} {'ends':>5}  group <- start of the deepest path (port)")
    for group, levels, count, start, port in rows[:args.top]:
        print(f"{levels:6.1f} {count:5d}  {group} <- {start} ({port})")
    if args.path:
        steps = depth.path(args.path)
        if not steps:
            raise SystemExit(f"logic_depth: no endpoint group named {args.path!r}")
        for kind, net in steps:
            print(f"  {kind:8s} {net}")


if __name__ == "__main__":
    main()
