"""YaRN rope scaling at inference time: train short, test long (docs/method.md § Train short, test long).

Algorithm
---------
YaRN (Peng et al. 2023, https://arxiv.org/abs/2309.00071) extends a RoPE model's context by a
factor F without retraining: rotary frequencies whose wavelength is short compared with the
original context N are kept (extrapolation), long-wavelength ones are divided by F
(interpolation), with a linear ramp between (``beta_fast`` 32 / ``beta_slow`` 1 rotations), and
attention logits are scaled by ``(0.1 ln F + 1)^2`` (the cos/sin "mscale"). The usable context
becomes N × F. POLARIS evaluates with F = 1.5 and decodes up to 90K tokens.

What this module does
---------------------
It only computes settings; it never writes a model folder. :func:`yarn_config_overrides` gives
the keys to set on a *loaded copy* of a transformers config (pass them to
:func:`polaris.models.loading.load_model` as ``**config_overrides``); :func:`vllm_yarn_overrides`
gives the same settings in vLLM's form (``hf_overrides`` plus the engine's ``max_model_len``).

transformers 5.x keeps every RoPE setting in ``config.rope_parameters`` (``rope_type``,
``rope_theta``, ``factor``, ``original_max_position_embeddings``, ...); the rotary module reads it
once when the model is built, so the overrides must be on the config *before* the weights load.

Deviations and choices
----------------------
- ``original_max_position_embeddings`` is always explicit (docs/method.md § Train short, test long): left unset, transformers
  would default it to ``max_position_embeddings`` and silently compute a different scaling.
- The scaling is static, as in vLLM and the reference: it applies to short inputs too (the
  attention scale changes every position after the first), not only beyond N.
- ``max_position_embeddings`` of the evaluated copy becomes ``round(N × F)``; transformers does not
  enforce it during generation, vLLM does (``max_model_len``).
- Existing RoPE keys of the model (``rope_theta``, ``partial_rotary_factor``) are kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: transformers' default RoPE base when a config names none.
DEFAULT_ROPE_THETA = 10000.0


@dataclass(frozen=True)
class YarnSettings:
    """YaRN at inference: scale the rope by ``factor`` from ``original_max_position_embeddings``."""

    factor: float
    original_max_position_embeddings: int

    def __post_init__(self) -> None:
        if not self.factor > 1.0:
            raise ValueError(f"YaRN factor must be > 1 (the paper uses 1.5), got {self.factor}")
        if self.original_max_position_embeddings < 1:
            raise ValueError(
                "YaRN original_max_position_embeddings must be the model's trained context length (>= 1), "
                f"got {self.original_max_position_embeddings}"
            )

    @property
    def max_position_embeddings(self) -> int:
        """The extended context, N × F."""
        return round(self.original_max_position_embeddings * self.factor)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rope_type": "yarn", "max_position_embeddings": self.max_position_embeddings}


def make_yarn(factor: float | None, original_max_position: int | None) -> YarnSettings | None:
    """Settings from the two command-line options; both or neither must be given."""
    if factor is None and original_max_position is None:
        return None
    if factor is None or original_max_position is None:
        raise ValueError(
            "YaRN needs both --yarn-factor and --original-max-position (the trained context length, "
            "docs/method.md § Train short, test long: it must be explicit); pass both, or neither to evaluate without YaRN"
        )
    return YarnSettings(float(factor), int(original_max_position))


def rope_parameters_of(config: Any) -> dict[str, Any]:
    """The RoPE settings of a config object or a ``config.json`` dict, in transformers 5 form."""
    get = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
    params = dict(get("rope_parameters", None) or get("rope_scaling", None) or {})
    params.setdefault("rope_type", params.pop("type", "default"))
    theta = get("rope_theta", None)
    params.setdefault("rope_theta", float(theta) if theta is not None else DEFAULT_ROPE_THETA)
    return params


def yarn_rope_parameters(base: Mapping[str, Any], yarn: YarnSettings) -> dict[str, Any]:
    """``base`` RoPE parameters turned into YaRN ones (other keys, e.g. ``rope_theta``, kept)."""
    params = {k: v for k, v in base.items() if k != "type"}
    params.update(
        rope_type="yarn",
        factor=float(yarn.factor),
        original_max_position_embeddings=int(yarn.original_max_position_embeddings),
    )
    params.setdefault("rope_theta", DEFAULT_ROPE_THETA)
    return params


def yarn_config_overrides(config: Any, yarn: YarnSettings) -> dict[str, Any]:
    """Keys to set on a loaded copy of ``config`` (object or dict) for YaRN in transformers."""
    return {
        "rope_parameters": yarn_rope_parameters(rope_parameters_of(config), yarn),
        "max_position_embeddings": yarn.max_position_embeddings,
    }


def vllm_yarn_overrides(config: Any, yarn: YarnSettings) -> dict[str, Any]:
    """``LLM(...)`` keyword arguments for YaRN in vLLM 0.31.

    vLLM dropped ``--rope-scaling``; its documented way (docs "Context Extension") is
    ``hf_overrides={"rope_parameters": {...yarn...}, "max_model_len": N*F}``. The engine's own
    ``max_model_len`` is set too, so the longer context is admitted. ``max_position_embeddings`` is
    raised to N*F as well, as transformers' YaRN reads it (and as vLLM 0.32 expects of a YaRN config:
    it no longer multiplies the factor in itself, and refuses a ``max_model_len`` above it).
    """
    length = yarn.max_position_embeddings
    return {
        "hf_overrides": {
            "rope_parameters": yarn_rope_parameters(rope_parameters_of(config), yarn),
            "max_position_embeddings": length,
            "max_model_len": length,
        },
        "max_model_len": length,
    }


def read_config_json(model_path: str | Path) -> dict[str, Any]:
    """A local model folder's ``config.json`` (``{}`` for a Hub id, whose config is not local)."""
    path = Path(model_path) / "config.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def load_model_with_yarn(path: str | Path, yarn: YarnSettings | None, **kwargs: Any):
    """``load_model`` with the YaRN overrides on the in-memory config; the folder is untouched."""
    from transformers import AutoConfig

    from polaris.models.loading import check_model_folder, load_model

    check_model_folder(path)
    if yarn is None:
        return load_model(path, **kwargs)
    overrides = yarn_config_overrides(AutoConfig.from_pretrained(str(path)), yarn)
    return load_model(path, **kwargs, **overrides)
