"""The ablation harness (bench/ablation.py): variant recipes, the analysis, and a reduced end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from polaris.config import load_recipe

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_ablation", REPO / "bench" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ablation = _load_bench()
BASE = yaml.safe_load((REPO / "recipes" / "tiny-cpu.yaml").read_text())


def _variant(tmp_path, name, seed=1):
    budget = ablation.Budget(seeds=(seed,), steps_per_stage=40, eval_every=20, eval_limit=None)
    recipe = ablation.variant_recipe(BASE, name, seed=seed, budget=budget, base_run=tmp_path / "base")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return recipe, load_recipe(path)  # every variant is a valid recipe


def test_full_variant_keeps_the_recipe_and_trains_from_the_base_run(tmp_path):
    _, r = _variant(tmp_path, "full")
    assert r.model.path == str(tmp_path / "base" / "models" / "base") and not r.builtin_model
    assert r.data.train == str(tmp_path / "base" / "data" / "arith-train.parquet")
    assert r.seed == 1 and r.eval.benchmarks == []
    assert [s.steps for s in r.stages] == [40, 40, 40]
    assert all(s.temperature == "search" and s.val_temperature == 0.6 for s in r.stages)
    assert r.train.rescue and r.train.substitution and r.train.drop_threshold == 0.9
    assert (r.train.epsilon_low, r.train.epsilon_high, r.train.dual_clip) == (0.2, 0.28, 3.0)
    assert r.profile.max_correct is None  # default k-1: solved problems are dropped
    v = r.train.validation
    assert (v.every_steps, v.k, v.max_new_tokens, v.top_k) == (20, 8, 128, 0)
    assert v.benchmark.endswith("arith-test.parquet")


@pytest.mark.parametrize(
    "name, changed",
    [
        ("no-filter", {"max_correct": 8, "drop_threshold": 1.0}),
        ("fixed-temp", {"temperature": 1.0}),
        ("no-rescue", {"rescue": False}),
        ("no-substitution", {"substitution": False}),
    ],
)
def test_each_ablation_turns_off_one_component(tmp_path, name, changed):
    _, full = _variant(tmp_path, "full")
    _, r = _variant(tmp_path, name)
    observed = {
        "max_correct": r.profile.max_correct,
        "drop_threshold": r.train.drop_threshold,
        "temperature": r.stages[0].temperature,
        "rescue": r.train.rescue,
        "substitution": r.train.substitution,
    }
    baseline = {
        "max_correct": full.profile.max_correct,
        "drop_threshold": full.train.drop_threshold,
        "temperature": full.stages[0].temperature,
        "rescue": full.train.rescue,
        "substitution": full.train.substitution,
    }
    for key in observed:
        assert observed[key] == changed.get(key, baseline[key]), key
    assert r.train.epsilon_high == 0.28 and r.train.dual_clip == 3.0


def test_vanilla_turns_everything_off(tmp_path):
    _, r = _variant(tmp_path, "vanilla")
    assert r.profile.max_correct == 8 and r.train.drop_threshold == 1.0
    assert all(s.temperature == 1.0 for s in r.stages)
    assert not r.train.rescue and not r.train.substitution
    assert (r.train.epsilon_high, r.train.dual_clip) == (0.2, None)
    assert r.train.batch_prompts == 16 and r.train.rollouts == 8  # the same rollout budget


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        ablation.variant_recipe(BASE, "no-kl", seed=0, budget=ablation.QUICK, base_run=tmp_path)


def test_rollouts_to_reach_interpolates_between_evaluations():
    curve = [(0, 0.40), (100, 0.46), (200, 0.52), (300, 0.50)]
    assert ablation.rollouts_to_reach(curve, 0.49) == pytest.approx(150.0)  # 100 + 100 * 0.03/0.06
    assert ablation.rollouts_to_reach(curve, 0.40) == 0.0
    assert ablation.rollouts_to_reach(curve, 0.52) == pytest.approx(200.0)
    assert ablation.rollouts_to_reach(curve, 0.53) is None


def test_mean_curve_and_std_over_seeds():
    a = [(0, 0.4), (10, 0.5), (20, 0.6)]
    b = [(0, 0.4), (10, 0.7), (20, 0.8)]
    out = ablation.mean_curve([a, b])
    assert [x for x, _, _ in out] == [0, 10, 20]
    assert out[1][1] == pytest.approx(0.6) and out[1][2] == pytest.approx(
        0.1414213, rel=1e-5
    )  # stdev(0.5, 0.7)
    assert ablation.mean_std([0.3]) == (0.3, 0.0)


def _fake_run(
    root: Path,
    evals: list[tuple[int, int, float]],
    updates: list[tuple[int, int, float, float]],
    temps: list[float],
    points: int,
) -> Path:
    """A run directory as the pipeline leaves it: 2 stages of 2 steps."""
    (root / "logs").mkdir(parents=True)
    (root / "temperature").mkdir()
    records = [{"stage": s, "step": t, "eval/arith-test/avg@8": a} for s, t, a in evals]
    records += [
        {"stage": s, "step": t, "recipe/skipped": sk, "recipe/zero_advantage_fraction": z}
        for s, t, sk, z in updates
    ]
    (root / "logs" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "summary.json").write_text(
        json.dumps(
            {
                "steps": {
                    "profile": {"status": "done", "seconds": 3.0, "result": {"problems": 50, "k": 8}},
                    "train:1": {"status": "done", "seconds": 10.0, "result": {"steps": 2}},
                    "train:2": {"status": "done", "seconds": 12.0, "result": {"steps": 2}},
                }
            }
        )
    )
    for i, t in enumerate(temps, start=1):
        (root / "temperature" / f"stage-{i}.json").write_text(
            json.dumps({"chosen": t, "problems": 10, "n": 4, "points": [{}] * points})
        )
    return root


def test_read_variant_puts_stages_on_one_rollout_axis(tmp_path):
    run = _fake_run(
        tmp_path / "r",
        evals=[(1, 2, 0.5), (2, 2, 0.6)],
        updates=[(1, 1, 0.0, 0.25), (1, 2, 1.0, 0.5), (2, 1, 0.0, 0.0), (2, 2, 0.0, 0.5)],
        temps=[0.8, 0.9],
        points=3,
    )
    r = ablation.read_variant(
        run, "vanilla", 0, 0.45, rollouts_per_step=32, profile_used=True, search_used=True
    )
    assert r.curve == [(0, 0.45), (64, 0.5), (128, 0.6)]
    # three steps entered updates, with zero-advantage fractions 0.25, 0, 0.5; one of four was skipped
    assert r.zero_advantage_share == pytest.approx(0.25) and r.skipped_share == pytest.approx(0.25)
    assert r.one_off_rollouts == 50 * 8 + 2 * (10 * 4 * 3)
    assert r.seconds == pytest.approx(25.0) and r.stage_temperatures == [0.8, 0.9]
    r = ablation.read_variant(
        run, "vanilla", 0, 0.45, rollouts_per_step=32, profile_used=False, search_used=False
    )
    assert r.one_off_rollouts == 0


def test_summarize_compares_with_vanilla():
    def run(variant, seed, curve):
        return ablation.VariantRun(
            variant=variant,
            seed=seed,
            curve=curve,
            zero_advantage_share=0.0,
            skipped_share=0.0,
            one_off_rollouts=0,
            seconds=60.0,
        )

    runs = [
        run("vanilla", 0, [(0, 0.4), (100, 0.45), (200, 0.50)]),
        run("vanilla", 1, [(0, 0.4), (100, 0.47), (200, 0.52)]),
        run("full", 0, [(0, 0.4), (100, 0.55), (200, 0.60)]),
        run("full", 1, [(0, 0.4), (100, 0.53), (200, 0.62)]),
    ]
    stats = ablation.summarize(runs, ["vanilla", "full"])
    assert stats["vanilla"]["final_mean"] == pytest.approx(0.51)
    assert stats["full"]["final_mean"] == pytest.approx(0.61)
    assert stats["full"]["vs_vanilla_points"] == pytest.approx(10.0)
    # full's mean curve: 0.40 at 0, 0.54 at 100; reaches 0.51 at 0 + 100 * 0.11/0.14
    assert stats["full"]["rollouts_to_vanilla_final"] == pytest.approx(100 * 0.11 / 0.14)
    assert stats["full"]["share_of_vanilla_rollouts"] == pytest.approx(0.11 / 0.14 / 2)
    assert stats["vanilla"]["share_of_vanilla_rollouts"] == pytest.approx(1.0)


def test_reduced_ablation_end_to_end(tiny_run, tmp_path):
    """Two variants, two stages of two steps each, on the session's tiny run: files, curves, the 0% rule."""
    recipe = tiny_run / "recipe.yaml"
    code = ablation.main(
        [
            "--recipe",
            str(recipe),
            "--base-run",
            str(tiny_run),
            "--seeds",
            "0",
            "--steps-per-stage",
            "2",
            "--eval-every",
            "2",
            "--variants",
            "vanilla",
            "full",
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    data = json.loads((tmp_path / "out" / "ablation.json").read_text())
    per_step = 6 * 4  # the test recipe: 6 problems x 4 rollouts
    for variant in ("vanilla", "full"):
        curve = data["variants"][variant]["curve"]
        assert [x for x, _, _ in curve] == [0, 2 * per_step, 4 * per_step]
        assert all(0.0 <= m <= 1.0 for _, m, _ in curve)
    # both start from the same model, evaluated once
    assert data["variants"]["vanilla"]["curve"][0][1] == data["variants"]["full"]["curve"][0][1]
    assert data["variants"]["full"]["zero_advantage_share"] == 0.0  # substitution leaves no dead groups
    assert data["variants"]["vanilla"]["one_off_rollouts"] == 0
    assert data["variants"]["full"]["one_off_rollouts"] > 0
    table = (tmp_path / "out" / "ablation.md").read_text()
    assert "| vanilla |" in table and "| full |" in table
    assert (tmp_path / "out" / "ablation.png").stat().st_size > 0
