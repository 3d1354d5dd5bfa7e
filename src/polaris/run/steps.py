"""The steps of a run, each a function of the resolved plan and the run directory.

=============  ==============================================================================
step           what it does (and where it writes, see :mod:`polaris.run.layout`)
=============  ==============================================================================
prepare        built-in model only: the task's train/test splits and the untrained tiny model
warm_start     built-in model only: supervised fine-tuning into a partially competent base model
profile        k rollouts per training problem with the model about to be trained; keep the
               problems the filter keeps for stage 1 (docs/method.md § Difficulty-aware data)
drop           between stages: drop the problems the previous stage found easy
temperature    the stage's rollout temperature: the start of the exploration zone (stage 1), the
               lowest temperature keeping the previous stage's diversity (later stages), or the
               stage's fixed value (docs/method.md § Diversity-based temperature)
train          one GRPO stage with the recipe (resumable mid-stage)
evaluate       one model on every benchmark of the recipe, through a backend
report         ``report.md`` with plots
=============  ==============================================================================

``polaris run`` orders them (:mod:`polaris.run.pipeline`); ``polaris profile``, ``polaris
temperature`` and ``polaris train`` run one of them on a recipe (a file, or the defaults, plus
``--set`` overrides) into a run directory of their own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris.config import BUILTIN_TRAIN
from polaris.errors import RecipeError
from polaris.progress import log
from polaris.run.layout import RunLayout, TemperatureRecord
from polaris.run.plan import EvalPlan, Plan, ProfileOutcome, StagePlan, filter_profile

#: ``record(model, benchmark, summary)``: where an evaluation's summary goes (``summary.json`` results).
ResultSink = Callable[[str, str, dict[str, Any]], None]


@dataclass
class Context:
    """What every step works with: the resolved plan and the run directory."""

    plan: Plan
    layout: RunLayout

    @property
    def recipe(self):
        return self.plan.recipe

    def base_model(self) -> str | Path:
        """The model stage 1 starts from: the warm-started built-in model, or ``model.path``."""
        return self.layout.model("base") if self.plan.builtin else self.recipe.model.path

    def start_model(self, stage: int) -> str | Path:
        """The weights stage K starts from: the base model for stage 1, else stage K-1's."""
        return self.base_model() if stage == 1 else self.layout.stage_model(stage - 1)

    def model_of(self, name: str) -> str | Path:
        """``base`` or ``stage-K``: the weights evaluated under that name."""
        return self.base_model() if name == "base" else self.layout.model(name)

    def training_problems(self):
        from polaris.data.loaders import load_problems

        data = self.recipe.data
        if data.train == BUILTIN_TRAIN:
            return load_problems(self.layout.split("arith-train"), limit=data.limit)
        return load_problems(data.train, split=data.split, limit=data.limit)

    def stage_problems(self, stage: int, *, every_problem_if_unfiltered: bool = False):
        """The training problems of stage K (``data/stage-K.ids.json``).

        ``every_problem_if_unfiltered``: a single-step command on a directory without that file takes
        every training problem; inside ``polaris run`` a missing file is a bug in the order of steps.
        """
        ids = self.layout.read_stage_ids(stage)
        problems = self.training_problems()
        if ids is None:
            if every_problem_if_unfiltered:
                log(f"[polaris] stage {stage}: no {self.layout.stage_ids_path(stage)}; using every training problem")
                return problems
            raise RecipeError(f"stage {stage}: {self.layout.stage_ids_path(stage)} is missing; run the profile step "
                              "(and the drop step of later stages) first")
        keep = set(ids)
        return [p for p in problems if p.id in keep]

    def reward(self, *, evaluation: bool = False):
        """The recipe's reward: for training, the profile and the searches (``reward.require_think``), or
        for evaluation (never requires ``</think>``; ``None``: the built-in grader with its verdicts)."""
        from polaris.reward.custom import recipe_reward

        return recipe_reward(self.recipe.reward, evaluation=evaluation)

    def generation_backend(self, model: str | Path):
        return generation_backend(self.recipe, model)

    def resolve_benchmark(self, spec: str, *, limit: int | None = None):
        """A benchmark named in the recipe: the built-in splits from this run, else :mod:`polaris.benchmarks`."""
        from polaris.benchmarks import ResolvedBenchmark, resolve_benchmark
        from polaris.data.loaders import load_problems

        if spec == BUILTIN_TRAIN:
            path = self.layout.split("arith-train")
            problems = load_problems(path)[:limit] if limit else load_problems(path)
            return ResolvedBenchmark("arith-train", problems, str(path))
        test = self.layout.split("arith-test")
        return resolve_benchmark(spec, builtin_test=test if test.is_file() else None, limit=limit)


# -- built-in setting ----------------------------------------------------------------------------------


def prepare_data(ctx: Context) -> dict[str, Any]:
    """The built-in task's train and test splits (``data.tiny``), for any model that trains or is evaluated on them."""
    from polaris.data import arith
    from polaris.data.loaders import write_problems

    tiny = ctx.recipe.data.tiny
    train, test = arith.make_splits(tiny.seed, tiny.train_size, tiny.test_size, tiny.levels)
    write_problems(arith.to_problems(train, "train"), ctx.layout.split("arith-train"))
    write_problems(arith.to_problems(test, "test"), ctx.layout.split("arith-test"))
    return {"train": len(train), "test": len(test)}


def prepare(ctx: Context) -> dict[str, Any]:
    """The built-in task's splits and the untrained tiny model with its tokenizer."""
    from polaris.data import arith
    from polaris.data.problem import build_messages
    from polaris.models.tiny import build_model, build_tokenizer, save, tokenizer_corpus

    recipe = ctx.recipe
    tiny = recipe.data.tiny
    counts = prepare_data(ctx)
    # The tokenizer learns its merges from the task's own text: templated prompts and solutions.
    sample = arith.generate(random.Random(f"tokenizer:{tiny.seed}"), 2000, recipe.warm_start.levels)
    corpus = tokenizer_corpus([build_messages(p.question) for p in sample], [p.solution for p in sample])
    tokenizer = build_tokenizer(corpus)
    model = build_model(tokenizer, seed=recipe.warm_start.seed)
    save(model, tokenizer, ctx.layout.model("init"))
    return {**counts, "vocab": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters())}


def warm_start(ctx: Context) -> dict[str, Any]:
    """Supervised fine-tuning of the tiny model, stopped while it is only partially competent; or the
    shipped warm-started model, when it was made with this recipe's settings (``warm_start.shipped``)."""
    from polaris.data import arith
    from polaris.models.loading import load_model
    from polaris.models.tiny import SHIPPED_RECORD, save
    from polaris.train.sft import warm_start as sft

    tiny, settings = ctx.recipe.data.tiny, ctx.recipe.warm_start
    shipped = ctx.plan.shipped_base
    if shipped is not None:
        import shutil

        from polaris.io import atomic_path

        folder, record = shipped
        with atomic_path(ctx.layout.model("base")) as tmp:
            shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns(SHIPPED_RECORD, "__pycache__", "*.py"))
        log("[polaris] warm_start: the shipped warm-started model (made with these settings by "
            f"{record.get('made_by', 'bench/tiny_base.py')}); warm_start.shipped=false trains it here")
        return {**record.get("result", {}), "shipped": True}
    train, test = arith.make_splits(tiny.seed, tiny.train_size, tiny.test_size, tiny.levels)
    model, tokenizer = load_model(ctx.layout.model("init"))
    last = sft(model, tokenizer, settings, ctx.layout.sft_work,
               exclude={p.expression for p in train + test})
    save(model, tokenizer, ctx.layout.model("base"))
    return {k: round(v, 4) for k, v in last.items() if isinstance(v, int | float)}


# -- difficulty ----------------------------------------------------------------------------------------


def profile(ctx: Context, *, model: str | Path | None = None) -> dict[str, Any]:
    """Profile the training problems (or reuse ``profile.records``) and keep stage 1's problems.

    A fresh profile also keeps sample responses and stops the run when it shows that training cannot
    learn (:func:`check_learning_signal`), unless ``profile.stop_without_signal`` is false. A stopped
    profile has written its records, samples and stage-1 problems, each complete: to read, to reuse
    with ``profile.records``, and so that ``polaris train --out`` on it trains on what the filter kept
    (an empty list is refused), never on every problem.
    """
    settings = ctx.plan.profile
    problems = ctx.training_problems()
    if not problems:
        raise RecipeError(f"data.train: no training problems in {ctx.recipe.data.train!r}")
    counts = None
    if settings.records:
        records = read_saved_profile(settings.records, problems, k=settings.k)
        log(f"[polaris] profile: reusing {settings.records}")
    else:
        result = generate_profile(ctx.plan, model or ctx.start_model(1), problems, reward=ctx.reward())
        records, counts = result.records, result.counts
        ctx.layout.write_profile_samples(result.samples)
    ctx.layout.write_profile(records)
    outcome = filter_profile(records, settings)
    ctx.layout.write_stage_ids(1, [r.problem_id for r in outcome.kept])
    k = settings.k
    log(f"[polaris] difficulty 0/{k}..{k}/{k}: {outcome.histogram}; kept {len(outcome.kept)} of {len(records)}")
    summary = outcome.summary()
    if counts is not None:
        summary["responses"] = counts.to_dict()
    problems_found = check_learning_signal(outcome, counts, ctx.recipe, samples=ctx.layout.profile_samples)
    if problems_found:
        message = " ".join(problems_found)
        if ctx.recipe.profile.stop_without_signal:
            raise RecipeError(f"{message} (to train anyway: --set profile.stop_without_signal=false)")
        log(f"[polaris] warning: {message}")
        summary["warnings"] = problems_found
    return summary


#: Below this share of responses with what the reward needs, the run is stopped (or warned about).
MIN_FORMAT_SHARE = 0.05


def check_learning_signal(outcome: ProfileOutcome, counts, recipe, *, samples: Path | None = None) -> list[str]:
    """Why training on this profile would learn nothing, as messages naming the recipe key to change.

    - almost no response closes ``</think>`` while ``reward.require_think`` is on, or almost none has a
      ``\\boxed{}`` answer (the built-in reward): every reward would be 0;
    - no problem is ever solved: no group has a correct rollout, so no advantage is ever non-zero;
    - every problem is always solved: nothing is left to train on after the filter.
    """
    out = []
    see = f" See the responses in {samples}." if samples is not None else ""
    if counts is not None and counts.responses:
        share = counts.think_closed / counts.responses
        if recipe.reward.require_think and share < MIN_FORMAT_SHARE:
            out.append(f"Only {counts.think_closed} of {counts.responses} profile responses close their thinking "
                       f"with </think>, and reward.require_think is on, so almost every reward is 0. For a model "
                       f"that does not think, set reward.require_think: false.{see}")
        elif recipe.reward.function is None and counts.boxed / counts.responses < MIN_FORMAT_SHARE:
            out.append(f"Only {counts.boxed} of {counts.responses} profile responses give a \\boxed{{}} answer, "
                       f"which the reward grades ({counts.truncated} were cut at "
                       f"stages[0].max_response_tokens); check the model's chat template and prompt format, or "
                       f"raise the response length.{see}")
    k = outcome.k
    histogram = outcome.histogram
    if outcome.records and histogram[0] == len(outcome.records) and not out:
        out.append(f"No profiled problem was solved in {k} rollouts, so no group has a correct rollout and no "
                   f"advantage is ever non-zero: use easier data (data.train: {recipe.data.train}), a stronger "
                   f"model (model.path), or check the reward (reward.*).{see}")
    if outcome.records and not outcome.kept:
        out.append(f"Every profiled problem was solved {k}/{k} (or filtered out by profile.min_correct/"
                   f"max_correct): nothing is left to train on; use harder data (data.train: "
                   f"{recipe.data.train}).")
    return out


def generate_profile(plan: Plan, model_path: str | Path, problems, *, reward=None):
    """k rollouts of every problem by the model at ``model_path``, with the plan's profile settings
    (a :class:`polaris.rollouts.ProfileResult`: records, sample responses, response counts)."""
    from polaris.reward.custom import recipe_reward
    from polaris.rollouts import profile_difficulty

    recipe = plan.recipe
    settings = plan.profile
    with closing(generation_backend(recipe, model_path)) as backend:
        return profile_difficulty(backend, problems, k=settings.k, temperature=settings.temperature,
                                  max_new_tokens=settings.max_new_tokens, reward=reward or recipe_reward(recipe.reward),
                                  batch_size=settings.batch_size, seed=recipe.seed, samples=recipe.profile.samples,
                                  batch_tokens=recipe.train.generation_batch_tokens)


def generation_backend(recipe, model: str | Path):
    """The model loaded into ``train.generation_backend`` for the profile and the temperature searches."""
    from polaris.backends import BackendOptions, load_backend

    return load_backend(recipe.train.generation_backend, str(model),
                        BackendOptions(dtype=recipe.model.dtype, seed=recipe.seed))


def read_saved_profile(path: str | Path, problems, *, k: int):
    """The saved profile's record of every training problem (``profile.records``), in problem order.

    Raises ``RecipeError`` naming the file and line of a bad record, a problem the file lacks, or a
    record profiled with another ``k``.
    """
    from polaris.io import read_jsonl
    from polaris.recipe import DifficultyRecord

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"profile.records: {path} not found")
    by_id = {}
    for line, row in enumerate(read_jsonl(path), start=1):
        try:
            record = DifficultyRecord.from_dict(row)
        except ValueError as e:
            raise RecipeError(f"profile.records: {path} line {line}: {e}") from None
        if record.k != k:
            raise RecipeError(f"profile.records: {path} line {line}: problem {record.problem_id!r} was profiled "
                              f"with k={record.k}, the recipe's profile.k is {k}")
        by_id[record.problem_id] = record
    missing = [p.id for p in problems if p.id not in by_id]
    if missing:
        raise RecipeError(f"profile.records: {path} has no record for {len(missing)} training problem(s), "
                          f"e.g. {missing[0]!r}: profile the same data set")
    return [by_id[p.id] for p in problems]


def drop(ctx: Context, stage: int) -> dict[str, Any]:
    """Problems of stage K-1 minus those it found easy (mean logged accuracy > ``train.drop_threshold``)."""
    from polaris.recipe import problems_to_drop

    previous = ctx.layout.read_stage_ids(stage - 1)
    if previous is None:
        raise RecipeError(f"stage {stage}: {ctx.layout.stage_ids_path(stage - 1)} is missing")
    accuracy = ctx.layout.difficulty_log().mean_accuracy(stage - 1)
    dropped = problems_to_drop(accuracy, threshold=ctx.recipe.train.drop_threshold)
    kept = [pid for pid in previous if pid not in dropped]
    ctx.layout.write_stage_ids(stage, kept)
    log(f"[polaris] stage {stage}: dropped {len(dropped)} easy problems, {len(kept)} left")
    return {"dropped": len(dropped), "remaining": len(kept), "logged": len(accuracy)}


# -- temperature ---------------------------------------------------------------------------------------


def temperature_rule(stage: StagePlan, previous: TemperatureRecord | None, search) -> tuple[list[float], str]:
    """``(grid, rule)`` of a stage: its fixed temperature, the first search, or the upward re-search."""
    from polaris.recipe import temperature_grid

    if not stage.searched:
        return [float(stage.temperature)], "fixed"
    if previous is None:
        return sorted(search.grid), "exploration-start"
    low = previous.chosen
    return temperature_grid(low, low + search.stage_max_increase, search.stage_step), "match-diversity"


def temperature(ctx: Context, stage: int, *, model: str | Path | None = None,
                previous: TemperatureRecord | None = None) -> dict[str, Any]:
    """Sample the stage's problems on its grid and choose its rollout temperature.

    A fixed temperature is measured only when the next stage searches (its rule matches this stage's
    diversity); otherwise nothing is sampled. ``previous``: the previous stage's search (default: read from the run directory).
    """
    from polaris.recipe import choose_exploration_temperature, match_diversity_temperature
    from polaris.rollouts import search_temperatures

    recipe = ctx.recipe
    search = recipe.temperature_search
    plan = ctx.plan.stage(stage)
    if not ctx.plan.measures_temperature(stage):
        log(f"[polaris] stage {stage}: temperature {plan.temperature:g} (fixed; no later stage matches its "
            "diversity, so nothing is measured)")
        return {"temperature": float(plan.temperature), "rule": "fixed", "measured": False}
    problems = ctx.stage_problems(stage, every_problem_if_unfiltered=True)
    if not problems:
        raise RecipeError(f"stage {stage}: no training problems left to search the temperature on")
    sample = random.Random(f"{recipe.seed}:temperature:{stage}").sample(problems, min(search.problems, len(problems)))
    if previous is None and stage > 1:
        previous = ctx.layout.read_temperature(stage - 1)
    grid, rule = temperature_rule(plan, previous, search)
    with closing(ctx.generation_backend(model or ctx.start_model(stage))) as backend:
        points = search_temperatures(backend, sample, grid, n=search.n, max_new_tokens=plan.max_response_tokens,
                                     reward=ctx.reward(), batch_size=recipe.train.generation_batch_size,
                                     seed=recipe.seed, batch_tokens=recipe.train.generation_batch_tokens)
    if rule != "fixed" and all(p.accuracy == 0 for p in points):
        raise RecipeError(
            f"stage {stage}: accuracy is 0 at every temperature searched ({', '.join(f'{t:g}' for t in grid)}), so "
            f"the search cannot choose one. The model solves none of these problems under the reward; see "
            f"{ctx.layout.profile_samples} and check reward.require_think, the data and the model, or set "
            f"stages[{stage - 1}].temperature to a number to skip the search")
    target = None
    if rule == "fixed":
        chosen = grid[0]
    elif rule == "exploration-start":
        chosen = choose_exploration_temperature(points, accuracy_tolerance=search.accuracy_tolerance)
    else:
        target = previous.diversity_at_chosen
        chosen = match_diversity_temperature(points, target, min_temperature=previous.chosen,
                                             accuracy_tolerance=search.accuracy_tolerance)
    at_chosen = next(p for p in points if abs(p.temperature - chosen) < 1e-9)
    ctx.layout.write_temperature(TemperatureRecord(
        stage=stage, rule=rule, chosen=chosen, target_diversity=target,
        diversity_at_chosen=at_chosen.diversity, accuracy_at_chosen=at_chosen.accuracy,
        problems=len(sample), n=search.n,
        points=[{"temperature": p.temperature, "accuracy": p.accuracy, "diversity": p.diversity} for p in points],
    ))
    for p in points:
        mark = "  <- chosen" if abs(p.temperature - chosen) < 1e-9 else ""
        log(f"[polaris]   T={p.temperature:.2f}  accuracy {p.accuracy:.3f}  distinct-4 {p.diversity:.3f}{mark}")
    log(f"[polaris] stage {stage}: temperature {chosen:.2f} ({rule})")
    return {"temperature": chosen, "rule": rule}


def stage_temperature(ctx: Context, stage: int) -> float:
    """The rollout temperature of stage K: its search's choice, else its fixed value."""
    searched = ctx.layout.read_temperature(stage)
    if searched is not None:
        return searched.chosen
    plan = ctx.plan.stage(stage)
    if plan.searched:
        raise RecipeError(f"stages[{stage - 1}].temperature is 'search' and {ctx.layout.temperature_path(stage)} "
                          "does not exist: run the temperature step first, or set a number")
    return float(plan.temperature)


# -- training ------------------------------------------------------------------------------------------


def train(ctx: Context, stage: int, *, model: str | Path | None = None,
          every_problem_if_unfiltered: bool = False) -> dict[str, Any]:
    """One GRPO stage from the stage's start model into ``models/stage-K``."""
    from polaris.train.stages import train_stage

    recipe = ctx.recipe
    plan = ctx.plan.stage(stage)
    check_training_engine(recipe)
    problems = ctx.stage_problems(stage, every_problem_if_unfiltered=every_problem_if_unfiltered)
    if not problems:
        raise RecipeError(f"stage {stage}: no training problems left (all were filtered or dropped)")
    run = plan.training(stage_temperature(ctx, stage), problems, batch=ctx.plan.batch)
    return train_stage(model or ctx.start_model(stage), run, recipe.train, ctx.layout.stage_paths(stage),
                       seed=recipe.seed, dtype=recipe.model.dtype,
                       max_position_embeddings=recipe.model.max_position_embeddings,
                       callbacks=validation_callbacks(ctx, plan, run.temperature), reward=ctx.reward(),
                       attn_implementation=recipe.model.attn_implementation)


def check_training_engine(recipe) -> None:
    """Before any model loads: reach the vLLM server of server mode (:func:`polaris.train.server.wait_for_server`).

    Only the first process waits: it alone talks to the server (TRL's client lives on rank 0); the others
    wait for it in the trainer's first collective.
    """
    import os

    engine = recipe.train.engine
    if engine.backend == "vllm" and engine.vllm_mode == "server" and os.environ.get("RANK", "0") == "0":
        from polaris.train.server import wait_for_server

        wait_for_server(engine.vllm_host, engine.vllm_port, engine.vllm_server_timeout)


def validation_callbacks(ctx: Context, stage: StagePlan, temperature: float) -> list[Any]:
    """``[ValidationCallback]`` for a stage when ``train.validation.every_steps`` > 0, else ``[]``.

    The benchmark is resolved here, before training starts (an offline Hub id fails now, not at step N).
    """
    settings = ctx.recipe.train.validation
    if settings.every_steps <= 0:
        return []
    from polaris.validation import ValidationCallback

    bench = ctx.resolve_benchmark(settings.benchmark, limit=settings.limit)
    val_t = stage.val_temperature if stage.val_temperature is not None else temperature
    return [ValidationCallback(settings, stage=stage.index, temperature=float(val_t),
                               max_new_tokens=settings.max_new_tokens or stage.max_response_tokens,
                               benchmark=bench.name, problems=bench.problems, metrics_path=ctx.layout.metrics,
                               tb_dir=ctx.layout.tensorboard(stage.index), seed=ctx.recipe.seed,
                               reward=ctx.reward(evaluation=True))]


# -- evaluation ----------------------------------------------------------------------------------------


def evaluate(ctx: Context, name: str, *, record: ResultSink | None = None) -> dict[str, float]:
    """The model ``name`` (``base`` or ``stage-K``) on every benchmark of the recipe, through a backend."""
    from polaris.evaluate import write_results

    recipe = ctx.recipe
    # Data first: an offline Hub benchmark fails before the model loads.
    benches = [ctx.resolve_benchmark(spec, limit=recipe.eval.limit) for spec in recipe.eval.benchmarks]

    def store(bench, rows, summary) -> None:
        write_results(rows, ctx.layout.eval_results(name, bench.name))
        if record is not None:
            record(name, bench.name, summary)

    results = evaluate_model(recipe, ctx.plan.eval, str(ctx.model_of(name)), benches, label=f"eval {name}",
                             on_result=store, reward=ctx.reward(evaluation=True))
    return {bench: None if summary["avg@k"] is None else round(summary["avg@k"], 4)
            for bench, summary in results.items()}


def evaluate_model(recipe, ev: EvalPlan, model: str, benches, *, on_result, reward=None, label: str = "eval",
                   on_loaded=None) -> dict[str, Any]:
    """``model`` on the resolved benchmarks ``benches`` (in the order of ``recipe.eval.benchmarks``) with
    the plan's evaluation: its k per benchmark, sampling, YaRN and context, through the recipe's backend.
    The one evaluation driver of ``polaris run`` and ``polaris eval``.

    ``on_result(bench, rows, summary)`` stores a finished benchmark (its summary carries the YaRN
    settings); ``on_loaded(backend)`` sees the loaded backend first. Returns ``{benchmark: summary}``.
    """
    from polaris.backends import BackendOptions
    from polaris.evaluate import evaluate_benchmarks, load_eval_backend

    k_of = {bench.name: ev.benchmarks[spec] for bench, spec in zip(benches, recipe.eval.benchmarks, strict=True)}
    backend = load_eval_backend(recipe.eval.backend, model, BackendOptions(
        dtype=recipe.model.dtype, yarn=ev.yarn, seed=recipe.seed,
        tensor_parallel_size=recipe.eval.tensor_parallel_size), benches, ev.settings.max_new_tokens,
        planned_context=ev.context)

    def store(bench, rows, summary) -> None:
        summary["yarn"] = ev.yarn.to_dict() if ev.yarn else None
        on_result(bench, rows, summary)

    with closing(backend):
        if on_loaded is not None:
            on_loaded(backend)
        return evaluate_benchmarks(backend, benches, lambda b: ev.for_benchmark(k_of[b.name]), seed=recipe.seed,
                                   label=label, on_result=store, reward=reward)


def report(ctx: Context) -> dict[str, Any]:
    from polaris.run.report import write_report

    path = write_report(ctx.layout)
    log(f"[polaris] report: {path}")
    return {"report": str(path.relative_to(ctx.layout.root))}


__all__ = [
    "Context", "ProfileOutcome", "check_learning_signal", "drop", "evaluate", "evaluate_model", "filter_profile", "generate_profile", "prepare", "profile",
    "read_saved_profile", "report", "stage_temperature", "temperature", "temperature_rule", "train",
    "validation_callbacks", "warm_start",
]
