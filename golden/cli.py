"""The ``synchrony`` command line: one entry point, one module per subcommand.

Each subcommand module provides ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code.
"""

import argparse
import importlib
import sys

__all__ = ["main"]

# Subcommand modules, in the order `synchrony --help` lists them.
SUBCOMMANDS = [
    "golden.train_cli",
    "golden.accounting_cli",
    "sim.cli",
    "sim.board_cli",
    "boards.host_cli",
    "boards.cli",
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="synchrony",
        description="On-chip training of neural networks with local learning rules: "
                    "golden models, RTL simulation, bitstreams.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, OSError) as error:
        # Bad input (configuration, data file, ...) is reported, never a traceback.
        print(f"synchrony {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
