"""Evaluation of real models inside a run: validation during training, and each stage's evaluation.

Validation during training (``train.validation``)
-------------------------------------------------
:class:`ValidationCallback` (a ``TrainerCallback``, added by ``train_stage`` when
``train.validation.every_steps`` > 0) evaluates the model being trained every ``every_steps``
optimizer steps on one benchmark — the reference validates on AIME24, avg@8, every 10 steps — at the
stage's ``val_temperature`` (SPEC 3: 1.2/1.4/1.4 for Qwen3-4B; never above the training
temperature), top-p 1.0, no top-k, up to the stage's response length, and grades with the evaluation
protocol (:func:`polaris.evaluate.score_completions`, ``require_think=False``).

Where the numbers go: the main process appends one record per validation to ``logs/metrics.jsonl``,
``{"stage": K, "step": S, "eval/<benchmark>/avg@<k>": x, "eval/<benchmark>/mean_length": ...,
"eval/<benchmark>/truncated": ...}``, with the same ``stage``/``step`` keys as the training records
(it is written just before the training record of step S), and the same scalars to TensorBoard
(``logs/tb/stage-K``). A resumed stage cuts these records back with the others.

Several processes: every rank samples its share of the problems (padded to equal shares, and
``generate(synced_gpus=True)``, so sharded engines — ZeRO-3, FSDP — step together); the rows are
gathered and the main process computes avg@k over all problems. Generation uses transformers on the
training processes, even when rollouts use vLLM: the callback has no vLLM engine of its own.
The adapter's ``polaris_reward`` serves training batches only; validation grades directly.

Evaluation of each stage (real models)
--------------------------------------
:func:`evaluate_real_model` — called by ``polaris run`` at the end for models other than the built-in
one — runs ``eval:base`` (with ``eval.evaluate_base``) and ``eval:stage-K`` for every stage: each
benchmark of ``eval.benchmarks`` with the paper's k (``eval.paper_k``), the recipe's sampling, YaRN
when ``eval.yarn_factor`` is set, through :mod:`polaris.backends` (``eval.backend``). Results go where
the built-in flow puts them: ``eval/STAGE/BENCH.parquet`` and ``summary.json`` ``results``. Only the
main process evaluates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from polaris.config import EvalSettings, TrainSettings, ValidationSettings
from polaris.io import append_jsonl
from polaris.progress import log


def validation_callbacks(plan, train: TrainSettings, logs_dir: Path, *, seed: int) -> list[Any]:
    """``[ValidationCallback]`` for a stage when validation is on, else ``[]``."""
    settings = train.validation
    if settings.every_steps <= 0:
        return []
    stage = plan.settings
    temperature = stage.val_temperature if stage.val_temperature is not None else plan.temperature
    return [ValidationCallback(settings, stage=plan.index, temperature=float(temperature),
                               max_new_tokens=settings.max_new_tokens or stage.max_response_tokens,
                               logs_dir=Path(logs_dir), seed=seed)]


def validation_eval_settings(settings: ValidationSettings, *, temperature: float, max_new_tokens: int) -> EvalSettings:
    """The evaluation settings of one validation run."""
    return EvalSettings(benchmarks=[settings.benchmark], k=settings.k, temperature=temperature,
                        top_p=settings.top_p, top_k=settings.top_k, max_new_tokens=max_new_tokens,
                        batch_size=settings.batch_size)


def validation_metrics(benchmark: str, summary: dict[str, Any]) -> dict[str, float]:
    """``eval/<benchmark>/...`` metrics of a validation summary."""
    return {
        f"eval/{benchmark}/avg@{summary['k']}": float(summary["avg@k"]),
        f"eval/{benchmark}/mean_length": float(summary["mean_length"]),
        f"eval/{benchmark}/truncated": float(summary["truncated"]),
    }


def shard(items: Sequence[Any], rank: int, world: int) -> tuple[list[Any], int]:
    """Rank ``rank``'s share of ``items`` (round robin), padded with its first item to the longest
    share so every rank makes the same number of ``generate`` calls; returns (share, real length)."""
    mine = list(items[rank::world])
    longest = -(-len(items) // world)
    real = len(mine)
    filler = mine[0] if mine else items[0]
    return mine + [filler] * (longest - real), real


def evaluate_distributed(model, tokenizer, problems, settings: EvalSettings, *, seed: int, rank: int, world: int,
                         desc: str | None = None) -> dict[str, Any]:
    """avg@k (and the rest of the summary) over all ``problems``, sampled by ``world`` processes."""
    from polaris.evaluate import evaluate_problems, sampling_params, score_completions, summarize

    if world == 1:
        return evaluate_problems(model, tokenizer, problems, settings, seed=seed, desc=desc)[1]
    from accelerate.utils import gather_object

    from polaris.data.problem import build_messages
    from polaris.generation import chat_prompts, generate

    mine, real = shard(problems, rank, world)
    params = replace(sampling_params(settings, seed + rank), extra={"synced_gpus": True})
    prompt_ids = chat_prompts(tokenizer, [build_messages(p) for p in mine])
    completions = generate(model, tokenizer, prompt_ids, params, batch_size=settings.batch_size, desc=desc)
    rows, _ = score_completions(mine[:real], completions[:real], settings)
    return summarize(gather_object(rows), settings)


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class ValidationCallback(_callback_base()):  # type: ignore[misc]
    """Every ``every_steps`` steps: avg@k of the current model on the validation benchmark (see the module)."""

    def __init__(self, settings: ValidationSettings, *, stage: int, temperature: float, max_new_tokens: int,
                 logs_dir: Path, seed: int) -> None:
        self.settings = settings
        self.stage = stage
        self.eval_settings = validation_eval_settings(settings, temperature=temperature,
                                                      max_new_tokens=max_new_tokens)
        self.metrics_path = logs_dir / "metrics.jsonl"
        self.tb_dir = logs_dir / "tb" / f"stage-{stage}"
        self.run_dir = logs_dir.parent
        self.seed = seed
        self.name: str | None = None
        self.problems: list[Any] | None = None
        self._writer = None

    def load(self) -> None:
        """Resolve the benchmark (a Hub id offline fails here, before the first step)."""
        from polaris.benchmarks import resolve_benchmark

        run_dir = self.run_dir if (self.run_dir / "data" / "arith-test.parquet").is_file() else None
        bench = resolve_benchmark(self.settings.benchmark, run_dir=run_dir, limit=self.settings.limit)
        self.name, self.problems = bench.name, bench.problems

    def on_train_begin(self, args, state, control, **kwargs):
        if self.problems is None:
            self.load()

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.settings.every_steps:
            return
        if self.problems is None:
            self.load()
        from accelerate import PartialState

        dist = PartialState()
        summary = evaluate_distributed(model, processing_class, self.problems, self.eval_settings,
                                       seed=self.seed + state.global_step, rank=dist.process_index,
                                       world=dist.num_processes, desc=f"validate {self.name}")
        if not state.is_world_process_zero:
            return
        metrics = validation_metrics(self.name, summary)
        append_jsonl(self.metrics_path, {"stage": self.stage, "step": state.global_step, **metrics})
        self._tensorboard(metrics, state.global_step)
        key = f"eval/{self.name}/avg@{summary['k']}"
        log(f"[polaris] stage {self.stage} step {state.global_step}: {key} = {metrics[key]:.3f} "
            f"(T={self.eval_settings.temperature:g})")

    def _tensorboard(self, metrics: dict[str, float], step: int) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.tb_dir))
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self._writer is not None:
            self._writer.close()


# -- each stage's evaluation, real models -------------------------------------------------------------


def benchmark_k(name: str, recipe) -> int:
    """k of a benchmark: the paper's for the registered names (``eval.paper_k``), else ``eval.k``."""
    from polaris.benchmarks import BENCHMARKS

    if recipe.eval.paper_k and name in BENCHMARKS:
        return BENCHMARKS[name].k
    return recipe.eval.k


def is_main_process() -> bool:
    """Rank 0 of a launched job (read from the environment: no process group is needed)."""
    return int(os.environ.get("RANK", "0")) == 0


def evaluate_real_model(run) -> None:
    """``eval:base`` (optional) and ``eval:stage-K`` for every stage, on the main process only."""
    if run.recipe.builtin_model or not is_main_process():
        return
    names = (["base"] if run.recipe.eval.evaluate_base else []) + [
        f"stage-{k}" for k in range(1, len(run.recipe.stages) + 1)
    ]
    for name in names:
        run.step(f"eval:{name}", lambda name=name: evaluate_model(run, name))


def evaluate_model(run, stage: str) -> dict[str, float]:
    """One model of the run (``base`` or ``stage-K``) on every benchmark of the recipe."""
    import torch

    from polaris.backends import BackendOptions, load_backend
    from polaris.benchmarks import resolve_benchmark
    from polaris.evaluate import evaluate_with_backend, write_results
    from polaris.launch import yarn_settings

    recipe = run.recipe
    ev = recipe.eval
    path = Path(recipe.model.path) if stage == "base" else run.path / "models" / stage
    yarn = yarn_settings(recipe)
    # Data first: an offline Hub benchmark fails before the model loads.
    benches = [resolve_benchmark(name, run_dir=run.path) for name in ev.benchmarks]
    device = "cuda" if torch.cuda.is_available() and ev.backend == "transformers" else None
    backend = load_backend(ev.backend, str(path), BackendOptions(
        dtype=recipe.model.dtype, device=device, yarn=yarn, seed=recipe.seed,
        tensor_parallel_size=ev.tensor_parallel_size))
    out: dict[str, float] = {}
    for bench in benches:
        settings = replace(ev, benchmarks=[bench.name], k=benchmark_k(bench.name, recipe))
        rows, summary = evaluate_with_backend(backend, bench.problems, settings, seed=recipe.seed,
                                              desc=f"eval {stage} {bench.name}")
        summary.update(source=bench.source, yarn=yarn.to_dict() if yarn else None)
        write_results(rows, run.path / "eval" / stage / f"{bench.name}.parquet")
        run.record_result(stage, bench.name, summary)
        log(f"[polaris] {stage} on {bench.name}: avg@{summary['k']} = {summary['avg@k']:.3f}")
        out[bench.name] = round(summary["avg@k"], 4)
    return out
