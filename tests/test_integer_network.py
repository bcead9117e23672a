"""The integer model: determinism, batch = per-sample inference, saturation, float tracking."""

import pytest
import torch

from golden.integer.arith import signed_max
from golden.integer.calibrate import FloatMirror
from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config


def _samples(config, count, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 1 << config.input_bits, (count, config.layers[0]), generator=gen)
    y = torch.randint(0, config.n_classes, (count,), generator=gen)
    return x, y


CONFIGS = [("lls", "square"), ("lls", "sin"), ("lls-m", None), ("drtp", None)]


@pytest.mark.parametrize("rule, basis", CONFIGS)
def test_same_seed_same_weights(rule, basis):
    config = default_config(rule, basis, (20, 16, 12, 4), seed=5, rounding="stochastic")
    x, y = _samples(config, 40)
    nets = [IntegerNetwork(config) for _ in range(2)]
    for net in nets:
        for xi, yi in zip(x, y):
            net.train_step(xi, int(yi))
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert torch.equal(a, b)
    other = IntegerNetwork(default_config(rule, basis, (20, 16, 12, 4), seed=6))
    assert not torch.equal(other.weights[0], IntegerNetwork(config).weights[0])


@pytest.mark.parametrize("rule, basis", CONFIGS)
def test_batch_inference_equals_per_sample(rule, basis):
    config = default_config(rule, basis, (20, 16, 4), seed=1)
    net = IntegerNetwork(config)
    x, y = _samples(config, 64)
    for xi, yi in zip(x[:32], y[:32]):
        net.train_step(xi, int(yi))
    batch = net.infer(x)
    single = torch.stack([net.infer(xi.unsqueeze(0))[0] for xi in x])
    assert torch.equal(batch, single)
    trace = net.train_step(x[40], int(y[40]), record=True)
    assert trace.prediction == int(single[40])


def _assert_in_format(trace, config):
    for k, layer in enumerate(trace.layers):
        bits = config.weight_bits[k]
        assert layer.weight.abs().max() <= signed_max(bits) + 1 and layer.bias.abs().max() <= signed_max(bits) + 1
        assert layer.acc.abs().max() <= signed_max(config.acc_bits)
        assert layer.delta.abs().max() <= signed_max(config.delta_bits) + 1
        if layer.logits is not None:
            assert layer.logits.abs().max() <= signed_max(config.logit_bits) + 1
        if layer.scaled_errors is not None:
            assert layer.scaled_errors.abs().max() <= signed_max(config.delta_bits) + 1
        if layer.kappa is not None:
            assert abs(layer.kappa) <= signed_max(config.delta_bits) + 1


@pytest.mark.parametrize("rule, basis", CONFIGS)
def test_saturation_never_wraps(rule, basis):
    # Maximal weights and inputs, learning rate shift 0 (huge updates), tiny ||h||.
    config = default_config(rule, basis, (64, 32, 10), lr_shift=(0, 0), rounding="nearest")
    net = IntegerNetwork(config)
    top = [signed_max(b) for b in config.weight_bits]
    for sign in (1, -1):
        net.load_weights([torch.full_like(w, sign * t) for w, t in zip(net.weights, top)],
                         [torch.full_like(b, sign * t) for b, t in zip(net.biases, top)])
        x = torch.full((64,), (1 << config.input_bits) - 1)
        for label in (0, 9, 3):
            trace = net.train_step(x, label, record=True)
            _assert_in_format(trace, config)
            # Worst-case accumulators are exact: the configuration's bound guarantees no wrap.
            assert torch.equal(trace.layers[0].acc, torch.full((32,), sign * top[0] * (255 * 64 + 256)))
    # One tiny activation: 1 / ||h|| is at its largest, scaled errors and kappa saturate.
    w0 = torch.zeros(32, 64, dtype=torch.int64)
    w0[0, 0] = 1 << (config.act_shift[0] - 1)  # rounds to h_0 = 1
    net.load_weights([w0, torch.full_like(net.weights[1], top[1])], [torch.zeros(32, dtype=torch.int64),
                                                                      torch.zeros(10, dtype=torch.int64)])
    x = torch.zeros(64, dtype=torch.int64)
    x[0] = 1
    trace = net.train_step(x, 4, record=True)
    _assert_in_format(trace, config)
    # A weight at the limit that is pushed further stays at the limit.
    w = net.weights[1]
    assert w.max() == top[1] and w.min() >= -top[1] - 1


def test_load_weights_rejects_out_of_range():
    config = default_config("lls", "square", (8, 6, 3))
    net = IntegerNetwork(config)
    too_big = [w.clone() for w in net.weights]
    too_big[0][0, 0] = 1 << 15
    with pytest.raises(ValueError, match="weight_bits"):
        net.load_weights(too_big, net.biases)
    with pytest.raises(ValueError, match="layer 1 needs"):
        net.load_weights([net.weights[0], net.weights[0]], net.biases)


@pytest.mark.parametrize("rule, basis", [("lls", "square"), ("lls", "sin"), ("drtp", None)])
def test_tracks_float_mirror_on_random_layers(rule, basis):
    # One step from identical weights: the integer learning signal and update equal the float
    # ones within the documented bounds (docs/numerics.md, "Error bounds").
    config = default_config(rule, basis, (48, 40, 10), seed=2)
    gen = torch.Generator().manual_seed(7)
    for trial in range(20):
        net, ref = IntegerNetwork(config), FloatMirror(config)
        w = [torch.randint(-t, t + 1, tuple(x.shape), generator=gen)
             for x, t in zip(net.weights, (1 << (config.weight_frac[0] - 2), 1 << (config.weight_frac[1] - 1)))]
        b = [torch.randint(-64, 65, tuple(x.shape), generator=gen) for x in net.biases]
        net.load_weights(w, b)
        ref.weights, ref.biases = [t.double() for t in w], [t.double() for t in b]
        x = torch.randint(0, 256, (48,), generator=gen)
        label = trial % 10
        trace = net.train_step(x, label, record=True)
        ref.train_step(x, label)
        h = trace.layers[0]
        # Activations: one rounding.
        exact_q = h.acc.double() / (1 << config.act_shift[0])
        assert (h.out.double() - exact_q.clamp(config.act_min, config.act_max)).abs().max() <= 0.5
        epsilon = 2.0 ** -(config.norm_index_bits + 2) + 2.0 ** -config.norm_bits
        if config.uses_basis and h.norm is not None:
            # Local logits: the 1/sqrt table's relative error plus < 1 LSB of rounding.
            z_hat = h.out.double() / h.out.double().norm()
            basis = net.bases[0].double() / (1 << config.basis_frac)
            exact = (basis @ z_hat) * (1 << (config.temp_shift + config.logit_frac))
            assert ((h.logits.double() - exact).abs() <= epsilon * exact.abs() + 1).all()
        # f' is decided on the rounded q: neurons within half an LSB of a kink may differ.
        kinks = torch.tensor([0.0, config.act_min, config.act_max]).double()
        clear = (exact_q.unsqueeze(1) - kinks).abs().min(dim=1).values > 0.5
        for k in range(2):
            step_int = w[k].double() - net.weights[k].double()
            step_float = w[k].double() - ref.weights[k]
            if k == 0:
                step_int, step_float = step_int[clear], step_float[clear]
            # Update: relative error of the learning signal, plus rounding of delta and the update.
            scale = step_float.abs().max().item()
            err = (step_int - step_float).abs().max().item()
            # LLS: the 1/sqrt table's relative error enters twice (logits and scaled errors).
            relative = 2 * epsilon + 0.01
            tolerance = (relative if config.uses_basis and k == 0 else 0.01) * scale + 2
            assert err <= tolerance, (trial, k, err, scale)


def test_stochastic_rounding_is_unbiased():
    config = default_config("lls", "square", (8, 6, 3), rounding="stochastic")
    net = IntegerNetwork(config)
    shift = config.lr_shift[0]
    delta = torch.tensor([1, -3, 5, 100, -77, 0])
    x = torch.tensor([0, 1, 17, 255, 128, 3, 200, 99])
    exact = delta.unsqueeze(1).double() * x.double() / (1 << shift)
    total = torch.zeros(6, 8, dtype=torch.float64)
    trials = 400
    for _ in range(trials):
        before = net.weights[0]
        net._update(0, x, delta, None)
        step = (before - net.weights[0]).double()
        # Each draw rounds down or up: within one LSB of the exact step.
        assert ((step - exact).abs() < 1).all()
        total += step
    # Mean of 400 draws: standard error <= 0.5 / 20 LSB.
    assert ((total / trials - exact).abs() < 0.1).all()
