"""Intra-batch informative substitution (docs/method.md § Informative batches), done right: rewards travel with tokens."""

import random
from collections import Counter

from polaris.recipe import Group, Rollout, batch_advantages, substitute_informative

INF, NONE, ALL = [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]


def make_batch(pattern):
    """One group per reward list; problem ids g0, g1, ..., slots 0, 1, ..."""
    return [
        Group(
            f"g{i}",
            [f"ans{i}"],
            tuple(Rollout(f"g{i}-{j}", (i, j), float(r)) for j, r in enumerate(rewards)),
            prompt_ids=(i,),
            slot=i,
        )
        for i, rewards in enumerate(pattern)
    ]


def test_every_non_informative_group_becomes_a_full_copy():
    batch = make_batch([INF, NONE, [1, 1, 0, 0], [0, 1, 1, 1], ALL, NONE])
    res = substitute_informative(batch, random.Random(0))
    assert (res.substituted, res.informative_before, res.skip) == (3, 3, False)
    assert not any(g.all_equal for g in res.groups)
    for i in (0, 2, 3):
        assert res.groups[i] is batch[i]
    sources = []
    for slot in (1, 4, 5):
        copy = res.groups[slot]
        src = batch[int(copy.copied_from[1:])]
        sources.append(src.slot)
        assert copy.slot == slot
        assert (copy.problem_id, copy.ground_truth, copy.prompt_ids) == (
            src.problem_id,
            src.ground_truth,
            src.prompt_ids,
        )
        assert copy.rewards == src.rewards
        assert [(r.text, r.token_ids) for r in copy.rollouts] == [(r.text, r.token_ids) for r in src.rollouts]
        assert {r.origin for r in copy.rollouts} == {"copied"}
    assert sorted(sources) == [0, 2, 3]  # each informative source used once


def test_copies_are_separate_groups_with_the_sources_advantages():
    batch = make_batch([INF, NONE, INF, [1, 1, 0, 0]])  # 3 informative > 4 // 3 = 1
    res = substitute_informative(batch, random.Random(0))
    copy = res.groups[1]
    src = batch[int(copy.copied_from[1:])]
    adv = batch_advantages(res.groups)
    assert len(adv) == 4 and adv[1] == batch_advantages([src])[0]


def test_skip_threshold_exactly_at_floor_b_over_3():
    # B = 6: floor(6/3) = 2 informative -> skip, 3 -> substitute
    two = make_batch([INF, INF, NONE, NONE, ALL, NONE])
    res = substitute_informative(two, random.Random(0))
    assert res.skip and res.substituted == 0 and res.informative_before == 2 and res.groups == two
    three = make_batch([INF, INF, INF, NONE, ALL, NONE])
    assert not substitute_informative(three, random.Random(0)).skip
    # B = 7: floor(7/3) = 2 again; B = 9: 3 skip, 4 no skip
    assert substitute_informative(make_batch([INF] * 2 + [NONE] * 5), random.Random(0)).skip
    assert not substitute_informative(make_batch([INF] * 3 + [NONE] * 4), random.Random(0)).skip
    assert substitute_informative(make_batch([INF] * 3 + [NONE] * 6), random.Random(0)).skip
    assert not substitute_informative(make_batch([INF] * 4 + [NONE] * 5), random.Random(0)).skip


def test_zero_informative_always_skips():
    batch = make_batch([NONE, ALL, NONE])
    for m in (None, 0, -1):
        res = substitute_informative(batch, random.Random(0), min_informative=m)
        assert res.skip and res.groups == batch and res.substituted == 0


def test_explicit_min_informative_and_reuse_when_too_few_sources():
    batch = make_batch([INF, NONE, ALL, NONE, NONE, NONE])
    res = substitute_informative(batch, random.Random(0), min_informative=0)
    assert not res.skip and res.substituted == 5
    assert all(g.problem_id == "g0" for g in res.groups)


def test_sources_spread_evenly_when_reused():
    # 4 informative (> 10 // 3 = 3), 6 to replace: every source once, two of them twice
    batch = make_batch([INF] * 4 + [NONE] * 6)
    for seed in range(10):
        res = substitute_informative(batch, random.Random(seed))
        counts = Counter(g.copied_from for g in res.groups if g.copied_from)
        assert sorted(counts.values()) == [1, 1, 2, 2]


def test_reproducible_per_seed_and_different_across_seeds():
    batch = make_batch([INF] * 6 + [NONE] * 6)

    def assignment(seed):
        return tuple(g.copied_from for g in substitute_informative(batch, random.Random(seed)).groups)

    assert assignment(7) == assignment(7)
    assert len({assignment(seed) for seed in range(10)}) > 1
    assert assignment(1) != assignment(2)
