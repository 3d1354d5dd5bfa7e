"""Per-GPU memory of a planned run, estimated before any GPU is rented (``polaris run RECIPE --dry-run``).

Nothing is loaded: the model's shape comes from its ``config.json`` (a local folder, or the Hugging Face
cache for a Hub id), its parameter count from the architecture built on the ``meta`` device (no memory,
exact, tied weights counted once). Per GPU, for each stage:

- **model states** (weights, gradients, AdamW moments) under the launch's sharding, with DeepSpeed's
  own estimators: ZeRO-3 (and FSDP full shard) ``4·largest_layer + 18·N/G``, ZeRO-2 ``4·N + 16·N/G``,
  unsharded ``18·N`` (also ``accelerate estimate-memory``'s bf16 figure) (``deepspeed.runtime.zero.stage3.estimate_zero3_model_states_mem_needs`` and
  ``stage_1_and_2.estimate_zero2_model_states_mem_needs`` without offload; ``N`` parameters, ``G`` GPUs);
- **activations** of one micro-batch at the stage's prompt + response length, with gradient
  checkpointing: each layer's input kept (``2·T·h`` bytes in bf16) and one layer recomputed at a time
  (``T·(17·h + 8·I)`` bytes: attention, norms and residuals as in Korthikanti et al. 2022 with a fused
  attention kernel, and a gated MLP of width ``I``); without checkpointing every layer's;
- **logits**: TRL scores response tokens through a fused, tiled LM head (``add_fused_lm_head``: tiles of
  at most 4,096 tokens × 32,768 vocabulary entries, float32), so the full ``T × vocab`` logits never
  exist; a forward and a backward tile are counted;
- **rollouts**: the vLLM engine's share of the card (colocated: ``vllm_gpu_memory_utilization`` of every
  training GPU, unless sleep mode hands it back during the update; server: its own GPUs), its weights
  (sharded by tensor parallelism) and the KV cache left for the rollout batch, as the number of
  full-length sequences it holds at once; with transformers ``generate``, the KV cache of the process's
  whole rollout share.

plus a fixed allowance for the CUDA context, allocator fragmentation and communication buffers. These are
estimates for deciding a launch; the figures a GPU records (``bench/gpu_check.py``) are the check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
#: TRL's fused LM head tile (``trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE`` tokens × ``trl.trainer.utils.
#: _CHUNKED_LOGPROB_CHUNK_SIZE`` vocabulary entries; pinned by tests/test_trl_contract.py).
LOGIT_TILE = (4096, 32768)
#: The CUDA context, allocator fragmentation, ZeRO/FSDP gather and reduce buckets: an allowance per training GPU.
RUNTIME_GIB = 3.0
#: What a vLLM engine holds beside its weights and KV cache (activations, sampler buffers, CUDA graphs): a working margin.
VLLM_OVERHEAD_GIB = 2.0


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a model: from its config, the counts from the ``meta``-device model."""

    params: int
    largest_layer: int
    """Parameters of the largest single module (its own, not its children's): ZeRO-3 gathers it whole."""
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    kv_heads: int
    head_dim: int

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache per token in bf16 (keys and values of every layer)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


def read_model_config(path: str) -> tuple[dict[str, Any] | None, str]:
    """``(config.json as a dict, where it came from)``; ``(None, why)`` when it is not here (a Hub id never
    downloaded on this machine)."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        file = folder / "config.json"
        if not file.is_file():
            return None, f"{file} is missing"
        return json.loads(file.read_text(encoding="utf-8")), str(file)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json")
    except Exception:  # an id the cache cannot even parse
        cached = None
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text(encoding="utf-8")), cached
    return None, (f"{path}'s config.json is not in the Hugging Face cache here; download it once "
                  f"(huggingface-cli download {path} config.json) or point model.path at a local folder")


def model_shape(config: Mapping[str, Any]) -> ModelShape:
    """The shape of the causal LM ``config`` describes, its parameters counted on the ``meta`` device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**dict(config))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    unique = {id(p): p.numel() for p in model.parameters()}
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return ModelShape(params=sum(unique.values()), largest_layer=largest, layers=text.num_hidden_layers,
                      hidden=text.hidden_size, intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
                      vocab=text.vocab_size, kv_heads=getattr(text, "num_key_value_heads", None) or heads,
                      head_dim=head_dim)


def sharding_of(accelerate_config: Mapping[str, Any] | None) -> str:
    """``zero3``, ``zero2``, ``zero1``, ``fsdp`` or ``none`` (one process, DDP, or no config)."""
    if not accelerate_config:
        return "none"
    kind = str(accelerate_config.get("distributed_type", "")).upper()
    if kind == "DEEPSPEED":
        stage = int((accelerate_config.get("deepspeed_config") or {}).get("zero_stage", 0))
        return f"zero{stage}" if stage else "none"
    if kind == "FSDP":
        return "fsdp"
    return "none"


def model_state_bytes(shape: ModelShape, sharding: str, gpus: int) -> int:
    """Weights, gradients and AdamW states per GPU (DeepSpeed's estimators, without offload)."""
    n = shape.params
    if sharding in ("zero3", "fsdp"):
        return 4 * shape.largest_layer + 18 * n // gpus
    if sharding in ("zero2", "zero1"):
        return 4 * n + 16 * n // gpus
    return 18 * n


def activation_bytes(shape: ModelShape, tokens: int, *, checkpointing: bool, micro_batch: int = 1,
                     dtype_bytes: int = 2) -> int:
    """Activations of one micro-batch of ``tokens``-long sequences through every layer."""
    scale = dtype_bytes / 2
    per_layer = tokens * (17 * shape.hidden + 8 * shape.intermediate) * scale
    if checkpointing:
        kept = shape.layers * tokens * shape.hidden * dtype_bytes
        return int(micro_batch * (kept + per_layer))
    return int(micro_batch * shape.layers * per_layer)


def logits_bytes(shape: ModelShape, response_tokens: int) -> int:
    """Two float32 tiles of TRL's fused LM head (forward and backward)."""
    tokens, vocab = LOGIT_TILE
    return 2 * min(response_tokens, tokens) * min(shape.vocab, vocab) * 4


@dataclass(frozen=True)
class StageMemory:
    """One stage's per-GPU estimate on a training GPU, in bytes."""

    stage: int
    model_states: int
    activations: int
    logits: int
    rollout: int
    """Colocated vLLM's reserved share, or transformers' KV cache; 0 in server mode."""
    card: int
    runtime: int = int(RUNTIME_GIB * GIB)

    @property
    def total(self) -> int:
        return self.model_states + self.activations + self.logits + self.rollout + self.runtime

    @property
    def fits(self) -> bool:
        return self.total <= self.card


@dataclass(frozen=True)
class EngineMemory:
    """The vLLM engine's side: weights per GPU and how many full-length sequences its KV cache holds."""

    weights: int
    kv_cache: int
    """KV cache room per GPU."""
    sequences_at_once: int
    """Full-length (the last stage's context) sequences the engine's KV cache holds together."""
    rollouts: int
    """Sequences one step generates (over all engines)."""
    engines: int


def plan_memory(recipe, plan, *, card_bytes: int) -> dict[str, Any]:
    """The memory plan of ``plan`` as data (``{"available": False, "why": ...}`` when the model's config is not here)."""
    from polaris.run.launch import read_accelerate_config

    if recipe.builtin_model:
        return {"available": False, "why": "the built-in model trains on the CPU"}
    config, source = read_model_config(recipe.model.path)
    if config is None:
        return {"available": False, "why": source}
    shape = model_shape(config)
    layout = plan.process_layout
    accel = read_accelerate_config(str(layout.config)) if layout.config else None
    sharding = sharding_of(accel)
    gpus = plan.batch.processes
    dtype_bytes = 4 if recipe.model.dtype == "float32" else 2
    train, engine = recipe.train, recipe.train.engine
    states = model_state_bytes(shape, sharding, gpus)
    prompt = train.max_prompt_tokens or 0
    stages: list[StageMemory] = []
    for s in plan.stages:
        tokens = prompt + s.max_response_tokens
        if engine.backend == "vllm" and engine.vllm_mode == "colocate":
            rollout = 0 if engine.vllm_enable_sleep_mode else int(engine.vllm_gpu_memory_utilization * card_bytes)
        elif engine.backend == "vllm":
            rollout = 0
        else:  # transformers generate: the whole share of the process at once
            rollout = plan.batch.per_process * tokens * shape.kv_bytes_per_token
        stages.append(StageMemory(
            stage=s.index, model_states=states,
            activations=activation_bytes(shape, tokens, checkpointing=train.gradient_checkpointing,
                                         micro_batch=plan.batch.micro_batch, dtype_bytes=dtype_bytes),
            logits=logits_bytes(shape, plan.batch.micro_batch * s.max_response_tokens),
            rollout=rollout, card=card_bytes))
    out: dict[str, Any] = {
        "available": True, "source": source, "params": shape.params, "largest_layer": shape.largest_layer,
        "sharding": sharding, "gpus": gpus, "card": card_bytes,
        "kv_bytes_per_token": shape.kv_bytes_per_token,
        "stages": [{**vars(m), "total": m.total, "fits": m.fits} for m in stages],
        "engine": None,
    }
    if engine.backend == "vllm":
        tp = engine.vllm_tensor_parallel_size
        weights = shape.params * dtype_bytes // tp
        room = int(engine.vllm_gpu_memory_utilization * card_bytes) - weights - int(VLLM_OVERHEAD_GIB * GIB)
        longest = prompt + max(s.max_response_tokens for s in plan.stages)
        per_sequence = longest * shape.kv_bytes_per_token // tp
        engines = 1 if engine.vllm_mode == "server" else max(1, gpus // tp)
        out["engine"] = vars(EngineMemory(
            weights=weights, kv_cache=max(0, room), sequences_at_once=max(0, room) // max(1, per_sequence),
            rollouts=plan.batch.sequences, engines=engines)) | {"mode": engine.vllm_mode, "tp": tp,
                                                                "context": longest}
    return out


def card_memory(recipe) -> tuple[int, str]:
    """``(bytes, where from)``: a visible GPU's own memory, else ``launch.gpu_memory_gib``."""
    import torch

    if torch.cuda.is_available():
        try:
            props = torch.cuda.get_device_properties(0)
        except (RuntimeError, AssertionError):  # a GPU that cannot be queried: plan for the recipe's card
            pass
        else:
            return int(props.total_memory), props.name
    return int(recipe.launch.gpu_memory_gib * GIB), "launch.gpu_memory_gib"


def _gib(n: int) -> str:
    return f"{n / GIB:.1f}"


def format_memory(mem: dict[str, Any]) -> list[str]:
    """The plan's memory lines (a warning, with the setting to change, for a stage that does not fit)."""
    if not mem["available"]:
        return [f"memory          no estimate: {mem['why']}"]
    where = "per training GPU" if mem["card_source"] != "launch.gpu_memory_gib" else "per training GPU, if run on GPUs"
    lines = [f"memory          {where}, estimated (polaris.run.memory): {mem['params'] / 1e9:.2f}B parameters, "
             f"{mem['sharding']} over {mem['gpus']} GPU(s), card {_gib(mem['card'])} GiB ({mem['card_source']})"]
    for s in mem["stages"]:
        verdict = "fits" if s["fits"] else "DOES NOT FIT"
        rollout = f" + rollouts {_gib(s['rollout'])}" if s["rollout"] else ""
        lines.append(f"  stage {s['stage']}: model states {_gib(s['model_states'])} + activations "
                     f"{_gib(s['activations'])} + logit tiles {_gib(s['logits'])}{rollout} + runtime {_gib(s['runtime'])} = "
                     f"{_gib(s['total'])} GiB: "
                     f"{verdict}")
    if any(not s["fits"] for s in mem["stages"]):
        lines.append("  WARNING: a stage needs more than the card: spread the model over more GPUs "
                     "(launch.num_processes, ZeRO-3 or FSDP), keep train.gradient_checkpointing on, shorten "
                     "stages[K].max_response_tokens, or (colocated vLLM) lower train.engine.vllm_gpu_memory_utilization "
                     "or turn on train.engine.vllm_enable_sleep_mode")
    e = mem["engine"]
    if e:
        where = "the server" if e["mode"] == "server" else f"each of {e['engines']} colocated engine(s)"
        lines.append(f"  vLLM ({where}, TP {e['tp']}): weights {_gib(e['weights'])} GiB per GPU, KV cache "
                     f"{_gib(e['kv_cache'])} GiB per GPU ({mem['kv_bytes_per_token'] // 1024} KiB per token): "
                     f"{e['sequences_at_once']} sequences of {e['context']} tokens at once per engine, for "
                     f"{e['rollouts']} rollouts per step")
        if e["sequences_at_once"] == 0:
            lines.append("  WARNING: the vLLM engine cannot hold one full-length sequence: raise "
                         "train.engine.vllm_gpu_memory_utilization or vllm_tensor_parallel_size")
    return lines
