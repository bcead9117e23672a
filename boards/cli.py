"""``synchrony synth``: a board's bitstream, its resources and timing (``build/<board>/report.json``).

The last line of the output is

    board=B fmax_mhz=X target_mhz=Y lut=a/b dsp=c/d ram=e/f timing=pass
"""

import sys
from pathlib import Path

__all__ = ["register", "run", "board_config", "parse_seeds"]


def register(subparsers):
    from .harness import BLOCKS
    from .platforms import BOARDS

    parser = subparsers.add_parser(
        "synth", help="build a board's bitstream (YoWASP Yosys + nextpnr) and report resources and timing",
        description="Build the engine for a board: budget check, synthesis, place and route, bitstream; "
                    "writes build/<board>/report.json.")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS))
    parser.add_argument("--layers", help="inputs,hidden...,classes (default 64,128,10: the digits network)")
    parser.add_argument("--rule", choices=("lls", "lls-m", "drtp"), help="learning rule (default: the board's)")
    parser.add_argument("--basis", choices=("square", "sin"), help="LLS basis (default square)")
    parser.add_argument("--lanes", type=int, help="MAC lanes P (default: the board's)")
    parser.add_argument("--weight-bits", type=int, help="widest weight format (default 16)")
    parser.add_argument("--target-mhz", type=float, help="the sync clock (default: the board's)")
    parser.add_argument("--seed", metavar="N[,N...]",
                        help="nextpnr placement seed (default: the board's, boards/platforms.py: 4 on the "
                             "iCEBreaker, 2 on the ULX3S, 1 on the OrangeCrab); several, e.g. 1,3,4,5: one build each, in "
                             "BUILD_DIR/seed<N>, the best kept in BUILD_DIR/<board> with every seed's Fmax in its "
                             "report")
    parser.add_argument("--router", choices=("router1", "router2"),
                        help="nextpnr's router (default: the board's, boards/platforms.py: router1)")
    parser.add_argument("--placer", choices=("heap", "static", "sa"),
                        help="nextpnr's placer (default: the board's, boards/platforms.py: static on the "
                             "ULX3S, heap elsewhere)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="stop synthesis and place-and-route after this long (default: the board's, "
                             "boards/platforms.py: 1800 on the iCEBreaker, no limit on the ECP5 boards; "
                             "nextpnr's routers can stall for good on a nearly full device)")
    parser.add_argument("--block", choices=sorted(BLOCKS),
                        help="build this block of the engine alone, behind registers (boards/harness.py), "
                             "in BUILD_DIR/block-<BLOCK>: what the block itself reaches, not a bitstream to use")
    parser.add_argument("--build-dir", type=Path, default=Path("build"))
    parser.add_argument("--budget-only", action="store_true", help="check the budget and stop")
    parser.add_argument("--force", action="store_true",
                        help="build even if the budget check refuses the configuration (and with --program, "
                             "program a bitstream that does not meet timing)")
    parser.add_argument("--program", action="store_true",
                        help="program the board after building, if timing is met (see --force)")
    parser.set_defaults(func=run)


def parse_seeds(text):
    """``--seed``'s ``"1,3,4,5"`` as a list, with a clear error on bad input."""
    try:
        seeds = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise ValueError(f"--seed: expected comma-separated non-negative integers, got {text!r}") from None
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seed: expected distinct non-negative integers, got {text!r}")
    return seeds


def board_config(board, layers=None, rule=None, basis=None, weight_bits=None):
    """The :class:`EngineConfig` a board builds by default (or with the given choices)."""
    from golden.integer.train import default_config
    from golden.netspec import parse_int_list

    layers = parse_int_list(layers) if isinstance(layers, str) else tuple(layers or (64, 128, 10))
    rule = rule or board.rule
    if basis is not None and rule == "drtp":
        raise ValueError("--basis applies to the LLS rules only")
    return default_config(rule, basis, layers, weight_width=weight_bits or 16)


def run(args):
    from .budget import check_budget
    from .flow import ProgrammingRefused, SynthesisError, build, build_seeds, format_table, summary_line, timing_warning
    from .platforms import board as get_board

    board = get_board(args.board)
    if args.lanes is not None and args.lanes < 1:
        raise ValueError("--lanes must be positive")
    config = board_config(board, args.layers, args.rule, args.basis, args.weight_bits)
    lanes = args.lanes or board.lanes
    seeds = parse_seeds(args.seed) if args.seed is not None else [board.seed]
    if args.block and args.program:
        raise ValueError("--block builds a block alone behind a shift chain, no design to program: drop --program")
    if args.budget_only:
        print(check_budget(board, config, lanes).table())
        return 0
    build_root, system = args.build_dir, None
    if args.block:
        from .harness import block_harness
        build_root, system = args.build_dir / f"block-{args.block}", block_harness(args.block)
    options = dict(build_root=build_root, system=system, target_mhz=args.target_mhz, program=args.program, force=args.force,
                   router=args.router, placer=args.placer, timeout=args.timeout)
    refused = None
    try:
        if len(seeds) == 1:
            report = build(args.board, config, lanes, seed=seeds[0], **options)
        else:
            report = build_seeds(args.board, config, lanes, seeds=seeds, **options)
    except ProgrammingRefused as error:
        report, refused = error.report, error
    except SynthesisError as error:
        print(f"synchrony synth: error: {error}", file=sys.stderr)
        return 1
    print(format_table(report))
    print(f"design={report['design']} layers={'-'.join(map(str, report['layers']))} rule={report['rule']} "
          f"lanes={report['lanes']} place-and-route+synthesis {report['seconds']:.0f} s; "
          f"report: {build_root / board.name / 'report.json'}")
    warning = timing_warning(report)
    if warning:
        print(warning, file=sys.stderr)
    sweep = report.get("seed_sweep")
    if sweep:
        print("seeds: " + ", ".join(f"{s['seed']}: {s['fmax_mhz']:.2f} MHz" if "fmax_mhz" in s else f"{s['seed']}: failed"
                                    for s in sweep["seeds"])
              + f"; mean {sweep['mean_fmax_mhz']:.2f} MHz; kept seed {report['seed']}")
    print(summary_line(report))
    if refused is not None:
        print(f"synchrony synth: error: {refused}", file=sys.stderr)
    return 0 if report["timing"] == "pass" else 1
