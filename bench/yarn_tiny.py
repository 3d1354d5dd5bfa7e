"""Train short, test long on the tiny setting: accuracy past the trained length, with and without YaRN.

The built-in tiny model has ``max_position_embeddings`` 256 and is warm-started on arithmetic of
levels 1–6, whose prompt + worked solution is at most ~110 tokens: no sequence it was trained on
is longer. Here it solves problems with more operations (``arith.sample_problem`` at levels up
to 24), whose prompt + reference solution runs to ~310 tokens, greedily, with

- no YaRN (plain RoPE extrapolation; the baseline),
- YaRN factor 1.5 and 2.0 from ``original_max_position_embeddings`` 256 (the configured context),
- YaRN factor 2.0 from 128 (about the longest sequence actually trained on).

For each setting and level: accuracy (graded by :mod:`polaris.reward`) and its ratio to the
baseline in the same run, the mean number of leading solution steps that match the reference
(a finer signal than the final answer when accuracy is 0), the truncation rate and the mean
response length. Every setting sees the same prompts; greedy decoding makes the numbers
deterministic.

Long problems mix two difficulties: more positions, and more steps than the model learned to
chain. (Placing in-distribution problems after earlier solved turns, to move only the positions,
does not work for this model: it never saw a multi-turn conversation and fails those at any
length, with or without YaRN.)

Run (about a minute on 2 idle CPU cores)::

    python bench/yarn_tiny.py --model /tmp/sft_600 --out bench/results/yarn_tiny.md

``--model`` is any warm-started tiny model folder, e.g. ``runs/tiny-cpu/models/base`` after
``polaris run recipes/tiny-cpu.yaml`` (the warm start alone suffices).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("POLARIS_QUIET", "1")

SETTINGS: list[tuple[str, float | None, int | None]] = [
    ("none", None, None),
    ("yarn 1.5 / 256", 1.5, 256),
    ("yarn 2.0 / 256", 2.0, 256),
    ("yarn 2.0 / 128", 2.0, 128),
]
LEVELS = [4, 6, 8, 12, 16, 20, 24]


def level_problems(level: int, count: int, seed: int):
    from polaris.data import arith

    rng = random.Random(f"yarn-bench:{seed}:{level}")
    return arith.to_problems([arith.sample_problem(rng, level) for _ in range(count)], f"L{level}")


def leading_steps(response: str, solution: str) -> int:
    """How many of the reference's step lines the response reproduces, in order, before the first miss."""
    steps = [line for line in solution.splitlines() if "=" in line]
    lines = [line.strip() for line in response.replace("<think>", "\n").splitlines() if line.strip()]
    n = 0
    for want, got in zip(steps, lines, strict=False):
        if want != got:
            break
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/tmp/sft_600", help="a warm-started tiny model folder")
    parser.add_argument("--problems", type=int, default=32, help="problems per level")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)
    if not Path(args.model, "config.json").is_file():
        print(f"no model folder at {args.model}: warm-start one with `polaris run recipes/tiny-cpu.yaml` "
              "(or any run's models/base) and pass it with --model", file=sys.stderr)
        return 2

    from polaris.backends import BackendOptions, load_backend
    from polaris.config import EvalSettings
    from polaris.data.problem import build_messages
    from polaris.evaluate import score_completions, summarize
    from polaris.generation import SamplingParams, chat_prompts
    from polaris.models.loading import load_tokenizer, set_threads
    from polaris.models.yarn import make_yarn

    set_threads()
    tokenizer = load_tokenizer(args.model)
    by_level = {level: level_problems(level, args.problems, args.seed) for level in LEVELS}
    extent = {}
    for level, ps in by_level.items():
        starts = [len(ids) for ids in chat_prompts(tokenizer, [build_messages(p) for p in ps])]
        solution = [len(tokenizer(p.extra["solution"] + tokenizer.eos_token)["input_ids"]) for p in ps]
        ends = [a + b for a, b in zip(starts, solution, strict=True)]
        extent[level] = (sum(ends) / len(ends), max(ends), sum(e > 256 for e in ends) / len(ends))
    # Every level in one generate call: the tiny model's step time is mostly per-step overhead.
    problems = [p for ps in by_level.values() for p in ps]
    prompts = chat_prompts(tokenizer, [build_messages(p) for p in problems])
    solutions = {p.id: p.extra["solution"] for p in problems}
    settings = EvalSettings(benchmarks=[], k=1, temperature=0.0, top_p=1.0, top_k=0,
                            max_new_tokens=args.max_new_tokens, batch_size=len(problems))
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens, seed=args.seed)
    results: dict[tuple[str, str], dict] = {}
    start = time.monotonic()
    for name, factor, original in SETTINGS:
        backend = load_backend("transformers", args.model, BackendOptions(yarn=make_yarn(factor, original)))
        completions = backend.generate(prompts, params, batch_size=len(prompts), desc=None)
        rows, _ = score_completions(problems, completions, settings)
        for level in LEVELS:
            mine = [r for r in rows if r["problem_id"].startswith(f"L{level}-")]
            s = summarize(mine, settings)
            s["steps"] = sum(leading_steps(r["response"], solutions[r["problem_id"]]) for r in mine) / len(mine)
            results[(name, level)] = s
            print(f"{name:>15}  level {level:>2}: acc {s['avg@k']:.3f}  steps {s['steps']:.2f}  "
                  f"trunc {s['truncated']:.3f}  len {s['mean_length']:.1f}", file=sys.stderr, flush=True)
    seconds = time.monotonic() - start

    lines = [
        f"Model `{args.model}` (max_position_embeddings 256; trained sequences ≤ ~110 tokens), "
        f"{args.problems} problems per level, greedy, max {args.max_new_tokens} new tokens; "
        f"{seconds:.0f} s for the {len(SETTINGS)} settings.",
        "",
        "| level | operations | prompt + reference solution, tokens (mean / max) | share > 256 |",
        "|---|---|---|---|",
        *[f"| {lv} | {lv} | {m:.0f} / {mx} | {share:.2f} |" for lv, (m, mx, share) in extent.items()],
        "",
        "| setting | level | accuracy | vs none | leading steps right | truncated | mean length |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, _, _ in SETTINGS:
        for level in LEVELS:
            s, base = results[(name, level)], results[("none", level)]["avg@k"]
            ratio = f"{s['avg@k'] / base:.2f}" if base > 0 else "—"
            lines.append(f"| {name} | {level} | {s['avg@k']:.3f} | {ratio} | {s['steps']:.2f} | "
                         f"{s['truncated']:.3f} | {s['mean_length']:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        command = "python bench/yarn_tiny.py " + " ".join(argv if argv is not None else sys.argv[1:])
        Path(args.out).write_text(f"# YaRN on the tiny model\n\nCommand: `{command}`\n\n{table}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
