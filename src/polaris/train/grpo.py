"""The GRPO engine adapter: TRL's ``GRPOTrainer`` with the POLARIS recipe in its generation step.

TRL (1.16) has no hook between rewards and advantages, so :class:`PolarisGRPOTrainer` takes over
``_generate`` — the step that turns a batch of prompts into completions — and runs the recipe
there, on the whole global batch, in the order of docs/method.md § Informative batches:

    rollout (TRL) → verify (the recipe's reward) → group → log difficulty → rescue → substitute

then hands TRL the final token ids and the final rewards (through a reward function that returns
them), so rescued and copied rollouts are scored against their *own* ground truth — the defect
of the reference, whose copies were re-scored against the wrong answer. After TRL computes its
advantages we replace them with :func:`polaris.recipe.grpo_advantages` (unbiased std + 1e-6, as
docs/method.md § The objective; TRL adds 1e-4). A batch flagged to skip (at most ⌊B/3⌋ informative groups) runs no
forward or backward pass: no parameter receives a gradient, so AdamW leaves every weight and
moment untouched.

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

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polaris.io import append_jsonl, atomic_path
from polaris.recipe import DifficultyLog, Group, RescueStore, Rollout, batch_advantages, process_batch

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

    def __init__(self, *args: Any, runtime: RecipeRuntime, **kwargs: Any) -> None:
        self.runtime = runtime
        self._final_rewards: list[float] = []
        self._final_advantages: list[float] = []
        self._skip_batch = False
        self._batch_inputs: list[dict[str, Any]] | None = None
        kwargs["reward_funcs"] = [self.polaris_reward]
        super().__init__(*args, **kwargs)
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
        return output

    def _generate(self, prompts: list[Any]):
        result = list(super()._generate(prompts))
        if not self.model.training:
            return tuple(result)
        prompt_ids, completion_ids, _tool_mask, completions, logprobs = result[:5]
        inputs = self._batch_inputs
        assert inputs is not None and len(inputs) == len(prompts)
        from accelerate.utils import gather_object

        n = self.num_generations
        eos_and_pad = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        texts = self._tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        truths = [row["answers"] for row in inputs]
        rewards = self.runtime.score(texts, truths)

        local = [
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
            for i, row in enumerate(inputs)
        ]
        everything = gather_object(local) if self.accelerator.num_processes > 1 else local
        if len(everything) % n:
            raise RuntimeError(f"global batch of {len(everything)} is not a whole number of groups of {n}")

        groups = [
            Group(
                problem_id=everything[g * n]["problem_id"],
                ground_truth=everything[g * n]["answers"],
                rollouts=tuple(
                    Rollout(text=x["text"], token_ids=tuple(x["completion_ids"]), reward=x["reward"],
                            truncated=x["truncated"])
                    for x in everything[g * n : (g + 1) * n]
                ),
                prompt_ids=tuple(everything[g * n]["prompt_ids"]),
                slot=g,
            )
            for g in range(len(everything) // n)
        ]
        step = self.state.global_step + 1  # the optimizer step this batch is for
        rt = self.runtime
        rng = random.Random(f"{rt.seed}:{rt.stage}:{step}")
        outcome = process_batch(
            groups,
            store=rt.store if rt.rescue else None,
            rng=rng,
            rescue=rt.rescue,
            substitute=rt.substitution,
            min_informative=rt.min_informative,
        )
        if self.accelerator.is_main_process:
            rt.difficulty_log.record(rt.stage, step, outcome.accuracies)
        if rt.decisions_path is not None:
            append_jsonl(rt.decisions_path, {
                "stage": rt.stage,
                "step": step,
                "rank": self.accelerator.process_index,
                "skip": outcome.skip,
                "groups": [[g.problem_id, g.copied_from, [r.origin for r in g.rollouts], list(g.rewards)]
                           for g in outcome.groups],
            })
        for key, value in outcome.metrics.items():
            self._metrics["train"][key].append(float(value))
        self._skip_batch = outcome.skip

        # Flatten the final groups back to sequences, keep this rank's slice.
        source_of = {x["problem_id"]: x for x in everything}  # the rows of every problem in the batch
        advantages = [a for adv in batch_advantages(outcome.groups) for a in adv]
        start = self.accelerator.process_index * len(prompts)
        final_rewards, final_adv = [], []
        for i in range(len(prompts)):
            g, j = divmod(start + i, n)
            group, rollout = outcome.groups[g], outcome.groups[g].rollouts[j]
            src = source_of[group.problem_id]
            if group.problem_id != str(inputs[i]["problem_id"]):  # a copy from another group
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
            final_rewards.append(rollout.reward)
            final_adv.append(advantages[start + i])
        self._final_rewards, self._final_advantages = final_rewards, final_adv
        result[0], result[1], result[3], result[4] = prompt_ids, completion_ids, completions, logprobs
        return tuple(result)

    # -- update step -------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model.training and self._skip_batch:
            import torch

            # No forward pass: no parameter gets a gradient, so the optimizer step changes nothing.
            return torch.zeros((), device=self.accelerator.device, requires_grad=True)
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.model.training:
            check_finite_loss(out[0] if isinstance(out, tuple) else out, stage=self.runtime.stage,
                              step=self.state.global_step + 1, checkpoints=self.args.output_dir)
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


def _as_completion(original: Any, text: str) -> Any:
    """The decoded completion in the shape TRL produced (plain text or one assistant message)."""
    if isinstance(original, list):
        return [{"role": "assistant", "content": text}]
    return text


def _carried_logprobs(everything: list[dict[str, Any]], group: Group, rollout: Rollout, j: int, n: int) -> list[float]:
    if rollout.origin == "rescued":
        return [float("nan")] * len(rollout.token_ids)
    base = group.slot if group.copied_from is None else None
    if base is None:  # a copy: find the source group's row for this rollout
        base = next(k // n for k, x in enumerate(everything) if x["problem_id"] == group.problem_id)
    return list(everything[base * n + j]["logprobs"])


def save_runtime_state(runtime: RecipeRuntime, checkpoint_dir: str | Path) -> None:
    """Write the recipe state into a checkpoint, last, so its presence marks the checkpoint complete."""
    with atomic_path(Path(checkpoint_dir) / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(runtime.state_dict()), encoding="utf-8")
