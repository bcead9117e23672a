"""``synchrony account``: MACs and training-state memory of every learning rule for one network."""

import json
from dataclasses import asdict

from .accounting import BASES, account_all, format_table
from .netspec import NetSpec, parse_int_list

__all__ = ["register", "run"]


def register(subparsers):
    """Add the ``account`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "account", help="count MACs and training memory of every learning rule",
        description="Count, for one training sample (batch 1), the MACs (forward, learning "
                    "signal, weight update) and the training-state memory (weights, kept "
                    "activations, feedback) of every learning rule, beside BP's. "
                    "Conventions: docs/accounting.md.")
    parser.add_argument("--layers", required=True, metavar="N,N,...",
                        help="inputs, hidden sizes and classes, e.g. 784,128,10")
    parser.add_argument("--conv", metavar="CH,CH,...",
                        help="output channels of conv3x3 + 2x2 max-pool blocks before the "
                             "fully connected layers, e.g. 16,32")
    parser.add_argument("--image-shape", metavar="C,H,W",
                        help="input image shape for --conv (default: a square single-channel "
                             "image of the --layers input size)")
    parser.add_argument("--classes", type=int, metavar="C",
                        help="number of classes; checked against the last --layers entry")
    parser.add_argument("--weight-bits", type=int, default=16, metavar="BITS",
                        help="bits per weight, bias and feedback entry (default: %(default)s)")
    parser.add_argument("--activation-bits", type=int, default=8, metavar="BITS",
                        help="bits per kept activation (default: %(default)s)")
    parser.add_argument("--derivative-bits", type=int, metavar="BITS",
                        help="bits per kept f' value (default: --activation-bits; "
                             "1 suffices for ReLU)")
    parser.add_argument("--lls-pool", type=int, default=2, metavar="P",
                        help="LLS pools each conv output channel to PxP (default: %(default)s)")
    parser.add_argument("--basis", choices=BASES, default="sin",
                        help="basis of the LLS rules; unless square, an 'lls (square)' row is "
                             "added (default: %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.set_defaults(func=run)


def spec_from_args(args):
    """The :class:`NetSpec` that ``args`` describe; ``ValueError`` if they are invalid."""
    layers = parse_int_list(args.layers, "--layers")
    conv = parse_int_list(args.conv, "--conv") if args.conv is not None else ()
    image_shape = None
    if args.image_shape is not None:
        image_shape = parse_int_list(args.image_shape, "--image-shape")
        if len(image_shape) != 3:
            raise ValueError(f"--image-shape: expected C,H,W, got {args.image_shape!r}")
    spec = NetSpec(layers=layers, conv=conv, image_shape=image_shape)
    if args.classes is not None and args.classes != spec.n_classes:
        raise ValueError(f"--classes {args.classes} does not match the last --layers entry "
                         f"({spec.n_classes})")
    return spec


def run(args):
    """Print the cost tables and optionally write them as JSON; return the exit code."""
    spec = spec_from_args(args)
    derivative_bits = args.activation_bits if args.derivative_bits is None else args.derivative_bits
    options = dict(weight_bits=args.weight_bits, activation_bits=args.activation_bits,
                   derivative_bits=derivative_bits, lls_pool=args.lls_pool, basis=args.basis)
    costs = account_all(spec, **options)
    if args.json is not None:
        record = {
            "network": spec.describe(), "layers": list(spec.layers), "conv": list(spec.conv),
            "image_shape": list(spec.image_shape), "classes": spec.n_classes, **options,
            "rules": {rule: {**asdict(cost), "total_macs": cost.total_macs,
                             "memory_bits": cost.memory_bits}
                      for rule, cost in costs.items()},
        }
        with open(args.json, "w") as file:
            json.dump(record, file, indent=2)
            file.write("\n")
    print(f"{spec.describe()}, {spec.n_classes} classes, one sample; bits per weight "
          f"{args.weight_bits}, per activation {args.activation_bits}, "
          f"per f' {derivative_bits}; LLS basis {args.basis}")
    print()
    print(format_table(costs))
    return 0
