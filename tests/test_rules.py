"""The float learning rules: they learn, they are local, and each computes the signal its paper defines."""

import pytest
import torch
from torch.nn import functional as F

from golden.datasets import load_dataset
from golden.netspec import NetSpec
from golden.network import Network
from golden.rules import RULES, lls_basis, make_rule
from golden.train import default_config, train

LOCAL_RULES = [r for r in RULES if r != "bp"]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _rule(name, layers=(64, 20, 15, 10), activation="tanh", conv=(), seed=0, **options):
    generator = torch.Generator().manual_seed(seed)
    spec = NetSpec(layers, conv=conv)
    net = Network(spec, activation, generator)
    return make_rule(name, net, generator, **options)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_learns(digits, rule):
    # Chance is 10 %; one online epoch must be far above it.
    config = default_config(rule, NetSpec((64, 32, 10)), batch_size=1, epochs=1, lr=0.05)
    history, _ = train(digits, config)
    assert history["test_accuracy"] > 0.8, history["epochs"]


@pytest.mark.parametrize("conv", [(), (4,)], ids=["mlp", "conv"])
@pytest.mark.parametrize("rule", LOCAL_RULES)
def test_no_gradient_crosses_layers(rule, conv):
    layers = (64, 20, 15, 10)
    r = _rule(rule, layers=layers, conv=conv, activation="relu")
    x, y = torch.rand(4, 64), torch.tensor([0, 3, 5, 9])
    _, objectives = r.objectives(x, y)
    assert len(objectives) == r.net.n_layers
    all_params = list(r.net.parameters()) + list(r.parameters())
    for k, objective in enumerate(objectives):
        for p in all_params:
            p.grad = None
        objective.backward()
        own = {id(p) for p in r.layer_parameters(k)}
        reached = {id(p) for p in all_params if p.grad is not None and p.grad.abs().sum() > 0}
        assert reached, f"objective {k} updates nothing"
        assert reached <= own, f"{rule}: objective {k} reaches parameters of another layer"


def test_backpropagation_is_not_local():
    # The locality check above can fail: BP's single loss reaches the first layer.
    r = _rule("bp")
    x, y = torch.rand(4, 64), torch.tensor([0, 3, 5, 9])
    _, (loss,) = r.objectives(x, y)
    loss.backward()
    assert r.net.layers[0].weight.grad.abs().sum() > 0


def test_drtp_signal_is_row_of_feedback_times_derivative():
    r = _rule("drtp", layers=(64, 20, 15, 10), activation="tanh")
    x, y = torch.rand(5, 64), torch.tensor([1, 1, 4, 7, 9])
    pre, post = r.forward_layers(x)
    _, objectives = r.objectives(x, y)
    for k in range(r.net.n_layers - 1):
        for p in r.net.parameters():
            p.grad = None
        objectives[k].backward()
        a = pre[k].detach()
        delta = r.feedback(k)[y] * (1 - torch.tanh(a) ** 2)
        layer_input = x if k == 0 else post[k - 1].detach()
        expected = delta.T @ layer_input / x.shape[0]
        torch.testing.assert_close(r.net.layers[k].weight.grad, expected)
        torch.testing.assert_close(r.net.layers[k].bias.grad, delta.mean(0))


def test_ddfa_feedback_learns_the_output_jacobian_of_a_linear_network():
    # With f = identity the true dy/dh_k is the product of the weights above layer k.
    r = _rule("ddfa", layers=(12, 10, 8, 4), activation="linear", feedback_lr=0.01)
    optimizer = torch.optim.SGD([{"params": list(r.feedbacks.parameters()), "lr": 0.01}])
    generator = torch.Generator().manual_seed(1)
    for _ in range(3000):
        x = torch.randn(1, 12, generator=generator)
        y = torch.randint(0, 4, (1,), generator=generator)
        optimizer.zero_grad()
        _, objectives = r.objectives(x, y)
        sum(objectives).backward()
        optimizer.step()
    w1, w2 = r.net.layers[1].weight.detach(), r.net.layers[2].weight.detach()
    jacobians = [w2 @ w1, w2]
    for k, jacobian in enumerate(jacobians):
        cosine = F.cosine_similarity(r.feedbacks[k].detach().flatten(), jacobian.flatten(), dim=0)
        assert cosine > 0.9, f"layer {k}: cosine {cosine:.3f}"


def test_lls_sin_basis_is_the_reference_formula():
    basis = lls_basis("sin", 10, 128)
    frequencies = torch.linspace(50, 512, 10)
    for c in (0, 3, 9):
        for n in (0, 1, 77, 127):
            assert basis[c, n] == torch.sin(frequencies[c] * float(n))
    assert torch.equal(lls_basis("square", 10, 128), torch.sign(basis))
    cos = lls_basis("cos", 10, 128)
    torch.testing.assert_close(cos @ cos.T, torch.eye(10) * 64, atol=1e-4, rtol=0)


def test_training_is_deterministic(digits):
    config = default_config("lls", NetSpec((64, 16, 10)), epochs=1)
    (first, net1), (second, net2) = train(digits, config), train(digits, config)
    assert first["epochs"][0]["test_accuracy"] == second["epochs"][0]["test_accuracy"]
    for p, q in zip(net1.parameters(), net2.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("overrides, message", [
    (dict(rule="bp", basis="sin"), "--basis only applies"),
    (dict(rule="lls", optimizer="rmsprop"), "unknown optimizer"),
    (dict(rule="lls", batch_size=0), "--batch-size"),
    (dict(rule="nope"), "unknown rule"),
])
def test_invalid_configuration_is_rejected(overrides, message):
    rule = overrides.pop("rule")
    with pytest.raises(ValueError, match=message):
        default_config(rule, NetSpec((64, 16, 10)), **overrides)


def test_layers_must_match_the_dataset(digits):
    with pytest.raises(ValueError, match="784 inputs, but digits has 64"):
        train(digits, default_config("bp", NetSpec((784, 16, 10)), epochs=1))
