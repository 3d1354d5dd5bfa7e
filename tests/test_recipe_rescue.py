"""Rollout rescue (docs/method.md § Informative batches): what is stored, what is rescued, and nothing else changes."""

import json
import random

import pytest

from polaris.recipe import Group, RescueStore, Rollout


def make_group(pid, rewards, tag="", slot=0):
    rollouts = tuple(Rollout(f"{pid}{tag}-{i}", (100 + i,), float(r)) for i, r in enumerate(rewards))
    return Group(pid, f"gt-{pid}", rollouts, prompt_ids=(7,), slot=slot)


def test_update_stores_one_correct_rollout_chosen_at_random():
    g = make_group("p", [0, 1, 0, 1])
    chosen = set()
    for seed in range(20):
        store = RescueStore()
        store.update([g], random.Random(seed))
        chosen.add(store.get("p").text)
    assert chosen == {"p-1", "p-3"}  # only correct ones, and both get picked


def test_update_ignores_groups_without_correct_and_non_sampled():
    store = RescueStore()
    store.update([make_group("a", [0, 0]), make_group("b", [1, 1])], random.Random(0))
    assert "a" not in store and "b" in store and len(store) == 1
    copied = Group("c", "x", (Rollout("c-0", reward=1.0, origin="copied"),))
    rescued = Group("d", "x", (Rollout("d-0", reward=1.0, origin="rescued"),))
    store.update([copied, rescued], random.Random(0))
    assert "c" not in store and "d" not in store


def test_most_recent_correct_response_wins():
    store = RescueStore()
    rng = random.Random(0)
    store.update([make_group("p", [1, 0], tag="old")], rng)
    assert store.get("p").text == "pold-0"
    store.update([make_group("p", [0, 1], tag="new")], rng)
    assert store.get("p").text == "pnew-1"
    store.update([make_group("p", [0, 0], tag="wrong")], rng)  # an all-wrong group keeps the stored one
    assert store.get("p").text == "pnew-1"
    # within one batch the later group of the same problem wins
    store.update([make_group("p", [1, 0], tag="first"), make_group("p", [1, 0], tag="second")], rng)
    assert store.get("p").text == "psecond-0"


def test_apply_only_touches_all_wrong_groups_with_a_stored_response():
    store = RescueStore({p: Rollout(f"stored-{p}", (1, 2, 3), 1.0, truncated=False) for p in "ACD"})
    a = make_group("A", [0, 0, 0, 0])  # all wrong, stored -> rescued
    b = make_group("B", [0, 0, 0, 0])  # all wrong, nothing stored -> untouched
    c = make_group("C", [1, 0, 0, 0])  # informative -> untouched
    d = make_group("D", [1, 1, 1, 1])  # all correct -> untouched
    out, count = store.apply([a, b, c, d], random.Random(0))
    assert count == 1
    assert out[1] is b and out[2] is c and out[3] is d
    new = out[0]
    changed = [i for i in range(4) if new.rollouts[i] != a.rollouts[i]]
    assert len(changed) == 1
    r = new.rollouts[changed[0]]
    assert (r.text, r.token_ids, r.reward, r.origin) == ("stored-A", (1, 2, 3), 1.0, "rescued")
    assert new.rewards.count(1.0) == 1 and new.accuracy == 0.25 and new.is_informative
    assert (new.problem_id, new.ground_truth, new.prompt_ids, new.slot) == ("A", "gt-A", (7,), 0)


def test_apply_sets_reward_to_one_whatever_was_stored():
    store = RescueStore({"A": Rollout("s", (1,), 0.9)})
    out, _ = store.apply([make_group("A", [0, 0])], random.Random(0))
    assert sorted(out[0].rewards) == [0.0, 1.0]


def test_apply_position_is_random_but_reproducible():
    store = RescueStore({"A": Rollout("s", (1,), 1.0)})
    g = make_group("A", [0] * 8)

    def position(seed):
        out, _ = store.apply([g], random.Random(seed))
        return [r.origin for r in out[0].rollouts].index("rescued")

    assert position(3) == position(3)
    assert len({position(s) for s in range(30)}) > 1


def test_update_then_apply_lets_a_sibling_group_rescue():
    store = RescueStore()
    rng = random.Random(0)
    batch = [make_group("p", [0, 0, 0], tag="x"), make_group("p", [0, 1, 0], tag="y")]
    store.update(batch, rng)
    out, count = store.apply(batch, rng)
    assert count == 1
    assert "py-1" in [r.text for r in out[0].rollouts]
    assert out[1] is batch[1]


def test_json_round_trip():
    store = RescueStore()
    store.update([make_group("p", [0, 1]), make_group("q", [1, 0])], random.Random(1))
    store = RescueStore({**{p: store.get(p) for p in store}, "t": Rollout("cut", (5,), 1.0, truncated=True)})
    back = RescueStore.from_dict(json.loads(json.dumps(store.to_dict())))
    assert len(back) == 3 and "p" in back and "q" in back
    for pid in ("p", "q", "t"):
        assert back.get(pid) == store.get(pid)
    assert back.get("t").truncated is True


def test_from_dict_rejects_bad_input():
    with pytest.raises(ValueError, match="version"):
        RescueStore.from_dict({"version": 99, "responses": {}})
    with pytest.raises(ValueError, match="'p'"):
        RescueStore.from_dict({"version": 1, "responses": {"p": {"text": "x"}}})
