"""GRPO outcome advantages (docs/method.md § The objective), computed per group.

For a group with rewards r_1..r_n:

    A_i = (r_i - mean(r)) / (std(r) + eps),   std with Bessel's correction (divide by n - 1),

as configured in the reference (``eps = 1e-6``). Every token of response i gets A_i (the engine
broadcasts it). A group with all-equal rewards gets all zeros, which is why the recipe rescues and
substitutes such groups. A group of one rollout has no spread to compare against: its advantage is
0.0 (the unbiased std is undefined for n = 1).

Substitution copies are separate groups: their advantages are computed on their own rollouts,
exactly like any group, never pooled with the source's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from polaris.recipe.groups import Group


def grpo_advantages(rewards: Sequence[float], eps: float = 1e-6) -> list[float]:
    """``(r - mean) / (unbiased std + eps)`` for one group's rewards."""
    n = len(rewards)
    if n == 0:
        raise ValueError("grpo_advantages: a group needs at least one reward")
    if n == 1:
        return [0.0]
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (n - 1))
    if std == 0.0:
        # All rewards equal: every numerator is 0; answer 0 even when eps = 0 (no 0/0).
        return [0.0] * n
    return [(r - mean) / (std + eps) for r in rewards]


def batch_advantages(groups: Sequence[Group], eps: float = 1e-6) -> list[list[float]]:
    """:func:`grpo_advantages` of every group, in batch order."""
    return [grpo_advantages(g.rewards, eps) for g in groups]
