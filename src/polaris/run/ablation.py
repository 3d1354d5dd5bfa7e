"""Does the recipe pay off? Vanilla GRPO vs the full recipe vs the recipe minus each component, at the
same rollout budget, from the same warm-started model, over several seeds: the variants and the analysis.

Variants (each derived from one recipe by :func:`variant_recipe`; only what is listed changes):

==================  ==========================================================================
``full``            the recipe: profile filter + dropping, searched temperatures, rescue,
                    substitution, clip-higher 0.2/0.28, dual clip 3.0
``no-filter``       every training problem in every stage (no profile filter, no dropping)
``fixed-temp``      T = 1.0 in every stage (no search)
``no-rescue``       rollout rescue off
``no-substitution`` informative substitution off (and with it the skip rule)
``vanilla``         all of the above off, and TRL's plain clip (0.2/0.2, no dual clip)
==================  ==========================================================================

Every variant trains the same number of steps of the same batch (problems × rollouts), so training
rollouts are equal; a skipped batch (substitution's skip rule) still spends its rollouts. Each step's
rollouts are read from its ``rollout/generated`` metric, so a recipe with dynamic sampling
(``train.dynamic_sampling``), which generates extra rounds, is placed on the same axis by what it
spent. Rollouts the recipe spends outside training — the difficulty profile (k per training problem)
and the temperature searches — are counted separately ("one-off"). Every ``eval_every`` steps the
model under training is evaluated on the held-out ``arith-test`` (avg@8 at the recipe's evaluation
temperature and response budget) by the training run's own validation; step 0 is the warm-started
model.

Every variant trains from the warm-started model and the task's data of one base run directory, and
every variant of a seed can reuse one difficulty profile of that model (``profile.records``): the
profile depends only on the model, the data, the seed and the profile settings, which the variants
share.

Reading a finished variant (:func:`read_variant`) goes through :class:`~polaris.run.layout.RunLayout`
only; the analysis (:func:`mean_std`, :func:`mean_curve`, :func:`rollouts_to_reach`,
:func:`summarize`, :func:`format_markdown`) is pure. ``bench/ablation.py`` runs the variants and
writes the results.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from polaris.config import DataSettings, RecipeConfig, ValidationSettings, WarmStartSettings
from polaris.errors import RunError, UsageError
from polaris.run.layout import RunLayout

#: The held-out split every variant is validated on (a built-in split of the base run).
BENCH = "arith-test"
#: Samples per problem of the validation (avg@k).
EVAL_K = 8

#: name -> description; :func:`variant_recipe` builds each.
VARIANTS: dict[str, str] = {
    "vanilla": "plain GRPO: all data, T=1.0, no rescue, no substitution, clip 0.2/0.2, no dual clip",
    "full": "the full recipe",
    "no-filter": "full minus the difficulty filter and dropping",
    "fixed-temp": "full minus the temperature search (T=1.0 every stage)",
    "no-rescue": "full minus rollout rescue",
    "no-substitution": "full minus informative substitution",
}

#: name -> the components it switches off (``filter``, ``search``, ``rescue``, ``substitution``, ``clip``).
COMPONENTS_OFF: dict[str, frozenset[str]] = {
    "vanilla": frozenset({"filter", "search", "rescue", "substitution", "clip"}),
    "full": frozenset(),
    "no-filter": frozenset({"filter"}),
    "fixed-temp": frozenset({"search"}),
    "no-rescue": frozenset({"rescue"}),
    "no-substitution": frozenset({"substitution"}),
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


def _check_variant(variant: str) -> frozenset[str]:
    if variant not in VARIANTS:
        raise UsageError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return COMPONENTS_OFF[variant]


def uses_profile(variant: str) -> bool:
    """Whether the variant filters by the difficulty profile (so spends its rollouts)."""
    return "filter" not in _check_variant(variant)


def uses_search(variant: str) -> bool:
    """Whether the variant searches its temperatures (so spends the searches' rollouts)."""
    return "search" not in _check_variant(variant)


def _layout(run: RunLayout | str | Path) -> RunLayout:
    return run if isinstance(run, RunLayout) else RunLayout(run)


# -- recipes -----------------------------------------------------------------------------------------


def variant_recipe(
    base: RecipeConfig,
    variant: str,
    *,
    seed: int,
    budget: Budget,
    base_run: RunLayout | str | Path,
    profile_records: str | Path | None = None,
) -> RecipeConfig:
    """The recipe of one variant and seed, training from ``base_run``'s warm-started model on its data
    (and reusing the seed's difficulty profile ``profile_records`` when given).

    The warm start and the data section go back to their defaults apart from the training file (the
    base run's ``arith-train`` split); evaluation after each stage is off, validation during training
    measures instead.
    """
    off = _check_variant(variant)
    layout = _layout(base_run)
    train, profile, ev = base.train, base.profile, base.eval
    validation = ValidationSettings(
        every_steps=budget.eval_every,
        benchmark=str(layout.split(BENCH)),
        k=EVAL_K,
        max_new_tokens=ev.max_new_tokens,
        top_k=0,
        limit=budget.eval_limit,
    )
    train = replace(train, save_steps=budget.steps_per_stage, validation=validation)  # resumable per stage
    if profile_records is not None:
        profile = replace(profile, records=str(profile_records))
    if "filter" in off:
        profile = replace(profile, max_correct=profile.k)  # keep every problem
        train = replace(train, drop_threshold=1.0)  # dropped when mean accuracy > 1.0: never
    if "rescue" in off:
        train = replace(train, rescue=False)
    if "substitution" in off:
        train = replace(train, substitution=False)
    if "clip" in off:
        train = replace(train, epsilon_high=train.epsilon_low, dual_clip=None)
    stages = [
        replace(
            stage,
            steps=budget.steps_per_stage,
            val_temperature=ev.temperature,
            temperature=1.0 if "search" in off else stage.temperature,
        )
        for stage in base.stages
    ]
    return replace(
        base,
        name=f"ablation-{variant}-s{seed}",
        seed=seed,
        warm_start=WarmStartSettings(),
        model=replace(base.model, path=str(layout.model("base"))),
        data=DataSettings(train=str(layout.split("arith-train"))),
        profile=profile,
        train=train,
        stages=stages,
        eval=replace(ev, benchmarks=[]),
    )


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
    run: RunLayout | str | Path,
    variant: str,
    seed: int,
    base_accuracy: float,
    *,
    rollouts_per_step: int,
    profile_used: bool,
    search_used: bool,
) -> VariantRun:
    """Curve, zero-advantage share and costs of a finished variant run directory."""
    layout = _layout(run)
    summary = layout.read_summary()
    if summary is None:
        raise RunError(f"{layout.root}: no {layout.summary.name}; run the variant first")
    steps_per_stage = {
        int(k.split(":")[1]): v["result"]["steps"]
        for k, v in summary["steps"].items()
        if k.startswith("train:")
    }
    key = f"eval/{BENCH}/avg@{EVAL_K}"
    latest: dict[tuple[str, int, int], dict[str, Any]] = {}
    # a step logged twice (a stage restarted after a kill) counts once: the last record. Validation and
    # training records share their step's key, so they are told apart here, not by the layout's dedupe.
    for r in layout.read_metrics(dedupe=False):
        kind = "eval" if key in r else "update" if "recipe/skipped" in r else None
        if kind is not None:
            latest[(kind, r["stage"], r["step"])] = r
    # rollouts generated by each step: its ``rollout/generated`` (dynamic sampling's extra rounds included);
    # a step logged without it (older runs) or not logged at all counts ``rollouts_per_step``
    spent = {
        (stage, step): int(r.get("rollout/generated", rollouts_per_step))
        for (kind, stage, step), r in latest.items()
        if kind == "update"
    }

    def rollouts_through(stage: int, step: int) -> int:
        return sum(
            spent.get((s, k), rollouts_per_step)
            for s in sorted(steps_per_stage)
            for k in range(1, steps_per_stage[s] + 1)
            if (s, k) <= (stage, step)
        )

    evaluated = sorted(
        (rollouts_through(stage, step), float(r[key]))
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
        record = layout.read_temperature(stage)
        if record is None:
            raise RunError(
                f"{layout.temperature_path(stage)} is missing: stage {stage} has no temperature record"
            )
        temperatures.append(record.chosen)
        if search_used:
            one_off += record.problems * record.n * len(record.points)
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
    """(rollouts, mean, std) at each evaluation.

    Curves with as many points (the seeds of one variant, evaluated at the same steps) are averaged
    point by point, at the seeds' mean rollout count: the same count for a fixed batch, a different
    one per seed with dynamic sampling. Otherwise: at the rollout counts every curve shares.
    """
    if len({len(c) for c in curves}) == 1:
        out = []
        for points in zip(*curves, strict=True):
            m, s = mean_std([y for _, y in points])
            out.append((round(statistics.fmean(x for x, _ in points)), m, s))
        return out
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
            "zero_advantage_share": pooled_zero_share(rs),
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


def pooled_zero_share(runs: Sequence[VariantRun]) -> float | None:
    """Zero-advantage share over every step that entered an update, all seeds pooled."""
    entered = sum(r.entered_steps for r in runs)
    if not entered:
        return None
    return sum((r.zero_advantage_share or 0.0) * r.entered_steps for r in runs) / entered


def describe_setting(recipe: RecipeConfig, budget: Budget) -> str:
    """One sentence on what was measured: the validation's sampling and the batch of every variant."""
    ev, train = recipe.eval, recipe.train
    return (
        f"Held-out `{BENCH}` avg@{EVAL_K} at T={ev.temperature}, {ev.max_new_tokens} new tokens"
        + (f", first {budget.eval_limit} problems" if budget.eval_limit else "")
        + f"; {train.batch_prompts} problems x {train.rollouts} rollouts per step"
    )


def _pct(x: float | None) -> str:
    return "not reached" if x is None else f"{100 * x:.0f}%"


def format_markdown(
    stats: dict[str, Any],
    budget: Budget,
    command: str,
    minutes: float,
    setting: str,
    *,
    cores: int | None = None,
) -> str:
    """The results page: the command, how to read the table, the table, and every variant's mean curve."""
    cores = os.cpu_count() if cores is None else cores
    seeds = len(next(iter(stats.values()))["seeds"])
    spread = "mean ± sample std over seeds" if seeds > 1 else "one seed, so no spread"
    lines = [
        "# Ablation on the tiny setting",
        "",
        f"Command: `{command}` ({budget.name}; the variant runs took {minutes:.0f} min in all on "
        f"{cores} CPU cores).",
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
    return "\n".join(lines)


def results_data(
    runs: Sequence[VariantRun], stats: dict[str, Any], budget: Budget, command: str, minutes: float
) -> dict[str, Any]:
    """What ``ablation.json`` holds: the budget, the command, every variant's statistics and every run."""
    return {
        "budget": budget.__dict__,
        "command": command,
        "minutes": minutes,
        "variants": stats,
        "runs": [r.__dict__ for r in runs],
    }


__all__ = [
    "BENCH",
    "COMPONENTS_OFF",
    "EVAL_K",
    "FULL",
    "QUICK",
    "VARIANTS",
    "Budget",
    "VariantRun",
    "describe_setting",
    "format_markdown",
    "mean_curve",
    "mean_std",
    "pooled_zero_share",
    "read_variant",
    "results_data",
    "rollouts_to_reach",
    "summarize",
    "uses_profile",
    "uses_search",
    "variant_recipe",
]
