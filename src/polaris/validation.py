"""Validation during training: avg@k on one benchmark every N optimizer steps (``train.validation``).

:class:`ValidationCallback` is a ``TrainerCallback`` the run layer hands to
:func:`polaris.train.stages.train_stage` when ``train.validation.every_steps`` > 0. It evaluates the
model being trained — the reference validates on AIME24, avg@8, every 10 steps — at the stage's
``val_temperature`` (docs/method.md § Multi-stage training: 1.2/1.4/1.4 for Qwen3-4B; never above the
training temperature), top-p 1.0, no top-k, up to the stage's response length, and grades with the
evaluation protocol (:func:`polaris.evaluate.score_completions`, ``require_think=False``). It goes
through the same evaluation code as every other evaluation: the model in training is wrapped as a
:class:`~polaris.backends.transformers_backend.TransformersBackend`.

Where the numbers go: the main process appends one record per validation to the run's metrics log,
``{"stage": K, "step": S, "eval/<benchmark>/avg@<k>": x, "eval/<benchmark>/mean_length": ...,
"eval/<benchmark>/truncated": ...}``, with the same ``stage``/``step`` keys as the training records
(it is written just before the training record of step S), and the same scalars to TensorBoard. A
resumed stage cuts these records back with the others.

Several processes: every rank samples its share of the problems (padded to equal shares, and
``generate(synced_gpus=True)``, so sharded engines — ZeRO-3, FSDP — step together); the rows are
gathered and the main process computes avg@k over all problems.

Which engine generates: with vLLM training rollouts, the trainer's own engine (:meth:`ValidationCallback.use_engine`,
called by the trainer), after pushing the weights of the step into it — colocated: every rank samples its
share with its engine (a tensor-parallel group shares one); server mode: the main process sends every problem
to the server (:class:`~polaris.backends.vllm_backend.ServerBackend`). Without vLLM, transformers on the
training processes (on ZeRO-3 shards that gathers every layer for every token: slow, so GPU recipes train
with vLLM rollouts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polaris.config import EvalSettings, ValidationSettings
from polaris.io import append_jsonl
from polaris.progress import log


def validation_eval_settings(settings: ValidationSettings, *, temperature: float, max_new_tokens: int) -> EvalSettings:
    """The evaluation settings of one validation run."""
    return EvalSettings(benchmarks=[settings.benchmark], k=settings.k, temperature=temperature,
                        top_p=settings.top_p, top_k=settings.top_k, max_new_tokens=max_new_tokens,
                        batch_size=settings.batch_size, batch_tokens=settings.batch_tokens)


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
                         desc: str | None = None, reward=None) -> dict[str, Any]:
    """avg@k (and the rest of the summary) over all ``problems``, sampled by ``world`` processes."""
    from polaris.backends.transformers_backend import TransformersBackend
    from polaris.evaluate import evaluate_with_backend, summarize

    backend = TransformersBackend(model, tokenizer)
    if world == 1:
        return evaluate_with_backend(backend, problems, settings, seed=seed, desc=desc, reward=reward)[1]
    from accelerate.utils import gather_object

    mine, real = shard(problems, rank, world)
    rows, _ = evaluate_with_backend(backend, mine, settings, seed=seed + rank, desc=desc,
                                    extra={"synced_gpus": True}, keep=real, reward=reward)
    return summarize(gather_object(rows), settings)


def evaluate_with_engine(trainer, tokenizer, problems, settings: EvalSettings, *, seed: int, step: int, rank: int,
                         world: int, desc: str | None = None, reward=None) -> dict[str, Any] | None:
    """The summary over all ``problems`` sampled by ``trainer``'s vLLM engine with the weights of ``step``
    (``None`` on the ranks that do not compute it: server mode's other ranks)."""
    from polaris.backends.vllm_backend import ServerBackend, VLLMBackend
    from polaris.evaluate import evaluate_with_backend, summarize

    generation = trainer.vllm_generation
    generation.sync_weights()  # every rank: the parameter gathers of sharded engines are collective
    trainer._last_loaded_step = step  # TRL need not push the same weights again before the next rollouts
    if trainer.vllm_mode == "server":
        if rank != 0:
            return None
        backend = ServerBackend(generation.vllm_client, tokenizer)
        return evaluate_with_backend(backend, problems, settings, seed=seed, desc=desc, reward=reward)[1]
    # colocated: one engine per tensor-parallel group; every rank of a group asks it the same share
    tp = generation.tensor_parallel_size
    group, groups = rank // tp, world // tp
    mine, real = shard(problems, group, groups) if groups > 1 else (list(problems), len(problems))
    sleeping = generation.enable_sleep_mode
    if sleeping:
        generation.llm.wake_up(tags=["kv_cache"])
    try:
        rows, summary = evaluate_with_backend(VLLMBackend(generation.llm, tokenizer, {}), mine, settings,
                                              seed=seed + group, desc=desc, keep=real, reward=reward)
    finally:
        if sleeping:
            generation.llm.sleep(level=2)
            generation._llm_weights_sleeping = True
    if world == 1:
        return summary
    from accelerate.utils import gather_object

    return summarize(gather_object(rows if rank % tp == 0 else []), settings)


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class ValidationCallback(_callback_base()):  # type: ignore[misc]
    """Every ``every_steps`` steps: avg@k of the current model on the validation benchmark (see the module)."""

    def __init__(self, settings: ValidationSettings, *, stage: int, temperature: float, max_new_tokens: int,
                 benchmark: str, problems: Sequence[Any], metrics_path: Path, tb_dir: Path | None,
                 seed: int, reward=None) -> None:
        self.settings = settings
        self.stage = stage
        self.eval_settings = validation_eval_settings(settings, temperature=temperature,
                                                      max_new_tokens=max_new_tokens)
        self.name = benchmark
        self.problems = list(problems)
        self.metrics_path = metrics_path
        self.tb_dir = tb_dir
        self.seed = seed
        self.reward = reward  # the recipe's own reward function for evaluation; None: the built-in grader
        self._writer = None
        self.trainer = None  # a trainer with vLLM rollouts (use_engine): validate through its engine

    def use_engine(self, trainer) -> None:
        """Validate through ``trainer``'s vLLM rollout engine (TRL's ``vllm_generation``) instead of transformers."""
        self.trainer = trainer

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.settings.every_steps:
            return
        from accelerate import PartialState

        dist = PartialState()
        if self.trainer is not None:
            summary = evaluate_with_engine(self.trainer, processing_class, self.problems, self.eval_settings,
                                           seed=self.seed + state.global_step, step=state.global_step,
                                           rank=dist.process_index, world=dist.num_processes,
                                           desc=f"validate {self.name}", reward=self.reward)
        else:
            summary = evaluate_distributed(model, processing_class, self.problems, self.eval_settings,
                                           seed=self.seed + state.global_step, rank=dist.process_index,
                                           world=dist.num_processes, desc=f"validate {self.name}", reward=self.reward)
        if not state.is_world_process_zero:
            return
        metrics = validation_metrics(self.name, summary)
        append_jsonl(self.metrics_path, {"stage": self.stage, "step": state.global_step, **metrics})
        self._tensorboard(metrics, state.global_step)
        key = f"eval/{self.name}/avg@{summary['k']}"
        log(f"[polaris] stage {self.stage} step {state.global_step}: {key} = {metrics[key]:.3f} "
            f"(T={self.eval_settings.temperature:g})")

    def _tensorboard(self, metrics: dict[str, float], step: int) -> None:
        if self.tb_dir is None:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.tb_dir))
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self._writer is not None:
            self._writer.close()
