"""``synchrony train``: train a golden model (float or integer) on a dataset."""

import json
import sys
from pathlib import Path

from .netspec import NetSpec, parse_int_list
from .rules import BASES, RULES

__all__ = ["register", "run"]


def register(subparsers):
    parser = subparsers.add_parser(
        "train", help="train the golden model with a learning rule",
        description="Train the float golden model (or, with --numerics int, the integer model that is "
                    "the hardware's numerics). Unset options take the rule's tuned defaults.")
    parser.add_argument("--rule", required=True, choices=RULES)
    parser.add_argument("--basis", choices=BASES, help="LLS basis (lls, lls-m, lls-mxm only; default square)")
    parser.add_argument("--dataset", default="digits", help="digits, mnist or idx:DIR (default digits)")
    parser.add_argument("--data-dir", type=Path, help="directory holding the MNIST IDX files")
    parser.add_argument("--download", action="store_true", help="fetch MNIST (md5-verified) if absent")
    parser.add_argument("--layers", help="inputs,hidden...,classes (default: inputs,128,classes)")
    parser.add_argument("--conv", help="output channels of conv3x3-pool blocks before the layers, e.g. 16,32")
    parser.add_argument("--numerics", choices=("float", "int"), default="float")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="1 = online SGD, the hardware's mode")
    parser.add_argument("--optimizer", choices=("sgd", "adam"))
    parser.add_argument("--lr", type=float)
    parser.add_argument("--shift", type=int, help="random translation augmentation in pixels "
                        "(default 2 for mini-batch runs on 28x28 images, else 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the whole history as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _spec(args, dataset):
    layers = parse_int_list(args.layers) if args.layers else _default_layers(dataset)
    _check_fits(layers, dataset)
    conv = parse_int_list(args.conv, "--conv") if args.conv else ()
    return NetSpec(layers, conv=conv, image_shape=dataset.image_shape)


def _check_fits(layers, dataset):
    if layers[0] != dataset.n_inputs:
        raise ValueError(f"--layers starts with {layers[0]} inputs, but {dataset.name} has {dataset.n_inputs} "
                         f"({'x'.join(map(str, dataset.image_shape[1:]))} images)")
    if layers[-1] != dataset.n_classes:
        raise ValueError(f"--layers ends with {layers[-1]} classes, but {dataset.name} has {dataset.n_classes}")


def _default_layers(dataset):
    from .train import DEFAULT_HIDDEN

    return (dataset.n_inputs, *DEFAULT_HIDDEN, dataset.n_classes)


def _progress_factory(args):
    if args.quiet:
        return None
    from tqdm import tqdm

    def progress(total):
        return tqdm(total=total, unit="sample", leave=False, file=sys.stderr, dynamic_ncols=True)
    return progress


def run(args):
    from .datasets import load_dataset

    if args.numerics == "int":
        return _run_integer(args, load_dataset)
    from .train import default_config, train

    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=args.download)
    config = default_config(args.rule, _spec(args, dataset), batch_size=args.batch_size, basis=args.basis,
                            epochs=args.epochs, optimizer=args.optimizer, lr=args.lr, shift=args.shift,
                            seed=args.seed)
    print(f"dataset: {dataset.note}")
    print(f"rule={config.rule}{' basis=' + config.basis if config.basis else ''} "
          f"network={config.spec.describe()} activation={config.activation} "
          f"{'online (batch 1)' if config.online else f'batch={config.batch_size}'} "
          f"optimizer={config.optimizer} lr={config.lr:g} epochs={config.epochs} seed={config.seed}")
    history, _ = train(dataset, config, progress=_progress_factory(args), on_epoch=_print_epoch(config.epochs))
    return _finish(args, history)


def _run_integer(args, load_dataset):
    from .integer.config import BASES as INT_BASES, RULES as INT_RULES
    from .integer.train import default_config, default_epochs, train_integer

    if args.rule not in INT_RULES:
        raise ValueError(f"--numerics int supports --rule {', '.join(INT_RULES)}, not {args.rule}")
    if args.basis is not None and args.basis not in INT_BASES:
        raise ValueError(f"--numerics int supports --basis {', '.join(INT_BASES)}, not {args.basis}")
    if args.batch_size not in (None, 1):
        raise ValueError("--numerics int trains online: --batch-size must be 1 (or left out)")
    for flag, value in (("--optimizer", args.optimizer), ("--lr", args.lr), ("--conv", args.conv),
                        ("--shift", args.shift)):
        if value is not None:
            raise ValueError(f"{flag} does not apply to --numerics int (its learning rate is a shift "
                             "in the engine configuration)")
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=args.download)
    layers = parse_int_list(args.layers) if args.layers else _default_layers(dataset)
    _check_fits(layers, dataset)
    config = default_config(args.rule, args.basis, layers, seed=args.seed)
    epochs = args.epochs or default_epochs(args.rule)
    print(f"dataset: {dataset.note}")
    print(f"numerics=int rule={config.rule}{' basis=' + config.basis if config.uses_basis else ''} "
          f"network={'-'.join(map(str, layers))} activation={config.activation} online (batch 1) "
          f"epochs={epochs} seed={args.seed} config={config.digest()[:12]}")
    history = train_integer(dataset, config, epochs, args.seed,
                            on_epoch=_print_epoch(epochs), progress=_progress_factory(args))
    return _finish(args, history)


def _print_epoch(epochs):
    def on_epoch(record):
        print(f"epoch {record['epoch']}/{epochs} train_accuracy={record['train_accuracy']:.4f} "
              f"test_accuracy={record['test_accuracy']:.4f} ({record['seconds']:.1f} s)", flush=True)
    return on_epoch


def _finish(args, history):
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(history, indent=2) + "\n")
    print(f"test_accuracy={history['test_accuracy']:.4f}")
    return 0
