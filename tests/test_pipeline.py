"""``polaris run`` end to end on the tiny model with a small budget (the ``tiny_run`` fixture)."""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from polaris.cli import main
from polaris.data.loaders import load_problems
from polaris.io import read_jsonl

pytestmark = pytest.mark.slow  # each test runs the whole tiny pipeline (tiny_run)

STEPS = ["prepare", "warm_start", "eval:base", "profile", "temperature:1", "train:1", "eval:stage-1", "drop:2",
         "temperature:2", "train:2", "eval:stage-2", "report"]


def summary(run):
    return json.loads((run / "summary.json").read_text())


def test_every_step_finishes_and_records_results(tiny_run):
    s = summary(tiny_run)
    for name in STEPS:
        assert s["steps"][name]["status"] == "done", name
        # each step's own time, well inside the session: the model-heavy steps take seconds, none an hour
        assert s["steps"][name]["seconds"] < 3600
        if name in ("warm_start", "train:1", "train:2"):
            assert s["steps"][name]["seconds"] > 1.0
    for stage in ("base", "stage-1", "stage-2"):
        result = s["results"][stage]["arith-test"]
        assert result["k"] == 4 and 0.0 <= result["avg@k"] <= 1.0
        rows = pq.read_table(tiny_run / "eval" / stage / "arith-test.parquet").to_pylist()
        assert len(rows) == 48 * 4
        by_problem = defaultdict(list)
        for r in rows:
            by_problem[r["problem_id"]].append(r["score"])
        assert abs(sum(sum(v) / 4 for v in by_problem.values()) / 48 - result["avg@k"]) < 1e-9
    for path in ["models/base/config.json", "models/stage-2/model.safetensors", "data/arith-test.parquet",
                 "profile/records.jsonl", "temperature/stage-1.json", "data/stage-2.ids.json"]:
        assert (tiny_run / path).exists(), path


def test_harder_levels_are_harder_for_the_warm_started_model(tiny_run):
    level = {p.id: p.difficulty for p in load_problems(tiny_run / "data" / "arith-test.parquet")}
    scores = defaultdict(list)
    for r in pq.read_table(tiny_run / "eval" / "base" / "arith-test.parquet").to_pylist():
        scores[level[r["problem_id"]]].append(r["score"])

    def acc(levels):
        values = [x for lv in levels for x in scores[lv]]
        return sum(values) / len(values)

    assert acc([1.0, 2.0]) > acc([3.0, 4.0]) > acc([5.0, 6.0])


def test_profile_filter_and_drop(tiny_run):
    s = summary(tiny_run)
    records = read_jsonl(tiny_run / "profile" / "records.jsonl")
    assert len(records) == 96 and all(r["k"] == 8 for r in records)
    hist = [0] * 9
    for r in records:
        hist[r["correct"]] += 1
    assert s["steps"]["profile"]["result"]["histogram"] == hist
    stage1 = json.loads((tiny_run / "data" / "stage-1.ids.json").read_text())
    assert sorted(stage1) == sorted(r["problem_id"] for r in records if r["correct"] < 8)  # solved ones dropped
    stage2 = json.loads((tiny_run / "data" / "stage-2.ids.json").read_text())
    assert set(stage2) <= set(stage1)
    assert len(stage1) - len(stage2) == s["steps"]["drop:2"]["result"]["dropped"]


def test_temperatures_rise_or_hold(tiny_run):
    t1 = json.loads((tiny_run / "temperature" / "stage-1.json").read_text())
    t2 = json.loads((tiny_run / "temperature" / "stage-2.json").read_text())
    assert t1["rule"] == "exploration-start" and t1["chosen"] in [0.8, 1.0, 1.2]
    assert t2["rule"] == "match-diversity" and t2["chosen"] >= t1["chosen"]
    assert t2["target_diversity"] == t1["diversity_at_chosen"]


def test_training_changes_parameters_and_logs_every_metric(tiny_run):
    base = load_file(tiny_run / "models" / "base" / "model.safetensors")
    stage1 = load_file(tiny_run / "models" / "stage-1" / "model.safetensors")
    assert any(not torch.equal(base[k], stage1[k]) for k in base)
    records = read_jsonl(tiny_run / "logs" / "metrics.jsonl")
    assert [(r["stage"], r["step"]) for r in records] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    needed = ["rollout/reward_mean", "rollout/response_length", "rollout/truncation_rate",
              "recipe/informative_before", "recipe/informative_after", "recipe/rescued", "recipe/substituted",
              "recipe/skipped", "recipe/problems", "recipe/temperature", "train/loss", "train/grad_norm", "train/lr"]
    update = ["train/clip_fraction", "train/entropy"]  # measured in the loss, which a skipped batch never runs
    for r in records:
        assert not [k for k in needed if k not in r]
        assert r["recipe/skipped"] in (0.0, 1.0)
        if r["recipe/skipped"] == 0.0:
            assert not [k for k in update if k not in r]
        else:
            assert r["train/grad_norm"] == 0.0  # no parameter received a gradient
    assert any(r["recipe/skipped"] == 0.0 for r in records)
    t1 = json.loads((tiny_run / "temperature" / "stage-1.json").read_text())["chosen"]
    assert all(r["recipe/temperature"] == t1 for r in records if r["stage"] == 1)
    assert list((tiny_run / "logs" / "tb" / "stage-1").glob("events.out.tfevents.*"))
    logged = read_jsonl(tiny_run / "logs" / "difficulty.jsonl")
    assert {(r["stage"], r["step"]) for r in logged} == {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)}


def test_rerun_skips_finished_and_continues_unfinished(tiny_run):
    before = summary(tiny_run)
    # pretend the last evaluation never finished: only it runs again
    s = summary(tiny_run)
    s["steps"]["eval:stage-2"]["status"] = "running"
    s["steps"]["report"]["status"] = "failed"
    (tiny_run / "summary.json").write_text(json.dumps(s))
    recipe = tiny_run.parent / "tiny-test.yaml"
    assert main(["run", str(recipe), "--run-dir", str(tiny_run)]) == 0
    after = summary(tiny_run)
    for name in STEPS:
        if name not in ("eval:stage-2", "report"):
            assert after["steps"][name] == before["steps"][name], name
    assert after["steps"]["eval:stage-2"]["status"] == "done"
    assert after["results"]["stage-2"]["arith-test"]["avg@k"] == before["results"]["stage-2"]["arith-test"]["avg@k"]


def test_other_recipe_refused(tiny_run, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text((tiny_run.parent / "tiny-test.yaml").read_text().replace("seed: 0\nmodel", "seed: 1\nmodel"))
    assert main(["run", str(other), "--run-dir", str(tiny_run)]) == 2
    assert "was started with a different recipe" in capsys.readouterr().err


def test_profile_temperature_and_train_commands_alone(tiny_run, tmp_path):
    """The single steps on a recipe's defaults plus overrides, each picking up what the last wrote."""
    from polaris.run.layout import RunLayout

    model = str(tiny_run / "models" / "base")
    data = str(tiny_run / "data" / "arith-train.parquet")
    out = tmp_path / "alone"
    common = ["--data", data, "--out", str(out), "--set", "data.limit=12", "--set", "stages[0].max_response_tokens=80"]
    assert main(["profile", model, *common, "--set", "profile.k=4"]) == 0
    records = read_jsonl(out / "profile" / "records.jsonl")
    assert len(records) == 12 and all(r["k"] == 4 and 0 <= r["correct"] <= 4 for r in records)
    kept = json.loads((out / "data" / "stage-1.ids.json").read_text())
    assert kept == [r["problem_id"] for r in records if r["correct"] < 4]
    assert main(["temperature", model, *common, "--set", "temperature_search.grid=[0.6, 1.0]",
                 "--set", "temperature_search.problems=6", "--set", "temperature_search.n=4"]) == 0
    result = json.loads((out / "temperature" / "stage-1.json").read_text())
    assert result["rule"] == "exploration-start" and result["chosen"] in (0.6, 1.0)
    assert [p["temperature"] for p in result["points"]] == [0.6, 1.0]
    assert result["problems"] == min(6, len(kept))
    assert main(["train", model, *common, "--set", "stages[0].steps=1", "--set", "train.batch_prompts=2",
                 "--set", "train.rollouts=2"]) == 0
    [metrics] = RunLayout(out).read_metrics()
    assert metrics["stage"] == 1 and metrics["step"] == 1 and metrics["recipe/temperature"] == result["chosen"]
    assert metrics["recipe/problems"] == len(kept)  # trained on what the profile kept
    assert (out / "models" / "stage-1" / "model.safetensors").exists()
