"""Difficulty-aware data (docs/method.md § Difficulty-aware data): profile, static filter, and dynamic dropping between stages.

Algorithm
---------
1. **Profile.** Sample k rollouts (k = 8) per training problem from the model about to be trained
   and keep one :class:`DifficultyRecord` per problem: its id, the number of correct rollouts c,
   k, and the mean response length. :func:`record_from_group` builds it from a scored group.
2. **Filter.** :func:`filter_by_pass_rate` keeps ``min_correct <= c <= max_correct``; by default it
   drops the solved problems (c = k) and keeps everything else, *including* the unsolved ones
   (c = 0), which the paper keeps on purpose. :func:`pass_histogram` gives the c/k histogram whose
   shape (a "mirrored J") is the check that the data suits the model.
3. **Dynamic dropping.** During training, :class:`DifficultyLog` records every problem's group
   accuracy at every step *before* rescue or substitution (those would inflate it). Between stages,
   :func:`problems_to_drop` names the problems whose mean logged accuracy over the stage exceeds
   0.9; they are removed from the next stage's data.

Deviations and choices
----------------------
- The threshold comparison is strict (> 0.9), as in the paper: a problem at exactly 0.9 is kept.
- A problem never answered correctly (mean 0) is never dropped, whatever the threshold: the paper
  keeps hard problems, and a caller passing a threshold below 0 must not drop them by accident.
- The reference's dropping script fails on an undefined name; here the log is an append-only JSONL
  file that survives a killed process (see :class:`DifficultyLog`) and the rule is a pure function.
- In a distributed run only one process (rank 0) should write the log; every rank can read it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris.recipe.groups import Group

#: docs/method.md § Difficulty-aware data: between stages, drop problems whose average logged accuracy is above this.
DEFAULT_DROP_THRESHOLD = 0.9


@dataclass(frozen=True)
class DifficultyRecord:
    """One profiled problem: ``correct`` of ``k`` rollouts were right; mean response length."""

    problem_id: str
    correct: int
    k: int
    mean_length: float

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"DifficultyRecord {self.problem_id!r}: k must be >= 1, got {self.k}")
        if not 0 <= self.correct <= self.k:
            raise ValueError(
                f"DifficultyRecord {self.problem_id!r}: correct must be in 0..{self.k}, got {self.correct}"
            )

    @property
    def pass_rate(self) -> float:
        return self.correct / self.k

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "correct": self.correct,
            "k": self.k,
            "mean_length": self.mean_length,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DifficultyRecord:
        missing = [key for key in ("problem_id", "correct", "k", "mean_length") if key not in d]
        if missing:
            raise ValueError(f"DifficultyRecord: missing field(s) {missing} in {dict(d)!r}")
        return cls(str(d["problem_id"]), int(d["correct"]), int(d["k"]), float(d["mean_length"]))


def record_from_group(group: Group) -> DifficultyRecord:
    """The profile record of one problem from its scored group of k rollouts."""
    mean_length = sum(r.length for r in group.rollouts) / group.n
    return DifficultyRecord(group.problem_id, group.num_correct, group.n, mean_length)


def pass_histogram(pass_counts: Iterable[int], k: int) -> list[int]:
    """Counts of problems solved 0/k, 1/k, ..., k/k (a list of length k+1)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    hist = [0] * (k + 1)
    for c in pass_counts:
        if not 0 <= c <= k:
            raise ValueError(f"pass count {c} is outside 0..{k}")
        hist[c] += 1
    return hist


def filter_by_pass_rate(
    records: Iterable[DifficultyRecord], *, min_correct: int = 0, max_correct: int | None = None
) -> list[DifficultyRecord]:
    """Keep records with ``min_correct <= correct <= max_correct``, in their input order.

    The default ``max_correct`` is each record's ``k - 1``: drop what the model already solves
    every time (no learning signal), keep the unsolved (docs/method.md § Difficulty-aware data: the paper's ablation shows that removing more hurts).
    """
    if min_correct < 0:
        raise ValueError(f"min_correct must be >= 0, got {min_correct}")
    kept = []
    for rec in records:
        upper = rec.k - 1 if max_correct is None else max_correct
        if min_correct <= rec.correct <= upper:
            kept.append(rec)
    return kept


def problems_to_drop(
    mean_accuracy: Mapping[str, float], *, threshold: float = DEFAULT_DROP_THRESHOLD
) -> set[str]:
    """Problems whose mean logged accuracy is strictly above ``threshold``; never a mean-0 problem."""
    return {pid for pid, acc in mean_accuracy.items() if acc > threshold and acc > 0.0}


class DifficultyLog:
    """Per-step group accuracies, in an append-only JSONL file (one line per (stage, step)).

    Each line is ``{"stage": s, "step": t, "accuracies": {problem_id: accuracy, ...}}``, written
    with one ``write`` call and fsynced, so a killed process leaves at most one partial last line.

    Reading rules (they make resuming safe):

    - A line is committed only once its newline is written. A last line without one (a torn
      write) is ignored on read, and the next :meth:`record` cuts it off before appending.
    - When a (stage, step) appears several times (a resumed run repeating a step), the last line
      wins: it replaces that step's entries entirely.
    - Any other unreadable line is corruption and raises ``ValueError`` naming the file and line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def record(self, stage: int, step: int, accuracies: Mapping[str, float]) -> None:
        """Append this step's per-problem group accuracies (measured before rescue/substitution)."""
        clean: dict[str, float] = {}
        for pid, acc in accuracies.items():
            if not isinstance(pid, str):
                raise TypeError(f"DifficultyLog.record: problem ids must be str, got {pid!r}")
            acc = float(acc)
            if not math.isfinite(acc):
                raise ValueError(f"DifficultyLog.record: accuracy of {pid!r} is {acc}")
            clean[pid] = acc
        line = (json.dumps({"stage": int(stage), "step": int(step), "accuracies": clean}) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._cut_torn_tail(fd)
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _cut_torn_tail(fd: int) -> None:
        # Appending after a torn line would glue the new record onto the fragment and lose both.
        size = os.fstat(fd).st_size
        if size == 0:
            return
        os.lseek(fd, size - 1, os.SEEK_SET)
        if os.read(fd, 1) == b"\n":
            return
        # Read back only as far as needed to find the last newline (the log can be large).
        pos, chunk = size, 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            os.lseek(fd, start, os.SEEK_SET)
            data = os.read(fd, pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                os.ftruncate(fd, start + nl + 1)
                return
            pos = start
        os.ftruncate(fd, 0)

    def _steps(self) -> dict[tuple[int, int], dict[str, float]]:
        """(stage, step) -> accuracies, last line winning, in first-seen order."""
        if not self.path.exists():
            return {}
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        # The segment after the last newline is uncommitted (empty when the file ends cleanly).
        committed = lines[:-1]
        out: dict[tuple[int, int], dict[str, float]] = {}
        for lineno, line in enumerate(committed, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = (int(rec["stage"]), int(rec["step"]))
                accs = {str(p): float(a) for p, a in rec["accuracies"].items()}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{self.path}, line {lineno}: unreadable difficulty record ({exc})") from exc
            out[key] = accs
        return out

    def steps(self, stage: int | None = None) -> list[tuple[int, int]]:
        """The recorded (stage, step) pairs, sorted."""
        return sorted(k for k in self._steps() if stage is None or k[0] == stage)

    def entries(self, stage: int | None = None) -> list[tuple[int, int, str, float]]:
        """Every (stage, step, problem_id, accuracy), sorted by (stage, step), then as recorded."""
        by_step = self._steps()
        return [
            (s, t, pid, acc)
            for (s, t) in sorted(by_step)
            if stage is None or s == stage
            for pid, acc in by_step[(s, t)].items()
        ]

    def mean_accuracy(self, stage: int | None = None) -> dict[str, float]:
        """Each problem's accuracy averaged over the steps where it was logged (one stage or all)."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for _, _, pid, acc in self.entries(stage):
            sums[pid] = sums.get(pid, 0.0) + acc
            counts[pid] = counts.get(pid, 0) + 1
        return {pid: sums[pid] / counts[pid] for pid in sums}
