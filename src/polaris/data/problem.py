"""The normalised problem record every part of Polaris works with.

Sources store ground truths as strings (``"025"``), floats (``142.0``) or lists of alternatives
(``['9.6\\n']``, ``['$\\frac{1}{2 n+2}$']``). The loaders turn each into ``str | list[str]``: a
float that holds an integer becomes its integer spelling (``142.0`` -> ``"142"``), surrounding
whitespace and one pair of enclosing ``$`` are removed. The verifier compares against every
alternative of a list (any match counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polaris.errors import PolarisError

GroundTruth = str | list[str]

#: The instruction the reference appends to every problem (docs/method.md § Evaluation protocol).
INSTRUCTION_SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."


class DataError(PolarisError, ValueError):
    """Bad input data; the message names the file, the row and the field."""

    def __init__(self, source: str, row: int | None, field_name: str | None, problem: str) -> None:
        where = source
        if row is not None:
            where += f", row {row}"
        if field_name is not None:
            where += f", field '{field_name}'"
        super().__init__(f"{where}: {problem}")
        self.source, self.row, self.field, self.problem = source, row, field_name, problem


@dataclass(frozen=True)
class Problem:
    """One problem: its id, the question without the instruction suffix, and the ground truth."""

    id: str
    problem: str
    answer: GroundTruth
    source: str = ""
    difficulty: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_row(self) -> dict[str, Any]:
        """The reference parquet schema (the reference implementation's data format), prompt with the instruction suffix."""
        return {
            "data_source": self.source,
            "prompt": [{"role": "user", "content": prompt_text(self.problem)}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": self.answer},
            "extra_info": {"id": self.id, "split": self.extra.get("split", ""), "difficulty": self.difficulty},
        }


def prompt_text(problem: str) -> str:
    """The user turn of the paper's protocol: ``{problem} Let's think step by step ...``."""
    return f"{problem} {INSTRUCTION_SUFFIX}"


def build_messages(problem: Problem | str) -> list[dict[str, str]]:
    """One user turn, to go through the model's chat template."""
    text = problem.problem if isinstance(problem, Problem) else problem
    return [{"role": "user", "content": prompt_text(text)}]


def strip_suffix(text: str) -> str:
    """The question without the reference instruction suffix (if it ends with it)."""
    text = text.rstrip()
    if text.endswith(INSTRUCTION_SUFFIX):
        text = text[: -len(INSTRUCTION_SUFFIX)].rstrip()
    return text
