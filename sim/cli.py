"""``synchrony sim``: the main job — train the simulated RTL engine online on a dataset, then test it.

The engine (``rtl/engine.py``) is built with Verilator and driven by cocotb
(``tests/cocotb/cocotb_engine.py::engine_epoch``); the integer golden model runs in lock-step
and checks every training step (prediction and a CRC of every weight word the step wrote),
all weights at the end, and every test prediction. The last line of the output is

    bit_exact=true mismatches=0 samples=1437 test_accuracy=0.XXXX cycles_per_sample=N lane_utilisation=0.XX
"""

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers):
    parser = subparsers.add_parser(
        "sim", help="train the simulated RTL engine online (one epoch of digits by default) and test it",
        description="Train the RTL engine (Verilator + cocotb) online on a dataset, checked bit for bit "
                    "against the integer golden model, then test it on the held-out set.")
    parser.add_argument("--rule", default="lls", choices=("lls", "lls-m", "drtp"))
    parser.add_argument("--basis", default=None, choices=("square", "sin"),
                        help="LLS basis (default square)")
    parser.add_argument("--dataset", default="digits", help="digits, mnist or idx:DIR (default digits)")
    parser.add_argument("--data-dir", type=Path, help="directory holding the MNIST IDX files")
    parser.add_argument("--layers", help="inputs,hidden...,classes (default: inputs,128,classes)")
    parser.add_argument("--samples", type=int, help="train on the first N samples of each epoch's order")
    parser.add_argument("--epochs", type=int, default=1,
                        help="epochs (default 1); the learning-rate schedule spans the whole run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lanes", type=int, default=8, help="MAC lanes P (default 8, an iCE40 UP5K)")
    parser.add_argument("--waves", action="store_true", help="record an FST waveform of the whole run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _config(args, dataset):
    from golden.integer.train import default_config
    from golden.netspec import parse_int_list

    if args.layers:
        layers = parse_int_list(args.layers)
    else:
        layers = (dataset.n_inputs, 128, dataset.n_classes)
    if layers[0] != dataset.n_inputs or layers[-1] != dataset.n_classes:
        raise ValueError(f"--layers {','.join(map(str, layers))} does not fit {dataset.name}: "
                         f"{dataset.n_inputs} inputs, {dataset.n_classes} classes")
    if args.basis is not None and args.rule == "drtp":
        raise ValueError("--basis applies to the LLS rules only")
    return default_config(args.rule, args.basis, layers, seed=args.seed)


def run(args):
    from golden.datasets import load_dataset
    from sim.engine_sim import run_engine

    if args.epochs < 1 or (args.samples is not None and args.samples < 1) or args.lanes < 1:
        raise ValueError("--epochs, --samples and --lanes must be positive")
    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    config = _config(args, dataset)
    per_epoch = min(args.samples or len(dataset.train_y), len(dataset.train_y))
    total = per_epoch * args.epochs
    print(f"dataset: {dataset.note}")
    print(f"rtl engine: rule={config.rule}{' basis=' + config.basis if config.uses_basis else ''} "
          f"network={'-'.join(map(str, config.layers))} lanes={args.lanes} epochs={args.epochs} "
          f"samples={total} seed={args.seed} config={config.digest()[:12]}")
    print("building the Verilator model (cached after the first run) ...", flush=True)

    with tempfile.TemporaryDirectory(prefix="synchrony-sim-") as tmp:
        progress_file = Path(tmp) / "progress"
        result_file = Path(tmp) / "result.json"
        progress_file.touch()
        outcome = {}

        def work():
            try:
                outcome["run"] = run_engine(
                    config, args.lanes, "engine_epoch", waves=args.waves, dataset=args.dataset,
                    data_dir=str(args.data_dir) if args.data_dir else None, seed=args.seed,
                    epochs=args.epochs, samples=args.samples, progress_file=str(progress_file),
                    result_file=str(result_file), fail_on_mismatch=False)
            except BaseException as error:  # reported below, in the main thread
                outcome["error"] = error

        start = time.perf_counter()
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        _follow(progress_file, thread, total, len(dataset.test_y), args.quiet)
        thread.join()
        wall = time.perf_counter() - start
        if "error" in outcome:
            print(f"synchrony sim: error: the simulation failed: {outcome['error']}", file=sys.stderr)
            return 1
        summary = json.loads(result_file.read_text())

    summary["wall_seconds"] = wall
    summary["waves"] = str(outcome["run"].waves) if args.waves else None
    sim_seconds = summary["sim_seconds"]
    print(f"trained {summary['samples']} samples, tested {summary['test_samples']}: "
          f"{summary['total_cycles']} cycles simulated in {sim_seconds:.1f} s "
          f"({summary['total_cycles'] / max(sim_seconds, 1e-9) / 1e3:.0f} kcycles/s; "
          f"{wall:.1f} s wall with the build)")
    print(f"golden model test_accuracy={summary['golden_test_accuracy']:.4f}; "
          f"inference {summary['infer_cycles_per_sample']:.0f} cycles/sample")
    if summary["first_mismatch"]:
        print(f"first mismatch: {summary['first_mismatch']}")
    if summary["waves"]:
        print(f"waveform: {summary['waves']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"bit_exact={'true' if summary['bit_exact'] else 'false'} mismatches={summary['mismatches']} "
          f"samples={summary['samples']} test_accuracy={summary['test_accuracy']:.4f} "
          f"cycles_per_sample={round(summary['cycles_per_sample'])} "
          f"lane_utilisation={summary['lane_utilisation']:.2f}")
    return 0 if summary["bit_exact"] else 1


def _follow(path, thread, train_total, test_total, quiet):
    """A progress bar fed by the lines the cocotb test appends to ``path``."""
    bar = None
    if not quiet:
        from tqdm import tqdm
        bar = tqdm(total=train_total + test_total, unit="sample", file=sys.stderr, dynamic_ncols=True,
                   desc="train+test", leave=False)
    seen = 0
    with open(path) as handle:
        while True:
            alive = thread.is_alive()
            lines = handle.read().count("\n")
            if lines and bar is not None:
                bar.update(lines)
            seen += lines
            if not alive:
                break
            time.sleep(0.2)
    if bar is not None:
        bar.close()
    return seen
