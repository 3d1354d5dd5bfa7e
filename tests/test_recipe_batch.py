"""The per-step pipeline: accuracies before rescue, then rescue, substitution and metrics."""

import random

from polaris.recipe import Group, RescueStore, Rollout, process_batch

INF, NONE, ALL = [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]


def make_batch(pattern, pids=None):
    pids = pids or [f"p{i}" for i in range(len(pattern))]
    return [
        Group(pid, "1", tuple(Rollout(f"{pid}-{j}", (i, j), float(r)) for j, r in enumerate(rw)), slot=i)
        for i, (pid, rw) in enumerate(zip(pids, pattern, strict=True))
    ]


def seeded_store(*pids):
    return RescueStore({pid: Rollout(f"stored-{pid}", (9,), 1.0) for pid in pids})


def test_full_pipeline_by_hand():
    batch = make_batch([INF, NONE, ALL, NONE, [1, 1, 0, 0], NONE])
    store = seeded_store("p1")
    out = process_batch(batch, store=store, rng=random.Random(0))
    # accuracies are the policy's own, before p1 is rescued
    assert out.accuracies == {"p0": 0.25, "p1": 0.0, "p2": 1.0, "p3": 0.0, "p4": 0.5, "p5": 0.0}
    # p1 rescued -> 3 informative (p0, p1, p4) > 6 // 3: p2, p3, p5 replaced by copies
    assert not out.skip
    assert not any(g.all_equal for g in out.groups)
    assert [g.slot for g in out.groups] == [0, 1, 2, 3, 4, 5]
    assert "stored-p1" in [r.text for r in out.groups[1].rollouts]
    assert sorted(out.groups[i].copied_from for i in (2, 3, 5)) == ["p0", "p1", "p4"]
    assert out.metrics["recipe/rescued"] == 1.0
    assert out.metrics["recipe/substituted"] == 3.0
    assert out.metrics["recipe/informative_before"] == 2 / 6
    assert out.metrics["recipe/informative_after"] == 1.0
    assert out.metrics["recipe/zero_advantage_fraction"] == 0.0
    assert out.metrics["rollout/reward_mean"] == 7 / 24  # 1 + 4 + 2 correct of 24, rescue not counted
    # the store learned this batch's correct answers
    assert set(store) == {"p0", "p1", "p2", "p4"}


def test_rescue_can_save_a_batch_from_the_skip_rule():
    batch = make_batch([INF, INF, NONE, NONE, NONE, NONE])  # 2 informative = 6 // 3 -> skip
    assert process_batch(batch, store=RescueStore(), rng=random.Random(0)).skip
    out = process_batch(batch, store=seeded_store("p2"), rng=random.Random(0))
    assert not out.skip and out.metrics["recipe/rescued"] == 1.0


def test_skipped_batch_returns_rescued_groups_unsubstituted():
    batch = make_batch([INF, NONE, NONE, NONE, NONE, NONE])
    out = process_batch(batch, store=seeded_store("p1"), rng=random.Random(0))
    # p0 and rescued p1: 2 informative <= 2 -> skip
    assert out.skip and out.metrics["recipe/skipped"] == 1.0
    assert out.groups[0] is batch[0] and out.groups[1].num_correct == 1
    assert out.groups[2:] == batch[2:]


def test_switches_and_store_none():
    batch = make_batch([INF, NONE, ALL, [1, 1, 0, 0]])
    store = seeded_store("p1")
    out = process_batch(batch, store=store, rng=random.Random(0), rescue=False)
    assert out.metrics["recipe/rescued"] == 0.0 and set(store) == {"p1"}
    out = process_batch(batch, store=None, rng=random.Random(0))
    assert out.metrics["recipe/rescued"] == 0.0
    out = process_batch(batch, store=None, rng=random.Random(0), substitute=False)
    assert not out.skip and out.groups == batch and out.metrics["recipe/zero_advantage_fraction"] == 0.5
    out = process_batch(make_batch([NONE, NONE, NONE]), store=None, rng=random.Random(0), substitute=False)
    assert not out.skip  # without substitution there is no skip rule


def test_min_informative_is_passed_through():
    batch = make_batch([INF, NONE, NONE, NONE])
    assert process_batch(batch, store=None, rng=random.Random(0)).skip  # 1 <= 4 // 3 = 1
    assert not process_batch(batch, store=None, rng=random.Random(0), min_informative=0).skip


def test_duplicate_problem_accuracies_are_averaged_and_siblings_rescue():
    batch = make_batch([NONE, [1, 1, 0, 0], INF], pids=["p", "p", "q"])
    out = process_batch(batch, store=RescueStore(), rng=random.Random(0))
    assert out.accuracies == {"p": 0.25, "q": 0.25}
    assert out.metrics["recipe/rescued"] == 1.0  # the first "p" group got its sibling's answer


def test_reproducible_for_a_seed():
    batch = make_batch([INF, NONE, ALL, NONE, [1, 1, 0, 0], NONE, [0, 1, 1, 1], NONE, ALL])

    def run(seed):
        return process_batch(batch, store=seeded_store("p1", "p3"), rng=random.Random(seed)).groups

    assert run("1:2:3") == run("1:2:3")
