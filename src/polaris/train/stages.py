"""The pieces of a POLARIS run around the GRPO update: profile, temperature search, one stage.

* :func:`profile_difficulty` — k rollouts per training problem with the model about to be
  trained; one :class:`~polaris.recipe.DifficultyRecord` per problem (SPEC 1).
* :func:`search_temperatures` — accuracy and distinct-4 diversity at each temperature of a grid
  (SPEC 2); the recipe's rules in :mod:`polaris.recipe.temperature` then choose.
* :func:`train_stage` — one GRPO stage with :class:`~polaris.train.grpo.PolarisGRPOTrainer`:
  checkpoints every ``save_steps``, resumes from the last complete checkpoint (recipe state
  included), logs namespaced metrics to JSONL and TensorBoard.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris.config import StageSettings, TrainSettings
from polaris.data.problem import Problem, build_messages
from polaris.generation import SamplingParams, chat_prompts, generate
from polaris.io import append_jsonl, read_jsonl, write_json
from polaris.progress import log
from polaris.recipe import DifficultyLog, DifficultyRecord, TemperaturePoint, mean_distinct_n

# -- profile and temperature search -----------------------------------------------------------------


def sample_and_score(model, tokenizer, problems: Sequence[Problem], params: SamplingParams, *, batch_size: int,
                     desc: str | None) -> tuple[list[list[float]], list[list[str]], list[list[int]]]:
    """Per problem: the rewards (training reward: ``</think>`` required), texts and lengths."""
    from polaris.reward import score_batch

    prompt_ids = chat_prompts(tokenizer, [build_messages(p) for p in problems])
    completions = generate(model, tokenizer, prompt_ids, params, batch_size=batch_size, desc=desc)
    flat = [c.text for cs in completions for c in cs]
    truths = [p.answer for p, cs in zip(problems, completions, strict=True) for _ in cs]
    scores = iter(score_batch(flat, truths, require_think=True))
    rewards = [[next(scores) for _ in cs] for cs in completions]
    texts = [[c.text for c in cs] for cs in completions]
    lengths = [[len(c.token_ids) for c in cs] for cs in completions]
    return rewards, texts, lengths


def profile_difficulty(model, tokenizer, problems: Sequence[Problem], *, k: int, temperature: float,
                       max_new_tokens: int, batch_size: int = 512, seed: int = 0) -> list[DifficultyRecord]:
    params = SamplingParams(n=k, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    rewards, _, lengths = sample_and_score(model, tokenizer, problems, params, batch_size=batch_size,
                                           desc="profile")
    return [
        DifficultyRecord(problem_id=p.id, correct=int(sum(r > 0.5 for r in rs)), k=k,
                         mean_length=sum(ls) / len(ls))
        for p, rs, ls in zip(problems, rewards, lengths, strict=True)
    ]


def write_records(records: Sequence[DifficultyRecord], path: Path) -> None:
    """The per-problem profile as JSONL, atomically (read back by the report and ``--dry-run``)."""
    import json

    from polaris.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records), encoding="utf-8")


def search_temperatures(model, tokenizer, problems: Sequence[Problem], temperatures: Sequence[float], *, n: int,
                        max_new_tokens: int, batch_size: int = 512, seed: int = 0) -> list[TemperaturePoint]:
    points = []
    for t in temperatures:
        params = SamplingParams(n=n, temperature=t, max_new_tokens=max_new_tokens, seed=seed)
        rewards, texts, _ = sample_and_score(model, tokenizer, problems, params, batch_size=batch_size,
                                             desc=f"T={t:.2f}")
        accuracy = sum(sum(r) for r in rewards) / sum(len(r) for r in rewards)
        points.append(TemperaturePoint(temperature=t, accuracy=accuracy, diversity=mean_distinct_n(texts, 4)))
        log(f"[polaris]   T={t:.2f}: accuracy {accuracy:.3f}, distinct-4 {points[-1].diversity:.3f}")
    return points


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


# -- one stage ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagePlan:
    """Everything one stage needs, resolved (temperature chosen, data filtered)."""

    index: int
    settings: StageSettings
    temperature: float
    problems: list[Problem]


def build_dataset(problems: Sequence[Problem]):
    import datasets

    return datasets.Dataset.from_list([
        {"prompt": build_messages(p), "problem_id": p.id,
         "answers": [p.answer] if isinstance(p.answer, str) else list(p.answer)}
        for p in problems
    ])


def grpo_config(plan: StagePlan, train: TrainSettings, out_dir: Path, *, seed: int, num_processes: int = 1,
                use_cpu: bool = True, bf16: bool = False, **overrides: Any):
    """TRL's ``GRPOConfig`` carrying SPEC 5's objective and this stage's settings."""
    from trl import GRPOConfig

    sequences = train.batch_prompts * train.rollouts
    if sequences % num_processes:
        raise ValueError(f"batch_prompts × rollouts = {sequences} must divide evenly over {num_processes} processes")
    share = sequences // num_processes
    micro = train.micro_batch_sequences or share
    if share % micro:
        raise ValueError(f"train.micro_batch_sequences {micro} must divide each process's share of {share} sequences")
    # One generation per optimizer step: the share is generated at once, then split into
    # share/micro accumulated micro-batches (steps_per_generation == gradient_accumulation_steps).
    settings = dict(
        output_dir=str(out_dir),
        max_steps=plan.settings.steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=share // micro,
        steps_per_generation=share // micro,
        num_iterations=1,
        num_generations=train.rollouts,
        max_completion_length=plan.settings.max_response_tokens,
        temperature=plan.temperature,
        top_p=train.top_p,
        top_k=0,
        learning_rate=plan.settings.learning_rate or train.learning_rate,
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
        disable_tqdm=False,
        log_completions=False,
        shuffle_dataset=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    settings.update(vllm_settings(plan, train))
    settings.update(overrides)
    return GRPOConfig(**settings)


def vllm_settings(plan: StagePlan, train: TrainSettings) -> dict[str, Any]:
    """``GRPOConfig`` keywords of the rollout engine (none for the transformers backend)."""
    engine = train.engine
    if engine.backend != "vllm":
        return {}
    out: dict[str, Any] = {"use_vllm": True, "vllm_mode": engine.vllm_mode}
    if engine.vllm_mode == "server":
        out.update(vllm_server_host=engine.vllm_host, vllm_server_port=engine.vllm_port,
                   vllm_server_timeout=engine.vllm_server_timeout)
    else:
        out.update(vllm_gpu_memory_utilization=engine.vllm_gpu_memory_utilization,
                   vllm_tensor_parallel_size=engine.vllm_tensor_parallel_size,
                   vllm_enable_sleep_mode=engine.vllm_enable_sleep_mode)
        if train.max_prompt_tokens is not None:
            out["vllm_max_model_length"] = train.max_prompt_tokens + plan.settings.max_response_tokens
    return out


def complete_checkpoint(out_dir: Path) -> Path | None:
    """The newest checkpoint whose recipe state was written (so every file before it was too).

    Newer, incomplete checkpoints (a kill during a save) are removed.
    """
    from polaris.train.grpo import STATE_FILE

    if not out_dir.exists():
        return None
    checkpoints = sorted((p for p in out_dir.glob("checkpoint-*") if p.is_dir()),
                         key=lambda p: int(p.name.split("-")[1]), reverse=True)
    for ckpt in checkpoints:
        if (ckpt / STATE_FILE).exists():
            return ckpt
        shutil.rmtree(ckpt, ignore_errors=True)
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


def train_stage(model_dir: Path, plan: StagePlan, train: TrainSettings, *, seed: int, work_dir: Path,
                final_dir: Path, logs_dir: Path, difficulty_log: DifficultyLog, dtype: str = "float32",
                max_position_embeddings: int | None = None, initial_state: Path | None = None) -> dict[str, Any]:
    """Train one stage from ``model_dir`` into ``final_dir``; resumes from ``work_dir``'s checkpoints.

    ``initial_state`` is the previous stage's recipe state (``stage-K.state.json``): the rescue
    store carries over, so a problem solved once in stage 1 can still be rescued in stage 3.
    """
    import json

    from accelerate import PartialState

    from polaris.models.loading import load_model
    from polaris.train.grpo import STATE_FILE, PolarisGRPOTrainer, RecipeRuntime

    overrides = {"max_position_embeddings": max_position_embeddings} if max_position_embeddings else {}
    model, tokenizer = load_model(model_dir, dtype=dtype, **overrides)
    state = PartialState(cpu=not _has_gpu())  # CPU processes join over gloo only when asked to
    runtime = RecipeRuntime(
        stage=plan.index,
        seed=seed,
        difficulty_log=difficulty_log,
        rescue=train.rescue,
        substitution=train.substitution,
        min_informative=train.min_informative if train.min_informative is not None else train.batch_prompts // 3,
        decisions_path=work_dir / f"decisions-rank{state.process_index}.jsonl",
    )
    resume = complete_checkpoint(work_dir) if state.is_main_process else None
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box = [str(resume) if resume else None]
        broadcast_object_list(box)
        resume = Path(box[0]) if box[0] else None
    metrics_path = logs_dir / "metrics.jsonl"
    if initial_state is not None and initial_state.exists():
        runtime.load_state_dict(json.loads(initial_state.read_text()))
    step = 0  # records of this stage past the step it starts from are from a killed attempt: cut them
    if resume is not None:
        runtime.load_state_dict(json.loads((resume / STATE_FILE).read_text()))
        step = int(resume.name.split("-")[1])
        log(f"[polaris] stage {plan.index}: resuming from {resume.name}")
    truncate_metrics(runtime.decisions_path, plan.index, step)  # each rank its own audit log
    if state.is_main_process:
        truncate_metrics(metrics_path, plan.index, step)
    config = grpo_config(plan, train, work_dir, seed=seed, num_processes=state.num_processes,
                         use_cpu=not _has_gpu(), bf16=dtype == "bfloat16")
    callback = RecipeCallback(runtime, metrics_path, logs_dir / "tb" / f"stage-{plan.index}",
                              extra={"recipe/temperature": plan.temperature,
                                     "recipe/problems": float(len(plan.problems))})
    from polaris.train.validation import validation_callbacks

    trainer = PolarisGRPOTrainer(model=model, args=config, train_dataset=build_dataset(plan.problems),
                                 processing_class=tokenizer, runtime=runtime,
                                 callbacks=[callback, *validation_callbacks(plan, train, logs_dir, seed=seed)])
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.save_model(str(final_dir))  # every rank: ZeRO-3/FSDP weights are gathered collectively
    if state.is_main_process:
        tokenizer.save_pretrained(final_dir)
        write_json(final_dir.parent / f"{final_dir.name}.state.json", runtime.state_dict())
    state.wait_for_everyone()
    return {"steps": trainer.state.global_step, "temperature": plan.temperature,
            "problems": len(plan.problems), "rescue_store": len(runtime.store)}


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
