"""The built-in task: multi-step integer arithmetic with worked solutions.

A problem chains ``level`` operations (+, −, ×) onto a starting number, with parentheses where
precedence needs them, e.g. level 3: ``Compute 7*(58-49)+16.`` Every intermediate result stays in
0..99 (with larger results a tiny model's loss sits in the result digits and it never becomes
competent). The worked solution computes one operation per line, inside ``<think>``, then gives
``\\boxed{answer}`` — the POLARIS answer format::

    <think>
    58-49=9
    7*9=63
    63+16=79
    </think>
    \\boxed{79}

Difficulty is the number of operations (the level) and the operand range, which widens with the
level (see :func:`_operand_max`). Generation is seeded; :func:`make_splits` builds train and test
sets that never share an expression.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from polaris.data.problem import Problem

MAX_VALUE = 99


@dataclass(frozen=True)
class ArithProblem:
    expression: str
    steps: tuple[str, ...]
    answer: int
    level: int

    @property
    def question(self) -> str:
        return f"Compute {self.expression}."

    @property
    def solution(self) -> str:
        """The worked solution in the answer format the reward expects."""
        return "<think>\n" + "\n".join(self.steps) + "\n</think>\n\\boxed{" + str(self.answer) + "}"


def _operand_max(level: int) -> int:
    """Operands of + and − grow with the level: 1..9 at level 1, 1..19 at level 2, ... 1..59 at 6.

    Small operands keep the number of arithmetic facts small, so the warm-started model's errors
    are mostly slips that compound along the chain — what RL can fix — rather than facts it
    never learned (with operands up to 99 from level 4, RL gained 5 points instead of 7–9).
    """
    return min(MAX_VALUE, 9 + 10 * (level - 1))


def _build_expression(rng: random.Random, level: int) -> str:
    """A random expression with ``level`` operations whose construction keeps values in 0..99."""
    hi = _operand_max(level)
    value = rng.randint(1, hi)
    expr, top = str(value), "atom"  # top: the outermost operator of expr ("atom", "+-" or "*")
    for _ in range(level):
        choices = ["+", "-", "*"] if value <= MAX_VALUE // 2 else ["+", "-"]
        op = rng.choice(choices)
        if op == "+" and value >= MAX_VALUE:
            op = "-"
        if op == "*":
            m = rng.randint(2, min(9, MAX_VALUE // max(value, 1)))
            inner = f"({expr})" if top == "+-" else expr
            expr = f"{m}*{inner}" if rng.random() < 0.5 else f"{inner}*{m}"
            value, top = value * m, "*"
        elif op == "+":
            x = rng.randint(1, min(hi, MAX_VALUE - value))
            expr = f"{x}+{expr}" if rng.random() < 0.3 else f"{expr}+{x}"
            value, top = value + x, "+-"
        elif value > 0 and (rng.random() < 0.6 or value >= MAX_VALUE):
            x = rng.randint(1, min(hi, value))
            expr = f"{expr}-{x}"
            value, top = value - x, "+-"
        else:  # the running value is taken from a larger number
            x = rng.randint(max(value, 1), min(MAX_VALUE, value + hi))
            inner = f"({expr})" if top == "+-" else expr
            expr = f"{x}-{inner}"
            value, top = x - value, "+-"
    return expr


_TOKEN = re.compile(r"\d+|[-+*()]")


def solve(expression: str) -> tuple[list[str], int]:
    """Worked steps of an expression in the usual order (precedence, then left to right).

    A small recursive-descent evaluator over our own generated expressions (digits, + − ×,
    parentheses); it is never applied to model output.
    """
    tokens = _TOKEN.findall(expression)
    pos = 0
    steps: list[str] = []

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> int:
        tok = take()
        if tok == "(":
            v = expr()
            take()  # ")"
            return v
        return int(tok)

    def term() -> int:
        v = atom()
        while peek() == "*":
            take()
            w = atom()
            steps.append(f"{v}*{w}={v * w}")
            v = v * w
        return v

    def expr() -> int:
        v = term()
        while peek() in ("+", "-"):
            op = take()
            w = term()
            r = v + w if op == "+" else v - w
            steps.append(f"{v}{op}{w}={r}")
            v = r
        return v

    value = expr()
    return steps, value


def _in_range(step: str) -> bool:
    return 0 <= int(step.rsplit("=", 1)[1]) <= MAX_VALUE


def sample_problem(rng: random.Random, level: int) -> ArithProblem:
    """One problem with ``level`` operations; every intermediate result of its solution in 0..99."""
    if level < 1:
        raise ValueError(f"level must be >= 1, got {level}")
    while True:
        expression = _build_expression(rng, level)
        steps, value = solve(expression)
        if all(_in_range(s) for s in steps):
            return ArithProblem(expression, tuple(steps), value, level)


def generate(rng: random.Random, count: int, levels: Sequence[int]) -> list[ArithProblem]:
    """``count`` problems, levels drawn uniformly from ``levels``."""
    return [sample_problem(rng, rng.choice(list(levels))) for _ in range(count)]


def to_problems(items: Iterable[ArithProblem], split: str) -> list[Problem]:
    return [
        Problem(
            id=f"{split}-{i}",
            problem=p.question,
            answer=str(p.answer),
            source="arith",
            difficulty=float(p.level),
            extra={"split": split, "solution": p.solution},
        )
        for i, p in enumerate(items)
    ]


def make_splits(
    seed: int, n_train: int, n_test: int, levels: Sequence[int]
) -> tuple[list[ArithProblem], list[ArithProblem]]:
    """Disjoint train and test sets: the test set is drawn first; train skips its expressions.

    Raises ``ValueError`` when the levels hold too few distinct expressions for the sizes asked.
    """
    seen: set[str] = set()
    test = _draw_unique(random.Random(f"arith-test:{seed}"), n_test, levels, seen)
    train = _draw_unique(random.Random(f"arith-train:{seed}"), n_train, levels, seen)
    return train, test


def _draw_unique(rng: random.Random, count: int, levels: Sequence[int], seen: set[str]) -> list[ArithProblem]:
    out: list[ArithProblem] = []
    misses = 0
    while len(out) < count:
        p = sample_problem(rng, rng.choice(list(levels)))
        if p.expression in seen:
            misses += 1
            if misses > 20 * count + 1000:
                raise ValueError(
                    f"levels {list(levels)} hold too few distinct problems for {count} more "
                    f"(found {len(out)}): ask for fewer problems or add harder levels"
                )
            continue
        seen.add(p.expression)
        out.append(p)
    return out


def sft_stream(seed: int, levels: Sequence[int], exclude: set[str]) -> Iterable[ArithProblem]:
    """An endless stream of fresh worked examples for the warm start, never a held-out expression."""
    rng = random.Random(f"arith-sft:{seed}")
    while True:
        p = sample_problem(rng, rng.choice(list(levels)))
        if p.expression not in exclude:
            yield p
