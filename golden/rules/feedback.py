"""Fixed random feedback: direct feedback alignment (DFA) and direct random target projection (DRTP)."""

import math

import torch
from torch.nn import functional as F

from .base import LearningRule, signal_objective

__all__ = ["DirectFeedbackAlignment", "DirectRandomTargetProjection", "fixed_feedback"]


def fixed_feedback(n_classes, n_features, generator):
    """A fixed random ``C x N`` feedback matrix, He-uniform as in the DRTP code.

    The matrix projects a C-vector (error or target), so its fan-in is C:
    ``B ~ U(-sqrt(6/C), sqrt(6/C))``.
    """
    bound = math.sqrt(6 / n_classes)
    return (torch.rand(n_classes, n_features, generator=generator) * 2 - 1) * bound


class _FixedFeedbackRule(LearningRule):
    def __init__(self, net, generator):
        super().__init__(net, generator)
        shapes = self._hidden_shapes()
        for k, n_features in enumerate(shapes):
            self.register_buffer(f"feedback_{k}", fixed_feedback(self.n_classes, n_features, generator))

    def _hidden_shapes(self):
        """Number of output values of each hidden layer (conv layers: after pooling)."""
        with torch.no_grad():
            x = torch.zeros(1, self.net.spec.layers[0])
            _, post = self.forward_layers(x)
        return [h[0].numel() for h in post[:-1]]

    def feedback(self, k):
        return getattr(self, f"feedback_{k}")


class DirectFeedbackAlignment(_FixedFeedbackRule):
    """DFA: hidden layer ``k`` gets ``delta_k = (e B_k) * f'(a_k)``, ``e = softmax(y) - y*``."""

    def hidden_objective(self, k, a, h, x, y, logits):
        error = F.softmax(logits.detach(), dim=1) - self.one_hot(y)
        signal = (error @ self.feedback(k)).reshape(h.shape)
        return signal_objective(h, signal)


class DirectRandomTargetProjection(_FixedFeedbackRule):
    """DRTP: hidden layer ``k`` gets ``delta_k = B_k[c*] * f'(a_k)``, row ``c*`` of a fixed random matrix.

    The signal depends on the target only, so a layer can update as soon as its own forward pass
    is done: no MACs, no dependence on the network output.
    """

    def hidden_objective(self, k, a, h, x, y, logits):
        signal = self.feedback(k)[y].reshape(h.shape)
        return signal_objective(h, signal)
