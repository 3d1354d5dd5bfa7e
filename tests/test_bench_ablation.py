"""The ablation: its variant recipes, statistics and analysis (bench/ablation_analysis.py), and the runner
(bench/ablation.py): regimes, paths, the time estimate, the summary, and a reduced end-to-end run."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import yaml

from bench_scripts import load_bench
from polaris.config import check_recipe, load_recipe, recipe_from_data, to_dict
from polaris.errors import RunError, UsageError
from polaris.run.layout import RunLayout, RunSummary, TemperatureRecord, write_jsonl

REPO = Path(__file__).resolve().parents[1]


ablation = load_bench("ablation_analysis")
bench = load_bench("ablation")
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
        ("dapo", {"train.rescue": False, "train.substitution": False, "train.dynamic_sampling": True}),
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


def test_dapo_swaps_rescue_and_substitution_for_dynamic_sampling(tmp_path):
    data, r = _variant(tmp_path, "dapo")
    assert r.train.dynamic_sampling and r.train.dynamic_sampling_max_rounds == 4  # the default cap
    assert not r.train.rescue and not r.train.substitution
    # the rest of the recipe stays: filter, searched temperatures, clip-higher and dual clip
    assert r.profile.max_correct is None and r.train.drop_threshold == 0.9
    assert all(s.temperature == "search" for s in r.stages)
    assert (r.train.epsilon_high, r.train.dual_clip) == (0.28, 3.0)
    # as a recipe file: it loads and passes the cross-section checks
    path = tmp_path / "dapo.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    loaded = load_recipe(path)
    check_recipe(loaded)
    assert loaded == r


def test_components_of_each_variant():
    assert ablation.COMPONENTS_OFF["dapo"] == {"rescue", "substitution"}
    assert ablation.components_added("dapo") == {"dynamic"}
    assert all(ablation.components_added(v) == frozenset() for v in ablation.VARIANTS if v != "dapo")
    assert ablation.uses_profile("dapo") and ablation.uses_search("dapo")
    assert set(ablation.COMPONENTS_OFF) == set(ablation.VARIANTS)
    assert set(ablation.QUICK_VARIANTS) <= set(ablation.VARIANTS)
    with pytest.raises(UsageError, match="unknown variant"):
        ablation.components_added("no-kl")


def test_only_dapo_turns_dynamic_sampling_on(tmp_path):
    for name in ablation.VARIANTS:
        _, r = _variant(tmp_path, name)
        assert r.train.dynamic_sampling == (name == "dapo")


def test_the_budget_runs_the_first_stages(tmp_path):
    budget = ablation.Budget(seeds=(0,), steps_per_stage=6, eval_every=6, eval_limit=100, stages=2)
    r = ablation.variant_recipe(BASE, "full", seed=0, budget=budget, base_run=tmp_path)
    assert [(s.steps, s.max_response_tokens) for s in r.stages] == [(6, 96), (6, 112)]
    assert r.train.validation.limit == 100 and r.train.save_steps == 6
    too_many = ablation.Budget(seeds=(0,), steps_per_stage=6, eval_every=6, eval_limit=100, stages=4)
    with pytest.raises(UsageError, match="4 stages"):
        ablation.variant_recipe(BASE, "full", seed=0, budget=too_many, base_run=tmp_path)


def test_presets():
    full, quick = ablation.FULL, ablation.QUICK
    assert (full.seeds, full.stages, full.steps_per_stage, full.eval_every, full.eval_limit) == (
        (0, 1, 2),
        3,
        12,
        12,
        100,
    )
    assert (quick.seeds, quick.stages, quick.steps_per_stage, quick.eval_every, quick.eval_limit) == (
        (0,),
        2,
        6,
        6,
        100,
    )
    assert ablation.QUICK_VARIANTS == ("vanilla", "full", "dapo")
    assert ablation.FULL.name == "3 seed(s) x 3 stages x 12 steps, eval every 12, first 100 test problems"


def test_the_time_estimate_fits_the_budgets():
    full = bench.estimate_minutes(ablation.FULL, list(ablation.VARIANTS), regimes=2)
    assert len(ablation.VARIANTS) == 7
    assert full <= 90 - 2 * bench.SECONDS["warm_start"] / 60  # with both warm starts to make
    assert bench.estimate_minutes(ablation.FULL, list(ablation.VARIANTS), warm_starts=2) <= 90
    assert bench.estimate_minutes(ablation.QUICK, ablation.QUICK_VARIANTS, regimes=2) <= 10
    # by hand, one regime and seed of vanilla alone at the quick budget: profile 65 s + step 0 3.3 s,
    # 12 steps x 1.1 s, 2 evaluations x 3.3 s, 2 fixed-temperature measurements x 3.3 s
    one = ablation.Budget(seeds=(0,), steps_per_stage=6, eval_every=6, eval_limit=100, stages=2)
    expected = 65 + 3.3 + 12 * 1.1 + 2 * 3.3 + 2 * 3.3
    assert bench.estimate_minutes(one, ["vanilla"], regimes=1) == pytest.approx(expected / 60)
    # dapo: its steps cost more, its stages search
    expected_dapo = 65 + 3.3 + 12 * 2.0 + 2 * 3.3 + 2 * 10.5
    assert bench.estimate_minutes(one, ["dapo"], regimes=1) == pytest.approx(expected_dapo / 60)


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
    run.write_summary(RunSummary.from_dict({"steps": steps}))
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
    # every run here spent 50 one-off rollouts (curves without their own all-rollouts axis count them
    # before step 0): full's all-rollouts mean curve reaches 0.51 at 50 + 100 * 0.11/0.14, of vanilla's 250
    assert stats["full"]["share_with_one_off"] == pytest.approx((50 + 100 * 0.11 / 0.14) / 250)
    assert stats["full"]["all_rollouts"] == 250 and stats["full"]["training_rollouts"] == 200
    # pooled over entered steps: (0.4 * 10 + 0.1 * 30) / 40
    assert stats["vanilla"]["zero_advantage_share"] == pytest.approx(0.175)
    # vanilla's finals 0.50, 0.52: sd 0.01414, half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.01
    assert stats["vanilla"]["final_ci"] == pytest.approx(0.12706)
    # paired by seed, full is 10 points above vanilla at both seeds: no spread in the differences
    assert stats["full"]["vs_vanilla_paired"] == pytest.approx(10.0)
    assert stats["full"]["vs_vanilla_ci"] == pytest.approx(0.0)
    assert stats["full"]["finals"] == {0: 0.60, 1: 0.62}


# -- statistics, by hand -------------------------------------------------------------------------------


def test_t_quantiles_are_the_tables():
    # Student t, 0.975 quantile, from the printed tables
    assert ablation.t975(1) == 12.706
    assert ablation.t975(2) == 4.303
    assert ablation.t975(4) == 2.776
    assert ablation.t975(9) == 2.262
    assert ablation.t975(10) == 2.228
    assert sorted(ablation.T975) == list(range(1, 11))
    assert all(a > b for a, b in itertools.pairwise(ablation.T975.values()))  # falling with df
    assert ablation.t975(25) == 2.228  # beyond the table: the value at 10, a slightly wider interval
    with pytest.raises(ValueError, match="at least 1 degree"):
        ablation.t975(0)


def test_mean_interval_by_hand():
    # 0.5, 0.6, 0.7: mean 0.6, sd 0.1, half-width 4.303 * 0.1 / sqrt(3) = 0.24843
    mean, half = ablation.mean_interval([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and half == pytest.approx(0.24843, abs=1e-5)
    # two values 0.50, 0.54: sd 0.02 * sqrt(2), half-width 12.706 * 0.02 = 0.25412
    assert ablation.mean_interval([0.50, 0.54])[1] == pytest.approx(0.25412)
    assert ablation.mean_interval([0.4]) == (0.4, None)


def test_paired_interval_uses_the_per_seed_differences():
    a = {0: 0.52, 1: 0.55, 2: 0.50, 7: 0.9}  # seed 7 has no partner: left out
    b = {0: 0.50, 1: 0.50, 2: 0.49}
    mean, half, n = ablation.paired_interval(a, b)
    # differences 0.02, 0.05, 0.01: mean 0.026667, sd 0.020817, half-width 4.303 * 0.020817 / sqrt(3)
    assert n == 3 and mean == pytest.approx(0.026667, abs=1e-6)
    assert half == pytest.approx(4.303 * 0.020817 / math.sqrt(3), rel=1e-4)
    assert half == pytest.approx(0.051717, abs=1e-5)
    # the unpaired intervals of the two means are each wider than the gap: pairing is what resolves it
    assert ablation.mean_interval([0.52, 0.55, 0.50])[1] > mean
    assert ablation.paired_interval({0: 0.6}, {0: 0.5})[1:] == (None, 1)
    with pytest.raises(ValueError, match="no seed in common"):
        ablation.paired_interval({0: 0.5}, {1: 0.5})


def test_classify_by_the_interval():
    assert ablation.classify(0.02, 0.01) == "helps"
    assert ablation.classify(-0.02, 0.01) == "hurts"
    assert ablation.classify(0.02, 0.03) == "no measurable difference"
    assert ablation.classify(-0.02, 0.03) == "no measurable difference"
    assert ablation.classify(0.01, 0.01) == "no measurable difference"  # touching 0 is not excluding it
    assert ablation.classify(0.05, None) == "no interval"


def _seeded(variant, finals, one_off=0, training=300):
    return [
        ablation.VariantRun(
            variant=variant,
            seed=seed,
            curve=[(0, 0.40), (training, final)],
            zero_advantage_share=0.0,
            skipped_share=0.0,
            entered_steps=3,
            one_off_rollouts=one_off,
            seconds=30.0,
        )
        for seed, final in enumerate(finals)
    ]


def test_plain_words_says_what_the_intervals_say():
    runs = [
        *_seeded("vanilla", [0.50, 0.51, 0.49]),
        *_seeded("full", [0.55, 0.57, 0.54], one_off=1000),  # +5.3 points, tight: helps
        *_seeded("no-rescue", [0.58, 0.60, 0.57], one_off=1000),  # full is 3 below at every seed: hurts
        *_seeded("no-filter", [0.50, 0.62, 0.52], one_off=200),  # spread wide: no measurable difference
        *_seeded("dapo", [0.56, 0.57, 0.55], one_off=1000, training=500),  # 200 extra training rollouts
    ]
    compared = {c["without"] if c["with"] == "full" else c["with"]: c for c in ablation.comparisons(runs)}
    assert set(compared) == {"vanilla", "no-rescue", "no-filter", "dapo"}  # the variants that ran
    assert compared["vanilla"]["verdict"] == "helps"
    assert compared["vanilla"]["points"] == pytest.approx(100 * (0.05 + 0.06 + 0.05) / 3)
    assert compared["vanilla"]["rollouts"] == 1000 and compared["vanilla"]["training_rollouts"] == 0
    assert compared["no-rescue"]["verdict"] == "hurts" and compared["no-rescue"]["ci"] == pytest.approx(0.0)
    assert compared["no-filter"]["verdict"] == "no measurable difference"
    assert compared["dapo"]["rollouts"] == 200 and compared["dapo"]["training_rollouts"] == 200
    text = ablation.plain_words(ablation.comparisons(runs), "weak")
    assert text.startswith("Weak regime, 3 seeds")
    assert "Helps: the whole recipe (full vs vanilla, +5.3 points [" in text
    assert "Hurts (better without it): rollout rescue (full vs no-rescue, -3.0 points [-3.0, -3.0])" in text
    assert "No measurable difference: the difficulty filter and dropping (full vs no-filter" in text
    assert "DAPO dynamic sampling in place of rescue + substitution (dapo vs full" in text
    assert "the whole recipe +1,000" in text and "the difficulty filter and dropping +800" in text
    assert "DAPO dynamic sampling in place of rescue + substitution +200 (training +200)" in text
    assert "No extra rollouts: rollout rescue." in text


def test_plain_words_with_one_seed_claims_nothing():
    runs = [*_seeded("vanilla", [0.50]), *_seeded("full", [0.58], one_off=10)]
    text = ablation.plain_words(ablation.comparisons(runs), "strong")
    assert text.startswith("Strong regime, one seed: no interval")
    assert "Helps" not in text and "the whole recipe (full vs vanilla, +8.0 points)" in text
    assert ablation.plain_words([], "weak") == "Weak regime: no two variants to compare."


def test_format_table_and_markdown_show_intervals():
    runs = [*_seeded("vanilla", [0.50, 0.51, 0.49]), *_seeded("full", [0.55, 0.57, 0.54], one_off=1000)]
    stats = ablation.summarize(runs, ["vanilla", "full"])
    table = "\n".join(ablation.format_table(stats))
    half = 100 * 4.303 * 0.01 / math.sqrt(3)  # vanilla: sd 0.01
    assert f"| vanilla | 40.0 | 50.0 ± {half:.1f} | — | 300 | 300 |" in table
    assert "| full | 40.0 | 55.3 ± " in table and "| +5.3 ± " in table and "| 300 | 1,300 |" in table
    page = ablation.format_markdown(
        stats, ablation.FULL, "cmd", 1.0, "setting", cores=2, regime="weak", paragraph="PARAGRAPH"
    )
    assert page.startswith("# Ablation on the tiny setting, weak regime") and "PARAGRAPH" in page
    assert "| full | 1,000: 40.0 ± 0.0 · 1,300: 55.3 ± 1.5 |" in page  # the all-rollouts axis


# -- regimes, paths, summary -----------------------------------------------------------------------


def test_regimes_and_their_paths():
    assert bench.regimes_of("both") == ["weak", "strong"]
    assert bench.regimes_of("strong") == ["strong"]
    with pytest.raises(UsageError, match="unknown regime"):
        bench.regimes_of("medium")
    weak, strong = bench.REGIMES["weak"], bench.REGIMES["strong"]
    assert (weak.recipe, weak.base_run) == ("recipes/tiny-cpu.yaml", "runs/tiny-cpu")
    assert (strong.recipe, strong.base_run) == ("recipes/tiny-strong.yaml", "runs/tiny-strong")
    for regime in (weak, strong):
        recipe = load_recipe(REPO / regime.recipe)
        assert len(recipe.stages) >= ablation.FULL.stages  # the budget's stages exist
    assert bench.regime_paths("weak", quick=False) == bench.RegimePaths(
        work=Path("runs/ablation-weak"),
        markdown=Path("bench/results/ablation-weak.md"),
        json=Path("bench/results/ablation-weak.json"),
        plot=Path("bench/results/ablation-weak.png"),
    )
    quick = bench.regime_paths("strong", quick=True, out="o", runs="r")
    assert quick.work == Path("r/ablation-strong-quick") and quick.markdown == Path(
        "o/ablation-strong-quick.md"
    )
    assert bench.summary_path("o", quick=False) == Path("o/ablation-summary.md")
    assert bench.summary_path("o", quick=True) == Path("o/ablation-summary-quick.md")
    with pytest.raises(UsageError):
        bench.regime_paths("both", quick=False)


def test_one_regime_overrides_need_one_regime(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--work", str(tmp_path), "--out", str(tmp_path)])
    assert e.value.code == 2 and "--regime weak or strong" in capsys.readouterr().err


def test_cached_measurements_are_named_by_the_model_and_the_settings_they_were_made_with(tmp_path):
    budget = ablation.Budget(seeds=(0,), steps_per_stage=4, eval_every=4, eval_limit=100)

    def full(base=BASE, seed=0, records=None):
        return ablation.variant_recipe(
            base, "full", seed=seed, budget=budget, base_run=tmp_path, profile_records=records
        )

    def profile_key(recipe, digest="ab" * 32):
        return bench.cache_key(digest, bench.profile_settings(recipe))

    def accuracy_key(recipe, digest="ab" * 32):
        return bench.cache_key(digest, bench.base_accuracy_settings(recipe))

    key = profile_key(full())
    assert len(key) == 12 and set(key) <= set("0123456789abcdef")
    assert profile_key(full(), digest="cd" * 32) != key  # another model (its digest) names another file
    # the same settings name the same file: across seeds (the seed is in the file name), with the
    # variants reading the profile from it, or a training-only key changed
    assert profile_key(full(seed=1)) == key
    assert profile_key(full(records=str(tmp_path / "p.jsonl"))) == key
    data = to_dict(BASE)
    data["train"]["learning_rate"] = 2 * BASE.train.learning_rate
    assert profile_key(full(recipe_from_data(data))) == key
    # another model, k, temperature or response budget is another profile
    assert profile_key(full(), digest="cd" * 32) != key
    for section, name, value in [
        ("profile", "k", 4),
        ("profile", "temperature", 0.7),
        ("profile", "max_new_tokens", 64),
        ("reward", "require_think", False),
    ]:
        data = to_dict(BASE)
        data[section][name] = value
        assert profile_key(full(recipe_from_data(data))) != key, name
    # the step-0 evaluation: the validation settings
    a = accuracy_key(full())
    assert accuracy_key(full(seed=1)) == a and accuracy_key(full(), digest="cd" * 32) != a
    other = ablation.Budget(seeds=(0,), steps_per_stage=4, eval_every=4, eval_limit=50)
    limited = ablation.variant_recipe(BASE, "full", seed=0, budget=other, base_run=tmp_path)
    assert accuracy_key(limited) != a
    work = bench.WorkDir(tmp_path)
    assert work.profile(3, key) == tmp_path / f"profile-s3-{key}.jsonl"
    assert work.base_accuracy(3, a) == tmp_path / f"base-s3-{a}.json"


def test_profile_histograms_and_searches_from_the_work_directory(tmp_path):
    work = bench.WorkDir(tmp_path / "work")
    key = "ab" * 6
    records = [
        {"problem_id": str(i), "correct": c, "k": 8, "mean_length": 10.0} for i, c in enumerate([0, 0, 3, 8])
    ]
    write_jsonl(work.profile(0, key), records)
    write_jsonl(work.profile(1, key), records[:2])
    hists = bench.profile_histograms({0: work.profile(0, key), 1: work.profile(1, key)})
    assert hists == {0: [2, 0, 0, 1, 0, 0, 0, 0, 1], 1: [2, 0, 0, 0, 0, 0, 0, 0, 0]}
    assert ablation.profile_histogram([]) == []
    with pytest.raises(ValueError, match="one k"):
        ablation.profile_histogram([*records, {"problem_id": "x", "correct": 1, "k": 4, "mean_length": 1.0}])
    lines = ablation.format_histograms(hists)
    assert lines[0] == "| seed | 0/8 | 1/8 | 2/8 | 3/8 | 4/8 | 5/8 | 6/8 | 7/8 | 8/8 | problems |"
    assert lines[2] == "| 0 | 2 | 0 | 0 | 1 | 0 | 0 | 0 | 0 | 1 | 4 |"
    assert lines[-1] == "| mean | 2 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 3 |"  # 0.5 rounds to 0

    # the searches: from the full variant's run at the first seed, stage by stage
    assert bench.search_records(work, ["vanilla", "full"], 0) == ([], "no variant searched")
    run = work.run("full", 0)
    points = [
        {"temperature": 0.6, "accuracy": 0.5, "diversity": 0.48},
        {"temperature": 0.8, "accuracy": 0.375, "diversity": 0.62},
    ]
    run.write_temperature(TemperatureRecord(stage=1, rule="exploration-start", chosen=0.6, points=points))
    run.write_temperature(TemperatureRecord(stage=2, rule="match-diversity", chosen=0.8, points=points[1:]))
    searches, source = bench.search_records(work, ["vanilla", "full"], 0)
    assert [s["stage"] for s in searches] == [1, 2] and "full variant, seed 0" in source
    table = ablation.format_searches(searches)
    assert table[0] == "| stage | rule | chosen | T=0.6 | T=0.8 |"
    assert table[2] == "| 1 | exploration-start | 0.6 | 50% / 0.48 | 38% / 0.62 |"
    assert table[3] == "| 2 | match-diversity | 0.8 |  | 38% / 0.62 |"


def test_the_summary_gathers_every_regime_found(tmp_path):
    assert bench.write_summary(tmp_path, quick=False) is None
    runs = [*_seeded("vanilla", [0.50, 0.51, 0.49]), *_seeded("full", [0.55, 0.57, 0.54], one_off=1000)]
    stats = ablation.summarize(runs, ["vanilla", "full"])
    for name in ("strong", "weak"):
        section = ablation.format_regime_section(
            name,
            bench.REGIMES[name].description,
            {0: [1, 2, 0, 0, 0, 0, 0, 0, 3]},
            [],
            "no variant searched",
            stats,
            f"PARAGRAPH {name}",
            "cmd",
            ablation.FULL,
        )
        bench.regime_paths(name, quick=False, out=tmp_path).json.write_text(
            json.dumps({"summary_section": section})
        )
    path = bench.write_summary(tmp_path, quick=False)
    assert path == tmp_path / "ablation-summary.md"
    text = path.read_text()
    assert text.index("## Weak regime") < text.index("## Strong regime")  # regimes in order
    assert "| 0 | 1 | 2 | 0 | 0 | 0 | 0 | 0 | 0 | 3 | 6 |" in text and "PARAGRAPH strong" in text
    assert "| full | 40.0 | 55.3 ± " in text
    assert bench.write_summary(tmp_path, quick=True) is None  # the quick results are apart


@pytest.mark.slow
def test_reduced_ablation_end_to_end(tiny_run, tmp_path):
    """Two variants, two stages of two steps each, on the session's tiny run: files, curves, the 0% rule."""
    recipe = RunLayout(tiny_run).recipe
    code = bench.main(
        [
            "--recipe",
            str(recipe),
            "--base-run",
            str(tiny_run),
            "--regime",
            "weak",
            "--seeds",
            "0",
            "--stages",
            "2",
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
    data = json.loads((tmp_path / "out" / "ablation-weak.json").read_text())
    per_step = 6 * 4  # the test recipe: 6 problems x 4 rollouts
    for variant in ("vanilla", "full"):
        curve = data["variants"][variant]["curve"]
        assert [x for x, _, _ in curve] == [0, 2 * per_step, 4 * per_step]
        assert all(0.0 <= m <= 1.0 for _, m, _ in curve)
    # vanilla spends nothing outside training; full's all-rollouts axis starts after its profile and search
    assert data["variants"]["vanilla"]["curve_all"] == data["variants"]["vanilla"]["curve"]
    assert data["variants"]["full"]["curve_all"][0][0] > 0
    assert (
        data["variants"]["full"]["curve_all"][-1][0]
        == 4 * per_step + data["variants"]["full"]["one_off_rollouts"]
    )
    # step 0 is the warm-started model, evaluated once per seed and cached by its weights and settings;
    # the profile too, shared by the seed's variants
    cached = list((tmp_path / "work").glob("base-s0-*.json"))
    assert len(cached) == 1 and len(list((tmp_path / "work").glob("profile-s0-*.jsonl"))) == 1
    assert data["variants"]["full"]["curve"][0][1] == json.loads(cached[0].read_text())["avg@k"]
    full_runs = [r for r in data["runs"] if r["variant"] == "full"]
    assert all(
        r["entered_steps"] > 0 for r in full_runs
    )  # some steps trained, so the next line means something
    assert data["variants"]["full"]["zero_advantage_share"] == 0.0  # substitution leaves no dead groups
    assert data["variants"]["vanilla"]["one_off_rollouts"] == 0
    assert data["variants"]["full"]["one_off_rollouts"] > 0
    table = (tmp_path / "out" / "ablation-weak.md").read_text()
    assert "| vanilla |" in table and "| full |" in table
    assert (tmp_path / "out" / "ablation-weak.png").stat().st_size > 0
    summary = (tmp_path / "out" / "ablation-summary.md").read_text()
    assert (
        "## Weak regime" in summary and "| seed | 0/8 |" in summary and "| 1 | exploration-start |" in summary
    )
    assert "Weak regime, one seed: no interval" in summary


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
    args = [
        "--quick",
        "--regime",
        "weak",
        "--base-run",
        str(base.root),
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path),
    ]
    assert bench.main([*args, "--recipe", str(REPO / "recipes" / "tiny-cpu.yaml")]) == 2
    assert "another warm-started model" in capsys.readouterr().err


@pytest.mark.slow
def test_overhead_bench_runs_three_trainers_on_identical_batches(tiny_run, tmp_path):
    overhead = load_bench("overhead")
    import trl

    import polaris.generation

    generate, can_compact = trl.GRPOTrainer._generate, polaris.generation.can_compact
    out = tmp_path / "overhead.md"
    run = RunLayout(tiny_run)
    args = ["--model", str(run.model("base")), "--data", str(run.split("arith-train"))]
    assert overhead.main([*args, "--steps", "2", "--rounds", "1", "--out", str(out)]) == 0
    assert trl.GRPOTrainer._generate is generate  # the timing patch is undone
    assert polaris.generation.can_compact is can_compact  # and so is the sampling one
    text = out.read_text()
    assert "identical in all three trainers at 3 of 3 steps" in text
    for label in overhead.KINDS.values():
        assert f"| {label} |" in text
    assert "Adapter / plain TRL on identical batches:" in text
