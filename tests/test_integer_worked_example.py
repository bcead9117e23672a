"""The worked example of docs/numerics.md, re-derived from the page's formulas and run on the model.

The re-derivation below is deliberately independent of ``golden.integer``: plain Python integers,
its own LFSR, tables computed from their defining formulas, increments from mpmath.
"""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from golden.integer.config import EngineConfig
from golden.integer.network import IntegerNetwork, drtp_matrices, initial_weights
from golden.integer.basis import basis_matrix

DOC = Path(__file__).resolve().parent.parent / "docs" / "numerics.md"


def _example():
    text = DOC.read_text()
    marker = text.index("<!-- worked example")
    block = re.search(r"```text\n(.*?)```", text[marker:], re.S).group(1)
    values = {}
    for line in block.strip().splitlines():
        name, _, value = line.partition(" = ")
        values[name.strip()] = json.loads(value)
    return values


def rnd(a, s):
    return a if s == 0 else (a + (1 << (s - 1))) >> s


def sat(a, bits):
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, a))


def lfsr_stream(seed, poly=0x100400007):
    state = seed
    while True:
        out = state >> 31
        state = (state << 1) & 0xFFFFFFFF
        if out:
            state ^= poly & 0xFFFFFFFF
        yield out


def lfsr_values(stream, count, bits):
    values = []
    for _ in range(count):
        u = 0
        for _ in range(bits):
            u = (u << 1) | next(stream)
        values.append(2 * u + 1 - (1 << bits))
    return values


def softmax_unit(s, label, cfg):
    J = 1 << cfg["logit_frac"]
    X = [math.floor(2 ** (cfg["exp_bits"] - j / J) + 0.5) for j in range(J)]  # far from ties at these sizes
    top = max(s)
    exps = []
    for v in s:
        u = top - v
        exps.append(X[u & (J - 1)] >> min(u >> cfg["logit_frac"], cfg["exp_bits"] + 1))
    total = sum(exps)
    recip = (1 << cfg["recip_shift"]) // total
    probs = [rnd(E * recip, cfg["recip_shift"] - cfg["prob_frac"]) for E in exps]
    errors = [p - ((1 << cfg["prob_frac"]) if c == label else 0) for c, p in enumerate(probs)]
    return exps, total, recip, probs, errors


def rsqrt_entry(parity, mantissa, K, bits):
    # round(2**bits / sqrt(2**parity (1 + (mantissa + 1/2) / 2**K))), exactly.
    y_num, y_den = 1 << (2 * bits + K + 1), (1 << parity) * ((2 << K) + 2 * mantissa + 1)
    return (math.isqrt(4 * y_num // y_den) + 1) >> 1


def derive(ex):
    """Every number of the worked example from the page's formulas."""
    cfg, x, label = ex["config"], ex["x"], ex["label"]
    W0, b0, W1, b1 = ex["W0"], ex["b0"], ex["W1"], ex["b1"]
    N, C = cfg["layers"][1], cfg["layers"][2]
    act_max = (1 << cfg["act_bits"]) - 1
    d = {}
    # Forward, hidden layer (bias_shift = input_frac).
    acc0 = [sum(w * v for w, v in zip(row, x)) + (b << cfg["input_frac"]) for row, b in zip(W0, b0)]
    q0 = [rnd(a, cfg["act_shift"][0]) for a in acc0]
    h = [min(max(q, 0), act_max) for q in q0]
    fprime = [int(1 <= q <= act_max) for q in q0]
    d.update(acc0=acc0, h0=h, fprime0=fprime)
    # Basis: phase accumulator, sign bit.
    P = cfg["phase_bits"]
    incs = ex["increments"]
    phase = [[(n * inc) % (1 << P) for n in range(N)] for inc in incs]
    basis = [[1 - 2 * (ph >> (P - 1)) for ph in row] for row in phase]
    d.update(phase0=phase, basis0=basis)
    # Raw logits, normaliser.
    raw = [sum(B * v for B, v in zip(row, h)) for row in basis]
    S = sum(v * v for v in h)
    E = S.bit_length() - 1
    e2, parity, K = E >> 1, E & 1, cfg["norm_index_bits"]
    mantissa = ((S << K) >> E) & ((1 << K) - 1)
    R = rsqrt_entry(parity, mantissa, K, cfg["norm_bits"])
    d.update(raw0=raw, S0=S, e2=e2, norm_index=(parity << K) | mantissa, R=R)
    # Local logits.
    rb = cfg["norm_bits"]
    pre = max(e2 - cfg["norm_guard"], 0)
    post = rb + e2 - pre - cfg["temp_shift"] - cfg["logit_frac"]
    logits = [sat(rnd(rnd(r, pre) * R, post), cfg["logit_bits"]) for r in raw]
    d["logits0"] = logits
    exps, total, recip, probs, errors = softmax_unit(logits, label, cfg)
    d.update(exps0=exps, total0=total, recip0=recip, probs0=probs, errors0=errors)
    # Learning signal with projection.
    db_ = cfg["delta_bits"]
    scaled = [sat(rnd(e * R, rb + e2 - cfg["delta_shift"]), db_) for e in errors]
    g = [sum(scaled[c] * basis[c][n] for c in range(C)) for n in range(N)]
    sigma = sat(rnd(sum(s * v for s, v in zip(scaled, logits)), cfg["temp_shift"] + cfg["logit_frac"]), db_)
    kappa = sat(rnd(sigma * R, rb), db_)
    delta = [sat(g[n] - rnd(h[n] * kappa, e2), db_) * fprime[n] for n in range(N)]
    d.update(scaled0=scaled, sigma0=sigma, kappa0=kappa, delta0=delta)

    def update(W, b, delta, x, lr_shift, bias_shift, bits):
        dw = [[rnd(dl * v, lr_shift) for v in x] for dl in delta]
        db = [rnd(dl << bias_shift, lr_shift) for dl in delta]
        W_new = [[sat(w - dv, bits) for w, dv in zip(row, drow)] for row, drow in zip(W, dw)]
        b_new = [sat(v - dv, bits) for v, dv in zip(b, db)]
        return dw, db, W_new, b_new

    dw0, db0, W0_new, b0_new = update(W0, b0, delta, x, cfg["lr_shift"][0], cfg["input_frac"], cfg["weight_bits"][0])
    d.update(dw0=dw0, db0=db0, W0_new=W0_new, b0_new=b0_new)
    # Output layer: its input format is the hidden activation's, out_frac(0).
    hidden_frac = cfg["input_frac"] + cfg["weight_frac"][0] - cfg["act_shift"][0]
    acc1 = [sum(w * v for w, v in zip(row, h)) + (b << hidden_frac) for row, b in zip(W1, b1)]
    logits1 = [sat(rnd(a, cfg["act_shift"][1]), cfg["logit_bits"]) for a in acc1]
    exps, total, recip, probs, errors = softmax_unit(logits1, label, cfg)
    d.update(acc1=acc1, logits1=logits1, exps1=exps, total1=total, recip1=recip, probs1=probs, errors1=errors)
    dw1, db1, W1_new, b1_new = update(W1, b1, errors, h, cfg["lr_shift"][1], hidden_frac, cfg["weight_bits"][1])
    d.update(dw1=dw1, db1=db1, W1_new=W1_new, b1_new=b1_new)
    d["prediction"] = logits1.index(max(logits1))
    # Initialisation, DRTP rows and sine basis.
    d["init_W0_row0"] = lfsr_values(lfsr_stream(cfg["init_seed"]), cfg["layers"][0], cfg["init_bits"][0])
    drtp = lfsr_values(lfsr_stream(cfg["drtp_seed"]), C * N, 4)  # the example uses 4-bit entries
    d["drtp_B0"] = [drtp[c * N:(c + 1) * N] for c in range(C)]
    Q, A = cfg["table_index_bits"], (1 << (cfg["table_bits"] - 1)) - 1
    d["sine_basis0"] = [[math.floor(A * math.sin(2 * math.pi * ((ph >> (P - Q - 2)) + 0.5) / (1 << (Q + 2))) + 0.5)
                         for ph in row] for row in phase]
    return d


def test_increments_of_the_example():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 200
    ex = _example()
    C, P = ex["config"]["layers"][-1], ex["config"]["phase_bits"]
    for c, inc in enumerate(ex["increments"]):
        f = 50 + mpmath.mpf(462 * c) / (C - 1)
        cycles = f / (2 * mpmath.pi)
        assert abs((cycles - mpmath.floor(cycles)) * 2 ** P - inc) <= 0.5


def test_document_numbers_follow_from_the_formulas():
    ex = _example()
    derived = derive(ex)
    for name, value in derived.items():
        assert ex[name] == value, name


def test_model_reproduces_the_document():
    ex = _example()
    config = EngineConfig.from_dict(ex["config"])
    net = IntegerNetwork(config)
    net.load_weights([torch.tensor(ex["W0"]), torch.tensor(ex["W1"])], [torch.tensor(ex["b0"]), torch.tensor(ex["b1"])])
    trace = net.train_step(torch.tensor(ex["x"]), ex["label"], record=True)
    hidden, output = trace.layers
    got = {
        "acc0": hidden.acc, "h0": hidden.out, "fprime0": hidden.fprime, "basis0": net.bases[0],
        "raw0": hidden.raw_logits, "S0": hidden.norm.square, "e2": hidden.norm.half_exponent,
        "norm_index": hidden.norm.index, "R": hidden.norm.rsqrt, "logits0": hidden.logits,
        "exps0": hidden.softmax.exps, "total0": hidden.softmax.total, "recip0": hidden.softmax.recip,
        "probs0": hidden.softmax.probs, "errors0": hidden.softmax.errors, "scaled0": hidden.scaled_errors,
        "sigma0": hidden.sigma, "kappa0": hidden.kappa, "delta0": hidden.delta, "dw0": hidden.dw,
        "db0": hidden.db, "W0_new": hidden.weight, "b0_new": hidden.bias,
        "acc1": output.acc, "logits1": output.out, "exps1": output.softmax.exps, "total1": output.softmax.total,
        "recip1": output.softmax.recip, "probs1": output.softmax.probs, "errors1": output.softmax.errors,
        "dw1": output.dw, "db1": output.db, "W1_new": output.weight, "b1_new": output.bias,
        "prediction": trace.prediction,
        "init_W0_row0": initial_weights(config)[0][0][0],
        "drtp_B0": drtp_matrices(EngineConfig.from_dict(dict(ex["config"], rule="drtp", drtp_bits=4)))[0],
        "sine_basis0": basis_matrix(EngineConfig.from_dict(dict(ex["config"], basis="sin", norm_guard=2)), 6),
    }
    for name, value in got.items():
        value = value.tolist() if isinstance(value, torch.Tensor) else value
        assert value == ex[name], name
