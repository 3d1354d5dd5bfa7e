"""Dynamic sampling (DAPO, https://arxiv.org/abs/2503.14476 §3.2; docs/method.md § Dynamic sampling and
overlong shaping): the pure decisions of an alternative to rescue and substitution.

A group whose rewards are all equal has zero GRPO advantage. Dynamic sampling drops such groups and
samples more problems until the batch again holds ``B`` groups with some advantage, within a cap on
extra generation rounds. The engine adapter generates and scores; this module decides:

- :func:`zero_advantage_slots` — the positions of the batch to refill: groups whose rewards are all
  equal (:attr:`~polaris.recipe.groups.Group.all_equal`; for the binary reward exactly the
  non-informative groups, all right or all wrong).
- :func:`extra_request` — how many problems one extra round samples: the missing count divided by
  the share of groups with some advantage seen so far this step (to fill the batch in one round when
  that share holds), at least the missing count, at most ``B`` (one round never generates more
  than a batch), rounded up to a multiple of the processes (each generates an equal share).
- :func:`choose_extra_problems` — which problems: drawn without replacement from the stage's
  problems not yet sampled this step; when those run out, from all of them again.
- :func:`fill_slots` — which generated group goes where: in batch order, every zero-advantage slot
  takes the next extra group that has some advantage; extra groups without one are discarded. A
  placed group keeps its own problem, prompt, rollouts and rewards (it is not a copy) and takes the
  slot of the group it replaces.

When the cap is reached with slots still unfilled, those groups stay in the batch and carry zero
advantage (the engine counts this as ``recipe/dynamic_cap_hit``). Every draw takes a
``random.Random``; derive it per step and round (``random.Random(f"{seed}:{stage}:{step}:dynamic:{round}")``)
so all ranks decide identically and a resumed run repeats the same choices.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from polaris.recipe.groups import Group


def zero_advantage_slots(groups: Sequence[Group]) -> list[int]:
    """Positions of the groups whose rewards are all equal (zero GRPO advantage), in batch order."""
    return [i for i, g in enumerate(groups) if g.all_equal]


def extra_request(missing: int, useful_share: float, *, batch_prompts: int, processes: int = 1) -> int:
    """Problems to sample in one extra round (see the module docstring); 0 when nothing is missing.

    ``useful_share`` is the share of the groups sampled so far this step that have some advantage;
    0 asks for a whole batch.
    """
    if missing <= 0:
        return 0
    if batch_prompts < 1 or processes < 1:
        raise ValueError(
            f"extra_request: batch_prompts and processes must be >= 1, got {batch_prompts}, {processes}"
        )
    want = batch_prompts if useful_share <= 0 else math.ceil(missing / useful_share - 1e-9)
    count = max(missing, min(want, batch_prompts))
    return math.ceil(count / processes) * processes


def choose_extra_problems(
    pool: Sequence[str], sampled: set[str] | frozenset[str], count: int, rng: random.Random
) -> list[str]:
    """``count`` problem ids from ``pool``: first those not in ``sampled`` (without replacement), then, when
    they run out, fresh passes over the whole pool (each without replacement)."""
    if count <= 0:
        return []
    if not pool:
        raise ValueError("choose_extra_problems: the pool of problems is empty")
    unseen = [p for p in pool if p not in sampled]
    out = rng.sample(unseen, min(count, len(unseen)))
    while len(out) < count:
        out.extend(rng.sample(list(pool), min(count - len(out), len(pool))))
    return out


@dataclass(frozen=True)
class FillResult:
    """The batch after one round of filling."""

    groups: list[Group]
    placements: list[tuple[int, int]]
    """``(slot position in the batch, index of the extra group placed there)`` for every filled slot."""
    missing: int
    """Zero-advantage groups still in the batch."""


def fill_slots(batch: Sequence[Group], extra: Sequence[Group]) -> FillResult:
    """Put the extra groups that have some advantage into the batch's zero-advantage slots, in order."""
    out = list(batch)
    targets = zero_advantage_slots(out)
    useful = [k for k, g in enumerate(extra) if not g.all_equal]
    placements = list(zip(targets, useful, strict=False))
    for target, k in placements:
        out[target] = dataclasses.replace(extra[k], slot=out[target].slot, copied_from=None)
    return FillResult(out, placements, len(targets) - len(placements))


def dynamic_metrics(*, rounds: int, filled: int, missing: int) -> dict[str, float]:
    """``recipe/dynamic_rounds`` (extra generation rounds this step), ``recipe/dynamic_filled`` (slots
    refilled) and ``recipe/dynamic_cap_hit`` (1.0 when the cap left zero-advantage groups in the batch)."""
    return {
        "recipe/dynamic_rounds": float(rounds),
        "recipe/dynamic_filled": float(filled),
        "recipe/dynamic_cap_hit": 1.0 if missing > 0 else 0.0,
    }
