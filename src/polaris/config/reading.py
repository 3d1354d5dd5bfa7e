"""Reading recipe files: YAML into the schema, ``--set KEY=VALUE`` overrides, and pydantic's errors
rewritten into one line per key, ``FILE: stages[1].temperature: expected a number or 'search'``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polaris.config.schema import RecipeConfig, to_dict
from polaris.errors import RecipeError

# -- reading recipe files ---------------------------------------------------------------------------
#
# pydantic validates the YAML data against the dataclasses above (strict types: a string is not a
# number, a number is not a flag; unknown keys are refused). Its errors are rewritten into one line
# per key, ``FILE: stages[1].temperature: expected a number or 'search'``.


_MESSAGES = {
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dataclass_type": "expected a mapping",
    "dataclass_exact_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "none_required": "expected null",
    "finite_number": "expected a finite number",
}


def _field_names(tp: Any) -> set[str] | None:
    return {f.name for f in dataclasses.fields(tp)} if dataclasses.is_dataclass(tp) else None


def _error_path(cls: type, loc: tuple[Any, ...]) -> str:
    """``stages[1].temperature`` from pydantic's location; union-member tags are left out."""
    out, tp = "", cls
    for part in loc:
        names = _field_names(tp)
        if isinstance(part, int) and typing.get_origin(tp) is list:
            out += f"[{part}]"
            tp = typing.get_args(tp)[0]
        elif names is not None and part in names:
            out += f".{part}" if out else str(part)
            tp = typing.get_type_hints(tp)[part]
            while typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[dataclass] or list
                args = [a for a in typing.get_args(tp) if a is not type(None)]
                inner = [a for a in args if dataclasses.is_dataclass(a) or typing.get_origin(a) is list]
                tp = inner[0] if inner else None
        else:
            break  # a union member's tag (``float``, ``literal['search']``): not part of the key
    return out


def _error_text(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "unexpected_keyword_argument":
        return "unknown key"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        text = f"{error['input']!r} is not one of {error['ctx']['expected']}"
        if isinstance(error["input"], bool) and "'off'" in error["ctx"]["expected"]:  # YAML 1.1 reads off/no as false
            text += " (YAML reads a bare off as false: write 'off' in quotes)"
        return text
    return f"{_MESSAGES.get(kind, error['msg'])}, got {error['input']!r}" if kind in _MESSAGES else error["msg"]


def recipe_from_data(data: Any, cls: type | None = None) -> Any:
    """Validate plain data (parsed YAML) into ``cls`` (default :class:`RecipeConfig`).

    Raises :class:`RecipeError` with one line per bad key: ``key.path: what is wrong``; an unknown
    key lists the valid keys of its section.
    """
    import json

    import pydantic

    cls = cls or RecipeConfig
    if not isinstance(data, dict):
        raise RecipeError(f"expected a mapping of recipe keys, got {type(data).__name__}")
    try:
        text = json.dumps(data, default=str, allow_nan=True)
        return pydantic.TypeAdapter(cls).validate_json(text)
    except pydantic.ValidationError as e:
        lines: dict[str, list[str]] = {}
        for error in e.errors():
            loc = tuple(error["loc"])
            text = _error_text(error)
            if text == "unknown key":
                parent = _error_path(cls, loc[:-1])
                path = f"{parent}.{loc[-1]}" if parent else str(loc[-1])
                import difflib

                keys = sorted(valid_keys(cls, parent))
                near = difflib.get_close_matches(str(loc[-1]), keys, n=1)
                text = (f"unknown key{f' (did you mean {near[0]!r}?)' if near else ''}; "
                        f"valid keys{' of ' + parent if parent else ''}: {keys}")
            else:
                path = _error_path(cls, loc)
            lines.setdefault(path, []).append(text)
        raise RecipeError("; ".join(f"{p + ': ' if p else ''}{' or '.join(dict.fromkeys(m))}"
                                    for p, m in lines.items())) from None


def valid_keys(cls: type, path: str = "") -> list[str]:
    """The keys of the section at ``path`` (``train.engine``; list items as ``stages[0]``)."""
    tp: Any = cls
    for part in [p for p in re.split(r"\.|\[\d+\]", path) if p]:
        tp = typing.get_type_hints(tp)[part]
        while typing.get_origin(tp) is list or typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return [f.name for f in dataclasses.fields(tp)]


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], *, where: str = "--set",
                    cls: type | None = None) -> dict[str, Any]:
    """``data`` with each ``KEY=VALUE`` set (``train.learning_rate=1e-5``, ``stages[1].steps=40``).

    Values are read as YAML (``true``, ``null``, ``[0.6, 0.8]``, ``{steps: 3}``); a key into a list
    names an existing item. A section the data leaves out is filled with its defaults (of ``cls``,
    default :class:`RecipeConfig`) before a key inside it is set, so ``stages[0].steps=3`` works on an
    empty recipe. Unknown keys are caught when the result is validated.
    """
    import yaml

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"{where} {item!r}: expected KEY=VALUE, e.g. train.learning_rate=1e-5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise RecipeError(f"{where} {key}: the value is not valid YAML ({e})") from None
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
            value = float(value)  # YAML 1.1 reads 1e-5 as text; on the command line it means a number
        parts = re.findall(r"([^.\[\]]+)|\[(\d+)\]", key)
        node: Any = out
        defaults: Any = to_dict((cls or RecipeConfig)())
        for i, (name, index) in enumerate(parts):
            last = i == len(parts) - 1
            if index:
                if not isinstance(node, list) or int(index) >= len(node):
                    size = len(node) if isinstance(node, list) else 0
                    raise RecipeError(f"{where} {key}: no item [{index}] (the recipe has {size})")
                if last:
                    node[int(index)] = value
                else:
                    node = node[int(index)]
                    defaults = defaults[0] if isinstance(defaults, list) and defaults else None
            else:
                if not isinstance(node, dict):
                    raise RecipeError(f"{where} {key}: {name!r} is not inside a section")
                if last:
                    node[name] = value
                else:
                    default = defaults.get(name) if isinstance(defaults, dict) else None
                    if name not in node:
                        node[name] = copy.deepcopy(default) if isinstance(default, dict | list) else \
                            ({} if not parts[i + 1][1] else [])
                    node = node[name]
                    defaults = default
    return out


def read_recipe_data(path: str | Path) -> dict[str, Any]:
    """The plain data of a recipe file (YAML, safe loader: no objects are constructed)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file (see recipes/ for examples)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text ({e})") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping of recipe keys, got {type(data).__name__}")
    return data


def load_recipe(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RecipeConfig:
    """The recipe in ``path`` (``None``: the defaults) with ``KEY=VALUE`` overrides applied.

    Errors are :class:`RecipeError` naming the file (or ``--set``) and the key.
    """
    data = read_recipe_data(path) if path is not None else {}
    source = str(path) if path is not None else "recipe defaults"
    try:
        if overrides:
            data = apply_overrides(data, overrides)
            source += " with its --set overrides"
        return recipe_from_data(data)
    except RecipeError as e:
        raise RecipeError(f"{source}: {e}") from None
