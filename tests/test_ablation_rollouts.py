"""The ablation's rollout axis counts what each step generated (``rollout/generated``: dynamic sampling's
extra rounds included)."""

from __future__ import annotations

import pytest

from polaris.run import ablation
from polaris.run.layout import RunLayout, TemperatureRecord, write_jsonl


def _run(root, records, stage_steps):
    run = RunLayout(root)
    write_jsonl(run.metrics, records)
    steps = {
        f"train:{i}": {"status": "done", "seconds": 1.0, "result": {"steps": n}}
        for i, n in enumerate(stage_steps, start=1)
    }
    run.write_summary({"steps": steps})
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
