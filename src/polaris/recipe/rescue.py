"""Rollout rescue (docs/method.md § Informative batches): turn an all-wrong group into a 1/n group with a remembered answer.

The paper describes this mechanism; the reference implementation does not contain it.

Algorithm
---------
The store keeps, per problem, the most recent correct response seen in training.

- :meth:`RescueStore.update` — for every group with at least one correct rollout (reward > 0.5),
  pick one of its correct rollouts uniformly at random and store it for that problem, replacing
  whatever was stored ("most recent wins"). Within one batch, groups are visited in batch order, so
  when a problem has several groups the last one with a correct rollout wins.
- :meth:`RescueStore.apply` — for every group whose rollouts are *all* wrong and whose problem has a
  stored response, overwrite one failed rollout, chosen uniformly at random, with the stored one:
  its text and token ids, reward 1.0, ``origin="rescued"``. The group becomes 1/n and informative.
  Every other group is returned as the same object, untouched.

Order within a step: **update from this batch's groups first, then apply**. An all-wrong group has
no correct response of its own, so the order only matters when the same problem has several groups
in one batch: updating first lets a sibling group's fresh correct answer rescue it.

Choices and deviations
----------------------
- Only ``origin == "sampled"`` rollouts are stored: a rescued or copied rollout is not a new
  response of the policy, and re-storing it would make an old answer look recent.
- The rescued rollout keeps the stored rollout's ``truncated`` flag. Its old log-probs were computed
  under an older policy; the engine adapter must recompute them under the current one (the
  ``origin`` field tells it which rollouts need that).
- The store is unbounded (one response per training problem) and JSON-serialisable for resume.
- All randomness comes from the ``random.Random`` passed in, drawn in batch order, so every rank of
  a distributed run that uses the same seed makes the same choice.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from polaris.recipe.groups import Group, Rollout

_FORMAT_VERSION = 1


class RescueStore:
    """Per problem, the most recent correct rollout seen (see the module docstring)."""

    def __init__(self, responses: Mapping[str, Rollout] | None = None) -> None:
        self._responses: dict[str, Rollout] = dict(responses or {})

    def __len__(self) -> int:
        return len(self._responses)

    def __contains__(self, problem_id: object) -> bool:
        return problem_id in self._responses

    def __iter__(self) -> Iterator[str]:
        return iter(self._responses)

    def get(self, problem_id: str) -> Rollout | None:
        return self._responses.get(problem_id)

    def update(self, groups: Sequence[Group], rng: random.Random) -> None:
        """Store one random correct, freshly sampled rollout of every group that has one."""
        for group in groups:
            correct = [r for r in group.rollouts if r.correct and r.origin == "sampled"]
            if correct:
                self._responses[group.problem_id] = rng.choice(correct)

    def apply(self, groups: Sequence[Group], rng: random.Random) -> tuple[list[Group], int]:
        """Rescue every all-wrong group whose problem has a stored response; return (groups, count)."""
        out: list[Group] = []
        rescued = 0
        for group in groups:
            stored = self._responses.get(group.problem_id)
            if stored is None or group.num_correct > 0:
                out.append(group)
                continue
            # All rollouts failed, so any index is a failed rollout.
            index = rng.randrange(group.n)
            replacement = dataclasses.replace(stored, reward=1.0, origin="rescued")
            rollouts = list(group.rollouts)
            rollouts[index] = replacement
            out.append(group.with_rollouts(rollouts))
            rescued += 1
        return out, rescued

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (for a resumable run's state)."""
        return {
            "version": _FORMAT_VERSION,
            "responses": {
                pid: {
                    "text": r.text,
                    "token_ids": list(r.token_ids),
                    "reward": r.reward,
                    "truncated": r.truncated,
                }
                for pid, r in self._responses.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RescueStore:
        if d.get("version") != _FORMAT_VERSION:
            raise ValueError(f"RescueStore: unsupported format version {d.get('version')!r}")
        responses = {}
        for pid, r in d["responses"].items():
            try:
                responses[str(pid)] = Rollout(
                    text=str(r["text"]),
                    token_ids=tuple(int(t) for t in r["token_ids"]),
                    reward=float(r["reward"]),
                    truncated=bool(r["truncated"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"RescueStore: bad stored response for problem {pid!r}: {exc}") from exc
        return cls(responses)
