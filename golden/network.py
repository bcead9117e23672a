"""The float network that every learning rule trains: conv blocks, then fully connected layers.

A network is a stack of *layers*. Layer ``k`` maps its input to a pre-activation ``a_k`` and an
output ``h_k``; the rules drive each layer separately through :meth:`Network.layer`, which is
what lets the local rules detach every layer's input.

- conv block: ``a = conv3x3(x)``, ``h = maxpool2x2(f(a))``;
- hidden fully connected layer: ``a = W x + b``, ``h = f(a)``;
- output layer: ``a = W x + b``, ``h = a`` (the logits).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


__all__ = ["ACTIVATIONS", "Network", "activation_fn"]


ACTIVATIONS = ("relu", "leaky_relu", "tanh", "hardtanh", "sigmoid", "linear")


def activation_fn(name):
    """The elementwise non-linearity ``f`` called ``name``."""
    functions = {
        "relu": F.relu,
        # The LLS paper's blocks use LeakyReLU(0.01).
        "leaky_relu": lambda a: F.leaky_relu(a, 0.01),
        "tanh": torch.tanh,
        "hardtanh": F.hardtanh,
        "sigmoid": torch.sigmoid,
        "linear": lambda a: a,
    }
    if name not in functions:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return functions[name]


class Network(nn.Module):
    """A conv/MLP stack built from a :class:`NetSpec`.

    Parameters
    ----------
    spec : NetSpec
        Layer sizes and conv blocks.
    activation : str
        Hidden non-linearity, one of :data:`ACTIVATIONS`.
    generator : torch.Generator
        Source of the initial weights (PyTorch's default uniform initialisation, drawn from this
        generator so that a seed fixes the run).
    """

    def __init__(self, spec, activation, generator):
        super().__init__()
        self.spec = spec
        self.activation = activation
        self.f = activation_fn(activation)
        modules = []
        for in_ch, out_ch, _, _ in spec.conv_shapes:
            modules.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1))
        fc = spec.fc_layers
        for fan_in, fan_out in zip(fc[:-1], fc[1:]):
            modules.append(nn.Linear(fan_in, fan_out))
        self.layers = nn.ModuleList(modules)
        with torch.no_grad():
            for module in self.layers:
                # nn.Linear/Conv2d's own default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)

    @property
    def n_layers(self):
        return len(self.layers)

    @property
    def n_conv(self):
        return len(self.spec.conv)

    def is_output(self, k):
        return k == self.n_layers - 1

    def prepare(self, x):
        """Reshape a batch of flat or image inputs to what layer 0 expects."""
        if self.n_conv:
            return x.reshape(x.shape[0], *self.spec.image_shape)
        return x.reshape(x.shape[0], -1)

    def pre_activation(self, k, x):
        """``a_k`` for input ``x`` of layer ``k``."""
        module = self.layers[k]
        if k == self.n_conv and self.n_conv:
            x = x.flatten(1)
        return module(x)

    def post_activation(self, k, a):
        """``h_k`` from ``a_k``: activation (and pooling) for hidden layers, identity at the output."""
        if self.is_output(k):
            return a
        h = self.f(a)
        if k < self.n_conv:
            h = F.max_pool2d(h, 2)
        return h

    def layer(self, k, x):
        """Run layer ``k``: returns ``(a_k, h_k)``."""
        a = self.pre_activation(k, x)
        return a, self.post_activation(k, a)

    def forward(self, x):
        h = self.prepare(x)
        for k in range(self.n_layers):
            _, h = self.layer(k, h)
        return h
