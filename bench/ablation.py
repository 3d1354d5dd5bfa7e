"""Does the recipe pay off on the tiny setting? Vanilla GRPO vs the full recipe vs the recipe minus
each component, at the same rollout budget, from the same warm-started model, over several seeds.

The variants (``full``, ``no-filter``, ``fixed-temp``, ``no-rescue``, ``no-substitution``,
``vanilla``), how each is derived from ``recipes/tiny-cpu.yaml`` and how the runs are compared are
in :mod:`polaris.run.ablation`; this script runs them and writes the results. Every variant trains
the same number of steps of 16 problems × 8 rollouts; every ``--eval-every`` steps the model under
training is evaluated on the held-out ``arith-test`` (avg@8, T = 0.6 as the default recipe's
evaluation, 128 new tokens) by the training run's own validation; step 0 is the warm-started model.

Outputs (``--out``, default ``bench/results``): ``ablation.md`` (tables, command, timings),
``ablation.json`` (every curve), ``ablation.png`` (avg@8 against training rollouts, mean ± std
over seeds). ``--quick`` writes ``ablation-quick.*`` instead.

Run (from the repository root; resumable: finished variants are reused)::

    .venv/bin/python bench/ablation.py            # 6 variants x 3 seeds x 3 stages x 30 steps, ~55 min
    .venv/bin/python bench/ablation.py --quick    # 6 variants x 1 seed x 3 stages x 10 steps, ~10 min

The warm-started model and the task's data come from ``--base-run`` (default ``runs/tiny-cpu``, the
directory ``make run`` fills); what is missing there is made first (prepare, warm start: ~3 min).
Each variant runs into ``--work``/``VARIANT-sSEED`` (a run directory, with the recipe it ran in its
``recipe.yaml``), next to the per-seed caches of the base model's accuracy and difficulty profile.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polaris.config import RecipeConfig, load_recipe
from polaris.errors import PolarisError, RunError
from polaris.io import read_json, write_json
from polaris.run.ablation import (
    BENCH,
    FULL,
    QUICK,
    VARIANTS,
    Budget,
    describe_setting,
    format_markdown,
    read_variant,
    results_data,
    summarize,
    uses_profile,
    uses_search,
    variant_recipe,
)
from polaris.run.layout import RunLayout, write_jsonl


class WorkDir:
    """Where the ablation keeps its runs: one run directory per variant and seed, and per-seed caches.

    Layout::

        base-model.json                    the warm start every run here trained from (sha256)
        base-sSEED-LIMIT-DIGEST.json       avg@8 of the warm-started model (step 0 of every curve)
        profile-sSEED-DIGEST.jsonl         the seed's difficulty profile, shared by its variants
        VARIANT-sSEED/                     a run directory (:class:`polaris.run.layout.RunLayout`)
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def stamp(self) -> Path:
        return self.root / "base-model.json"

    def base_accuracy(self, seed: int, limit: int | None, digest: str) -> Path:
        return self.root / f"base-s{seed}-{limit or 'all'}-{digest[:12]}.json"

    def profile(self, seed: int, digest: str) -> Path:
        return self.root / f"profile-s{seed}-{digest[:12]}.jsonl"

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
    run.step("prepare", lambda: steps.prepare(ctx))
    run.step("warm_start", lambda: steps.warm_start(ctx))


def model_digest(base_run: RunLayout | Path) -> str:
    """sha256 of the warm-started weights: what every variant run and cached number depends on."""
    weights = _layout(base_run).model("base") / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()


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
    cache = work.base_accuracy(recipe.seed, v.limit, model_digest(base_run))
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
    path = work.profile(recipe.seed, model_digest(base_run))
    if not path.exists():
        records = generate_profile(build_plan(recipe), recipe.model.path, load_problems(recipe.data.train)).records
        write_jsonl(path, (r.to_dict() for r in records))
    return path


def run_variant(recipe: RecipeConfig, run: RunLayout) -> RunLayout:
    """Run (or continue) one variant's recipe into its run directory."""
    from polaris.run.pipeline import run_recipe

    run_recipe(recipe, run.root)
    return run


# -- plot --------------------------------------------------------------------------------------------


def plot(path: Path, stats: dict[str, Any], budget: Budget) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for v, s in stats.items():
        xs = [x for x, _, _ in s["curve"]]
        ms = [100 * m for _, m, _ in s["curve"]]
        sd = [100 * d for _, _, d in s["curve"]]
        style = {"linewidth": 2.5} if v in ("full", "vanilla") else {"linewidth": 1.2, "linestyle": "--"}
        (line,) = ax.plot(xs, ms, marker="o", markersize=3, label=v, **style)
        if len(s["seeds"]) > 1:
            ax.fill_between(
                xs,
                [m - d for m, d in zip(ms, sd, strict=True)],
                [m + d for m, d in zip(ms, sd, strict=True)],
                color=line.get_color(),
                alpha=0.12,
            )
    ax.set_xlabel("training rollouts")
    ax.set_ylabel(f"{BENCH} avg@8 (%)")
    ax.set_title(f"Tiny setting, {budget.name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main --------------------------------------------------------------------------------------------


def run_ablation(args: argparse.Namespace, budget: Budget, command: str) -> None:
    recipe_path = Path(args.recipe)
    base_recipe = load_recipe(recipe_path)
    base = RunLayout(Path(args.base_run).resolve())
    work = WorkDir(args.work or ("runs/ablation-quick" if args.quick else "runs/ablation"))
    out = Path(args.out)
    suffix = "-quick" if args.quick else ""
    os.environ.setdefault("POLARIS_QUIET", "1")

    from polaris.models.loading import set_threads
    from polaris.progress import log

    set_threads()
    start = time.monotonic()
    ensure_base(base, base_recipe, source=str(recipe_path))
    stamp_work(work, base)
    rollouts_per_step = base_recipe.train.batch_prompts * base_recipe.train.rollouts
    runs = []
    for seed in budget.seeds:
        # the full variant's settings are the ones the shared steps (step 0, profile) use
        shared = variant_recipe(base_recipe, "full", seed=seed, budget=budget, base_run=base)
        base_acc = base_accuracy(shared, work, base)
        profile = shared_profile(shared, work, base)
        for variant in args.variants:
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
                f"[ablation] seed {seed} {variant:16s} avg@8 {100 * result.curve[0][1]:.1f} -> "
                f"{100 * result.curve[-1][1]:.1f}  zero-adv {100 * (result.zero_advantage_share or 0):.1f}%  "
                f"({time.monotonic() - t0:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
    log(f"[ablation] done in {(time.monotonic() - start) / 60:.1f} min")
    minutes = sum(r.seconds for r in runs) / 60  # the variant runs' steps, as their summaries record them
    stats = summarize(runs, args.variants)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ablation{suffix}.json").write_text(
        json.dumps(results_data(runs, stats, budget, command, minutes), indent=1, default=list)
    )
    markdown = format_markdown(stats, budget, command, minutes, describe_setting(base_recipe, budget))
    (out / f"ablation{suffix}.md").write_text(markdown, encoding="utf-8")
    plot(out / f"ablation{suffix}.png", stats, budget)
    print(markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, 3 x 10 steps, 100 test problems (~10 min)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2; --quick: 0)")
    parser.add_argument(
        "--steps-per-stage", type=int, help="optimizer steps per stage (default 30; --quick: 10)"
    )
    parser.add_argument("--eval-every", type=int, help="evaluate every N steps (default 15; --quick: 10)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--recipe", default="recipes/tiny-cpu.yaml", help="the recipe the variants derive from"
    )
    parser.add_argument(
        "--base-run",
        default="runs/tiny-cpu",
        help="run directory with the data and warm-started model (made if missing)",
    )
    parser.add_argument("--work", help="where the variant runs go (default runs/ablation[-quick])")
    parser.add_argument("--out", default="bench/results", help="results directory")
    args = parser.parse_args(argv)

    preset = QUICK if args.quick else FULL
    budget = Budget(
        seeds=tuple(args.seeds or preset.seeds),
        steps_per_stage=args.steps_per_stage or preset.steps_per_stage,
        eval_every=args.eval_every or preset.eval_every,
        eval_limit=preset.eval_limit,
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
