"""The built-in task: deterministic per seed, disjoint splits, correct worked solutions."""

from __future__ import annotations

import ast
import operator
import random

import pytest

from polaris.data import arith

OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def independent_value(expression: str) -> int:
    """Evaluate our own generated expression through Python's parser (no eval)."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp):
            return OPS[type(node.op)](walk(node.left), walk(node.right))
        assert isinstance(node, ast.Constant) and isinstance(node.value, int)
        return node.value

    return walk(ast.parse(expression, mode="eval").body)


def test_solve_by_hand():
    steps, value = arith.solve("(98-5*19+39)*2+13-77")
    assert steps == ["5*19=95", "98-95=3", "3+39=42", "42*2=84", "84+13=97", "97-77=20"]
    assert value == 20
    assert arith.solve("7-(3-1)") == (["3-1=2", "7-2=5"], 5)


@pytest.mark.parametrize("level", [1, 2, 3, 4, 6, 8])
def test_problems_are_correct_and_in_range(level):
    rng = random.Random(level)
    for _ in range(200):
        p = arith.sample_problem(rng, level)
        assert len(p.steps) == level
        assert p.answer == independent_value(p.expression)
        for step in p.steps:
            lhs, result = step.split("=")
            assert 0 <= int(result) <= 99 and independent_value(lhs) == int(result)
        assert p.solution.startswith("<think>\n") and p.solution.endswith(f"</think>\n\\boxed{{{p.answer}}}")


def test_operands_widen_with_the_level():
    import re

    for level, bound in [(1, 9), (2, 19), (6, 59)]:
        rng = random.Random(level)
        numbers = [int(x) for _ in range(300) for x in re.findall(r"\d+", arith.sample_problem(rng, level).expression)]
        # + and − operands stay within the level's bound; a "x-(...)" minuend may reach 99
        assert max(numbers) <= 99 and sorted(numbers)[len(numbers) // 2] <= bound


def test_deterministic_per_seed_and_disjoint():
    a_train, a_test = arith.make_splits(3, 300, 100, [1, 2, 3, 4])
    b_train, b_test = arith.make_splits(3, 300, 100, [1, 2, 3, 4])
    assert a_train == b_train and a_test == b_test
    c_train, _ = arith.make_splits(4, 300, 100, [1, 2, 3, 4])
    assert c_train != a_train
    assert not {p.expression for p in a_train} & {p.expression for p in a_test}
    assert len({p.expression for p in a_test}) == 100
    levels = {p.level for p in a_train}
    assert levels == {1, 2, 3, 4}


def test_sft_stream_skips_held_out():
    _, test = arith.make_splits(0, 0, 120, [1])  # level 1 has few expressions: collisions are likely
    held_out = {p.expression for p in test}
    stream = arith.sft_stream(0, [1], held_out)
    assert all(next(stream).expression not in held_out for _ in range(2000))


def test_too_many_problems_for_the_levels_is_an_error():
    with pytest.raises(ValueError, match="too few distinct problems"):
        arith.make_splits(0, 1000, 1000, [1])


def test_problems_in_reference_schema():
    problems = arith.to_problems(arith.generate(random.Random(0), 5, [2]), "test")
    row = problems[0].to_row()
    assert row["reward_model"] == {"style": "rule", "ground_truth": problems[0].answer}
    assert row["prompt"][0]["content"].startswith("Compute ")
    assert problems[0].difficulty == 2.0
