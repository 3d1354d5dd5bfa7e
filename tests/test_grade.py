"""``polaris grade``: the summary (hand-computed), reading results files, errors, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polaris.grade import GradeConfig, format_summary, main, read_results, summarize
from polaris.reward import close_pool


@pytest.fixture(scope="module", autouse=True)
def _stop_shared_pool():
    yield
    close_pool()


def _r(words: str, answer: str | None) -> str:
    return f"</think> {words}" + ("" if answer is None else f" \\boxed{{{answer}}}")


# Three problems, four samples each. Tokens are whitespace-separated, so each response of the form
# "</think> a b \boxed{x}" has exactly one 4-gram.
IDS = ["p1"] * 4 + ["p2"] * 4 + ["p3"] * 4
RESPONSES = [
    _r("x y", "1"), _r("x y", "1"), _r("x y", "2"), _r("x y z", None),  # p1: right, right, wrong, no box
    _r("w w", "7"), _r("w w", "7"), _r("w w", "7"), _r("w w", "7"),  # p2: all wrong
    _r("q r", "3"), _r("q r", "4"), _r("q r", "4"), _r("q r", "4"),  # p3: one right
]
TRUTHS = ["1"] * 4 + [5.0] * 4 + [["3"]] * 4


def test_summarize_by_hand() -> None:
    s = summarize(IDS, RESPONSES, TRUTHS)
    assert s["problems"] == 3 and s["responses"] == 12 and s["k"] == 4 and s["k_max"] == 4
    # per-problem fractions correct: 2/4, 0/4, 1/4
    assert s["avg@k"] == pytest.approx((0.5 + 0.0 + 0.25) / 3)
    assert s["pass@1"] == pytest.approx(0.25)
    # pass@4 with n = k = 4: 1 if any sample is right
    assert s["pass@k"] == pytest.approx(2 / 3)
    assert s["best@k"] == pytest.approx(2 / 3)
    assert s["no_boxed"] == 1
    assert s["timeouts"] == 0
    # distinct 4-grams / 4-grams: p1 3/4 ({1} twice, {2}, "x y z"), p2 1/4, p3 2/4
    assert s["distinct_4"] == pytest.approx((0.75 + 0.25 + 0.5) / 3)


def test_summarize_unequal_sample_counts() -> None:
    s = summarize(["a", "a", "b", "b", "b", "b"], [_r("", "1"), _r("", "2")] + [_r("", "1")] * 4, ["1"] * 6)
    assert (s["k"], s["k_max"]) == (2, 4)
    assert s["avg@k"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["pass@1"] == pytest.approx(0.75)
    # pass@2 for a: n=2, c=1 -> 1 - C(1,2)/C(2,2) = 1; for b: 1
    assert s["pass@k"] == pytest.approx(1.0)
    assert s["best@k"] == 1.0
    assert "unequal" in format_summary(s)


def test_summarize_require_think() -> None:
    responses = ["\\boxed{1}", "<think>..</think>\\boxed{1}"]
    assert summarize(["a", "a"], responses, ["1", "1"])["avg@k"] == 1.0
    strict = summarize(["a", "a"], responses, ["1", "1"], require_think=True)
    assert strict["avg@k"] == 0.5 and strict["no_boxed"] == 1


def test_summarize_counts_timeouts() -> None:
    s = summarize(["a", "a"], [_r("", "9^{9^{9^{9}}}"), _r("", "5")], ["5", "5"], timeout=1.0)
    assert s["timeouts"] == 1 and s["avg@k"] == 0.5


def test_summarize_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 problem ids, 1 responses"):
        summarize(["a", "b"], ["x"], ["1"])


# -- files -------------------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows() -> list[dict]:
    return [{"problem_id": p, "response": r, "ground_truth": t} for p, r, t in zip(IDS, RESPONSES, TRUTHS, strict=True)]


def test_main_jsonl_prints_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = _write_jsonl(tmp_path / "results.jsonl", _rows())
    out = tmp_path / "summary.json"
    assert main(GradeConfig(str(results), json=str(out))) == 0
    table = capsys.readouterr().out
    assert "avg@4" in table and "25.0%" in table and "pass@4" in table and "66.7%" in table
    saved = json.loads(out.read_text())
    assert saved["problems"] == 3 and saved["avg@k"] == pytest.approx(0.25) and saved["no_boxed"] == 1


def test_main_parquet_with_other_column_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "eval.parquet"
    table = pa.table({
        "id": [1, 1, 2, 2],
        "text": [_r("", "025"), _r("", "24"), _r("", "142"), _r("", "\\frac{284}{2}")],
        "answers": [["025"], ["025"], ["142.0"], ["142.0"]],
    })
    pq.write_table(table, path)
    config = GradeConfig(str(path), id_column="id", response_column="text", truth_column="answers")
    assert main(config) == 0
    assert "75.0%" in capsys.readouterr().out  # (1/2 + 2/2) / 2


def test_read_results_normalises_ground_truths(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "r.jsonl", [{"problem_id": 7, "response": "x", "ground_truth": 142.0}])
    assert read_results(path) == (["7"], ["x"], ["142"])


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_missing_column_names_file_and_column(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"problem_id": "a", "answer": "1"}]
    path = tmp_path / f"results{suffix}"
    if suffix == ".jsonl":
        _write_jsonl(path, rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    from polaris.cli import main as cli_main

    assert cli_main(["grade", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'response'" in err and "no such column" in err


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        ({"response": None}, "response", "expected the response text"),
        ({"ground_truth": ""}, "ground_truth", "empty"),
        ({"ground_truth": None}, "ground_truth", "missing"),
        ({"problem_id": None}, "problem_id", "expected a problem id"),
    ],
)
def test_bad_row_names_file_row_and_field(tmp_path: Path, bad: dict, field: str, words: str) -> None:
    from polaris.data.problem import DataError

    rows = _rows()[:3]
    rows[1] = {**rows[1], **bad}
    path = _write_jsonl(tmp_path / "r.jsonl", rows)
    with pytest.raises(DataError) as info:
        read_results(path)
    message = str(info.value)
    assert message.startswith(f"{path}, row 1, field '{field}'") and words in message


def test_invalid_json_line(tmp_path: Path) -> None:
    from polaris.data.problem import DataError

    path = tmp_path / "r.jsonl"
    path.write_text('{"problem_id": "a", "response": "x", "ground_truth": "1"}\n{oops\n')
    with pytest.raises(DataError, match=r"row 1: not valid JSON \(line 2\)"):
        read_results(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"file": "nope.jsonl"}, "not found"),
        ({"file": "{tmp}/r.csv"}, "unsupported file type '.csv'"),
        ({"file": "{tmp}/r.jsonl", "timeout": 0.0}, "--timeout must be a positive number"),
        ({"file": "{tmp}/r.jsonl", "workers": 0}, "--workers must be at least 1"),
        ({"file": "{tmp}/r.jsonl", "truth_column": "response"}, "must differ"),
    ],
)
def test_config_validation(tmp_path: Path, kwargs: dict, message: str) -> None:
    for name in ("r.csv", "r.jsonl"):
        (tmp_path / name).write_text("{}\n")
    kwargs = {**kwargs, "file": kwargs["file"].format(tmp=tmp_path)}
    from polaris.errors import UsageError

    with pytest.raises(UsageError, match=message):
        GradeConfig(**kwargs)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from polaris.cli import main as cli_main

    results = _write_jsonl(tmp_path / "results.jsonl", _rows())
    out = tmp_path / "s.json"
    assert cli_main(["grade", str(results), "--json", str(out), "--require-think"]) == 0
    assert json.loads(out.read_text())["require_think"] is True
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli_main(["grade", "--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "FILE" in help_text and "--require-think" in help_text and "--json" in help_text
    assert "Score a response without ``</think>`` as 0 (the training reward)" in help_text
