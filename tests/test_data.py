"""Loaders: the five reference benchmark files, plain problem/answer files, bad rows, Hub ids offline."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from polaris.data import DataError, Problem
from polaris.data.loaders import clean_answer_text, load_problems, normalise_answer, write_problems
from polaris.data.problem import INSTRUCTION_SUFFIX, build_messages

EXPECTED = {  # file: (rows, id of row 0, answer of row 0) read off the files by hand
    "aime24": (30, "0", "204"),
    "aime25": (30, "0", "70"),
    "amc23": (83, "0", "142"),
    "minerva": (272, "0", ["9.6"]),
    "olympiad": (675, "0", ["2"]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_benchmarks_load(benchmark_dir, name):
    problems = load_problems(benchmark_dir / f"{name}.parquet")
    rows, first_id, first_answer = EXPECTED[name]
    assert len(problems) == rows
    assert problems[0].id == first_id
    assert problems[0].answer == first_answer
    assert len({p.id for p in problems}) == rows
    for p in problems:
        assert p.problem and not p.problem.endswith(INSTRUCTION_SUFFIX)
        answers = p.answer if isinstance(p.answer, list) else [p.answer]
        assert answers and all(a and a == a.strip() and not (a.startswith("$") and a.endswith("$")) for a in answers)


def test_reference_ground_truth_styles(benchmark_dir):
    raw = pq.read_table(benchmark_dir / "olympiad.parquet").to_pylist()
    loaded = load_problems(benchmark_dir / "olympiad.parquet")
    # olympiad answers are stored wrapped in $...$: the loader unwraps exactly one pair
    i = next(i for i, r in enumerate(raw) if r["reward_model"]["ground_truth"][0].startswith("$"))
    assert loaded[i].answer == [raw[i]["reward_model"]["ground_truth"][0].strip()[1:-1].strip()]
    # aime25 keys its ids as extra_info.id, the others as extra_info.index
    aime25 = pq.read_table(benchmark_dir / "aime25.parquet").to_pylist()
    assert [p.id for p in load_problems(benchmark_dir / "aime25.parquet")] == [str(r["extra_info"]["id"]) for r in aime25]
    # amc23 stores floats: integral ones become integers, others keep their digits
    amc = load_problems(benchmark_dir / "amc23.parquet")
    raw_amc = pq.read_table(benchmark_dir / "amc23.parquet").to_pylist()
    for p, r in zip(amc, raw_amc, strict=True):
        v = r["reward_model"]["ground_truth"]
        assert p.answer == (str(int(v)) if float(v).is_integer() else repr(v))


def test_normalise_answer_forms():
    assert normalise_answer("025", "f", 0, "a") == "025"
    assert normalise_answer(142.0, "f", 0, "a") == "142"
    assert normalise_answer(0.5, "f", 0, "a") == "0.5"
    assert normalise_answer(7, "f", 0, "a") == "7"
    assert normalise_answer(["9.6\n"], "f", 0, "a") == ["9.6"]
    assert normalise_answer(["$\\frac{1}{2 n+2}$"], "f", 0, "a") == ["\\frac{1}{2 n+2}"]
    assert clean_answer_text("$$x^2$$") == "x^2"
    assert clean_answer_text("$") == "$"


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_plain_jsonl_and_parquet(tmp_path):
    rows = [
        {"problem": "What is 1+1?", "answer": "2", "difficulty": 3},
        {"problem": f"Twice 3? {INSTRUCTION_SUFFIX}", "answer": 6},
    ]
    problems = load_problems(_write_jsonl(tmp_path / "d.jsonl", rows))
    assert problems == [
        Problem(id="0", problem="What is 1+1?", answer="2", source="d", difficulty=3.0),
        Problem(id="1", problem="Twice 3?", answer="6", source="d"),
    ]
    pq.write_table(pa.Table.from_pylist([{"problem": "p", "answer": "a", "id": "x7"}]), tmp_path / "d.parquet")
    assert load_problems(tmp_path / "d.parquet")[0].id == "x7"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"problem": "", "answer": "1"}, "problem", "empty"),
        ({"problem": "q", "answer": ""}, "answer", "empty"),
        ({"problem": "q", "answer": None}, "answer", "missing"),
        ({"problem": 5, "answer": "1"}, "problem", "expected text"),
        ({"problem": "q", "answer": {"x": 1}}, "answer", "expected a string"),
        ({"problem": "q", "answer": []}, "answer", "empty"),
        ({"problem": "q", "answer": "1", "difficulty": "hard"}, "difficulty", "expected a number"),
    ],
)
def test_bad_rows_name_file_row_and_field(tmp_path, row, field, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"problem": "ok", "answer": "1"}, {"problem": "ok2", "answer": "2"}, row])
    with pytest.raises(DataError) as err:
        load_problems(path)
    assert err.value.row == 2 and err.value.field == field
    assert str(path) in str(err.value) and "row 2" in str(err.value) and field in str(err.value)
    assert message in str(err.value)


def test_bad_reference_rows(tmp_path):
    good = {"prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": "1", "style": "rule"},
            "extra_info": {"index": 0}}
    bad = {"prompt": [{"role": "user", "content": "q2"}], "reward_model": {"style": "rule"}, "extra_info": {"index": 1}}
    path = _write_jsonl(tmp_path / "ref.jsonl", [good, bad])
    with pytest.raises(DataError, match=r"row 1, field 'reward_model.ground_truth'"):
        load_problems(path)
    dup = _write_jsonl(tmp_path / "dup.jsonl", [good, good])
    with pytest.raises(DataError, match="duplicate problem id"):
        load_problems(dup)


def test_unknown_layout_and_bad_json(tmp_path):
    with pytest.raises(DataError, match="unknown layout"):
        load_problems(_write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "solution": "s"}]))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "q", "answer": "1"}\n{"problem": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"row 1.*not valid JSON"):
        load_problems(broken)
    with pytest.raises(FileNotFoundError):
        load_problems(tmp_path / "missing.parquet")


def test_hub_id_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"offline.*local parquet or jsonl"):
        load_problems("POLARIS-Project/Polaris-Dataset-53K")


def test_round_trip_through_reference_schema(tmp_path):
    problems = [Problem(id="a", problem="Compute 1+2.", answer="3", source="arith", difficulty=1.0),
                Problem(id="b", problem="Name it.", answer=["x", "y"], source="s")]
    path = write_problems(problems, tmp_path / "out.parquet")
    back = load_problems(path)
    assert [(p.id, p.problem, p.answer, p.difficulty) for p in back] == [
        ("a", "Compute 1+2.", ["3"], 1.0), ("b", "Name it.", ["x", "y"], None)]  # one column, one type
    row = pq.read_table(path).to_pylist()[0]
    assert row["prompt"][0]["content"].endswith(INSTRUCTION_SUFFIX)
    assert build_messages(problems[0]) == [{"role": "user", "content": f"Compute 1+2. {INSTRUCTION_SUFFIX}"}]
