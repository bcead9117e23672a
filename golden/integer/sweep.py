"""Accuracy sweeps behind docs/results.md: integer model against its float mirror, and bit widths.

``python -m golden.integer.sweep compare --dataset digits --rule lls --basis square --seeds 0,1,2``
``python -m golden.integer.sweep compare --dataset digits --rule lls --numerics int --set projection=False``
``python -m golden.integer.sweep widths --dataset digits --seeds 0,1,2``

Each run prints one JSON line; the widths sweep ends with a markdown table of mean test accuracy.
"""

import argparse
import ast
import itertools
import json
import sys
import time

from ..datasets import load_dataset
from .calibrate import train_float_mirror
from .train import default_config, train_integer

__all__ = ["compare", "widths", "main"]


def _run(dataset, config, seed, numerics):
    start = time.perf_counter()
    train = train_integer if numerics == "int" else train_float_mirror
    history = train(dataset, config, None, seed)
    return {"numerics": numerics, "seed": seed, "test_accuracy": history["test_accuracy"],
            "curve": [round(e["test_accuracy"], 4) for e in history["epochs"]],
            "seconds": round(time.perf_counter() - start, 1), "config_digest": config.digest()[:12]}


def compare(dataset, rule, basis, seeds, numerics=("int", "float"), out=sys.stdout, **overrides):
    """Integer model and float mirror of the default configuration, per seed; returns the records.

    ``overrides`` go to :func:`~golden.integer.train.default_config` (ablations)."""
    records = []
    layers = (dataset.n_inputs, 128, dataset.n_classes)
    for seed, kind in itertools.product(seeds, numerics):
        record = _run(dataset, default_config(rule, basis, layers, seed=seed, **overrides), seed, kind)
        record.update(rule=rule, basis=basis, dataset=dataset.name, overrides=overrides)
        print(json.dumps(record), file=out, flush=True)
        records.append(record)
    return records


def widths(dataset, seeds, weight_widths=(8, 12, 16), act_widths=(6, 8, 10), roundings=("nearest", "stochastic"),
           rule="lls", basis="square", out=sys.stdout):
    """Test accuracy of the integer model against weight and activation width; prints a table."""
    layers = (dataset.n_inputs, 128, dataset.n_classes)
    means = {}
    for rounding, weight_width, act_bits in itertools.product(roundings, weight_widths, act_widths):
        accuracies = []
        for seed in seeds:
            config = default_config(rule, basis, layers, seed=seed, weight_width=weight_width, act_bits=act_bits,
                                    rounding=rounding)
            record = _run(dataset, config, seed, "int")
            record.update(weight_width=weight_width, act_bits=act_bits, rounding=rounding)
            print(json.dumps(record), file=out, flush=True)
            accuracies.append(record["test_accuracy"])
        means[rounding, weight_width, act_bits] = sum(accuracies) / len(accuracies)
    print(file=out)
    for rounding in roundings:
        print(f"| {rounding} rounding | " + " | ".join(f"act {a}" for a in act_widths) + " |", file=out)
        print("|---" * (len(act_widths) + 1) + "|", file=out)
        for w in weight_widths:
            print(f"| weights {w} | " + " | ".join(f"{100 * means[rounding, w, a]:.1f}" for a in act_widths) + " |",
                  file=out)
        print(file=out)
    return means


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m golden.integer.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("compare", "widths"))
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--rule", default="lls")
    parser.add_argument("--basis", default=None)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--numerics", default="int,float", help="compare: int, float or both")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="compare: a default_config override (Python literal), repeatable")
    args = parser.parse_args(argv)
    dataset = load_dataset(args.dataset)
    seeds = [int(s) for s in args.seeds.split(",")]
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = ast.literal_eval(value)
    if args.kind == "compare":
        compare(dataset, args.rule, args.basis, seeds, tuple(args.numerics.split(",")), **overrides)
    else:
        widths(dataset, seeds, rule=args.rule, basis=args.basis or "square")
    return 0


if __name__ == "__main__":
    sys.exit(main())
