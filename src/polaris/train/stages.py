"""One GRPO stage of a POLARIS run (the profile and the temperature search are in :mod:`polaris.rollouts`).

* :func:`train_stage` — one GRPO stage with :class:`~polaris.train.grpo.PolarisGRPOTrainer`:
  checkpoints every ``save_steps``, resumes from the last complete checkpoint (recipe state
  included), logs namespaced metrics to JSONL and TensorBoard. Where it writes is given
  (:class:`StagePaths`); what it trains is given (:class:`StageRun`): this module decides neither.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris.config import BatchSplit, TrainSettings, batch_split
from polaris.data.problem import Problem, build_messages
from polaris.io import append_jsonl, read_jsonl, write_json
from polaris.progress import log, warn
from polaris.recipe import DifficultyLog

# -- metrics -----------------------------------------------------------------------------------------

#: TRL's log names -> ours. Anything else TRL logs is kept under ``trl/``.
TRL_METRIC_NAMES = {
    "loss": "train/loss",
    "grad_norm": "train/grad_norm",
    "learning_rate": "train/lr",
    "entropy": "train/entropy",
    "clip_ratio/region_mean": "train/clip_fraction",
    "step_time": "train/step_time",
    "reward": "rollout/reward_final_mean",
}


def namespace_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """TRL's per-step log as ``rollout/``, ``recipe/``, ``train/`` (and ``trl/``) metrics."""
    out: dict[str, float] = {}
    for key, value in logs.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if key.startswith(("rollout/", "recipe/", "train/")):
            out[key] = float(value)
        elif key in TRL_METRIC_NAMES:
            out[TRL_METRIC_NAMES[key]] = float(value)
        elif key not in ("epoch", "total_flos", "train_runtime", "train_samples_per_second",
                         "train_steps_per_second", "train_loss"):
            out[f"trl/{key}"] = float(value)
    return out


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class RecipeCallback(_callback_base()):  # type: ignore[misc]
    """Writes namespaced metrics (JSONL + TensorBoard) and the recipe state into checkpoints."""

    def __init__(self, runtime, metrics_path: Path, tb_dir: Path | None, extra: dict[str, float]) -> None:
        self.runtime = runtime
        self.metrics_path = metrics_path
        self.tb_dir = tb_dir
        self.extra = extra
        self._writer = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        metrics = {**namespace_metrics(logs), **self.extra}
        append_jsonl(self.metrics_path, {"stage": self.runtime.stage, "step": state.global_step, **metrics})
        if self.tb_dir is not None:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.tb_dir))
            for key, value in metrics.items():
                self._writer.add_scalar(key, value, state.global_step)
            self._writer.flush()

    def on_save(self, args, state, control, **kwargs):
        from polaris.train.grpo import save_runtime_state

        if state.is_world_process_zero:
            save_runtime_state(self.runtime, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def on_train_end(self, args, state, control, **kwargs):
        if self._writer is not None:
            self._writer.close()


def step_line(logs: dict[str, Any]) -> str:
    """One training step in a few words: mean reward, accuracy (before the recipe's changes), informative
    groups (before -> after), rescued and substituted groups, rollout tokens per second of the step."""
    parts = []
    if "reward" in logs:
        parts.append(f"reward {float(logs['reward']):.2f}")
    if "rollout/reward_mean" in logs:
        parts.append(f"acc {float(logs['rollout/reward_mean']):.2f}")
    if "recipe/informative_before" in logs:
        after = logs.get("recipe/informative_after", logs["recipe/informative_before"])
        parts.append(f"informative {float(logs['recipe/informative_before']):.0%}->{float(after):.0%}")
    if "recipe/rescued" in logs or "recipe/substituted" in logs:
        parts.append(f"rescued {int(logs.get('recipe/rescued', 0))} substituted {int(logs.get('recipe/substituted', 0))}")
    if float(logs.get("recipe/skipped", 0)):
        parts.append("skipped")
    seconds = float(logs.get("step_time", 0))
    if seconds > 0 and "rollout/response_length" in logs and "rollout/generated" in logs:
        tokens = float(logs["rollout/response_length"]) * float(logs["rollout/generated"])
        parts.append(f"{tokens / seconds:,.0f} tok/s")
    return ", ".join(parts)


class StageProgress(_callback_base()):  # type: ignore[misc]
    """One updating line per stage on stderr (step/total, ETA, and :func:`step_line`), in place of TRL's raw
    metric dicts; every metric still goes to JSONL and TensorBoard (:class:`RecipeCallback`)."""

    def __init__(self, stage: int) -> None:
        self.stage = stage
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from polaris.progress import quiet

        if state.is_world_process_zero and not quiet():
            import sys

            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=f"stage {self.stage}",
                            unit="step", dynamic_ncols=True, file=sys.stderr)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix_str(step_line(logs), refresh=False)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# -- one stage ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageRun:
    """What one stage trains: resolved values (temperature chosen, data filtered, learning rate picked)."""

    index: int
    steps: int
    temperature: float
    max_response_tokens: int
    learning_rate: float
    problems: list[Problem]
    batch: BatchSplit | None = None
    """The run plan's split of the batch over the processes; ``None`` (a direct call): ``train``'s batch split
    over the processes running."""


@dataclass(frozen=True)
class StagePaths:
    """Where one stage writes (given by the run layer's ``RunLayout.stage_paths``)."""

    work: Path
    """TRL checkpoints; a killed stage resumes from the newest complete one."""
    model: Path
    """The weights after the stage (an HF folder)."""
    state: Path
    """The recipe state after the stage (the rescue store), read by the next stage."""
    metrics: Path
    """Per-step metrics (JSONL, appended)."""
    tensorboard: Path | None
    difficulty: Path
    """Per-step group accuracy of every problem (JSONL)."""
    decisions: str
    """Per-rank audit log of the recipe's decisions: a path with ``{rank}``."""
    initial_state: Path | None = None
    """The previous stage's recipe state (``None``: start empty)."""


def dataset_rows(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """The training rows TRL samples prompts from (also dynamic sampling's pool of extra problems)."""
    return [
        {"prompt": build_messages(p), "problem_id": p.id,
         "answers": [p.answer] if isinstance(p.answer, str) else list(p.answer)}
        for p in problems
    ]


def fit_prompts(problems: Sequence[Problem], tokenizer, max_prompt_tokens: int | None) -> tuple[list[Problem], int]:
    """The problems whose prompt (through the chat template) fits ``train.max_prompt_tokens``, and how many
    do not. A longer prompt would silently shorten its response budget (the engine's context is sized for
    prompt + response), so it is left out of the stage, and counted."""
    if max_prompt_tokens is None:
        return list(problems), 0
    from polaris.generation import chat_prompts

    lengths = [len(ids) for ids in chat_prompts(tokenizer, [build_messages(p) for p in problems])]
    kept = [p for p, n in zip(problems, lengths, strict=True) if n <= max_prompt_tokens]
    return kept, len(problems) - len(kept)


def build_dataset(problems: Sequence[Problem]):
    import datasets

    return datasets.Dataset.from_list(dataset_rows(problems))


def grpo_config(stage: StageRun, train: TrainSettings, out_dir: Path, *, seed: int, num_processes: int = 1,
                use_cpu: bool = True, bf16: bool = False, **overrides: Any):
    """TRL's ``GRPOConfig`` carrying the objective of docs/method.md § The objective and this stage's settings."""
    from trl import GRPOConfig

    split = stage.batch or batch_split(train, num_processes)
    # One generation per optimizer step: each process's share is generated at once, then split into
    # accumulated micro-batches (steps_per_generation == gradient_accumulation_steps).
    settings = dict(
        output_dir=str(out_dir),
        max_steps=stage.steps,
        per_device_train_batch_size=split.micro_batch,
        gradient_accumulation_steps=split.accumulation,
        steps_per_generation=split.accumulation,
        num_iterations=1,
        num_generations=train.rollouts,
        max_completion_length=stage.max_response_tokens,
        temperature=stage.temperature,
        top_p=train.top_p,
        top_k=0,
        learning_rate=stage.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        adam_beta1=0.9,
        adam_beta2=0.999,
        loss_type="dapo",
        epsilon=train.epsilon_low,
        epsilon_high=train.epsilon_high,
        delta=train.dual_clip,
        beta=0.0,
        scale_rewards="group",
        mask_truncated_completions=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=2,
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=use_cpu,
        bf16=bf16,
        gradient_checkpointing=train.gradient_checkpointing,
        disable_tqdm=True,  # StageProgress shows the stage instead
        log_completions=False,
        shuffle_dataset=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    settings.update(vllm_settings(stage, train))
    settings.update(overrides)
    return GRPOConfig(**settings)


def vllm_settings(stage: StageRun, train: TrainSettings) -> dict[str, Any]:
    """``GRPOConfig`` keywords of the rollout engine (none for the transformers backend)."""
    engine = train.engine
    if engine.backend != "vllm":
        return {}
    out: dict[str, Any] = {"use_vllm": True, "vllm_mode": engine.vllm_mode}
    if engine.importance_sampling == "off":
        out["vllm_importance_sampling_correction"] = False
    else:
        out.update(vllm_importance_sampling_correction=True, vllm_importance_sampling_mode=engine.importance_sampling,
                   vllm_importance_sampling_clip_max=engine.importance_sampling_cap)
    if engine.vllm_mode == "server":
        from polaris.train.vllm_engine import group_port

        out.update(vllm_server_host=engine.vllm_host, vllm_server_port=engine.vllm_port,
                   vllm_server_timeout=engine.vllm_server_timeout, vllm_group_port=group_port(stage.index))
    else:
        out.update(vllm_gpu_memory_utilization=engine.vllm_gpu_memory_utilization,
                   vllm_tensor_parallel_size=engine.vllm_tensor_parallel_size,
                   vllm_enable_sleep_mode=engine.vllm_enable_sleep_mode)
        if train.max_prompt_tokens is not None:
            out["vllm_max_model_length"] = train.max_prompt_tokens + stage.max_response_tokens
    return out


def complete_checkpoint(out_dir: Path) -> Path | None:
    """The newest checkpoint that is complete and readable.

    A checkpoint is complete once its recipe state is written (the last file of a save): newer ones
    without it (a kill or a full disk during a save) are removed. A complete one whose files do not
    read back (:func:`checkpoint_damage`: a torn or corrupt file) is set aside as ``torn-checkpoint-N``
    and the previous one is used, with a message saying so.
    """
    from polaris.train.grpo import STATE_FILE

    if not out_dir.exists():
        return None
    checkpoints = sorted((p for p in out_dir.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
                         key=lambda p: int(p.name.split("-")[1]), reverse=True)
    for ckpt in checkpoints:
        if not (ckpt / STATE_FILE).exists():
            shutil.rmtree(ckpt, ignore_errors=True)
            continue
        damage = checkpoint_damage(ckpt)
        if damage is None:
            return ckpt
        aside = ckpt.with_name(f"torn-{ckpt.name}")
        shutil.rmtree(aside, ignore_errors=True)
        ckpt.rename(aside)
        warn(f"[polaris] {ckpt} is damaged ({damage}); set aside as {aside.name}, falling back to the "
             "previous checkpoint")
    return None


def remove_checkpoints(out_dir: Path) -> None:
    """Delete a finished stage's checkpoints (complete or torn); its audit logs stay."""
    for ckpt in out_dir.glob("*checkpoint-*"):
        if ckpt.is_dir():
            shutil.rmtree(ckpt, ignore_errors=True)


def checkpoint_damage(ckpt: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (``None``: it reads back whole).

    Checks every file the resume reads, without loading tensors: JSON files parse, safetensors files
    are as long as their header says, and torch archives (``*.pt``, ``*.pth``: zip files) pass their
    CRC check.
    """
    import json
    import struct
    import zipfile

    for path in sorted(ckpt.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(ckpt)
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".safetensors":
                with open(path, "rb") as f:
                    head = f.read(8)
                    if len(head) < 8:
                        return f"{name}: cut short"
                    (size,) = struct.unpack("<Q", head)
                    header = json.loads(f.read(size))
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
                if path.stat().st_size != 8 + size + end:
                    return f"{name}: {path.stat().st_size} bytes, its header says {8 + size + end}"
            elif path.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(path) as z:
                    bad = z.testzip()
                if bad is not None:
                    return f"{name}: member {bad} fails its CRC check"
        except (OSError, ValueError, KeyError, TypeError, struct.error, zipfile.BadZipFile) as e:
            return f"{name}: {type(e).__name__}: {e}"
    return None


def truncate_metrics(path: Path, stage: int, after_step: int) -> None:
    """Drop a stage's records past ``after_step`` from a JSONL log (steps redone after a resume)."""
    from polaris.io import atomic_path

    records = read_jsonl(path)
    kept = [r for r in records if not (r.get("stage") == stage and r.get("step", 0) > after_step)]
    if len(kept) != len(records):
        import json

        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def train_stage(model_dir: str | Path, stage: StageRun, train: TrainSettings, paths: StagePaths, *, seed: int,
                dtype: str = "float32", max_position_embeddings: int | None = None,
                callbacks: Sequence[Any] = (), reward: Any = None, attn_implementation: str = "auto") -> dict[str, Any]:
    """Train one stage from ``model_dir`` into ``paths.model``; resumes from ``paths.work``'s checkpoints.

    ``attn_implementation``: ``model.attn_implementation`` (:func:`polaris.models.loading.resolve_attention`).
    ``paths.initial_state`` is the previous stage's recipe state: the rescue store carries over, so a
    problem solved once in stage 1 can still be rescued in stage 3. ``callbacks`` are extra
    ``TrainerCallback`` objects (the run layer adds validation there); ``reward`` the training reward
    (:func:`polaris.reward.custom.make_reward`; ``None``: the built-in verifier with ``</think>`` required).
    """
    import json

    from accelerate import PartialState

    from polaris.models.loading import has_gpu, load_model, resolve_attention
    from polaris.train.grpo import STATE_FILE, PolarisGRPOTrainer, RecipeRuntime
    from polaris.train.server import lost_server
    from polaris.train.vllm_engine import colocated_engine_kwargs, release

    overrides = {"max_position_embeddings": max_position_embeddings} if max_position_embeddings else {}
    attention, note = resolve_attention(attn_implementation, gpu=has_gpu(), dtype=dtype)
    model, tokenizer = load_model(model_dir, dtype=dtype, attn_implementation=attention, **overrides)
    problems, too_long = fit_prompts(stage.problems, tokenizer, train.max_prompt_tokens)
    if too_long:
        from dataclasses import replace

        if not problems:
            from polaris.errors import RecipeError

            raise RecipeError(f"stage {stage.index}: every training prompt is longer than train.max_prompt_tokens "
                              f"({train.max_prompt_tokens} tokens through the chat template); raise it")
        warn(f"[polaris] stage {stage.index}: {too_long} of {len(stage.problems)} problems have prompts longer than "
             f"train.max_prompt_tokens ({train.max_prompt_tokens} tokens): left out of this stage")
        stage = replace(stage, problems=problems)
    state = PartialState(cpu=not has_gpu())  # CPU processes join over gloo only when asked to
    if stage.batch is not None and stage.batch.processes != state.num_processes:
        from polaris.errors import RunError

        raise RunError(f"stage {stage.index}: the plan splits the batch over {stage.batch.processes} process(es) but "
                       f"{state.num_processes} are running; launch with --num_processes {stage.batch.processes} or set "
                       "launch.num_processes")
    if note and state.is_main_process:
        warn(note)
    runtime = RecipeRuntime(
        stage=stage.index,
        seed=seed,
        difficulty_log=DifficultyLog(paths.difficulty),
        rescue=train.rescue,
        substitution=train.substitution,
        min_informative=train.min_informative if train.min_informative is not None else train.batch_prompts // 3,
        decisions_path=Path(paths.decisions.format(rank=state.process_index)),
        reward=reward,
        dynamic_sampling=train.dynamic_sampling,
        dynamic_max_rounds=train.dynamic_sampling_max_rounds,
        pool=dataset_rows(stage.problems) if train.dynamic_sampling else (),
        overlong_buffer=train.overlong_buffer,
        overlong_penalty=train.overlong_penalty,
    )
    resume = complete_checkpoint(paths.work) if state.is_main_process else None
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box = [str(resume) if resume else None]
        broadcast_object_list(box)
        resume = Path(box[0]) if box[0] else None
    if paths.initial_state is not None and paths.initial_state.exists():
        runtime.load_state_dict(json.loads(paths.initial_state.read_text()))
    step = 0  # records of this stage past the step it starts from are from a killed attempt: cut them
    if resume is not None:
        runtime.load_state_dict(json.loads((resume / STATE_FILE).read_text()))
        step = int(resume.name.split("-")[1])
        log(f"[polaris] stage {stage.index}: resuming from {resume.name}")
    truncate_metrics(runtime.decisions_path, stage.index, step)  # each rank its own audit log
    if state.is_main_process:
        truncate_metrics(paths.metrics, stage.index, step)
        truncate_metrics(paths.difficulty, stage.index, step)
    config = grpo_config(stage, train, paths.work, seed=seed, num_processes=state.num_processes,
                         use_cpu=not has_gpu(), bf16=dtype == "bfloat16")
    callback = RecipeCallback(runtime, paths.metrics, paths.tensorboard,
                              extra={"recipe/temperature": stage.temperature,
                                     "recipe/problems": float(len(stage.problems))})
    engine = train.engine
    colocated = engine.backend == "vllm" and engine.vllm_mode == "colocate"
    trainer = PolarisGRPOTrainer(model=model, args=config, train_dataset=build_dataset(stage.problems),
                                 processing_class=tokenizer, runtime=runtime, callbacks=[callback, *callbacks],
                                 engine_kwargs=colocated_engine_kwargs(dtype, cpu=not has_gpu()) if colocated else None)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for raw in (PrinterCallback, ProgressCallback):  # they print every step's metrics as a dict
        trainer.remove_callback(raw)
    trainer.add_callback(StageProgress(stage.index))
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except Exception as e:
        lost = lost_server(e, engine.vllm_host, engine.vllm_port) if engine.vllm_mode == "server" and \
            engine.backend == "vllm" else None
        if lost is not None:
            raise lost from e
        raise
    finally:
        if engine.backend == "vllm":  # the next stage builds an engine (colocated: its own response length) or client
            release(getattr(trainer, "vllm_generation", None), engine.vllm_mode)
    trainer.save_model(str(paths.model))  # every rank: ZeRO-3/FSDP weights are gathered collectively
    if state.is_main_process:
        tokenizer.save_pretrained(paths.model)
        write_json(paths.state, runtime.state_dict())
        if not train.keep_checkpoints:
            remove_checkpoints(paths.work)
    state.wait_for_everyone()
    steps = trainer.state.global_step
    free_training_memory(trainer)
    return {"steps": steps, "temperature": stage.temperature,
            "problems": len(stage.problems), "long_prompts_skipped": too_long, "rescue_store": len(runtime.store)}


def free_training_memory(trainer) -> None:
    """Let go of the model, the optimizer and accelerate's (or DeepSpeed's) references to them, and hand the
    GPU's cached blocks back, so the next stage's trainer or the evaluation's vLLM engine finds the memory free."""
    import gc

    from polaris.models.loading import has_gpu

    trainer.accelerator.free_memory()
    trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    gc.collect()
    if has_gpu():
        import torch

        torch.cuda.empty_cache()
