"""Sampling completions from a causal LM with transformers: batched, KV cache, left padding, and rows
that have finished dropped from the batch (:func:`sample_compacting`, where it samples as ``generate`` does).

Prompts go through the model's chat template (one user turn, docs/method.md § Evaluation protocol). Each prompt is
sampled ``n`` times. A completion stops at the tokenizer's EOS; one that reaches
``max_new_tokens`` without it is marked ``truncated``. ``top_k=0`` turns top-k off (the
training setting, docs/method.md § The objective: top-p 1.0 and no top-k); evaluation uses top-k 20.

Sampling is reproducible for a given ``seed`` and batch layout: the torch generator is seeded
per batch from ``(seed, batch index)``.

Memory: batches are sized by tokens, not only by count. A batch of prompts padded to width W,
sampled n times for up to T new tokens, holds ``rows × n × (W + T)`` tokens of KV cache and
activations; :func:`plan_batches` packs prompts (shortest first) while that stays within
``batch_tokens`` — by default :func:`default_batch_tokens`, a share of the memory this machine (or
GPU) has free, divided by what one token costs this model. A prompt that alone reaches the model's
context is refused before anything is generated (:class:`PromptTooLong`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from polaris.errors import PolarisError
from polaris.progress import progress

#: Share of the free memory one generation batch may take (the rest: weights, the trainer, the OS).
MEMORY_SHARE = 0.25
#: Bounds of the automatic token budget.
MIN_BATCH_TOKENS, MAX_BATCH_TOKENS = 4_096, 1_048_576


class PromptTooLong(PolarisError, ValueError):
    """A prompt is as long as the model's context or longer: nothing could be generated after it."""


@dataclass(frozen=True)
class Completion:
    text: str
    token_ids: tuple[int, ...]
    truncated: bool


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def chat_prompts(tokenizer, messages: Sequence[list[dict[str, str]]]) -> list[list[int]]:
    """Token ids of each conversation through the chat template, ready for the assistant turn."""
    out = []
    for m in messages:
        text = tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out


def plan_batches(lengths: Sequence[int], *, n: int, max_new_tokens: int, batch_size: int,
                 batch_tokens: int) -> list[list[int]]:
    """Prompt indices per batch, shortest prompts first: each batch holds at most ``batch_size``
    sequences (prompts × n) and at most ``batch_tokens`` tokens (sequences × (longest prompt + new
    tokens)); a prompt that alone exceeds the token budget still gets a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    per_batch = max(1, batch_size // n)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending: the prompt being added is the batch's longest
        fits = (len(current) + 1) * n * (lengths[i] + max_new_tokens) <= batch_tokens
        if current and (len(current) >= per_batch or not fits):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def model_context(model) -> int | None:
    """The positions the model was configured for (``None`` when its config does not say)."""
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def token_bytes(config) -> int:
    """Bytes one token of a batch costs this model while generating: its keys and values in every
    layer, plus working room for the activations of its hidden and MLP widths."""
    layers = getattr(config, "num_hidden_layers", 1)
    heads = getattr(config, "num_attention_heads", 1)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    hidden = getattr(config, "hidden_size", 64)
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    width = 4  # float32 working precision on the CPU; a conservative bound on the GPU
    return 2 * layers * kv_heads * head_dim * width + 4 * (hidden + getattr(config, "intermediate_size", 4 * hidden)) * width


def free_memory_bytes(device) -> int:
    """Free memory where the model runs: the GPU's, else the machine's available RAM."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def default_batch_tokens(model) -> int:
    """A token budget for one generation batch: :data:`MEMORY_SHARE` of the free memory over what a token
    costs this model, within [:data:`MIN_BATCH_TOKENS`, :data:`MAX_BATCH_TOKENS`]."""
    device = next(model.parameters()).device
    budget = int(MEMORY_SHARE * free_memory_bytes(device) / token_bytes(model.config))
    return max(MIN_BATCH_TOKENS, min(MAX_BATCH_TOKENS, budget))


def check_prompt_lengths(prompt_ids: Sequence[Sequence[int]], context: int | None) -> None:
    """:class:`PromptTooLong` when a prompt leaves no room in the model's context."""
    if context is None:
        return
    long = [len(p) for p in prompt_ids if len(p) >= context]
    if long:
        raise PromptTooLong(
            f"{len(long)} of {len(prompt_ids)} prompts are as long as the model's context of {context} positions "
            f"or longer (the longest: {max(long)} tokens), so nothing can be generated after them: use a model "
            "with a longer context or YaRN (eval.yarn_factor / --yarn-factor), shorter problems, or skip them "
            "(eval.skip_long_prompts: true; polaris eval --set eval.skip_long_prompts=true)"
        )


def generate(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    params: SamplingParams,
    *,
    batch_size: int = 512,
    batch_tokens: int | None = None,
    desc: str | None = None,
) -> list[list[Completion]]:
    """``params.n`` completions for each prompt, in prompt order.

    ``batch_size`` counts sequences (prompts × n) per ``generate`` call and ``batch_tokens`` the
    tokens they hold (default :func:`default_batch_tokens`); prompts are grouped by length so that
    little padding is computed. Prompts too long for the model's context raise :class:`PromptTooLong`
    before anything is generated.
    """
    import torch

    check_prompt_lengths(prompt_ids, model_context(model))
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    results: list[list[Completion]] = [[] for _ in prompt_ids]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    batches = plan_batches([len(p) for p in prompt_ids], n=params.n, max_new_tokens=params.max_new_tokens,
                           batch_size=batch_size, batch_tokens=batch_tokens or default_batch_tokens(model))
    compact = can_compact(model, params)
    try:
        for b, idx in enumerate(progress(batches, desc=desc, unit="batch")):
            input_ids, attention = left_pad([prompt_ids[i] for i in idx], pad_id, device)
            torch.manual_seed(hash((params.seed, b)) % (2**31))
            with torch.no_grad():
                if compact:
                    new = sample_compacting(model, input_ids.repeat_interleave(params.n, 0),
                                            attention.repeat_interleave(params.n, 0), params, eos_ids)
                else:
                    sample = params.temperature > 0
                    kwargs = dict(
                        do_sample=sample,
                        max_new_tokens=params.max_new_tokens,
                        num_return_sequences=params.n,
                        eos_token_id=eos_ids,
                        pad_token_id=pad_id,
                        top_k=params.top_k if sample else None,
                        **params.extra,
                    )
                    if sample:
                        kwargs.update(temperature=params.temperature, top_p=params.top_p)
                    out = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
                    new = out[:, input_ids.shape[1]:].tolist()
            for j, ids in enumerate(new):
                cut = next((t for t, tok in enumerate(ids) if tok in eos_ids), None)
                truncated = cut is None
                ids = ids if truncated else ids[: cut + 1]
                text = tokenizer.decode(ids, skip_special_tokens=True)
                results[idx[j // params.n]].append(Completion(text, tuple(ids), truncated))
    finally:
        model.train(was_training)
    return results


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device=None):
    """``(input_ids, attention_mask)`` of token rows padded on the left to the longest."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in rows], device=device)
    attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return input_ids, attention


#: Generation settings :func:`sample_compacting` applies itself (with temperature, top-k and top-p).
COMPACT_SETTINGS = {"do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "max_length", "eos_token_id",
                    "pad_token_id", "bos_token_id", "transformers_version", "use_cache", "cache_implementation",
                    "disable_compile"}
#: Generation settings at values that change nothing (a config may spell its defaults out).
NEUTRAL_SETTINGS = {"repetition_penalty": 1.0, "min_p": None, "typical_p": 1.0, "epsilon_cutoff": 0.0,
                    "eta_cutoff": 0.0, "no_repeat_ngram_size": 0, "num_beams": 1, "num_return_sequences": 1,
                    "length_penalty": 1.0, "encoder_repetition_penalty": 1.0, "min_length": 0, "min_new_tokens": None}
#: Share of a batch's rows that must have finished before they are dropped from it (each drop copies the cache).
COMPACT_SHARE = 0.125


def can_compact(model, params: SamplingParams, generation=None) -> bool:
    """Whether :func:`sample_compacting` samples as ``model.generate`` would: a decoder-only model whose
    layers all attend to the full context (a plain KV cache, rows of which can be dropped), no sampling
    settings beyond temperature, top-k and top-p (``params.extra`` or ``generation``, the generation config
    in force: by default the model's)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False) or params.extra:
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        if any(t != "full_attention" for t in layer_types):
            return False
    elif getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    generation = generation if generation is not None else getattr(model, "generation_config", None)
    if generation is None:
        return True
    missing = object()
    return all(key in COMPACT_SETTINGS or NEUTRAL_SETTINGS.get(key, missing) == value
               for key, value in generation.to_diff_dict().items())


def sample_compacting(model, input_ids, attention, params: SamplingParams, eos_ids: Sequence[int]) -> list[list[int]]:
    """New tokens of each row of a left-padded batch (the EOS included where one was sampled), sampled as
    ``model.generate`` samples (temperature, then top-k, then top-p; greedy at temperature 0), but rows that
    have finished leave the batch, so a batch costs its mean response length rather than its longest.

    Finished rows are dropped from the KV cache once they are :data:`COMPACT_SHARE` of the batch: until then
    they are fed their last token and their samples ignored.
    """
    import inspect

    import torch
    from transformers import (
        DynamicCache,
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    sample = params.temperature > 0
    warpers = LogitsProcessorList()
    if sample:
        if params.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            warpers.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            warpers.append(TopPLogitsWarper(params.top_p))
    device = input_ids.device
    eos = torch.tensor(list(eos_ids), device=device)
    rows = input_ids.shape[0]
    out: list[list[int]] = [[] for _ in range(rows)]
    alive = torch.arange(rows, device=device)  # the batch row of each row still in the cache
    done = torch.zeros(rows, dtype=torch.bool, device=device)  # of the rows in the cache
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    last = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, past_key_values=cache,
                   use_cache=True, **last).logits[:, -1, :]
    position = positions[:, -1]
    for step in range(params.max_new_tokens):
        scores = warpers(input_ids, logits.float())
        # a sample from softmax(scores): argmax of p / Exp(1) noise (torch.multinomial is several times slower on a CPU)
        tokens = (scores.softmax(-1) / torch.empty_like(scores).exponential_()).argmax(-1) if sample else scores.argmax(-1)
        for row, token, finished in zip(alive.tolist(), tokens.tolist(), done.tolist(), strict=True):
            if not finished:
                out[row].append(token)
        done |= torch.isin(tokens, eos)
        if step + 1 == params.max_new_tokens or bool(done.all()):
            break
        if int(done.sum()) >= COMPACT_SHARE * len(done):
            keep = (~done).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            alive, done, tokens, attention, position = alive[keep], done[keep], tokens[keep], attention[keep], position[keep]
        attention = torch.cat([attention, attention.new_ones(len(alive), 1)], dim=1)
        position = position + 1
        logits = model(input_ids=tokens[:, None], attention_mask=attention, position_ids=position[:, None],
                       past_key_values=cache, use_cache=True).logits[:, -1, :]
    return out


def _eos_ids(model, tokenizer) -> list[int]:
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if value is not None:
            ids.extend(value if isinstance(value, list) else [value])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model and tokenizer define no EOS token; generation would never stop")
    return sorted(set(ids))
