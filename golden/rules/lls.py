"""LLS: local learning against fixed periodic basis vectors (Apolinario, Roy & Roy, WACV 2025).

Each hidden layer is trained by its own softmax loss: its output ``z`` (conv layers: average-pooled
to ``p x p``) is L2-normalised, projected on ``C`` fixed basis vectors, scaled by a temperature
and compared with the label. Variants: LLS-M scales the logits by ``C`` trainable scalars, LLS-MxM
mixes them by a trainable ``C x C`` matrix.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import LearningRule

__all__ = ["BASES", "LocalLearningSynchronization", "lls_basis"]

BASES = ("sin", "cos", "square", "random")

# The reference code's frequencies, in radians per neuron index.
MIN_FREQUENCY = 50.0
MAX_FREQUENCY = 512.0


def lls_basis(kind, n_classes, n_features, generator=None):
    """The ``C x N`` LLS basis.

    Parameters
    ----------
    kind : str
        ``sin``: ``sin(f_c n)``, ``f_c = linspace(50, 512, C)``, computed in float32 exactly as the
        reference code does (so column 0 is all zeros); ``square``: its sign (``sign(0) = 0``);
        ``cos``: DCT-II rows ``cos(pi k (n + 1/2) / N)`` for ``k = 1..C`` (exactly orthogonal, no DC
        row); ``random``: fixed ``0.1 N(0, 1)`` as the reference's LLS-Random.
    """
    if kind in ("sin", "square"):
        frequencies = torch.linspace(MIN_FREQUENCY, MAX_FREQUENCY, n_classes).unsqueeze(1)
        n = torch.arange(n_features).float().unsqueeze(0)
        basis = torch.sin(frequencies * n)
        return torch.sign(basis) if kind == "square" else basis
    if kind == "cos":
        k = torch.arange(1, n_classes + 1, dtype=torch.float64).unsqueeze(1)
        n = torch.arange(n_features, dtype=torch.float64).unsqueeze(0)
        return torch.cos(math.pi * k * (n + 0.5) / n_features).float()
    if kind == "random":
        return 0.1 * torch.randn(n_classes, n_features, generator=generator)
    raise ValueError(f"unknown LLS basis {kind!r}; choose one of {', '.join(BASES)}")


class LocalLearningSynchronization(LearningRule):
    """LLS, LLS-M and LLS-MxM.

    Parameters
    ----------
    basis : str
        One of :data:`BASES`.
    modulation : {None, "m", "mxm"}
        ``None`` for LLS; ``"m"``: logits ``m * (z_hat B^T)`` with ``m`` in R^C; ``"mxm"``:
        ``(z_hat B^T) M`` with ``M`` in R^{CxC}. Both start at ``0.01 N(0, 1)`` as in the reference code.
    temperature : float
        Logits are divided by it (0.5 in the paper's scripts).
    pool : int
        Conv layers are average-pooled to ``pool x pool`` before the local loss.
    """

    def __init__(self, net, generator, basis="square", modulation=None, temperature=0.5, pool=2):
        super().__init__(net, generator)
        if modulation not in (None, "m", "mxm"):
            raise ValueError(f"unknown LLS modulation {modulation!r}")
        self.basis_kind = basis
        self.modulation = modulation
        self.temperature = temperature
        self.pool = pool
        C = self.n_classes
        self.modulations = nn.ParameterList()
        for k, n_features in enumerate(self._latent_sizes()):
            self.register_buffer(f"basis_{k}", lls_basis(basis, C, n_features, generator))
            if modulation == "m":
                self.modulations.append(nn.Parameter(0.01 * torch.randn(C, generator=generator)))
            elif modulation == "mxm":
                self.modulations.append(nn.Parameter(0.01 * torch.randn(C, C, generator=generator)))

    def _latent_sizes(self):
        with torch.no_grad():
            _, post = self.forward_layers(torch.zeros(1, self.net.spec.layers[0]))
        return [self.latent(h).shape[1] for h in post[:-1]]

    def basis(self, k):
        return getattr(self, f"basis_{k}")

    def latent(self, h):
        """``z``: the layer output, conv outputs average-pooled to ``pool x pool``, flattened."""
        if h.dim() == 4:
            h = F.adaptive_avg_pool2d(h, self.pool)
        return h.flatten(1)

    def layer_parameters(self, k):
        params = super().layer_parameters(k)
        if self.modulation is not None and k < len(self.modulations):
            params.append(self.modulations[k])
        return params

    def param_groups(self, lr):
        groups = super().param_groups(lr)
        if self.modulation is not None:
            groups.append({"params": list(self.modulations.parameters()), "lr": lr})
        return groups

    def local_logits(self, k, h):
        """The layer's local logits ``s = (z_hat B^T) [modulated] / T``."""
        z_hat = F.normalize(self.latent(h), dim=1)
        logits = z_hat @ self.basis(k).T
        if self.modulation == "m":
            logits = logits * self.modulations[k]
        elif self.modulation == "mxm":
            logits = logits @ self.modulations[k]
        return logits / self.temperature

    def hidden_objective(self, k, a, h, x, y, logits):
        return F.cross_entropy(self.local_logits(k, h), y)
