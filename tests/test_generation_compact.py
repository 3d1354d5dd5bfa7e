"""Sampling with finished rows dropped from the batch (polaris.generation.sample_compacting): the same
tokens as ``model.generate`` when greedy, the same distribution when sampling, and used only where it is
the same."""

from __future__ import annotations

import pytest
import torch

import polaris.generation as generation
from polaris.data import arith
from polaris.data.problem import build_messages
from polaris.generation import SamplingParams, can_compact, chat_prompts, generate, sample_compacting
from polaris.models.loading import load_model
from polaris.models.tiny import SHIPPED_BASE


@pytest.fixture(scope="module")
def base():
    """The shipped warm-started tiny model: it answers, and stops at EOS after varied lengths."""
    model, tokenizer = load_model(SHIPPED_BASE)
    model.eval()
    return model, tokenizer


def prompts(tokenizer, count: int, seed: int = 0) -> list[list[int]]:
    import random

    problems = arith.generate(random.Random(seed), count, [1, 2, 3, 4, 5, 6])
    return chat_prompts(tokenizer, [build_messages(p.question) for p in problems])


def test_greedy_rows_are_the_tokens_generate_gives_though_they_finish_apart(base, monkeypatch):
    model, tokenizer = base
    ids = prompts(tokenizer, 48)
    assert len({len(p) for p in ids}) > 3  # left padding of several widths in one batch
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=64)
    assert can_compact(model, params)
    compact = generate(model, tokenizer, ids, params, batch_size=48)
    monkeypatch.setattr(generation, "can_compact", lambda *a, **k: False)
    reference = generate(model, tokenizer, ids, params, batch_size=48)
    assert [c[0].token_ids for c in compact] == [c[0].token_ids for c in reference]
    lengths = [len(c[0].token_ids) for c in reference]
    assert len(set(lengths)) > 5 and min(lengths) < 0.6 * max(lengths)  # rows left the batch at many steps
    assert [c[0].truncated for c in compact] == [c[0].truncated for c in reference]


def test_top_k_one_samples_the_greedy_tokens(base):
    model, tokenizer = base
    ids = prompts(tokenizer, 16, seed=1)
    greedy = generate(model, tokenizer, ids, SamplingParams(n=1, temperature=0.0, max_new_tokens=48))
    sampled = generate(model, tokenizer, ids, SamplingParams(n=3, temperature=1.3, top_k=1, max_new_tokens=48))
    for g, s in zip(greedy, sampled, strict=True):
        assert {c.token_ids for c in s} == {g[0].token_ids}


def test_sampled_tokens_follow_the_tempered_nucleus_distribution(base):
    """4000 draws of one next token at T=1.5, top-p 0.9 against the probabilities computed here from the
    model's logits: the nucleus is the smallest set of top tokens reaching 0.9; each frequency within 5 sd."""
    model, tokenizer = base
    (question,) = prompts(tokenizer, 1, seed=2)
    (answer,) = generate(model, tokenizer, [question], SamplingParams(temperature=0.0, max_new_tokens=64))[0]

    def nucleus(prompt):
        with torch.no_grad():
            probs = (model(torch.tensor([prompt])).logits[0, -1].double() / 1.5).softmax(-1)
        order = probs.argsort(descending=True)
        keep = order[: int((probs[order].cumsum(0) < 0.9).sum()) + 1]  # up to the token that reaches 0.9
        expected = torch.zeros_like(probs)
        expected[keep] = probs[keep] / probs[keep].sum()
        return expected, len(keep)

    # the first point of the greedy answer where the model hesitates between 3 or more tokens
    prompt, expected = next((p, e) for p, (e, size) in
                            ((p, nucleus(p)) for p in (question + list(answer.token_ids[:i])
                                                       for i in range(len(answer.token_ids))))
                            if size >= 3)
    assert 0 < (expected > 0).sum() < len(expected)
    draws = 4000
    torch.manual_seed(0)
    rows = torch.tensor([prompt] * draws)
    tokens = sample_compacting(model, rows, torch.ones_like(rows),
                               SamplingParams(temperature=1.5, top_p=0.9, max_new_tokens=1), [tokenizer.eos_token_id])
    counts = torch.bincount(torch.tensor([t[0] for t in tokens]), minlength=len(expected)).double()
    assert counts[expected == 0].sum() == 0  # nothing outside the nucleus
    sd = (draws * expected * (1 - expected)).sqrt()
    assert ((counts - draws * expected).abs() <= 5 * sd + 1e-9).all()


def test_only_plain_decoders_with_plain_sampling_are_compacted(base):
    from transformers import GenerationConfig

    model, _ = base
    params = SamplingParams(temperature=1.0)
    assert can_compact(model, params)
    assert can_compact(model, params, GenerationConfig(do_sample=True, repetition_penalty=1.0, min_p=None))
    assert not can_compact(model, params, GenerationConfig(do_sample=True, repetition_penalty=1.2))
    assert not can_compact(model, params, GenerationConfig(do_sample=True, min_p=0.05))
    assert not can_compact(model, SamplingParams(extra={"repetition_penalty": 1.1}))
    original = list(model.config.layer_types)
    try:
        model.config.layer_types = ["sliding_attention", "full_attention"]
        assert not can_compact(model, params)
    finally:
        model.config.layer_types = original
    assert can_compact(model, params)


def test_training_without_vllm_samples_through_it(tiny_model_dir, tmp_path, monkeypatch):
    from polaris.cli import main
    from polaris.data.loaders import write_problems
    from polaris.data.problem import Problem

    calls = []

    def spy(model, input_ids, attention, params, eos_ids):
        calls.append((input_ids.shape[0], params.temperature, params.max_new_tokens, tuple(eos_ids)))
        return real(model, input_ids, attention, params, eos_ids)

    real = generation.sample_compacting
    monkeypatch.setattr(generation, "sample_compacting", spy)
    data = tmp_path / "problems.parquet"
    write_problems([Problem(f"p{i}", f"Compute {i}+1.", str(i + 1)) for i in range(4)], data)
    argv = ["train", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "out"), "--temperature", "0.9",
            "--set", "stages[0].steps=2", "--set", "stages[0].max_response_tokens=8", "--set", "train.batch_prompts=2",
            "--set", "train.rollouts=3"]
    assert main(argv) == 0
    # a step's batch, 2 prompts x 3 rollouts, at the stage's temperature and response length
    assert calls and all(c[:3] == (6, 0.9, 8) for c in calls)
