"""The built-in tiny reasoning model: Qwen3 architecture, small BPE tokenizer, built locally.

Same code path as a real model (Qwen3 modelling code, chat template, ``<think>`` tokens, RoPE so
YaRN applies), sized for a laptop CPU: hidden 128, 2 layers, 4 heads of 32, 2 KV heads,
intermediate 512, tied embeddings, 256 positions — about 0.5M parameters. Two layers learned
better than four in the same wall time on 2 cores.

The tokenizer is a byte-level BPE trained on the task's own text: digits are always single
tokens (so the model learns digit-wise arithmetic), frequent words of the prompt merge into
single tokens (the instruction suffix costs ~20 tokens instead of ~75 characters). Any ASCII
text still encodes, so the tiny model can be pointed at the real benchmark files too.
``<think>``/``</think>`` are ordinary (non-special) added tokens, as in Qwen3, so decoding with
``skip_special_tokens=True`` keeps them and the reward can find ``</think>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
CONTROL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]


def tokenizer_corpus(conversations: Iterable[list[dict[str, str]]], completions: Iterable[str]) -> list[str]:
    """Training text for the BPE: conversations rendered through the chat template, and completions."""
    from jinja2 import Template

    template = Template(CHAT_TEMPLATE)
    rendered = [template.render(messages=m, add_generation_prompt=True) for m in conversations]
    return rendered + list(completions)


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 384):
    """Train the byte-level BPE on ``corpus`` and wrap it as a ``PreTrainedTokenizerFast``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=CONTROL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=256,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer, *, hidden: int = 128, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                intermediate: int = 512, max_positions: int = 256, seed: int = 0):
    """A freshly initialised Qwen3 causal LM for ``tokenizer``."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True, top_k=0
    )
    return model


#: The warm-started tiny model that ships with polaris, and its record (the settings it was made with).
SHIPPED_BASE = Path(__file__).with_name("tiny_base")
SHIPPED_RECORD = "polaris-base.json"


def base_settings(tiny, warm_start) -> dict[str, Any]:
    """What the warm-started model depends on: the task (``data.tiny``: its splits are held out of the
    warm start) and the ``warm_start`` settings, as JSON values."""
    import dataclasses
    import json

    start = {k: v for k, v in dataclasses.asdict(warm_start).items() if k != "shipped"}
    return json.loads(json.dumps({"data.tiny": dataclasses.asdict(tiny), "warm_start": start}))


def shipped_base(tiny, warm_start) -> tuple[Path, dict[str, Any]] | None:
    """The shipped warm-started model folder and its record, when it was made with these settings."""
    from polaris.io import read_json

    record = read_json(SHIPPED_BASE / SHIPPED_RECORD)
    if record is None or record.get("settings") != base_settings(tiny, warm_start):
        return None
    return SHIPPED_BASE, record


def save(model, tokenizer, path: str | Path) -> Path:
    """A standard HF folder that ``AutoModelForCausalLM``/``AutoTokenizer`` load offline."""
    from polaris.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return path
