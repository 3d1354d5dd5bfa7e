"""Does the recipe pay off on the tiny setting? Vanilla GRPO vs the full recipe vs the recipe minus
each component vs DAPO dynamic sampling in place of rescue + substitution, from the same warm-started
model, over several seeds, in two regimes of the base model.

The variants (``vanilla``, ``full``, ``no-filter``, ``fixed-temp``, ``no-rescue``, ``no-substitution``,
``dapo``), how each is derived from its regime's recipe and how the runs are compared are in
``bench/ablation_analysis.py``; this script runs them and writes the results. Every variant trains the
same number of steps of 16 problems × 8 rollouts (``dapo`` generates more per step: its extra rounds
are counted); every ``--eval-every`` steps the model under training is evaluated on the held-out
``arith-test`` (avg@8, T = 0.6 as the default recipe's evaluation, 128 new tokens, first 100
problems) by the training run's own validation; step 0 is the warm-started model.

Regimes (``--regime weak|strong|both``, default both):

- ``weak``: ``recipes/tiny-cpu.yaml``, base run ``runs/tiny-cpu`` (600 of 950 warm-start steps,
  levels 1-6: a partially competent model);
- ``strong``: ``recipes/tiny-strong.yaml``, base run ``runs/tiny-strong`` (800 steps; training and
  test problems of levels 1-3, profiled at T=0.8: a model that solves most of its training problems). Its test split
  is easier too, so accuracies are compared within a regime, not across.

Outputs, per regime (``--out``, default ``bench/results``): ``ablation-REGIME.md`` (tables, the
plain-words paragraph, command, timings), ``ablation-REGIME.json`` (every curve and run),
``ablation-REGIME.png`` (avg@8 against training rollouts and against all rollouts, mean ± std over
seeds); and ``ablation-summary.md`` with every regime found there: the base model's difficulty
profile, the full variant's temperature searches, the final table and the paragraph. ``--quick``
writes ``ablation-REGIME-quick.*`` and ``ablation-summary-quick.md`` instead.

Run (from the repository root; resumable: finished variants are reused)::

    .venv/bin/python bench/ablation.py            # 2 regimes x 7 variants x 3 seeds x 3 x 12 steps: ~70 min
    .venv/bin/python bench/ablation.py --quick    # 2 regimes x 3 variants x 1 seed x 2 x 6 steps: ~6.5 min

Time budget (2-core CPU). Measured on the full budget: 24 min of runs in the strong regime, 37 min in
the weak one (its responses are longer, and dapo regenerates more), 68 min in all with the profiles, the
warm starts already made; the estimate below, made before, said 62. From the earlier ablation's results
(git history) of the earlier budget (3 stages × 30 steps, 6 evaluations of all 200 test problems:
vanilla 2.2 min/run, the searched variants 2.4-2.5 min/run) and ``ablation-quick.md`` (3 × 10 steps, 3
evaluations of 100: vanilla 0.8 min, full 1.1 min): a training step of 16 × 8 takes ~0.9 s (budgeted 1.1
s), an evaluation of 100 problems × 8 ~3.3 s, a stage's temperature search ~10.5 s (a fixed
temperature's one measurement ~3.3 s), the per-seed profile of 2048 problems × 8 40-65 s (budgeted 65
s); a ``dapo`` step generates about twice a batch in the weak regime (~45% zero-advantage groups),
budgeted 2.0 s. :func:`estimate_minutes` adds these up; on the earlier budgets it gives 52 min
(measured: 45) and 7.9 min (measured: 6.8), so it errs long by ~15%. Full budget (3 × 12 steps,
evaluation every 12 on 100 problems): vanilla and fixed-temp ~1.0 min/run, the other searched variants
~1.35 min, dapo ~1.9 min, so ~9.3 min of runs + ~1.1 min of profile and step-0 evaluation per regime and
seed: ~62 min for the 42 runs, + ~4 min for each warm start that is missing (runs/tiny-strong: 800
steps; runs/tiny-cpu: 600): ≤ 71 min against 90. ``--quick`` (1 seed, vanilla/full/dapo, 2 × 6 steps,
evaluation every 6): ~0.45 / 0.7 / 0.85 min per run + ~1.1 min of profile and step 0 per regime: ~6.2
min for both regimes against 10 (measured: 6.4 min, profiles included), plus the warm starts, made once,
if missing.

The warm-started model and the task's data come from the regime's base run; what is missing there
is made first (prepare, warm start). ``--recipe``, ``--base-run`` and ``--work`` override one regime's
(so they need ``--regime weak`` or ``strong``). Each variant runs into the regime's work directory
(``runs/ablation-REGIME[-quick]``)/``VARIANT-sSEED`` (a run directory, with the recipe it ran in its
``recipe.yaml``), next to the per-seed caches of the base model's accuracy and difficulty profile.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablation_analysis import (
    BENCH,
    FULL,
    QUICK,
    QUICK_VARIANTS,
    TABLE_NOTES,
    VARIANTS,
    Budget,
    comparisons,
    components_added,
    describe_setting,
    format_markdown,
    format_regime_section,
    plain_words,
    profile_histogram,
    read_searches,
    read_variant,
    results_data,
    summarize,
    uses_profile,
    uses_search,
    variant_recipe,
)
from polaris.config import RecipeConfig, load_recipe
from polaris.errors import PolarisError, RunError, UsageError
from polaris.io import read_json, read_jsonl, write_json
from polaris.run.layout import PREPARE, WARM_START, RunLayout, write_jsonl


@dataclass(frozen=True)
class Regime:
    """One base model the variants are compared from: the recipe it is made by and its run directory."""

    name: str
    recipe: str
    base_run: str
    description: str


REGIMES: dict[str, Regime] = {
    "weak": Regime(
        "weak",
        "recipes/tiny-cpu.yaml",
        "runs/tiny-cpu",
        "Base model: the default warm start (`recipes/tiny-cpu.yaml`: 600 of 950 warm-start steps; "
        "problems of levels 1-6), a partially competent model.",
    ),
    "strong": Regime(
        "strong",
        "recipes/tiny-strong.yaml",
        "runs/tiny-strong",
        "Base model: a longer warm start and an easier task (`recipes/tiny-strong.yaml`: 800 of 950 "
        "warm-start steps; training and test problems of levels 1-3; profiled at T=0.8, the temperature "
        "its search starts training at), meant to solve most of its training problems (the profile below "
        "says how far it does).",
    ),
}


def regimes_of(choice: str) -> list[str]:
    """``both`` -> every regime, in order; a regime's name -> that one."""
    if choice == "both":
        return list(REGIMES)
    if choice not in REGIMES:
        raise UsageError(f"unknown regime {choice!r}; choose from {', '.join([*REGIMES, 'both'])}")
    return [choice]


@dataclass(frozen=True)
class RegimePaths:
    """Where one regime's runs and results go."""

    work: Path
    markdown: Path
    json: Path
    plot: Path


def regime_paths(
    regime: str, *, quick: bool, out: str | Path = "bench/results", runs: str | Path = "runs"
) -> RegimePaths:
    """``runs/ablation-REGIME[-quick]`` and ``OUT/ablation-REGIME[-quick].{md,json,png}``."""
    if regime not in REGIMES:
        raise UsageError(f"unknown regime {regime!r}; choose from {', '.join(REGIMES)}")
    stem = f"ablation-{regime}" + ("-quick" if quick else "")
    out = Path(out)
    return RegimePaths(
        work=Path(runs) / stem,
        markdown=out / f"{stem}.md",
        json=out / f"{stem}.json",
        plot=out / f"{stem}.png",
    )


#: Seconds on a 2-core CPU (the module docstring says where they come from): what
#: :func:`estimate_minutes` adds up.
SECONDS: dict[str, float] = {
    "step": 1.1,  # a training step of 16 problems x 8 rollouts
    "dapo_step": 2.0,  # the same with dynamic sampling's extra rounds
    "eval_problem": 0.033,  # one test problem x 8 samples (100 problems: 3.3 s)
    "search": 10.5,  # one stage's temperature search (5 temperatures x 48 problems x 8)
    "fixed": 3.3,  # one stage's single measurement at a fixed temperature
    "profile": 65.0,  # the per-seed difficulty profile, 2048 problems x 8
    "warm_start": 240.0,  # a missing base run: prepare + warm start
}


def estimate_minutes(
    budget: Budget, variants: Sequence[str], *, regimes: int = 2, warm_starts: int = 0
) -> float:
    """Minutes the bench should take on a 2-core CPU: per regime and seed the profile and step 0's
    evaluation, then every variant's steps, evaluations and per-stage temperature step; plus
    ``warm_starts`` missing base runs."""
    steps = budget.stages * budget.steps_per_stage
    evaluation = (budget.eval_limit or 200) * SECONDS["eval_problem"]
    per_seed = SECONDS["profile"] + evaluation
    for variant in variants:
        step = SECONDS["dapo_step"] if "dynamic" in components_added(variant) else SECONDS["step"]
        per_stage = SECONDS["search"] if uses_search(variant) else SECONDS["fixed"]
        per_seed += steps * step + steps // budget.eval_every * evaluation + budget.stages * per_stage
    return (regimes * len(budget.seeds) * per_seed + warm_starts * SECONDS["warm_start"]) / 60


def summary_path(out: str | Path, *, quick: bool) -> Path:
    """``OUT/ablation-summary[-quick].md``: every regime's results found in ``out``."""
    return Path(out) / ("ablation-summary" + ("-quick" if quick else "") + ".md")


class WorkDir:
    """Where the ablation keeps its runs: one run directory per variant and seed, and per-seed caches.

    Layout::

        base-model.json                    the warm start every run here trained from (sha256)
        base-sSEED-KEY.json                avg@8 of the warm-started model (step 0 of every curve)
        profile-sSEED-KEY.jsonl            the seed's difficulty profile, shared by its variants
        VARIANT-sSEED/                     a run directory (:class:`polaris.run.layout.RunLayout`)

    KEY (:func:`cache_key`) names the warm-started model's weights and the settings the number was
    measured with, so a cache made with other settings (a recipe edited between runs) is not reused.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def stamp(self) -> Path:
        return self.root / "base-model.json"

    def base_accuracy(self, seed: int, key: str) -> Path:
        return self.root / f"base-s{seed}-{key}.json"

    def profile(self, seed: int, key: str) -> Path:
        return self.root / f"profile-s{seed}-{key}.jsonl"

    def run(self, variant: str, seed: int) -> RunLayout:
        return RunLayout(self.root / f"{variant}-s{seed}")


def _layout(run: RunLayout | str | Path) -> RunLayout:
    return run if isinstance(run, RunLayout) else RunLayout(run)


def _work(work: WorkDir | str | Path) -> WorkDir:
    return work if isinstance(work, WorkDir) else WorkDir(work)


# -- the base run ------------------------------------------------------------------------------------


def ensure_base(base_run: RunLayout | Path, recipe: RecipeConfig, *, source: str = "") -> None:
    """The task's data and the warm-started model in ``base_run`` (the run layer's own steps)."""
    from polaris.run import steps
    from polaris.run.pipeline import RunDir
    from polaris.run.plan import build_plan

    base = _layout(base_run)
    if (base.model("base") / "config.json").exists():
        return
    run = RunDir(base, recipe, source=source)
    ctx = steps.Context(build_plan(recipe), base)
    run.step(PREPARE, lambda: steps.prepare(ctx))
    run.step(WARM_START, lambda: steps.warm_start(ctx))


def model_digest(base_run: RunLayout | Path) -> str:
    """sha256 of the warm-started weights: what every variant run and cached number depends on."""
    weights = _layout(base_run).model("base") / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def cache_key(digest: str, settings: dict[str, Any]) -> str:
    """12 hex digits naming a cached measurement: the model's weights (``digest``) and ``settings``."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(f"{digest}\n{text}".encode()).hexdigest()[:12]


def base_accuracy_settings(recipe: RecipeConfig) -> dict[str, Any]:
    """What the step-0 evaluation depends on besides the model and the seed."""
    return {
        "validation": dataclasses.asdict(recipe.train.validation),
        "temperature": recipe.stages[0].val_temperature,
        "dtype": recipe.model.dtype,
    }


def profile_settings(recipe: RecipeConfig) -> dict[str, Any]:
    """What the difficulty profile depends on besides the model and the seed (not ``profile.records``:
    that is where the variants read it from)."""
    from polaris.run.plan import build_plan

    plan = dataclasses.asdict(build_plan(recipe).profile)
    plan.pop("records")
    return {
        "profile": plan,
        "train": recipe.data.train,
        "reward": dataclasses.asdict(recipe.reward),
        "backend": recipe.train.generation_backend,
        "batch_tokens": recipe.train.generation_batch_tokens,
        "dtype": recipe.model.dtype,
    }


def stamp_work(work: WorkDir | Path, base_run: RunLayout | Path) -> None:
    """Tie ``work`` to one warm start: finished runs are reused only while the base model is the same."""
    work, base = _work(work), _layout(base_run)
    digest = model_digest(base)
    recorded = read_json(work.stamp)
    if recorded is not None:
        if recorded["sha256"] != digest:
            raise RunError(
                f"the runs in {work.root} were trained from another warm-started model than "
                f"{base.model('base')}; delete {work.root} or pass another --work"
            )
        return
    work.root.mkdir(parents=True, exist_ok=True)
    write_json(work.stamp, {"sha256": digest, "base_run": str(base.root)})


def base_accuracy(recipe: RecipeConfig, work: WorkDir | Path, base_run: RunLayout | Path) -> float:
    """avg@8 of the warm-started model with the variants' validation settings (cached per seed)."""
    work = _work(work)
    v = recipe.train.validation
    cache = work.base_accuracy(recipe.seed, cache_key(model_digest(base_run), base_accuracy_settings(recipe)))
    cached = read_json(cache)
    if cached is not None:
        return cached["avg@k"]
    from polaris.backends import BackendOptions, load_backend
    from polaris.data.loaders import load_problems
    from polaris.evaluate import evaluate_with_backend
    from polaris.validation import validation_eval_settings

    problems = load_problems(v.benchmark, limit=v.limit)
    backend = load_backend(
        "transformers", recipe.model.path, BackendOptions(dtype=recipe.model.dtype, seed=recipe.seed)
    )
    settings = validation_eval_settings(
        v, temperature=recipe.stages[0].val_temperature, max_new_tokens=v.max_new_tokens
    )
    # the validation callback samples with seed + step; step 0 here
    _, summary = evaluate_with_backend(backend, problems, settings, seed=recipe.seed, desc="eval base")
    write_json(cache, {"avg@k": summary["avg@k"]})
    return summary["avg@k"]


def shared_profile(recipe: RecipeConfig, work: WorkDir | Path, base_run: RunLayout | Path) -> Path:
    """The difficulty profile of the warm-started model at the recipe's seed, made once and reused by
    every variant of that seed (``profile.records``): the profile depends only on the model, the
    data, the seed and the profile settings, which the variants share."""
    from polaris.data.loaders import load_problems
    from polaris.run.plan import build_plan
    from polaris.run.steps import generate_profile

    work = _work(work)
    path = work.profile(recipe.seed, cache_key(model_digest(base_run), profile_settings(recipe)))
    if not path.exists():
        records = generate_profile(
            build_plan(recipe), recipe.model.path, load_problems(recipe.data.train)
        ).records
        write_jsonl(path, (r.to_dict() for r in records))
    return path


def run_variant(recipe: RecipeConfig, run: RunLayout) -> RunLayout:
    """Run (or continue) one variant's recipe into its run directory."""
    from polaris.run.pipeline import run_recipe

    run_recipe(recipe, run.root)
    return run


# -- plot --------------------------------------------------------------------------------------------


def plot(path: Path, stats: dict[str, Any], budget: Budget, regime: str = "") -> None:
    """avg@8 against training rollouts (left) and against all rollouts (right), mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, key, label in ((axes[0], "curve", "training rollouts"), (axes[1], "curve_all", "all rollouts")):
        for v, s in stats.items():
            xs = [x for x, _, _ in s[key]]
            ms = [100 * m for _, m, _ in s[key]]
            sd = [100 * d for _, _, d in s[key]]
            bold = v in ("full", "vanilla", "dapo")
            style = {"linewidth": 2.5} if bold else {"linewidth": 1.2, "linestyle": "--"}
            (line,) = ax.plot(xs, ms, marker="o", markersize=3, label=v, **style)
            if len(s["seeds"]) > 1:
                ax.fill_between(
                    xs,
                    [m - d for m, d in zip(ms, sd, strict=True)],
                    [m + d for m, d in zip(ms, sd, strict=True)],
                    color=line.get_color(),
                    alpha=0.12,
                )
        ax.set_xlabel(label + (" (training + profile + searches)" if key == "curve_all" else ""))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{BENCH} avg@8 (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Tiny setting{f', {regime} regime' if regime else ''}, {budget.name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main --------------------------------------------------------------------------------------------


def profile_histograms(profiles: dict[int, Path]) -> dict[int, list[int]]:
    """The base model's difficulty histogram (solved 0/k..k/k) of each seed, from its profile file."""
    out = {}
    for seed, path in profiles.items():
        hist = profile_histogram(read_jsonl(path))
        if hist:
            out[seed] = hist
    return out


def search_records(work: WorkDir | Path, variants: Sequence[str], seed: int) -> tuple[list[dict], str]:
    """The temperature searches of the full variant's run at ``seed`` (or of the first variant run that
    searched), as dicts, and where they come from."""
    work = _work(work)
    for variant in sorted(variants, key=lambda v: v != "full"):
        if uses_search(variant):
            records = read_searches(work.run(variant, seed))
            if records:
                return [r.to_dict() for r in records], (
                    f"the {variant} variant, seed {seed}; stage 1 measures the base model, stage K the model "
                    "after stage K-1"
                )
    return [], "no variant searched"


def run_regime(
    regime: Regime,
    *,
    recipe_path: Path,
    base_run: Path,
    paths: RegimePaths,
    budget: Budget,
    variants: Sequence[str],
    command: str,
) -> str:
    """Run (or reuse) every variant and seed of one regime, write its results; returns its summary section."""
    from polaris.progress import log

    base_recipe = load_recipe(recipe_path)
    base = RunLayout(base_run.resolve())
    work = WorkDir(paths.work)
    start = time.monotonic()
    ensure_base(base, base_recipe, source=str(recipe_path))
    stamp_work(work, base)
    rollouts_per_step = base_recipe.train.batch_prompts * base_recipe.train.rollouts
    runs, profiles = [], {}
    for seed in budget.seeds:
        # the full variant's settings are the ones the shared steps (step 0, profile) use
        shared = variant_recipe(base_recipe, "full", seed=seed, budget=budget, base_run=base)
        base_acc = base_accuracy(shared, work, base)
        profile = profiles[seed] = shared_profile(shared, work, base)
        for variant in variants:
            t0 = time.monotonic()
            recipe = variant_recipe(
                base_recipe, variant, seed=seed, budget=budget, base_run=base, profile_records=profile
            )
            run = run_variant(recipe, work.run(variant, seed))
            result = read_variant(
                run,
                variant,
                seed,
                base_acc,
                rollouts_per_step=rollouts_per_step,
                profile_used=uses_profile(variant),
                search_used=uses_search(variant),
            )
            runs.append(result)
            print(
                f"[ablation] {regime.name} seed {seed} {variant:16s} avg@8 {100 * result.curve[0][1]:.1f} -> "
                f"{100 * result.curve[-1][1]:.1f}  zero-adv {100 * (result.zero_advantage_share or 0):.1f}%  "
                f"rollouts {result.training_rollouts} (+{result.one_off_rollouts} one-off)  "
                f"({time.monotonic() - t0:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
    wall = (time.monotonic() - start) / 60
    log(f"[ablation] {regime.name} regime done in {wall:.1f} min")
    minutes = sum(r.seconds for r in runs) / 60  # the variant runs' steps, as their summaries record them
    stats = summarize(runs, variants)
    compared = comparisons(runs)
    paragraph = plain_words(compared, regime.name)
    histograms = profile_histograms(profiles)
    searches, searches_from = search_records(work, variants, budget.seeds[0])
    section = format_regime_section(
        regime.name,
        regime.description,
        histograms,
        searches,
        searches_from,
        stats,
        paragraph,
        command,
        budget,
    )
    data = results_data(runs, stats, budget, command, minutes)
    data.update(
        regime=regime.name,
        recipe=str(recipe_path),
        base_run=str(base_run),
        wall_minutes=wall,
        comparisons=compared,
        paragraph=paragraph,
        profile_histograms=histograms,
        temperature_searches=searches,
        summary_section=section,
    )
    paths.json.parent.mkdir(parents=True, exist_ok=True)
    paths.json.write_text(json.dumps(data, indent=1, default=list))
    markdown = format_markdown(
        stats,
        budget,
        command,
        minutes,
        describe_setting(base_recipe, budget),
        regime=regime.name,
        paragraph=paragraph,
    )
    paths.markdown.write_text(markdown, encoding="utf-8")
    plot(paths.plot, stats, budget, regime.name)
    print(markdown)
    return section


def write_summary(out: str | Path, *, quick: bool) -> Path | None:
    """The combined summary of every regime whose results (``ablation-REGIME[-quick].json``) are in ``out``."""
    sections = []
    for name in REGIMES:
        data = read_json(regime_paths(name, quick=quick, out=out).json)
        if data is not None and "summary_section" in data:
            sections.append(data["summary_section"])
    if not sections:
        return None
    lines = [
        "# Ablation on the tiny setting: summary" + (" (--quick)" if quick else ""),
        "",
        "Per regime of the base model: its difficulty profile, the temperature searches, the final table "
        "and what the numbers say in plain words. Full tables and curves: `ablation-REGIME"
        + ("-quick" if quick else "")
        + ".md` beside this file.",
        "",
        *TABLE_NOTES,
        "",
        *sections,
    ]
    path = summary_path(out, quick=quick)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_ablation(args: argparse.Namespace, budget: Budget, command: str) -> None:
    os.environ.setdefault("POLARIS_QUIET", "1")
    from polaris.models.loading import set_threads

    set_threads()
    names = regimes_of(args.regime)
    variants = args.variants or list(QUICK_VARIANTS if args.quick else VARIANTS)
    missing = sum(
        not (RunLayout(args.base_run or REGIMES[n].base_run).model("base") / "config.json").exists()
        for n in names
    )
    print(
        f"[ablation] {', '.join(names)}: {budget.name}, {len(variants)} variants; estimated "
        f"~{estimate_minutes(budget, variants, regimes=len(names), warm_starts=missing):.0f} min on 2 CPU cores"
        + (f" ({missing} warm start(s) to make first)" if missing else ""),
        file=sys.stderr,
        flush=True,
    )
    for name in names:
        regime = REGIMES[name]
        paths = regime_paths(name, quick=args.quick, out=args.out)
        if args.work:
            paths = RegimePaths(Path(args.work), paths.markdown, paths.json, paths.plot)
        run_regime(
            regime,
            recipe_path=Path(args.recipe or regime.recipe),
            base_run=Path(args.base_run or regime.base_run),
            paths=paths,
            budget=budget,
            variants=variants,
            command=command,
        )
    summary = write_summary(args.out, quick=args.quick)
    if summary is not None:
        print(f"[ablation] summary: {summary}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--regime", default="both", choices=[*REGIMES, "both"], help="which base model(s) (default both)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"1 seed, {'/'.join(QUICK_VARIANTS)}, {QUICK.stages} x {QUICK.steps_per_stage} steps (~6 min)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2; --quick: 0)")
    parser.add_argument(
        "--stages",
        type=int,
        help=f"the recipe's first N stages (default {FULL.stages}; --quick: {QUICK.stages})",
    )
    parser.add_argument(
        "--steps-per-stage",
        type=int,
        help=f"optimizer steps per stage (default {FULL.steps_per_stage}; --quick: {QUICK.steps_per_stage})",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        help=f"evaluate every N steps (default {FULL.eval_every}; --quick: {QUICK.eval_every})",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        help=f"default: all; --quick: {' '.join(QUICK_VARIANTS)}",
    )
    parser.add_argument("--recipe", help="the recipe the variants derive from (default: the regime's)")
    parser.add_argument(
        "--base-run",
        help="run directory with the data and warm-started model, made if missing (default: the regime's)",
    )
    parser.add_argument("--work", help="where the variant runs go (default runs/ablation-REGIME[-quick])")
    parser.add_argument("--out", default="bench/results", help="results directory")
    args = parser.parse_args(argv)
    if args.regime == "both" and (args.recipe or args.base_run or args.work):
        parser.error("--recipe, --base-run and --work override one regime's: add --regime weak or strong")

    preset = QUICK if args.quick else FULL
    budget = Budget(
        seeds=tuple(args.seeds or preset.seeds),
        steps_per_stage=args.steps_per_stage or preset.steps_per_stage,
        eval_every=args.eval_every or preset.eval_every,
        eval_limit=preset.eval_limit,
        stages=args.stages or preset.stages,
    )
    if budget.steps_per_stage % budget.eval_every:
        parser.error(
            "--steps-per-stage must be a multiple of --eval-every (every stage ends on an evaluation)"
        )
    command = "python bench/ablation.py" + (" --quick" if args.quick else "")
    if argv is None and len(sys.argv) > 1:
        command = "python bench/ablation.py " + " ".join(sys.argv[1:])
    try:
        run_ablation(args, budget, command)
    except PolarisError as e:
        print(f"ablation: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
