"""The reference of every recipe key (``docs/recipe-file.md``), generated from the schema's dataclasses:
``python -m polaris.config > docs/recipe-file.md``.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from typing import Any

from polaris.config.schema import RecipeConfig, StageSettings


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (the text ``--help`` shows)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    out = {}
    for node, after in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            out[node.target.id] = " ".join(after.value.value.split())
    return out


def _type_name(tp: Any) -> str:
    text = str(tp) if not isinstance(tp, type) else tp.__name__
    text = text.replace("typing.", "").replace("NoneType", "null").replace("polaris.config.schema.", "").replace("polaris.config.", "")
    return text.replace(" | ", " or ").replace("Literal", "one of ")


def recipe_reference() -> str:
    """Every recipe key with its type, default and meaning, as Markdown (``docs/recipe-file.md``)."""
    lines = [
        "# Recipe file reference",
        "",
        "<!-- Written by `python -m polaris.config > docs/recipe-file.md`; tests/test_commands.py checks that",
        "     it is current. -->",
        "",
        "A recipe is one YAML file; every key below can also be set on the command line of `polaris run`,",
        "`polaris profile`, `polaris temperature`, `polaris train` and `polaris eval` with",
        "`--set KEY=VALUE` (repeatable; the value is YAML), for example `--set train.learning_rate=1e-5`,",
        "`--set stages[1].steps=40` or `--set eval.benchmarks=[aime24,amc23]`. Keys a file leaves out take",
        "the defaults below. What each mechanism does, and the paper's numbers: docs/method.md.",
        "",
    ]

    def section(cls: type, prefix: str, title: str) -> None:
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        instance = cls()
        nested = []
        lines.extend([f"## `{title}`", "", "| key | type | default | meaning |", "|---|---|---|---|"])
        for f in dataclasses.fields(cls):
            if f.name.startswith("__"):
                continue
            value = getattr(instance, f.name)
            if dataclasses.is_dataclass(value):
                nested.append((type(value), f"{prefix}{f.name}."))
                lines.append(f"| `{prefix}{f.name}` | section | | {docs.get(f.name, '')} (below) |")
                continue
            if f.name == "stages":
                nested.append((StageSettings, "stages[i]."))
                lines.append(f"| `stages` | list of stages | one stage | {docs.get(f.name, '')} (below) |")
                continue
            default = "null" if value is None else json_default(value)
            lines.append(f"| `{prefix}{f.name}` | {_type_name(hints[f.name])} | `{default}` | {docs.get(f.name, '')} |")
        lines.append("")
        for sub, sub_prefix in nested:
            section(sub, sub_prefix, sub_prefix.rstrip("."))

    section(RecipeConfig, "", "top level")
    return "\n".join(lines).rstrip() + "\n"


def json_default(value: Any) -> str:
    import json

    return json.dumps(value) if not isinstance(value, str) else value
