"""Pure helpers of the stage runner: metric names, checkpoint completeness, log truncation."""

from __future__ import annotations

import json

import pytest

from polaris.io import append_jsonl, read_jsonl
from polaris.train.grpo import STATE_FILE
from polaris.train.stages import complete_checkpoint, namespace_metrics, truncate_metrics


def test_namespace_metrics():
    logs = {"loss": 0.5, "grad_norm": 1.5, "learning_rate": 1e-4, "entropy": 0.2, "clip_ratio/region_mean": 0.01,
            "recipe/rescued": 2.0, "rollout/reward_mean": 0.4, "completions/mean_length": 40.0, "epoch": 0.3,
            "note": "text", "flag": True}
    assert namespace_metrics(logs) == {
        "train/loss": 0.5, "train/grad_norm": 1.5, "train/lr": 1e-4, "train/entropy": 0.2,
        "train/clip_fraction": 0.01, "recipe/rescued": 2.0, "rollout/reward_mean": 0.4,
        "trl/completions/mean_length": 40.0,
    }


def test_complete_checkpoint_skips_and_removes_torn_saves(tmp_path):
    import torch
    from safetensors.torch import save_file

    assert complete_checkpoint(tmp_path / "missing") is None
    for step, complete in [(2, True), (4, True), (6, False)]:
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        save_file({"w": torch.zeros(3)}, ckpt / "model.safetensors")
        if complete:
            (ckpt / STATE_FILE).write_text("{}")
    assert complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert not (tmp_path / "checkpoint-6").exists()  # the torn save is gone
    assert (tmp_path / "checkpoint-2").exists()


def test_truncate_metrics_drops_only_that_stage_after_the_step(tmp_path):
    path = tmp_path / "m.jsonl"
    for stage, step in [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)]:
        append_jsonl(path, {"stage": stage, "step": step})
    truncate_metrics(path, stage=2, after_step=1)
    assert [(r["stage"], r["step"]) for r in read_jsonl(path)] == [(1, 1), (1, 2), (2, 1)]
    before = path.read_text()
    truncate_metrics(path, stage=2, after_step=5)  # nothing to cut: file untouched
    assert path.read_text() == before
    assert json.loads(before.splitlines()[0]) == {"stage": 1, "step": 1}


def test_read_jsonl_ignores_only_a_torn_last_line(tmp_path):
    import pytest

    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)


def _problems(ids):
    from polaris.data.problem import Problem

    return [Problem(id=i, problem=f"q {i}", answer="1") for i in ids]


def test_read_profile_returns_a_record_per_problem_in_problem_order(tmp_path):
    from polaris.run.steps import read_saved_profile as read_profile

    path = tmp_path / "records.jsonl"
    for pid, correct in [("b", 3), ("a", 8), ("extra", 0)]:  # extra problems in the file are ignored
        append_jsonl(path, {"problem_id": pid, "correct": correct, "k": 8, "mean_length": 10.0})
    records = read_profile(path, _problems(["a", "b"]), k=8)
    assert [(r.problem_id, r.correct) for r in records] == [("a", 8), ("b", 3)]


def test_read_profile_names_what_is_wrong(tmp_path):
    import pytest

    from polaris.errors import RecipeError
    from polaris.run.steps import read_saved_profile as read_profile

    with pytest.raises(RecipeError, match="not found"):
        read_profile(tmp_path / "missing.jsonl", _problems(["a"]), k=8)
    path = tmp_path / "records.jsonl"
    append_jsonl(path, {"problem_id": "a", "correct": 3, "k": 8, "mean_length": 10.0})
    with pytest.raises(RecipeError, match=r"no record for 1 training problem\(s\), e\.g\. 'b'"):
        read_profile(path, _problems(["a", "b"]), k=8)
    with pytest.raises(RecipeError, match=r"line 1: problem 'a' was profiled with k=8, the recipe's profile.k is 4"):
        read_profile(path, _problems(["a"]), k=4)
    append_jsonl(path, {"problem_id": "b", "correct": 9, "k": 8, "mean_length": 1.0})
    with pytest.raises(RecipeError, match=r"records.jsonl line 2: .*correct must be in 0..8"):
        read_profile(path, _problems(["a", "b"]), k=8)


def test_prompts_past_max_prompt_tokens_are_left_out_and_counted(tiny_model_dir):
    from transformers import AutoTokenizer

    from polaris.data.problem import Problem, build_messages
    from polaris.generation import chat_prompts
    from polaris.train.stages import fit_prompts

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    problems = [Problem("short", "Compute 1+2.", "3"), Problem("long", "Compute " + "+".join(["1"] * 40) + ".", "40")]
    lengths = [len(ids) for ids in chat_prompts(tokenizer, [build_messages(p) for p in problems])]
    assert lengths[0] < lengths[1]
    assert fit_prompts(problems, tokenizer, None) == (problems, 0)
    assert fit_prompts(problems, tokenizer, lengths[1]) == (problems, 0)  # a prompt of exactly the limit fits
    kept, skipped = fit_prompts(problems, tokenizer, lengths[1] - 1)
    assert [p.id for p in kept] == ["short"] and skipped == 1
    assert fit_prompts(problems, tokenizer, lengths[0] - 1) == ([], 2)


def test_a_training_step_reads_as_one_short_line():
    from polaris.train.stages import step_line

    logs = {"loss": 0.01, "reward": 0.4375, "rollout/reward_mean": 0.25, "recipe/informative_before": 0.5,
            "recipe/informative_after": 1.0, "recipe/rescued": 2.0, "recipe/substituted": 4.0, "recipe/skipped": 0.0,
            "rollout/response_length": 50.0, "rollout/generated": 128.0, "step_time": 3.2}
    # 50 tokens x 128 rollouts / 3.2 s = 2,000 tokens/s
    assert step_line(logs) == "reward 0.44, acc 0.25, informative 50%->100%, rescued 2 substituted 4, 2,000 tok/s"
    assert step_line({"loss": 0.0, "recipe/skipped": 1.0, "recipe/informative_before": 0.25}) == (
        "informative 25%->25%, skipped")


def test_stage_progress_replaces_trls_metric_dicts(monkeypatch, capsys):
    from types import SimpleNamespace

    from polaris.train.stages import StageProgress

    monkeypatch.setenv("POLARIS_QUIET", "0")
    progress = StageProgress(2)
    state = SimpleNamespace(is_world_process_zero=True, max_steps=3, global_step=0)
    progress.on_train_begin(None, state, None)
    for step in (1, 2, 3):
        state.global_step = step
        progress.on_log(None, state, None, logs={"loss": 0.1, "reward": 0.5, "step_time": 1.0})
        progress.on_step_end(None, state, None)
    assert progress.bar.n == 3
    progress.on_train_end(None, state, None)
    err = capsys.readouterr().err
    assert "stage 2" in err and "3/3" in err and "reward 0.50" in err and "{'loss'" not in err


def test_a_batch_split_planned_for_another_process_count_is_refused(tiny_model_dir, tmp_path):
    from polaris.config import TrainSettings, batch_split
    from polaris.data.problem import Problem
    from polaris.errors import RunError
    from polaris.run.layout import RunLayout
    from polaris.train.stages import StageRun, train_stage

    settings = TrainSettings(batch_prompts=4, rollouts=2)
    stage = StageRun(index=1, steps=1, temperature=1.0, max_response_tokens=4, learning_rate=1e-3,
                     problems=[Problem("p0", "Compute 1+1.", "2")], batch=batch_split(settings, 2))
    with pytest.raises(RunError, match=r"over 2 process\(es\) but 1 are running; launch with --num_processes 2"):
        train_stage(tiny_model_dir, stage, settings, RunLayout(tmp_path).stage_paths(1), seed=0)
