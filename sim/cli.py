"""``synchrony sim``: the main job — train the engine online on a dataset, then test it.

Until the RTL engine lands, this runs the integer golden model (``golden/integer``), which *is*
the hardware's numerics, and says so.
"""

__all__ = ["register", "run"]


def register(subparsers):
    parser = subparsers.add_parser(
        "sim", help="train the engine online (one epoch of digits by default) and test it",
        description="Train the engine online on a dataset and test it on the held-out set.")
    parser.add_argument("--rule", default="lls", choices=("lls", "lls-m", "drtp"))
    parser.add_argument("--basis", default=None, help="LLS basis (square or sin; default square)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--layers")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args):
    from golden.train_cli import run as train_run

    print("synchrony sim: the RTL engine is not built yet; running the integer golden model "
          "(the hardware's exact numerics) online instead.")
    args.numerics = "int"
    args.download = False
    args.batch_size = args.optimizer = args.lr = args.conv = args.shift = args.json = None
    return train_run(args)
