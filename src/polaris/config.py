"""Recipe files: one YAML file describes a whole POLARIS run.

Every section is a dataclass; each field is documented once, here. Unknown keys and bad values
fail with the file and the key path named (``recipes/x.yaml: stages[1].temperature: ...``).
See ``recipes/tiny-cpu.yaml`` (the default) and ``docs/recipes.md``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

BUILTIN_MODEL = "builtin:tiny"
BUILTIN_TRAIN = "builtin:arith-train"
BUILTIN_TEST = "builtin:arith-test"


class RecipeError(ValueError):
    """A recipe file is wrong; the message names the file and the key."""


@dataclass
class ModelSettings:
    path: str = BUILTIN_MODEL
    """The model to train: ``builtin:tiny`` (built and warm-started locally), a local HF folder, or a Hub id."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype for training and generation."""
    max_position_embeddings: int | None = None
    """Raise the model's context before a stage needs more (SPEC 3); ``None`` keeps the model's own."""
    native_max_position_embeddings: int | None = None
    """The model's own context length (Qwen3: 40960). With it, a stage whose prompt + response needs more
    must raise ``max_position_embeddings`` (checked), and YaRN scales from it; ``None``: not checked."""


@dataclass
class TinyTaskSettings:
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
    benchmarks: list[str] = field(default_factory=lambda: [BUILTIN_TEST])
    """What every stage is evaluated on: ``builtin:arith-test``, a named benchmark or a file."""
    k: int = 8
    """Samples per problem (avg@k)."""
    temperature: float = 1.0
    """Sampling temperature (never above the training temperature, SPEC 8)."""
    top_p: float = 1.0
    """Nucleus sampling."""
    top_k: int = 0
    """Top-k sampling (0: off)."""
    max_new_tokens: int = 128
    """Response budget."""
    batch_size: int = 512
    """Sequences per generation batch."""
    yarn_factor: float | None = None
    """Real models: YaRN rope scaling factor at evaluation (SPEC 7; the paper: 1.5); ``None``: no YaRN."""
    yarn_original_max_position_embeddings: int | None = None
    """The context YaRN scales from; default ``model.native_max_position_embeddings`` (SPEC 7: explicit)."""
    backend: str = "transformers"
    """Real models: generation backend of the evaluation, ``transformers`` or ``vllm`` (GPU)."""
    tensor_parallel_size: int = 1
    """Real models, ``vllm`` backend: GPUs per model."""
    paper_k: bool = True
    """Real models: the registered benchmarks (aime24 32, aime25 32, amc23 8, minerva 4, olympiad 4; also
    local files with those names) use the paper's k instead of ``k``."""
    evaluate_base: bool = False
    """Real models: also evaluate the starting model (``eval:base``); the built-in model always is."""


@dataclass
class ProfileSettings:
    k: int = 8
    """Rollouts per training problem when profiling difficulty (SPEC 1: k=8)."""
    temperature: float = 1.0
    """Sampling temperature of the profile (the model's ordinary sampling, before any search)."""
    max_new_tokens: int | None = None
    """Response budget; default: the first stage's ``max_response_tokens``."""
    min_correct: int = 0
    """Keep problems solved at least this many times of k (0 keeps the unsolved ones, on purpose)."""
    max_correct: int | None = None
    """Keep problems solved at most this many times; default k-1 (drop the solved ones)."""
    records: str | None = None
    """Reuse a saved profile instead of generating one: a ``records.jsonl`` written by ``polaris profile``
    or by a run (``profile/records.jsonl``) with the same model, covering every training problem at this
    ``k``. Profiling 8 rollouts per problem is the costliest step before training; ``None``: profile now."""


@dataclass
class TemperatureSearchSettings:
    grid: list[float] = field(default_factory=lambda: [0.6, 0.8, 1.0, 1.2, 1.4])
    """Temperatures tried before stage 1 (accuracy and distinct-4 diversity at each)."""
    problems: int = 64
    """Training problems sampled for each search."""
    n: int = 8
    """Responses per problem at each temperature."""
    accuracy_tolerance: float = 0.05
    """How far (absolute) below the grid's best accuracy a temperature may fall and still be chosen."""
    stage_step: float = 0.05
    """Step of the upward re-search between stages (SPEC 2: raise T in steps of 0.05)."""
    stage_max_increase: float = 0.3
    """How far above the previous stage's temperature the re-search looks."""


@dataclass
class StageSettings:
    steps: int = 20
    """Optimizer steps (one batch each)."""
    max_response_tokens: int = 128
    """Response budget during rollouts (grows stage by stage)."""
    temperature: float | Literal["search"] = "search"
    """Rollout temperature, or ``search``: chosen by the diversity rules of SPEC 2."""
    learning_rate: float | None = None
    """Overrides ``train.learning_rate`` for this stage."""
    val_temperature: float | None = None
    """Sampling temperature of the validation runs in this stage (SPEC 3; never above the training
    temperature); ``None``: the stage's rollout temperature."""


@dataclass
class TrainSettings:
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
    """PPO clip below 1 (SPEC 5)."""
    epsilon_high: float = 0.28
    """PPO clip above 1: clip-higher (DAPO, https://arxiv.org/abs/2503.14476)."""
    dual_clip: float | None = 3.0
    """Cap on the ratio for negative advantages (dual clip); ``None`` turns it off."""
    top_p: float = 1.0
    """Nucleus sampling of rollouts."""
    rescue: bool = True
    """Rollout rescue (SPEC 4)."""
    substitution: bool = True
    """Intra-batch informative substitution (SPEC 4)."""
    min_informative: int | None = None
    """Skip a batch with at most this many informative groups; default floor(batch_prompts / 3)."""
    drop_threshold: float = 0.9
    """Between stages, drop problems whose mean logged accuracy is above this (SPEC 1)."""
    save_steps: int = 5
    """Checkpoint cadence (steps); a killed run resumes from the last one."""
    generation_batch_size: int = 512
    """Sequences per ``generate`` call in profiling and searches."""
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


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RecipeError(f"{where + ': ' if where else ''}unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}" if where else name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where + ': ' if where else ''}{e}") from None


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except RecipeError as e:
                errors.append(str(e))
        raise RecipeError(errors[-1] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecipeError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where}: expected text, got {value!r}")
        return value
    return value


def load_yaml_dataclass(cls: type, path: str | Path) -> Any:
    """Read ``path`` into ``cls``; errors name the file and the key."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise RecipeError(f"{path}: no such recipe file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    try:
        return _from_dict(cls, data, "")
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


@dataclass
class RecipeConfig:
    """A whole POLARIS run: the model, its data, the stages, the evaluation."""

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
            raise ValueError("stages: at least one stage is needed")
        if self.train.rollouts < 2:
            raise ValueError("train.rollouts: GRPO needs at least 2 rollouts per problem")
        check_recipe(self)

    @property
    def builtin_model(self) -> bool:
        return self.model.path == BUILTIN_MODEL


def load_recipe(path: str | Path) -> RecipeConfig:
    return load_yaml_dataclass(RecipeConfig, path)


# -- real models and scale-out (docs/scale.md) ----------------------------------------------------


@dataclass
class EngineSettings:
    """How TRL generates the rollouts of a training step (``GRPOConfig`` ``use_vllm``/``vllm_*``)."""

    backend: Literal["transformers", "vllm"] = "transformers"
    """``transformers`` (``generate`` on the training processes) or ``vllm`` (GPU, the ``[vllm]`` extra)."""
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

    def __post_init__(self) -> None:
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise ValueError(
                f"vllm_gpu_memory_utilization must be in (0, 1], got {self.vllm_gpu_memory_utilization}"
            )
        if self.vllm_tensor_parallel_size < 1:
            raise ValueError(f"vllm_tensor_parallel_size must be >= 1, got {self.vllm_tensor_parallel_size}")
        if not 0 < self.vllm_port < 65536:
            raise ValueError(f"vllm_port must be a TCP port (1..65535), got {self.vllm_port}")


@dataclass
class ValidationSettings:
    """Validation during training: avg@k on a benchmark at the stage's ``val_temperature``."""

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

    def __post_init__(self) -> None:
        if self.every_steps < 0:
            raise ValueError(f"every_steps must be >= 0 (0 turns validation off), got {self.every_steps}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or null for every problem), got {self.limit}")


@dataclass
class LaunchSettings:
    """How ``polaris run RECIPE --launch`` starts the processes (printed by ``--dry-run``)."""

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

    def __post_init__(self) -> None:
        for name in ("num_processes", "num_machines"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


def stage_context(recipe: RecipeConfig, index: int) -> int | None:
    """Tokens a stage's sequences reach (prompt + response), or ``None`` without ``max_prompt_tokens``."""
    prompt = recipe.train.max_prompt_tokens
    return None if prompt is None else prompt + recipe.stages[index].max_response_tokens


def check_recipe(recipe: RecipeConfig) -> None:
    """Checks across sections; each message names the key to change and how."""
    for i, stage in enumerate(recipe.stages):
        if stage.val_temperature is not None and stage.temperature != "search" \
                and stage.val_temperature > float(stage.temperature):
            raise ValueError(
                f"stages[{i}].val_temperature {stage.val_temperature} is above the stage's temperature "
                f"{stage.temperature}; SPEC 8: never evaluate above the training temperature, lower it"
            )
    native = recipe.model.native_max_position_embeddings
    positions = recipe.model.max_position_embeddings or native
    needs = [stage_context(recipe, i) for i in range(len(recipe.stages))]
    if native is not None and positions is not None and any(n is not None and n > positions for n in needs):
        i, need = next((i, n) for i, n in enumerate(needs) if n is not None and n > positions)
        longest = max(n for n in needs if n is not None)
        raise ValueError(
            f"stages[{i}]: prompt {recipe.train.max_prompt_tokens} + response "
            f"{recipe.stages[i].max_response_tokens} = {need} tokens exceed the model's {positions} positions "
            f"(native {native}); SPEC 3: set model.max_position_embeddings to at least {longest}"
        )
    share = recipe.train.batch_prompts * recipe.train.rollouts
    micro = recipe.train.micro_batch_sequences
    if micro is not None and (micro < 1 or share % micro):
        raise ValueError(
            f"train.micro_batch_sequences {micro} must be >= 1 and divide train.batch_prompts × train.rollouts "
            f"= {share} (and each process's share of it)"
        )
    processes = recipe.launch.num_processes
    if processes is not None and share % processes:
        raise ValueError(
            f"train.batch_prompts × train.rollouts = {share} sequences must divide evenly over "
            f"launch.num_processes = {processes}; change either (e.g. a power of two of processes)"
        )
    ev = recipe.eval
    if ev.yarn_factor is not None:
        if ev.yarn_factor <= 1:
            raise ValueError(f"eval.yarn_factor must be > 1 (the paper: 1.5), got {ev.yarn_factor}")
        if (ev.yarn_original_max_position_embeddings or native) is None:
            raise ValueError(
                "eval.yarn_factor needs the context it scales from: set "
                "eval.yarn_original_max_position_embeddings or model.native_max_position_embeddings"
            )
    from polaris.backends import check_backend

    check_backend(ev.backend)
    if recipe.train.engine.backend == "vllm" and recipe.builtin_model:
        raise ValueError("train.engine.backend: vllm needs a GPU model; the built-in tiny model uses transformers")
