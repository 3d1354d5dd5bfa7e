"""avg@k, unbiased pass@k, best@k and the per-step recipe metrics, by hand."""

import pytest

from polaris.recipe import (
    Group,
    Rollout,
    avg_at_k,
    batch_metrics,
    best_at_k,
    mean_pass_at_k,
    pass_at_k,
)


def test_avg_at_k():
    assert avg_at_k([[1, 0, 0, 0], [1, 1], [0]]) == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError):
        avg_at_k([])
    with pytest.raises(ValueError, match="problem 1"):
        avg_at_k([[1], []])


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 2) == 0.5  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(10, 3, 5) == pytest.approx(11 / 12)  # 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert pass_at_k(8, 3, 1) == 0.375  # pass@1 is c/n
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # fewer than k wrong samples: every k-subset has a correct one


@pytest.mark.parametrize(("n", "c", "k"), [(4, 1, 5), (4, 5, 2), (4, 1, 0), (0, 0, 1), (4, -1, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_and_best_at_k():
    # 0.5 and 1 - C(2,2)/C(4,2) = 5/6
    assert mean_pass_at_k([[1, 0, 0, 0], [1, 1, 0, 0]], 2) == pytest.approx((0.5 + 5 / 6) / 2)
    assert best_at_k([[0, 0], [0, 1], [1, 1]]) == pytest.approx(2 / 3)
    assert best_at_k([[0.5, 0.0]]) == 0.0  # 0.5 is not correct


def _group(pid, rewards, truncated=(), slot=0, origin="sampled"):
    rollouts = tuple(
        Rollout("w " * (i + 1), reward=float(r), truncated=i in truncated, origin=origin)
        for i, r in enumerate(rewards)
    )
    return Group(pid, "1", rollouts, slot=slot)


def test_batch_metrics_by_hand():
    g1 = _group("a", [1, 0, 0, 0])
    g2 = _group("b", [0, 0, 0, 0], truncated=(3,))
    g3 = _group("c", [1, 1, 1, 1])
    rescued = g2.with_rollouts((Rollout("s", reward=1.0, origin="rescued"), *g2.rollouts[1:]))
    copy = _group("a", [1, 0, 0, 0], slot=2, origin="copied")
    m = batch_metrics([g1, g2, g3], [g1, rescued, copy], rescued=1, substituted=1, skipped=False)
    assert m == pytest.approx(
        {
            "recipe/informative_before": 1 / 3,
            "recipe/informative_after": 1.0,
            "recipe/rescued": 1.0,
            "recipe/substituted": 1.0,
            "recipe/skipped": 0.0,
            "recipe/zero_advantage_fraction": 0.0,
            "recipe/all_correct_fraction": 1 / 3,
            "recipe/all_wrong_fraction": 1 / 3,
            "rollout/reward_mean": 5 / 12,
            "rollout/response_length": 2.5,  # each group has lengths 1, 2, 3, 4
            "rollout/truncation_rate": 1 / 12,
            "rollout/generated": 12.0,  # the three generated groups of four; the rescue adds none
        }
    )


def test_zero_advantage_fraction_without_substitution_and_when_skipped():
    groups = [_group("a", [1, 0]), _group("b", [0, 0]), _group("c", [1, 1])]
    m = batch_metrics(groups, groups, rescued=0, substituted=0, skipped=False)
    assert m["recipe/zero_advantage_fraction"] == pytest.approx(2 / 3)
    m = batch_metrics(groups, groups, rescued=0, substituted=0, skipped=True)
    assert m["recipe/zero_advantage_fraction"] == 0.0 and m["recipe/skipped"] == 1.0


def test_batch_metrics_empty_batch_is_all_zero():
    m = batch_metrics([], [], rescued=0, substituted=0, skipped=True)
    assert m["recipe/informative_before"] == 0.0 and m["rollout/reward_mean"] == 0.0
    assert all(k.startswith(("recipe/", "rollout/")) for k in m)


def test_ratio_by_length_means_each_length_quarter():
    from polaris.recipe import ratio_by_length

    # lengths 8 7 6 5 4 3 2 1 -> sorted shortest first: ratios 1.8 1.7 | 1.6 1.5 | 1.4 1.3 | 1.2 1.1
    ratios = [1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8]
    lengths = [8, 7, 6, 5, 4, 3, 2, 1]
    out = ratio_by_length(ratios, lengths)
    assert out == pytest.approx({"train/is_ratio_by_length/q1": 1.75, "train/is_ratio_by_length/q2": 1.55,
                                 "train/is_ratio_by_length/q3": 1.35, "train/is_ratio_by_length/q4": 1.15})
    # 5 responses: the first quarter takes the remainder (2, 1, 1, 1); ties keep their order
    out = ratio_by_length([1.0, 2.0, 3.0, 4.0, 5.0], [3, 3, 1, 2, 9])
    assert out == pytest.approx({"train/is_ratio_by_length/q1": 3.5, "train/is_ratio_by_length/q2": 1.0,
                                 "train/is_ratio_by_length/q3": 2.0, "train/is_ratio_by_length/q4": 5.0})
    assert ratio_by_length([0.9], [4]) == {"train/is_ratio_by_length/q1": 0.9}
    with pytest.raises(ValueError, match="2 ratios for 1 lengths"):
        ratio_by_length([1.0, 1.0], [3])
