"""The per-GPU memory plan of ``--dry-run``: parameter counts, sharding, activations, the vLLM engine's KV cache,
and the warning when a stage does not fit, checked against figures worked out by hand for Qwen3-4B."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polaris.config import load_recipe
from polaris.run.memory import (
    GIB,
    ModelShape,
    activation_bytes,
    format_memory,
    model_shape,
    model_state_bytes,
    plan_memory,
    sharding_of,
)
from polaris.run.plan import build_plan, dry_run

REPO = Path(__file__).resolve().parents[1]
#: Qwen3-4B's published config.json (the fields its size depends on).
QWEN3_4B = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 2560, "intermediate_size": 9728,
            "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
            "vocab_size": 151936, "tie_word_embeddings": True, "max_position_embeddings": 40960,
            "rope_theta": 1000000, "rms_norm_eps": 1e-6, "attention_bias": False, "torch_dtype": "bfloat16"}
V, H, L, HEADS, KV, D, FFN = 151936, 2560, 36, 32, 8, 128, 9728
#: Embedding (tied with the output layer) + per layer q, k, v, o, q/k norms, two norms, gate/up/down + final norm.
PARAMS = V * H + L * (H * HEADS * D + 2 * H * KV * D + HEADS * D * H + 2 * D + 2 * H + 3 * H * FFN) + H


@pytest.fixture(scope="module")
def qwen3_4b_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("qwen3-4b")
    (folder / "config.json").write_text(json.dumps(QWEN3_4B), encoding="utf-8")
    return folder


def test_the_parameter_count_is_the_architecture_s(qwen3_4b_folder):
    shape = model_shape(QWEN3_4B)
    assert shape.params == PARAMS  # 4,022,468,096: "4.0B"
    assert shape.largest_layer == V * H  # the embedding, gathered whole under ZeRO-3
    assert (shape.layers, shape.hidden, shape.intermediate, shape.vocab, shape.kv_heads, shape.head_dim) == (
        L, H, FFN, V, KV, D)
    assert shape.kv_bytes_per_token == 2 * L * KV * D * 2 == 147456


def test_model_states_follow_deepspeed_s_estimators():
    shape = ModelShape(params=1000, largest_layer=100, layers=1, hidden=1, intermediate=1, vocab=1, kv_heads=1,
                       head_dim=1)
    assert model_state_bytes(shape, "zero3", 4) == 4 * 100 + 18 * 1000 // 4
    assert model_state_bytes(shape, "fsdp", 8) == 4 * 100 + 18 * 1000 // 8
    assert model_state_bytes(shape, "zero2", 4) == 4 * 1000 + 16 * 1000 // 4
    assert model_state_bytes(shape, "none", 4) == 18 * 1000


def test_the_sharding_is_read_from_the_accelerate_config():
    from polaris.run.launch import read_accelerate_config

    assert sharding_of(read_accelerate_config("deepspeed-zero3")) == "zero3"
    assert sharding_of(read_accelerate_config("multinode-zero3")) == "zero3"
    assert sharding_of(read_accelerate_config("fsdp2")) == "fsdp"
    assert sharding_of(read_accelerate_config("cpu-2proc")) == "none"
    assert sharding_of({"distributed_type": "DEEPSPEED", "deepspeed_config": {"zero_stage": 2}}) == "zero2"
    assert sharding_of(None) == "none"


def test_checkpointed_activations_keep_each_layer_s_input_and_one_layer():
    shape = model_shape(QWEN3_4B)
    t = 40960
    assert activation_bytes(shape, t, checkpointing=True) == L * t * H * 2 + t * (17 * H + 8 * FFN)
    assert activation_bytes(shape, t, checkpointing=False) == L * t * (17 * H + 8 * FFN)
    assert activation_bytes(shape, t, checkpointing=True, micro_batch=2) == 2 * activation_bytes(
        shape, t, checkpointing=True)


def test_the_shipped_4b_recipe_fits_80_gib_and_its_server_holds_37_full_sequences(qwen3_4b_folder):
    recipe = load_recipe(str(REPO / "recipes" / "qwen3-4b.yaml"), (f"model.path={qwen3_4b_folder}",))
    plan = build_plan(recipe)
    mem = plan_memory(recipe, plan, card_bytes=80 * GIB)
    assert mem["available"] and mem["sharding"] == "zero3" and mem["gpus"] == 4
    stage3 = mem["stages"][2]
    tokens = recipe.train.max_prompt_tokens + 52224
    assert stage3["model_states"] == 4 * V * H + 18 * PARAMS // 4
    assert stage3["activations"] == L * tokens * H * 2 + tokens * (17 * H + 8 * FFN)
    assert stage3["logits"] == 2 * 4096 * 32768 * 4
    assert stage3["rollout"] == 0  # server mode: vLLM has its own GPUs
    assert stage3["fits"] and stage3["total"] < 80 * GIB
    engine = mem["engine"]
    weights = PARAMS * 2 // 4
    room = int(0.9 * 80 * GIB) - weights - 2 * GIB
    assert engine["weights"] == weights and engine["kv_cache"] == room
    assert engine["sequences_at_once"] == room // (tokens * 147456 // 4) == 37
    assert engine["rollouts"] == 1024


def test_a_stage_that_does_not_fit_is_a_warning_naming_the_settings(qwen3_4b_folder):
    text = dry_run(str(REPO / "recipes" / "qwen3-4b.yaml"), overrides=(
        f"model.path={qwen3_4b_folder}", "train.engine.vllm_mode=colocate", "launch.gpu_memory_gib=80"))
    assert "memory          per training GPU" in text
    # colocated: vLLM keeps 0.9 of every training GPU, so nothing else fits
    assert text.count("DOES NOT FIT") == 3
    assert "WARNING: a stage needs more than the card" in text and "vllm_enable_sleep_mode" in text
    slept = dry_run(str(REPO / "recipes" / "qwen3-4b.yaml"), overrides=(
        f"model.path={qwen3_4b_folder}", "train.engine.vllm_mode=colocate", "train.engine.vllm_enable_sleep_mode=true"))
    assert "DOES NOT FIT" not in slept


def test_without_the_model_s_config_the_plan_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    recipe = load_recipe(str(REPO / "recipes" / "qwen3-4b.yaml"), ())
    mem = plan_memory(recipe, build_plan(recipe), card_bytes=80 * GIB)
    assert not mem["available"]
    line = format_memory(mem | {"card_source": "x"})[0]
    assert "Qwen/Qwen3-4B" in line and "huggingface-cli download Qwen/Qwen3-4B config.json" in line
    tiny = load_recipe(str(REPO / "recipes" / "tiny-cpu.yaml"), ())
    assert "built-in model trains on the CPU" in format_memory(
        plan_memory(tiny, build_plan(tiny), card_bytes=GIB) | {"card_source": "x"})[0]


def test_unsharded_model_states_equal_accelerate_s_estimate():
    """``accelerate estimate-memory``'s bf16 training figure (fp32 weights, fp32 + bf16 gradients, two AdamW
    moments) is the same 18 bytes per parameter."""
    from accelerate.commands.estimate import estimate_training_usage

    shape = model_shape(QWEN3_4B)
    usage = estimate_training_usage(4 * shape.params, "bfloat16")
    assert model_state_bytes(shape, "none", 1) == usage["model"] + usage["gradients"] + usage["optimizer"]
