"""bench/real_model.py: the variant recipes it runs on SmolLM2 (no model is loaded here)."""

from __future__ import annotations

from pathlib import Path

from bench_scripts import load_bench
from polaris.config import load_recipe
from polaris.run.plan import build_plan

bench = load_bench("real_model")
BASE = load_recipe(str(bench.RECIPE))


def test_the_variants_switch_the_recipe_s_components_and_share_a_profile(tmp_path):
    profile = tmp_path / "records.jsonl"
    full = bench.variant_recipe(BASE, "full", seed=1, budget=bench.FULL)
    vanilla = bench.variant_recipe(BASE, "vanilla", seed=1, budget=bench.FULL, profile_records=profile)
    dapo = bench.variant_recipe(BASE, "dapo", seed=1, budget=bench.FULL, profile_records=profile)
    assert full.train.rescue and full.train.substitution and not full.train.dynamic_sampling
    assert [s.temperature for s in full.stages] == ["search", "search"]
    assert full.profile.max_correct is None and full.profile.records is None  # full makes the seed's profile
    assert not (vanilla.train.rescue or vanilla.train.substitution or vanilla.train.dynamic_sampling)
    assert (vanilla.train.epsilon_low, vanilla.train.epsilon_high, vanilla.train.dual_clip) == (0.2, 0.2, None)
    assert [s.temperature for s in vanilla.stages] == [1.0, 1.0]
    assert vanilla.profile.max_correct == vanilla.profile.k and vanilla.train.drop_threshold == 1.0
    assert dapo.train.dynamic_sampling and not (dapo.train.rescue or dapo.train.substitution)
    for recipe in (full, vanilla, dapo):
        assert recipe.seed == 1 and recipe.model.path == BASE.model.path
        assert [s.steps for s in recipe.stages] == [bench.FULL.steps_per_stage] * 2
        assert recipe.train.validation.benchmark == "arith-test" and recipe.train.validation.k == 8
        assert recipe.train.validation.every_steps == bench.FULL.eval_every
        assert all(s.val_temperature == BASE.eval.temperature for s in recipe.stages)
        assert recipe.eval.benchmarks == [] and not recipe.eval.evaluate_base
        assert build_plan(recipe).builtin_data  # the held-out split is made in each run directory
    assert vanilla.profile.records == dapo.profile.records == str(profile)


def test_the_quick_budget_is_one_short_stage():
    quick = bench.variant_recipe(load_recipe(str(bench.RECIPE), bench.QUICK_SETTINGS), "full", seed=0,
                                 budget=bench.QUICK)
    assert len(quick.stages) == 1 and quick.stages[0].steps == 1 and quick.train.validation.every_steps == 1
    assert quick.data.tiny.train_size == 32 and quick.train.validation.limit == 16
    assert (quick.temperature_search.problems, quick.temperature_search.n) == (8, 4)
    full = load_recipe(str(bench.RECIPE), bench.FULL_SETTINGS)
    drawn = bench.FULL.stages * bench.FULL.steps_per_stage * full.train.batch_prompts  # problems the run trains on
    assert (full.data.tiny.train_size, drawn) == (32, 16)
    assert (full.temperature_search.problems, full.temperature_search.n) == (8, 8)
    assert Path(bench.RECIPE).name == "smollm2-cpu.yaml"


def test_the_verdict_says_each_variant_s_gain_over_its_start_with_a_paired_interval():
    from types import SimpleNamespace

    def run(variant, seed, start, final):
        return SimpleNamespace(variant=variant, seed=seed, curve=[(0, start), (128, final)])

    # full: +20, +25, +30 over the start (mean 25, sd 5: half-width 4.303 * 5 / sqrt(3) = 12.42)
    # vanilla: +10, -10, +30 (mean 10, sd 20: half-width 49.69, the interval includes 0)
    runs = [run("full", s, b, b + g) for s, b, g in ((0, 0.30, 0.20), (1, 0.40, 0.25), (2, 0.35, 0.30))]
    runs += [run("vanilla", s, b, b + g) for s, b, g in ((0, 0.30, 0.10), (1, 0.40, -0.10), (2, 0.35, 0.30))]
    text = bench.gains_over_start(runs)
    assert text == ("Against the prepared model (step 0), paired by seed: full +25.0 [+12.6, +37.4] (a gain); "
                    "vanilla +10.0 [-39.7, +59.7] (no measured gain: the interval includes 0).")
    assert bench.gains_over_start(runs[:1]) == ("Against the prepared model (step 0), paired by seed: "
                                                "full +20.0 (one seed: no interval).")


def _search_inputs(recipe):
    """What the stage-1 temperature search of a run depends on."""
    from dataclasses import replace

    from polaris.config import to_dict

    first = recipe.stages[0]
    return (recipe.seed, to_dict(recipe.model), to_dict(recipe.data), to_dict(recipe.reward),
            to_dict(recipe.temperature_search), to_dict(replace(recipe.profile, records=None)),
            first.temperature, first.max_response_tokens,
            recipe.train.generation_backend, recipe.train.generation_batch_size)


def test_dapo_takes_the_full_recipe_s_first_search_whose_inputs_are_its_own(tmp_path):
    import yaml

    from polaris.config import to_dict
    from polaris.run.layout import RunLayout, TemperatureRecord, temperature_step
    from polaris.run.pipeline import RunDir

    profile = tmp_path / "records.jsonl"
    full = bench.variant_recipe(BASE, "full", seed=2, budget=bench.FULL)
    dapo = bench.variant_recipe(BASE, "dapo", seed=2, budget=bench.FULL, profile_records=profile)
    assert bench.SHARES_FULL_SEARCH == ("dapo",)
    assert _search_inputs(dapo) == _search_inputs(full)
    vanilla = bench.variant_recipe(BASE, "vanilla", seed=2, budget=bench.FULL, profile_records=profile)
    assert _search_inputs(vanilla) != _search_inputs(full)  # no filter, no search: nothing to share

    source, target = RunLayout(tmp_path / "full-s2"), RunLayout(tmp_path / "dapo-s2")
    step = temperature_step(1)
    record = TemperatureRecord(stage=1, rule="exploration-start", chosen=0.6, problems=16, n=8,
                               points=[{"temperature": 0.6, "accuracy": 0.4, "diversity": 0.9}])
    run = RunDir(source, full)
    run.step(step, lambda: (source.write_temperature(record), {"temperature": 0.6, "rule": "exploration-start"})[1])
    bench.share_first_search(source, target, dapo)
    assert target.read_temperature(1) == record
    assert target.read_summary().result(step) == {"temperature": 0.6, "rule": "exploration-start"}
    # `polaris run` on the recipe file the bench writes takes the directory as its own and skips the step
    path = tmp_path / "dapo-s2.yaml"
    path.write_text(yaml.safe_dump(to_dict(dapo), sort_keys=False), encoding="utf-8")
    from polaris.config import load_recipe as load

    assert RunDir(target, load(str(path))).done(step)
    bench.share_first_search(source, target, dapo)  # a second time: already there, left alone
    assert target.read_summary().done(step)
