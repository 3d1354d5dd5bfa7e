"""Load any HF causal LM and its tokenizer, ready for batched sampling and training.

A local model folder is checked before its weights load (:func:`check_model_folder`): it needs a
``config.json``, tokenizer files, a chat template (every prompt is one user turn through it) and an
EOS token (where a response ends, for generation and for training). What is missing is a
:class:`polaris.errors.ModelError` naming the folder, the file and the field.
"""

from __future__ import annotations

from pathlib import Path

from polaris.errors import ModelError

DTYPES = ("float32", "bfloat16", "float16")
#: Files any one of which holds a tokenizer's vocabulary (fast tokenizers, sentencepiece, BPE, WordPiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


#: ``model.attn_implementation`` values: ``auto`` (:func:`resolve_attention`) or one of transformers' own.
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")


def resolve_attention(requested: str, *, gpu: bool, dtype: str) -> tuple[str, str | None]:
    """``(attn_implementation for from_pretrained, a message or None)``.

    ``auto``: FlashAttention-2 on a GPU in bfloat16/float16 when the ``flash-attn`` package is installed —
    it drops the padding of every sequence, where SDPA with a padding mask computes the padded positions and
    holds a ``T × T`` boolean mask (2.6 GiB at 53K tokens) — else SDPA, with a message on a GPU saying what is lost.
    A FlashAttention asked for by name without its package, or without a GPU, is a :class:`ModelError`.
    """
    import importlib.util

    if requested not in ATTENTION:
        raise ModelError(f"model.attn_implementation: {requested!r} is not one of {', '.join(ATTENTION)}")
    flash = importlib.util.find_spec("flash_attn") is not None
    half = dtype in ("bfloat16", "float16")
    if requested == "auto":
        if gpu and half and flash:
            return "flash_attention_2", None
        if gpu and half:
            return "sdpa", ("[polaris] attention: SDPA with a padding mask (model.attn_implementation: auto); "
                            "install flash-attn (pip install flash-attn --no-build-isolation) for FlashAttention-2, "
                            "which skips padding and the T x T mask on long responses")
        return "sdpa", None
    if requested.startswith("flash_attention") and not (gpu and half and (flash or requested.endswith("_3"))):
        raise ModelError(f"model.attn_implementation: {requested} needs a CUDA GPU, model.dtype bfloat16 or float16 "
                         f"and the flash-attn package{'' if flash else ' (not installed)'}; use auto or sdpa")
    return requested, None


def load_model(path: str | Path, *, dtype: str = "float32", device: str | None = None,
               attn_implementation: str | None = None, **config_overrides):
    """``(model, tokenizer)`` from a local folder or a Hub id (offline: local folders only).

    ``attn_implementation``: as transformers takes it (``None``: the model's default). ``config_overrides``
    are set on the model config before the weights load (for example ``max_position_embeddings`` or
    ``rope_parameters`` for YaRN).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    path = str(path)
    tokenizer = load_tokenizer(path)  # checked first: a folder without one fails before the weights load
    config = AutoConfig.from_pretrained(path)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=getattr(torch, dtype), **extra)
    if device is not None:
        model.to(device)
    return model, tokenizer


def check_model_source(model: str, *, key: str) -> None:
    """:class:`ModelError` naming ``key`` when ``model`` is neither a local folder nor something the Hub can serve:
    a path (``/...``, ``./...``, ``~/...``) that does not exist, or anything but a folder when the Hub is offline."""
    import os

    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE",))
    if Path(model).expanduser().is_dir():
        return
    if offline or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelError(
            f"{key}: {model!r} is not a local folder"
            + (" and Hugging Face access is offline (HF_HUB_OFFLINE); give a local model folder" if offline
               else "; give a local model folder or a Hub id (owner/name)")
        )


def check_model_folder(path: str | Path) -> None:
    """A local folder's ``config.json`` and tokenizer files (a Hub id is left to ``from_pretrained``)."""
    folder = Path(path)
    if not folder.is_dir():
        return
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: no config.json, so this is not a Hugging Face model folder (expected "
                         "config.json, the weights and the tokenizer files, as save_pretrained writes them)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{folder}: no tokenizer (none of {', '.join(TOKENIZER_FILES)} is in the folder); save the "
                         "tokenizer of the model it was made from into it: tokenizer.save_pretrained(FOLDER)")


def check_tokenizer(tokenizer, path: str | Path) -> None:
    """The tokenizer has a chat template and an EOS token, else a :class:`ModelError` naming the field."""
    config = Path(path) / "tokenizer_config.json"
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            f"{config}: field 'chat_template' missing (and no chat_template.jinja beside it): every prompt is one "
            "user turn through the model's chat template (docs/method.md § Evaluation protocol); add the template "
            "of the model's family: tokenizer.chat_template = TEMPLATE; tokenizer.save_pretrained(FOLDER)")
    if getattr(tokenizer, "eos_token_id", None) is None:
        raise ModelError(
            f"{config}: field 'eos_token' missing: without an EOS token no response ends, in generation or in "
            "training; set it to the token the chat template closes a turn with (e.g. \"<|im_end|>\")")


def load_tokenizer(path: str | Path):
    """The tokenizer of a model folder (or Hub id), checked (:func:`check_tokenizer`), padding on the left."""
    from transformers import AutoTokenizer

    check_model_folder(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as e:
        if not Path(path).is_dir():
            raise
        raise ModelError(f"{path}: the tokenizer files cannot be read ({type(e).__name__}: {e})") from e
    check_tokenizer(tokenizer, path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def thread_count() -> int:
    """Intra-op threads for this process: ``POLARIS_THREADS``, else the cores it may use divided among the
    processes of a launch on this machine (``LOCAL_WORLD_SIZE``: two CPU training processes on two cores
    get one thread each).

    Threads that outnumber free cores spin and slow everything down (seen: a 5 s evaluation took 77 s
    beside another torch process): set ``POLARIS_THREADS`` lower when other heavy processes share the
    machine.
    """
    import os

    if os.environ.get("POLARIS_THREADS"):
        return max(1, int(os.environ["POLARIS_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def set_threads() -> int:
    """Set torch's intra-op threads to :func:`thread_count`; returns it."""
    import torch

    threads = thread_count()
    torch.set_num_threads(threads)
    return threads


def has_gpu() -> bool:
    """Whether torch sees a CUDA GPU."""
    import torch

    return torch.cuda.is_available()
