"""Cost accounting: hand-computed figures for tiny networks, invariants, CLI validation."""

import argparse
import json

import pytest

from golden import accounting_cli
from golden.accounting import RULES, Cost, account, account_all, format_table
from golden.netspec import NetSpec

BITS = dict(weight_bits=16, activation_bits=8)


def figures(cost):
    return (cost.forward_macs, cost.signal_macs, cost.update_macs, cost.signal_mults,
            cost.signal_adds, cost.weight_memory_bits, cost.activation_memory_bits,
            cost.feedback_memory_bits)


# 4-3-2, C = 2. Layers: 4->3 (12 MACs, 15 params), 3->2 (6 MACs, 8 params): 23 params = 368 bits.
# Kept: layer 1 input 4 + f' 3 = 7 values = 56 bits, layer 2 input 3 = 24 bits.
# BP signal: W2^T e = 6. DFA: C*N1 = 6, B1 is 2x3 = 96 bits. LLS: 2*C*3 + 2*3 = 18.
# DDFA: tangent through layer 2 (6) + e B1 (6) + B1 update (6); eps_1 is 3 values = 24 bits.
TWO_LAYER = {
    #               fwd sig upd mults adds weights act feedback
    "bp":           (18, 6, 18, 3, 0, 368, 80, 0),
    "dfa":          (18, 6, 18, 3, 0, 368, 80, 96),
    "drtp":         (18, 0, 18, 3, 0, 368, 56, 96),
    "lls":          (18, 18, 18, 9, 0, 368, 56, 0),
    "lls (square)": (18, 6, 18, 9, 12, 368, 56, 0),
    "lls-m":        (18, 24, 18, 9, 0, 368 + 2 * 16, 56, 0),
    "lls-mxm":      (18, 30, 18, 9, 0, 368 + 4 * 16, 56, 0),
    "ddfa":         (18, 18, 18, 3, 0, 368, 80 + 24, 96),
}

# 5-4-3-2, C = 2. Layers: 5->4 (20 MACs, 24 params), 4->3 (12, 15), 3->2 (6, 8): 47 params.
# Kept: 5+4 = 9 values (72 bits), 4+3 = 7 (56), 3 (24): BP 152, local max 72.
# Hidden outputs 4 + 3 = 7. BP signal 12 + 6 = 18. DFA 2*7 = 14. LLS 2*2*7 + 2*7 = 42.
# DDFA: 18 + 2*2*7 = 46; f' products 7, plus 3 in the tangent pass (second hidden layer).
THREE_LAYER = {
    "bp":           (38, 18, 38, 7, 0, 752, 152, 0),
    "dfa":          (38, 14, 38, 7, 0, 752, 152, 224),
    "drtp":         (38, 0, 38, 7, 0, 752, 72, 224),
    "lls":          (38, 42, 38, 21, 0, 752, 72, 0),
    "lls (square)": (38, 14, 38, 21, 28, 752, 72, 0),
    "lls-m":        (38, 42 + 2 * 2 * 3, 38, 21, 0, 752 + 2 * 2 * 16, 72, 0),
    "lls-mxm":      (38, 42 + 2 * 4 * 3, 38, 21, 0, 752 + 2 * 4 * 16, 72, 0),
    "ddfa":         (38, 46, 38, 10, 0, 752, 152 + 56, 224),
}


def test_two_layer_by_hand():
    costs = account_all(NetSpec(layers=(4, 3, 2)), **BITS)
    assert {row: figures(cost) for row, cost in costs.items()} == TWO_LAYER


def test_three_layer_by_hand():
    costs = account_all(NetSpec(layers=(5, 4, 3, 2)), **BITS)
    assert {row: figures(cost) for row, cost in costs.items()} == THREE_LAYER


def test_lls_bases():
    spec = NetSpec(layers=(5, 4, 3, 2))
    sin, cos, square, random = (account(spec, "lls", basis=basis, **BITS)
                                for basis in ("sin", "cos", "square", "random"))
    assert figures(cos) == figures(sin)
    assert figures(square) == THREE_LAYER["lls (square)"]
    # A stored random basis is C x (4 + 3) entries, as DFA's feedback.
    assert random.feedback_memory_bits == THREE_LAYER["dfa"][7]
    assert random.signal_macs == sin.signal_macs
    # Without an extra square row when the square basis is the one asked for.
    assert tuple(account_all(spec, basis="square")) == RULES


def test_conv_by_hand():
    # 4x4 image, one conv block of 3 channels, then 12 -> 2.
    # conv: 1*9*3*16 = 432 MACs, 27 + 3 params; output 3x2x2 = 12. FC 12 -> 2: 24 MACs, 26 params.
    spec = NetSpec(layers=(16, 2), conv=(3,))
    assert spec.fc_layers == (12, 2)
    bp = account(spec, "bp", **BITS)
    assert (bp.forward_macs, bp.update_macs, bp.signal_macs) == (456, 456, 24)
    assert bp.weight_memory_bits == 56 * 16
    # Conv kept: input 16 * 8 + 12 pooled outputs * (8-bit f' + 2-bit argmax); FC input 12 * 8.
    assert bp.activation_memory_bits == 248 + 96
    assert account(spec, "drtp", **BITS).activation_memory_bits == 248
    # B_1 is C x 12.
    assert account(spec, "dfa", **BITS).signal_macs == 24
    assert account(spec, "dfa", **BITS).feedback_memory_bits == 24 * 16
    # LLS, pool 1: z is 3 channel sums of 4 values (9 adds); 2*C*3 + 2*3 = 18 MACs.
    lls = account(spec, "lls", lls_pool=1, **BITS)
    assert (lls.signal_macs, lls.signal_adds) == (18, 9)
    # Pool 2 on a 2x2 output: no adds, 2*C*12 + 2*12 = 72 MACs.
    lls = account(spec, "lls", lls_pool=2, **BITS)
    assert (lls.signal_macs, lls.signal_adds) == (72, 0)


def test_two_conv_blocks_backward_includes_transposed_conv():
    # 8x8 image, conv 2 then 3 channels: 1*9*2*64 = 1152, 2*9*3*16 = 864, FC 12 -> 2: 24.
    spec = NetSpec(layers=(64, 2), conv=(2, 3))
    bp = account(spec, "bp", **BITS)
    assert bp.forward_macs == 1152 + 864 + 24
    assert bp.signal_macs == 864 + 24
    # A 7x7 output pooled to 2x2: windows of 4 rows by 4 columns, overlapping in the middle.
    spec = NetSpec(layers=(196, 2), conv=(1,))
    assert account(spec, "lls", lls_pool=2, **BITS).signal_adds == (2 * 4) * (2 * 4) - 4


@pytest.mark.parametrize("spec", [
    NetSpec(layers=(784, 128, 10)),
    NetSpec(layers=(64, 128, 10)),
    NetSpec(layers=(784, 256, 128, 10)),
    NetSpec(layers=(784, 128, 10), conv=(16, 32)),
])
def test_invariants(spec):
    costs = account_all(spec, **BITS)
    assert tuple(costs) == RULES[:4] + ("lls (square)",) + RULES[4:]
    bp = costs["bp"]
    for rule, cost in costs.items():
        # Forward and update are the network's, whatever the rule.
        assert (cost.forward_macs, cost.update_macs) == (bp.forward_macs, bp.forward_macs)
        assert cost.total_macs == cost.forward_macs + cost.signal_macs + cost.update_macs
        assert cost.memory_bits == (cost.weight_memory_bits + cost.activation_memory_bits
                                    + cost.feedback_memory_bits)
        if rule.startswith(("drtp", "lls")):
            assert cost.activation_memory_bits <= bp.activation_memory_bits
        if rule.startswith("lls"):
            assert cost.feedback_memory_bits == 0
    assert costs["drtp"].signal_macs == 0
    assert costs["dfa"].activation_memory_bits == bp.activation_memory_bits


def test_format_table_ratios():
    costs = account_all(NetSpec(layers=(784, 128, 10)), **BITS)
    text = format_table(costs)
    for rule in costs:
        assert f"\n{rule} " in text
    bp_row = next(line for line in text.splitlines() if line.startswith("bp "))
    assert bp_row.count("x1.00") == 4
    # The 784-128-10 figures of docs/accounting.md.
    assert "204,544 x1.00" in text and "206,080 x1.01" in text and "7,296 x0.877" in text


def test_account_rejects_bad_options():
    spec = NetSpec(layers=(4, 3, 2))
    with pytest.raises(ValueError, match="unknown rule 'fa'"):
        account(spec, "fa")
    with pytest.raises(ValueError, match="weight bits must be a positive integer"):
        account(spec, "bp", weight_bits=0)
    with pytest.raises(ValueError, match="unknown LLS basis 'dct'"):
        account(spec, "lls", basis="dct")
    with pytest.raises(ValueError, match="LLS pool size"):
        account(spec, "lls", lls_pool=0)
    with pytest.raises(ValueError, match="needs the 'bp' cost"):
        format_table({"lls": account(spec, "lls")})


def run_cli(*argv):
    parser = argparse.ArgumentParser(prog="synchrony")
    accounting_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["account", *argv])
    return args.func(args)


@pytest.mark.parametrize("argv, message", [
    (["--layers", "10"], "at least inputs and classes"),
    (["--layers", "784,x,10"], "--layers: expected comma-separated positive integers"),
    (["--layers", "10,2", "--conv", "4"], "needs a square image"),
    (["--layers", "64,2", "--conv", "4,4,4,4"], "do not fit a 8x8 image"),
    (["--layers", "784,128,10", "--classes", "12"], "--classes 12 does not match"),
    (["--layers", "3072,10", "--conv", "8", "--image-shape", "32,32"], "expected C,H,W"),
    (["--layers", "784,10", "--activation-bits", "0"], "activation bits must be a positive"),
    (["--layers", "784,10", "--derivative-bits", "0"], "derivative bits must be a positive"),
])
def test_cli_rejects_invalid_input(argv, message):
    with pytest.raises(ValueError, match=message):
        run_cli(*argv)


def test_cli_prints_and_writes_json(tmp_path, capsys):
    path = tmp_path / "cost.json"
    assert run_cli("--layers", "3072,10", "--conv", "8", "--image-shape", "3,32,32",
                   "--derivative-bits", "1", "--json", str(path)) == 0
    assert "conv8-2048-10" in capsys.readouterr().out
    record = json.loads(path.read_text())
    assert record["image_shape"] == [3, 32, 32] and record["derivative_bits"] == 1
    assert set(record["rules"]) == set(RULES) | {"lls (square)"}
    spec = NetSpec(layers=(3072, 10), conv=(8,), image_shape=(3, 32, 32))
    lls = account(spec, "lls", derivative_bits=1, **BITS)
    assert record["rules"]["lls"]["total_macs"] == lls.total_macs
    assert record["rules"]["lls"]["activation_memory_bits"] == lls.activation_memory_bits


def test_synchrony_entry_point(capsys):
    # Reaches the subcommand through golden.cli once all its subcommand modules exist.
    pytest.importorskip("golden.train_cli")
    from golden.cli import main
    assert main(["account", "--layers", "10"]) == 2
    assert "at least inputs and classes" in capsys.readouterr().err


def test_cost_is_frozen():
    cost = account(NetSpec(layers=(4, 3, 2)), "bp")
    assert isinstance(cost, Cost)
    with pytest.raises(AttributeError):
        cost.signal_macs = 0
