"""Overlong reward shaping: DAPO's soft overlong punishment (https://arxiv.org/abs/2503.14476, eq. 13;
docs/method.md § Dynamic sampling and overlong shaping).

With the response budget ``L_max`` (the stage's ``max_response_tokens``) and a buffer ``L_cache``, a
response of ``|y|`` tokens gets the penalty

    0                                   if |y| <= L_max - L_cache
    ((L_max - L_cache) - |y|) / L_cache if L_max - L_cache < |y| <= L_max
    -1                                  if |y| > L_max

times ``factor`` (DAPO: 1), added to its reward. A buffer of 0 turns the shaping off.

The shaped reward only feeds the advantages. Everything else in the recipe — accuracy, the
difficulty log, "informative", rescue, substitution, dynamic sampling — reads the correctness reward
(:attr:`~polaris.recipe.groups.Rollout.reward`), which shaping never changes: a long correct answer
is still correct. So a group can have all-equal correctness (zero advantage for the recipe) and
still non-zero shaped advantages when its responses' lengths differ.
"""

from __future__ import annotations

from collections.abc import Sequence

from polaris.recipe.groups import Group


def overlong_penalty(length: int, *, max_length: int, buffer: int, factor: float = 1.0) -> float:
    """The penalty (<= 0) of one response of ``length`` tokens; 0.0 when ``buffer`` is 0."""
    if buffer < 0 or max_length < 1:
        raise ValueError(
            f"overlong_penalty: buffer must be >= 0 and max_length >= 1, got {buffer}, {max_length}"
        )
    if buffer == 0:
        return 0.0
    if buffer > max_length:
        raise ValueError(f"overlong_penalty: the buffer {buffer} is longer than the budget {max_length}")
    expected = max_length - buffer
    if length <= expected:
        return 0.0
    if length <= max_length:
        return factor * (expected - length) / buffer
    return -factor


def shaped_rewards(
    groups: Sequence[Group], *, max_length: int, buffer: int, factor: float = 1.0
) -> list[list[float]]:
    """Each group's rewards plus each response's :func:`overlong_penalty` (its length: ``Rollout.length``)."""
    return [
        [
            r.reward + overlong_penalty(r.length, max_length=max_length, buffer=buffer, factor=factor)
            for r in g.rollouts
        ]
        for g in groups
    ]


def overlong_metrics(groups: Sequence[Group], shaped: Sequence[Sequence[float]]) -> dict[str, float]:
    """Over the rollouts entering the update: ``rollout/overlong_penalty_mean`` (mean penalty, <= 0),
    ``rollout/overlong_fraction`` (share with a penalty) and ``rollout/reward_shaped_mean``."""
    penalties = [
        s - r.reward
        for g, row in zip(groups, shaped, strict=True)
        for r, s in zip(g.rollouts, row, strict=True)
    ]
    total = sum(len(row) for row in shaped)
    if not total:
        return {
            "rollout/overlong_penalty_mean": 0.0,
            "rollout/overlong_fraction": 0.0,
            "rollout/reward_shaped_mean": 0.0,
        }
    return {
        "rollout/overlong_penalty_mean": sum(penalties) / total,
        "rollout/overlong_fraction": sum(1 for p in penalties if p < 0) / total,
        "rollout/reward_shaped_mean": sum(sum(row) for row in shaped) / total,
    }
