"""Scale-out commands: shipped accelerate configs, the `--launch` command lines, the docs' commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from polaris.config import load_recipe
from polaris.errors import RecipeError
from polaris.run.launch import (
    ACCELERATE_CONFIGS,
    CONFIGS_DIR,
    Command,
    LaunchError,
    accelerate_command,
    accelerate_config_path,
    execute,
    launch_commands,
    resolve_layout,
)

REPO = Path(__file__).resolve().parents[1]
TINY = "recipes/tiny-cpu.yaml"
CPU_CONFIG = '"$(polaris configs cpu-2proc)"'


def write_recipe(tmp_path, extra: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text((REPO / "recipes" / "qwen3-4b.yaml").read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "kind", "processes", "machines"), [
    ("deepspeed-zero3", "DEEPSPEED", 8, 1),
    ("fsdp2", "FSDP", 8, 1),
    ("multinode-zero3", "DEEPSPEED", 32, 4),
    ("cpu-2proc", "MULTI_GPU", 2, 1),  # accelerate's torchrun launcher; the processes join over gloo
])
def test_shipped_configs_load_in_accelerate(name, kind, processes, machines):
    from accelerate.commands.config.config_args import load_config_from_file

    path = accelerate_config_path(name)
    assert path == CONFIGS_DIR / ACCELERATE_CONFIGS[name] and path.is_file()
    config = load_config_from_file(str(path))
    assert (config.distributed_type.name, config.num_processes, config.num_machines) == (kind, processes, machines)
    if name == "cpu-2proc":
        assert config.use_cpu and config.mixed_precision == "no"
    else:
        assert config.mixed_precision == "bf16" and not config.use_cpu
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 3
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2


def test_unknown_config_lists_the_shipped_ones():
    with pytest.raises(LaunchError, match=r"shipped configs: \['cpu-2proc', 'deepspeed-zero3', 'fsdp2', "):
        accelerate_config_path("zero2")


def test_config_path_command_prints_the_path(capsys):
    from polaris.cli import main

    assert main(["configs", "cpu-2proc"]) == 0
    assert capsys.readouterr().out.strip() == str(CONFIGS_DIR / "cpu-2proc.yaml")
    assert main(["configs", "nope"]) == 2
    assert "polaris configs: accelerate config 'nope'" in capsys.readouterr().err


def test_cpu_launch_line_is_the_documented_one():
    """`polaris run recipes/tiny-cpu.yaml --launch --accelerate-config cpu-2proc`, as docs/scale.md gives it."""
    [command] = launch_commands(load_recipe(REPO / TINY), TINY, accelerate_config="cpu-2proc")
    line = command.shell()
    assert line == f"accelerate launch --config_file {CONFIGS_DIR / 'cpu-2proc.yaml'} -m polaris.cli run {TINY}"
    docs = (REPO / "docs" / "scale.md").read_text(encoding="utf-8")
    documented = f"accelerate launch --config_file {CPU_CONFIG} -m polaris.cli run {TINY}"
    assert documented in docs
    assert documented.replace(CPU_CONFIG, str(CONFIGS_DIR / "cpu-2proc.yaml")) == line
    assert f"polaris run {TINY} --launch --accelerate-config cpu-2proc" in docs


def test_documented_cpu_training_command_matches_the_shipped_config():
    """The 2-process `polaris train` example of the docs uses the shipped CPU config."""
    for doc in ("scale.md", "reproducing-polaris-4b.md"):
        text = (REPO / "docs" / doc).read_text(encoding="utf-8")
        assert f"accelerate launch --config_file {CPU_CONFIG} -m polaris.cli train" in text, doc


def test_single_process_without_accelerate():
    [command] = launch_commands(load_recipe(REPO / TINY), TINY, run_dir="runs/x")
    assert command.argv == ["polaris", "run", TINY, "--run-dir", "runs/x"] and command.env == {}


def test_several_machines(tmp_path):
    path = write_recipe(tmp_path, "")
    text = path.read_text(encoding="utf-8").replace(
        "  accelerate_config: deepspeed-zero3   # or fsdp2; 4 machines: docs/reproducing-polaris-4b.md\n"
        "  num_processes: 4\n",
        "  accelerate_config: multinode-zero3\n  main_process_ip: 10.1.2.3\n")
    path.write_text(text, encoding="utf-8")
    recipe = load_recipe(path)
    layout = resolve_layout(recipe)
    assert (layout.num_processes, layout.num_machines, layout.processes_per_machine) == (32, 4, 8)
    c = accelerate_command(recipe, "r.yaml")
    assert c.argv == ["accelerate", "launch", "--config_file", str(CONFIGS_DIR / "multinode-zero3.yaml"),
                      "--machine_rank", "$MACHINE_RANK", "--main_process_ip", "10.1.2.3",
                      "--main_process_port", "29500", "-m", "polaris.cli", "run", "r.yaml", "--run-dir", "$RUN_DIR"]
    assert c.where.startswith("every machine")
    documented = ('accelerate launch --config_file "$(polaris configs multinode-zero3)" '
                  "--machine_rank $MACHINE_RANK --main_process_ip 10.0.0.1 --main_process_port 29500 "
                  '-m polaris.cli run qwen3-4b-4nodes.yaml --run-dir $RUN_DIR')
    assert documented in (REPO / "docs" / "reproducing-polaris-4b.md").read_text(encoding="utf-8")
    recipe.launch.main_process_ip = "10.0.0.1"  # the docs' four-machine settings
    recipe.launch.train_devices = recipe.launch.vllm_devices = None
    line = accelerate_command(recipe, "qwen3-4b-4nodes.yaml").shell()
    assert line == documented.replace('"$(polaris configs multinode-zero3)"',
                                      str(CONFIGS_DIR / "multinode-zero3.yaml"))
    no_ip = load_recipe(path)
    no_ip.launch.main_process_ip = None
    with pytest.raises(LaunchError, match=r"set launch\.main_process_ip"):
        accelerate_command(no_ip, "r.yaml")


def test_colocate_mode_has_no_server_and_sizes_the_engine(tmp_path):
    from polaris.run.plan import build_plan
    from polaris.train.stages import grpo_config

    path = write_recipe(tmp_path, "")
    text = path.read_text(encoding="utf-8").replace("vllm_mode: server ", "vllm_mode: colocate ")
    text = text.replace("vllm_gpu_memory_utilization: 0.9", "vllm_gpu_memory_utilization: 0.35\n"
                        "    vllm_enable_sleep_mode: true").replace("vllm_tensor_parallel_size: 4",
                                                                  "vllm_tensor_parallel_size: 1")
    path.write_text(text, encoding="utf-8")
    recipe = load_recipe(path)
    commands = launch_commands(recipe, "r.yaml")
    assert [c.argv[0] for c in commands] == ["accelerate"]
    stage = build_plan(recipe).stage(3).training(1.5, [])
    c = grpo_config(stage, recipe.train, tmp_path, seed=0, num_processes=4)
    assert c.use_vllm and c.vllm_mode == "colocate" and c.vllm_enable_sleep_mode
    assert (c.vllm_gpu_memory_utilization, c.vllm_tensor_parallel_size) == (0.35, 1)
    assert c.vllm_max_model_length == 1024 + 52224


def test_processes_must_divide_the_batch(tmp_path):
    recipe = load_recipe(REPO / "recipes" / "qwen3-4b.yaml")
    with pytest.raises(RecipeError, match=r"1024 sequences must divide evenly over .* = 24"):
        recipe.launch.num_processes = 24
        resolve_layout(recipe)


def test_documented_4b_commands_are_what_the_recipe_gives():
    """docs/reproducing-polaris-4b.md shows the server and trainer lines of recipes/qwen3-4b.yaml."""
    recipe = load_recipe(REPO / "recipes" / "qwen3-4b.yaml")
    server, trainer = launch_commands(recipe, "recipes/qwen3-4b.yaml")
    docs = (REPO / "docs" / "reproducing-polaris-4b.md").read_text(encoding="utf-8")
    assert server.shell() in docs
    ds = '"$(polaris configs deepspeed-zero3)"'
    assert trainer.shell().replace(str(CONFIGS_DIR / "deepspeed-zero3.yaml"), ds) in docs


def test_execute_runs_the_trainer_and_stops_the_server(tmp_path):
    marker = tmp_path / "server-started"
    server = Command([sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); "
                                            "time.sleep(120)"])
    trainer = Command([sys.executable, "-c", f"import pathlib, time\nfor _ in range(200):\n"
                                             f"    if pathlib.Path({str(marker)!r}).exists(): break\n"
                                             "    time.sleep(0.05)\nraise SystemExit(3)"])
    assert execute([server, trainer], server_log=tmp_path / "logs" / "vllm-server.log") == 3
    assert marker.exists() and (tmp_path / "logs" / "vllm-server.log").exists()
    # the server's process group is gone
    out = subprocess.run(["pgrep", "-f", re.escape(str(marker))], capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_launch_on_several_machines_only_prints(tmp_path, capsys, monkeypatch):
    import polaris.run.launch as launch

    path = write_recipe(tmp_path, "")
    text = path.read_text(encoding="utf-8").replace(
        "  accelerate_config: deepspeed-zero3   # or fsdp2; 4 machines: docs/reproducing-polaris-4b.md\n"
        "  num_processes: 4\n", "  accelerate_config: multinode-zero3\n  main_process_ip: 10.1.2.3\n")
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(launch, "execute", lambda *a, **k: pytest.fail("nothing may start"))
    from polaris.run.layout import RunLayout

    recipe = load_recipe(path)
    assert launch.launch_main(recipe, str(path), RunLayout(tmp_path / "run"), run_dir=None, accelerate_config=None) == 0
    out = capsys.readouterr().out
    assert "--machine_rank $MACHINE_RANK " in out and "--run-dir $RUN_DIR" in out and "nothing was started" in out
