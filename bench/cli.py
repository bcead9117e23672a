"""``synchrony bench [--quick]``: measure everything, write ``bench/results/<date>.json``, regenerate
``docs/benchmarks.md`` and its plots."""

import json
import sys
from pathlib import Path

__all__ = ["register", "run"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def register(subparsers):
    parser = subparsers.add_parser(
        "bench", help="benchmarks: engine efficiency, hardware limits, CPU ratio, simulator speed, cost, curves",
        description="Measure, in one run and as ratios: the engine's cycles per sample and lane utilisation "
                    "(Verilator), each board's sustained GMAC/s against its multiplier ceiling (synthesis "
                    "reports), on-chip training throughput against PyTorch on this CPU, Verilator against "
                    "Amaranth's simulator, each rule's MACs and memory against BP, and learning curves of the "
                    "float, integer and RTL models. Writes bench/results/<date>.json and docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true",
                        help="small sample counts and the two cheapest engine builds (under 3 minutes with a warm "
                             "Verilator cache); the docs are left alone unless --docs is given")
    parser.add_argument("--data-dir", type=Path, help="directory holding the MNIST IDX files")
    parser.add_argument("--results-dir", type=Path,
                        help="where the JSON goes (default bench/results; build/bench with --quick)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the JSON here instead")
    parser.add_argument("--docs", type=Path, metavar="PATH",
                        help="the Markdown report to regenerate (default docs/benchmarks.md in a full run)")
    parser.add_argument("--no-docs", action="store_true", help="do not write the Markdown report and plots")
    parser.add_argument("--no-synth", action="store_true",
                        help="never run `synchrony synth` (a full run does for boards without a report)")
    parser.add_argument("--synth-boards", metavar="B,B",
                        help="run `synchrony synth` only for these boards when their report is missing")
    parser.add_argument("--build-root", type=Path, default=REPO_ROOT / "build",
                        help="where the synthesis reports are (<root>/<board>/report.json; default build)")
    parser.set_defaults(func=run)


def run(args):
    from .budget import FULL, QUICK
    from .report import headline, write_report
    from .run import run_bench

    budget = QUICK if args.quick else FULL
    synth = False if args.no_synth else (args.synth_boards.split(",") if args.synth_boards else True)
    result = run_bench(budget, data_dir=args.data_dir, build_root=args.build_root, synth=synth)
    results_dir = args.results_dir or (REPO_ROOT / "build" / "bench" if args.quick else REPO_ROOT / "bench" / "results")
    path = args.json or results_dir / f"{result['date']}{'-quick' if args.quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results: {path}")
    docs = args.docs if args.docs is not None else (None if args.quick else REPO_ROOT / "docs" / "benchmarks.md")
    if docs is not None and not args.no_docs:
        write_report(result, docs, json_path=path)
        print(f"report: {docs}")
    print(headline(result))
    ok = result["rtl_matches_integer"]["all"] and all(r["bit_exact"] for r in result["engine"])
    if not ok:
        print("synchrony bench: the RTL differs from the integer model (see rtl_matches_integer)", file=sys.stderr)
    return 0 if ok else 1
