"""A skipped batch is a true no-op: weights and optimizer state are bit-identical across it, and the learning
rate is unchanged (one process; the same guard is what keeps DeepSpeed's engine step from running, see
``PolarisGRPOTrainer._skipping``)."""

from __future__ import annotations

import copy

import torch

from polaris.config import TrainSettings
from polaris.data.problem import Problem
from polaris.io import read_jsonl


def _snapshot(model, optimizer, lr_scheduler) -> dict:
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "lr": list(lr_scheduler.get_last_lr()),
    }


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_a_skipped_batch_changes_no_weight_moment_or_schedule(tiny_model_dir, tmp_path, monkeypatch):
    from accelerate import Accelerator
    from transformers import TrainerCallback

    from polaris.run.layout import RunLayout
    from polaris.train.stages import StageRun, train_stage

    calls = {"n": 0}

    def reward(texts, truths):
        """Step 1 and 3: every reward 0 (no informative group: the batch is skipped); step 2: alternating."""
        calls["n"] += 1
        return [float(i % 2) if calls["n"] == 2 else 0.0 for i in range(len(texts))]

    snapshots: list[tuple[dict, dict]] = []
    backwards: list[int] = []  # accelerate's backward per step: under DeepSpeed it also runs the engine step
    original_backward = Accelerator.backward

    def counting_backward(self, loss, **kwargs):
        backwards[-1] += 1
        return original_backward(self, loss, **kwargs)

    monkeypatch.setattr(Accelerator, "backward", counting_backward)

    class Watch(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
            self.before = _snapshot(model, optimizer, lr_scheduler)
            backwards.append(0)

        def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
            snapshots.append((self.before, _snapshot(model, optimizer, lr_scheduler)))

    problems = [Problem(f"p{i}", f"Compute {i}+{i}.", str(2 * i)) for i in range(12)]
    settings = TrainSettings(batch_prompts=4, rollouts=2, save_steps=100, learning_rate=1e-2, weight_decay=0.1)
    stage = StageRun(index=1, steps=3, temperature=1.0, max_response_tokens=4, learning_rate=1e-2, problems=problems)
    train_stage(tiny_model_dir, stage, settings, RunLayout(tmp_path).stage_paths(1), seed=0, reward=reward,
                callbacks=[Watch()])
    skipped = [r["recipe/skipped"] for r in read_jsonl(RunLayout(tmp_path).metrics) if "train/loss" in r]
    assert skipped == [1.0, 0.0, 1.0]
    assert backwards == [0, 1, 0]  # a skipped batch never reaches accelerate's backward (nor DeepSpeed's step)
    (b1, a1), (b2, a2), (b3, a3) = snapshots
    for before, after in ((b1, a1), (b3, a3)):  # skipped: nothing moved, bit for bit
        assert _same(before["weights"], after["weights"])
        assert _same(before["optimizer"], after["optimizer"])
        assert before["lr"] == after["lr"] and set(after["lr"]) == {1e-2}
    assert not _same(b2["weights"], a2["weights"])  # the informative step did move them (the check can fail)
    assert not _same(b2["optimizer"], a2["optimizer"])  # ... and its moments
