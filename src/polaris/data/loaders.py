"""Load problems from the formats people have, into :class:`~polaris.data.problem.Problem`.

Formats (detected from the columns of each file, so no flag is needed):

* **reference** — the reference implementation's parquet rows: ``prompt`` = ``[{role, content}]``
  (the instruction suffix is stripped), ``reward_model.ground_truth`` (str, float or list of str),
  ``extra_info.index`` or ``extra_info.id`` as the problem id, ``data_source``.
* **plain** — ``problem`` and ``answer`` columns (the Polaris-Dataset-53K layout), optional ``id``
  and ``difficulty``; parquet, jsonl or json lines.
* **hub** — a Hugging Face data set id (``owner/name``), read through ``datasets`` when online.

Rows are numbered from 0 in error messages, as pandas and pyarrow number them. Every problem with a
file is a :class:`~polaris.data.problem.DataError` naming the file, and the row and field where there is
one: an empty or truncated file, a missing column, a ground truth that is null, a mapping or not a finite
number, bytes that are not UTF-8, a line cut short, a duplicate id, a problem text longer than
:data:`MAX_PROBLEM_CHARS`. A list of alternatives and a number are valid ground truths (see
:func:`normalise_answer`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from polaris.data.problem import DataError, GroundTruth, Problem, strip_suffix

Row = Mapping[str, Any]
RowParser = Callable[[Row, str, int], Problem]

#: The longest problem text a row may hold, in characters (about 250K tokens): longer than any context polaris
#: samples in, so such a row is a broken one (two files run together, a data blob in a text column). Refused when
#: the file is read, naming the row, instead of costing a tokenisation in every pass and failing at generation.
MAX_PROBLEM_CHARS = 1_000_000


class MissingDataFile(DataError, FileNotFoundError):
    """A data file that does not exist (still a ``FileNotFoundError`` for callers that look for one)."""


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
    if len(value) > MAX_PROBLEM_CHARS:
        raise DataError(source, row, field_name,
                        f"{len(value):,} characters, above the limit of {MAX_PROBLEM_CHARS:,} (about "
                        f"{MAX_PROBLEM_CHARS // 4:,} tokens, longer than any context a model samples in here): a "
                        "broken row, e.g. two files run together; shorten or drop it")
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
    """The row parser of a file's layout, from its columns (of row 0, for jsonl).

    A file with some of a layout's columns is told which one it lacks (``row 0, field 'answer': missing``);
    one with none of any layout's columns, which layouts there are.
    """
    cols = set(columns)
    for _, (needed, parser) in ROW_FORMATS.items():
        if needed <= cols:
            return parser
    name, (needed, _) = max(ROW_FORMATS.items(), key=lambda item: len(item[1][0] & cols))
    if needed & cols:
        missing = sorted(needed - cols)
        raise DataError(source, 0, missing[0], f"missing: a {name} file needs the columns {sorted(needed)}, "
                                               f"and this one has {sorted(cols)}")
    wanted = " or ".join(f"{name} ({', '.join(sorted(n))})" for name, (n, _) in ROW_FORMATS.items())
    raise DataError(source, None, None, f"unknown layout: columns {sorted(cols)}; expected {wanted}")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet_rows(path)
    if suffix in (".jsonl", ".json"):
        return read_jsonl_rows(path)
    raise DataError(str(path), None, None, f"unsupported file type {suffix!r}: use .parquet or .jsonl")


def read_parquet_rows(path: Path, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of a parquet file; an empty, truncated or non-parquet file is a :class:`DataError`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DataError(str(path), None, None, "empty file (0 bytes): no rows")
    try:
        table = pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(str(path), None, None, f"not a readable parquet file (truncated, or not parquet): {e}") from e
    return table.to_pylist()


def read_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """One JSON object per line (blank lines skipped); rows are numbered from 0 over the objects.

    An empty file, a line that is not JSON (a last line cut short is said to be one), bytes that are not
    UTF-8 (naming the field that holds them) and a line that is not an object are :class:`DataError`.
    """
    source = str(path)
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is not data
    lines = data.split(b"\n")
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        raise DataError(source, None, None, "empty file: no rows (expected one JSON object per line)")
    rows: list[dict[str, Any]] = []
    for i in filled:
        raw, row = lines[i], len(rows)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(source, row, _field_with_bad_bytes(raw),
                            f"not UTF-8 text (byte 0x{raw[e.start]:02x} at line {i + 1}, column {e.start + 1}); "
                            "re-save the file as UTF-8") from None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            if i == filled[-1] and not data.endswith(b"\n"):
                raise DataError(source, row, None, f"not valid JSON (line {i + 1}, the last, ends in the middle "
                                                   f"of a record: {e.msg}): the file was cut short; write it "
                                                   "again, or delete the partial last line") from None
            raise DataError(source, row, None, f"not valid JSON (line {i + 1}): {e.msg}") from None
        if not isinstance(value, dict):
            raise DataError(source, row, None, f"expected a JSON object per line, got {type(value).__name__} "
                                               f"(line {i + 1})")
        rows.append(value)
    return rows


def _field_with_bad_bytes(raw: bytes) -> str | None:
    """The key path (``problem``, ``prompt[0].content``) of the first value with bytes that are not UTF-8."""
    try:
        value = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except ValueError:
        return None

    def bad(text: str) -> bool:
        return any("\udc80" <= c <= "\udcff" for c in text)

    def find(v: Any, where: str) -> str | None:
        if isinstance(v, str):
            return where if bad(v) else None
        items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        for key, item in items:
            inner = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
            hit = inner if isinstance(key, str) and bad(key) else find(item, inner)
            if hit:
                return hit
        return None

    return find(value, "")


def parse_rows(rows: list[Row], source: str) -> list[Problem]:
    """Rows of one file or data set to problems; ids must be unique."""
    if not rows:
        raise DataError(source, None, None, "no rows (an empty file or data set)")
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
        raise MissingDataFile(str(source), None, None, "no such file, and not a Hub data set id (owner/name)")
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
