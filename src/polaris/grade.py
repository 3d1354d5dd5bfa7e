"""``polaris grade FILE``: grade a results file and print avg@k, pass@k, best@k and diversity.

The file (parquet or jsonl) has one row per response, with a problem id, the response text and the
ground truth (str, number or list of alternatives, as the reference files store them). Rows of one
problem are its k samples; problems may have different numbers of samples.

Summary (:func:`summarize`; fractions in [0, 1], shown as percentages):

- ``problems``, ``responses``; ``k`` — the smallest number of samples of a problem, ``k_max`` the
  largest (equal unless the counts are unequal);
- ``avg@k`` — mean over problems of the fraction correct (the paper's metric, docs/method.md § Evaluation protocol);
- ``pass@1`` and ``pass@k`` — the unbiased estimator (Chen et al. 2021) at 1 and at ``k``;
- ``best@k`` — fraction of problems with at least one correct sample (all of its samples);
- ``no_boxed`` — responses without a gradable boxed answer (or without ``</think>`` when it is
  required); ``timeouts`` — responses whose check ran out of time (scored 0);
- ``distinct_4`` — distinct-4-gram ratio of each problem's responses, averaged (docs/method.md § Diversity-based temperature).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro

from polaris.data.problem import DataError
from polaris.errors import UsageError

SUFFIXES = (".parquet", ".jsonl", ".json")


@dataclass
class GradeConfig:
    """Grade a results file (parquet or jsonl: problem id, response, ground truth per row) and
    print avg@k, pass@1, pass@k, best@k, responses without a boxed answer, timeouts and
    distinct-4 diversity."""

    file: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="FILE")]
    """Results file, .parquet or .jsonl, one row per response."""
    id_column: str = "problem_id"
    """Column with the problem id (rows with the same id are that problem's samples)."""
    response_column: str = "response"
    """Column with the model's response text."""
    truth_column: str = "ground_truth"
    """Column with the ground truth: a string, a number, or a list of alternatives."""
    require_think: bool = False
    """Score a response without ``</think>`` as 0 (the training reward). Off for evaluation."""
    timeout: float = 5.0
    """Seconds of equivalence checking per response; a response past it scores 0 and is counted."""
    workers: int | None = None
    """Verifier processes (default: one per CPU)."""
    json: str | None = None
    """Also write the summary as JSON to this path."""

    def __post_init__(self) -> None:
        path = Path(self.file)
        if not path.is_file():
            raise UsageError(f"results file {self.file!r} not found")
        if path.suffix.lower() not in SUFFIXES:
            raise UsageError(f"{self.file}: unsupported file type {path.suffix!r}; use .parquet or .jsonl")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise UsageError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        columns = (self.id_column, self.response_column, self.truth_column)
        if len(set(columns)) != len(columns):
            raise UsageError(f"--id-column, --response-column and --truth-column must differ, got {columns}")


# -- reading ---------------------------------------------------------------------------------------


def _read_rows(path: Path, columns: Sequence[str]) -> list[dict[str, Any]]:
    source = str(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as e:  # not a parquet file, truncated, ...
            raise DataError(source, None, None, f"cannot read as parquet: {e}") from e
        for column in columns:
            if column not in names:
                raise DataError(source, None, column, f"no such column (columns: {', '.join(names)})")
        return pq.read_table(path, columns=list(columns)).to_pylist()
    from polaris.data.loaders import read_jsonl_rows

    rows = read_jsonl_rows(path)  # not UTF-8, a line cut short, a line that is not an object: DataError
    for column in columns:
        if rows and not any(column in r for r in rows):
            raise DataError(source, None, column, f"no such column (keys of row 0: {', '.join(rows[0])})")
    return rows


def read_results(
    path: str | Path, *, id_column: str = "problem_id", response_column: str = "response", truth_column: str = "ground_truth"
) -> tuple[list[str], list[str], list[Any]]:
    """(problem ids, responses, ground truths) of a results file; :class:`DataError` names the
    file, row and field of anything unusable."""
    from polaris.data.loaders import normalise_answer

    path = Path(path)
    source = str(path)
    rows = _read_rows(path, (id_column, response_column, truth_column))
    if not rows:
        raise DataError(source, None, None, "no rows")
    ids, responses, truths = [], [], []
    for i, r in enumerate(rows):
        pid = r.get(id_column)
        if pid is None or isinstance(pid, bool) or not isinstance(pid, str | int) or (isinstance(pid, str) and not pid.strip()):
            raise DataError(source, i, id_column, f"expected a problem id (text or integer), got {pid!r}")
        text = r.get(response_column)
        if not isinstance(text, str):
            raise DataError(source, i, response_column, f"expected the response text, got {type(text).__name__}")
        if truth_column not in r or r[truth_column] is None:
            raise DataError(source, i, truth_column, "missing")
        ids.append(str(pid))
        responses.append(text)
        truths.append(normalise_answer(r[truth_column], source, i, truth_column))
    return ids, responses, truths


# -- the summary -----------------------------------------------------------------------------------


def summarize(
    problem_ids: Sequence[str],
    responses: Sequence[str],
    ground_truths: Sequence[Any],
    *,
    require_think: bool = False,
    timeout: float = 5.0,
    workers: int | None = None,
) -> dict[str, Any]:
    """Grade every response and summarise per problem (keys in the module docstring)."""
    from polaris.recipe.diversity import mean_distinct_n
    from polaris.recipe.metrics import avg_at_k, best_at_k, mean_pass_at_k
    from polaris.reward import grade_batch

    if not (len(problem_ids) == len(responses) == len(ground_truths)):
        raise ValueError(
            f"summarize: {len(problem_ids)} problem ids, {len(responses)} responses, {len(ground_truths)} ground truths"
        )
    if not responses:
        raise ValueError("summarize: no responses to grade")
    verdicts = grade_batch(responses, ground_truths, require_think=require_think, timeout=timeout, workers=workers)
    scores: dict[str, list[float]] = {}
    texts: dict[str, list[str]] = {}
    for pid, text, v in zip(problem_ids, responses, verdicts, strict=True):
        scores.setdefault(pid, []).append(v.score)
        texts.setdefault(pid, []).append(text)
    by_problem = list(scores.values())
    k = min(len(s) for s in by_problem)
    return {
        "problems": len(by_problem),
        "responses": len(responses),
        "k": k,
        "k_max": max(len(s) for s in by_problem),
        "avg@k": avg_at_k(by_problem),
        "pass@1": mean_pass_at_k(by_problem, 1),
        "pass@k": mean_pass_at_k(by_problem, k),
        "best@k": best_at_k(by_problem),
        "no_boxed": sum(v.extracted is None for v in verdicts),
        "timeouts": sum(v.timed_out for v in verdicts),
        "distinct_4": mean_distinct_n(list(texts.values()), 4),
    }


def format_summary(summary: dict[str, Any], title: str = "") -> str:
    k, k_max = summary["k"], summary["k_max"]
    k_text = str(k) if k == k_max else f"{k}..{k_max} (unequal: pass@k uses k={k})"
    rows = [
        ("problems", str(summary["problems"])),
        ("responses", str(summary["responses"])),
        ("k (samples per problem)", k_text),
        (f"avg@{k_max if k == k_max else 'k'}", f"{100 * summary['avg@k']:.1f}%"),
        ("pass@1", f"{100 * summary['pass@1']:.1f}%"),
        (f"pass@{k}", f"{100 * summary['pass@k']:.1f}%"),
        (f"best@{k_max if k == k_max else 'k'}", f"{100 * summary['best@k']:.1f}%"),
        ("no boxed answer", str(summary["no_boxed"])),
        ("timeouts", str(summary["timeouts"])),
        ("distinct-4", f"{100 * summary['distinct_4']:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [title] if title else []
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def main(config: GradeConfig) -> int:
    from polaris.io import write_json
    from polaris.progress import log

    ids, responses, truths = read_results(
        config.file, id_column=config.id_column, response_column=config.response_column, truth_column=config.truth_column
    )
    log(f"grading {len(responses)} responses of {len(set(ids))} problems ...")
    summary = summarize(ids, responses, truths, require_think=config.require_think, timeout=config.timeout, workers=config.workers)
    print(format_summary(summary, title=f"polaris grade {config.file}"))
    if config.json:
        write_json(config.json, {"file": str(config.file), "require_think": config.require_think, **summary})
    return 0
