"""A reward for tasks whose answer is one number, written the way a model without an answer format writes it.

``reward.function: polaris.reward.numeric:last_number`` scores a response 1.0 when the *last* number in
its graded text (:func:`polaris.reward.extract.answer_region`: after ``</think>``, which
``require_think`` requires) equals the ground truth as a number, else 0.0. Small instruct models rarely
put a final answer in ``\\boxed{}`` (SmolLM2-135M-Instruct: under 2% of responses on one-digit sums)
but do end with the number they settle on, so this is the reward a user writes first for arithmetic
word problems and the like. Thousands separators (``1,000``) are read as one number; a ground truth
that is not a number never matches. The response is read as text only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from polaris.reward.extract import answer_region

#: A number not glued to a word, a digit or a closing bracket before it: in ``12-7`` the last number is 7, not -7.
_NUMBER = re.compile(r"(?<![\w.)\]])-?\d[\d,]*(?:\.\d+)?")


def last_number_in(text: str) -> float | None:
    """The last number written in ``text`` (``1,000`` is 1000; ``x2`` is not a number), or ``None``."""
    for match in reversed(_NUMBER.findall(text)):
        try:
            return float(match.replace(",", ""))
        except ValueError:  # "1,,2": not a number, look further back
            continue
    return None


def _as_number(value: Any) -> float | None:
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return None


def last_number(responses: Sequence[str], ground_truths: Sequence[Any], *, require_think: bool = False) -> list[float]:
    """1.0 per response whose last number equals its ground truth (any of them, for a list), else 0.0."""
    out = []
    for response, truth in zip(responses, ground_truths, strict=True):
        region = answer_region(response, require_think=require_think)
        value = last_number_in(region) if region is not None else None
        truths = truth if isinstance(truth, list | tuple) else [truth]
        out.append(float(value is not None and any(_as_number(t) == value for t in truths)))
    return out


__all__ = ["last_number", "last_number_in"]
