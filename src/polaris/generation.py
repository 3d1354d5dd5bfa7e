"""Sampling completions from a causal LM with transformers: batched, KV cache, left padding.

Prompts go through the model's chat template (one user turn, docs/method.md § Evaluation protocol). Each prompt is
sampled ``n`` times. A completion stops at the tokenizer's EOS; one that reaches
``max_new_tokens`` without it is marked ``truncated``. ``top_k=0`` turns top-k off (the
training setting, docs/method.md § The objective: top-p 1.0 and no top-k); evaluation uses top-k 20.

Sampling is reproducible for a given ``seed`` and batch layout: the torch generator is seeded
per batch from ``(seed, batch index)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from polaris.progress import progress


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


def generate(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    params: SamplingParams,
    *,
    batch_size: int = 512,
    desc: str | None = None,
) -> list[list[Completion]]:
    """``params.n`` completions for each prompt, in prompt order.

    ``batch_size`` counts sequences (prompts × n) per ``generate`` call; prompts are grouped by
    length so that little padding is computed.
    """
    import torch

    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    per_batch = max(1, batch_size // params.n)
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    results: list[list[Completion]] = [[] for _ in prompt_ids]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    batches = [order[i : i + per_batch] for i in range(0, len(order), per_batch)]
    try:
        for b, idx in enumerate(progress(batches, desc=desc, unit="batch")):
            rows = [list(prompt_ids[i]) for i in idx]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
            attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
            generator_seed = hash((params.seed, b)) % (2**31)
            torch.manual_seed(generator_seed)
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
            with torch.no_grad():
                out = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
            new = out[:, width:].tolist()
            for j, ids in enumerate(new):
                cut = next((t for t, tok in enumerate(ids) if tok in eos_ids), None)
                truncated = cut is None
                ids = ids if truncated else ids[: cut + 1]
                text = tokenizer.decode(ids, skip_special_tokens=True)
                results[idx[j // params.n]].append(Completion(text, tuple(ids), truncated))
    finally:
        model.train(was_training)
    return results


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
