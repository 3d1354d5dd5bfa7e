"""``polaris report``: a synthetic run directory, written by hand in the pipeline's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polaris.run.layout import dedupe_metrics
from polaris.run.report import stage_offsets, training_series, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _jsonl(path: Path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    # k = 4; profiled pass counts: p0 0, p1 0, p2 1, p3 2, p4 4 (solved, filtered out).
    _jsonl(run / "profile" / "records.jsonl", [
        {"problem_id": pid, "correct": c, "k": 4, "mean_length": 10.0}
        for pid, c in [("p0", 0), ("p1", 0), ("p2", 1), ("p3", 2), ("p4", 4)]
    ])
    _write(run / "data" / "stage-1.ids.json", ["p0", "p1", "p2", "p3"])
    _write(run / "data" / "stage-2.ids.json", ["p0", "p1", "p2"])  # p3 dropped after stage 1
    _write(run / "temperature" / "stage-1.json", {
        "stage": 1, "rule": "exploration-start", "chosen": 0.8, "target_diversity": None,
        "points": [{"temperature": 0.6, "accuracy": 0.5, "diversity": 0.3},
                   {"temperature": 0.8, "accuracy": 0.5, "diversity": 0.4},
                   {"temperature": 1.0, "accuracy": 0.3, "diversity": 0.5}],
    })
    _write(run / "temperature" / "stage-2.json", {
        "stage": 2, "rule": "match-diversity", "chosen": 0.85, "target_diversity": 0.4,
        "points": [{"temperature": 0.8, "accuracy": 0.6, "diversity": 0.35},
                   {"temperature": 0.85, "accuracy": 0.6, "diversity": 0.41}],
    })
    _jsonl(run / "logs" / "metrics.jsonl", [
        {"stage": 1, "step": 1, "rollout/reward_mean": 0.2, "train/loss": 0.5, "recipe/informative_before": 0.5},
        {"stage": 1, "step": 2, "rollout/reward_mean": 0.4, "train/loss": 0.4},
        # a resumed run repeats step 2: the last record wins
        {"stage": 1, "step": 2, "rollout/reward_mean": 0.6, "train/loss": 0.3},
        {"stage": 2, "step": 1, "rollout/reward_mean": 0.5, "train/loss": 0.2},
        {"stage": 2, "step": 2, "rollout/reward_mean": 0.7, "train/loss": 0.1},
    ])
    _write(run / "summary.json", {
        "recipe": "synthetic",
        "steps": {
            "prepare": {"status": "done", "seconds": 1.0},
            "profile": {"status": "done", "seconds": 2.0, "result": {
                "k": 4, "histogram": [2, 1, 1, 0, 1], "histogram_kept": [2, 1, 1, 0, 0], "problems": 5, "kept": 4}},
            "temperature:1": {"status": "done", "seconds": 1.0, "result": {"temperature": 0.8}},
            "train:1": {"status": "done", "seconds": 3.0},
            "drop:2": {"status": "done", "seconds": 0.1, "result": {"dropped": 1, "remaining": 3, "logged": 4}},
            "temperature:2": {"status": "done", "seconds": 1.0},
            "train:2": {"status": "done", "seconds": 3.0},
        },
        "results": {
            "stage-2": {"arith-test": {"avg@k": 0.625, "k": 4}},
            "base": {"arith-test": {"avg@k": 0.25, "k": 4}, "aime24": {"avg@k": 0.1, "k": 32}},
            "stage-1": {"arith-test": {"avg@k": 0.5, "k": 4}},
        },
    })
    return run


def test_report_and_every_plot(run_dir: Path):
    path = write_report(run_dir)
    assert path == run_dir / "report.md"
    text = path.read_text(encoding="utf-8")
    pngs = ["difficulty.png", "temperature-stage-1.png", "temperature-stage-2.png", "training.png",
            "evaluation.png"]
    for name in pngs:
        data = (run_dir / "report" / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert f"(report/{name})" in text
    # evaluation: base, then stages by number; percent with one decimal; a missing cell is a dash
    assert "| benchmark | base | stage-1 | stage-2 |" in text
    assert "| arith-test (avg@4) | 25.0 | 50.0 | 62.5 |" in text
    assert "| aime24 (avg@32) | 10.0 | — | — |" in text
    # difficulty: before/after the filter from the summary, stage 2 from the ids and the records
    assert "| profiled | 2 | 1 | 1 | 0 | 1 | 5 |" in text
    assert "| stage 1 (after filter) | 2 | 1 | 1 | 0 | 0 | 4 |" in text
    assert "| stage 2 (after dropping) | 2 | 1 | 0 | 0 | 0 | 3 |" in text
    assert "| 2 | 1 | 3 |" in text  # drop:2 dropped 1, 3 remaining
    # temperature: chosen marked, target diversity in percent
    assert "chosen temperature **0.8**" in text
    assert "| 0.8 | 50.0 | 40.0 | ← |" in text
    assert "target diversity 40.0" in text
    # training means per stage (stage 1's step 2 counted once, its last value 0.6)
    assert "| `rollout/reward_mean` | 0.4 | 0.6 |" in text
    assert "| `recipe/informative_before` | 0.5 |  |" in text


def test_training_steps_continue_across_stages():
    metrics = dedupe_metrics([
        {"stage": 2, "step": 1, "train/loss": 3.0},
        {"stage": 1, "step": 1, "train/loss": 1.0},
        {"stage": 1, "step": 5, "train/loss": 2.0},
        {"stage": 1, "step": 5, "train/loss": 2.5},
        {"stage": "x", "train/loss": 9.0},  # no usable stage/step: ignored
    ])
    assert [(r["stage"], r["step"]) for r in metrics] == [(1, 1), (1, 5), (2, 1)]
    assert stage_offsets(metrics) == {1: 0, 2: 5}
    assert training_series(metrics) == {"train/loss": {1: [(1, 1.0), (5, 2.5)], 2: [(6, 3.0)]}}


def test_a_run_that_stopped_early_gives_notes(tmp_path: Path):
    run = tmp_path / "early"
    _write(run / "summary.json", {"recipe": "early", "steps": {"prepare": {"status": "done", "seconds": 1.0},
                                                                "warm_start": {"status": "failed"}},
                                  "results": {}})
    text = write_report(run).read_text(encoding="utf-8")
    assert "| warm_start | failed |" in text
    for note in ("No difficulty profile", "No temperature search", "No training metrics", "No evaluation results"):
        assert note in text
    assert list((run / "report").iterdir()) == []


def test_an_empty_directory_and_a_damaged_file(tmp_path: Path):
    (tmp_path / "temperature").mkdir()
    (tmp_path / "temperature" / "stage-1.json").write_text("{not json", encoding="utf-8")
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert "could not be read" in text and "No temperature search" in text


def test_report_help(capsys):
    from polaris.cli import main

    with pytest.raises(SystemExit) as e:
        main(["report", "--help"])
    assert e.value.code == 0
    assert "RUN_DIR" in capsys.readouterr().out.upper()
