"""The last-number reward (``reward.function: polaris.reward.numeric:last_number``), on responses written by hand."""

from __future__ import annotations

import pytest

from polaris.reward.custom import make_reward
from polaris.reward.numeric import last_number, last_number_in


@pytest.mark.parametrize(("text", "value"), [
    ("3 + 5 = 8", 8.0),
    ("The answer is 1,000.", 1000.0),
    ("12-7 gives 5, so the answer is 12-7", 7.0),  # a minus between numbers is a subtraction
    ("x = -7", -7.0),
    ("It is 2.5 litres", 2.5),
    ("Final: \\boxed{42}.", 42.0),
    ("SmolLM2 says nothing", None),  # a digit glued to a word is not a number
    ("no numbers here", None),
])
def test_the_last_number_of_the_text(text, value):
    assert last_number_in(text) == value


def test_scores_compare_numbers_not_strings():
    responses = ["So 7 + 5 = 12.", "7 + 5 = 12, no wait, 13", "The total is 12.0 apples", "twelve", "12"]
    assert last_number(responses, ["12", "12", "12", "12", ["11", "12"]]) == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert last_number(["5"], ["five"]) == [0.0]  # a ground truth that is not a number never matches


def test_require_think_grades_only_after_the_thinking():
    responses = ["<think>maybe 3</think> it is 4", "it is 4", "<think>it is 4"]
    assert last_number(responses, ["4", "4", "4"], require_think=True) == [1.0, 0.0, 0.0]
    assert last_number(responses, ["4", "4", "4"], require_think=False) == [1.0, 1.0, 1.0]


def test_a_recipe_names_it_as_its_reward_function():
    reward = make_reward(require_think=False, function="polaris.reward.numeric:last_number")
    assert reward(["1 + 1 = 2", "1 + 1 = 3"], ["2", "2"]) == [1.0, 0.0]
