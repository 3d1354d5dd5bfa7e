"""YaRN at inference only: the settings, and their effect on a loaded copy (never on the folder)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import pytest

from polaris.models.yarn import (
    YarnSettings,
    make_yarn,
    rope_parameters_of,
    vllm_yarn_overrides,
    yarn_config_overrides,
    yarn_rope_parameters,
)


def test_settings_extend_the_context_by_the_factor():
    yarn = YarnSettings(1.5, 32768)
    assert yarn.max_position_embeddings == 49152
    assert YarnSettings(2.0, 256).max_position_embeddings == 512
    assert yarn.to_dict() == {"factor": 1.5, "original_max_position_embeddings": 32768, "rope_type": "yarn",
                              "max_position_embeddings": 49152}


def test_both_options_or_neither():
    assert make_yarn(None, None) is None
    assert make_yarn(1.5, 4096) == YarnSettings(1.5, 4096)
    with pytest.raises(ValueError, match="--original-max-position"):
        make_yarn(1.5, None)
    with pytest.raises(ValueError, match="--yarn-factor"):
        make_yarn(None, 4096)
    with pytest.raises(ValueError, match="factor must be > 1"):
        YarnSettings(1.0, 4096)
    with pytest.raises(ValueError, match="trained context length"):
        YarnSettings(1.5, 0)


def test_rope_parameters_of_old_and_new_configs():
    # transformers 5 form
    assert rope_parameters_of({"rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}) == {
        "rope_type": "default", "rope_theta": 1e6}
    # transformers 4 form: top-level rope_theta, rope_scaling with "type"
    assert rope_parameters_of({"rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 2.0}}) == {
        "rope_type": "linear", "factor": 2.0, "rope_theta": 5e5}
    # nothing at all: transformers' default base
    assert rope_parameters_of({}) == {"rope_type": "default", "rope_theta": 10000.0}


def test_yarn_parameters_keep_the_models_other_rope_keys():
    base = {"rope_type": "default", "rope_theta": 1e6, "partial_rotary_factor": 0.5}
    assert yarn_rope_parameters(base, YarnSettings(1.5, 40960)) == {
        "rope_type": "yarn", "rope_theta": 1e6, "partial_rotary_factor": 0.5, "factor": 1.5,
        "original_max_position_embeddings": 40960}
    assert base["rope_type"] == "default"  # the input is not modified


def test_transformers_and_vllm_overrides():
    config = {"rope_theta": 1000000.0, "max_position_embeddings": 40960}
    rope = {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 1.5, "original_max_position_embeddings": 32768}
    yarn = YarnSettings(1.5, 32768)
    assert yarn_config_overrides(config, yarn) == {"rope_parameters": rope, "max_position_embeddings": 49152}
    assert vllm_yarn_overrides(config, yarn) == {
        "hf_overrides": {"rope_parameters": rope, "max_position_embeddings": 49152, "max_model_len": 49152},
        "max_model_len": 49152,
    }


def _logits(model, length: int = 40):
    import torch

    ids = torch.arange(5, 5 + length).unsqueeze(0)  # [1, length]
    with torch.no_grad():
        return model(ids).logits[0]  # [length, vocab]


def test_yarn_changes_only_the_evaluated_copy(tiny_model_dir: Path):
    import torch

    from polaris.models.loading import load_model
    from polaris.models.yarn import load_model_with_yarn

    config_bytes = (tiny_model_dir / "config.json").read_bytes()
    original, _ = load_model(tiny_model_dir)
    before = _logits(original)
    assert original.config.rope_parameters["rope_type"] == "default"
    assert original.config.max_position_embeddings == 256

    scaled, _ = load_model_with_yarn(tiny_model_dir, YarnSettings(2.0, 256))
    rope = scaled.config.rope_parameters
    assert (rope["rope_type"], rope["factor"], rope["original_max_position_embeddings"]) == ("yarn", 2.0, 256)
    assert scaled.config.max_position_embeddings == 512
    after = _logits(scaled)
    diff = (after - before).abs().amax(dim=-1)  # [length]
    # The first position attends only to itself: the rope cannot change it. Later ones change.
    assert diff[0] < 1e-5
    assert bool((diff[8:] > 1e-3).all()), diff

    # The folder is untouched, and a fresh load without YaRN is the original model.
    assert (tiny_model_dir / "config.json").read_bytes() == config_bytes
    fresh, _ = load_model(tiny_model_dir)
    assert fresh.config.rope_parameters["rope_type"] == "default"
    assert torch.allclose(_logits(fresh), before, atol=1e-6)
