"""Load problems from the formats people have, into :class:`~polaris.data.problem.Problem`.

Formats (detected from the columns of each file, so no flag is needed):

* **reference** — the reference implementation's parquet rows: ``prompt`` = ``[{role, content}]``
  (the instruction suffix is stripped), ``reward_model.ground_truth`` (str, float or list of str),
  ``extra_info.index`` or ``extra_info.id`` as the problem id, ``data_source``.
* **plain** — ``problem`` and ``answer`` columns (the Polaris-Dataset-53K layout), optional ``id``
  and ``difficulty``; parquet, jsonl or json lines.
* **hub** — a Hugging Face data set id (``owner/name``), read through ``datasets`` when online.

Rows are numbered from 0 in error messages, as pandas and pyarrow number them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from polaris.data.problem import DataError, GroundTruth, Problem, strip_suffix

Row = Mapping[str, Any]
RowParser = Callable[[Row, str, int], Problem]


def clean_answer_text(text: str) -> str:
    """Strip whitespace and one enclosing pair of ``$`` (or ``$$``) from a ground-truth string."""
    text = text.strip()
    for fence in ("$$", "$"):
        if len(text) > 2 * len(fence) - 1 and text.startswith(fence) and text.endswith(fence):
            text = text[len(fence) : -len(fence)].strip()
            break
    return text


def normalise_answer(value: Any, source: str, row: int, field_name: str) -> GroundTruth:
    """A ground truth as ``str | list[str]``; anything else is a :class:`DataError`."""

    def one(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            raise DataError(source, row, field_name, f"expected a string or a number, got {v!r}")
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise DataError(source, row, field_name, f"ground truth is not a finite number: {v!r}")
            return str(int(v)) if v.is_integer() else repr(v)
        if isinstance(v, str):
            text = clean_answer_text(v)
            if not text:
                raise DataError(source, row, field_name, "ground truth is empty")
            return text
        raise DataError(source, row, field_name, f"expected a string, a number or a list, got {type(v).__name__}")

    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays from pandas
        value = value.tolist()
    if isinstance(value, list | tuple):
        if not value:
            raise DataError(source, row, field_name, "the list of ground truths is empty")
        return [one(v) for v in value]
    return one(value)


def _require_text(value: Any, source: str, row: int, field_name: str) -> str:
    if value is None:
        raise DataError(source, row, field_name, "missing")
    if not isinstance(value, str):
        raise DataError(source, row, field_name, f"expected text, got {type(value).__name__}")
    if not value.strip():
        raise DataError(source, row, field_name, "empty")
    return value


def parse_reference_row(r: Row, source: str, row: int) -> Problem:
    """One row of the reference schema."""
    prompt = r.get("prompt")
    if not isinstance(prompt, list | tuple) or not prompt:
        raise DataError(source, row, "prompt", "expected a non-empty list of {role, content} messages")
    users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users:
        raise DataError(source, row, "prompt", "no message with role 'user'")
    text = strip_suffix(_require_text(users[-1].get("content"), source, row, "prompt.content"))
    reward_model = r.get("reward_model")
    if not isinstance(reward_model, Mapping) or "ground_truth" not in reward_model:
        raise DataError(source, row, "reward_model.ground_truth", "missing")
    answer = normalise_answer(reward_model["ground_truth"], source, row, "reward_model.ground_truth")
    extra = r.get("extra_info") or {}
    pid = extra.get("index", extra.get("id")) if isinstance(extra, Mapping) else None
    difficulty = extra.get("difficulty") if isinstance(extra, Mapping) else None
    split = extra.get("split", "") if isinstance(extra, Mapping) else ""
    return Problem(
        id=str(row if pid is None else pid),
        problem=text,
        answer=answer,
        source=str(r.get("data_source") or Path(source).stem),
        difficulty=None if difficulty is None else float(difficulty),
        extra={"split": split or ""},
    )


def parse_plain_row(r: Row, source: str, row: int) -> Problem:
    """One row with ``problem`` and ``answer`` columns."""
    text = strip_suffix(_require_text(r.get("problem"), source, row, "problem"))
    if r.get("answer") is None:
        raise DataError(source, row, "answer", "missing")
    answer = normalise_answer(r["answer"], source, row, "answer")
    difficulty = r.get("difficulty")
    if difficulty is not None and not isinstance(difficulty, int | float | str):
        raise DataError(source, row, "difficulty", f"expected a number, got {type(difficulty).__name__}")
    try:
        difficulty = None if difficulty in (None, "") else float(difficulty)
    except ValueError:
        raise DataError(source, row, "difficulty", f"expected a number, got {difficulty!r}") from None
    pid = r.get("id", r.get("index"))
    return Problem(
        id=str(row if pid is None else pid),
        problem=text,
        answer=answer,
        source=str(r.get("data_source") or r.get("source") or Path(source).stem),
        difficulty=difficulty,
    )


#: Row formats by name: each maps one row to a Problem, raising DataError on bad input.
ROW_FORMATS: dict[str, tuple[frozenset[str], RowParser]] = {
    "reference": (frozenset({"prompt", "reward_model"}), parse_reference_row),
    "plain": (frozenset({"problem", "answer"}), parse_plain_row),
}


def detect_format(columns: Iterable[str], source: str) -> RowParser:
    cols = set(columns)
    for _, (needed, parser) in ROW_FORMATS.items():
        if needed <= cols:
            return parser
    wanted = " or ".join(f"{name} ({', '.join(sorted(n))})" for name, (n, _) in ROW_FORMATS.items())
    raise DataError(source, None, None, f"unknown layout: columns {sorted(cols)}; expected {wanted}")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix in (".jsonl", ".json"):
        rows = []
        with path.open(encoding="utf-8") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(str(path), len(rows), None, f"not valid JSON (line {i + 1}): {e.msg}") from None
                if not isinstance(value, dict):
                    raise DataError(str(path), len(rows), None, "expected a JSON object per line")
                rows.append(value)
        return rows
    raise DataError(str(path), None, None, f"unsupported file type {suffix!r}: use .parquet or .jsonl")


def parse_rows(rows: list[Row], source: str) -> list[Problem]:
    """Rows of one file or data set to problems; ids must be unique."""
    if not rows:
        raise DataError(source, None, None, "no rows")
    parser = detect_format(rows[0].keys(), source)
    problems = [parser(r, source, i) for i, r in enumerate(rows)]
    seen: dict[str, int] = {}
    for i, p in enumerate(problems):
        if p.id in seen:
            raise DataError(source, i, "id", f"duplicate problem id {p.id!r} (first at row {seen[p.id]})")
        seen[p.id] = i
    return problems


def looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/")) and "." not in parts[1][-8:]


def load_problems(source: str | os.PathLike[str], *, split: str = "train", limit: int | None = None) -> list[Problem]:
    """Problems from a local parquet/jsonl file or a Hub data set id.

    Raises :class:`DataError` naming file, row and field for bad rows, and a clear error when a
    Hub id is asked for offline (``HF_HUB_OFFLINE=1`` or ``HF_DATASETS_OFFLINE=1``).
    """
    path = Path(source)
    if path.exists():
        problems = parse_rows(_read_rows(path), str(path))
    elif looks_like_hub_id(str(source)):
        problems = _load_hub(str(source), split)
    else:
        raise FileNotFoundError(f"{source}: no such file, and not a Hub data set id (owner/name)")
    return problems[:limit] if limit is not None else problems


def _load_hub(dataset_id: str, split: str) -> list[Problem]:
    if _offline():
        raise DataError(
            dataset_id,
            None,
            None,
            "this is a Hub data set id, and Hugging Face access is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE): "
            "download it where you have network and pass the local parquet or jsonl file instead",
        )
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as e:  # network, auth, missing split: say which data set
        raise DataError(dataset_id, None, None, f"could not load from the Hub: {e}") from e
    return parse_rows(list(ds), f"{dataset_id} [{split}]")


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def write_problems(problems: Iterable[Problem], path: str | os.PathLike[str]) -> Path:
    """Write problems as reference-schema parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from polaris.io import atomic_path

    path = Path(path)
    rows = [p.to_row() for p in problems]
    if len({isinstance(r["reward_model"]["ground_truth"], list) for r in rows}) > 1:
        # one parquet column has one type: with any list of alternatives, every answer is a list
        for r in rows:
            gt = r["reward_model"]["ground_truth"]
            r["reward_model"]["ground_truth"] = gt if isinstance(gt, list) else [gt]
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
    return path
