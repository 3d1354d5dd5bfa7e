"""Evaluation metrics (docs/method.md § Evaluation protocol) and the per-step recipe metrics (house style: namespaced names).

Evaluation
----------
``scores_by_problem[i]`` holds problem i's per-sample scores (1.0 correct, 0.0 wrong; a score above
0.5 counts as correct for the pass-based metrics).

- :func:`avg_at_k` — the paper's metric: mean over problems of the mean score (AIME avg@32 etc.).
- :func:`pass_at_k` — the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language
  Models Trained on Code", eq. 1): with n samples of which c are correct,
  ``pass@k = 1 - C(n-c, k) / C(n, k)``, computed exactly with integers.
- :func:`mean_pass_at_k` — its mean over problems (each problem uses its own n).
- :func:`best_at_k` — fraction of problems with at least one correct sample (pass@n).

Per-step metrics (:func:`batch_metrics`)
----------------------------------------
``before`` is the scored batch as generated (with dynamic sampling: every group generated this
step, extra rounds included), ``after`` what enters the update (after rescue and substitution, or
dynamic sampling's refill). Keys:

- ``recipe/informative_before``, ``recipe/informative_after`` — fraction of groups with
  0 < mean reward < 1.
- ``recipe/rescued``, ``recipe/substituted`` — group counts; ``recipe/skipped`` — 1.0 or 0.0.
- ``recipe/zero_advantage_fraction`` — fraction of the groups entering the update whose rewards
  are all equal (zero advantage). When the batch is skipped no group enters the update and it is
  0.0; read it together with ``recipe/skipped``.
- ``recipe/all_correct_fraction``, ``recipe/all_wrong_fraction`` — of the generated groups.
- ``rollout/reward_mean``, ``rollout/response_length`` (mean tokens), ``rollout/truncation_rate``
  — over the generated rollouts, before rescue/substitution (those describe the policy, and
  copies would count some rollouts twice).
- ``rollout/generated`` — how many rollouts were generated this step: ``B × n``, plus every extra
  round's with dynamic sampling (``before`` then holds every generated group). The rollout budget
  a run spends is the sum of this over its steps.

Importance sampling against response length (:func:`ratio_by_length`)
-----------------------------------------------------------------------
``train/is_ratio_by_length/q1`` .. ``q4`` — the mean importance-sampling ratio (policy over engine
probability: per response, the mean over its tokens, or the sequence's ratio) of each quarter of the
responses sorted by length, shortest first. A ratio that drifts with length shows here first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from polaris.recipe.groups import Group, is_correct


def _check_problems(scores_by_problem: Sequence[Sequence[float]]) -> None:
    if not scores_by_problem:
        raise ValueError("no problems to score")
    for i, scores in enumerate(scores_by_problem):
        if not scores:
            raise ValueError(f"problem {i} has no samples")


def avg_at_k(scores_by_problem: Sequence[Sequence[float]]) -> float:
    """Mean over problems of each problem's mean score."""
    _check_problems(scores_by_problem)
    return sum(sum(s) / len(s) for s in scores_by_problem) / len(scores_by_problem)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: ``1 - C(n-c, k) / C(n, k)``."""
    if n < 1:
        raise ValueError(f"pass_at_k: n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: c must be in 0..{n}, got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k must be in 1..n={n}, got {k}")
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def mean_pass_at_k(scores_by_problem: Sequence[Sequence[float]], k: int) -> float:
    """:func:`pass_at_k` averaged over problems."""
    _check_problems(scores_by_problem)
    total = sum(pass_at_k(len(s), sum(1 for x in s if is_correct(x)), k) for s in scores_by_problem)
    return total / len(scores_by_problem)


def best_at_k(scores_by_problem: Sequence[Sequence[float]]) -> float:
    """Fraction of problems with at least one correct sample."""
    _check_problems(scores_by_problem)
    return sum(1 for s in scores_by_problem if any(is_correct(x) for x in s)) / len(scores_by_problem)


def _fraction(count: int, total: int) -> float:
    return count / total if total else 0.0


def batch_metrics(
    before: Sequence[Group], after: Sequence[Group], *, rescued: int, substituted: int, skipped: bool
) -> dict[str, float]:
    """The per-step ``recipe/`` and ``rollout/`` metrics (see the module docstring)."""
    rollouts = [r for g in before for r in g.rollouts]
    zero_adv = 0.0 if skipped else _fraction(sum(1 for g in after if g.all_equal), len(after))
    return {
        "recipe/informative_before": _fraction(sum(g.is_informative for g in before), len(before)),
        "recipe/informative_after": _fraction(sum(g.is_informative for g in after), len(after)),
        "recipe/rescued": float(rescued),
        "recipe/substituted": float(substituted),
        "recipe/skipped": 1.0 if skipped else 0.0,
        "recipe/zero_advantage_fraction": zero_adv,
        "recipe/all_correct_fraction": _fraction(sum(g.num_correct == g.n for g in before), len(before)),
        "recipe/all_wrong_fraction": _fraction(sum(g.num_correct == 0 for g in before), len(before)),
        "rollout/reward_mean": 0.0 if not rollouts else sum(r.reward for r in rollouts) / len(rollouts),
        "rollout/response_length": 0.0 if not rollouts else sum(r.length for r in rollouts) / len(rollouts),
        "rollout/truncation_rate": _fraction(sum(r.truncated for r in rollouts), len(rollouts)),
        "rollout/generated": float(len(rollouts)),
    }


def ratio_by_length(ratios: Sequence[float], lengths: Sequence[int], *, parts: int = 4) -> dict[str, float]:
    """Mean of ``ratios`` (one per response) in each of ``parts`` length quantiles, shortest first.

    The responses are sorted by length (ties keep their order) and cut into ``parts`` runs as even as
    can be (the first runs take the remainder); an empty run is left out. Keys: ``train/is_ratio_by_length/qK``.
    """
    if len(ratios) != len(lengths):
        raise ValueError(f"{len(ratios)} ratios for {len(lengths)} lengths")
    order = sorted(range(len(ratios)), key=lambda i: lengths[i])
    size, extra = divmod(len(order), parts)
    out, start = {}, 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        if end > start:
            out[f"train/is_ratio_by_length/q{k + 1}"] = sum(ratios[i] for i in order[start:end]) / (end - start)
        start = end
    return out

