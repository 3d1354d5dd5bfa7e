"""A skipped batch is a true no-op: weights and optimizer state are bit-identical across it, and the learning
rate is unchanged, in one process and on each of two gloo processes (the same guard is what keeps
DeepSpeed's engine step from running, see ``PolarisGRPOTrainer._skipping``)."""

from __future__ import annotations

import copy
import importlib.util

import pytest
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


TWO_PROCESS_SCRIPT = '''
import hashlib, json, os, sys
import torch
from transformers import TrainerCallback
from polaris.config import TrainSettings
from polaris.data.problem import Problem
from polaris.run.layout import RunLayout
from polaris.train.stages import StageRun, train_stage

model_dir, out = sys.argv[1], sys.argv[2]
rank = int(os.environ["RANK"])
calls = {"n": 0}

def reward(texts, truths):
    """Steps 1 and 3: every reward 0 on both ranks (the batch is skipped); step 2: alternating."""
    calls["n"] += 1
    return [float(i % 2) if calls["n"] == 2 else 0.0 for i in range(len(texts))]

def digest(model, optimizer, lr_scheduler):
    """Hashes of this rank's weights (its ZeRO-3 shard under DeepSpeed) and of its AdamW moments."""
    h = hashlib.sha256()
    for _, p in sorted(model.named_parameters()):
        h.update(getattr(p, "ds_tensor", p).detach().float().contiguous().numpy().tobytes())
    inner = optimizer
    while hasattr(inner, "optimizer"):  # accelerate's wrapper, DeepSpeed's ZeRO optimizer, then torch's AdamW
        inner = inner.optimizer
    moments = hashlib.sha256()
    for state in inner.state.values():
        for key in sorted(state):
            value = state[key]
            moments.update(value.float().contiguous().numpy().tobytes() if torch.is_tensor(value) else repr(value).encode())
    return {"weights": h.hexdigest(), "optimizer": moments.hexdigest(), "lr": list(lr_scheduler.get_last_lr())}

class Watch(TrainerCallback):
    def on_step_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        self.before = digest(model, optimizer, lr_scheduler)

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        with open(f"{out}/steps-rank{rank}.jsonl", "a") as f:
            f.write(json.dumps({"before": self.before, "after": digest(model, optimizer, lr_scheduler)}) + "\\n")

problems = [Problem(f"p{i}", f"Compute {i}+{i}.", str(2 * i)) for i in range(12)]
settings = TrainSettings(batch_prompts=4, rollouts=2, save_steps=100, learning_rate=1e-2, weight_decay=0.1)
stage = StageRun(index=1, steps=3, temperature=1.0, max_response_tokens=4, learning_rate=1e-2, problems=problems)
train_stage(model_dir, stage, settings, RunLayout(out).stage_paths(1), seed=0, reward=reward, callbacks=[Watch()])
'''


#: DeepSpeed ZeRO-3 on 2 CPU processes (DeepSpeed's CPU accelerator, gloo), no offload.
ZERO3_CPU = """compute_environment: LOCAL_MACHINE
deepspeed_config: {offload_optimizer_device: none, offload_param_device: none, zero3_init_flag: false, zero_stage: 3}
distributed_type: DEEPSPEED
mixed_precision: 'no'
num_machines: 1
num_processes: 2
machine_rank: 0
main_training_function: main
rdzv_backend: static
same_network: true
use_cpu: true
"""


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["gloo", pytest.param("zero3", marks=[pytest.mark.deepspeed, pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed is not installed (make test-deepspeed)")])])
def test_a_skipped_batch_is_a_no_op_on_both_of_two_processes(engine, tiny_model_dir, tmp_path):
    """The same proof under ``accelerate launch`` with 2 CPU processes: plain gloo, and DeepSpeed ZeRO-3 (its
    engine step would apply weight decay and momentum on a zero gradient). On each rank the weights (ZeRO-3: the
    rank's shard) and the AdamW moments hash the same before and after a skipped step and differ across the
    informative one; both ranks agree."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from polaris.run.launch import accelerate_config_path
    from polaris.run.layout import RunLayout

    config = accelerate_config_path("cpu-2proc")
    extra_env = {}
    if engine == "zero3":
        config = tmp_path / "zero3-cpu.yaml"
        config.write_text(ZERO3_CPU, encoding="utf-8")
        extra_env = {"DS_ACCELERATOR": "cpu"}
    script = tmp_path / "two_process_skip.py"
    script.write_text(TWO_PROCESS_SCRIPT, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
           str(config), str(script), str(tiny_model_dir), str(out)]
    done = subprocess.run(cmd, env={**os.environ, "POLARIS_QUIET": "1", "POLARIS_THREADS": "1",
                                    "HF_HUB_OFFLINE": "1", **extra_env}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [[json.loads(line) for line in (out / f"steps-rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    skipped = [r["recipe/skipped"] for r in read_jsonl(RunLayout(out).metrics) if "train/loss" in r]
    assert skipped == [1.0, 0.0, 1.0]
    for steps in ranks:
        assert len(steps) == 3
        for i in (0, 2):  # skipped: weights, moments and learning rate hash the same
            assert steps[i]["before"] == steps[i]["after"]
        assert steps[1]["before"]["weights"] != steps[1]["after"]["weights"]  # the informative step moved them
        assert steps[1]["before"]["optimizer"] != steps[1]["after"]["optimizer"]
    if engine == "gloo":  # (ZeRO-3: each rank holds a different shard)
        assert [s["after"]["weights"] for s in ranks[0]] == [s["after"]["weights"] for s in ranks[1]]
