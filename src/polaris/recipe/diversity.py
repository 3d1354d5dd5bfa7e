"""Rollout diversity as the distinct-n-gram ratio (docs/method.md § Diversity-based temperature).

For one problem with responses ``texts``, split each response on whitespace, take every run of
``n`` consecutive tokens *inside* a response (n-grams never span two responses), and return

    distinct_n = |unique n-grams over all responses| / |n-grams over all responses|.

The paper uses n = 4 and averages over problems, reporting the result ×100; these functions return
the plain fraction in [0, 1] (multiply for display). A response shorter than ``n`` tokens adds no
n-gram. A problem whose responses have no n-gram at all is left out of the average (it has no
defined ratio, and counting it as 0 would read as "collapsed" when it is only short).
"""

from __future__ import annotations

from collections.abc import Sequence


def _ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    tokens = text.split()
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _counts(texts: Sequence[str], n: int) -> tuple[int, int]:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if isinstance(texts, str):
        # A bare string is a sequence of characters: almost certainly a caller's mistake.
        raise TypeError("distinct_n takes a sequence of response texts, not one string")
    unique: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = _ngrams(text, n)
        total += len(grams)
        unique.update(grams)
    return len(unique), total


def distinct_n(texts: Sequence[str], n: int = 4) -> float:
    """Unique / total whitespace n-grams over one problem's responses (0.0 when there are none)."""
    unique, total = _counts(texts, n)
    return unique / total if total else 0.0


def mean_distinct_n(texts_by_problem: Sequence[Sequence[str]], n: int = 4) -> float:
    """:func:`distinct_n` averaged over the problems that have at least one n-gram (0.0 if none)."""
    ratios = []
    for texts in texts_by_problem:
        unique, total = _counts(texts, n)
        if total:
            ratios.append(unique / total)
    return sum(ratios) / len(ratios) if ratios else 0.0
