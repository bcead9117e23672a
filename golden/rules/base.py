"""What every learning rule provides to the training loop."""

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LearningRule", "signal_objective"]


def signal_objective(h, signal):
    """A scalar whose gradient w.r.t. a layer's parameters applies ``signal`` as ``dL/dh``.

    Back-propagating it through the layer's own activation (and pooling) gives
    ``delta = signal * f'(a)``, and so the update ``delta x^T``: the way DFA, DRTP and DDFA drive a
    layer with a learning signal that was not obtained by back-propagation.
    """
    return (h * signal.detach()).sum() / h.shape[0]


class LearningRule(nn.Module):
    """A learning rule: turns one batch into one objective per layer.

    The training loop sums the objectives, back-propagates and steps the optimiser. For a local
    rule (``local = True``) every layer's input is detached, so objective ``k`` reaches only layer
    ``k``'s parameters and the rule's own state for that layer (:meth:`layer_parameters`). The
    output layer of a local rule is trained by its own cross-entropy, as each paper does.

    Parameters
    ----------
    net : Network
        The network to train. The rule keeps a reference to it.
    generator : torch.Generator
        Source of any fixed random state (feedback matrices, perturbations).
    """

    local = True

    def __init__(self, net, generator):
        super().__init__()
        # Not a submodule: the rule's own parameters are only its extra state.
        object.__setattr__(self, "net", net)
        self.generator = generator

    @property
    def n_classes(self):
        return self.net.spec.n_classes

    def layer_parameters(self, k):
        """Every parameter that objective ``k`` may update."""
        return list(self.net.layers[k].parameters())

    def param_groups(self, lr):
        """Optimiser parameter groups: the network's weights plus the rule's trainable state."""
        return [{"params": list(self.net.parameters()), "lr": lr}]

    def forward_layers(self, x):
        """Run the network layer by layer; returns lists of ``a_k`` and ``h_k``."""
        h = self.net.prepare(x)
        pre, post = [], []
        for k in range(self.net.n_layers):
            a, h = self.net.layer(k, h.detach() if self.local else h)
            pre.append(a)
            post.append(h)
        return pre, post

    def objectives(self, x, y):
        """Returns ``(logits, [objective_0, ..., objective_{L-1}])`` for a batch."""
        pre, post = self.forward_layers(x)
        logits = post[-1]
        objectives = [self.hidden_objective(k, pre[k], post[k], x, y, logits)
                      for k in range(self.net.n_layers - 1)]
        objectives.append(F.cross_entropy(logits, y))
        return logits, objectives

    def hidden_objective(self, k, a, h, x, y, logits):
        raise NotImplementedError

    def one_hot(self, y):
        return F.one_hot(y, self.n_classes).to(torch.float32)
