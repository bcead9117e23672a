"""Directional DFA (FDFA, Bacho & Chu): DFA whose feedback is learned from forward-mode derivatives.

Alongside the forward pass a tangent is carried: ``h_dot_k = J_k h_dot_{k-1} + eps_k`` with a
fresh ``eps_k ~ N(0, I)`` per sample and hidden layer, so that at the output
``y_dot = sum_k (dy/dh_k) eps_k`` (one random direction, one pass). Each feedback matrix tracks
``E[y_dot eps_k^T] = dy/dh_k``: ``B_k <- B_k - alpha (B_k - y_dot eps_k^T)``, starting from 0. The
hidden layers are then driven as in DFA by ``delta_k = (e B_k) * f'(a_k)``.
"""

import torch
from torch import nn
from torch.func import jvp
from torch.nn import functional as F

from .base import LearningRule, signal_objective

__all__ = ["DirectionalFeedbackAlignment"]


class DirectionalFeedbackAlignment(LearningRule):
    """FDFA / DDFA.

    Parameters
    ----------
    feedback_lr : float
        ``alpha``: the learning rate of the feedback matrices (used by the same optimiser as the
        weights; with plain SGD it is exactly the momentum form above).
    """

    def __init__(self, net, generator, feedback_lr=1e-3):
        super().__init__(net, generator)
        self.feedback_lr = feedback_lr
        with torch.no_grad():
            _, post = self.forward_layers(torch.zeros(1, net.spec.layers[0]))
        self.feedbacks = nn.ParameterList(
            nn.Parameter(torch.zeros(self.n_classes, h[0].numel())) for h in post[:-1])

    def layer_parameters(self, k):
        own = super().layer_parameters(k)
        return own + [self.feedbacks[k]] if k < len(self.feedbacks) else own

    def param_groups(self, lr):
        return super().param_groups(lr) + [
            {"params": list(self.feedbacks.parameters()), "lr": self.feedback_lr}]

    @torch.no_grad()
    def directional_derivatives(self, x):
        """One tangent pass: returns ``y_dot`` (B x C) and the perturbations ``eps_k`` (B x N_k)."""
        h = self.net.prepare(x)
        tangent = torch.zeros_like(h)
        perturbations = []
        for k in range(self.net.n_layers):
            (_, h), (_, tangent) = jvp(lambda inp, k=k: self.net.layer(k, inp), (h,), (tangent,))
            if not self.net.is_output(k):
                eps = torch.randn(h.shape, generator=self.generator)
                tangent = tangent + eps
                perturbations.append(eps.flatten(1))
        return tangent, perturbations

    def objectives(self, x, y):
        logits, objectives = super().objectives(x, y)
        y_dot, perturbations = self.directional_derivatives(x)
        for k, eps in enumerate(perturbations):
            # Its gradient is B_k - mean(y_dot eps_k^T): the feedback update above.
            target = y_dot.T @ eps / x.shape[0]
            objectives[k] = objectives[k] + 0.5 * ((self.feedbacks[k] - target) ** 2).sum()
        return logits, objectives

    def hidden_objective(self, k, a, h, x, y, logits):
        error = F.softmax(logits.detach(), dim=1) - self.one_hot(y)
        signal = (error @ self.feedbacks[k].detach()).reshape(h.shape)
        return signal_objective(h, signal)
