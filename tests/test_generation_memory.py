"""Memory-bounded generation: batches sized by tokens, prompts too long for the model refused (or skipped
and counted) before anything is generated."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from polaris.generation import (
    MAX_BATCH_TOKENS,
    MIN_BATCH_TOKENS,
    PromptTooLong,
    SamplingParams,
    check_prompt_lengths,
    plan_batches,
    token_bytes,
)


def test_batches_hold_at_most_the_token_budget_and_the_sequence_count():
    lengths = [10, 50, 20, 40, 30]
    # n=2, 6 new tokens: a batch of r prompts whose longest is L holds r*2*(L+6) tokens
    batches = plan_batches(lengths, n=2, max_new_tokens=6, batch_size=100, batch_tokens=200)
    # shortest first: 10, 20 -> 2*2*(20+6) = 104; adding 30 would hold 3*2*36 = 216 > 200, so it starts the
    # next batch; 40 joins it (2*2*46 = 184); adding 50 would hold 3*2*56 = 336: alone
    assert batches == [[0, 2], [4, 3], [1]]
    for b in batches:
        assert len(b) * 2 * (max(lengths[i] for i in b) + 6) <= 200 or len(b) == 1
    assert plan_batches(lengths, n=2, max_new_tokens=6, batch_size=4, batch_tokens=10**9) == [[0, 2], [4, 3], [1]]
    # a prompt that alone exceeds the budget still runs, alone
    assert plan_batches([1000, 5], n=1, max_new_tokens=1, batch_size=8, batch_tokens=100) == [[1], [0]]
    # every index once, shortest first
    many = [7, 3, 9, 1, 5, 5, 2]
    flat = [i for b in plan_batches(many, n=3, max_new_tokens=4, batch_size=9, batch_tokens=60) for i in b]
    assert sorted(flat) == list(range(len(many))) and [many[i] for i in flat] == sorted(many)


def test_batches_fit_the_budget_exactly_at_the_edge():
    # 2 prompts of 10 tokens, n=1, 10 new: 2*1*20 = 40 tokens
    assert plan_batches([10, 10], n=1, max_new_tokens=10, batch_size=8, batch_tokens=40) == [[0, 1]]
    assert plan_batches([10, 10], n=1, max_new_tokens=10, batch_size=8, batch_tokens=39) == [[0], [1]]


def test_a_token_costs_its_keys_values_and_working_room():
    config = SimpleNamespace(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=128,
                             head_dim=32, intermediate_size=512)
    assert token_bytes(config) == 2 * 2 * 2 * 32 * 4 + 4 * (128 + 512) * 4


def test_prompts_that_fill_the_context_are_refused_with_what_to_do():
    check_prompt_lengths([[1] * 255, [1] * 3], 256)
    check_prompt_lengths([[1] * 1000], None)
    with pytest.raises(PromptTooLong, match=r"2 of 3 prompts are as long as the model's context of 256 positions or "
                                            r"longer \(the longest: 300 tokens\).*eval.skip_long_prompts"):
        check_prompt_lengths([[1] * 256, [1] * 10, [1] * 300], 256)


def test_generate_refuses_before_generating_and_sizes_by_memory(tiny_model_dir: Path):
    from polaris.backends import load_backend
    from polaris.generation import default_batch_tokens

    backend = load_backend("transformers", str(tiny_model_dir))
    budget = default_batch_tokens(backend.model)
    assert MIN_BATCH_TOKENS <= budget <= MAX_BATCH_TOKENS
    assert backend.context_length() == 256
    with pytest.raises(PromptTooLong):
        backend.generate([[5] * 10, [5] * 400], SamplingParams(n=2, max_new_tokens=4), batch_size=8)
    out = backend.generate([[5] * 10, [5] * 20, [5] * 30], SamplingParams(n=2, max_new_tokens=3), batch_size=64,
                           batch_tokens=70)  # one prompt per batch: 2 x (20+3) = 46, two would be 2 x 2 x 23
    assert [len(cs) for cs in out] == [2, 2, 2]


def test_evaluation_skips_and_counts_long_prompts(tiny_model_dir: Path):
    from polaris.backends import load_backend
    from polaris.config import EvalSettings
    from polaris.data.problem import Problem
    from polaris.evaluate import evaluate_with_backend

    backend = load_backend("transformers", str(tiny_model_dir))
    problems = [Problem("short", "Compute 1+1.", "2"), Problem("long", "Compute " + "1+" * 300 + "1.", "301"),
                Problem("short2", "Compute 2+2.", "4")]
    with pytest.raises(PromptTooLong):
        evaluate_with_backend(backend, problems, EvalSettings(k=2, max_new_tokens=4))
    rows, summary = evaluate_with_backend(backend, problems, EvalSettings(k=2, max_new_tokens=4, skip_long_prompts=True))
    assert {r["problem_id"] for r in rows} == {"short", "short2"} and len(rows) == 4
    assert summary["problems"] == 2 and summary["skipped_long_prompts"] == 1 and summary["peak_rss_mb"] > 0
