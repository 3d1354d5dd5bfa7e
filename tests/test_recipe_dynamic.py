"""Dynamic sampling's decisions and overlong shaping, computed by hand (polaris.recipe.dynamic, .overlong)."""

import random

import pytest

from polaris.recipe import (
    Group,
    Rollout,
    choose_extra_problems,
    dynamic_metrics,
    extra_request,
    fill_slots,
    overlong_metrics,
    overlong_penalty,
    process_batch,
    shaped_rewards,
    zero_advantage_slots,
)

INF, NONE, ALL = [1, 0], [0, 0], [1, 1]


def group(pid, rewards, slot=0, lengths=None):
    lengths = lengths or [2] * len(rewards)
    rollouts = tuple(
        Rollout(f"{pid}-{j}", tuple(range(n)), float(r))
        for j, (r, n) in enumerate(zip(rewards, lengths, strict=True))
    )
    return Group(pid, "1", rollouts, prompt_ids=(len(pid),), slot=slot)


def test_zero_advantage_slots_are_the_all_equal_groups():
    batch = [group("a", ALL), group("b", INF), group("c", NONE), group("d", [0.5, 0.5])]
    assert zero_advantage_slots(batch) == [
        0,
        2,
        3,
    ]  # 0.5/0.5 is "informative" by its mean, yet has no advantage


def test_extra_request_by_hand():
    assert extra_request(0, 0.5, batch_prompts=8) == 0
    assert extra_request(3, 0.5, batch_prompts=8) == 6  # 3 / 0.5
    assert extra_request(3, 0.3, batch_prompts=16) == 10  # 3 / 0.3 = 10 (no float overshoot to 11)
    assert extra_request(5, 0.25, batch_prompts=8) == 8  # 20 wanted, at most a batch
    assert extra_request(3, 0.0, batch_prompts=8) == 8  # nothing useful seen yet: a whole batch
    assert extra_request(3, 1.0, batch_prompts=8) == 3  # never fewer than the missing count
    assert extra_request(3, 1.0, batch_prompts=8, processes=2) == 4  # an equal share per process
    assert extra_request(3, 0.5, batch_prompts=8, processes=4) == 8
    with pytest.raises(ValueError):
        extra_request(1, 0.5, batch_prompts=0)


def test_choose_extra_problems_prefers_unsampled_then_reuses_the_pool():
    pool = ["a", "b", "c", "d"]
    assert sorted(choose_extra_problems(pool, {"a", "b"}, 2, random.Random(0))) == ["c", "d"]
    out = choose_extra_problems(pool, {"a", "b"}, 5, random.Random(0))
    assert len(out) == 5 and sorted(out[:2]) == ["c", "d"] and len(set(out[2:])) == 3  # then a fresh pass
    assert out == choose_extra_problems(pool, {"a", "b"}, 5, random.Random(0))  # deterministic per generator
    assert choose_extra_problems(pool, set(), 0, random.Random(0)) == []
    assert (
        len(choose_extra_problems(["a"], {"a"}, 3, random.Random(0))) == 3
    )  # repeats when nothing else is left
    with pytest.raises(ValueError, match="empty"):
        choose_extra_problems([], set(), 1, random.Random(0))


def test_fill_slots_puts_useful_groups_into_zero_advantage_slots_in_order():
    batch = [group("p0", ALL, 0), group("p1", INF, 1), group("p2", NONE, 2)]
    extra = [group("x0", NONE), group("x1", INF), group("x2", [0, 1]), group("x3", INF)]
    fill = fill_slots(batch, extra)
    assert fill.placements == [(0, 1), (2, 2)] and fill.missing == 0
    assert [g.problem_id for g in fill.groups] == ["x1", "p1", "x2"]
    assert [g.slot for g in fill.groups] == [0, 1, 2]  # the replaced group's slot
    assert fill.groups[0].copied_from is None and fill.groups[0].rewards == (1.0, 0.0)
    assert fill.groups[0].prompt_ids == (2,)  # its own prompt, not the replaced one's
    assert fill.groups[1] is batch[1]
    short = fill_slots(batch, [group("x0", NONE), group("x1", INF)])
    assert short.placements == [(0, 1)] and short.missing == 1 and short.groups[2] is batch[2]


def test_dynamic_metrics():
    assert dynamic_metrics(rounds=2, filled=3, missing=0) == {
        "recipe/dynamic_rounds": 2.0,
        "recipe/dynamic_filled": 3.0,
        "recipe/dynamic_cap_hit": 0.0,
    }
    assert dynamic_metrics(rounds=4, filled=1, missing=2)["recipe/dynamic_cap_hit"] == 1.0


def test_process_batch_logs_and_counts_every_sampled_group():
    original = [group("p0", ALL, 0), group("p1", INF, 1)]
    extra = [group("x0", NONE), group("x1", [0, 1])]
    fill = fill_slots(original, extra)
    out = process_batch(
        fill.groups,
        store=None,
        rng=random.Random(0),
        rescue=False,
        substitute=False,
        sampled=[*original, *extra],
    )
    assert out.accuracies == {"p0": 1.0, "p1": 0.5, "x0": 0.0, "x1": 0.5}  # the dropped groups are logged too
    assert out.metrics["rollout/generated"] == 8.0  # four groups of two
    assert out.metrics["recipe/informative_before"] == 0.5 and out.metrics["recipe/informative_after"] == 1.0
    assert out.metrics["recipe/zero_advantage_fraction"] == 0.0 and not out.skip
    assert out.metrics["rollout/reward_mean"] == 4 / 8
    plain = process_batch(original, store=None, rng=random.Random(0), rescue=False, substitute=False)
    assert plain.metrics["rollout/generated"] == 4.0 and plain.accuracies == {"p0": 1.0, "p1": 0.5}


# -- overlong shaping (DAPO eq. 13) ------------------------------------------------------------------------


def test_overlong_penalty_by_hand():
    # L_max = 10, L_cache = 4: free up to 6 tokens, then -1/4 per token, -1 beyond the budget
    pen = [overlong_penalty(n, max_length=10, buffer=4) for n in (0, 6, 7, 8, 10, 11)]
    assert pen == [0.0, 0.0, -0.25, -0.5, -1.0, -1.0]
    assert overlong_penalty(8, max_length=10, buffer=4, factor=0.5) == -0.25
    assert overlong_penalty(11, max_length=10, buffer=4, factor=0.5) == -0.5
    assert overlong_penalty(10_000, max_length=10, buffer=0) == 0.0  # buffer 0: off
    assert overlong_penalty(3, max_length=4, buffer=4) == -0.75  # the whole budget as buffer
    with pytest.raises(ValueError):
        overlong_penalty(3, max_length=4, buffer=5)
    with pytest.raises(ValueError):
        overlong_penalty(3, max_length=4, buffer=-1)


def test_shaped_rewards_and_metrics_by_hand():
    groups = [group("a", [1, 0], lengths=[5, 8]), group("b", [1, 1], lengths=[10, 6])]
    shaped = shaped_rewards(groups, max_length=10, buffer=4)
    assert shaped == [[1.0, -0.5], [0.0, 1.0]]
    assert [g.rewards for g in groups] == [(1.0, 0.0), (1.0, 1.0)]  # correctness is untouched
    m = overlong_metrics(groups, shaped)
    assert m["rollout/overlong_penalty_mean"] == pytest.approx((0 - 0.5 - 1.0 + 0) / 4)
    assert m["rollout/overlong_fraction"] == 0.5
    assert m["rollout/reward_shaped_mean"] == pytest.approx(1.5 / 4)
    assert shaped_rewards(groups, max_length=10, buffer=0) == [[1.0, 0.0], [1.0, 1.0]]
    assert overlong_metrics([], [])["rollout/overlong_fraction"] == 0.0
