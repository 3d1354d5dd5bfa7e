"""What the recipe adapter costs per training step, against plain TRL ``GRPOTrainer``.

Both trainers get the same warm-started tiny model, the same problems, the same ``GRPOConfig``
(16 problems x 8 rollouts, 96 new tokens, T=1.0) and the same seed, and a learning rate of 0, so
the weights never move and step k samples the same rollouts in both: the batches are identical.
Plain TRL scores them with a reward function that calls the same verifier (``score_batch``); the
adapter scores them in its generation step and then runs the recipe (difficulty log, rescue,
substitution, its own advantages, the audit log). The skip rule is disabled here
(``min_informative=-1``) so every step of both trainers runs its forward and backward pass.

Two measurements, in one process, with the trainers alternating (plain, recipe, plain, recipe) so
drift on a shared machine hits both:

* **step time** — wall time of each optimizer step (generation, scoring, recipe, forward,
  backward, optimizer), median over the measured steps; the first step of each round is warm-up
  and not counted. The ratio recipe/plain is the end-to-end cost.
* **recipe time** — the time the adapter spends in its generation step beyond TRL's own
  generation, minus the scoring plain TRL also does, per step: the recipe's own work, as a share of
  the plain step time. This one is not blurred by the noise of whole steps.

Run (about 3 minutes on 2 idle CPU cores)::

    .venv/bin/python bench/overhead.py --out bench/results/overhead.md

``--model`` defaults to ``runs/tiny-cpu/models/base`` (made by ``make run``; the warm start alone
suffices) and ``--data`` to that run's ``data/arith-train.parquet``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/tiny-cpu/models/base")
    parser.add_argument("--data", default="runs/tiny-cpu/data/arith-train.parquet")
    parser.add_argument("--steps", type=int, default=16, help="measured steps per round (plus one warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (plain, recipe)")
    parser.add_argument("--out", default=None, help="write the results as markdown here")
    args = parser.parse_args(argv)
    os.environ.setdefault("POLARIS_QUIET", "1")

    import trl
    from transformers import TrainerCallback

    from polaris.config import StageSettings, TrainSettings
    from polaris.data.loaders import load_problems
    from polaris.models.loading import load_model, set_threads
    from polaris.recipe import DifficultyLog
    from polaris.reward import score_batch
    from polaris.train.grpo import PolarisGRPOTrainer, RecipeRuntime
    from polaris.train.stages import StagePlan, build_dataset, grpo_config

    set_threads()
    problems = load_problems(args.data)
    train = TrainSettings(batch_prompts=16, rollouts=8, learning_rate=0.0, save_steps=10_000)
    plan = StagePlan(
        index=1,
        settings=StageSettings(steps=args.steps + 1, max_response_tokens=96),
        temperature=1.0,
        problems=problems,
    )

    timers = {"base_generate": 0.0, "adapter_generate": 0.0, "plain_reward": 0.0}
    base_generate = trl.GRPOTrainer._generate
    sampled: dict[str, list[int]] = {}
    trained_length: dict[
        str, list[int]
    ] = {}  # longest completion of each trained batch (sets the padding)  # per trainer run: a hash of each step's sampled token ids

    def timed_base_generate(self, prompts):
        t = time.perf_counter()
        try:
            result = base_generate(self, prompts)
        finally:
            timers["base_generate"] += time.perf_counter() - t
        sampled.setdefault(current[0], []).append(
            hash((tuple(map(str, prompts)), tuple(tuple(c) for c in result[1])))
        )
        if current[0].startswith("plain"):
            trained_length.setdefault("plain", []).append(max(len(c) for c in result[1]))
        return result

    trl.GRPOTrainer._generate = timed_base_generate  # both trainers: TRL's own generation

    class TimedAdapter(PolarisGRPOTrainer):
        def _generate(self, prompts):
            t = time.perf_counter()
            try:
                result = super()._generate(prompts)
            finally:
                timers["adapter_generate"] += time.perf_counter() - t
            trained_length.setdefault("recipe", []).append(max(len(c) for c in result[1]))
            return result

    def plain_reward(prompts, completions, answers, **kwargs):
        t = time.perf_counter()
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        rewards = score_batch(texts, answers, require_think=True)
        timers["plain_reward"] += time.perf_counter() - t
        return rewards

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.extra: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self._t = time.perf_counter()
            for k in timers:
                timers[k] = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._t)
            recipe = (
                timers["adapter_generate"] - timers["base_generate"] if timers["adapter_generate"] else 0.0
            )
            self.extra.append(recipe)

    results: dict[str, list[float]] = {"plain": [], "recipe": []}
    recipe_extra: list[float] = []
    plain_scoring: list[float] = []
    current = [""]
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for kind in ("plain", "recipe"):
                current[0] = f"{kind}-{rnd}"
                model, tokenizer = load_model(args.model)
                config = grpo_config(plan, train, Path(tmp) / f"{kind}-{rnd}", seed=0, disable_tqdm=True)
                clock = StepClock()
                if kind == "plain":
                    trainer = trl.GRPOTrainer(
                        model=model,
                        args=config,
                        reward_funcs=[plain_reward],
                        train_dataset=build_dataset(problems),
                        processing_class=tokenizer,
                        callbacks=[clock],
                    )
                else:
                    runtime = RecipeRuntime(
                        stage=1,
                        seed=0,
                        difficulty_log=DifficultyLog(Path(tmp) / f"d{rnd}.jsonl"),
                        min_informative=-1,
                        decisions_path=Path(tmp) / f"decisions-{rnd}.jsonl",
                    )
                    trainer = TimedAdapter(
                        model=model,
                        args=config,
                        train_dataset=build_dataset(problems),
                        processing_class=tokenizer,
                        runtime=runtime,
                        callbacks=[clock],
                    )
                if kind == "plain":
                    # plain TRL's scoring, measured inside its reward function
                    class Scoring(TrainerCallback):
                        def on_step_end(self, args, state, control, **kwargs):
                            plain_scoring.append(timers["plain_reward"])

                    trainer.add_callback(Scoring())
                trainer.train()
                results[kind] += clock.times[1:]  # the first step warms caches
                if kind == "recipe":
                    recipe_extra.extend(clock.extra[1:])
                print(
                    f"[overhead] round {rnd} {kind}: median step {statistics.median(clock.times[1:]):.3f}s",
                    file=sys.stderr,
                    flush=True,
                )

    plain = statistics.median(results["plain"])
    recipe = statistics.median(results["recipe"])
    scoring = statistics.median(plain_scoring[1:]) if len(plain_scoring) > 1 else 0.0
    own = statistics.median(recipe_extra) - scoring
    identical = sum(
        sampled[f"plain-{r}"][i] == sampled[f"recipe-{r}"][i]
        for r in range(args.rounds)
        for i in range(len(sampled[f"plain-{r}"]))
    )
    total = sum(len(sampled[f"plain-{r}"]) for r in range(args.rounds))
    lines = [
        "# Recipe adapter overhead",
        "",
        f"Command: `python bench/overhead.py {' '.join(argv if argv is not None else sys.argv[1:])}`".replace(
            " `", " `"
        ),
        "",
        f"Tiny model, 16 problems x 8 rollouts, 96 new tokens, T=1.0, lr 0 (identical batches), "
        f"{args.rounds} alternating rounds x {args.steps} measured steps per trainer. "
        f"Prompts and sampled rollouts identical in both trainers at {identical} of {total} steps.",
        "",
        "| trainer | median step (s) | steps |",
        "|---|---|---|",
        f"| plain TRL `GRPOTrainer` | {plain:.3f} | {len(results['plain'])} |",
        f"| `PolarisGRPOTrainer` (rescue + substitution) | {recipe:.3f} | {len(results['recipe'])} |",
        "",
        f"**Step time ratio recipe / plain: {recipe / plain:.3f}** ({100 * (recipe / plain - 1):+.1f}%).",
        "",
        f"Recipe's own work per step (adapter generation step minus TRL's generation minus the scoring both do, "
        f"medians): {1000 * own:.1f} ms = **{100 * own / plain:.2f}% of the plain step**.",
        f"Scoring (both trainers): {1000 * scoring:.1f} ms per step.",
        "",
        "The whole-step ratio also moves with what is trained: substitution replaces all-equal groups by "
        "copies of informative ones, which changes the batch's longest completion and so its padded length "
        f"(median longest completion: plain {statistics.median(trained_length['plain']):.0f} tokens, recipe "
        f"{statistics.median(trained_length['recipe']):.0f}).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
