"""What the recipe adapter costs per training step, against plain TRL ``GRPOTrainer``.

Three trainers get the same warm-started tiny model, the same problems, the same ``GRPOConfig``
(16 problems x 8 rollouts, 96 new tokens, T=1.0), the same seed and a learning rate of 0, so the
weights never move and step k samples the same rollouts in all three (checked, and reported):

* ``plain`` — TRL's ``GRPOTrainer``, scoring with a reward function that calls our verifier
  (``score_batch``): the baseline.
* ``adapter`` — ``PolarisGRPOTrainer`` with rescue and substitution off: it scores in its
  generation step, gathers the batch, logs difficulty and decisions and computes its own
  advantages, then trains exactly the batch plain TRL trains. **Its step time over plain's is the
  adapter's cost.**
* ``recipe`` — ``PolarisGRPOTrainer`` with rescue and substitution on (skip rule disabled,
  ``min_informative=-1``, so every step runs its update). It trains a *different* batch (copies
  replace all-equal groups), so its whole-step time also reflects that batch's padded length.

Measured in one process, the trainers taking turns for ``--rounds`` rounds so drift on a shared
machine hits all of them:

* **step time** — wall time of each optimizer step (generation, scoring, recipe, forward,
  backward, optimizer), median over the measured steps; the first step of each run warms caches
  and is not counted.
* **the adapter's own work** — time in the adapter's generation step beyond TRL's own generation,
  minus the scoring plain TRL also does, per step, as a share of the plain step: not blurred by
  the noise of whole steps.

Run (about 2 minutes on 2 idle CPU cores)::

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

KINDS = {
    "plain": "plain TRL `GRPOTrainer` (reward function: `score_batch`)",
    "adapter": "`PolarisGRPOTrainer`, rescue and substitution off (trains the same batch)",
    "recipe": "`PolarisGRPOTrainer`, rescue and substitution on",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/tiny-cpu/models/base")
    parser.add_argument("--data", default="runs/tiny-cpu/data/arith-train.parquet")
    parser.add_argument(
        "--steps", type=int, default=16, help="measured steps per trainer and round (+1 warm-up)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (plain, adapter, recipe)")
    parser.add_argument("--out", default=None, help="write the results as markdown here")
    args = parser.parse_args(argv)
    os.environ.setdefault("POLARIS_QUIET", "1")

    import trl
    from transformers import TrainerCallback

    from polaris.config import TrainSettings
    from polaris.data.loaders import load_problems
    from polaris.models.loading import load_model, set_threads
    from polaris.recipe import DifficultyLog
    from polaris.reward import score_batch
    from polaris.train.grpo import PolarisGRPOTrainer, RecipeRuntime
    from polaris.train.stages import StageRun, build_dataset, grpo_config

    set_threads()
    problems = load_problems(args.data)
    train = TrainSettings(batch_prompts=16, rollouts=8, learning_rate=0.0, save_steps=10_000)
    stage = StageRun(
        index=1,
        steps=args.steps + 1,
        temperature=1.0,
        max_response_tokens=96,
        learning_rate=train.learning_rate,
        problems=problems,
    )

    # Per step: time in TRL's generation, in the adapter's generation step, in plain TRL's scoring.
    timers = {"base_generate": 0.0, "adapter_generate": 0.0, "plain_reward": 0.0}
    sampled: dict[str, list[int]] = {}  # per trainer run: a hash of each step's prompts and sampled ids
    trained_length: dict[str, list[int]] = {}  # per kind: longest completion trained each step (the padding)
    current = [""]
    base_generate = trl.GRPOTrainer._generate

    def timed_base_generate(self, prompts):
        t = time.perf_counter()
        try:
            result = base_generate(self, prompts)
        finally:
            timers["base_generate"] += time.perf_counter() - t
        sampled.setdefault(current[0], []).append(
            hash((tuple(map(str, prompts)), tuple(map(tuple, result[1]))))
        )
        if current[0].startswith("plain"):
            trained_length.setdefault("plain", []).append(max(map(len, result[1])))
        return result

    class TimedAdapter(PolarisGRPOTrainer):
        def _generate(self, prompts):
            t = time.perf_counter()
            try:
                result = super()._generate(prompts)
            finally:
                timers["adapter_generate"] += time.perf_counter() - t
            trained_length.setdefault(current[0].split("-")[0], []).append(max(map(len, result[1])))
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
            self.extra: list[float] = []  # adapter: its generation step beyond TRL's; plain: its scoring

        def on_step_begin(self, args, state, control, **kwargs):
            self._t = time.perf_counter()
            for k in timers:
                timers[k] = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._t)
            if timers["adapter_generate"]:
                self.extra.append(timers["adapter_generate"] - timers["base_generate"])
            else:
                self.extra.append(timers["plain_reward"])

    steps: dict[str, list[float]] = {k: [] for k in KINDS}
    extra: dict[str, list[float]] = {k: [] for k in KINDS}
    trl.GRPOTrainer._generate = timed_base_generate  # every trainer: TRL's own generation, timed
    # The adapter samples through polaris.generation.sample_compacting where it can: the same distribution as
    # TRL's generate, not the same draws. Off here, so the three trainers sample identical rollouts and the
    # difference in step time is the adapter's work alone.
    import polaris.generation

    can_compact = polaris.generation.can_compact
    polaris.generation.can_compact = lambda *a, **k: False
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rnd in range(args.rounds):
                for kind in KINDS:
                    current[0] = f"{kind}-{rnd}"
                    model, tokenizer = load_model(args.model)
                    config = grpo_config(stage, train, Path(tmp) / current[0], seed=0, disable_tqdm=True)
                    clock = StepClock()
                    common = dict(
                        model=model,
                        args=config,
                        train_dataset=build_dataset(problems),
                        processing_class=tokenizer,
                        callbacks=[clock],
                    )
                    if kind == "plain":
                        trainer = trl.GRPOTrainer(reward_funcs=[plain_reward], **common)
                    else:
                        on = kind == "recipe"
                        runtime = RecipeRuntime(
                            stage=1,
                            seed=0,
                            rescue=on,
                            substitution=on,
                            min_informative=-1,
                            difficulty_log=DifficultyLog(Path(tmp) / f"{current[0]}.jsonl"),
                            decisions_path=Path(tmp) / f"decisions-{current[0]}.jsonl",
                        )
                        trainer = TimedAdapter(runtime=runtime, **common)
                    trainer.train()
                    steps[kind] += clock.times[1:]  # the first step of each run warms caches
                    extra[kind] += clock.extra[1:]
                    print(
                        f"[overhead] round {rnd} {kind}: median step {statistics.median(clock.times[1:]):.3f}s",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        trl.GRPOTrainer._generate = base_generate
        polaris.generation.can_compact = can_compact

    median = {k: statistics.median(v) for k, v in steps.items()}
    scoring = statistics.median(extra["plain"])
    own = {k: statistics.median(extra[k]) - scoring for k in ("adapter", "recipe")}
    runs = [f"{kind}-{r}" for r in range(args.rounds) for kind in KINDS]
    identical = sum(
        len(set(col)) == 1
        for r in range(args.rounds)
        for col in zip(*(sampled[f"{k}-{r}"] for k in KINDS), strict=True)
    )
    total = sum(len(sampled[f"plain-{r}"]) for r in range(args.rounds))
    assert all(len(sampled[name]) == args.steps + 1 for name in runs)
    command = "python bench/overhead.py " + " ".join(argv if argv is not None else sys.argv[1:])
    ratio = median["adapter"] / median["plain"]
    lines = [
        "# Recipe adapter overhead",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Tiny model, 16 problems x 8 rollouts, 96 new tokens, T=1.0, learning rate 0 (the weights never move), "
        f"{args.rounds} rounds of the three trainers in turn, {args.steps} measured steps each per round. "
        f"Prompts and sampled rollouts were identical in all three trainers at {identical} of {total} steps.",
        "",
        "| trainer | median step (s) | ratio to plain | steps |",
        "|---|---|---|---|",
        *(
            f"| {KINDS[k]} | {median[k]:.3f} | {median[k] / median['plain']:.3f} | {len(steps[k])} |"
            for k in KINDS
        ),
        "",
        f"**Adapter / plain TRL on identical batches: {ratio:.3f} ({100 * (ratio - 1):+.1f}%).**",
        "",
        "The adapter's own work per step, measured inside the step (its generation step minus TRL's "
        "generation, minus the scoring plain TRL also does; medians): "
        f"{1000 * own['adapter']:.1f} ms with the recipe off = {100 * own['adapter'] / median['plain']:.2f}% of "
        f"the plain step; {1000 * own['recipe']:.1f} ms with rescue and substitution on = "
        f"**{100 * own['recipe'] / median['plain']:.2f}%**. Scoring: {1000 * scoring:.1f} ms per step.",
        "",
        "With rescue and substitution on, the trained batch differs from the sampled one (all-equal groups are "
        "replaced by copies of informative ones), so its forward and backward passes differ too: the median "
        f"longest trained completion was {statistics.median(trained_length['plain']):.0f} tokens for plain TRL and "
        f"the recipe-off adapter, {statistics.median(trained_length['recipe']):.0f} with the recipe on. That row "
        "measures a different batch, not the adapter's cost.",
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
