"""Validation during training (polaris.validation) and which models a run evaluates when (the plan)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from polaris.config import EvalSettings, RecipeConfig, StageSettings, TrainSettings, ValidationSettings
from polaris.io import read_jsonl
from polaris.run.layout import RunLayout
from polaris.run.plan import benchmark_k, build_plan
from polaris.run.steps import Context, validation_callbacks
from polaris.validation import ValidationCallback, shard, validation_metrics

REPO = Path(__file__).resolve().parents[1]


def context(tmp_path, train: TrainSettings, temperature=1.45, val=1.4, length=48128) -> Context:
    stages = [StageSettings(), StageSettings(steps=5, max_response_tokens=length, temperature=temperature,
                                             val_temperature=val)]
    recipe = RecipeConfig(train=train, stages=stages)
    return Context(build_plan(recipe), RunLayout(tmp_path / "run"))


def test_off_by_default(tmp_path):
    ctx = context(tmp_path, TrainSettings())
    assert validation_callbacks(ctx, ctx.plan.stage(2), 1.45) == []


def test_callback_takes_the_stage_val_temperature_and_length(tmp_path):
    bench = write_problems(tmp_path / "aime-like.jsonl", 3)
    train = TrainSettings(validation=ValidationSettings(every_steps=10, benchmark=str(bench), k=8))
    ctx = context(tmp_path, train)
    [cb] = validation_callbacks(ctx, ctx.plan.stage(2), 1.45)
    e = cb.eval_settings
    assert (e.k, e.temperature, e.top_p, e.top_k, e.max_new_tokens) == (8, 1.4, 1.0, 0, 48128)
    assert cb.stage == 2 and cb.metrics_path == tmp_path / "run" / "logs" / "metrics.jsonl"
    assert cb.name == "aime-like" and len(cb.problems) == 3  # resolved before training starts
    # no val_temperature: the stage's rollout temperature (here a searched one)
    train = TrainSettings(validation=ValidationSettings(every_steps=1, max_new_tokens=64, benchmark=str(bench)))
    ctx = context(tmp_path, train, temperature="search", val=None)
    [cb] = validation_callbacks(ctx, ctx.plan.stage(2), 1.25)
    assert (cb.eval_settings.temperature, cb.eval_settings.max_new_tokens) == (1.25, 64)


def test_shard_pads_to_equal_shares():
    items = ["a", "b", "c", "d", "e"]
    assert shard(items, 0, 2) == (["a", "c", "e"], 3)
    assert shard(items, 1, 2) == (["b", "d", "b"], 2)
    assert shard(items, 2, 3) == (["c", "c"], 1)
    assert shard(["a"], 1, 2) == (["a"], 0)  # an empty share still makes the same calls
    assert shard(items, 0, 1) == (items, 5)


def test_metric_names():
    summary = {"k": 8, "avg@k": 0.25, "mean_length": 100.0, "truncated": 0.5}
    assert validation_metrics("aime24", summary) == {
        "eval/aime24/avg@8": 0.25, "eval/aime24/mean_length": 100.0, "eval/aime24/truncated": 0.5}


def test_paper_k_for_registered_names():
    recipe = RecipeConfig(eval=EvalSettings(k=6))
    assert [benchmark_k(b, recipe) for b in ("aime24", "aime25", "amc23", "minerva", "olympiad", "mine")] == [
        32, 32, 8, 4, 4, 6]
    recipe.eval.paper_k = False
    assert benchmark_k("aime24", recipe) == 6


def write_problems(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"problem": f"Compute {i}+1.", "answer": str(i + 1)}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


def state(step: int):
    return SimpleNamespace(global_step=step, is_world_process_zero=True)


def test_callback_writes_eval_records_every_n_steps(tmp_path, monkeypatch):
    """The plumbing, with the evaluation replaced by a fixed summary."""
    import polaris.evaluate

    calls = []

    def fake(backend, problems, settings, *, seed, desc=None, **kwargs):
        calls.append((len(problems), settings.k, settings.temperature, seed))
        return [], {"k": settings.k, "avg@k": 0.375, "mean_length": 12.0, "truncated": 0.0}

    monkeypatch.setattr(polaris.evaluate, "evaluate_with_backend", fake)
    cb = ValidationCallback(ValidationSettings(every_steps=2, k=4), stage=1, temperature=0.9, max_new_tokens=16,
                            benchmark="val", problems=["p1", "p2", "p3"], metrics_path=tmp_path / "logs" / "m.jsonl",
                            tb_dir=tmp_path / "logs" / "tb" / "stage-1", seed=7)
    cb.on_train_begin(None, state(0), None)
    for step in (1, 2, 3, 4):
        cb.on_step_end(None, state(step), None, model=None, processing_class=None)
    cb.on_train_end(None, state(4), None)
    assert calls == [(3, 4, 0.9, 9), (3, 4, 0.9, 11)]
    records = read_jsonl(tmp_path / "logs" / "m.jsonl")
    assert records == [
        {"stage": 1, "step": s, "eval/val/avg@4": 0.375, "eval/val/mean_length": 12.0, "eval/val/truncated": 0.0}
        for s in (2, 4)]
    assert any((tmp_path / "logs" / "tb" / "stage-1").iterdir())


def test_callback_on_a_real_tiny_model(tmp_path):
    """One validation through generate and the grader on an (untrained) tiny model."""
    from polaris.data import arith, build_messages
    from polaris.models.tiny import build_model, build_tokenizer, tokenizer_corpus

    sample = arith.generate(random.Random(0), 200, [1, 2])
    tok = build_tokenizer(tokenizer_corpus([build_messages(p.question) for p in sample], [p.solution for p in sample]))
    model = build_model(tok)
    from polaris.data.loaders import load_problems

    problems = load_problems(write_problems(tmp_path / "tiny-val.jsonl", 3), limit=2)
    cb = ValidationCallback(ValidationSettings(every_steps=1, k=2), stage=3, temperature=1.0, max_new_tokens=6,
                            benchmark="tiny-val", problems=problems, metrics_path=tmp_path / "logs" / "metrics.jsonl",
                            tb_dir=None, seed=0)
    cb.on_step_end(None, state(1), None, model=model, processing_class=tok)
    [record] = read_jsonl(tmp_path / "logs" / "metrics.jsonl")
    assert record["stage"] == 3 and record["step"] == 1
    assert 0.0 <= record["eval/tiny-val/avg@2"] <= 1.0 and 1 <= record["eval/tiny-val/mean_length"] <= 6
    assert model.training  # generation restored the training mode


@pytest.mark.parametrize(("base", "expected"), [(False, ("stage-1", "stage-2")),
                                                (True, ("base", "stage-1", "stage-2"))])
def test_real_models_are_evaluated_after_the_last_stage(base, expected):
    recipe = RecipeConfig(stages=[StageSettings(), StageSettings()])
    recipe.model.path = "Qwen/Qwen3-4B"
    recipe.eval.evaluate_base = base
    plan = build_plan(recipe)
    assert plan.eval.models == expected and not plan.eval.after_each_stage


def test_builtin_model_is_evaluated_after_each_stage_and_before_the_first():
    plan = build_plan(RecipeConfig(stages=[StageSettings(), StageSettings()]))
    assert plan.eval.models == ("base", "stage-1", "stage-2") and plan.eval.after_each_stage
