"""Does the recipe pay off on the tiny setting? Vanilla GRPO vs the full recipe vs the recipe minus
each component, at the same rollout budget, from the same warm-started model, over several seeds.

Variants (each a recipe derived from ``recipes/tiny-cpu.yaml``; only what is listed changes):

==================  ==========================================================================
``full``            the recipe: profile filter + dropping, searched temperatures, rescue,
                    substitution, clip-higher 0.2/0.28, dual clip 3.0
``no-filter``       every training problem in every stage (no profile filter, no dropping)
``fixed-temp``      T = 1.0 in every stage (no search)
``no-rescue``       rollout rescue off
``no-substitution`` informative substitution off (and with it the skip rule)
``vanilla``         all of the above off, and TRL's plain clip (0.2/0.2, no dual clip)
==================  ==========================================================================

Every variant trains the same number of steps of 16 problems × 8 rollouts, so training rollouts are
equal; a skipped batch (substitution's skip rule) still spends its rollouts. Rollouts the recipe
spends outside training — the difficulty profile (k per training problem) and the temperature
searches — are reported separately ("one-off"). Every ``--eval-every`` steps the model under
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
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
BENCH = "arith-test"

#: name -> (description, overrides applied to the recipe dict by :func:`variant_recipe`)
VARIANTS: dict[str, str] = {
    "vanilla": "plain GRPO: all data, T=1.0, no rescue, no substitution, clip 0.2/0.2, no dual clip",
    "full": "the full recipe",
    "no-filter": "full minus the difficulty filter and dropping",
    "fixed-temp": "full minus the temperature search (T=1.0 every stage)",
    "no-rescue": "full minus rollout rescue",
    "no-substitution": "full minus informative substitution",
}


@dataclass(frozen=True)
class Budget:
    """How much each variant runs."""

    seeds: tuple[int, ...]
    steps_per_stage: int
    eval_every: int
    eval_limit: int | None  # only the first N test problems (None: all 200)

    @property
    def name(self) -> str:
        return f"{len(self.seeds)} seed(s) x 3 stages x {self.steps_per_stage} steps, eval every {self.eval_every}"


FULL = Budget(seeds=(0, 1, 2), steps_per_stage=30, eval_every=15, eval_limit=None)
QUICK = Budget(seeds=(0,), steps_per_stage=10, eval_every=10, eval_limit=100)


# -- recipes -----------------------------------------------------------------------------------------


def variant_recipe(
    base_recipe: dict[str, Any],
    variant: str,
    *,
    seed: int,
    budget: Budget,
    base_run: Path,
    profile_records: Path | None = None,
) -> dict[str, Any]:
    """The recipe dict of one variant and seed, training from ``base_run``'s warm-started model
    (and reusing the seed's difficulty profile ``profile_records`` when given)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    r = copy.deepcopy(base_recipe)
    r["name"] = f"ablation-{variant}-s{seed}"
    r["seed"] = seed
    r.pop("warm_start", None)
    r["model"] = {**r.get("model", {}), "path": str(base_run / "models" / "base")}
    r["data"] = {"train": str(base_run / "data" / "arith-train.parquet")}
    eval_t = float(r.get("eval", {}).get("temperature", 0.6))
    eval_tokens = int(r.get("eval", {}).get("max_new_tokens", 128))
    r["eval"] = {**r.get("eval", {}), "benchmarks": []}  # validation during training measures instead
    train = r.setdefault("train", {})
    train["save_steps"] = budget.steps_per_stage  # resumable per stage; fewer checkpoint writes
    train["validation"] = {
        "every_steps": budget.eval_every,
        "benchmark": str(base_run / "data" / f"{BENCH}.parquet"),
        "k": 8,
        "max_new_tokens": eval_tokens,
        "top_k": 0,
        "limit": budget.eval_limit,
    }
    for stage in r["stages"]:
        stage["steps"] = budget.steps_per_stage
        stage["val_temperature"] = eval_t
    k = int(r.get("profile", {}).get("k", 8))
    if profile_records is not None:
        r.setdefault("profile", {})["records"] = str(profile_records)
    no_filter = variant in ("no-filter", "vanilla")
    fixed_temp = variant in ("fixed-temp", "vanilla")
    if no_filter:
        r.setdefault("profile", {})["max_correct"] = k  # keep every problem
        train["drop_threshold"] = 1.0  # dropped when mean accuracy > 1.0: never
    if fixed_temp:
        for stage in r["stages"]:
            stage["temperature"] = 1.0
    if variant in ("no-rescue", "vanilla"):
        train["rescue"] = False
    if variant in ("no-substitution", "vanilla"):
        train["substitution"] = False
    if variant == "vanilla":
        train["epsilon_high"] = train.get("epsilon_low", 0.2)
        train["dual_clip"] = None
    return r


# -- reading a finished variant ----------------------------------------------------------------------


@dataclass
class VariantRun:
    """One variant at one seed: its accuracy curve and what it spent."""

    variant: str
    seed: int
    curve: list[tuple[int, float]]  # (training rollouts consumed, avg@8), step 0 first
    zero_advantage_share: float | None  # of the rollouts that entered updates (None: no update ran)
    skipped_share: float  # of the steps
    entered_steps: int  # steps whose batch entered an update
    one_off_rollouts: int  # profile + temperature searches the variant needs
    seconds: float
    stage_temperatures: list[float] = field(default_factory=list)


def read_variant(
    run_dir: Path,
    variant: str,
    seed: int,
    base_accuracy: float,
    *,
    rollouts_per_step: int,
    profile_used: bool,
    search_used: bool,
) -> VariantRun:
    """Curve, zero-advantage share and costs of a finished variant run directory."""
    from polaris.io import read_json, read_jsonl

    records = read_jsonl(run_dir / "logs" / "metrics.jsonl")
    summary = read_json(run_dir / "summary.json")
    steps_per_stage = {
        int(k.split(":")[1]): v["result"]["steps"]
        for k, v in summary["steps"].items()
        if k.startswith("train:")
    }
    offset, before = {}, 0
    for stage in sorted(steps_per_stage):
        offset[stage] = before
        before += steps_per_stage[stage]
    key = f"eval/{BENCH}/avg@8"
    latest: dict[tuple[str, int, int], dict[str, Any]] = {}
    for r in records:  # a step logged twice (a stage restarted after a kill) counts once: the last record
        kind = "eval" if key in r else "update" if "recipe/skipped" in r else None
        if kind is not None:
            latest[(kind, r["stage"], r["step"])] = r
    evaluated = sorted(
        ((offset[stage] + step) * rollouts_per_step, float(r[key]))
        for (kind, stage, step), r in latest.items()
        if kind == "eval"
    )
    curve = [(0, base_accuracy), *evaluated]
    updates = [r for (kind, _, _), r in latest.items() if kind == "update"]
    entered = [r for r in updates if r["recipe/skipped"] < 0.5]
    zero_share = sum(r["recipe/zero_advantage_fraction"] for r in entered) / len(entered) if entered else None
    one_off = 0
    if profile_used:
        prof = summary["steps"]["profile"]["result"]
        one_off += prof["problems"] * prof["k"]
    temperatures = []
    for stage in sorted(steps_per_stage):
        record = json.loads((run_dir / "temperature" / f"stage-{stage}.json").read_text())
        temperatures.append(record["chosen"])
        if search_used:
            one_off += record["problems"] * record["n"] * len(record["points"])
    seconds = sum(v.get("seconds", 0.0) for v in summary["steps"].values())
    return VariantRun(
        variant=variant,
        seed=seed,
        curve=curve,
        zero_advantage_share=zero_share,
        skipped_share=(len(updates) - len(entered)) / len(updates) if updates else 0.0,
        entered_steps=len(entered),
        one_off_rollouts=one_off,
        seconds=seconds,
        stage_temperatures=temperatures,
    )


# -- analysis (pure) ---------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float, float]]:
    """(rollouts, mean, std) at the rollout counts every curve shares."""
    shared = set.intersection(*(set(x for x, _ in c) for c in curves))
    out = []
    for x in sorted(shared):
        m, s = mean_std([dict(c)[x] for c in curves])
        out.append((x, m, s))
    return out


def rollouts_to_reach(curve: Sequence[tuple[int, float]], target: float) -> float | None:
    """Rollouts at which a (mean) curve first reaches ``target``, linearly interpolated between the
    evaluated points; ``None`` when it never does."""
    previous = None
    for x, y in curve:
        if y >= target:
            if previous is None:
                return float(x)
            px, py = previous
            return px + (x - px) * (target - py) / (y - py)
        previous = (x, y)
    return None


# -- running -----------------------------------------------------------------------------------------


def ensure_base(base_run: Path, recipe_path: Path) -> None:
    """The task's data and the warm-started model in ``base_run`` (the pipeline's own steps)."""
    from polaris.config import load_recipe
    from polaris.pipeline import RunDir, prepare_builtin, warm_start

    if (base_run / "models" / "base" / "config.json").exists():
        return
    run = RunDir(base_run, load_recipe(recipe_path), recipe_path.read_text(encoding="utf-8"))
    run.step("prepare", lambda: prepare_builtin(run))
    run.step("warm_start", lambda: warm_start(run))


def full_recipe(base_recipe: dict[str, Any], work: Path, seed: int, budget: Budget, base_run: Path):
    """The ``full`` variant at ``seed`` as a loaded recipe: the settings the shared steps use."""
    from polaris.config import load_recipe

    spec = work / "recipes" / f"shared-s{seed}.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(
        yaml.safe_dump(variant_recipe(base_recipe, "full", seed=seed, budget=budget, base_run=base_run))
    )
    return load_recipe(spec)


def base_accuracy(recipe, work: Path, base_run: Path) -> float:
    """avg@8 of the warm-started model with the variants' validation settings (cached per seed)."""
    from polaris.data.loaders import load_problems
    from polaris.evaluate import evaluate_problems
    from polaris.models.loading import load_model
    from polaris.train.validation import validation_eval_settings

    v = recipe.train.validation
    cache = work / f"base-s{recipe.seed}-{v.limit or 'all'}-{model_digest(base_run)[:12]}.json"
    if cache.exists():
        return json.loads(cache.read_text())["avg@k"]
    problems = load_problems(v.benchmark, limit=v.limit)
    model, tokenizer = load_model(recipe.model.path)
    settings = validation_eval_settings(
        v, temperature=recipe.stages[0].val_temperature, max_new_tokens=v.max_new_tokens
    )
    # the validation callback samples with seed + step; step 0 here
    _, summary = evaluate_problems(model, tokenizer, problems, settings, seed=recipe.seed, desc="eval base")
    cache.write_text(json.dumps({"avg@k": summary["avg@k"]}))
    return summary["avg@k"]


def model_digest(base_run: Path) -> str:
    """sha256 of the warm-started weights: what every variant run and cached number depends on."""
    import hashlib

    return hashlib.sha256((base_run / "models" / "base" / "model.safetensors").read_bytes()).hexdigest()


def stamp_work(work: Path, base_run: Path) -> None:
    """Tie ``work`` to one warm start: finished runs are reused only while the base model is the same."""
    stamp = work / "base-model.json"
    digest = model_digest(base_run)
    if stamp.exists():
        recorded = json.loads(stamp.read_text())["sha256"]
        if recorded != digest:
            raise SystemExit(
                f"ablation: the runs in {work} were trained from another warm-started model than "
                f"{base_run}/models/base; delete {work} or pass another --work"
            )
        return
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"sha256": digest, "base_run": str(base_run)}))


def shared_profile(recipe, work: Path, base_run: Path) -> Path:
    """The difficulty profile of the warm-started model at the recipe's seed, made once and reused by
    every variant of that seed (``profile.records``): the profile depends only on the model, the
    data, the seed and the profile settings, which the variants share."""
    from polaris.data.loaders import load_problems
    from polaris.pipeline import generate_profile
    from polaris.train.stages import write_records

    path = work / f"profile-s{recipe.seed}-{model_digest(base_run)[:12]}.jsonl"
    if not path.exists():
        records = generate_profile(recipe, recipe.model.path, load_problems(recipe.data.train))
        write_records(records, path)
    return path


def run_variant(recipe: dict[str, Any], work: Path) -> Path:
    from polaris.pipeline import run_recipe

    name = recipe["name"]
    recipe_file = work / "recipes" / f"{name}.yaml"
    recipe_file.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(recipe, sort_keys=False)
    if not recipe_file.exists() or recipe_file.read_text() != text:
        recipe_file.write_text(text)
    run_dir = work / name.removeprefix("ablation-")
    run_recipe(recipe_file, run_dir)
    return run_dir


# -- report ------------------------------------------------------------------------------------------


def summarize(runs: Sequence[VariantRun], variants: Sequence[str]) -> dict[str, Any]:
    """Per variant: mean curve, final mean ± std, rollouts to reach vanilla's final, zero-advantage share."""
    by = {v: [r for r in runs if r.variant == v] for v in variants}
    out: dict[str, Any] = {}
    for v, rs in by.items():
        curve = mean_curve([r.curve for r in rs])
        final_mean, final_std = mean_std([r.curve[-1][1] for r in rs])
        out[v] = {
            "seeds": [r.seed for r in rs],
            "curve": curve,
            "final_mean": final_mean,
            "final_std": final_std,
            "base_mean": mean_std([r.curve[0][1] for r in rs])[0],
            "training_rollouts": curve[-1][0],
            "one_off_rollouts": statistics.fmean(r.one_off_rollouts for r in rs),
            "zero_advantage_share": _pooled_zero_share(rs),
            "skipped_share": statistics.fmean(r.skipped_share for r in rs),
            "seconds": statistics.fmean(r.seconds for r in rs),
            "temperatures": [r.stage_temperatures for r in rs],
        }
    if "vanilla" in out:
        target = out["vanilla"]["final_mean"]
        total = out["vanilla"]["training_rollouts"]
        for v, s in out.items():
            # vanilla is the reference (its own budget, 100%); the others: first crossing of their mean curve
            reach = total if v == "vanilla" else rollouts_to_reach([(x, m) for x, m, _ in s["curve"]], target)
            s["rollouts_to_vanilla_final"] = reach
            s["share_of_vanilla_rollouts"] = None if reach is None else reach / total
            s["share_with_one_off"] = None if reach is None else (reach + s["one_off_rollouts"]) / total
            s["vs_vanilla_points"] = 100 * (s["final_mean"] - target)
    return out


def _pooled_zero_share(runs: Sequence[VariantRun]) -> float | None:
    """Zero-advantage share over every step that entered an update, all seeds pooled."""
    entered = sum(r.entered_steps for r in runs)
    if not entered:
        return None
    return sum((r.zero_advantage_share or 0.0) * r.entered_steps for r in runs) / entered


def _pct(x: float | None) -> str:
    return "not reached" if x is None else f"{100 * x:.0f}%"


def write_markdown(
    path: Path, stats: dict[str, Any], budget: Budget, command: str, minutes: float, setting: str
) -> None:
    seeds = len(next(iter(stats.values()))["seeds"])
    spread = "mean ± sample std over seeds" if seeds > 1 else "one seed, so no spread"
    lines = [
        "# Ablation on the tiny setting",
        "",
        f"Command: `{command}` ({budget.name}; the variant runs took {minutes:.0f} min in all on "
        f"{os.cpu_count()} CPU cores).",
        "",
        f"{setting}. Every variant starts from the same warm-started model and trains the same number of "
        f"steps, so the same number of training rollouts; {spread}.",
        "",
        "- **vs vanilla**: final mean minus vanilla's, in points.",
        "- **to vanilla's final**: training rollouts at which the variant's mean curve first reaches vanilla's "
        "final mean (linear between evaluations), as a share of vanilla's training rollouts (vanilla: 100% "
        "by definition); **with one-off** adds the rollouts the variant spent outside training.",
        "- **one-off**: rollouts of the difficulty profile (8 per training problem) and of the temperature "
        "searches, counted for the variants that use them. The profile is made once per seed and reused by "
        "every variant of that seed (`profile.records`); variants without filtering keep every problem. "
        "A variant with a fixed temperature still measures it once (not counted).",
        "- **zero-adv**: share of the rollouts entering updates whose group had all-equal rewards (zero "
        "advantage), over all seeds; **skipped**: share of steps the skip rule skipped.",
        "- vanilla runs through the same adapter with the recipe switched off (its advantages use std + "
        "1e-6 where TRL uses 1e-4) and TRL's plain clip: 0.2/0.2, no dual clip.",
        "",
        "| variant | base | final avg@8 | vs vanilla | training rollouts | to vanilla's final | with one-off "
        "| one-off | zero-adv | skipped | temperatures | min/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    has_vanilla = "vanilla" in stats
    for v, s in stats.items():
        temps = " / ".join(f"{t:.2f}" for t in s["temperatures"][0]) if s["temperatures"] else ""
        if len(s["temperatures"]) > 1 and any(t != s["temperatures"][0] for t in s["temperatures"]):
            temps += f" (seed {s['seeds'][0]})"
        final = f"{100 * s['final_mean']:.1f}" + (f" ± {100 * s['final_std']:.1f}" if seeds > 1 else "")
        zero = "n/a" if s["zero_advantage_share"] is None else f"{100 * s['zero_advantage_share']:.1f}%"
        vs = f"{s['vs_vanilla_points']:+.1f}" if has_vanilla else "n/a"
        reach = _pct(s["share_of_vanilla_rollouts"]) if has_vanilla else "n/a"
        with_one_off = _pct(s["share_with_one_off"]) if has_vanilla else "n/a"
        lines.append(
            f"| {v} | {100 * s['base_mean']:.1f} | {final} | {vs} | {s['training_rollouts']} | {reach} "
            f"| {with_one_off} | {s['one_off_rollouts']:.0f} | {zero} | {100 * s['skipped_share']:.0f}% "
            f"| {temps} | {s['seconds'] / 60:.1f} |"
        )
    lines += ["", "Mean avg@8 at each evaluation, by training rollouts:", ""]
    xs = [x for x, _, _ in next(iter(stats.values()))["curve"]]
    lines.append("| variant | " + " | ".join(str(x) for x in xs) + " |")
    lines.append("|---|" + "---|" * len(xs))
    for v, s in stats.items():
        cells = {x: f"{100 * m:.1f}" + (f" ± {100 * sd:.1f}" if seeds > 1 else "") for x, m, sd in s["curve"]}
        lines.append(f"| {v} | " + " | ".join(cells.get(x, "") for x in xs) + " |")
    lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


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
    recipe_path = Path(args.recipe)
    base_recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    base_run = Path(args.base_run).resolve()
    work = Path(args.work or ("runs/ablation-quick" if args.quick else "runs/ablation"))
    out = Path(args.out)
    suffix = "-quick" if args.quick else ""
    os.environ.setdefault("POLARIS_QUIET", "1")

    from polaris.models.loading import set_threads
    from polaris.progress import log

    set_threads()
    start = time.monotonic()
    ensure_base(base_run, recipe_path)
    stamp_work(work, base_run)
    rollouts_per_step = int(base_recipe["train"]["batch_prompts"]) * int(base_recipe["train"]["rollouts"])
    runs = []
    for seed in budget.seeds:
        shared = full_recipe(base_recipe, work, seed, budget, base_run)
        base_acc = base_accuracy(shared, work, base_run)
        profile = shared_profile(shared, work, base_run)
        for variant in args.variants:
            t0 = time.monotonic()
            recipe = variant_recipe(
                base_recipe, variant, seed=seed, budget=budget, base_run=base_run, profile_records=profile
            )
            run_dir = run_variant(recipe, work)
            result = read_variant(
                run_dir,
                variant,
                seed,
                base_acc,
                rollouts_per_step=rollouts_per_step,
                profile_used=variant not in ("no-filter", "vanilla"),
                search_used=variant not in ("fixed-temp", "vanilla"),
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
    minutes = sum(r.seconds for r in runs) / 60  # the variant runs' steps, as their summary.json records them
    ev = base_recipe.get("eval", {})
    setting = (
        f"Held-out `{BENCH}` avg@8 at T={ev.get('temperature', 0.6)}, {ev.get('max_new_tokens', 128)} new tokens"
        + (f", first {budget.eval_limit} problems" if budget.eval_limit else "")
        + f"; {base_recipe['train']['batch_prompts']} problems x {base_recipe['train']['rollouts']} rollouts per step"
    )
    stats = summarize(runs, args.variants)
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/ablation.py" + (" --quick" if args.quick else "")
    if argv is None and len(sys.argv) > 1:
        command = "python bench/ablation.py " + " ".join(sys.argv[1:])
    (out / f"ablation{suffix}.json").write_text(
        json.dumps(
            {
                "budget": budget.__dict__,
                "command": command,
                "minutes": minutes,
                "variants": stats,
                "runs": [r.__dict__ for r in runs],
            },
            indent=1,
            default=list,
        )
    )
    write_markdown(out / f"ablation{suffix}.md", stats, budget, command, minutes, setting)
    plot(out / f"ablation{suffix}.png", stats, budget)
    print((out / f"ablation{suffix}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
