"""The reward a recipe trains with: the built-in verifier with or without ``</think>``, or your own.

A recipe's ``reward`` section decides it (:class:`polaris.config.RewardSettings`):

- ``require_think: true`` (the paper's answer format, for thinking models): a response scores only
  when it closes its thinking with ``</think>``, and only the text after it is graded;
- ``require_think: false`` (models that do not think, e.g. a plain instruct model): the whole
  response is graded (after ``</think>`` when there is one);
- ``function: "module:callable"``: a reward of your own for another verifiable task, with the
  signature of :func:`polaris.reward.score_batch` — ``fn(responses, ground_truths, *,
  require_think) -> list[float]``, one score in [0, 1] per response. It is imported from the module
  you name (your code, named in your recipe); the model's responses are passed to it as data.

Training, the difficulty profile and the temperature search use :func:`make_reward` with the
recipe's ``require_think``; evaluation always grades with ``require_think=False`` (the evaluation
protocol grades the final boxed answer whether or not the model closed its thinking), through your
function when there is one.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from polaris.errors import RecipeError

#: ``reward(responses, ground_truths) -> scores``: what the trainer, profile, search and evaluation call.
RewardFunction = Callable[[Sequence[str], Sequence[Any]], list[float]]


def load_reward_function(spec: str) -> Callable[..., Any]:
    """The callable ``module:name`` names; :class:`RecipeError` naming ``reward.function`` otherwise."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise RecipeError(f"reward.function {spec!r}: expected MODULE:CALLABLE, e.g. my_rewards:score_batch")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise RecipeError(f"reward.function {spec!r}: cannot import {module_name!r} ({e}); put it on PYTHONPATH") from None
    fn = module
    for part in name.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise RecipeError(f"reward.function {spec!r}: {module_name} has no {name!r}")
    if not callable(fn):
        raise RecipeError(f"reward.function {spec!r}: {name!r} is not callable")
    return fn


def make_reward(*, require_think: bool = True, function: str | None = None) -> RewardFunction:
    """The reward to score with (see the module docstring)."""
    if function is None:
        from polaris.reward.grading import score_batch

        return partial(score_batch, require_think=require_think)
    fn = load_reward_function(function)
    return partial(_checked, fn, function, require_think)


def recipe_reward(settings: Any, *, evaluation: bool = False) -> RewardFunction | None:
    """The reward of a recipe's ``reward`` section (:class:`polaris.config.RewardSettings`): for training,
    the profile and the searches (``require_think`` as set), or for evaluation (never requires
    ``</think>``; ``None`` without a function of your own: the built-in grader, with its verdicts)."""
    if evaluation:
        return make_reward(require_think=False, function=settings.function) if settings.function else None
    return make_reward(require_think=settings.require_think, function=settings.function)


def _checked(fn: Callable[..., Any], spec: str, require_think: bool, responses: Sequence[str],
             ground_truths: Sequence[Any]) -> list[float]:
    scores = fn(list(responses), list(ground_truths), require_think=require_think)
    try:
        out = [float(s) for s in scores]
    except (TypeError, ValueError) as e:
        raise RecipeError(f"reward.function {spec!r} returned {type(scores).__name__}, not numbers ({e})") from None
    if len(out) != len(responses):
        raise RecipeError(f"reward.function {spec!r} returned {len(out)} scores for {len(responses)} responses")
    bad = [s for s in out if not (math.isfinite(s) and 0.0 <= s <= 1.0)]
    if bad:
        raise RecipeError(f"reward.function {spec!r} returned {bad[0]!r}: scores must be in [0, 1]")
    return out


__all__ = ["RewardFunction", "load_reward_function", "make_reward", "recipe_reward"]
