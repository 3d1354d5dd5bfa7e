"""``polaris run RECIPE``: every step of the recipe, in order, into a resumable run directory.

The order (each step recorded in ``summary.json`` with its status and seconds; the steps themselves
are in :mod:`polaris.run.steps`, the paths in :mod:`polaris.run.layout`):

1. ``prepare``, ``warm_start`` — the built-in model only; ``prepare`` alone (the task's splits) for a real
   model trained or evaluated on the built-in task.
2. ``eval:base`` — the built-in model always; real models with ``eval.evaluate_base`` (at the end).
3. ``profile`` — then, for each stage K: ``drop:K`` (K > 1), ``temperature:K``, ``train:K`` and, for
   the built-in model, ``eval:stage-K`` right away.
4. Real models: ``eval:base`` (optional) and ``eval:stage-K`` for every stage, after the last stage
   (the training processes have let go of their GPUs by then).
5. ``report``.

Re-running the same command skips finished steps and continues unfinished ones. A run directory
belongs to one recipe (compared after overrides, ignoring comments and formatting): running another
recipe into it is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from polaris.backends import EngineError
from polaris.config import RecipeConfig, StageSettings, load_recipe, to_dict
from polaris.errors import RunError
from polaris.progress import log
from polaris.run import steps
from polaris.run.layout import (
    PREPARE,
    PROFILE,
    REPORT,
    WARM_START,
    RunLayout,
    RunSummary,
    StepRecord,
    drop_step,
    eval_step,
    temperature_step,
    train_step,
)
from polaris.run.plan import build_plan

#: Keys that decide whether a run goes on, not what it computes: changing them to resume a stopped run (as the
#: profile's stop message advises) keeps the run directory's recipe.
NOT_IN_DIGEST = (("profile", "stop_without_signal"),)


def recipe_digest(recipe: RecipeConfig) -> str:
    """A fingerprint of the recipe's values that differ from the defaults.

    Not of its file's text (comments and formatting do not change a recipe), and not of the defaults
    (a key added to polaris later, with a default, does not turn existing run directories into
    another recipe's).
    """
    values = to_dict(recipe)
    for section, key in NOT_IN_DIGEST:
        values[section].pop(key, None)
    changed = _changed(values, to_dict(RecipeConfig()))
    return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:16]


def _changed(values: Any, defaults: Any) -> Any:
    """The parts of ``values`` that differ from ``defaults`` (stages each against a default stage)."""
    if isinstance(values, dict) and isinstance(defaults, dict):
        out = {}
        for key, value in values.items():
            if key == "stages":
                stage = to_dict(StageSettings())
                out[key] = [_changed(s, stage) for s in value]
            elif key not in defaults:
                out[key] = value
            elif value != defaults[key]:
                out[key] = _changed(value, defaults[key])
        return out
    return values


def recipe_yaml(recipe: RecipeConfig, source: str) -> str:
    import yaml

    return f"# The recipe this run ran ({source}), every key resolved.\n" + yaml.safe_dump(to_dict(recipe),
                                                                                             sort_keys=False)


class RunLock:
    """One ``polaris run`` per run directory: the lock file holds the pid of the run working in it.

    A second run refuses, naming that pid. A lock whose process is gone (a killed run) is taken over, so
    a killed run resumes with the same command. Only rank 0 of a launch takes it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise RunError(
                        f"{self.path.parent} is in use by another polaris run (pid {owner}); wait for it to finish "
                        f"or stop it. A lock left by a run that was killed is taken over by the next run"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its run is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return

    def owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held and self.owner() == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """A run directory's ``summary.json`` (steps, timings, results), written atomically.

    Under a multi-process launch (``WORLD_SIZE`` > 1) only rank 0 writes the summary and runs the
    steps that are not training (data, profile, searches, evaluation); the other ranks wait for
    the summary to mark them done — by polling the file, not in a collective, so a long profile
    cannot hit a communication timeout — and every rank runs the training steps together.
    """

    POLL_SECONDS = 2.0

    def __init__(self, layout: RunLayout, recipe: RecipeConfig, *, source: str = "",
                 legacy_digest: str | None = None) -> None:
        self.layout = layout
        self.recipe = recipe
        self.rank = int(os.environ.get("RANK", "0"))
        digest = recipe_digest(recipe)
        if self.rank != 0:
            while not layout.summary.exists():
                time.sleep(self.POLL_SECONDS)
        else:
            layout.root.mkdir(parents=True, exist_ok=True)
        self.summary = layout.read_summary() or RunSummary(recipe=recipe.name, recipe_sha256=digest)
        if legacy_digest is not None and self.summary.recipe_sha256 == legacy_digest:
            self.summary.recipe_sha256 = digest  # started by an earlier version, from the same file
        if self.summary.recipe_sha256 != digest:
            raise RunError(
                f"{layout.root} was started with a different recipe; use another --run-dir, or delete the "
                "directory to start over"
            )
        if self.rank == 0:
            layout.write_recipe(recipe_yaml(recipe, source or "built in"))
        self.save()

    @property
    def path(self) -> Path:
        return self.layout.root

    def save(self) -> None:
        if self.rank == 0:
            self.layout.write_summary(self.summary)

    def done(self, name: str) -> bool:
        return self.summary.done(name)

    def step(self, name: str, fn: Callable[[], Any], *, all_ranks: bool = False) -> Any:
        """Run ``fn`` unless the step already finished; record status and seconds.

        ``all_ranks``: every process runs it (training); otherwise rank 0 runs it and the others
        wait for it to be recorded as done.
        """
        if self.done(name):
            log(f"[polaris] {name}: done already, skipped")
            return self.summary.result(name)
        if self.rank != 0 and not all_ranks:
            return self._wait_for(name)
        record = self.summary.steps.setdefault(name, StepRecord("running"))
        record.status = "running"
        self.save()
        log(f"[polaris] {name} ...")
        start = time.monotonic()
        try:
            result = fn()
        except BaseException as e:
            record.status, record.seconds = "failed", round(record.seconds + time.monotonic() - start, 2)
            self.save()
            if isinstance(e, EngineError):
                raise RunError(f"step {name}: {e}") from e
            raise
        seconds = round(time.monotonic() - start, 2)
        record.status, record.seconds = "done", seconds
        if result is not None:
            record.result = result
        self.save()
        log(f"[polaris] {name}: done in {seconds:.1f}s")
        return result

    def _wait_for(self, name: str) -> Any:
        while True:
            self.summary = self.layout.read_summary()
            status = self.summary.status(name)
            if status == "done":
                return self.summary.result(name)
            if status == "failed":
                raise RunError(f"step {name} failed on rank 0")
            time.sleep(self.POLL_SECONDS)

    def record_result(self, stage: str, benchmark: str, summary: dict[str, Any]) -> None:
        self.summary.results.setdefault(stage, {})[benchmark] = summary
        self.save()


def run_recipe(recipe: RecipeConfig | str | Path, run_dir: str | Path | None = None, *,
               overrides: Sequence[str] = ()) -> RunDir:
    """Run every step of ``recipe`` (a recipe, or a recipe file with ``KEY=VALUE`` overrides) into
    ``run_dir`` (default ``runs/<name>``), continuing where an earlier attempt stopped."""

    source, legacy = "built in", None
    if not isinstance(recipe, RecipeConfig):
        source = str(recipe) + "".join(f" --set {o}" for o in overrides)
        if not overrides and Path(recipe).is_file():  # earlier versions fingerprinted the file's text
            legacy = hashlib.sha256(Path(recipe).read_text(encoding="utf-8").encode()).hexdigest()[:16]
        recipe = load_recipe(recipe, overrides)
    processes = int(os.environ.get("WORLD_SIZE", "0")) or None
    plan = build_plan(recipe, processes=processes, source=None if source == "built in" else source)
    layout = RunLayout.of(recipe.name, run_dir)
    lock = RunLock(layout.lock)
    if int(os.environ.get("RANK", "0")) == 0:
        lock.acquire()
    try:
        return _run(recipe, plan, layout, source=source, legacy=legacy)
    finally:
        lock.release()


def _run(recipe: RecipeConfig, plan, layout: RunLayout, *, source: str, legacy: str | None) -> RunDir:
    from polaris.models.loading import set_threads

    if not plan.builtin:  # a mistyped model path fails now, in one line, not deep in the Hub client
        from polaris.models.loading import check_model_source

        check_model_source(recipe.model.path, key="model.path")
    run = RunDir(layout, recipe, source=source, legacy_digest=legacy)
    ctx = steps.Context(plan, layout)
    set_threads()
    log(f"[polaris] run {recipe.name!r} into {layout.root}")
    evaluate = {name: (lambda name=name: steps.evaluate(ctx, name, record=run.record_result))
                for name in plan.eval.models}
    if plan.builtin:
        run.step(PREPARE, lambda: steps.prepare(ctx))
        run.step(WARM_START, lambda: steps.warm_start(ctx))
    elif plan.builtin_data:  # a real model on the built-in task: its splits only
        run.step(PREPARE, lambda: steps.prepare_data(ctx))
    if plan.eval.after_each_stage and "base" in evaluate:
        run.step(eval_step("base"), evaluate["base"])
    run.step(PROFILE, lambda: steps.profile(ctx))
    for stage in plan.stages:
        k = stage.index
        if k > 1:
            run.step(drop_step(k), lambda k=k: steps.drop(ctx, k))
        run.step(temperature_step(k), lambda k=k: steps.temperature(ctx, k))
        run.step(train_step(k), lambda k=k: steps.train(ctx, k), all_ranks=True)
        if plan.eval.after_each_stage:
            run.step(eval_step(f"stage-{k}"), evaluate[f"stage-{k}"])
    if not plan.eval.after_each_stage and run.rank == 0:
        for name, fn in evaluate.items():
            run.step(eval_step(name), fn)
    run.step(REPORT, lambda: steps.report(ctx))
    log(f"[polaris] finished: {layout.summary}")
    return run


def init_distributed() -> None:
    """Under a multi-process launch without a GPU, join the processes over gloo (accelerate's first state
    decides: a bare ``PartialState()`` would leave each process alone)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


__all__ = ["RunDir", "init_distributed", "recipe_digest", "run_recipe"]
