"""A prepared GPU check: the GPU path of Polaris on one (or more) CUDA GPUs, in under 10 minutes.

What it runs, each as ``polaris run`` in a fresh run directory:

1. **colocate** — a Qwen3-architecture model of about 0.6B parameters (Qwen3-0.6B's shapes, random
   weights, the real Qwen3 tokenizer and chat template: nothing is downloaded) trained in bfloat16 with
   gradient checkpointing, 2 stages x 2 steps, every rollout from vLLM: the profile and the temperature
   step (``train.generation_backend: vllm``), the training rollouts (``train.engine: {backend: vllm,
   vllm_mode: colocate}``), and the evaluation with YaRN on vLLM (``eval.backend: vllm``).
2. **server** — the same training with rollouts from a ``trl vllm-serve`` server on GPU 0 and the
   trainer on GPU 1 (``polaris run --launch``). NCCL cannot put the server's rank and the trainer's on
   one GPU, so with one GPU this path is reported as skipped.

It prints one table (and writes it to ``--out``): per path pass/fail/skipped, mean step time, rollout
tokens/s (generated tokens over the steps' time), peak GPU memory (``nvidia-smi``, sampled every 0.5 s)
and the importance-sampling ratio (min/mean/max over the steps).

Run from the repository root on a machine with CUDA, torch, transformers, TRL and vLLM (the ``[vllm]``
extra)::

    python bench/gpu_check.py --out bench/results/gpu-check.md

The Qwen3 tokenizer is read from ``--tokenizer`` (default ``../shared/data/tokenizers/qwen3``, or
``shared/data/tokenizers/qwen3`` inside the repository). ``--cpu-smoke`` runs the colocate path on a
2-layer model in float32 on a CPU (``make vllm-cpu``): it checks the script, not the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from polaris.run.layout import RunLayout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rollouts import build_model  # the same random Qwen3-architecture model as the CPU benches

REPO = Path(__file__).resolve().parent.parent
TOKENIZER_PLACES = (REPO.parent / "shared/data/tokenizers/qwen3", REPO / "shared/data/tokenizers/qwen3")
#: Qwen3-0.6B's shapes (0.6B parameters with its 151,669-token vocabulary, tied embeddings).
GPU_SIZE = {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
            "num_key_value_heads": 8, "head_dim": 128}
CPU_SIZE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 32}

RECIPE = """
name: gpu-check-{path}
seed: 0
model: {{path: "{model}", dtype: {dtype}, native_max_position_embeddings: 2048}}
data: {{train: "{train}"}}
profile: {{k: 4, stop_without_signal: false}}
train:
  batch_prompts: 8
  rollouts: 8
  max_prompt_tokens: 128
  save_steps: 100
  learning_rate: 1.0e-6
  gradient_checkpointing: {checkpointing}
  generation_backend: vllm
  engine: {{backend: vllm, vllm_mode: {mode}, vllm_gpu_memory_utilization: 0.3}}
stages:
  - {{steps: 2, max_response_tokens: {tokens}, temperature: 1.0}}
  - {{steps: 2, max_response_tokens: {tokens2}, temperature: 1.0}}
eval: {{benchmarks: ["{test}"], k: 2, temperature: 0.6, max_new_tokens: {eval_tokens}, yarn_factor: 1.5,
       backend: vllm, evaluate_base: false}}
launch: {{num_processes: 1, train_devices: "1", vllm_devices: "0"}}
"""


def find_tokenizer(given: Path | None) -> Path:
    for place in ([given] if given else TOKENIZER_PLACES):
        if place is not None and (place / "tokenizer.json").is_file():
            return place
    raise SystemExit(f"the Qwen3 tokenizer is not at {given or ' or '.join(map(str, TOKENIZER_PLACES))}; "
                     "pass --tokenizer DIR (a folder with tokenizer.json and its chat template)")


class GpuMemory:
    """Peak memory used on the GPUs while it runs (``nvidia-smi`` every 0.5 s), in MiB."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.peak = max(self.peak, max((int(x) for x in out.split()), default=0))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
            self._stop.wait(0.5)

    def __enter__(self) -> GpuMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def read_metrics(run: RunLayout) -> dict:
    """Mean step time, rollout tokens/s and the IS ratio's range over the training steps of a run."""
    rows = [json.loads(line) for line in run.metrics.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "train/loss" in r]
    seconds = sum(r["train/step_time"] for r in steps)
    tokens = sum(r["rollout/response_length"] * r["rollout/generated"] for r in steps)
    ratio = [(r["trl/sampling/importance_sampling_ratio/min"], r["trl/sampling/importance_sampling_ratio/mean"],
              r["trl/sampling/importance_sampling_ratio/max"]) for r in steps
             if "trl/sampling/importance_sampling_ratio/mean" in r]
    return {
        "steps": len(steps),
        "step_seconds": seconds / len(steps) if steps else None,
        "tokens_per_second": tokens / seconds if seconds else None,
        "is_ratio": (min(r[0] for r in ratio), sum(r[1] for r in ratio) / len(ratio), max(r[2] for r in ratio))
        if ratio else None,
    }


def run_path(path: str, model: Path, work: Path, *, dtype: str, checkpointing: bool, tokens: tuple[int, int, int],
             launch: bool, timeout: float) -> dict:
    """One path through ``polaris run``; its row of the table."""
    root = work / path
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    train, test = root / "train.jsonl", root / "test.jsonl"
    for file, ids in ((train, range(64)), (test, range(100, 108))):
        file.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {2 * i}?",
                                            "answer": str(3 * i)}) + "\n" for i in ids), encoding="utf-8")
    recipe = root / "check.yaml"
    recipe.write_text(RECIPE.format(path=path, model=model, dtype=dtype, train=train, test=test,
                                    checkpointing=str(checkpointing).lower(),
                                    mode="server" if path == "server" else "colocate",
                                    tokens=tokens[0], tokens2=tokens[1], eval_tokens=tokens[2]), encoding="utf-8")
    polaris = Path(sys.executable).parent / "polaris"
    run = RunLayout(root / "run")
    command = [str(polaris), "run", str(recipe), "--run-dir", str(run.root), *(["--launch"] if launch else [])]
    start = time.monotonic()
    with GpuMemory() as memory, open(root / "log.txt", "wb") as log:
        try:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
            status = "pass" if done.returncode == 0 else f"fail (exit {done.returncode}, {root / 'log.txt'})"
        except subprocess.TimeoutExpired:
            status = f"fail (over {timeout:.0f} s, {root / 'log.txt'})"
    row = {"path": path, "status": status, "seconds": time.monotonic() - start, "peak_gpu_mib": memory.peak or None}
    if run.metrics.exists():
        row.update(read_metrics(run))
    if status == "pass":
        summary = run.read_summary()
        row["eval"] = {model: summary.avg_at_k(model, "test") for model in summary.results}
    return row


def table(rows: list[dict], device: str) -> str:
    def num(x, fmt):
        return "-" if x is None else format(x, fmt)

    lines = [
        "# GPU check: the GPU path of Polaris",
        "",
        f"Command: `python bench/gpu_check.py`. Device: {device}.",
        "",
        "| path | status | wall (s) | mean step (s) | rollout tokens/s | peak GPU memory (MiB) | IS ratio min / mean / max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r.get("is_ratio")
        lines.append(f"| {r['path']} | {r['status']} | {num(r.get('seconds'), '.0f')} | "
                     f"{num(r.get('step_seconds'), '.2f')} | {num(r.get('tokens_per_second'), '.0f')} | "
                     f"{num(r.get('peak_gpu_mib'), 'd')} | "
                     f"{'-' if ratio is None else ' / '.join(f'{x:.4f}' for x in ratio)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu-check.md")
    parser.add_argument("--tokenizer", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "polaris-gpu-check")
    parser.add_argument("--timeout", type=float, default=270.0, help="seconds per path")
    parser.add_argument("--cpu-smoke", action="store_true", help="the colocate path on a tiny model on a CPU")
    args = parser.parse_args(argv)
    import torch

    gpus = torch.cuda.device_count()
    if not gpus and not args.cpu_smoke:
        print("no CUDA GPU here: run this on a GPU machine (or --cpu-smoke to check the script on a CPU)",
              file=sys.stderr)
        return 2
    tokenizer = find_tokenizer(args.tokenizer)
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.cpu_smoke:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        model = build_model(args.work / "qwen3-cpu-smoke", CPU_SIZE, tokenizer_dir=tokenizer)
        settings = {"dtype": "float32", "checkpointing": False, "tokens": (16, 24, 32)}
        device = "CPU (--cpu-smoke: a 2-layer model, float32; not a GPU figure)"
    else:
        model = build_model(args.work / "qwen3-0.6b-random", GPU_SIZE, tokenizer_dir=tokenizer, dtype="bfloat16")
        settings = {"dtype": "bfloat16", "checkpointing": True, "tokens": (256, 384, 3200)}
        device = f"{gpus} x {torch.cuda.get_device_name(0)}"
    rows = [run_path("colocate", model, args.work, launch=False, timeout=args.timeout, **settings)]
    if gpus >= 2:
        rows.append(run_path("server", model, args.work, launch=True, timeout=args.timeout, **settings))
    else:
        why = "one GPU" if gpus == 1 else "no GPU"
        rows.append({"path": "server", "status": f"skipped ({why}: server mode needs a GPU for the server and one "
                                                 "for the trainer; NCCL cannot put both ranks on one GPU)"})
    text = table(rows, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    (args.out.with_suffix(".json")).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print(text)
    return 0 if all(r["status"] in ("pass",) or r["status"].startswith("skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
