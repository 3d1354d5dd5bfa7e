"""Faults a long run must survive without losing anything: a second run on the same directory, a run
killed while it held the directory, a NaN loss."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("keep", [False, True])
def test_a_finished_stage_deletes_its_checkpoints_unless_asked_to_keep_them(tiny_model_dir, tmp_path, keep):
    from polaris.data.loaders import write_problems
    from polaris.data.problem import Problem

    data = tmp_path / "problems.parquet"
    write_problems([Problem(f"p{i}", f"Compute {i}+1.", str(i + 1)) for i in range(4)], data)
    out = tmp_path / "out"
    argv = ["train", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--temperature", "1.0",
            "--set", "stages[0].steps=3", "--set", "stages[0].max_response_tokens=8", "--set", "train.batch_prompts=2",
            "--set", "train.rollouts=2", "--set", "train.save_steps=1", "--set", f"train.keep_checkpoints={keep}"]
    assert main(argv) == 0
    work = out / "work" / "stage-1"
    # TRL keeps the newest two; the finished stage needs none of them (it resumes from its model and state)
    assert sorted(p.name for p in work.glob("*checkpoint-*")) == (["checkpoint-2", "checkpoint-3"] if keep else [])
    assert (work / "decisions-rank0.jsonl").exists()
    assert (out / "models" / "stage-1" / "model.safetensors").exists()
    assert (out / "models" / "stage-1.state.json").exists()


# -- torn checkpoints, torn logs, a full disk ---------------------------------------------------------


def _checkpoint(root, step: int):
    """A checkpoint folder with the kinds of files a TRL save writes (weights, a torch archive, JSON)."""
    import json

    import torch
    from safetensors.torch import save_file

    from polaris.train.grpo import STATE_FILE

    ckpt = root / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    save_file({"w": torch.full((64, 64), float(step))}, ckpt / "model.safetensors")
    torch.save({"state": {0: {"exp_avg": torch.ones(256) * step}}}, ckpt / "optimizer.pt")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (ckpt / STATE_FILE).write_text(json.dumps({"stage": 1, "store": {}}))
    return ckpt


@pytest.mark.parametrize("damage", ["cut weights", "cut optimizer", "flipped optimizer byte", "torn json"])
def test_a_damaged_latest_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path, damage, capsys):
    from polaris.train.stages import checkpoint_damage, complete_checkpoint

    work = tmp_path / "work"
    _checkpoint(work, 2)
    latest = _checkpoint(work, 4)
    assert checkpoint_damage(latest) is None
    if damage == "cut weights":
        path = latest / "model.safetensors"
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "cut optimizer":
        path = latest / "optimizer.pt"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "flipped optimizer byte":
        import zipfile

        path = latest / "optimizer.pt"
        with zipfile.ZipFile(path) as z:  # a byte inside a stored tensor: only the CRC can tell
            info = next(i for i in z.infolist() if i.file_size >= 1024)
        data = bytearray(path.read_bytes())
        head = info.header_offset  # local header: 30 bytes, then the name and the (padded) extra field
        start = head + 30 + int.from_bytes(data[head + 26 : head + 28], "little") + \
            int.from_bytes(data[head + 28 : head + 30], "little")
        data[start + 10] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path = latest / "trainer_state.json"
        path.write_text('{"global_st')
    assert checkpoint_damage(latest) is not None
    assert complete_checkpoint(work) == work / "checkpoint-2"
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint-2", "torn-checkpoint-4"]
    err = capsys.readouterr().err
    assert "checkpoint-4 is damaged" in err and path.name in err and "falling back to the previous" in err


def test_a_checkpoint_cut_short_by_a_kill_is_removed(tmp_path):
    from polaris.train.grpo import STATE_FILE
    from polaris.train.stages import complete_checkpoint

    work = tmp_path / "work"
    _checkpoint(work, 2)
    (_checkpoint(work, 4) / STATE_FILE).unlink()  # the state is the last file a save writes
    assert complete_checkpoint(work) == work / "checkpoint-2"
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint-2"]


def test_an_append_after_a_torn_last_line_starts_a_line_of_its_own(tmp_path):
    from polaris.io import append_jsonl, read_jsonl

    log = tmp_path / "metrics.jsonl"
    append_jsonl(log, {"step": 1})
    with open(log, "a") as f:
        f.write('{"step": 2, "loss"')  # a kill (or a full disk) in the middle of a write
    assert read_jsonl(log) == [{"step": 1}]
    append_jsonl(log, {"step": 2, "loss": 0.5})
    assert log.read_text() == '{"step": 1}\n{"step": 2, "loss": 0.5}\n'
    torn_only = tmp_path / "torn.jsonl"
    torn_only.write_text('{"st')
    append_jsonl(torn_only, {"step": 1})
    assert read_jsonl(torn_only) == [{"step": 1}]


def test_a_full_disk_is_a_clear_error_with_its_own_exit_status(monkeypatch, capsys):
    import errno

    from polaris import cli, commands

    class SafetensorError(Exception):  # how safetensors reports the operating system's error
        pass

    def full_at_checkpoint(config):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)") from e

    monkeypatch.setattr(commands, "report_main", full_at_checkpoint)
    assert main(["report", "somewhere"]) == cli.DISK_FULL == 3
    err = capsys.readouterr().err
    assert err.startswith("polaris report: no space left on the device")
    assert "run the same command to resume" in err

    def full_writing(config):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/report.md")

    monkeypatch.setattr(commands, "report_main", full_writing)
    assert main(["report", "somewhere"]) == 3
    assert "writing runs/x/report.md" in capsys.readouterr().err

    def bug(config):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(commands, "report_main", bug)
    with pytest.raises(PermissionError):  # any other error keeps its traceback
        main(["report", "somewhere"])


# -- the vLLM server of server mode ---------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_vllm_server_is_named_within_its_timeout():
    import time

    from polaris.train.server import wait_for_server

    port = _free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(RunError, match=rf"the vLLM server at 127\.0\.0\.1:{port} did not answer within 1\.5s"):
        wait_for_server("127.0.0.1", port, 1.5, poll=0.2)
    assert time.monotonic() - start < 1.5 + 1.0


def test_a_vllm_server_that_comes_up_is_waited_for():
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from polaris.train.server import wait_for_server

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health/" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = _free_port()
    server: list[HTTPServer] = []

    def start_late():
        time.sleep(0.6)
        server.append(HTTPServer(("127.0.0.1", port), Health))
        server[0].serve_forever()

    threading.Thread(target=start_late, daemon=True).start()
    try:
        waited = wait_for_server("127.0.0.1", port, 10.0, poll=0.1)
        assert 0.5 < waited < 5.0
    finally:
        if server:
            server[0].shutdown()


def test_a_server_lost_mid_stage_is_named_and_other_errors_are_not():
    from polaris.train.server import lost_server

    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("generation failed") from inner
    except RuntimeError as e:
        lost = lost_server(e, "10.0.0.5", 8001)
    assert isinstance(lost, RunError)
    assert "lost the vLLM server at 10.0.0.5:8001" in str(lost) and "run the same command to resume" in str(lost)
    assert lost_server(ValueError("a bug"), "10.0.0.5", 8001) is None


def test_the_train_step_reaches_the_server_before_any_model_loads(monkeypatch):
    from polaris.config import load_recipe
    from polaris.run import steps

    port = _free_port()
    recipe = load_recipe(None, ["model.path=some/model", "train.engine.backend=vllm", "train.engine.vllm_mode=server",
                                f"train.engine.vllm_port={port}", "train.engine.vllm_server_timeout=0.5"])
    with pytest.raises(RunError, match=rf"127\.0\.0\.1:{port} did not answer within 0\.5s"):
        steps.check_training_engine(recipe)


def test_a_write_that_fills_the_disk_names_its_file(tmp_path, monkeypatch):
    import errno

    from polaris import io

    target = tmp_path / "profile" / "records.jsonl"
    with pytest.raises(OSError) as caught, io.atomic_path(target) as tmp:
        tmp.write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write() reports it: no file
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing half-written stays

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "pwrite", full)
    with pytest.raises(OSError) as caught:
        io.append_jsonl(tmp_path / "metrics.jsonl", {"step": 1})
    assert caught.value.filename == str(tmp_path / "metrics.jsonl")


def test_the_run_summary_is_written_and_read_as_typed_records(tmp_path):
    """summary.json round-trips through RunSummary; a step is recorded running -> done with its result and
    seconds, a failed one keeps its seconds, a finished one is not run again; a damaged file names itself."""
    from polaris.config import load_recipe
    from polaris.errors import RunError
    from polaris.run.layout import (
        PROFILE,
        RunLayout,
        RunSummary,
        StepRecord,
        drop_step,
        eval_step,
        step_stage,
        temperature_step,
        train_step,
    )
    from polaris.run.pipeline import RunDir

    assert (drop_step(2), temperature_step(1), train_step(3), eval_step("stage-2")) == (
        "drop:2", "temperature:1", "train:3", "eval:stage-2")
    assert [step_stage(n) for n in ("drop:2", "train:3", "eval:stage-2", "profile", "train:x")] == [2, 3, None, None,
                                                                                                   None]
    layout = RunLayout(tmp_path / "run")
    run = RunDir(layout, load_recipe(None, ["name=typed"]))
    seen = []

    def profile():
        seen.append(layout.read_summary().status(PROFILE))  # recorded as running while it runs
        return {"k": 8, "histogram": [1, 2]}

    assert run.step(PROFILE, profile) == {"k": 8, "histogram": [1, 2]}
    assert run.step(PROFILE, lambda: pytest.fail("ran twice")) == {"k": 8, "histogram": [1, 2]}
    with pytest.raises(ZeroDivisionError):
        run.step(train_step(1), lambda: 1 / 0)
    run.record_result("stage-1", "arith-test", {"avg@k": 0.25, "k": 8})
    summary = layout.read_summary()
    assert seen == ["running"]
    assert summary.recipe == "typed" and summary.with_status("failed") == [train_step(1)]
    assert summary.result(PROFILE) == {"k": 8, "histogram": [1, 2]} and summary.result(train_step(1)) is None
    assert summary.steps[PROFILE].seconds >= 0 and summary.steps[train_step(1)].status == "failed"
    assert summary.avg_at_k("stage-1", "arith-test") == 0.25 and summary.avg_at_k("stage-2", "arith-test") is None
    assert RunSummary.from_dict(summary.to_dict()) == summary
    raw = json.loads(layout.summary.read_text())
    assert raw["steps"][PROFILE] == {"status": "done", "seconds": summary.steps[PROFILE].seconds,
                                     "result": {"k": 8, "histogram": [1, 2]}}
    assert "result" not in raw["steps"][train_step(1)]
    assert StepRecord("done", 2.5).to_dict() == {"status": "done", "seconds": 2.5}
    layout.summary.write_text(json.dumps({"steps": {"profile": {"status": "half"}}}))
    with pytest.raises(RunError, match=r"summary.json: steps.profile: expected a status of running, done or failed"):
        layout.read_summary()
