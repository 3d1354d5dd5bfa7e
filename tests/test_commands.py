"""One recipe surface: every recipe key can be overridden from the command line, and the single-step
commands run the recipe's steps with those overrides."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from polaris.cli import main
from polaris.config import (
    EngineSettings,
    RecipeConfig,
    TrainSettings,
    ValidationSettings,
    apply_overrides,
    load_recipe,
    to_dict,
)
from polaris.errors import RecipeError

REPO = Path(__file__).resolve().parents[1]


def test_overrides_set_nested_keys_list_items_and_yaml_values():
    data = {"train": {"learning_rate": 1e-6}, "stages": [{"steps": 1}, {"steps": 2}]}
    out = apply_overrides(data, ["train.learning_rate=1e-5", "stages[1].steps=40", "train.engine.vllm_port=9000",
                                 "eval.benchmarks=[aime24, amc23]", "train.dual_clip=null", "name=my run"])
    assert out["train"]["learning_rate"] == 1e-5 and out["train"]["dual_clip"] is None
    # a section the data left out is filled with its defaults, then the key is set
    assert out["train"]["engine"] == {**dataclasses.asdict(EngineSettings()), "vllm_port": 9000}
    assert out["stages"] == [{"steps": 1}, {"steps": 40}]
    assert out["eval"]["benchmarks"] == ["aime24", "amc23"] and out["name"] == "my run"
    assert data["stages"][1] == {"steps": 2}  # the input is not changed
    with pytest.raises(RecipeError, match=r"--set stages\[5\]\.steps: no item \[5\] \(the recipe has 2\)"):
        apply_overrides(data, ["stages[5].steps=1"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        apply_overrides(data, ["train.learning_rate"])


def _values(cls, prefix: str) -> dict[str, object]:
    """A valid non-default value for every key of ``cls`` (nested sections included)."""
    special = {"engine": EngineSettings, "validation": ValidationSettings}
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}"
        if f.name in special:
            out.update(_values(special[f.name], key))
            continue
        default = getattr(cls(), f.name)
        if isinstance(default, bool):
            out[key] = not default
        elif f.name in ("vllm_mode",):
            out[key] = "colocate"
        elif f.name == "importance_sampling":
            out[key] = "sequence_mask"
        elif f.name == "backend":
            out[key] = "vllm"
        elif isinstance(default, str):
            out[key] = default + "x"
        elif f.name in ("vllm_gpu_memory_utilization", "epsilon_low", "epsilon_high", "top_p", "drop_threshold"):
            out[key] = 0.5
        elif f.name in ("micro_batch_sequences", "rollouts"):
            out[key] = 4
        elif f.name == "batch_prompts":
            out[key] = 32
        elif isinstance(default, int | float):
            out[key] = type(default)(default * 2 + 1) if f.name != "every_steps" else 3
        else:  # None defaults
            out[key] = 2 if "int" in str(f.type) else 0.25
    return out


def test_every_train_key_can_be_set_from_the_command_line():
    values = _values(TrainSettings, "train")
    assert len(values) == len(dataclasses.fields(TrainSettings)) - 2 + len(dataclasses.fields(EngineSettings)) + len(
        dataclasses.fields(ValidationSettings))
    recipe = load_recipe(REPO / "recipes" / "qwen3-4b.yaml", [f"{k}={json.dumps(v)}" for k, v in values.items()])
    resolved = to_dict(recipe)
    for key, value in values.items():
        node = resolved
        for part in key.split("."):
            node = node[part]
        assert node == value, key


def test_bad_overrides_name_the_key_and_exit_2(capsys, tmp_path):
    argv = ["run", str(REPO / "recipes" / "tiny-cpu.yaml"), "--dry-run", "--run-dir", str(tmp_path)]
    assert main([*argv, "--set", "train.learning_rat=1e-5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polaris run: ") and "train.learning_rat: unknown key (did you mean 'learning_rate'?)" in err
    assert "Traceback" not in err
    assert main([*argv, "--set", "stages[0].temperature=hot"]) == 2
    assert "stages[0].temperature: expected a number, got 'hot' or 'hot' is not one of 'search'" in capsys.readouterr().err
    assert main([*argv, "--set", "train.learning_rate=1e-5", "--set", "stages[2].steps=7"]) == 0
    out = capsys.readouterr().out
    assert "AdamW lr 1e-05" in out and "      3      7       search" in out


def test_polaris_train_overrides_reach_trls_grpo_config(tiny_model_dir, tmp_path, monkeypatch):
    """`polaris train ... --set train.KEY=...`: the value is in the GRPOConfig the trainer runs with."""
    import polaris.train.stages as stages
    from polaris.data.loaders import write_problems
    from polaris.data.problem import Problem

    seen = []
    original = stages.grpo_config

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(stages, "grpo_config", spy)
    data = tmp_path / "problems.parquet"
    write_problems([Problem(f"p{i}", f"Compute {i}+1.", str(i + 1)) for i in range(4)], data)
    overrides = {"train.epsilon_high": 0.31, "train.dual_clip": 2.5, "train.learning_rate": 3e-5,
                 "train.weight_decay": 0.05, "train.max_grad_norm": 0.7, "train.top_p": 0.9,
                 "train.batch_prompts": 2, "train.rollouts": 2, "train.micro_batch_sequences": 2,
                 "train.save_steps": 3, "train.epsilon_low": 0.15, "stages[0].steps": 1,
                 "stages[0].max_response_tokens": 8}
    argv = ["train", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "out"), "--temperature", "0.9"]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    [config] = seen
    assert (config.epsilon_high, config.delta, config.learning_rate, config.weight_decay) == (0.31, 2.5, 3e-5, 0.05)
    assert (config.max_grad_norm, config.top_p, config.save_steps, config.epsilon) == (0.7, 0.9, 3, 0.15)
    assert (config.num_generations, config.per_device_train_batch_size, config.gradient_accumulation_steps) == (2, 2, 2)
    assert (config.max_steps, config.max_completion_length, config.temperature) == (1, 8, 0.9)
    assert (tmp_path / "out" / "models" / "stage-1" / "model.safetensors").exists()


def test_recipe_defaults_match_the_dataclasses():
    assert to_dict(load_recipe(None)) == to_dict(RecipeConfig())


def test_the_recipe_file_reference_is_current():
    """docs/recipe-file.md is generated from the recipe dataclasses: regenerate it after changing a key."""
    from polaris.config import recipe_reference

    text = (REPO / "docs" / "recipe-file.md").read_text(encoding="utf-8")
    assert text == recipe_reference(), "run: python -m polaris.config > docs/recipe-file.md"
    for key in ("`train.epsilon_high`", "`stages[i].temperature`", "`eval.yarn_factor`", "`train.engine.vllm_mode`"):
        assert key in text


def test_a_run_directory_belongs_to_the_recipe_values_not_to_the_file_text(tmp_path):
    from polaris.run.pipeline import recipe_digest

    text = (REPO / "recipes" / "tiny-cpu.yaml").read_text(encoding="utf-8")
    (tmp_path / "commented.yaml").write_text("# another comment\n" + text, encoding="utf-8")
    base = recipe_digest(load_recipe(REPO / "recipes" / "tiny-cpu.yaml"))
    assert recipe_digest(load_recipe(tmp_path / "commented.yaml")) == base
    # a key set to its default (or added to polaris later with a default) changes nothing
    assert recipe_digest(load_recipe(REPO / "recipes" / "tiny-cpu.yaml", ["reward.require_think=true"])) == base
    assert recipe_digest(load_recipe(REPO / "recipes" / "tiny-cpu.yaml", ["seed=1"])) != base
    assert recipe_digest(load_recipe(REPO / "recipes" / "tiny-cpu.yaml", ["stages[2].steps=81"])) != base


def test_training_anyway_after_a_stopped_profile_keeps_the_run_directory(tmp_path):
    """The profile's stop message says to set profile.stop_without_signal=false and run again: same directory."""
    from polaris.run.pipeline import recipe_digest

    base = recipe_digest(load_recipe(REPO / "recipes" / "tiny-cpu.yaml"))
    anyway = load_recipe(REPO / "recipes" / "tiny-cpu.yaml", ["profile.stop_without_signal=false"])
    assert anyway.profile.stop_without_signal is False
    assert recipe_digest(anyway) == base
    assert recipe_digest(load_recipe(REPO / "recipes" / "tiny-cpu.yaml", ["profile.k=4"])) != base
