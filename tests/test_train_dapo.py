"""Dynamic sampling and overlong shaping through the real trainer: the tiny model, a deterministic reward."""

from __future__ import annotations

import pytest

from polaris.config import TrainSettings
from polaris.data.problem import Problem
from polaris.io import read_jsonl

N = 2  # rollouts per problem
DYNAMIC = ["train.dynamic_sampling=true", "train.rescue=false", "train.substitution=false"]


def test_dynamic_sampling_refuses_rescue_and_substitution():
    from polaris.config import load_recipe
    from polaris.errors import RecipeError

    with pytest.raises(
        RecipeError, match=r"rescue and substitution are on: set train.rescue: false, train.subst"
    ):
        load_recipe(None, ["train.dynamic_sampling=true"])
    with pytest.raises(
        RecipeError, match=r"substitution is on: set train.substitution: false, or train.dynamic"
    ):
        load_recipe(None, ["train.dynamic_sampling=true", "train.rescue=false"])
    with pytest.raises(RecipeError, match="dynamic_sampling_max_rounds must be >= 1"):
        load_recipe(None, [*DYNAMIC, "train.dynamic_sampling_max_rounds=0"])
    recipe = load_recipe(None, DYNAMIC)
    assert recipe.train.dynamic_sampling and recipe.train.dynamic_sampling_max_rounds == 4
    assert not load_recipe(None).train.dynamic_sampling and load_recipe(None).train.overlong_buffer == 0


def test_overlong_buffer_must_fit_every_stage():
    from polaris.config import load_recipe
    from polaris.errors import RecipeError

    with pytest.raises(
        RecipeError, match=r"train.overlong_buffer 128 must be below stages\[0\].max_response_tokens"
    ):
        load_recipe(None, ["train.overlong_buffer=128"])
    with pytest.raises(RecipeError, match="overlong_buffer must be >= 0"):
        load_recipe(None, ["train.overlong_buffer=-1"])
    with pytest.raises(RecipeError, match="overlong_penalty must be >= 0"):
        load_recipe(None, ["train.overlong_penalty=-0.5"])
    assert load_recipe(None, ["train.overlong_buffer=32"]).train.overlong_buffer == 32


def test_dry_run_shows_both_options(tmp_path):
    from polaris.run.plan import dry_run

    off = dry_run(None, str(tmp_path / "run"))
    assert "dynamic sampling off; overlong shaping off" in off
    on = dry_run(None, str(tmp_path / "run"), overrides=(*DYNAMIC, "train.overlong_buffer=32"))
    assert "dynamic sampling on, up to 4 extra round(s) per step" in on
    assert "overlong shaping the last 32 tokens of each stage's budget, up to -1" in on


def fake_reward(texts, truths):
    """``mix`` problems: the rollouts of a group alternate 1, 0 (informative); ``solved`` ones: always 1."""
    return [float(i % 2) if truth == ["mix"] else 1.0 for i, truth in enumerate(truths)]


def _train(model_dir, tmp_path, problems, monkeypatch, *, steps, **train):
    import trl

    from polaris.train.grpo import PolarisGRPOTrainer
    from polaris.train.stages import StagePaths, StageRun, train_stage

    generated: list[int] = []  # sequences TRL generated in each training call of _generate
    trained: list[
        list[tuple[str, str]]
    ] = []  # per step: (problem id, prompt text) of every sequence handed to TRL
    original, adapter = trl.GRPOTrainer._generate, PolarisGRPOTrainer._generate

    def counting(self, prompts):
        if self.model.training:
            generated.append(len(prompts))
        return original(self, prompts)

    def recording(self, prompts):
        result = adapter(self, prompts)
        if self.model.training:
            rows = zip(self._batch_inputs, prompts, strict=True)
            trained.append([(str(x["problem_id"]), p[-1]["content"]) for x, p in rows])
        return result

    monkeypatch.setattr(trl.GRPOTrainer, "_generate", counting)
    monkeypatch.setattr(PolarisGRPOTrainer, "_generate", recording)
    settings = TrainSettings(
        rollouts=N,
        learning_rate=1e-4,
        save_steps=100,
        rescue=False,
        substitution=False,
        dynamic_sampling=True,
        **train,
    )
    stage = StageRun(
        index=1, steps=steps, temperature=1.0, max_response_tokens=4, learning_rate=1e-4, problems=problems
    )
    paths = StagePaths(
        work=tmp_path / "work",
        model=tmp_path / "model",
        state=tmp_path / "state.json",
        metrics=tmp_path / "metrics.jsonl",
        tensorboard=None,
        difficulty=tmp_path / "difficulty.jsonl",
        decisions=str(tmp_path / "decisions-{rank}.jsonl"),
    )
    train_stage(model_dir, stage, settings, paths, seed=0, reward=fake_reward)
    metrics = [r for r in read_jsonl(paths.metrics) if "recipe/skipped" in r]
    decisions = read_jsonl(tmp_path / "decisions-0.jsonl")
    # what TRL trains on is what the recipe decided: a refilled slot carries its new problem and prompt
    text = {p.id: p.problem for p in problems}
    for record, rows in zip(decisions, trained, strict=True):
        assert [pid for pid, _ in rows] == [g[0] for g in record["groups"] for _ in range(N)]
        assert all(text[pid] in prompt for pid, prompt in rows)
    return metrics, decisions, generated, read_jsonl(paths.difficulty)


def test_every_group_entering_the_update_has_an_advantage(tiny_model_dir, tmp_path, monkeypatch):
    problems = [Problem(f"m{i}", f"Compute {i}+1.", "mix") for i in range(6)]
    problems += [Problem(f"s{i}", f"Compute {i}+2.", "solved") for i in range(6)]
    metrics, decisions, generated, difficulty = _train(
        tiny_model_dir,
        tmp_path,
        problems,
        monkeypatch,
        steps=2,
        batch_prompts=4,
        dynamic_sampling_max_rounds=10,
        overlong_buffer=2,
    )
    assert len(metrics) == len(decisions) == 2
    for record in decisions:
        assert len(record["groups"]) == 4
        assert all(len(set(rewards)) > 1 for _, _, _, rewards in record["groups"])  # no zero-advantage group
        assert record["dynamic"]["missing"] == 0
    for m in metrics:
        assert m["recipe/zero_advantage_fraction"] == 0.0 and m["recipe/dynamic_cap_hit"] == 0.0
        assert m["recipe/informative_after"] == 1.0 and m["recipe/skipped"] == 0.0
        # overlong shaping: TRL's own reward mean is the shaped one, the recipe's stays correctness
        assert m["rollout/reward_final_mean"] == pytest.approx(m["rollout/reward_shaped_mean"])
        assert m["rollout/reward_shaped_mean"] == pytest.approx(1.0 / 2 + m["rollout/overlong_penalty_mean"])
    # generated rollouts add up: TRL's calls, the audit log and the metric agree, step by step
    per_step, calls = [], iter(generated)
    for record, m in zip(decisions, metrics, strict=True):
        rounds = int(m["recipe/dynamic_rounds"])
        per_step.append(sum(next(calls) for _ in range(1 + rounds)))
        assert m["rollout/generated"] == record["dynamic"]["generated"] == per_step[-1]
        assert m["recipe/dynamic_filled"] == record["dynamic"]["filled"]
    assert next(calls, None) is None
    assert sum(per_step) > 2 * 4 * N  # at least one refill happened
    # every sampled group is in the difficulty log, the dropped ones too, with its own accuracy
    assert len(difficulty) == 2
    dropped = set()
    for r, record in zip(difficulty, decisions, strict=True):
        assert all(acc == (0.5 if pid.startswith("m") else 1.0) for pid, acc in r["accuracies"].items())
        dropped |= set(r["accuracies"]) - {pid for pid, *_ in record["groups"]}
    assert any(pid.startswith("s") for pid in dropped)


def test_the_cap_is_reported_when_every_problem_is_solved(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POLARIS_QUIET", "0")
    problems = [Problem(f"s{i}", f"Compute {i}+2.", "solved") for i in range(4)]
    metrics, decisions, generated, _ = _train(
        tiny_model_dir,
        tmp_path,
        problems,
        monkeypatch,
        steps=1,
        batch_prompts=2,
        dynamic_sampling_max_rounds=2,
    )
    (m,) = metrics
    assert m["recipe/dynamic_cap_hit"] == 1.0 and m["recipe/dynamic_rounds"] == 2.0
    assert m["recipe/dynamic_filled"] == 0.0 and m["recipe/zero_advantage_fraction"] == 1.0
    # nothing useful seen: each round asks for a whole batch (2 problems x 2 rollouts)
    assert generated == [4, 4, 4] and m["rollout/generated"] == 12.0
    assert decisions[0]["dynamic"] == {"rounds": 2, "filled": 0, "missing": 2, "generated": 12}
    err = capsys.readouterr().err
    assert (
        "stage 1 step 1: dynamic sampling used its 2 extra round(s) (train.dynamic_sampling_max_rounds)"
        in err
    )
    assert "2 of 2 groups still have all-equal rewards" in err
