"""Load any HF causal LM and its tokenizer, ready for batched sampling and training."""

from __future__ import annotations

from pathlib import Path

DTYPES = ("float32", "bfloat16", "float16")


def load_model(path: str | Path, *, dtype: str = "float32", device: str | None = None, **config_overrides):
    """``(model, tokenizer)`` from a local folder or a Hub id (offline: local folders only).

    ``config_overrides`` are set on the model config before the weights load (for example
    ``max_position_embeddings`` or ``rope_parameters`` for YaRN).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    path = str(path)
    config = AutoConfig.from_pretrained(path)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=getattr(torch, dtype))
    if device is not None:
        model.to(device)
    tokenizer = load_tokenizer(path)
    return model, tokenizer


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
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
