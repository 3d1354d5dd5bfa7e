"""The ``vllm`` backend (GPU, the ``[vllm]`` extra: ``pip install 'polaris-rl[vllm]'``, vLLM 0.31).

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
from typing import Any

from polaris.generation import Completion, SamplingParams

INSTALL_HINT = "pip install 'polaris-rl[vllm]'"


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


def vllm_engine_kwargs(model_path: str, options, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """``vllm.LLM(**kwargs)`` for a model folder or Hub id; ``config`` is its ``config.json``."""
    from polaris.models.yarn import vllm_yarn_overrides

    kwargs: dict[str, Any] = {
        "model": str(model_path),
        "dtype": options.dtype,
        "seed": options.seed,
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
    }
    if options.yarn is not None:
        kwargs.update(vllm_yarn_overrides(config or {}, options.yarn))
    return kwargs


def import_vllm():
    try:
        import vllm
    except ImportError as e:
        from polaris.backends import BackendError

        raise BackendError(
            f"the vllm backend needs vLLM 0.31 (GPU only), which is not installed: {INSTALL_HINT}; "
            "or use --backend transformers"
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
        from polaris.models.yarn import read_config_json

        vllm = import_vllm()
        config = read_config_json(model_path)
        if options.yarn is not None and not config:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(model_path).to_dict()
        kwargs = vllm_engine_kwargs(model_path, options, config)
        llm = vllm.LLM(**kwargs)
        return cls(llm, llm.get_tokenizer(), kwargs)

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, *, batch_size: int = 0,
        desc: str | None = None,
    ) -> list[list[Completion]]:
        """vLLM schedules its own batches, so ``batch_size`` is unused."""
        vllm = import_vllm()
        sampling = vllm.SamplingParams(**vllm_sampling_kwargs(params))
        prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=desc is not None)
        return [
            [Completion(o.text, tuple(o.token_ids), o.finish_reason == "length") for o in out.outputs]
            for out in outputs
        ]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, **{k: v for k, v in self.engine_kwargs.items() if k != "hf_overrides"},
                "hf_overrides": self.engine_kwargs.get("hf_overrides")}
