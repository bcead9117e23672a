"""``synchrony host``: train, test, checkpoint and restore a board (or the simulated board) over the
host protocol (``docs/protocol.md``).

PORT is a serial device (``/dev/ttyUSB0``) or any pyserial URL, e.g. ``socket://127.0.0.1:PORT``
for ``synchrony sim-board``. Every request has an explicit ``--timeout`` and ``--retries``; a
dead port, a timeout or a malformed response is reported as ``synchrony host: error: ...``.

Training streams the samples in the order of ``golden.integer.train`` (a seeded permutation per
epoch) and writes the learning-rate offset between epochs, so a run is bit for bit the integer
golden model's run on the same seed. The last line of ``train`` is

    samples=N epochs=E train_accuracy=0.XXXX test_accuracy=0.XXXX retries=R
"""

import json
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers):
    parser = subparsers.add_parser(
        "host", help="talk to a board (or `synchrony sim-board`) over its UART: train, infer, dump, load",
        description="Drive a Synchrony board over the host protocol (docs/protocol.md).")
    parser.add_argument("--port", required=True,
                        help="serial device or pyserial URL (socket://127.0.0.1:PORT for the simulated board)")
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a response (default 2)")
    parser.add_argument("--retries", type=int, default=3, help="resends after a timeout or refusal (default 3)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    actions.add_parser("identify", help="protocol version, configuration hash, lanes, layer sizes")
    actions.add_parser("counters", help="the engine's and the protocol's counters")
    actions.add_parser("init", help="re-initialise the weights from the LFSR")

    train = actions.add_parser("train", help="train online on a dataset, then test")
    _dataset_args(train)
    train.add_argument("--epochs", type=int, default=1)
    train.add_argument("--seed", type=int, default=0, help="presentation order (as synchrony train)")
    train.add_argument("--test-samples", type=int, help="test on the first N held-out samples (default all)")
    train.add_argument("--no-test", action="store_true", help="skip the held-out test")
    train.add_argument("--json", type=Path, metavar="PATH", help="write the summary (and per-step results) as JSON")

    infer = actions.add_parser("infer", help="test the board's current weights on the held-out set")
    _dataset_args(infer)

    dump = actions.add_parser("dump", help="checkpoint the weights to FILE (with the configuration hash)")
    dump.add_argument("file", type=Path)
    load = actions.add_parser("load", help="restore weights from FILE (refused for another configuration)")
    load.add_argument("file", type=Path)
    parser.set_defaults(func=run)


def _dataset_args(parser):
    parser.add_argument("--dataset", default="digits", help="digits, mnist or idx:DIR (default digits)")
    parser.add_argument("--data-dir", type=Path, help="directory holding the MNIST IDX files")
    parser.add_argument("--samples", type=int, help="use the first N samples (of each epoch's order / the test set)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    from .host import Client

    if args.timeout <= 0 or args.retries < 0:
        raise ValueError("--timeout must be positive and --retries >= 0")
    with Client(args.port, baud=args.baud, timeout=args.timeout, retries=args.retries) as client:
        geo = client.identify()
        if args.action == "identify":
            print(f"protocol version {geo.version}; config {geo.digest}")
            print(f"network {'-'.join(map(str, geo.layers))} rule={geo.rule}"
                  f"{' basis=' + geo.basis if geo.rule != 'drtp' else ''} lanes={geo.lanes} "
                  f"weight_bits={','.join(map(str, geo.weight_bits))} words={','.join(map(str, geo.words))} "
                  f"max_payload={geo.max_payload} lr_decay={','.join(map(str, geo.lr_decay)) or '-'}")
            return 0
        if args.action == "counters":
            for name, value in client.counters().items():
                print(f"{name}={value}")
            return 0
        if args.action == "init":
            client.initialise()
            print("weights re-initialised")
            return 0
        if args.action == "dump":
            return _dump(client, args)
        if args.action == "load":
            return _load(client, args)
        if args.action == "train":
            return _train(client, args)
        return _infer(client, args)


def _bar(total, desc, quiet):
    if quiet:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="sample", desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)


def _dataset(client, args):
    from golden.datasets import load_dataset
    from golden.integer.train import flatten

    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    geo = client.geometry
    if geo.layers[0] != dataset.n_inputs or geo.n_classes != dataset.n_classes:
        raise ValueError(f"the device's network {'-'.join(map(str, geo.layers))} does not fit {dataset.name}: "
                         f"{dataset.n_inputs} inputs, {dataset.n_classes} classes")
    if args.samples is not None and args.samples < 1:
        raise ValueError("--samples must be positive")
    return dataset, flatten(dataset.train_x), dataset.train_y.tolist(), flatten(dataset.test_x), dataset.test_y.tolist()


def _test(client, xs, ys, quiet):
    bar = _bar(len(ys), "test", quiet)
    correct = 0
    for x, y in zip(xs, ys):
        correct += int(client.infer(x.tolist()) == y)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return correct / max(len(ys), 1)


def _train(client, args):
    import torch

    if args.epochs < 1:
        raise ValueError("--epochs must be positive")
    dataset, train_x, train_y, test_x, test_y = _dataset(client, args)
    geo = client.geometry
    generator = torch.Generator().manual_seed(args.seed)
    epochs = []
    for _ in range(args.epochs):
        order = torch.randperm(len(train_y), generator=generator).tolist()
        epochs.append(order[:args.samples] if args.samples else order)
    total = sum(len(e) for e in epochs)
    print(f"dataset: {dataset.note}")
    print(f"device: network {'-'.join(map(str, geo.layers))} rule={geo.rule} lanes={geo.lanes} "
          f"config={geo.digest[:12]}; training {total} samples, {args.epochs} epoch(s), seed {args.seed}",
          flush=True)
    bar = _bar(total, "train", args.quiet)
    steps, correct = [], 0
    for number, order in enumerate(epochs, start=1):
        client.set_lr_offset(geo.lr_offset(number))
        for index in order:
            prediction, checksum = client.train(train_x[index].tolist(), train_y[index])
            correct += int(prediction == train_y[index])
            steps.append([index, prediction, checksum])
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    train_accuracy = correct / max(total, 1)
    test_accuracy = None
    if not args.no_test:
        n = len(test_y) if args.test_samples is None else min(args.test_samples, len(test_y))
        test_accuracy = _test(client, test_x[:n], test_y[:n], args.quiet)
    summary = {"samples": total, "epochs": args.epochs, "seed": args.seed, "train_accuracy": train_accuracy,
               "test_accuracy": test_accuracy, "retries": client.retried, "config_digest": geo.digest,
               "steps": steps}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary) + "\n")
    test = "n/a" if test_accuracy is None else f"{test_accuracy:.4f}"
    print(f"samples={total} epochs={args.epochs} train_accuracy={train_accuracy:.4f} test_accuracy={test} "
          f"retries={client.retried}")
    return 0


def _infer(client, args):
    dataset, _, _, test_x, test_y = _dataset(client, args)
    n = len(test_y) if args.samples is None else min(args.samples, len(test_y))
    accuracy = _test(client, test_x[:n], test_y[:n], args.quiet)
    print(f"test_samples={n} test_accuracy={accuracy:.4f} retries={client.retried}")
    return 0


def _dump(client, args):
    from .host import save_checkpoint

    layers = client.read_weights()
    save_checkpoint(args.file, client.geometry, layers)
    print(f"saved {sum(len(w) for w in layers)} weight words of {client.geometry.digest[:12]} to {args.file}")
    return 0


def _load(client, args):
    from .host import load_checkpoint

    layers = load_checkpoint(args.file, client.geometry)
    client.write_weights(layers)
    if client.read_weights() != layers:
        raise OSError(f"{args.file}: the weights read back differ from the checkpoint")
    print(f"restored {sum(len(w) for w in layers)} weight words from {args.file} (read back and verified)")
    return 0
