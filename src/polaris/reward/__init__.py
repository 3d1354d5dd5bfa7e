"""Answer verification: the binary reward of docs/method.md § The reward, with hard timeouts and a worker pool.

``score(response, ground_truth)`` is 1.0 when the last ``\\boxed{...}`` of the graded text matches
the ground truth (normalised string, plain number, or math-verify equivalence), else 0.0. With
``require_think=True`` (the training reward) a response without ``</think>`` scores 0 and only the
text after the first ``</think>`` is graded; ``require_think=False`` (evaluation) grades the whole
text, still starting after ``</think>`` when there is one.

Modules: :mod:`~polaris.reward.extract` (the graded region, the boxed answer),
:mod:`~polaris.reward.verify` (normalisation, numbers, math-verify, deadlines),
:mod:`~polaris.reward.pool` (worker processes with hard deadlines, counters),
:mod:`~polaris.reward.grading` (the entry points). Importing this package imports neither torch
nor transformers nor math-verify (that comes on first use).

Timeouts are counted: ``stats()["timeouts"]`` (or ``timeout_count()``) is the number of graded
items that ran out of time in this process; each :class:`Verdict` also says so.
"""

from polaris.reward.extract import answer_region, extract_boxed
from polaris.reward.grading import grade_batch, score, score_batch
from polaris.reward.pool import close_pool, stats, timeout_count
from polaris.reward.verify import GroundTruth, Verdict, ground_truth_alternatives

__all__ = [
    "GroundTruth",
    "Verdict",
    "answer_region",
    "close_pool",
    "extract_boxed",
    "grade_batch",
    "ground_truth_alternatives",
    "score",
    "score_batch",
    "stats",
    "timeout_count",
]
