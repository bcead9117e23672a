"""The float learning rules, by name."""

from .base import LearningRule
from .bp import BackPropagation
from .directional import DirectionalFeedbackAlignment
from .feedback import DirectFeedbackAlignment, DirectRandomTargetProjection
from .lls import BASES, LocalLearningSynchronization, lls_basis

__all__ = ["BASES", "RULES", "LearningRule", "lls_basis", "make_rule"]

RULES = ("bp", "dfa", "drtp", "lls", "lls-m", "lls-mxm", "ddfa")
LLS_RULES = ("lls", "lls-m", "lls-mxm")


def make_rule(name, net, generator, *, basis=None, temperature=0.5, feedback_lr=1e-3):
    """Build rule ``name`` for ``net``. ``basis`` is only meaningful for the LLS family."""
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; choose one of {', '.join(RULES)}")
    if basis is not None and name not in LLS_RULES:
        raise ValueError(f"--basis only applies to {', '.join(LLS_RULES)}, not to {name!r}")
    if name == "bp":
        return BackPropagation(net, generator)
    if name == "dfa":
        return DirectFeedbackAlignment(net, generator)
    if name == "drtp":
        return DirectRandomTargetProjection(net, generator)
    if name == "ddfa":
        return DirectionalFeedbackAlignment(net, generator, feedback_lr=feedback_lr)
    modulation = {"lls": None, "lls-m": "m", "lls-mxm": "mxm"}[name]
    return LocalLearningSynchronization(net, generator, basis=basis or "square",
                                        modulation=modulation, temperature=temperature)
