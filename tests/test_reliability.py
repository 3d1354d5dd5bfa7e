"""Faults a long run must survive without losing anything: a second run on the same directory, a run
killed while it held the directory, a NaN loss."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from polaris.cli import main
from polaris.errors import RunError
from polaris.run.layout import RunLayout
from polaris.run.pipeline import RunLock

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def other_process():
    """A live process that is not this one (its pid stands for another polaris run)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_second_run_on_one_directory_is_refused_naming_the_first(tmp_path, other_process, capsys):
    layout = RunLayout(tmp_path / "run")
    layout.root.mkdir()
    layout.lock.write_text(f"{other_process}\n")
    with pytest.raises(RunError, match=rf"in use by another polaris run \(pid {other_process}\)"):
        RunLock(layout.lock).acquire()
    assert main(["run", str(REPO / "recipes" / "tiny-cpu.yaml"), "--run-dir", str(layout.root)]) == 2
    assert f"pid {other_process}" in capsys.readouterr().err
    assert sorted(p.name for p in layout.root.iterdir()) == ["run.lock"]  # nothing else was touched
    assert layout.lock.read_text().strip() == str(other_process)


def test_a_lock_left_by_a_killed_run_is_taken_over_and_released(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    layout = RunLayout(tmp_path / "run")
    layout.root.mkdir()
    layout.lock.write_text(f"{gone.pid}\n")
    lock = RunLock(layout.lock)
    lock.acquire()
    import os

    assert layout.lock.read_text().strip() == str(os.getpid())
    lock.release()
    assert not layout.lock.exists()
    layout.lock.write_text("not a pid\n")  # a torn lock file is stale too
    lock.acquire()
    lock.release()
    assert not layout.lock.exists()


def test_a_nan_loss_is_refused_before_anything_is_updated(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import torch
    import trl
    from safetensors.torch import load_file

    from polaris.data.loaders import write_problems
    from polaris.data.problem import Problem

    original = trl.GRPOTrainer.compute_loss

    def nan_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.state.global_step == 0:  # step 1 trains and is checkpointed; step 2's loss is NaN
            return original(self, model, inputs, return_outputs, num_items_in_batch)
        first = next(p for p in model.parameters() if p.requires_grad)
        return first.sum() * torch.tensor(float("nan"))

    monkeypatch.setattr(trl.GRPOTrainer, "compute_loss", nan_loss)
    data = tmp_path / "problems.parquet"
    write_problems([Problem(f"p{i}", f"Compute {i}+1.", str(i + 1)) for i in range(4)], data)
    out = tmp_path / "out"
    argv = ["train", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--temperature", "1.0",
            "--set", "stages[0].steps=2", "--set", "stages[0].max_response_tokens=8", "--set", "train.batch_prompts=2",
            "--set", "train.rollouts=2", "--set", "train.save_steps=1", "--set", "train.substitution=false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "stage 1 step 2: the loss is nan, so the step is refused before its backward pass" in err
    assert "train.learning_rate" in err
    assert not (out / "models" / "stage-1").exists()  # no final model from a broken stage
    work = out / "work" / "stage-1"
    assert [p.name for p in work.glob("checkpoint-*")] == ["checkpoint-1"]  # the last good one, kept
    assert (work / "checkpoint-1" / "polaris_state.json").exists()
    weights = load_file(next((work / "checkpoint-1").glob("*.safetensors")))
    assert all(torch.isfinite(v).all() for v in weights.values())
