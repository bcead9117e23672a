"""The softmax/error unit: base-2 exponentials from a small table, one reciprocal, C products.

Given signed logits ``s_c`` in log2 units with ``logit_frac`` fraction bits:

1. ``u_c = max(s) - s_c >= 0``; integer part ``i_c = u_c >> logit_frac``, fraction ``j_c``;
2. ``E_c = X[j_c] >> i_c`` with ``X[j] = round(2**exp_bits 2**(-j / 2**logit_frac))``
   (``E = 2**exp_bits`` for the largest logit);
3. ``sum = sum_c E_c`` and ``rho = floor(2**recip_shift / sum)`` (one sequential division);
4. ``p_c = round(E_c rho >> (recip_shift - prob_frac))`` and ``e_c = p_c - 2**prob_frac [c = y]``.
"""

import math
from dataclasses import dataclass

import torch

from .arith import round_shift

__all__ = ["Softmax", "exp2_table", "softmax_error"]


def exp2_table(index_bits, value_bits):
    """``X[j] = round(2**value_bits * 2**(-j / 2**index_bits))`` for ``j < 2**index_bits``, exactly.

    ``y = X[j]`` satisfies ``y**J = 2**(value_bits J - j)`` with ``J = 2**index_bits``, so
    ``round(y) >= t + 1`` iff ``(2t + 1)**J <= 2**(value_bits J - j + J)``: decided in integers.
    """
    J = 1 << index_bits
    table = []
    for j in range(J):
        target = 1 << (value_bits * J - j + J)
        t = math.floor(2.0 ** (value_bits - j / J))  # estimate, corrected below
        while (2 * t + 1) ** J <= target:
            t += 1
        while t > 0 and (2 * t - 1) ** J > target:
            t -= 1
        table.append(t)
    return tuple(table)


@dataclass
class Softmax:
    """The unit's outputs and intermediates (int64 tensors of C, and two scalars)."""

    exps: torch.Tensor
    total: int
    recip: int
    probs: torch.Tensor
    errors: torch.Tensor


def softmax_error(logits, label, config, table):
    """Probabilities and errors ``p - onehot(label)`` of one sample's logits.

    Parameters
    ----------
    logits : LongTensor[C]
        Signed, ``config.logit_frac`` fraction bits, log2 units.
    label : int
        Target class.
    config : EngineConfig
    table : tuple of int
        ``exp2_table(config.logit_frac, config.exp_bits)``.
    """
    frac = config.logit_frac
    u = logits.max() - logits
    # Shifts beyond exp_bits give 0 anyway; clamping keeps the shift amount small.
    shift = (u >> frac).clamp(max=config.exp_bits + 1)
    exps = torch.tensor(table, dtype=torch.int64)[u & ((1 << frac) - 1)] >> shift
    total = int(exps.sum())
    recip = (1 << config.recip_shift) // total
    probs = round_shift(exps * recip, config.recip_shift - config.prob_frac)
    errors = probs.clone()
    errors[label] -= 1 << config.prob_frac
    return Softmax(exps, total, recip, probs, errors)
