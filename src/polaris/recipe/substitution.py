"""Intra-batch informative substitution (docs/method.md § Informative batches), with rewards travelling with their tokens.

Algorithm
---------
A group is *informative* when ``0 < mean reward < 1``; any other group has all-equal binary
rewards, hence zero GRPO advantage, and only costs compute. Let I be the informative groups of a
batch of B groups and J the others.

1. **Skip rule.** If ``|I| <= min_informative`` (default ``B // 3``, the reference's threshold:
   "at most ⌊B/3⌋ informative → skip the batch"), return the batch unchanged with ``skip=True``;
   the engine should not take an optimizer step on it. With no informative group at all the batch
   is always skipped, whatever ``min_informative`` says (there is nothing to copy).
2. **Substitution.** Otherwise replace every group of J, in batch order, by a copy of an informative
   group of the same batch. Sources are drawn **without replacement while enough exist**: a random
   permutation of I is used up first; when J is larger than I, a fresh permutation of I is drawn
   for the remaining slots, and so on. So each informative group is copied at most
   ``ceil(|J| / |I|)`` times, and at most once when ``|J| <= |I|``.
3. **What a copy carries.** Everything that belongs to the source: its rollouts (text, tokens,
   rewards, truncation), ``ground_truth``, ``prompt_ids`` and ``problem_id``; ``copied_from`` is
   the source's problem id and every copied rollout has ``origin="copied"``. It keeps the replaced
   group's ``slot`` (its position in the batch). Each copy stays a separate group, so advantages are
   computed for it on its own (they equal the source's).

Deviations from the reference implementation
--------------------------------------------
- The reference copied the response tokens but not the rewards or the ground truth; rewards were
  then recomputed against the replaced problem's answer, so copies scored 0 and contributed
  nothing. Here a copy is the source group, whole.
- The reference's draw with replacement may copy one source several times while others are never
  copied; drawing permutations keeps the copies spread evenly (within one copy per source).
- The ``origin`` marker exists so the engine recomputes old log-probs for copied rollouts placed at
  another slot, and so metrics can tell copies from fresh samples.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass

from polaris.recipe.groups import Group


@dataclass(frozen=True)
class SubstitutionResult:
    """The batch after substitution; ``skip`` tells the engine not to update on it."""

    groups: list[Group]
    substituted: int
    informative_before: int
    skip: bool


def copy_group(source: Group, *, slot: int) -> Group:
    """A substitution copy of ``source`` to be placed at ``slot`` (rewards and answer travel along)."""
    return dataclasses.replace(
        source,
        rollouts=tuple(dataclasses.replace(r, origin="copied") for r in source.rollouts),
        copied_from=source.problem_id,
        slot=slot,
    )


def substitute_informative(
    groups: Sequence[Group], rng: random.Random, *, min_informative: int | None = None
) -> SubstitutionResult:
    """Replace every non-informative group by a copy of a random informative one (see module doc)."""
    informative = [i for i, g in enumerate(groups) if g.is_informative]
    threshold = len(groups) // 3 if min_informative is None else min_informative
    if not informative or len(informative) <= threshold:
        return SubstitutionResult(list(groups), 0, len(informative), True)

    targets = [i for i, g in enumerate(groups) if not g.is_informative]
    sources: list[int] = []
    while len(sources) < len(targets):
        round_ = list(informative)
        rng.shuffle(round_)
        sources.extend(round_)

    out = list(groups)
    for target, source in zip(targets, sources, strict=False):
        out[target] = copy_group(groups[source], slot=groups[target].slot)
    return SubstitutionResult(out, len(targets), len(informative), False)
