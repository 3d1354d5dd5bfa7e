"""The ``transformers`` backend: :func:`polaris.generation.generate` on any HF causal LM.

CPU or GPU (a GPU when there is one, unless a device is given); batched sampling with KV cache and
left padding, stopping at EOS. YaRN settings are
applied to the in-memory config before the weights load (:mod:`polaris.models.yarn`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from polaris.generation import Completion, SamplingParams, generate, model_context


def default_device(device: str | None) -> str | None:
    """Where the model generates: ``device`` if given, else the GPU when there is one (``None``: the CPU)."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else None


@dataclass
class TransformersBackend:
    model: Any
    tokenizer: Any
    model_path: str = ""
    options: Any = None
    name: str = "transformers"

    @classmethod
    def load(cls, model_path: str, options) -> TransformersBackend:
        from polaris.models.yarn import load_model_with_yarn

        model, tokenizer = load_model_with_yarn(model_path, options.yarn, dtype=options.dtype,
                                                device=default_device(options.device))
        return cls(model, tokenizer, model_path, options)

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, *, batch_size: int = 512,
        batch_tokens: int | None = None, desc: str | None = None,
    ) -> list[list[Completion]]:
        return generate(self.model, self.tokenizer, prompt_ids, params, batch_size=batch_size,
                        batch_tokens=batch_tokens, desc=desc)

    def context_length(self) -> int | None:
        return model_context(self.model)

    def close(self) -> None:
        """Let go of the weights (the model in training, wrapped for validation, is not ours to free)."""
        if self.model_path:
            self.model = None

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "backend": self.name,
            "model": self.model_path,
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "device": str(next(self.model.parameters()).device),
            "max_position_embeddings": getattr(config, "max_position_embeddings", None),
            "rope_parameters": dict(getattr(config, "rope_parameters", None) or {}),
        }
