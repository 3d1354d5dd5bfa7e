"""Recipe files: defaults, shipped recipes, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from polaris.config import RecipeConfig, load_recipe
from polaris.errors import RecipeError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_tiny_recipe_loads():
    recipe = load_recipe(REPO / "recipes" / "tiny-cpu.yaml")
    assert recipe.name == "tiny-cpu" and recipe.builtin_model
    assert [s.max_response_tokens for s in recipe.stages] == [96, 112, 128]
    assert all(s.temperature == "search" for s in recipe.stages)
    assert recipe.train.rollouts == 8 and recipe.train.epsilon_high == 0.28


def test_defaults_are_the_paper_objective():
    recipe = RecipeConfig()
    assert (recipe.train.epsilon_low, recipe.train.epsilon_high, recipe.train.dual_clip) == (0.2, 0.28, 3.0)
    assert recipe.train.learning_rate == 1e-6 and recipe.train.rollouts == 8
    assert recipe.profile.k == 8 and recipe.train.drop_threshold == 0.9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nme: x\n", r"r.yaml: nme: unknown key \(did you mean 'name'\?\); valid keys: \['data'"),
        ("train:\n  rollouts: many\n", r"train.rollouts: expected an integer"),
        ("stages:\n  - {steps: 3, temperature: hot}\n", r"stages\[0\].temperature"),
        ("stages: []\n", r"at least one stage"),
        ("model:\n  dtype: float8\n", r"model.dtype: 'float8' is not one of"),
        ("train: [1, 2]\n", r"train: expected a mapping"),
        ("name: [unclosed\n", r"not valid YAML"),
        ("train:\n  engine: {importance_sampling: off}\n",
         r"importance_sampling: False is not one of .*\(YAML reads a bare off as false: write 'off' in quotes\)"),
    ],
)
def test_errors_name_file_and_key(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, text))


def test_stage_temperature_number_or_search(tmp_path):
    recipe = load_recipe(write(tmp_path, "stages:\n  - {temperature: 1.4}\n  - {temperature: search}\n"))
    assert [s.temperature for s in recipe.stages] == [1.4, "search"]
