"""``polaris run RECIPE``: every step of the recipe, into a resumable run directory.

Steps (each recorded in ``RUN_DIR/summary.json`` with its status and seconds):

1. ``prepare`` — built-in setting only: the task's train/test split (parquet, reference schema),
   the tokenizer and the untrained tiny model.
2. ``warm_start`` — built-in setting only: supervised fine-tuning into a partially competent
   base model.
3. ``eval:base`` — the base model on every evaluation benchmark (avg@k).
4. ``profile`` — k=8 rollouts per training problem with the model about to be trained; drop the
   solved ones, keep the unsolved ones (SPEC 1). With ``profile.records`` a saved profile of the
   same model and data is reused instead.
5. For each stage k: ``drop:k`` (k > 1: drop problems whose logged accuracy in stage k-1
   averaged > 0.9), ``temperature:k`` (stage 1: start of the exploration zone; later stages: the
   lowest temperature, not below the previous one, whose diversity matches the previous stage's),
   ``train:k`` (GRPO with the recipe; resumable mid-stage), ``eval:stage-k``.
6. ``report`` — ``report.md`` with plots.

Layout of a run directory::

    summary.json            steps, timings, results[stage][benchmark] = {"avg@k", "k", ...}
    recipe.yaml             the recipe it ran
    data/                   arith-train/test.parquet (built-in), stage-K.ids.json (problems of stage K)
    profile/records.jsonl   one DifficultyRecord per training problem
    temperature/stage-K.json  the grid (temperature, accuracy, diversity), the rule, the choice
    models/                 init, base, stage-K (HF folders)
    work/stage-K/           TRL checkpoints (resume)
    logs/metrics.jsonl      per-step metrics, tagged with stage and step; logs/tb/ TensorBoard
    logs/difficulty.jsonl   per-step group accuracy of every problem, before rescue/substitution
    eval/STAGE/BENCH.parquet  per-response evaluation results

Re-running the same command skips finished steps and continues unfinished ones. A run
directory belongs to one recipe: running another recipe into it is refused.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from polaris.config import BUILTIN_TEST, BUILTIN_TRAIN, RecipeConfig, load_recipe, to_dict
from polaris.io import read_json, write_json
from polaris.progress import log


@dataclass
class RunConfig:
    """Run a recipe end to end (resumable): data, warm start, profiling, temperature search,
    training stages, evaluation, report."""

    recipe: tyro.conf.Positional[str] = "recipes/tiny-cpu.yaml"
    """Recipe file (YAML). The default runs the built-in tiny model offline on a CPU."""
    run_dir: str | None = None
    """Run directory; default ``runs/<recipe name>/``. Re-running continues where it stopped."""
    dry_run: bool = False
    """Validate the recipe and print the plan: stages, temperatures, lengths, batch, data after filtering, engine, TRL and vLLM arguments, launch commands. Loads no model, needs no GPU."""
    launch: bool = False
    """Start the run as the recipe's ``launch`` section says: the vLLM server (server mode), then ``accelerate launch ... -m polaris.cli run RECIPE``. Prints the commands first; for several machines it only prints them."""
    accelerate_config: str | None = None
    """With --launch or --dry-run: this accelerate config instead of the recipe's ``launch.accelerate_config`` (deepspeed-zero3, fsdp2, multinode-zero3, cpu-2proc, or a file)."""

    def __post_init__(self) -> None:
        if not Path(self.recipe).is_file():
            raise SystemExit(f"polaris run: recipe file {self.recipe!r} not found (see recipes/ for examples)")
        if self.dry_run and self.launch:
            raise SystemExit("polaris run: give --dry-run (print the plan) or --launch (start the run), not both")


class RunDir:
    """A run directory and its ``summary.json`` (steps, timings, results), written atomically.

    Under a multi-process launch (``WORLD_SIZE`` > 1) only rank 0 writes the summary and runs the
    steps that are not training (data, profile, searches, evaluation); the other ranks wait for
    the summary to mark them done — by polling the file, not in a collective, so a long profile
    cannot hit a communication timeout — and every rank runs the training steps together.
    """

    POLL_SECONDS = 2.0

    def __init__(self, path: Path, recipe: RecipeConfig, recipe_text: str) -> None:
        import os

        self.path = path
        self.recipe = recipe
        self.rank = int(os.environ.get("RANK", "0"))
        digest = hashlib.sha256(recipe_text.encode()).hexdigest()[:16]
        if self.rank != 0:
            while not self.summary_path.exists():
                time.sleep(self.POLL_SECONDS)
        else:
            path.mkdir(parents=True, exist_ok=True)
        self.summary: dict[str, Any] = read_json(self.summary_path) or {
            "recipe": recipe.name,
            "recipe_sha256": digest,
            "steps": {},
            "results": {},
        }
        if self.summary.get("recipe_sha256") != digest:
            raise SystemExit(
                f"polaris run: {path} was started with a different recipe file; "
                "use another --run-dir, or delete the directory to start over"
            )
        if self.rank == 0:
            (path / "recipe.yaml").write_text(recipe_text, encoding="utf-8")
        self.save()

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    def save(self) -> None:
        if self.rank == 0:
            write_json(self.summary_path, self.summary)

    def done(self, name: str) -> bool:
        return self.summary["steps"].get(name, {}).get("status") == "done"

    def step(self, name: str, fn: Callable[[], Any], *, all_ranks: bool = False) -> Any:
        """Run ``fn`` unless the step already finished; record status and seconds.

        ``all_ranks``: every process runs it (training); otherwise rank 0 runs it and the others
        wait for it to be recorded as done.
        """
        if self.done(name):
            log(f"[polaris] {name}: done already, skipped")
            return self.summary["steps"][name].get("result")
        if self.rank != 0 and not all_ranks:
            return self._wait_for(name)
        record = self.summary["steps"].setdefault(name, {})
        record.update(status="running")
        self.save()
        log(f"[polaris] {name} ...")
        start = time.monotonic()
        try:
            result = fn()
        except BaseException:
            record.update(status="failed", seconds=round(record.get("seconds", 0) + time.monotonic() - start, 2))
            self.save()
            raise
        seconds = round(time.monotonic() - start, 2)
        record.update(status="done", seconds=seconds)
        if result is not None:
            record["result"] = result
        self.save()
        log(f"[polaris] {name}: done in {seconds:.1f}s")
        return result

    def _wait_for(self, name: str) -> Any:
        while True:
            self.summary = read_json(self.summary_path)
            status = self.summary["steps"].get(name, {}).get("status")
            if status == "done":
                return self.summary["steps"][name].get("result")
            if status == "failed":
                raise SystemExit(f"polaris run: step {name} failed on rank 0")
            time.sleep(self.POLL_SECONDS)

    def record_result(self, stage: str, benchmark: str, summary: dict[str, Any]) -> None:
        self.summary["results"].setdefault(stage, {})[benchmark] = summary
        self.save()


# -- steps ------------------------------------------------------------------------------------


def prepare_builtin(run: RunDir) -> dict[str, Any]:
    """The built-in task's splits and the untrained tiny model with its tokenizer."""
    import random

    from polaris.data import arith
    from polaris.data.loaders import write_problems
    from polaris.data.problem import build_messages
    from polaris.models.tiny import build_model, build_tokenizer, save, tokenizer_corpus

    tiny = run.recipe.data.tiny
    train, test = arith.make_splits(tiny.seed, tiny.train_size, tiny.test_size, tiny.levels)
    write_problems(arith.to_problems(train, "train"), run.path / "data" / "arith-train.parquet")
    write_problems(arith.to_problems(test, "test"), run.path / "data" / "arith-test.parquet")
    # The tokenizer learns its merges from the task's own text: templated prompts and solutions.
    sample = arith.generate(random.Random(f"tokenizer:{tiny.seed}"), 2000, run.recipe.warm_start.levels)
    corpus = tokenizer_corpus([build_messages(p.question) for p in sample], [p.solution for p in sample])
    tokenizer = build_tokenizer(corpus)
    model = build_model(tokenizer, seed=run.recipe.warm_start.seed)
    save(model, tokenizer, run.path / "models" / "init")
    return {"train": len(train), "test": len(test), "vocab": len(tokenizer),
            "parameters": sum(p.numel() for p in model.parameters())}


def warm_start(run: RunDir) -> dict[str, Any]:
    from polaris.data import arith
    from polaris.models.loading import load_model
    from polaris.models.tiny import save
    from polaris.train.sft import warm_start as sft

    tiny = run.recipe.data.tiny
    train, test = arith.make_splits(tiny.seed, tiny.train_size, tiny.test_size, tiny.levels)
    model, tokenizer = load_model(run.path / "models" / "init")
    last = sft(model, tokenizer, run.recipe.warm_start, run.path / "work" / "sft",
               exclude={p.expression for p in train + test})
    save(model, tokenizer, run.path / "models" / "base")
    return {k: round(v, 4) for k, v in last.items() if isinstance(v, int | float)}


def resolve_benchmark(run: RunDir, name: str):
    """Problems of a benchmark named in the recipe."""
    from polaris.data.loaders import load_problems

    if name == BUILTIN_TEST:
        return "arith-test", load_problems(run.path / "data" / "arith-test.parquet")
    if name == BUILTIN_TRAIN:
        return "arith-train", load_problems(run.path / "data" / "arith-train.parquet")
    return Path(name).stem, load_problems(name)


def evaluate_stage(run: RunDir, stage: str) -> dict[str, Any]:
    """Evaluate the model of ``stage`` (``base``, ``stage-1``, ...) on every recipe benchmark."""
    from polaris.evaluate import evaluate_problems, write_results
    from polaris.models.loading import load_model

    model, tokenizer = load_model(run.path / "models" / stage)
    out = {}
    for name in run.recipe.eval.benchmarks:
        bench, problems = resolve_benchmark(run, name)
        rows, summary = evaluate_problems(model, tokenizer, problems, run.recipe.eval, seed=run.recipe.seed,
                                          desc=f"eval {stage} {bench}")
        write_results(rows, run.path / "eval" / stage / f"{bench}.parquet")
        run.record_result(stage, bench, summary)
        log(f"[polaris] {stage} on {bench}: avg@{summary['k']} = {summary['avg@k']:.3f}")
        out[bench] = round(summary["avg@k"], 4)
    return out


def load_training_problems(run: RunDir):
    from polaris.data.loaders import load_problems

    data = run.recipe.data
    if data.train == BUILTIN_TRAIN:
        return load_problems(run.path / "data" / "arith-train.parquet", limit=data.limit)
    return load_problems(data.train, split=data.split, limit=data.limit)


def stage_problems(run: RunDir, index: int):
    ids = set(read_json(run.path / "data" / f"stage-{index}.ids.json"))
    return [p for p in load_training_problems(run) if p.id in ids]


def model_dir(run: RunDir, stage: int) -> Path:
    """The weights a stage starts from: the base model for stage 1, else the previous stage's."""
    if stage == 1:
        return run.path / "models" / "base" if run.recipe.builtin_model else Path(run.recipe.model.path)
    return run.path / "models" / f"stage-{stage - 1}"


def profile_step(run: RunDir) -> dict[str, Any]:
    from polaris.recipe import filter_by_pass_rate, pass_histogram
    from polaris.train.stages import write_records

    recipe = run.recipe
    settings = recipe.profile
    problems = load_training_problems(run)
    if settings.records:
        records = read_profile(settings.records, problems, k=settings.k)
        log(f"[polaris] profile: reusing {settings.records}")
    else:
        records = generate_profile(recipe, model_dir(run, 1), problems)
    write_records(records, run.path / "profile" / "records.jsonl")
    kept = filter_by_pass_rate(records, min_correct=settings.min_correct, max_correct=settings.max_correct)
    write_json(run.path / "data" / "stage-1.ids.json", [r.problem_id for r in kept])
    before = pass_histogram((r.correct for r in records), settings.k)
    after = pass_histogram((r.correct for r in kept), settings.k)
    log(f"[polaris] difficulty 0/{settings.k}..{settings.k}/{settings.k}: {before}; kept {len(kept)} of {len(records)}")
    return {"k": settings.k, "histogram": before, "histogram_kept": after, "problems": len(records),
            "kept": len(kept)}


def generate_profile(recipe: RecipeConfig, model_path: str | Path, problems):
    """SPEC 1's profile with the recipe's settings: k rollouts of every problem by the model at ``model_path``."""
    from polaris.models.loading import load_model
    from polaris.train.stages import profile_difficulty

    settings = recipe.profile
    model, tokenizer = load_model(model_path, dtype=recipe.model.dtype)
    return profile_difficulty(
        model, tokenizer, problems, k=settings.k, temperature=settings.temperature,
        max_new_tokens=settings.max_new_tokens or recipe.stages[0].max_response_tokens,
        batch_size=recipe.train.generation_batch_size, seed=recipe.seed,
    )


def read_profile(path: str | Path, problems, *, k: int):
    """The saved profile's record of every training problem (``profile.records``), in problem order.

    Raises ``RecipeError`` naming the file and line of a bad record, a problem the file lacks, or a
    record profiled with another ``k``.
    """
    from polaris.config import RecipeError
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


def drop_step(run: RunDir, stage: int) -> dict[str, Any]:
    """Problems of stage ``stage - 1`` minus those it found easy (mean logged accuracy > threshold)."""
    from polaris.recipe import DifficultyLog, problems_to_drop

    previous = read_json(run.path / "data" / f"stage-{stage - 1}.ids.json")
    accuracy = DifficultyLog(run.path / "logs" / "difficulty.jsonl").mean_accuracy(stage - 1)
    drop = problems_to_drop(accuracy, threshold=run.recipe.train.drop_threshold)
    kept = [pid for pid in previous if pid not in drop]
    write_json(run.path / "data" / f"stage-{stage}.ids.json", kept)
    log(f"[polaris] stage {stage}: dropped {len(drop)} easy problems, {len(kept)} left")
    return {"dropped": len(drop), "remaining": len(kept), "logged": len(accuracy)}


def temperature_step(run: RunDir, stage: int) -> dict[str, Any]:
    """Choose the stage's rollout temperature by SPEC 2's rules and record the grid."""
    import random

    from polaris.models.loading import load_model
    from polaris.recipe import (
        choose_exploration_temperature,
        match_diversity_temperature,
        temperature_grid,
    )
    from polaris.train.stages import search_temperatures

    recipe = run.recipe
    search = recipe.temperature_search
    settings = recipe.stages[stage - 1]
    problems = stage_problems(run, stage)
    rng = random.Random(f"{recipe.seed}:temperature:{stage}")
    sample = rng.sample(problems, min(search.problems, len(problems)))
    previous = read_json(run.path / "temperature" / f"stage-{stage - 1}.json") if stage > 1 else None
    if settings.temperature != "search":
        grid, rule = [float(settings.temperature)], "fixed"
    elif previous is None:
        grid, rule = sorted(search.grid), "exploration-start"
    else:
        low = previous["chosen"]
        grid, rule = temperature_grid(low, low + search.stage_max_increase, search.stage_step), "match-diversity"
    model, tokenizer = load_model(model_dir(run, stage), dtype=recipe.model.dtype)
    points = search_temperatures(model, tokenizer, sample, grid, n=search.n,
                                 max_new_tokens=settings.max_response_tokens,
                                 batch_size=recipe.train.generation_batch_size, seed=recipe.seed)
    target = None
    if rule == "fixed":
        chosen = grid[0]
    elif rule == "exploration-start":
        chosen = choose_exploration_temperature(points, accuracy_tolerance=search.accuracy_tolerance)
    else:
        target = previous["diversity_at_chosen"]
        chosen = match_diversity_temperature(points, target, min_temperature=previous["chosen"],
                                             accuracy_tolerance=search.accuracy_tolerance)
    at_chosen = next(p for p in points if abs(p.temperature - chosen) < 1e-9)
    record = {
        "stage": stage, "rule": rule, "chosen": chosen, "target_diversity": target,
        "diversity_at_chosen": at_chosen.diversity, "accuracy_at_chosen": at_chosen.accuracy,
        "problems": len(sample), "n": search.n,
        "points": [{"temperature": p.temperature, "accuracy": p.accuracy, "diversity": p.diversity} for p in points],
    }
    write_json(run.path / "temperature" / f"stage-{stage}.json", record)
    log(f"[polaris] stage {stage}: temperature {chosen:.2f} ({rule})")
    return {"temperature": chosen, "rule": rule}


def train_step(run: RunDir, stage: int) -> dict[str, Any]:
    from polaris.recipe import DifficultyLog
    from polaris.train.stages import StagePlan, train_stage

    recipe = run.recipe
    chosen = read_json(run.path / "temperature" / f"stage-{stage}.json")["chosen"]
    plan = StagePlan(index=stage, settings=recipe.stages[stage - 1], temperature=chosen,
                     problems=stage_problems(run, stage))
    return train_stage(
        model_dir(run, stage), plan, recipe.train, seed=recipe.seed,
        work_dir=run.path / "work" / f"stage-{stage}", final_dir=run.path / "models" / f"stage-{stage}",
        logs_dir=run.path / "logs", difficulty_log=DifficultyLog(run.path / "logs" / "difficulty.jsonl"),
        dtype=recipe.model.dtype, max_position_embeddings=recipe.model.max_position_embeddings,
        initial_state=run.path / "models" / f"stage-{stage - 1}.state.json" if stage > 1 else None,
    )


def report_step(run: RunDir) -> dict[str, Any]:
    from polaris.report import write_report

    path = write_report(run.path)
    log(f"[polaris] report: {path}")
    return {"report": str(path.relative_to(run.path))}


def run_recipe(recipe_path: str | Path, run_dir: str | Path | None = None) -> RunDir:
    from polaris.models.loading import set_threads

    recipe_text = Path(recipe_path).read_text(encoding="utf-8")
    recipe = load_recipe(recipe_path)
    run = RunDir(Path(run_dir or Path("runs") / recipe.name), recipe, recipe_text)
    set_threads()
    log(f"[polaris] run {recipe.name!r} into {run.path}")
    if recipe.builtin_model:
        run.step("prepare", lambda: prepare_builtin(run))
        run.step("warm_start", lambda: warm_start(run))
        run.step("eval:base", lambda: evaluate_stage(run, "base"))
    run.step("profile", lambda: profile_step(run))
    for k in range(1, len(recipe.stages) + 1):
        if k > 1:
            run.step(f"drop:{k}", lambda k=k: drop_step(run, k))
        run.step(f"temperature:{k}", lambda k=k: temperature_step(run, k))
        run.step(f"train:{k}", lambda k=k: train_step(run, k), all_ranks=True)
        if recipe.builtin_model:
            run.step(f"eval:stage-{k}", lambda k=k: evaluate_stage(run, f"stage-{k}"))
    from polaris.train.validation import evaluate_real_model

    evaluate_real_model(run)  # real models: eval:base (optional) and eval:stage-K, YaRN when configured
    run.step("report", lambda: report_step(run))
    log(f"[polaris] finished: {run.summary_path}")
    return run


def main(config: RunConfig) -> int:
    from polaris.config import RecipeError
    from polaris.launch import LaunchError

    try:
        if config.dry_run:
            from polaris.plan import dry_run

            print(dry_run(config.recipe, config.run_dir, accelerate_config=config.accelerate_config))
            return 0
        if config.launch:
            from polaris.launch import launch_main

            return launch_main(config.recipe, config.run_dir, config.accelerate_config)
    except (RecipeError, LaunchError) as e:
        raise SystemExit(f"polaris run: {e}") from None
    _init_distributed()
    try:
        run_recipe(config.recipe, config.run_dir)
    except RecipeError as e:
        raise SystemExit(f"polaris run: {e}") from None
    return 0


def _init_distributed() -> None:
    """Under a multi-process launch without a GPU, join the processes over gloo (accelerate's first state
    decides: a bare ``PartialState()`` would leave each process alone)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


__all__ = ["RunConfig", "RunDir", "main", "run_recipe", "to_dict"]
