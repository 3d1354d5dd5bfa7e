"""The ablation: its variant recipes and analysis (polaris.run.ablation), and the runner (bench/ablation.py)
in a reduced end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from polaris.config import load_recipe, recipe_from_data, to_dict
from polaris.errors import RunError
from polaris.run import ablation
from polaris.run.layout import RunLayout, TemperatureRecord, write_jsonl

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_ablation", REPO / "bench" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
BASE = load_recipe(REPO / "recipes" / "tiny-cpu.yaml")


def _variant(tmp_path, name, seed=1):
    budget = ablation.Budget(seeds=(seed,), steps_per_stage=40, eval_every=20, eval_limit=None)
    recipe = ablation.variant_recipe(BASE, name, seed=seed, budget=budget, base_run=tmp_path / "base")
    data = to_dict(recipe)
    assert recipe_from_data(data) == recipe  # every variant is a valid recipe
    return data, recipe


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


def _flat(d, prefix=""):
    out = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, path + "."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                out.update(_flat(item, f"{path}[{i}]."))
        else:
            out[path] = value
    return out


@pytest.mark.parametrize(
    "name, changed",
    [
        ("no-filter", {"profile.max_correct": 8, "train.drop_threshold": 1.0}),
        ("fixed-temp", {f"stages[{i}].temperature": 1.0 for i in range(3)}),
        ("no-rescue", {"train.rescue": False}),
        ("no-substitution", {"train.substitution": False}),
        (
            "vanilla",
            {
                "profile.max_correct": 8,
                "train.drop_threshold": 1.0,
                "train.rescue": False,
                "train.substitution": False,
                "train.epsilon_high": 0.2,
                "train.dual_clip": None,
                **{f"stages[{i}].temperature": 1.0 for i in range(3)},
            },
        ),
    ],
)
def test_each_variant_differs_from_full_in_exactly_its_components(tmp_path, name, changed):
    full, _ = _variant(tmp_path, "full")
    variant, _ = _variant(tmp_path, name)  # as data: to_dict of the RecipeConfig
    a, b = _flat(full), _flat(variant)
    differing = {k: b.get(k) for k in a.keys() | b.keys() if a.get(k, "absent") != b.get(k, "absent")}
    differing.pop("name")
    assert differing == changed


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
    root: Path, records: list[dict], stage_steps: list[int], temps: list[float], points: int
) -> RunLayout:
    """A run directory as the pipeline leaves it (written through its layout)."""
    run = RunLayout(root)
    write_jsonl(run.metrics, records)
    steps = {"profile": {"status": "done", "seconds": 3.0, "result": {"problems": 50, "k": 8}}}
    for i, n in enumerate(stage_steps, start=1):
        steps[f"train:{i}"] = {"status": "done", "seconds": 10.0, "result": {"steps": n}}
    run.write_summary({"steps": steps})
    for i, t in enumerate(temps, start=1):
        run.write_temperature(
            TemperatureRecord(
                stage=i, rule="exploration-start", chosen=t, points=[{}] * points, problems=10, n=4
            )
        )
    return run


def _ev(stage, step, acc):
    return {"stage": stage, "step": step, "eval/arith-test/avg@8": acc}


def _up(stage, step, skipped, zero):
    return {"stage": stage, "step": step, "recipe/skipped": skipped, "recipe/zero_advantage_fraction": zero}


def test_read_variant_puts_stages_on_one_rollout_axis(tmp_path):
    # stage 1: 4 steps, evaluated at 2 and 4; stage 2: 2 steps, evaluated at 2. Stage 2 was killed once
    # and restarted: its first attempt's records (0.99, zero 1.0) come first and must lose to the redo.
    records = [
        _up(1, 1, 0.0, 0.25),
        _up(1, 2, 1.0, 0.5),
        _ev(1, 2, 0.5),
        _up(1, 3, 0.0, 0.0),
        _up(1, 4, 0.0, 0.0),
        _ev(1, 4, 0.55),
        _up(2, 1, 0.0, 1.0),
        _up(2, 2, 0.0, 1.0),
        _ev(2, 2, 0.99),  # the killed attempt
        _up(2, 1, 0.0, 0.5),
        _up(2, 2, 0.0, 0.25),
        _ev(2, 2, 0.6),
    ]
    run = _fake_run(tmp_path / "r", records, stage_steps=[4, 2], temps=[0.8, 0.9], points=3)
    assert ablation.read_variant(
        run.root, "full", 0, 0.45, rollouts_per_step=32, profile_used=True, search_used=True
    ) == ablation.read_variant(
        run, "full", 0, 0.45, rollouts_per_step=32, profile_used=True, search_used=True
    )  # a path or a layout
    r = ablation.read_variant(run, "full", 0, 0.45, rollouts_per_step=32, profile_used=True, search_used=True)
    assert r.curve == [(0, 0.45), (2 * 32, 0.5), (4 * 32, 0.55), (6 * 32, 0.6)]
    # five steps entered updates (one of six skipped), zero-advantage fractions 0.25, 0, 0, 0.5, 0.25
    assert r.entered_steps == 5 and r.skipped_share == pytest.approx(1 / 6)
    assert r.zero_advantage_share == pytest.approx(1.0 / 5)
    assert r.one_off_rollouts == 50 * 8 + 2 * (10 * 4 * 3)
    assert r.seconds == pytest.approx(23.0) and r.stage_temperatures == [0.8, 0.9]
    r = ablation.read_variant(
        run, "full", 0, 0.45, rollouts_per_step=32, profile_used=False, search_used=False
    )
    assert r.one_off_rollouts == 0


def test_zero_advantage_share_is_unknown_when_every_step_was_skipped(tmp_path):
    run = _fake_run(
        tmp_path / "r", [_up(1, 1, 1.0, 0.0), _ev(1, 1, 0.5)], stage_steps=[1], temps=[1.0], points=1
    )
    r = ablation.read_variant(run, "full", 0, 0.4, rollouts_per_step=8, profile_used=False, search_used=False)
    assert r.zero_advantage_share is None and r.entered_steps == 0 and r.skipped_share == 1.0
    assert ablation.summarize([r], ["full"])["full"]["zero_advantage_share"] is None


def test_summarize_compares_with_vanilla():
    def run(variant, seed, curve, zero=0.0, entered=10):
        return ablation.VariantRun(
            variant=variant,
            seed=seed,
            curve=curve,
            zero_advantage_share=zero,
            skipped_share=0.0,
            entered_steps=entered,
            one_off_rollouts=50,
            seconds=60.0,
        )

    runs = [
        # vanilla peaks above its final: still 100% of its own budget by definition
        run("vanilla", 0, [(0, 0.4), (100, 0.53), (200, 0.50)], zero=0.4, entered=10),
        run("vanilla", 1, [(0, 0.4), (100, 0.51), (200, 0.52)], zero=0.1, entered=30),
        run("full", 0, [(0, 0.4), (100, 0.55), (200, 0.60)]),
        run("full", 1, [(0, 0.4), (100, 0.53), (200, 0.62)]),
    ]
    stats = ablation.summarize(runs, ["vanilla", "full"])
    assert stats["vanilla"]["final_mean"] == pytest.approx(0.51)
    assert stats["vanilla"]["final_std"] == pytest.approx(0.0141421, rel=1e-5)
    assert stats["full"]["final_mean"] == pytest.approx(0.61)
    assert stats["full"]["vs_vanilla_points"] == pytest.approx(10.0)
    assert stats["vanilla"]["share_of_vanilla_rollouts"] == 1.0
    # full's mean curve: 0.40 at 0, 0.54 at 100; reaches 0.51 at 100 * 0.11/0.14
    assert stats["full"]["rollouts_to_vanilla_final"] == pytest.approx(100 * 0.11 / 0.14)
    assert stats["full"]["share_of_vanilla_rollouts"] == pytest.approx(0.11 / 0.14 / 2)
    assert stats["full"]["share_with_one_off"] == pytest.approx((100 * 0.11 / 0.14 + 50) / 200)
    # pooled over entered steps: (0.4 * 10 + 0.1 * 30) / 40
    assert stats["vanilla"]["zero_advantage_share"] == pytest.approx(0.175)


def test_reduced_ablation_end_to_end(tiny_run, tmp_path):
    """Two variants, two stages of two steps each, on the session's tiny run: files, curves, the 0% rule."""
    recipe = RunLayout(tiny_run).recipe
    code = bench.main(
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
    # step 0 is the warm-started model, evaluated once per seed and cached by its weights
    cached = list((tmp_path / "work").glob("base-s0-all-*.json"))
    assert len(cached) == 1
    assert data["variants"]["full"]["curve"][0][1] == json.loads(cached[0].read_text())["avg@k"]
    full_runs = [r for r in data["runs"] if r["variant"] == "full"]
    assert all(
        r["entered_steps"] > 0 for r in full_runs
    )  # some steps trained, so the next line means something
    assert data["variants"]["full"]["zero_advantage_share"] == 0.0  # substitution leaves no dead groups
    assert data["variants"]["vanilla"]["one_off_rollouts"] == 0
    assert data["variants"]["full"]["one_off_rollouts"] > 0
    table = (tmp_path / "out" / "ablation.md").read_text()
    assert "| vanilla |" in table and "| full |" in table
    assert (tmp_path / "out" / "ablation.png").stat().st_size > 0


def test_work_directory_is_tied_to_one_warm_start(tmp_path):
    base = RunLayout(tmp_path / "base")
    base.model("base").mkdir(parents=True)
    weights = base.model("base") / "model.safetensors"
    weights.write_bytes(b"one")
    bench.stamp_work(tmp_path / "work", base)
    bench.stamp_work(tmp_path / "work", base)  # same weights: fine
    weights.write_bytes(b"two")
    with pytest.raises(RunError, match="another warm-started model"):
        bench.stamp_work(tmp_path / "work", base)


def test_the_runner_reports_a_refused_work_directory_without_a_traceback(tmp_path, capsys):
    base = RunLayout(tmp_path / "base")
    base.model("base").mkdir(parents=True)
    (base.model("base") / "config.json").write_text("{}")  # the base run is complete: nothing is made
    (base.model("base") / "model.safetensors").write_bytes(b"one")
    bench.stamp_work(tmp_path / "work", base)
    (base.model("base") / "model.safetensors").write_bytes(b"two")
    args = ["--quick", "--base-run", str(base.root), "--work", str(tmp_path / "work"), "--out", str(tmp_path)]
    assert bench.main([*args, "--recipe", str(REPO / "recipes" / "tiny-cpu.yaml")]) == 2
    assert "another warm-started model" in capsys.readouterr().err


def test_overhead_bench_runs_three_trainers_on_identical_batches(tiny_run, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_overhead", REPO / "bench" / "overhead.py")
    overhead = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(overhead)
    import trl

    generate = trl.GRPOTrainer._generate
    out = tmp_path / "overhead.md"
    run = RunLayout(tiny_run)
    args = ["--model", str(run.model("base")), "--data", str(run.split("arith-train"))]
    assert overhead.main([*args, "--steps", "2", "--rounds", "1", "--out", str(out)]) == 0
    assert trl.GRPOTrainer._generate is generate  # the timing patch is undone
    text = out.read_text()
    assert "identical in all three trainers at 3 of 3 steps" in text
    for label in overhead.KINDS.values():
        assert f"| {label} |" in text
    assert "Adapter / plain TRL on identical batches:" in text
