"""The tiny model and tokenizer: built locally, saved as a standard HF folder, reloaded offline."""

from __future__ import annotations

import random

import torch

from polaris.data import arith, build_messages
from polaris.generation import SamplingParams, chat_prompts, generate
from polaris.models.tiny import build_model, build_tokenizer, save, tokenizer_corpus


def make_tiny(path):
    sample = arith.generate(random.Random(0), 300, [1, 2, 3])
    tok = build_tokenizer(tokenizer_corpus([build_messages(p.question) for p in sample], [p.solution for p in sample]))
    model = build_model(tok)
    save(model, tok, path)
    return model, tok


def test_saved_folder_reloads_offline_and_generates(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, _ = make_tiny(tmp_path / "tiny")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model2 = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    assert type(model2).__name__ == "Qwen3ForCausalLM"
    assert 300 <= sum(p.numel() for p in model2.parameters()) / 1000 <= 700  # ~0.5M parameters
    ids = tok2("<think>\n12+3=15\n</think>\n\\boxed{15}").input_ids
    assert tok2.decode(ids, skip_special_tokens=True) == "<think>\n12+3=15\n</think>\n\\boxed{15}"
    assert tok2.convert_ids_to_tokens(tok2("123").input_ids) == ["1", "2", "3"]  # digits stay single
    x = torch.tensor([ids])
    assert torch.allclose(model(x).logits, model2(x).logits)
    prompts = chat_prompts(tok2, [build_messages("Compute 1+2.")])
    out = generate(model2, tok2, prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=1))
    assert len(out) == 1 and len(out[0]) == 3
    for c in out[0]:
        assert 1 <= len(c.token_ids) <= 12
        assert c.truncated == (tok2.eos_token_id not in c.token_ids)
    again = generate(model2, tok2, prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=1))
    assert [c.token_ids for c in again[0]] == [c.token_ids for c in out[0]]  # seeded


def test_chat_template_and_think_tokens(tmp_path):
    _, tok = make_tiny(tmp_path / "tiny")
    text = tok.apply_chat_template(build_messages("Compute 1+2."), tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>user\nCompute 1+2. Let's think step by step")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    think = tok.convert_tokens_to_ids("</think>")
    assert tok("</think>").input_ids == [think]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.padding_side == "left"


def test_threads_are_shared_among_the_processes_of_a_launch(monkeypatch):
    import os

    from polaris.models.loading import thread_count

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("POLARIS_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert thread_count() == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert thread_count() == max(1, cores // 2)
    monkeypatch.setenv("POLARIS_THREADS", "3")
    assert thread_count() == 3


def test_the_shipped_warm_start_is_taken_only_with_the_settings_it_was_made_with(tmp_path, monkeypatch):
    """recipes/tiny-cpu.yaml's warm start is the shipped model: the step copies it (no training), its
    tokenizer is the one `prepare` builds, and any other task or warm-start setting, or
    warm_start.shipped=false, trains instead."""
    import hashlib
    import json
    from pathlib import Path

    import pytest

    from polaris.config import load_recipe
    from polaris.models.tiny import SHIPPED_BASE, SHIPPED_RECORD, shipped_base
    from polaris.run import steps
    from polaris.run.layout import RunLayout
    from polaris.run.plan import build_plan

    recipe_file = Path(__file__).resolve().parents[1] / "recipes" / "tiny-cpu.yaml"
    recipe = load_recipe(recipe_file)
    found = shipped_base(recipe.data.tiny, recipe.warm_start)
    assert found is not None and found[0] == SHIPPED_BASE
    weights = (SHIPPED_BASE / "model.safetensors").read_bytes()
    assert found[1]["sha256"] == hashlib.sha256(weights).hexdigest()
    for change in ("warm_start.steps=599", "warm_start.seed=1", "data.tiny.train_size=1024", "data.tiny.levels=[1]"):
        other = load_recipe(recipe_file, [change])
        assert shipped_base(other.data.tiny, other.warm_start) is None, change

    from polaris.run.plan import dry_run

    assert "warm start      the warm-started model shipped with polaris" in dry_run(str(recipe_file))
    assert "warm start      599 supervised steps" in dry_run(str(recipe_file), overrides=("warm_start.steps=599",))
    layout = RunLayout(tmp_path / "run")
    ctx = steps.Context(build_plan(recipe), layout)
    steps.prepare(ctx)
    # the shipped model was made from the tokenizer `prepare` builds for these settings
    assert json.loads((layout.model("init") / "tokenizer.json").read_text()) == json.loads(
        (SHIPPED_BASE / "tokenizer.json").read_text())

    def no_training(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr("polaris.train.sft.warm_start", no_training)
    result = steps.warm_start(ctx)
    assert result["shipped"] is True and result["step"] == recipe.warm_start.steps
    assert (layout.model("base") / "model.safetensors").read_bytes() == weights
    assert not (layout.model("base") / SHIPPED_RECORD).exists()
    from transformers import AutoModelForCausalLM

    assert type(AutoModelForCausalLM.from_pretrained(layout.model("base"))).__name__ == "Qwen3ForCausalLM"

    ctx = steps.Context(build_plan(load_recipe(recipe_file, ["warm_start.shipped=false"])), layout)
    with pytest.raises(AssertionError, match="trained"):
        steps.warm_start(ctx)
