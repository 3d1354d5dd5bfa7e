"""The public entry points: :func:`score`, :func:`grade_batch`, :func:`score_batch`.

For every response, in the calling process: find the graded region and the last boxed answer, then
the exact/number comparison (:func:`polaris.reward.verify.prepare`); most responses end there.
The rest need math-verify, with a deadline:

* on the main thread, when fewer than :data:`SMALL_BATCH` distinct checks are left, in this
  process under a signal deadline (no worker start-up for a handful of items);
* otherwise in the shared worker pool (:mod:`polaris.reward.pool`): per-item deadline
  ``timeout`` in the worker, ``timeout + grace`` hard deadline in the parent.

Identical (answer, ground truth) checks in one batch run once. If the pool cannot run (workers do
not start), the remaining checks run in this process on the main thread, or score 0 and are
counted as ``unscored`` elsewhere. Model output never makes these functions raise; they raise
``ValueError`` only for invalid arguments (mismatched lengths, a non-positive timeout or worker
count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from polaris.reward import pool
from polaris.reward.verify import Prepared, Verdict, can_use_signals, check_with_deadline, prepare

#: Below this many distinct math-verify checks, a main-thread caller grades in-process.
SMALL_BATCH = 8


def _check_args(timeout: float, workers: int | None) -> None:
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer (or None for one per CPU), got {workers!r}")


def _prepare_safely(response: Any, ground_truth: Any, require_think: bool) -> Prepared:
    if not isinstance(response, str):
        return Prepared(Verdict(0.0, None, False))
    try:
        return prepare(response, ground_truth, require_think=require_think)
    except Exception:  # defensive: the cheap steps should not fail, but never raise into a trainer
        pool.count("unscored")
        return Prepared(Verdict(0.0, None, False))


def _in_process(checks: Sequence[pool.Item], timeout: float) -> list[pool.Result]:
    out = []
    for answer, truths in checks:
        try:
            out.append(check_with_deadline(answer, truths, timeout))
        except Exception:
            pool.count("unscored")
            out.append((0.0, False))
    return out


def _in_pool(checks: Sequence[pool.Item], timeout: float, workers: int) -> list[pool.Result | None]:
    with pool.shared_lock:
        try:
            return pool.shared_pool(workers).run(checks, timeout)
        except Exception:
            return [None] * len(checks)


def grade_batch(
    responses: Sequence[str],
    ground_truths: Sequence[Any],
    *,
    require_think: bool = True,
    timeout: float = 5.0,
    workers: int | None = None,
) -> list[Verdict]:
    """A :class:`Verdict` per response, in order.

    ``ground_truths[i]`` is a str, int, float or list of alternatives, as the data files store it.
    ``require_think`` (the training reward): a response without ``</think>`` scores 0; the text
    after the first ``</think>`` is graded either way. ``timeout``: seconds of equivalence checking
    per response. ``workers``: pool size (default: one per CPU).
    """
    if len(responses) != len(ground_truths):
        raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
    _check_args(timeout, workers)
    prepared = [_prepare_safely(r, g, require_think) for r, g in zip(responses, ground_truths, strict=True)]

    # Distinct math-verify checks, in first-seen order.
    check_index: dict[pool.Item, int] = {}
    for p in prepared:
        if p.verdict is None:
            check_index.setdefault((p.answer, p.truths), len(check_index))
    checks = list(check_index)
    results: list[pool.Result | None] = []
    if checks:
        if can_use_signals() and len(checks) < SMALL_BATCH:
            results = list(_in_process(checks, timeout))
        else:
            results = _in_pool(checks, timeout, workers or pool.default_workers())
            missing = [i for i, r in enumerate(results) if r is None]
            if missing and can_use_signals():
                for i, r in zip(missing, _in_process([checks[i] for i in missing], timeout), strict=True):
                    results[i] = r
            elif missing:
                pool.count("unscored", len(missing))

    verdicts = []
    for p in prepared:
        if p.verdict is not None:
            verdicts.append(p.verdict)
            continue
        result = results[check_index[(p.answer, p.truths)]] or (0.0, False)
        verdicts.append(Verdict(result[0], p.extracted, result[1]))
    pool.count("timeouts", sum(v.timed_out for v in verdicts))
    return verdicts


def score_batch(
    responses: Sequence[str],
    ground_truths: Sequence[Any],
    *,
    require_think: bool = True,
    timeout: float = 5.0,
    workers: int | None = None,
) -> list[float]:
    """``[v.score for v in grade_batch(...)]``: 1.0 or 0.0 per response, in order."""
    verdicts = grade_batch(responses, ground_truths, require_think=require_think, timeout=timeout, workers=workers)
    return [v.score for v in verdicts]


def score(response: str, ground_truth: Any, *, require_think: bool = True, timeout: float = 5.0) -> float:
    """1.0 when the last boxed answer of ``response`` matches ``ground_truth``, else 0.0.

    On the main thread this runs in the calling process (signal deadline); from other threads it
    goes through the worker pool, since only the main thread can receive the deadline signal.
    """
    return grade_batch([response], [ground_truth], require_think=require_think, timeout=timeout)[0].score
