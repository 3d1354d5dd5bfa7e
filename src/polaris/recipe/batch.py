"""The recipe's per-step pipeline for an engine adapter, in the order of docs/method.md § Informative batches.

    score → log difficulty → rescue → substitution → (advantages, in the engine)

:func:`process_batch` takes the scored groups of one step and returns what the engine should do:

1. ``accuracies`` — each problem's group accuracy **before** rescue and substitution, which the
   adapter writes to the :class:`~polaris.recipe.difficulty.DifficultyLog` (dynamic dropping must
   see the policy's own accuracy, not the rescued one). When one problem has several groups in the
   batch, its entry is their mean.
2. Rescue (when ``rescue`` is on and a ``store`` is given; ``store=None`` turns rescue off):
   ``store.update`` from this batch, then ``store.apply`` (see :mod:`polaris.recipe.rescue`).
3. Substitution (when ``substitute`` is on) with its skip rule (see
   :mod:`polaris.recipe.substitution`). With substitution off there is no skip rule either: the
   batch trains as plain GRPO.
4. Metrics (:func:`polaris.recipe.metrics.batch_metrics`).

One ``random.Random`` drives every draw, in the order above; derive it per step (e.g.
``random.Random(f"{seed}:{stage}:{step}")``) so all ranks decide identically and a resumed run
repeats the same choices. Advantages are left to the engine
(:func:`polaris.recipe.advantages.batch_advantages` computes them from ``outcome.groups``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from polaris.recipe.groups import Group
from polaris.recipe.metrics import batch_metrics
from polaris.recipe.rescue import RescueStore
from polaris.recipe.substitution import substitute_informative


@dataclass(frozen=True)
class BatchOutcome:
    """The groups to train on, the step's metrics, whether to skip the update, and what to log."""

    groups: list[Group]
    metrics: dict[str, float]
    skip: bool
    accuracies: dict[str, float]


def group_accuracies(groups: Sequence[Group]) -> dict[str, float]:
    """Per-problem group accuracy; a problem with several groups gets their mean."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for g in groups:
        sums[g.problem_id] = sums.get(g.problem_id, 0.0) + g.accuracy
        counts[g.problem_id] = counts.get(g.problem_id, 0) + 1
    return {pid: sums[pid] / counts[pid] for pid in sums}


def process_batch(
    groups: Sequence[Group],
    *,
    store: RescueStore | None,
    rng: random.Random,
    rescue: bool = True,
    substitute: bool = True,
    min_informative: int | None = None,
    sampled: Sequence[Group] | None = None,
) -> BatchOutcome:
    """Run one step's recipe on scored groups (see the module docstring for the order).

    ``sampled``: every group generated this step when that is more than ``groups`` (dynamic sampling:
    the batch's own groups and every extra round's, :mod:`polaris.recipe.dynamic`); the difficulty
    log's accuracies and the metrics of the generated rollouts are computed over them. Default: ``groups``.
    """
    scored = list(groups)
    generated = scored if sampled is None else list(sampled)
    accuracies = group_accuracies(generated)

    current, rescued = scored, 0
    if rescue and store is not None:
        store.update(scored, rng)
        current, rescued = store.apply(scored, rng)

    substituted, skip = 0, False
    if substitute:
        result = substitute_informative(current, rng, min_informative=min_informative)
        current, substituted, skip = result.groups, result.substituted, result.skip

    metrics = batch_metrics(generated, current, rescued=rescued, substituted=substituted, skipped=skip)
    return BatchOutcome(groups=current, metrics=metrics, skip=skip, accuracies=accuracies)
