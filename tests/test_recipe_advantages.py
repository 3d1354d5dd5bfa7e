"""GRPO advantages with the unbiased std (docs/method.md § The objective), computed by hand."""

import math

import pytest

from polaris.recipe import Group, Rollout, batch_advantages, grpo_advantages


def test_one_correct_of_four_by_hand():
    # mean 0.25; squared deviations 0.5625 + 3 * 0.0625 = 0.75; unbiased var 0.75 / 3 = 0.25; std 0.5
    assert grpo_advantages([1, 0, 0, 0], eps=0.0) == [1.5, -0.5, -0.5, -0.5]
    # with the default eps the denominator is 0.500001 (the biased std would give 1.732... instead)
    assert grpo_advantages([1, 0, 0, 0]) == pytest.approx(
        [0.75 / 0.500001] + [-0.25 / 0.500001] * 3, rel=1e-12
    )


def test_two_correct_of_four_by_hand():
    # mean 0.5; squared deviations 4 * 0.25 = 1; var 1/3; std 0.57735
    expected = 0.5 / math.sqrt(1 / 3)  # 0.8660254
    assert grpo_advantages([1, 1, 0, 0], eps=0.0) == pytest.approx([expected, expected, -expected, -expected])
    assert expected == pytest.approx(0.8660254, abs=1e-7)


def test_zero_spread_and_single_rollout():
    assert grpo_advantages([1, 1, 1]) == [0.0, 0.0, 0.0]
    assert grpo_advantages([0, 0]) == [0.0, 0.0]
    assert grpo_advantages([1, 1], eps=0.0) == [0.0, 0.0]  # no 0/0 without eps
    assert grpo_advantages([1.0]) == [0.0]
    with pytest.raises(ValueError):
        grpo_advantages([])


def test_batch_advantages_per_group():
    groups = [
        Group("a", "1", tuple(Rollout("x", reward=r) for r in (1, 0, 0, 0))),
        Group("b", "1", tuple(Rollout("x", reward=r) for r in (0, 0))),
    ]
    assert batch_advantages(groups, eps=0.0) == [[1.5, -0.5, -0.5, -0.5], [0.0, 0.0]]
