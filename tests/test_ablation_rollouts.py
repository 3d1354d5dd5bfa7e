"""The ablation's rollout axes: training rollouts count what each step generated (``rollout/generated``:
dynamic sampling's extra rounds included); all rollouts add the profile and the temperature searches."""

from __future__ import annotations

import pytest

from bench_scripts import load_bench
from polaris.run.layout import PROFILE, RunLayout, RunSummary, StepRecord, TemperatureRecord, write_jsonl

ablation = load_bench("ablation_analysis")


def _run(root, records, stage_steps):
    run = RunLayout(root)
    write_jsonl(run.metrics, records)
    steps = {
        f"train:{i}": {"status": "done", "seconds": 1.0, "result": {"steps": n}}
        for i, n in enumerate(stage_steps, start=1)
    }
    run.write_summary(RunSummary.from_dict({"steps": steps}))
    for i in range(1, len(stage_steps) + 1):
        run.write_temperature(
            TemperatureRecord(stage=i, rule="fixed", chosen=1.0, points=[{}], problems=1, n=1)
        )
    return run


def _up(stage, step, generated=None):
    r = {"stage": stage, "step": step, "recipe/skipped": 0.0, "recipe/zero_advantage_fraction": 0.0}
    if generated is not None:
        r["rollout/generated"] = generated
    return r


def _ev(stage, step, acc):
    return {"stage": stage, "step": step, "eval/arith-test/avg@8": acc}


def test_extra_rollouts_move_the_curve_right(tmp_path):
    # 32 rollouts per plain step; step 2 of stage 1 generated 2 extra rounds (+24), stage 2's step 1 one (+8);
    # stage 2's step 2 has no metric (an older log): it counts 32
    records = [_up(1, 1, 32), _up(1, 2, 56), _ev(1, 2, 0.5), _up(2, 1, 40), _up(2, 2), _ev(2, 2, 0.6)]
    run = _run(tmp_path / "r", records, [2, 2])
    r = ablation.read_variant(
        run, "full", 0, 0.4, rollouts_per_step=32, profile_used=False, search_used=False
    )
    assert r.curve == [(0, 0.4), (32 + 56, 0.5), (32 + 56 + 40 + 32, 0.6)]


def test_plain_steps_keep_the_fixed_axis(tmp_path):
    records = [_up(1, 1, 32), _up(1, 2, 32), _ev(1, 2, 0.5)]
    run = _run(tmp_path / "r", records, [2])
    r = ablation.read_variant(
        run, "full", 0, 0.4, rollouts_per_step=32, profile_used=False, search_used=False
    )
    assert r.curve == [(0, 0.4), (64, 0.5)]


def test_mean_curve_over_seeds_that_spent_differently():
    a = [(0, 0.4), (100, 0.5), (220, 0.6)]
    b = [(0, 0.4), (120, 0.7), (240, 0.8)]
    out = ablation.mean_curve([a, b])
    assert [x for x, _, _ in out] == [0, 110, 230]  # each evaluation at the seeds' mean rollouts
    assert out[2][1] == pytest.approx(0.7)
    # curves of different lengths: only the shared rollout counts
    assert [x for x, _, _ in ablation.mean_curve([a, a[:2]])] == [0, 100]


# -- all rollouts: training generated (dynamic sampling's extra rounds included) + the one-off ones -------


def _searched_run(root, records, stage_steps, *, points=3, problems=10, n=4):
    """A run that profiled 50 problems x 8 and searched each stage over ``points`` temperatures."""
    run = _run(root, records, stage_steps)
    summary = run.read_summary()
    summary.steps[PROFILE] = StepRecord("done", 1.0, {"problems": 50, "k": 8})
    run.write_summary(summary)
    for i in range(1, len(stage_steps) + 1):
        run.write_temperature(
            TemperatureRecord(
                stage=i, rule="exploration-start", chosen=0.8, points=[{}] * points, problems=problems, n=n
            )
        )
    return run


def test_all_rollouts_count_the_extra_rounds_and_the_one_off_rollouts(tmp_path):
    # batch 32; dynamic sampling generated 56, 40, 32 and 96 (above the batch at three steps); evaluated at
    # the end of each stage. Profile 50 x 8 = 400 before training, each stage's search 3 x 10 x 4 = 120
    # before that stage.
    records = [_up(1, 1, 56), _up(1, 2, 40), _ev(1, 2, 0.5), _up(2, 1, 32), _up(2, 2, 96), _ev(2, 2, 0.6)]
    run = _searched_run(tmp_path / "r", records, [2, 2])
    r = ablation.read_variant(run, "dapo", 0, 0.4, rollouts_per_step=32, profile_used=True, search_used=True)
    assert r.curve == [(0, 0.4), (96, 0.5), (224, 0.6)]
    assert r.one_off_rollouts == 400 + 2 * 120
    assert r.curve_all == [(400 + 120, 0.4), (96 + 400 + 120, 0.5), (224 + 400 + 240, 0.6)]
    assert r.training_rollouts == 224 and r.all_rollouts == 224 + 640 == r.curve_all[-1][0]
    # without the search (a fixed temperature, still measured once: not counted)
    r = ablation.read_variant(run, "x", 0, 0.4, rollouts_per_step=32, profile_used=True, search_used=False)
    assert r.curve_all == [(400, 0.4), (496, 0.5), (624, 0.6)] and r.all_rollouts == 624
    # neither: both axes agree
    r = ablation.read_variant(run, "x", 0, 0.4, rollouts_per_step=32, profile_used=False, search_used=False)
    assert r.curve_all == r.curve and r.all_rollouts == 224


def test_summaries_and_comparisons_count_all_rollouts(tmp_path):
    # vanilla: plain steps, nothing outside training; dapo: extra rounds, profile and searches
    plain = [_up(1, 1, 32), _up(1, 2, 32), _ev(1, 2, 0.50)]
    extra = [_up(1, 1, 64), _up(1, 2, 48), _ev(1, 2, 0.56)]
    vanilla = ablation.read_variant(
        _run(tmp_path / "v", plain, [2]),
        "vanilla",
        0,
        0.4,
        rollouts_per_step=32,
        profile_used=False,
        search_used=False,
    )
    dapo = ablation.read_variant(
        _searched_run(tmp_path / "d", extra, [2]),
        "dapo",
        0,
        0.4,
        rollouts_per_step=32,
        profile_used=True,
        search_used=True,
    )
    stats = ablation.summarize([vanilla, dapo], ["vanilla", "dapo"])
    assert stats["vanilla"]["training_rollouts"] == 64 and stats["vanilla"]["all_rollouts"] == 64
    assert stats["dapo"]["training_rollouts"] == 112 and stats["dapo"]["all_rollouts"] == 112 + 520
    assert stats["dapo"]["curve_all"] == [(520, 0.4, 0.0), (632, 0.56, 0.0)]
    # dapo reaches vanilla's 0.50 at 112 * 0.10/0.16 = 70 training rollouts (more than vanilla's 64: its
    # extra rounds count), at 520 + 70 of all rollouts
    assert stats["dapo"]["share_of_vanilla_rollouts"] == pytest.approx(70 / 64)
    assert stats["dapo"]["share_with_one_off"] == pytest.approx((520 + 70) / 64)
    c = ablation.compare([vanilla, dapo], "dapo", "vanilla")
    assert c["rollouts"] == 632 - 64 and c["training_rollouts"] == 112 - 64
    assert c["points"] == pytest.approx(6.0) and c["ci"] is None and c["verdict"] == "no interval"
    assert ablation.compare([vanilla], "dapo", "vanilla") is None
