"""The GRPO engine adapter: TRL's ``GRPOTrainer`` with the POLARIS recipe in its generation step.

TRL (1.16) has no hook between rewards and advantages, so :class:`PolarisGRPOTrainer` takes over
``_generate`` — the step that turns a batch of prompts into completions — and runs the recipe
there, on the whole global batch, in the order of docs/method.md § Informative batches:

    rollout (TRL) → verify (the recipe's reward) → group → log difficulty → rescue → substitute

then hands TRL the final token ids and the final rewards (through a reward function that returns
them), so rescued and copied rollouts are scored against their *own* ground truth — the defect
of the reference, whose copies were re-scored against the wrong answer.

DAPO's options (docs/method.md § Dynamic sampling and overlong shaping), both off by default: with
``dynamic_sampling`` (instead of rescue and substitution) the zero-advantage groups are refilled
after grouping by extra rounds of ``super()._generate`` on problems of the stage's pool, before the
difficulty is logged; TRL's ``completions/*`` metrics then average over the rounds. With
``overlong_buffer`` the overlong penalty is added to the final rewards (for the advantages and TRL's
reward only; every recipe decision reads correctness). After TRL computes its
advantages we replace them with :func:`polaris.recipe.grpo_advantages` (unbiased std + 1e-6, as
docs/method.md § The objective; TRL adds 1e-4). A batch flagged to skip (at most ⌊B/3⌋ informative groups) runs no
forward or backward pass: no parameter receives a gradient, so AdamW leaves every weight and moment
untouched, and under DeepSpeed (whose optimizer step runs inside accelerate's backward) no engine step
is taken. The learning-rate schedule is constant, so its step counter advancing changes nothing.

Objective (docs/method.md § The objective), through TRL's settings: token-mean loss (``loss_type="dapo"``), clip
0.2/0.28 (clip-higher, https://arxiv.org/abs/2503.14476), dual clip 3.0 on negative advantages
(TRL's ``delta`` caps the ratio; for A<0 this is exactly the dual-clip bound), ``beta=0`` so no
KL and no reference model, log-probs on logits/T at the sampling temperature, one optimizer step
per batch (one generation per optimizer step: ``steps_per_generation`` equals
``gradient_accumulation_steps``, which splits a process's share into micro-batches;
``num_iterations=1``), constant learning rate. A skipped batch skips all its micro-batches.

Distributed runs: each rank generates and scores its share; the recipe runs on the gathered
global batch with a random generator derived from ``(seed, stage, step)``, so every rank makes
the same decisions; each rank then keeps its own slice. Only rank 0 writes logs.

TRL internals this relies on are pinned by ``tests/test_trl_contract.py``.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polaris.io import append_jsonl, atomic_path
from polaris.progress import log
from polaris.recipe import (
    DifficultyLog,
    Group,
    RescueStore,
    Rollout,
    choose_extra_problems,
    dynamic_metrics,
    extra_request,
    fill_slots,
    grpo_advantages,
    overlong_metrics,
    process_batch,
    ratio_by_length,
    shaped_rewards,
    zero_advantage_slots,
)

STATE_FILE = "polaris_state.json"


@dataclass
class RecipeRuntime:
    """What the adapter needs beyond TRL's own settings; ``store`` is the resumable state."""

    stage: int
    seed: int
    difficulty_log: DifficultyLog
    rescue: bool = True
    substitution: bool = True
    min_informative: int | None = None
    store: RescueStore = field(default_factory=RescueStore)
    decisions_path: Path | None = None  # this rank's audit log of every recipe decision (JSONL)
    reward: Callable[[Sequence[str], Sequence[Any]], list[float]] | None = None
    """The training reward (:mod:`polaris.reward.custom`); ``None``: the built-in verifier, ``</think>`` required."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling (:mod:`polaris.recipe.dynamic`): needs ``pool``; rescue and substitution off."""
    dynamic_max_rounds: int = 4
    pool: Sequence[Mapping[str, Any]] = ()
    """The stage's training rows (``prompt``, ``problem_id``, ``answers``): the extra problems to sample."""
    overlong_buffer: int = 0
    """Soft overlong punishment (:mod:`polaris.recipe.overlong`) over the last this many tokens; 0: off."""
    overlong_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.dynamic_sampling:
            from polaris.errors import RecipeError

            if self.rescue or self.substitution:
                raise RecipeError("train.dynamic_sampling is an alternative to train.rescue and "
                                  "train.substitution: turn both off to use it")
            if not self.pool:
                raise RecipeError("train.dynamic_sampling needs the stage's training problems "
                                  "(RecipeRuntime.pool)")
            if self.dynamic_max_rounds < 1:
                raise RecipeError(f"train.dynamic_sampling_max_rounds must be >= 1, "
                                  f"got {self.dynamic_max_rounds}")

    def score(self, texts: Sequence[str], truths: Sequence[Any]) -> list[float]:
        if self.reward is not None:
            return list(self.reward(texts, truths))
        from polaris.reward import score_batch

        return score_batch(texts, truths, require_think=True)

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "store": self.store.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store = RescueStore.from_dict(state["store"])


def _trainer_base():
    from trl import GRPOTrainer

    return GRPOTrainer


class PolarisGRPOTrainer(_trainer_base()):  # type: ignore[misc]
    """``GRPOTrainer`` whose generation step applies the POLARIS recipe (see the module docstring)."""

    def __init__(self, *args: Any, runtime: RecipeRuntime, engine_kwargs: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        """``engine_kwargs``: added to TRL's ``vllm.LLM`` keywords of a colocated engine
        (:func:`polaris.train.vllm_engine.colocated_engine_kwargs`)."""
        from polaris.models.loading import has_gpu
        from polaris.train.vllm_engine import engine_settings, reload_sync

        self.runtime = runtime
        self._final_rewards: list[float] = []
        self._final_advantages: list[float] = []
        self._skip_batch = False
        self._batch_inputs: list[dict[str, Any]] | None = None
        kwargs["reward_funcs"] = [self.polaris_reward]
        with engine_settings(dict(engine_kwargs or {})):
            super().__init__(*args, **kwargs)
        if self.use_vllm and self.vllm_mode == "colocate" and not has_gpu():
            # vLLM's CPU backend repacks its linear weights: per-parameter loading has nothing to load into.
            self.vllm_generation.sync_weights = functools.partial(reload_sync, self.vllm_generation)
        if self.use_vllm:  # validation samples through the rollout engine (polaris.validation.ValidationCallback)
            for callback in self.callback_handler.callbacks:
                if hasattr(callback, "use_engine"):
                    callback.use_engine(self)
        # A skipped batch runs no backward pass: under DeepSpeed, accelerate's backward also takes the
        # optimizer step (engine.step), which would move the weights by momentum and decay on a zero gradient.
        self.accelerator.backward = self._skipping(self.accelerator.backward)
        if self.args.steps_per_generation != self.args.gradient_accumulation_steps or self.num_iterations != 1:
            raise ValueError(
                "POLARIS takes one optimizer step per batch: steps_per_generation must equal "
                "gradient_accumulation_steps, and num_iterations must be 1"
            )

    # -- the reward TRL sees: the recipe's final rewards, computed in _generate -------------------

    def polaris_reward(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        if not self.model.training:  # TRL's own evaluation loop: grade directly, no recipe
            from polaris.reward import score_batch

            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            return score_batch(texts, kwargs["answers"], require_think=False)
        if len(self._final_rewards) != len(prompts):
            raise RuntimeError("polaris_reward called out of step with _generate")
        return list(self._final_rewards)

    # -- generation step -------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._batch_inputs = inputs
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            import torch

            # (local_batch,) advantages of docs/method.md § The objective in place of TRL's (same layout, groups of n)
            output["advantages"] = torch.tensor(
                self._final_advantages, dtype=output["advantages"].dtype, device=output["advantages"].device
            )
            ratio = output.get("importance_sampling_ratio")  # (B, T) token modes, (B, 1) sequence modes
            if ratio is not None:
                mask = output["completion_mask"].to(ratio.dtype)  # (B, T)
                lengths = mask.sum(dim=1)  # (B,)
                per_response = ((ratio * mask).sum(dim=1) / lengths.clamp(min=1) if ratio.shape[1] > 1
                                else ratio[:, 0])  # (B,)
                for key, value in ratio_by_length(per_response.tolist(), lengths.long().tolist()).items():
                    self._metrics["train"][key].append(value)
        return output

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        """Without vLLM, for text: TRL's ``generate`` call, sampled the same way, but rows that have finished leave
        the batch (:func:`polaris.generation.sample_compacting`), so a step's rollouts cost their mean length
        rather than the longest one's. Anything else (vLLM, images, other sampling settings) is TRL's own."""
        from polaris.generation import SamplingParams, can_compact, left_pad, sample_compacting

        compact = not (self.use_vllm or self.use_transformers_continuous_batching or images or multimodal_fields
                       or has_tool_images)
        if compact:  # TRL makes generation_config only for its own generate call
            config = self.generation_config
            params = SamplingParams(n=1, temperature=config.temperature, top_p=config.top_p or 1.0,
                                    top_k=config.top_k or 0, max_new_tokens=config.max_new_tokens)
            compact = can_compact(self.model, params, config)
        if not compact:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        import torch
        from trl.models import unwrap_model_for_generation

        input_ids, attention = left_pad(prompt_ids, self._tokenizer.pad_token_id, self.accelerator.device)
        with (
            unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                        gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                                        generation_kwargs=self.generation_kwargs,
                                        gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs) as model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            completion_ids = sample_compacting(model, input_ids, attention, params, self.eos_token_ids)
        return completion_ids, None

    def _generate(self, prompts: list[Any]):
        result = list(super()._generate(prompts))
        if not self.model.training:
            return tuple(result)
        prompt_ids, completion_ids, _tool_mask, completions, logprobs = result[:5]
        inputs = self._batch_inputs
        assert inputs is not None and len(inputs) == len(prompts)

        n = self.num_generations
        everything = self._gather(self._scored_rows(inputs, prompts, prompt_ids, completion_ids, logprobs))
        groups = _groups_of(everything, n)
        step = self.state.global_step + 1  # the optimizer step this batch is for
        rt = self.runtime
        rng = random.Random(f"{rt.seed}:{rt.stage}:{step}")
        sampled, dynamic = groups, None
        if rt.dynamic_sampling:
            groups, sampled, dynamic = self._dynamic_sampling(groups, everything, step)
        outcome = process_batch(
            groups,
            store=rt.store if rt.rescue else None,
            rng=rng,
            rescue=rt.rescue,
            substitute=rt.substitution,
            min_informative=rt.min_informative,
            sampled=sampled,
        )
        if self.accelerator.is_main_process:
            rt.difficulty_log.record(rt.stage, step, outcome.accuracies)
        if rt.decisions_path is not None:
            record = {
                "stage": rt.stage,
                "step": step,
                "rank": self.accelerator.process_index,
                "skip": outcome.skip,
                "groups": [[g.problem_id, g.copied_from, [r.origin for r in g.rollouts], list(g.rewards)]
                           for g in outcome.groups],
            }
            if dynamic is not None:
                record["dynamic"] = dynamic
            append_jsonl(rt.decisions_path, record)
        metrics = dict(outcome.metrics)
        if dynamic is not None:
            metrics.update(dynamic_metrics(rounds=dynamic["rounds"], filled=dynamic["filled"],
                                           missing=dynamic["missing"]))
        # The rewards the advantages (and TRL) see: correctness, plus the overlong penalty when it is on.
        # The recipe's decisions above all read correctness, see
        # docs/method.md § Dynamic sampling and overlong shaping.
        if rt.overlong_buffer > 0:
            rewards = shaped_rewards(outcome.groups, max_length=self.args.max_completion_length,
                                     buffer=rt.overlong_buffer, factor=rt.overlong_penalty)
            metrics.update(overlong_metrics(outcome.groups, rewards))
        else:
            rewards = [list(g.rewards) for g in outcome.groups]
        for key, value in metrics.items():
            self._metrics["train"][key].append(float(value))
        self._skip_batch = outcome.skip

        # Flatten the final groups back to sequences, keep this rank's slice.
        source_of = {x["problem_id"]: x for x in everything}  # the rows of every problem in the batch
        advantages = [a for row in rewards for a in grpo_advantages(row)]
        start = self.accelerator.process_index * len(prompts)
        final_rewards, final_adv = [], []
        for i in range(len(prompts)):
            g, j = divmod(start + i, n)
            group, rollout = outcome.groups[g], outcome.groups[g].rollouts[j]
            src = source_of[group.problem_id]
            if group.problem_id != str(inputs[i]["problem_id"]):  # a copy, or a dynamic sampling refill
                prompts[i] = src["prompt"]  # in place: TRL logs these prompts
                inputs[i] = {**inputs[i], "problem_id": group.problem_id, "answers": src["answers"],
                             "prompt": src["prompt"]}
            prompt_ids[i] = list(group.prompt_ids)
            completion_ids[i] = list(rollout.token_ids)
            completions[i] = _as_completion(completions[i], rollout.text)
            if logprobs is not None:
                # Sampling log-probs only exist for sampled tokens: a copy carries its source's; a
                # rescued response gets NaN, which TRL's importance-sampling correction ignores.
                logprobs[i] = _carried_logprobs(everything, group, rollout, j, n)
            final_rewards.append(rewards[g][j])
            final_adv.append(advantages[start + i])
        self._final_rewards, self._final_advantages = final_rewards, final_adv
        result[0], result[1], result[3], result[4] = prompt_ids, completion_ids, completions, logprobs
        return tuple(result)

    def _scored_rows(self, rows: Sequence[Mapping[str, Any]], prompts: Sequence[Any], prompt_ids,
                     completion_ids, logprobs) -> list[dict[str, Any]]:
        """This rank's generated sequences, decoded and scored with the recipe's reward, one dict each."""
        eos_and_pad = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        texts = self._tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        rewards = self.runtime.score(texts, [row["answers"] for row in rows])
        return [
            {
                "problem_id": str(row["problem_id"]),
                "answers": row["answers"],
                "prompt": prompts[i],
                "prompt_ids": list(prompt_ids[i]),
                "completion_ids": list(completion_ids[i]),
                "text": texts[i],
                "reward": rewards[i],
                "truncated": bool(completion_ids[i]) and completion_ids[i][-1] not in eos_and_pad,
                "logprobs": None if logprobs is None else list(logprobs[i]),
            }
            for i, row in enumerate(rows)
        ]

    def _gather(self, local: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every rank's rows, in rank order (the global batch); identical on every rank."""
        if self.accelerator.num_processes == 1:
            return local
        from accelerate.utils import gather_object

        return gather_object(local)

    def _dynamic_sampling(self, groups: list[Group], everything: list[dict[str, Any]], step: int):
        """DAPO dynamic sampling (:mod:`polaris.recipe.dynamic`) on the global batch.

        Each round picks the extra problems on every rank alike (a generator from ``(seed, stage, step,
        round)``), each rank generates an equal share (every problem ``n`` times, as TRL's sampler
        repeats a prompt) and scores it, and the gathered groups with some advantage take the slots of
        the zero-advantage groups. The rows of ``everything`` at a refilled slot are replaced in place by
        the new group's, so the flattening below finds its prompt, tokens and log-probs there. Returns
        the batch, every group sampled this step, and what happened (for the metrics and the audit log).
        """
        rt, n = self.runtime, self.num_generations
        processes, rank = self.accelerator.num_processes, self.accelerator.process_index
        by_id = {str(row["problem_id"]): row for row in rt.pool}
        pool_ids = list(by_id)
        sampled, current = list(groups), list(groups)
        seen = {g.problem_id for g in groups}
        rounds = filled = 0
        while zero_advantage_slots(current) and rounds < rt.dynamic_max_rounds:
            rounds += 1
            missing = len(zero_advantage_slots(current))
            useful = sum(not g.all_equal for g in sampled) / len(sampled)
            count = extra_request(missing, useful, batch_prompts=len(groups), processes=processes)
            rng = random.Random(f"{rt.seed}:{rt.stage}:{step}:dynamic:{rounds}")
            ids = choose_extra_problems(pool_ids, seen, count, rng)
            seen.update(ids)
            share = count // processes
            rows = [by_id[pid] for pid in ids[rank * share:(rank + 1) * share] for _ in range(n)]
            prompts = [row["prompt"] for row in rows]
            out = super()._generate(prompts)
            extra_rows = self._gather(self._scored_rows(rows, prompts, out[0], out[1], out[4]))
            extra = _groups_of(extra_rows, n)
            sampled.extend(extra)
            fill = fill_slots(current, extra)
            for slot, k in fill.placements:
                everything[slot * n:(slot + 1) * n] = extra_rows[k * n:(k + 1) * n]
            current, filled = fill.groups, filled + len(fill.placements)
        missing = len(zero_advantage_slots(current))
        generated = sum(g.n for g in sampled)
        if missing and self.accelerator.is_main_process:
            log(f"[polaris] stage {rt.stage} step {step}: dynamic sampling used its "
                f"{rt.dynamic_max_rounds} extra round(s) (train.dynamic_sampling_max_rounds) and "
                f"{missing} of {len(current)} groups still have all-equal rewards; they stay in the batch "
                f"with zero advantage ({generated} rollouts generated this step)")
        record = {"rounds": rounds, "filled": filled, "missing": missing, "generated": generated}
        return current, sampled, record

    # -- update step -------------------------------------------------------------------------------

    def _skipping(self, step: Callable[..., Any]) -> Callable[..., Any]:
        """``step`` (the backward pass) run except on a batch flagged to skip."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.model.training and self._skip_batch:
                return None
            return step(*args, **kwargs)

        return guarded

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model.training and self._skip_batch:
            import torch

            # No forward pass: no parameter gets a gradient, so the optimizer step changes nothing.
            return torch.zeros((), device=self.accelerator.device, requires_grad=True)
        out = super().compute_loss(model, trim_completion_padding(inputs), return_outputs, num_items_in_batch)
        if self.model.training:
            check_finite_loss(out[0] if isinstance(out, tuple) else out, stage=self.runtime.stage,
                              step=self.state.global_step + 1, checkpoints=self.args.output_dir)
        return out


#: TRL's per-token tensors of a micro-batch, lined up with its completion tokens (tests/test_trl_contract.py).
PER_TOKEN_KEYS = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                  "sampling_per_token_logps", "importance_sampling_ratio", "tool_mask")


def trim_completion_padding(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The micro-batch without the completion columns that are padding in every row.

    TRL pads a process's whole generation batch to its longest completion once, so without this every
    micro-batch would run at that length. Completion padding is on the right and masked out of the
    attention, so dropping it leaves every kept position's log-prob, and the token-sum loss (normalised by
    the generation batch's token count, ``num_items_in_batch``), exactly as they were. Prompts keep their
    left padding: dropping it would shift the positions of models with absolute position embeddings.
    """
    mask = inputs["completion_mask"]
    width = mask.size(1)
    filled = mask.any(dim=0).nonzero()
    keep = int(filled.max()) + 1 if len(filled) else min(1, width)
    if keep == width:
        return dict(inputs)
    out = dict(inputs)
    for key in PER_TOKEN_KEYS:
        value = out.get(key)
        if value is not None and value.dim() >= 2 and value.size(1) == width:
            out[key] = value[:, :keep]
    return out


def check_finite_loss(loss: Any, *, stage: int, step: int, checkpoints: str) -> None:
    """Refuse a NaN or infinite loss before its backward pass: no weight or optimizer moment changes, and the
    last checkpoint stays the newest (a resumed run restarts from it)."""
    import torch

    if not bool(torch.isfinite(loss.detach()).all()):
        from polaris.errors import RunError

        raise RunError(
            f"stage {stage} step {step}: the loss is {loss.detach().float().mean().item()}, so the step is refused "
            f"before its backward pass (no weight was updated); the last checkpoint in {checkpoints} is kept. "
            "Lower train.learning_rate or train.max_grad_norm, check the data, then run the same command to "
            "resume from that checkpoint"
        )


def _groups_of(rows: Sequence[Mapping[str, Any]], n: int) -> list[Group]:
    """Consecutive runs of ``n`` rows (one problem's rollouts, as TRL's sampler orders them) as groups."""
    if len(rows) % n:
        raise RuntimeError(f"global batch of {len(rows)} is not a whole number of groups of {n}")
    return [
        Group(
            problem_id=rows[g * n]["problem_id"],
            ground_truth=rows[g * n]["answers"],
            rollouts=tuple(
                Rollout(text=x["text"], token_ids=tuple(x["completion_ids"]), reward=x["reward"],
                        truncated=x["truncated"])
                for x in rows[g * n : (g + 1) * n]
            ),
            prompt_ids=tuple(rows[g * n]["prompt_ids"]),
            slot=g,
        )
        for g in range(len(rows) // n)
    ]


def _as_completion(original: Any, text: str) -> Any:
    """The decoded completion in the shape TRL produced (plain text or one assistant message)."""
    if isinstance(original, list):
        return [{"role": "assistant", "content": text}]
    return text


def _carried_logprobs(everything: list[dict[str, Any]], group: Group, rollout: Rollout, j: int, n: int) -> list[float]:
    """The sampling log-probs of ``rollout`` (rollout ``j`` of ``group``), one per token, lined up with its tokens.

    They are the log-probs of the row that sampled exactly these tokens: the group's own row, or for a
    substitution copy its source's. A response no row sampled — a rescued one, in its group or carried
    along in a copy — gets NaN, which TRL's importance-sampling correction reads as "no correction" (ratio 1).
    """
    base = group.slot
    if group.copied_from is not None:  # a copy: the source group's rows
        base = next(k // n for k, x in enumerate(everything) if x["problem_id"] == group.problem_id)
    row = everything[base * n + j]
    if row["logprobs"] is not None and tuple(row["completion_ids"]) == rollout.token_ids:
        return list(row["logprobs"])
    return [float("nan")] * len(rollout.token_ids)


def save_runtime_state(runtime: RecipeRuntime, checkpoint_dir: str | Path) -> None:
    """Write the recipe state into a checkpoint, last, so its presence marks the checkpoint complete."""
    with atomic_path(Path(checkpoint_dir) / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(runtime.state_dict()), encoding="utf-8")
