"""Difficulty profile, pass-rate filter, the per-step log and the between-stage drop rule (docs/method.md § Difficulty-aware data)."""

import json

import pytest

from polaris.recipe import (
    DifficultyLog,
    DifficultyRecord,
    Group,
    Rollout,
    filter_by_pass_rate,
    pass_histogram,
    problems_to_drop,
    record_from_group,
)


def test_pass_histogram_small_hand_example():
    # counts: 0 twice, 3 once, 7 twice, 8 once
    assert pass_histogram([0, 0, 3, 8, 7, 7], 8) == [2, 0, 0, 1, 0, 0, 0, 2, 1]
    assert pass_histogram([], 2) == [0, 0, 0]


@pytest.mark.parametrize("bad", [-1, 9])
def test_pass_histogram_rejects_counts_outside_range(bad):
    with pytest.raises(ValueError, match=str(bad)):
        pass_histogram([1, bad], 8)


def test_pass_histogram_rejects_bad_k():
    with pytest.raises(ValueError):
        pass_histogram([0], 0)


def _records(counts, k=8):
    return [DifficultyRecord(f"p{c}", c, k, 100.0) for c in counts]


def test_filter_default_drops_only_solved_and_keeps_unsolved():
    kept = filter_by_pass_rate(_records(range(9)))
    assert [r.correct for r in kept] == [0, 1, 2, 3, 4, 5, 6, 7]


def test_filter_custom_bounds_inclusive_and_keeps_order():
    recs = _records([4, 1, 5, 0, 3])
    assert [r.correct for r in filter_by_pass_rate(recs, min_correct=1, max_correct=4)] == [4, 1, 3]
    with pytest.raises(ValueError):
        filter_by_pass_rate(recs, min_correct=-1)


def test_filter_default_upper_bound_uses_each_records_k():
    recs = [DifficultyRecord("a", 4, 4, 1.0), DifficultyRecord("b", 4, 8, 1.0)]
    assert [r.problem_id for r in filter_by_pass_rate(recs)] == ["b"]


def test_record_validation_and_round_trip():
    with pytest.raises(ValueError, match="correct"):
        DifficultyRecord("x", 9, 8, 1.0)
    with pytest.raises(ValueError, match="k"):
        DifficultyRecord("x", 0, 0, 1.0)
    rec = DifficultyRecord("x", 3, 8, 12.5)
    assert rec.pass_rate == 0.375
    assert DifficultyRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    with pytest.raises(ValueError, match="mean_length"):
        DifficultyRecord.from_dict({"problem_id": "x", "correct": 1, "k": 8})


def test_record_from_group_by_hand():
    rollouts = [Rollout("t", tuple(range(n)), r) for n, r in [(2, 1.0), (4, 0.0), (6, 1.0), (8, 0.0)]]
    assert record_from_group(Group("q", "7", rollouts)) == DifficultyRecord("q", 2, 4, 5.0)


def test_drop_rule_boundary_and_never_solved():
    acc = {"at": 0.9, "above": 0.95, "never": 0.0, "mid": 0.5, "always": 1.0}
    assert problems_to_drop(acc) == {"above", "always"}
    # whatever the threshold, a problem never solved is kept
    assert problems_to_drop(acc, threshold=-1.0) == {"at", "above", "mid", "always"}
    assert problems_to_drop(acc, threshold=0.5) == {"at", "above", "always"}


def test_log_records_and_averages(tmp_path):
    log = DifficultyLog(tmp_path / "sub" / "difficulty.jsonl")
    assert log.entries() == [] and log.steps() == [] and log.mean_accuracy() == {}
    log.record(1, 0, {"a": 1.0, "b": 0.0})
    log.record(1, 1, {"a": 0.5})
    log.record(2, 0, {"a": 0.0, "c": 0.25})
    assert log.steps() == [(1, 0), (1, 1), (2, 0)]
    assert log.steps(stage=2) == [(2, 0)]
    assert log.entries(stage=1) == [(1, 0, "a", 1.0), (1, 0, "b", 0.0), (1, 1, "a", 0.5)]
    assert log.mean_accuracy(stage=1) == {"a": 0.75, "b": 0.0}
    assert log.mean_accuracy() == {"a": 0.5, "b": 0.0, "c": 0.25}
    # one line per (stage, step)
    assert len(log.path.read_text().splitlines()) == 3


def test_log_rerecorded_step_replaces_its_entries(tmp_path):
    log = DifficultyLog(tmp_path / "d.jsonl")
    log.record(1, 0, {"a": 0.0})
    log.record(1, 1, {"a": 0.5, "b": 0.5})
    log.record(1, 1, {"a": 1.0, "c": 0.25})  # a resumed run repeats step 1
    assert log.steps() == [(1, 0), (1, 1)]
    assert log.entries() == [(1, 0, "a", 0.0), (1, 1, "a", 1.0), (1, 1, "c", 0.25)]
    assert log.mean_accuracy() == {"a": 0.5, "c": 0.25}


def test_log_survives_torn_last_line_and_appends_cleanly(tmp_path):
    log = DifficultyLog(tmp_path / "d.jsonl")
    log.record(1, 0, {"a": 1.0})
    with open(log.path, "ab") as f:
        f.write(b'{"stage": 1, "step": 1, "accur')  # killed mid-write
    assert log.entries() == [(1, 0, "a", 1.0)]
    log.record(1, 1, {"a": 0.0})
    assert log.entries() == [(1, 0, "a", 1.0), (1, 1, "a", 0.0)]
    # the fragment was cut off, so every line is whole JSON again
    assert [json.loads(line)["step"] for line in log.path.read_text().splitlines()] == [0, 1]


def test_log_torn_first_line(tmp_path):
    log = DifficultyLog(tmp_path / "d.jsonl")
    log.path.write_bytes(b'{"stage": 1, "st')
    assert log.entries() == []
    log.record(1, 0, {"a": 0.5})
    assert log.path.read_text() == '{"stage": 1, "step": 0, "accuracies": {"a": 0.5}}\n'


def test_log_corrupt_middle_line_names_file_and_line(tmp_path):
    log = DifficultyLog(tmp_path / "d.jsonl")
    log.record(1, 0, {"a": 1.0})
    with open(log.path, "ab") as f:
        f.write(b"garbage\n")
    log.record(1, 1, {"a": 1.0})
    with pytest.raises(ValueError, match=r"d\.jsonl, line 2"):
        log.entries()


def test_log_rejects_bad_input(tmp_path):
    log = DifficultyLog(tmp_path / "d.jsonl")
    with pytest.raises(TypeError):
        log.record(1, 0, {3: 1.0})
    with pytest.raises(ValueError, match="nan"):
        log.record(1, 0, {"a": float("nan")})
    assert not log.path.exists()
