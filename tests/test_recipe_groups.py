"""Rollout and Group: lengths, rewards, the informative test, immutability."""

import pytest

from polaris.recipe import Group, Rollout, is_correct


def make_group(rewards, pid="p"):
    return Group(pid, "42", tuple(Rollout(f"r{i}", (i,) * (i + 1), float(x)) for i, x in enumerate(rewards)))


def test_rollout_length_prefers_tokens_then_whitespace_words():
    assert Rollout("a b c", token_ids=(1, 2)).length == 2
    assert Rollout("a  b\tc\nd").length == 4
    assert Rollout("").length == 0


def test_rollout_stores_token_ids_as_tuple_and_checks_origin():
    assert Rollout("x", token_ids=[1, 2, 3]).token_ids == (1, 2, 3)
    with pytest.raises(ValueError, match="origin"):
        Rollout("x", origin="borrowed")


def test_is_correct_threshold_is_strictly_above_half():
    assert not is_correct(0.5)
    assert is_correct(0.51)
    assert not is_correct(0.0)
    assert is_correct(1.0)


def test_group_properties_by_hand():
    g = make_group([1, 0, 0, 1])
    assert g.n == 4
    assert g.rewards == (1.0, 0.0, 0.0, 1.0)
    assert g.accuracy == 0.5
    assert g.num_correct == 2
    assert g.is_informative
    assert not g.all_equal


@pytest.mark.parametrize(
    ("rewards", "informative"), [([0, 0, 0], False), ([1, 1, 1], False), ([0, 0, 1], True)]
)
def test_informative_means_strictly_between_zero_and_one(rewards, informative):
    g = make_group(rewards)
    assert g.is_informative is informative
    assert g.all_equal is (not informative)


def test_group_needs_rollouts_and_converts_lists():
    with pytest.raises(ValueError, match="no rollouts"):
        Group("p", "1", ())
    g = Group("p", "1", [Rollout("a")], prompt_ids=[5, 6])
    assert isinstance(g.rollouts, tuple)
    assert g.prompt_ids == (5, 6)


def test_with_rollouts_returns_new_group_and_keeps_the_rest():
    g = Group("p", ["1", "one"], (Rollout("a"),), prompt_ids=(9,), slot=3)
    h = g.with_rollouts([Rollout("b", reward=1.0)], slot=4)
    assert g.rollouts == (Rollout("a"),)
    assert h.rollouts == (Rollout("b", reward=1.0),)
    assert (h.problem_id, h.ground_truth, h.prompt_ids, h.slot) == ("p", ["1", "one"], (9,), 4)
