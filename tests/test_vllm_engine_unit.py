"""The vLLM training engine's settings and lifecycle as values handed to TRL (no vLLM needed)."""

from __future__ import annotations

import atexit
import os

import pytest

from polaris.config import EngineSettings, TrainSettings
from polaris.train.stages import StageRun, vllm_settings
from polaris.train.vllm_engine import (
    RENDEZVOUS_VARIABLES,
    colocated_engine_kwargs,
    engine_settings,
    group_port,
    release,
)


def _stage(index: int, tokens: int = 64) -> StageRun:
    return StageRun(index=index, steps=1, temperature=1.0, max_response_tokens=tokens, learning_rate=1e-6, problems=[])


def test_importance_sampling_is_chosen_by_the_recipe():
    default = vllm_settings(_stage(1), TrainSettings(engine=EngineSettings(backend="vllm", vllm_mode="colocate")))
    assert default["vllm_importance_sampling_correction"] is True
    assert default["vllm_importance_sampling_mode"] == "token_truncate"  # not TRL's sequence_mask
    assert default["vllm_importance_sampling_clip_max"] == 3.0
    seq = EngineSettings(backend="vllm", vllm_mode="colocate", importance_sampling="sequence_mask",
                         importance_sampling_cap=2.0)
    out = vllm_settings(_stage(1), TrainSettings(engine=seq))
    assert (out["vllm_importance_sampling_mode"], out["vllm_importance_sampling_clip_max"]) == ("sequence_mask", 2.0)
    off = vllm_settings(_stage(1), TrainSettings(engine=EngineSettings(backend="vllm", importance_sampling="off")))
    assert off["vllm_importance_sampling_correction"] is False and "vllm_importance_sampling_mode" not in off
    assert vllm_settings(_stage(1), TrainSettings()) == {}  # transformers rollouts: no vLLM keys at all


def test_a_cap_of_one_or_less_is_refused():
    from polaris.config import load_recipe
    from polaris.errors import RecipeError

    with pytest.raises(RecipeError, match=r"importance_sampling_cap must be > 1, got 1\.0"):
        load_recipe(None, ["train.engine.importance_sampling_cap=1.0"])


def test_each_stage_of_server_mode_has_its_own_weight_sync_port():
    server = TrainSettings(engine=EngineSettings(backend="vllm", vllm_mode="server"))
    ports = [vllm_settings(_stage(k), server)["vllm_group_port"] for k in (1, 2, 3)]
    assert ports == [51216, 51217, 51218] == [group_port(k) for k in (1, 2, 3)]
    colocate = TrainSettings(engine=EngineSettings(backend="vllm", vllm_mode="colocate"), max_prompt_tokens=32)
    assert vllm_settings(_stage(2, 96), colocate)["vllm_max_model_length"] == 32 + 96  # the stage's own length


def test_colocated_engine_keywords():
    assert colocated_engine_kwargs("bfloat16", cpu=False) == {"dtype": "bfloat16"}
    cpu = colocated_engine_kwargs("float32", cpu=True)
    assert cpu["dtype"] == "float32" and cpu["enforce_eager"] is True and cpu["enable_chunked_prefill"] is False
    assert cpu["kv_cache_memory_bytes"] == int(float(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or 2) * 2**30)


def test_engine_settings_wrap_trls_constructor_and_restore_the_environment(monkeypatch):
    import trl.generation.vllm_generation as generation

    calls = []
    monkeypatch.setattr(generation, "LLM", lambda **kw: calls.append(kw) or "engine", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("MASTER_PORT", "1234")
    original = generation.LLM
    with engine_settings({"dtype": "float32", "enforce_eager": True}):
        os.environ["RANK"] = "0"  # as TRL's _init_vllm sets them
        os.environ["MASTER_PORT"] = "29500"
        assert generation.LLM(model="m", dtype=None) == "engine"
    assert calls == [{"model": "m", "dtype": "float32", "enforce_eager": True}]
    assert generation.LLM is original
    assert "RANK" not in os.environ and os.environ["MASTER_PORT"] == "1234"
    assert set(RENDEZVOUS_VARIABLES) == {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}


def test_release_shuts_a_colocated_engine_and_closes_a_server_client(monkeypatch):
    class Engine:
        stopped = False

        def shutdown(self):
            Engine.stopped = True

    class LLM:
        llm_engine = Engine()

    class Generation:
        llm = LLM()

    colocated = Generation()
    release(colocated, "colocate")
    assert Engine.stopped and colocated.llm is None

    class Client:
        closed = 0

        def close_communicator(self):
            Client.closed += 1

    class ServerGeneration:
        vllm_client = Client()

    server = ServerGeneration()
    dropped = []
    monkeypatch.setattr(atexit, "unregister", dropped.append)
    release(server, "server")
    assert Client.closed == 1
    assert dropped == [server.vllm_client.close_communicator]  # TRL's exit hook no longer holds the client
    release(None, "server")  # a trainer that never started


@pytest.mark.parametrize("name", ["qwen3-4b", "qwen3-1.7b", "r1-distill-7b"])
def test_gpu_recipes_generate_through_vllm_everywhere(name, tmp_path, monkeypatch):
    """The profile and the searches of a GPU recipe go through vLLM (53K problems x 8 long rollouts on the
    host would take days), and --dry-run says where each generating step runs."""
    import torch

    from polaris.config import load_recipe
    from polaris.run.plan import dry_run

    recipe = load_recipe(f"recipes/{name}.yaml")
    assert recipe.train.generation_backend == recipe.eval.backend == recipe.train.engine.backend == "vllm"
    text = dry_run(f"recipes/{name}.yaml", str(tmp_path / "run"))
    assert ("generation      profile, temperature search: vllm on the CPU (vllm-cpu); training rollouts: vllm on "
            "the CPU (vllm-cpu) (server); evaluation: vllm on the CPU (vllm-cpu)") in text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    text = dry_run(f"recipes/{name}.yaml", str(tmp_path / "run"))
    assert "profile, temperature search: vllm on the GPUs; training rollouts: vllm on the GPUs (server)" in text


def test_the_transformers_backend_generates_on_the_gpu_when_there_is_one(monkeypatch):
    import torch

    from polaris.backends.transformers_backend import default_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device(None) is None and default_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device(None) == "cuda" and default_device("cuda:1") == "cuda:1" and default_device("cpu") == "cpu"


def test_server_mode_over_several_machines_refuses_a_loopback_host():
    from polaris.config import load_recipe
    from polaris.errors import RecipeError
    from polaris.run.plan import build_plan, check_server_reachable

    recipe = load_recipe("recipes/qwen3-4b.yaml")
    assert recipe.train.engine.vllm_host == "127.0.0.1"
    check_server_reachable(recipe, 1)  # one machine: the server is on it
    with pytest.raises(RecipeError, match=r"train.engine.vllm_host is '127.0.0.1', a loopback address, but the run "
                                          r"spans 4 machines"):
        build_plan(recipe, accelerate_config="multinode-zero3")
    recipe.train.engine.vllm_host = "10.0.0.1"
    assert build_plan(recipe, accelerate_config="multinode-zero3").machines == 4
    recipe.train.engine.vllm_mode = "colocate"
    recipe.train.engine.vllm_host = "127.0.0.1"  # unused in colocate mode
    check_server_reachable(recipe, 4)


def test_only_the_first_process_waits_for_the_server(monkeypatch):
    from polaris.config import load_recipe
    from polaris.run import steps
    from polaris.train import server

    waited = []
    monkeypatch.setattr(server, "wait_for_server", lambda *args: waited.append(args))
    recipe = load_recipe("recipes/qwen3-4b.yaml")
    monkeypatch.setenv("RANK", "3")
    steps.check_training_engine(recipe)
    assert waited == []
    monkeypatch.setenv("RANK", "0")
    steps.check_training_engine(recipe)
    assert waited == [("127.0.0.1", 8000, recipe.train.engine.vllm_server_timeout)]


def test_an_engine_with_whole_prefills_holds_a_context_per_step(monkeypatch, tmp_path):
    import json

    import trl.generation.vllm_generation as generation

    calls = []
    monkeypatch.setattr(generation, "LLM", lambda **kw: calls.append(kw), raising=False)
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 40960}), encoding="utf-8")
    with engine_settings({"enable_chunked_prefill": False}):
        generation.LLM(model=str(tmp_path), max_model_len=None, max_num_batched_tokens=4096)  # TRL's keywords
        generation.LLM(model=str(tmp_path), max_model_len=1024, max_num_batched_tokens=4096)
    assert [c["max_num_batched_tokens"] for c in calls] == [40960, 4096]


def test_nothing_is_wrapped_without_engine_settings(monkeypatch):
    """Transformers rollouts never touch TRL's vLLM module (vLLM need not be installed)."""
    import importlib

    def refuse(name, *args, **kwargs):
        raise AssertionError(f"imported {name}")

    monkeypatch.setattr(importlib, "import_module", refuse)
    with engine_settings({}):
        pass
