"""``polaris train`` as users run it: under ``accelerate launch`` with 2 CPU processes (gloo), and
killed with SIGKILL mid-stage then resumed by the same command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polaris.io import read_jsonl

pytestmark = pytest.mark.slow  # training processes on the tiny pipeline (tiny_run)

BIN = Path(sys.executable).parent


def train_args(run: Path, out: Path, steps: int, save_steps: int) -> list[str]:
    settings = {"stages[0].steps": steps, "stages[0].max_response_tokens": 64, "train.batch_prompts": 4,
                "train.rollouts": 4, "train.learning_rate": 1e-4, "train.save_steps": save_steps}
    return ["train", str(run / "models" / "base"), "--data", str(run / "data" / "arith-train.parquet"),
            "--out", str(out), "--temperature", "1.0", *[a for k, v in settings.items() for a in ("--set", f"{k}={v}")]]


def env(threads: int) -> dict[str, str]:
    return {**os.environ, "POLARIS_QUIET": "1", "POLARIS_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}


def test_two_processes_make_the_same_recipe_decisions(tiny_run, tmp_path):
    out = tmp_path / "dist"
    # the command docs/training.md and docs/scale.md give for two CPU processes
    from polaris.run.launch import accelerate_config_path

    cmd = [str(BIN / "accelerate"), "launch", "--config_file", str(accelerate_config_path("cpu-2proc")),
           "-m", "polaris.cli", *train_args(tiny_run, out, steps=3, save_steps=10)]
    done = subprocess.run(cmd, env=env(1), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = read_jsonl(out / "work" / "stage-1" / "decisions-rank0.jsonl")
    rank1 = read_jsonl(out / "work" / "stage-1" / "decisions-rank1.jsonl")
    assert [r["step"] for r in rank0] == [1, 2, 3]
    strip = [{k: v for k, v in r.items() if k != "rank"} for r in rank0]
    assert strip == [{k: v for k, v in r.items() if k != "rank"} for r in rank1]
    # every batch has 4 groups of 4 rollouts, split over both ranks
    assert all(len(r["groups"]) == 4 and all(len(g[2]) == 4 for g in r["groups"]) for r in rank0)
    assert (out / "models" / "stage-1" / "model.safetensors").exists()
    assert [r["step"] for r in read_jsonl(out / "logs" / "metrics.jsonl")] == [1, 2, 3]


def test_sigkill_mid_stage_then_resume(tiny_run, tmp_path):
    out = tmp_path / "resume"
    cmd = [str(BIN / "polaris"), *train_args(tiny_run, out, steps=6, save_steps=2)]
    proc = subprocess.Popen(cmd, env=env(2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    marker = out / "work" / "stage-1" / "checkpoint-2" / "polaris_state.json"
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = [r["step"] for r in read_jsonl(out / "logs" / "metrics.jsonl")]
    assert 2 <= max(killed_at) < 6
    done = subprocess.run(cmd, env=env(2), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["step"] for r in read_jsonl(out / "logs" / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in read_jsonl(out / "work" / "stage-1" / "decisions-rank0.jsonl")] == [1, 2, 3, 4, 5, 6]
    steps = {(r["stage"], r["step"]) for r in read_jsonl(out / "logs" / "difficulty.jsonl")}
    assert steps == {(1, s) for s in range(1, 7)}
    state = json.loads((out / "models" / "stage-1.state.json").read_text())
    assert state["stage"] == 1 and "store" in state
    assert (out / "models" / "stage-1" / "model.safetensors").exists()
    # the finished stage resumes from its model and state: its checkpoints are deleted, its audit log kept
    assert not list((out / "work" / "stage-1").glob("*checkpoint-*"))
    assert (out / "work" / "stage-1" / "decisions-rank0.jsonl").exists()


def test_stage_killed_before_its_first_checkpoint_restarts_with_clean_logs(tiny_run, tmp_path):
    """A kill before the first checkpoint leaves records of steps that will be redone from step 0: the
    restarted stage cuts them, so every step is logged once."""
    from polaris.io import append_jsonl

    out = tmp_path / "restart"
    for step in (1, 2, 3):  # what the killed attempt wrote
        append_jsonl(out / "logs" / "metrics.jsonl", {"stage": 1, "step": step, "train/loss": 9.0})
        append_jsonl(out / "work" / "stage-1" / "decisions-rank0.jsonl", {"stage": 1, "step": step, "stale": True})
    cmd = [str(BIN / "polaris"), *train_args(tiny_run, out, steps=2, save_steps=10)]
    done = subprocess.run(cmd, env=env(2), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = read_jsonl(out / "logs" / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2]
    assert all(r["train/loss"] != 9.0 for r in metrics)
    decisions = read_jsonl(out / "work" / "stage-1" / "decisions-rank0.jsonl")
    assert [r["step"] for r in decisions] == [1, 2] and not any(r.get("stale") for r in decisions)
