"""Scale-out: the exact commands that start a recipe on GPUs, from the recipe's settings.

A POLARIS run on real models is one ``polaris run RECIPE`` under ``accelerate launch`` (DeepSpeed
ZeRO-3 or FSDP2, one or several machines), with rollouts from vLLM:

* **server mode** — ``trl vllm-serve`` on dedicated GPUs serves generation; the trainer
  (``GRPOConfig(use_vllm=True, vllm_mode="server")``) sends prompts over HTTP and pushes its
  weights into the server (NCCL) before each generation;
* **colocate mode** — every training process holds a vLLM engine on its own GPU.

Everything here is a pure function of the recipe (tested without a GPU), except :func:`execute`,
which starts the commands on this machine. ``polaris run RECIPE --dry-run`` prints them;
``polaris run RECIPE --launch`` runs them. See ``docs/scale.md``.

Shipped accelerate configs (``src/polaris/configs/accelerate/``; ``polaris configs NAME`` prints a
config's path):

- ``deepspeed-zero3`` — 1 machine × 8 GPUs, DeepSpeed ZeRO-3, bf16;
- ``fsdp2`` — 1 machine × 8 GPUs, PyTorch FSDP2 (full shard), bf16;
- ``multinode-zero3`` — a template for 4 machines × 8 GPUs, ZeRO-3 (set the address of machine 0);
- ``cpu-2proc`` — 2 processes on one CPU machine (gloo), the distributed test path.

Choices
-------
- The vLLM server is started once for the whole run with the longest stage's context
  (``max_prompt_tokens`` + the longest ``max_response_tokens``) and, when the model's positions are
  raised (docs/method.md § Multi-stage training), ``--hf-overrides '{"max_position_embeddings": N}'``. It serves the recipe's base
  model; the trainer replaces the weights before every generation, so later stages need no restart.
- Rollouts never use YaRN (train short); evaluation does (:func:`polaris.run.plan.yarn_settings`,
  docs/method.md § Train short, test long).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polaris.config import RecipeConfig, batch_split, stage_context
from polaris.errors import PolarisError

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs" / "accelerate"

#: Name -> file of the accelerate configs shipped with polaris.
ACCELERATE_CONFIGS: dict[str, str] = {
    "deepspeed-zero3": "deepspeed-zero3.yaml",
    "fsdp2": "fsdp2.yaml",
    "multinode-zero3": "multinode-zero3.yaml",
    "cpu-2proc": "cpu-2proc.yaml",
}

#: The bind address of the vLLM server: reachable from the other machines of a multi-machine run.
SERVER_BIND = "0.0.0.0"


class LaunchError(PolarisError, ValueError):
    """A launch setting cannot work; the message says what to change."""


def accelerate_config_path(name: str) -> Path:
    """A shipped config by name, or an existing file; else the list of valid names."""
    if name in ACCELERATE_CONFIGS:
        return CONFIGS_DIR / ACCELERATE_CONFIGS[name]
    path = Path(name)
    if path.is_file():
        return path
    raise LaunchError(
        f"accelerate config {name!r}: not a shipped config and no such file; "
        f"shipped configs: {sorted(ACCELERATE_CONFIGS)}, or a path to an accelerate config file"
    )


def read_accelerate_config(name: str) -> dict[str, Any]:
    import yaml

    path = accelerate_config_path(name)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise LaunchError(f"{path}: not an accelerate config (expected a mapping)")
    return data


# -- the process layout --------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How the training processes are spread, resolved from the recipe and its accelerate config."""

    config: Path | None
    num_processes: int
    num_machines: int
    main_process_ip: str | None
    main_process_port: int | None
    file_num_processes: int | None = None
    file_num_machines: int | None = None

    @property
    def processes_per_machine(self) -> int:
        return self.num_processes // self.num_machines


def resolve_layout(recipe: RecipeConfig, accelerate_config: str | None = None) -> Layout:
    """The layout of ``recipe`` (``accelerate_config`` overrides ``launch.accelerate_config``)."""
    launch = recipe.launch
    name = accelerate_config or launch.accelerate_config
    if name is None:
        return Layout(None, launch.num_processes or 1, launch.num_machines or 1, launch.main_process_ip,
                      launch.main_process_port)
    data = read_accelerate_config(name)
    file_processes = data.get("num_processes")
    file_machines = data.get("num_machines")
    processes = launch.num_processes or file_processes or 1
    machines = launch.num_machines or file_machines or 1
    if processes % machines:
        raise LaunchError(f"launch.num_processes {processes} must be a multiple of launch.num_machines {machines}")
    batch_split(recipe.train, processes, key="training processes (launch.num_processes or the accelerate config)")
    return Layout(accelerate_config_path(name), processes, machines,
                  launch.main_process_ip or data.get("main_process_ip"),
                  launch.main_process_port or data.get("main_process_port"), file_processes, file_machines)


# -- commands ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command line and the environment it needs (on top of the caller's)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    where: str = "this machine"

    def shell(self) -> str:
        """The line to paste into a shell (``$VARIABLE`` placeholders are left for the shell to expand)."""
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        words = " ".join(a if re.fullmatch(r"\$[A-Z_]+", a) else shlex.quote(a) for a in self.argv)
        return (prefix + " " if prefix else "") + words


def accelerate_command(recipe: RecipeConfig, recipe_path: str, *, run_dir: str | None = None,
                       overrides: Sequence[str] = (),
                       accelerate_config: str | None = None, machine_rank: int | str | None = None) -> Command:
    """``accelerate launch --config_file ... -m polaris.cli run RECIPE`` (or ``polaris run`` alone)."""
    layout = resolve_layout(recipe, accelerate_config)
    if run_dir is None and layout.num_machines > 1:
        run_dir = "$RUN_DIR"  # every machine must write into the same directory: a shared file system
    inner = ["-m", "polaris.cli", "run", str(recipe_path)] + (["--run-dir", str(run_dir)] if run_dir else [])
    inner += [a for o in overrides for a in ("--set", o)]
    env = {"CUDA_VISIBLE_DEVICES": recipe.launch.train_devices} if recipe.launch.train_devices else {}
    if layout.config is None:
        return Command(["polaris", *inner[2:]], env)
    argv = ["accelerate", "launch", "--config_file", str(layout.config)]
    if layout.num_processes != layout.file_num_processes:
        argv += ["--num_processes", str(layout.num_processes)]
    if layout.num_machines != (layout.file_num_machines or 1):
        argv += ["--num_machines", str(layout.num_machines)]
    where = "this machine"
    if layout.num_machines > 1:
        if not layout.main_process_ip:
            raise LaunchError("several machines: set launch.main_process_ip to the address of machine 0")
        rank = "$MACHINE_RANK" if machine_rank is None else str(machine_rank)
        argv += ["--machine_rank", rank, "--main_process_ip", layout.main_process_ip]
        where = (f"every machine (MACHINE_RANK 0..{layout.num_machines - 1}; RUN_DIR: one run directory on a file "
                 "system every machine sees)")
    if recipe.launch.main_process_port is not None or layout.num_machines > 1:
        argv += ["--main_process_port", str(layout.main_process_port or 29500)]
    return Command(argv + inner, env, where)


def server_context(recipe: RecipeConfig) -> int | None:
    """The vLLM server's ``max_model_len``: the longest stage's prompt + response."""
    contexts = [stage_context(recipe, i) for i in range(len(recipe.stages))]
    known = [c for c in contexts if c is not None]
    return max(known) if known else None


def vllm_hf_overrides(recipe: RecipeConfig) -> dict[str, Any]:
    """Config overrides of the rollout engine: the raised positions (docs/method.md § Multi-stage training), never YaRN."""
    raised = recipe.model.max_position_embeddings
    return {"max_position_embeddings": raised} if raised else {}


def vllm_serve_args(recipe: RecipeConfig) -> list[str]:
    """Arguments of ``trl vllm-serve`` for the recipe's rollouts (server mode)."""
    engine = recipe.train.engine
    if recipe.builtin_model:
        raise LaunchError("the built-in tiny model generates with transformers; vLLM serves real models only")
    args = ["--model", recipe.model.path, "--host", SERVER_BIND, "--port", str(engine.vllm_port),
            "--tensor-parallel-size", str(engine.vllm_tensor_parallel_size),
            "--gpu-memory-utilization", str(engine.vllm_gpu_memory_utilization),
            "--dtype", recipe.model.dtype]
    context = server_context(recipe)
    if context is not None:
        args += ["--max-model-len", str(context)]
    overrides = vllm_hf_overrides(recipe)
    if overrides:
        # not a `trl vllm-serve` option: TRL forwards unknown arguments to `vllm serve` as they are
        args += ["--hf-overrides", json.dumps(overrides)]
    return args


def vllm_serve_command(recipe: RecipeConfig, *, machines: int = 1) -> Command | None:
    """The vLLM server of server mode (``None`` for colocate mode or the transformers backend)."""
    engine = recipe.train.engine
    if engine.backend != "vllm" or engine.vllm_mode != "server":
        return None
    env = {"CUDA_VISIBLE_DEVICES": recipe.launch.vllm_devices} if recipe.launch.vllm_devices else {}
    where = "this machine" if machines == 1 else f"machine 0 ({engine.vllm_host})"
    return Command(["trl", "vllm-serve", *vllm_serve_args(recipe)], env, where)


def launch_commands(recipe: RecipeConfig, recipe_path: str, *, run_dir: str | None = None,
                    accelerate_config: str | None = None, overrides: Sequence[str] = ()) -> list[Command]:
    """The commands of a run, in start order: the vLLM server (server mode), then the trainer."""
    machines = resolve_layout(recipe, accelerate_config).num_machines
    server = vllm_serve_command(recipe, machines=machines)
    trainer = accelerate_command(recipe, recipe_path, run_dir=run_dir, accelerate_config=accelerate_config,
                                 overrides=overrides)
    return [c for c in (server, trainer) if c is not None]


# -- running the commands ---------------------------------------------------------------------------


def _executable(name: str) -> str:
    """``name`` from this Python's bin directory when it is there (the venv's accelerate/trl)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def execute(commands: Sequence[Command], *, server_log: Path) -> int:
    """Start the vLLM server (if any) in the background, run the trainer, stop the server.

    The server's output goes to ``server_log``; the trainer waits for it to come up
    (``train.engine.vllm_server_timeout``). Returns the trainer's exit status.
    """
    import signal

    *servers, trainer = commands
    started: list[subprocess.Popen] = []
    server_log.parent.mkdir(parents=True, exist_ok=True)
    try:
        for server in servers:
            log = open(server_log, "ab")  # noqa: SIM115 - closed with the process
            started.append(subprocess.Popen([_executable(server.argv[0]), *server.argv[1:]],
                                            env={**os.environ, **server.env}, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True))
            print(f"[polaris] vLLM server started (pid {started[-1].pid}), log: {server_log}",
                  flush=True)
        done = subprocess.run([_executable(trainer.argv[0]), *trainer.argv[1:]], env={**os.environ, **trainer.env})
        return done.returncode
    finally:
        for proc in started:  # only the process groups started here
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def launch_main(recipe: RecipeConfig, recipe_path: str, layout, *, run_dir: str | None,
                accelerate_config: str | None, overrides: Sequence[str] = ()) -> int:
    """``polaris run RECIPE --launch``: print the commands, then run them here (one machine)."""
    commands = launch_commands(recipe, recipe_path, run_dir=run_dir, accelerate_config=accelerate_config,
                               overrides=overrides)
    for c in commands:
        print(f"# on {c.where}\n{c.shell()}", flush=True)
    if any(c.where != "this machine" for c in commands):
        print("[polaris] several machines: run each command above where it says (the run directory on a "
              "shared file system); nothing was started", flush=True)
        return 0
    return execute(commands, server_log=layout.server_log)
