"""Back-propagation: the baseline every local rule is measured against."""

from torch.nn import functional as F

from .base import LearningRule

__all__ = ["BackPropagation"]


class BackPropagation(LearningRule):
    """End-to-end back-propagation of one cross-entropy loss: a single, non-local objective."""

    local = False

    def objectives(self, x, y):
        logits = self.net(x)
        return logits, [F.cross_entropy(logits, y)]
