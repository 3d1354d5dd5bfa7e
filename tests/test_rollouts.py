"""The reward a recipe chooses, the profile's samples and counts, and the checks that stop a run that
cannot learn — with a scripted backend, so every expectation is computed by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from polaris.config import load_recipe
from polaris.data.problem import Problem
from polaris.errors import RecipeError
from polaris.generation import Completion
from polaris.reward.custom import make_reward
from polaris.rollouts import profile_difficulty, search_temperatures

THINK = "<think>\nwork\n</think>\n"


class ScriptedTokenizer:
    def apply_chat_template(self, messages, **kwargs):
        return messages[0]["content"]

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


class ScriptedBackend:
    """Answers each problem's prompt with the texts scripted for it (repeated up to n)."""

    name = "scripted"
    tokenizer = ScriptedTokenizer()

    def __init__(self, script: dict[str, list[str]], problems: list[Problem]):
        from polaris.data.problem import prompt_text

        self.texts = {prompt_text(p.problem): script[p.id] for p in problems}

    def close(self):
        pass

    def generate(self, prompt_ids, params, *, batch_size, batch_tokens=None, desc=None):
        out = []
        for ids in prompt_ids:
            texts = self.texts["".join(map(chr, ids))]
            out.append([Completion(t, tuple(range(len(t.split()))), truncated=t.endswith("...")) for t in
                        (texts * params.n)[: params.n]])
        return out


def problems(n: int) -> list[Problem]:
    return [Problem(f"p{i}", f"What is {i} + 1?", str(i + 1)) for i in range(n)]


def test_profile_keeps_samples_and_counts_what_responses_contain():
    ps = problems(2)
    script = {"p0": [THINK + "\\boxed{1}", THINK + "\\boxed{7}", "no answer..."],  # 1 right of 3
              "p1": ["\\boxed{2}", "\\boxed{2}", "\\boxed{2}"]}  # right answers, never closing </think>
    backend = ScriptedBackend(script, ps)
    result = profile_difficulty(backend, ps, k=3, temperature=1.0, max_new_tokens=8,
                                reward=make_reward(require_think=True), samples=2)
    assert [(r.problem_id, r.correct, r.k) for r in result.records] == [("p0", 1, 3), ("p1", 0, 3)]
    assert result.counts.to_dict() == {"responses": 6, "think_closed": 2, "boxed": 5, "truncated": 1, "correct": 1}
    assert [(s["problem_id"], s["sample"], s["reward"]) for s in result.samples] == [
        ("p0", 0, 1.0), ("p0", 1, 0.0), ("p1", 0, 0.0), ("p1", 1, 0.0)]
    # the same responses without the </think> requirement: p1's answers count
    result = profile_difficulty(backend, ps, k=3, temperature=1.0, max_new_tokens=8,
                                reward=make_reward(require_think=False), samples=0)
    assert [r.correct for r in result.records] == [1, 3] and result.samples == []


def test_search_uses_the_recipe_reward():
    ps = problems(1)
    backend = ScriptedBackend({"p0": ["\\boxed{1}", THINK + "\\boxed{1}"]}, ps)
    [strict] = search_temperatures(backend, ps, [0.7], n=2, max_new_tokens=8, reward=make_reward(require_think=True))
    [loose] = search_temperatures(backend, ps, [0.7], n=2, max_new_tokens=8, reward=make_reward(require_think=False))
    assert (strict.accuracy, loose.accuracy) == (0.5, 1.0)


def write_module(tmp_path: Path, monkeypatch, body: str) -> str:
    (tmp_path / "my_rewards.py").write_text(body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_rewards", None)
    return "my_rewards"


def test_a_reward_function_of_your_own(tmp_path, monkeypatch):
    module = write_module(tmp_path, monkeypatch, (
        "def exact(responses, ground_truths, *, require_think=True):\n"
        "    return [float(r.strip() == str(t)) for r, t in zip(responses, ground_truths)]\n"
        "def too_few(responses, ground_truths, *, require_think=True):\n    return [1.0]\n"
        "def too_big(responses, ground_truths, *, require_think=True):\n    return [2.0 for _ in responses]\n"))
    reward = make_reward(function=f"{module}:exact")
    assert reward(["42", " 7 ", "x"], ["42", "8", "x"]) == [1.0, 0.0, 1.0]
    with pytest.raises(RecipeError, match=r"reward.function 'my_rewards:too_few' returned 1 scores for 2 responses"):
        make_reward(function=f"{module}:too_few")(["a", "b"], ["a", "b"])
    with pytest.raises(RecipeError, match=r"returned 2.0: scores must be in \[0, 1\]"):
        make_reward(function=f"{module}:too_big")(["a"], ["a"])
    with pytest.raises(RecipeError, match="has no 'missing'"):
        make_reward(function=f"{module}:missing")
    with pytest.raises(RecipeError, match="cannot import 'no_such_module_here'"):
        make_reward(function="no_such_module_here:f")
    with pytest.raises(RecipeError, match="expected MODULE:CALLABLE"):
        make_reward(function="just_a_name")


def test_evaluation_scores_with_the_reward_function(tmp_path, monkeypatch):
    from polaris.config import EvalSettings
    from polaris.evaluate import score_completions

    module = write_module(tmp_path, monkeypatch, (
        "def lenient(responses, ground_truths, *, require_think=True):\n"
        "    assert require_think is False\n"
        "    return [float(str(t) in r) for r, t in zip(responses, ground_truths)]\n"))
    ps = problems(1)
    completions = [[Completion("the answer is 1", (1,), False), Completion("\\boxed{1}", (1,), False)]]
    rows, summary = score_completions(ps, completions, EvalSettings(k=2),
                                      reward=make_reward(require_think=False, function=f"{module}:lenient"))
    assert [r["score"] for r in rows] == [1.0, 1.0] and [r["extracted"] for r in rows] == [None, "1"]
    assert summary["avg@k"] == 1.0
    rows, _ = score_completions(ps, completions, EvalSettings(k=2))  # the built-in grader wants a box
    assert [r["score"] for r in rows] == [0.0, 1.0]


# -- the checks that stop a run that cannot learn ---------------------------------------------------


def outcome(correct: list[int], k: int = 4):
    from polaris.recipe import DifficultyRecord
    from polaris.run.plan import build_plan
    from polaris.run.steps import filter_profile

    records = [DifficultyRecord(f"p{i}", c, k, 10.0) for i, c in enumerate(correct)]
    return filter_profile(records, build_plan(load_recipe(None, [f"profile.k={k}"])).profile)


def counts(**kw):
    from polaris.rollouts import ResponseCounts

    return ResponseCounts(**{"responses": 100, "think_closed": 90, "boxed": 90, "truncated": 0, "correct": 30, **kw})


def test_learning_signal_checks_name_the_cause_and_the_key():
    from polaris.run.steps import check_learning_signal

    recipe = load_recipe(None)
    assert check_learning_signal(outcome([0, 1, 2, 4]), counts(), recipe) == []
    [m] = check_learning_signal(outcome([0, 0, 0]), counts(think_closed=2), recipe)
    assert "Only 2 of 100 profile responses close their thinking" in m and "reward.require_think: false" in m
    no_think = load_recipe(None, ["reward.require_think=false"])
    [m] = check_learning_signal(outcome([0, 0, 0]), counts(think_closed=2, boxed=1, truncated=95), no_think)
    assert "Only 1 of 100 profile responses give a \\boxed{} answer" in m and "95 were cut" in m
    [m] = check_learning_signal(outcome([0, 0, 0]), counts(correct=0), recipe)
    assert "No profiled problem was solved in 4 rollouts" in m and "data.train" in m
    [m] = check_learning_signal(outcome([4, 4]), counts(), recipe)
    assert "Every profiled problem was solved 4/4" in m
    # a saved profile has no counts: the pass counts alone still decide
    assert check_learning_signal(outcome([1, 4]), None, recipe) == []


def test_the_search_refuses_to_choose_on_zero_accuracy(tmp_path, monkeypatch):
    import json

    from polaris.run import steps
    from polaris.run.layout import RunLayout
    from polaris.run.plan import build_plan

    ps = problems(3)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) + "\n" for p in ps),
                    encoding="utf-8")
    recipe = load_recipe(None, [f"data.train={data}", "model.path=some/model", "temperature_search.grid=[0.6, 1.0]"])
    ctx = steps.Context(build_plan(recipe), RunLayout(tmp_path / "run"))
    wrong = ScriptedBackend({p.id: [THINK + "\\boxed{-1}"] for p in ps}, ps)
    monkeypatch.setattr(steps.Context, "generation_backend", lambda self, model: wrong)
    with pytest.raises(RecipeError, match=r"accuracy is 0 at every temperature searched \(0.6, 1\).*stages\[0\]"
                                          r"\.temperature to a number"):
        steps.temperature(ctx, 1)
    assert not ctx.layout.temperature_path(1).exists()
    right = ScriptedBackend({p.id: [THINK + f"\\boxed{{{p.answer}}}"] for p in ps}, ps)
    monkeypatch.setattr(steps.Context, "generation_backend", lambda self, model: right)
    result = steps.temperature(ctx, 1)
    assert result["rule"] == "exploration-start" and result["temperature"] in (0.6, 1.0)
    assert ctx.layout.read_temperature(1).accuracy_at_chosen == 1.0


def test_a_fixed_temperature_is_measured_only_when_the_next_stage_matches_its_diversity(tmp_path, monkeypatch):
    import json

    from polaris.run import steps
    from polaris.run.layout import RunLayout
    from polaris.run.plan import build_plan

    ps = problems(3)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) + "\n" for p in ps),
                    encoding="utf-8")
    right = ScriptedBackend({p.id: [THINK + f"\\boxed{{{p.answer}}}"] for p in ps}, ps)
    loads = []

    def backend(self, model):
        loads.append(model)
        return right

    monkeypatch.setattr(steps.Context, "generation_backend", backend)
    two = [{"steps": 1, "max_response_tokens": 8, "temperature": 0.9},
           {"steps": 1, "max_response_tokens": 8, "temperature": 1.1}]
    recipe = load_recipe(None, [f"data.train={data}", "model.path=some/model", f"stages={json.dumps(two)}"])
    ctx = steps.Context(build_plan(recipe), RunLayout(tmp_path / "fixed"))
    assert steps.temperature(ctx, 1) == {"temperature": 0.9, "rule": "fixed", "measured": False}
    assert steps.temperature(ctx, 2) == {"temperature": 1.1, "rule": "fixed", "measured": False}
    assert loads == [] and not ctx.layout.temperature_path(1).exists()
    assert steps.stage_temperature(ctx, 1) == 0.9
    # the next stage searches by matching stage 1's diversity: stage 1 is measured at its fixed temperature
    two[1]["temperature"] = "search"
    recipe = load_recipe(None, [f"data.train={data}", "model.path=some/model", f"stages={json.dumps(two)}"])
    ctx = steps.Context(build_plan(recipe), RunLayout(tmp_path / "matched"))
    assert steps.temperature(ctx, 1) == {"temperature": 0.9, "rule": "fixed"}
    assert len(loads) == 1 and ctx.layout.read_temperature(1).points[0]["temperature"] == 0.9
