"""Does the recipe pay off? Vanilla GRPO vs the full recipe vs the recipe minus each component (and
one alternative to two of them), from the same warm-started model, over several seeds: the variants
and the analysis, shared by ``bench/ablation.py`` (the tiny model) and ``bench/real_model.py``
(SmolLM2). Not part of the ``polaris`` package: only the benches use it.

Variants (each derived from one recipe by :func:`variant_recipe`; only what is listed changes):

==================  ==========================================================================
``full``            the recipe: profile filter + dropping, searched temperatures, rescue,
                    substitution, clip-higher 0.2/0.28, dual clip 3.0
``no-filter``       every training problem in every stage (no profile filter, no dropping)
``fixed-temp``      T = 1.0 in every stage (no search)
``no-rescue``       rollout rescue off
``no-substitution`` informative substitution off (and with it the skip rule)
``dapo``            DAPO dynamic sampling in place of rescue + substitution (both off,
                    ``train.dynamic_sampling`` on, its default cap on extra rounds)
``vanilla``         filter, search, rescue and substitution off, and TRL's plain clip
                    (0.2/0.2, no dual clip)
==================  ==========================================================================

:data:`COMPONENTS_OFF` names what each variant switches off, :data:`COMPONENTS_ADDED` what it adds
(only ``dapo``: ``dynamic``).

Every variant trains the same number of steps of the same batch (problems × rollouts); a skipped
batch (substitution's skip rule) still spends its rollouts. Each step's rollouts are read from its
``rollout/generated`` metric, so dynamic sampling, which generates extra rounds, is placed on the
rollout axis by what it spent. Rollouts the recipe spends outside training — the difficulty profile
(k per training problem) and the temperature searches — are counted separately ("one-off"), and
each run has two accuracy curves: against training rollouts, and against all rollouts (training +
the one-off rollouts spent before each evaluation: the profile and stage 1's search before training,
stage K's search before stage K). Every ``eval_every`` steps the model under training is evaluated on
the held-out ``arith-test`` (avg@8 at the recipe's evaluation temperature and response budget) by
the training run's own validation; step 0 is the warm-started model.

Every variant trains from the warm-started model and the task's data of one base run directory, and
every variant of a seed can reuse one difficulty profile of that model (``profile.records``): the
profile depends only on the model, the data, the seed and the profile settings, which the variants
share. So the variants of one seed are paired: :func:`paired_interval` compares two variants by
their per-seed differences, with a Student t interval (:func:`mean_interval`, :data:`T975`).

Reading a finished variant (:func:`read_variant`) goes through :class:`~polaris.run.layout.RunLayout`
only; the analysis (:func:`mean_std`, :func:`mean_interval`, :func:`mean_curve`,
:func:`rollouts_to_reach`, :func:`summarize`, :func:`compare`, :func:`plain_words`,
:func:`format_markdown`) is pure. ``bench/ablation.py`` runs the variants and writes the results.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from polaris.config import DataSettings, RecipeConfig, ValidationSettings, WarmStartSettings
from polaris.errors import RunError, UsageError
from polaris.run.layout import PROFILE, RunLayout, TemperatureRecord, step_stage, temperature_step, train_step

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
    "dapo": "full with DAPO dynamic sampling in place of rescue + substitution",
}

#: name -> the components it switches off (``filter``, ``search``, ``rescue``, ``substitution``, ``clip``).
COMPONENTS_OFF: dict[str, frozenset[str]] = {
    "vanilla": frozenset({"filter", "search", "rescue", "substitution", "clip"}),
    "full": frozenset(),
    "no-filter": frozenset({"filter"}),
    "fixed-temp": frozenset({"search"}),
    "no-rescue": frozenset({"rescue"}),
    "no-substitution": frozenset({"substitution"}),
    "dapo": frozenset({"rescue", "substitution"}),
}

#: name -> the components it adds to the recipe (``dynamic``: DAPO dynamic sampling); absent: none.
COMPONENTS_ADDED: dict[str, frozenset[str]] = {
    "dapo": frozenset({"dynamic"}),
}

#: The variants ``--quick`` runs.
QUICK_VARIANTS: tuple[str, ...] = ("vanilla", "full", "dapo")

#: (what is compared, the variant with it, the variant without it): what :func:`plain_words` reports on.
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("the whole recipe", "full", "vanilla"),
    ("the difficulty filter and dropping", "full", "no-filter"),
    ("the temperature search", "full", "fixed-temp"),
    ("rollout rescue", "full", "no-rescue"),
    ("informative substitution", "full", "no-substitution"),
    ("DAPO dynamic sampling in place of rescue + substitution", "dapo", "full"),
)


@dataclass(frozen=True)
class Budget:
    """How much each variant runs."""

    seeds: tuple[int, ...]
    steps_per_stage: int
    eval_every: int
    eval_limit: int | None  # only the first N test problems (None: all 200)
    stages: int = 3  # the first N stages of the recipe

    @property
    def name(self) -> str:
        limit = f", first {self.eval_limit} test problems" if self.eval_limit else ""
        return (
            f"{len(self.seeds)} seed(s) x {self.stages} stages x {self.steps_per_stage} steps, "
            f"eval every {self.eval_every}{limit}"
        )


# Sized for a 2-core CPU (bench/ablation.py's docstring has the estimate): two regimes x 7 variants x
# 3 seeds in <= 90 min, --quick (3 variants, 1 seed, both regimes) in <= 10 min.
FULL = Budget(seeds=(0, 1, 2), steps_per_stage=12, eval_every=12, eval_limit=100, stages=3)
QUICK = Budget(seeds=(0,), steps_per_stage=6, eval_every=6, eval_limit=100, stages=2)


def _check_variant(variant: str) -> frozenset[str]:
    if variant not in VARIANTS:
        raise UsageError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return COMPONENTS_OFF[variant]


def components_added(variant: str) -> frozenset[str]:
    """What the variant adds to the recipe (``dynamic``), beside what it switches off."""
    _check_variant(variant)
    return COMPONENTS_ADDED.get(variant, frozenset())


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
    base_run: RunLayout | str | Path | None = None,
    profile_records: str | Path | None = None,
    name: str = "ablation",
) -> RecipeConfig:
    """The recipe of one variant and seed (run ``NAME-VARIANT-sSEED``), reusing the seed's difficulty
    profile ``profile_records`` when given.

    With ``base_run`` (the tiny model), it trains from that run's warm-started model on its data: the
    warm start and the data section go back to their defaults apart from the training file (the base
    run's ``arith-train`` split), and validation reads the base run's test split. Without it (a real
    model), the recipe's model and data stay, and validation reads the recipe's ``arith-test``. Only the
    recipe's first ``budget.stages`` stages run; evaluation after each stage is off, validation during
    training (with the recipe's evaluation sampling) measures instead.
    """
    off = _check_variant(variant)
    added = components_added(variant)
    if budget.stages > len(base.stages):
        raise UsageError(
            f"the budget runs {budget.stages} stages; the recipe {base.name!r} has {len(base.stages)}"
        )
    layout = None if base_run is None else _layout(base_run)
    train, profile, ev = base.train, base.profile, base.eval
    validation = ValidationSettings(
        every_steps=budget.eval_every,
        benchmark=BENCH if layout is None else str(layout.split(BENCH)),
        k=EVAL_K,
        max_new_tokens=ev.max_new_tokens,
        top_p=ev.top_p,
        top_k=ev.top_k,
        limit=budget.eval_limit,
    )
    train = replace(train, save_steps=budget.steps_per_stage, validation=validation)  # resumable per stage
    if profile_records is not None:
        profile = replace(profile, records=str(profile_records))
    if "filter" in off:
        profile = replace(profile, max_correct=profile.k)  # keep every problem
        train = replace(train, drop_threshold=1.0)  # dropped when mean accuracy > 1.0: never
    # one replace: dynamic sampling is refused while rescue or substitution is on
    train = replace(
        train,
        rescue=train.rescue and "rescue" not in off,
        substitution=train.substitution and "substitution" not in off,
        dynamic_sampling="dynamic" in added,
    )
    if "clip" in off:
        train = replace(train, epsilon_high=train.epsilon_low, dual_clip=None)
    stages = [
        replace(
            stage,
            steps=budget.steps_per_stage,
            val_temperature=ev.temperature,
            temperature=1.0 if "search" in off else stage.temperature,
        )
        for stage in base.stages[: budget.stages]
    ]
    recipe = replace(base, name=f"{name}-{variant}-s{seed}", seed=seed, profile=profile, train=train, stages=stages,
                     eval=replace(ev, benchmarks=[], evaluate_base=False))
    if layout is None:
        return recipe
    return replace(recipe, warm_start=WarmStartSettings(), model=replace(base.model, path=str(layout.model("base"))),
                   data=DataSettings(train=str(layout.split("arith-train"))))


# -- reading a finished variant ----------------------------------------------------------------------


@dataclass
class VariantRun:
    """One variant at one seed: its accuracy curves and what it spent."""

    variant: str
    seed: int
    curve: list[tuple[int, float]]  # (training rollouts generated, avg@8), step 0 first
    zero_advantage_share: float | None  # of the rollouts that entered updates (None: no update ran)
    skipped_share: float  # of the steps
    entered_steps: int  # steps whose batch entered an update
    one_off_rollouts: int  # profile + temperature searches the variant needs
    seconds: float
    stage_temperatures: list[float] = field(default_factory=list)
    # (all rollouts spent so far: training + one-off, avg@8); None: every one-off rollout before step 0
    curve_all: list[tuple[int, float]] | None = None

    def spend_curve(self) -> list[tuple[int, float]]:
        """Accuracy against all rollouts spent (training + one-off)."""
        if self.curve_all is not None:
            return self.curve_all
        return [(x + self.one_off_rollouts, y) for x, y in self.curve]

    @property
    def training_rollouts(self) -> int:
        return self.curve[-1][0]

    @property
    def all_rollouts(self) -> int:
        """Training rollouts generated (dynamic sampling's extra rounds included) + one-off rollouts."""
        return self.training_rollouts + self.one_off_rollouts


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
    """Curves, zero-advantage share and costs of a finished variant run directory."""
    layout = _layout(run)
    summary = layout.read_summary()
    if summary is None:
        raise RunError(f"{layout.root}: no {layout.summary.name}; run the variant first")
    steps_per_stage = {
        stage: summary.result(name)["steps"]
        for name in summary.steps
        if (stage := step_stage(name)) and name == train_step(stage)
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

    # one-off rollouts: the profile before training, each stage's search before that stage
    profile_rollouts = 0
    if profile_used:
        prof = summary.result(PROFILE)
        profile_rollouts = prof["problems"] * prof["k"]
    temperatures, search_rollouts = [], {}
    for stage in sorted(steps_per_stage):
        record = layout.read_temperature(stage)
        if record is None:  # a fixed temperature that no later stage matches is not measured
            step = summary.result(temperature_step(stage)) or {}
            if "temperature" not in step:
                raise RunError(
                    f"{layout.temperature_path(stage)} is missing: stage {stage} has no temperature record"
                )
            temperatures.append(float(step["temperature"]))
            search_rollouts[stage] = 0
            continue
        temperatures.append(record.chosen)
        search_rollouts[stage] = record.problems * record.n * len(record.points) if search_used else 0

    def one_off_before(stage: int) -> int:
        return profile_rollouts + sum(n for s, n in search_rollouts.items() if s <= stage)

    evaluations = sorted(
        (stage, step, float(r[key])) for (kind, stage, step), r in latest.items() if kind == "eval"
    )
    first = min(steps_per_stage, default=1)
    curve = [(0, base_accuracy), *((rollouts_through(st, sp), acc) for st, sp, acc in evaluations)]
    curve_all = [
        (one_off_before(first), base_accuracy),
        *((rollouts_through(st, sp) + one_off_before(st), acc) for st, sp, acc in evaluations),
    ]
    updates = [r for (kind, _, _), r in latest.items() if kind == "update"]
    entered = [r for r in updates if r["recipe/skipped"] < 0.5]
    zero_share = sum(r["recipe/zero_advantage_fraction"] for r in entered) / len(entered) if entered else None
    seconds = summary.seconds()
    return VariantRun(
        variant=variant,
        seed=seed,
        curve=curve,
        zero_advantage_share=zero_share,
        skipped_share=(len(updates) - len(entered)) / len(updates) if updates else 0.0,
        entered_steps=len(entered),
        one_off_rollouts=profile_rollouts + sum(search_rollouts.values()),
        seconds=seconds,
        stage_temperatures=temperatures,
        curve_all=curve_all,
    )


def profile_histogram(records: Iterable[Mapping[str, Any]]) -> list[int]:
    """Counts of problems solved 0/k..k/k in difficulty records (``{"correct", "k", ...}``, as
    ``profile/records.jsonl`` and the ablation's per-seed profile cache hold them), by
    :func:`polaris.recipe.difficulty.pass_histogram`."""
    from polaris.recipe.difficulty import pass_histogram

    records = list(records)
    if not records:
        return []
    ks = {int(r["k"]) for r in records}
    if len(ks) > 1:
        raise ValueError(f"difficulty records with k={sorted(ks)}: one profile has one k")
    return pass_histogram((int(r["correct"]) for r in records), ks.pop())


def read_searches(run: RunLayout | str | Path) -> list[TemperatureRecord]:
    """Every stage's temperature record of a run directory, stage 1 first."""
    layout = _layout(run)
    records = (layout.read_temperature(stage) for stage in layout.temperature_stages())
    return [r for r in records if r is not None]


# -- statistics (pure) -------------------------------------------------------------------------------


#: The 0.975 quantile of Student's t with ``df`` degrees of freedom (two-sided 95% intervals).
T975: dict[int, float] = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
}


def t975(df: int) -> float:
    """t_{0.975, df}; above 10 degrees of freedom the value at 10 (a slightly wider interval than 95%)."""
    if df < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom (2 values), got {df}")
    return T975[min(df, max(T975))]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_interval(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% interval, t_{0.975,n-1} · sd / √n (``None`` for one value)."""
    values = list(values)
    mean, sd = mean_std(values)
    if len(values) < 2:
        return mean, None
    return mean, t975(len(values) - 1) * sd / math.sqrt(len(values))


def paired_interval(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[float, float | None, int]:
    """a − b over the seeds both have, paired by seed: the mean difference, the half-width of its 95%
    interval (``None`` below two pairs) and the number of pairs."""
    seeds = sorted(a.keys() & b.keys())
    if not seeds:
        raise ValueError("no seed in common: nothing to pair")
    mean, half = mean_interval([a[s] - b[s] for s in seeds])
    return mean, half, len(seeds)


def classify(mean: float, half: float | None) -> str:
    """``helps`` (the 95% interval lies above 0), ``hurts`` (below 0), ``no measurable difference``
    (it includes 0), or ``no interval`` (one seed)."""
    if half is None:
        return "no interval"
    if mean - half > 0:
        return "helps"
    if mean + half < 0:
        return "hurts"
    return "no measurable difference"


# -- analysis (pure) ---------------------------------------------------------------------------------


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


def _finals(runs: Iterable[VariantRun]) -> dict[int, float]:
    return {r.seed: r.curve[-1][1] for r in runs}


def summarize(runs: Sequence[VariantRun], variants: Sequence[str]) -> dict[str, Any]:
    """Per variant: mean curves (training rollouts, all rollouts), final mean with its 95% interval,
    the difference from vanilla paired by seed with its interval, rollouts to reach vanilla's final,
    what was spent, zero-advantage share."""
    by = {v: [r for r in runs if r.variant == v] for v in variants}
    out: dict[str, Any] = {}
    for v, rs in by.items():
        curve = mean_curve([r.curve for r in rs])
        final_mean, final_std = mean_std([r.curve[-1][1] for r in rs])
        out[v] = {
            "seeds": [r.seed for r in rs],
            "curve": curve,
            "curve_all": mean_curve([r.spend_curve() for r in rs]),
            "finals": _finals(rs),
            "final_mean": final_mean,
            "final_std": final_std,
            "final_ci": mean_interval([r.curve[-1][1] for r in rs])[1],
            "base_mean": mean_std([r.curve[0][1] for r in rs])[0],
            "training_rollouts": curve[-1][0],
            "all_rollouts": statistics.fmean(r.all_rollouts for r in rs),
            "one_off_rollouts": statistics.fmean(r.one_off_rollouts for r in rs),
            "zero_advantage_share": pooled_zero_share(rs),
            "skipped_share": statistics.fmean(r.skipped_share for r in rs),
            "seconds": statistics.fmean(r.seconds for r in rs),
            "temperatures": [r.stage_temperatures for r in rs],
        }
    if "vanilla" in out:
        vanilla = out["vanilla"]
        target, total, total_all = (
            vanilla["final_mean"],
            vanilla["training_rollouts"],
            vanilla["all_rollouts"],
        )
        for v, s in out.items():
            # vanilla is the reference (its own budget, 100%); the others: first crossing of their mean curve
            reach = total if v == "vanilla" else rollouts_to_reach([(x, m) for x, m, _ in s["curve"]], target)
            reach_all = (
                total_all
                if v == "vanilla"
                else rollouts_to_reach([(x, m) for x, m, _ in s["curve_all"]], target)
            )
            s["rollouts_to_vanilla_final"] = reach
            s["share_of_vanilla_rollouts"] = None if reach is None else reach / total
            s["share_with_one_off"] = None if reach_all is None else reach_all / total_all
            s["vs_vanilla_points"] = 100 * (s["final_mean"] - target)
            if s["finals"].keys() & vanilla["finals"].keys():
                mean, half, _ = paired_interval(s["finals"], vanilla["finals"])
            else:  # no seed in common: the difference of the means, no interval
                mean, half = s["final_mean"] - target, None
            s["vs_vanilla_paired"] = 100 * mean
            s["vs_vanilla_ci"] = None if half is None else 100 * half
    return out


def pooled_zero_share(runs: Sequence[VariantRun]) -> float | None:
    """Zero-advantage share over every step that entered an update, all seeds pooled."""
    entered = sum(r.entered_steps for r in runs)
    if not entered:
        return None
    return sum((r.zero_advantage_share or 0.0) * r.entered_steps for r in runs) / entered


def compare(runs: Sequence[VariantRun], with_variant: str, without_variant: str) -> dict[str, Any] | None:
    """``with_variant`` − ``without_variant``, paired by seed: final avg@8 in points with its 95%
    interval and verdict (:func:`classify`), and the extra rollouts (all, and training) per seed on
    average; ``None`` when the two share no seed."""
    a = {r.seed: r for r in runs if r.variant == with_variant}
    b = {r.seed: r for r in runs if r.variant == without_variant}
    seeds = sorted(a.keys() & b.keys())
    if not seeds:
        return None
    mean, half, n = paired_interval(_finals(a.values()), _finals(b.values()))
    return {
        "with": with_variant,
        "without": without_variant,
        "seeds": n,
        "points": 100 * mean,
        "ci": None if half is None else 100 * half,
        "verdict": classify(mean, half),
        "rollouts": statistics.fmean(a[s].all_rollouts - b[s].all_rollouts for s in seeds),
        "training_rollouts": statistics.fmean(a[s].training_rollouts - b[s].training_rollouts for s in seeds),
    }


def comparisons(runs: Sequence[VariantRun]) -> list[dict[str, Any]]:
    """:func:`compare` for every entry of :data:`COMPARISONS` whose two variants ran."""
    out = []
    for label, with_variant, without_variant in COMPARISONS:
        c = compare(runs, with_variant, without_variant)
        if c is not None:
            out.append({"label": label, **c})
    return out


def _interval(points: float, ci: float | None) -> str:
    if ci is None:
        return f"{points:+.1f} points"
    return f"{points:+.1f} points [{points - ci:+.1f}, {points + ci:+.1f}]"


def _rollouts(n: float) -> str:
    return f"{n:+,.0f}"


def plain_words(compared: Sequence[Mapping[str, Any]], regime: str) -> str:
    """A paragraph, from the numbers: which components help, which hurt, which make no measurable
    difference (95% interval of the paired difference in final avg@8), and which cost rollouts."""
    if not compared:
        return f"{regime.capitalize()} regime: no two variants to compare."
    n = min(c["seeds"] for c in compared)

    def item(c: Mapping[str, Any]) -> str:
        return f"{c['label']} ({c['with']} vs {c['without']}, {_interval(c['points'], c['ci'])})"

    groups: dict[str, list[str]] = {}
    for c in compared:
        groups.setdefault(c["verdict"], []).append(item(c))
    if n < 2:
        sentences = [
            f"{regime.capitalize()} regime, one seed: no interval, so no claim that anything helps or hurts. "
            "The differences in final avg@8: " + "; ".join(groups.get("no interval", [])) + "."
        ]
    else:
        sentences = [
            f"{regime.capitalize()} regime, {n} seeds; a difference in final avg@8 counts when its 95% interval "
            "(paired by seed) excludes 0."
        ]
        for verdict, lead in (
            ("helps", "Helps"),
            ("hurts", "Hurts (better without it)"),
            ("no measurable difference", "No measurable difference"),
        ):
            if groups.get(verdict):
                sentences.append(f"{lead}: " + "; ".join(groups[verdict]) + ".")
    costly = [c for c in compared if round(c["rollouts"]) != 0]
    free = [c["label"] for c in compared if round(c["rollouts"]) == 0]
    if costly:
        parts = []
        for c in costly:
            part = f"{c['label']} {_rollouts(c['rollouts'])}"
            if round(c["training_rollouts"]) != 0:
                part += f" (training {_rollouts(c['training_rollouts'])})"
            parts.append(part)
        sentences.append(
            "Cost in rollouts per seed (all rollouts, with minus without): " + "; ".join(parts) + "."
        )
    if free:
        sentences.append("No extra rollouts: " + "; ".join(free) + ".")
    return " ".join(sentences)


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


def _with_ci(value: float, ci: float | None) -> str:
    return f"{value:.1f}" if ci is None else f"{value:.1f} ± {ci:.1f}"


TABLE_NOTES = [
    "- **final avg@8**: mean over seeds ± the half-width of its 95% interval (Student t, "
    "t_{0.975,n-1} · sd / √n); one seed: no interval.",
    "- **vs vanilla**: the variant's final minus vanilla's, in points, paired by seed (the variants of a "
    "seed share the base model and the profile), ± the 95% interval of the per-seed differences.",
    "- **training rollouts**: rollouts generated in training steps (`rollout/generated`: dynamic "
    "sampling's extra rounds included), mean over seeds; **all rollouts** adds the **one-off** ones: "
    "the difficulty profile (8 per training problem) and the temperature searches, counted for the "
    "variants that use them. The profile is made once per seed and reused by every variant of that seed "
    "(`profile.records`); variants without filtering keep every problem. A fixed temperature is not measured (no "
    "later stage matches its diversity).",
    "- **to vanilla's final**: training rollouts at which the variant's mean curve first reaches vanilla's "
    "final mean (linear between evaluations), as a share of vanilla's training rollouts (vanilla: 100% "
    "by definition); **with one-off**: the same on the curve against all rollouts (the profile and "
    "stage 1's search spent before training, stage K's search before stage K), as a share of vanilla's "
    "all rollouts.",
    "- **zero-adv**: share of the rollouts entering updates whose group had all-equal rewards (zero "
    "advantage), over all seeds (dynamic sampling: after its refill); **skipped**: share of steps the "
    "skip rule skipped.",
    "- vanilla runs through the same adapter with the recipe switched off (its advantages use std + "
    "1e-6 where TRL uses 1e-4) and TRL's plain clip: 0.2/0.2, no dual clip.",
]


def format_table(stats: Mapping[str, Any]) -> list[str]:
    """The final table: one row per variant."""
    has_vanilla = "vanilla" in stats
    lines = [
        "| variant | base | final avg@8 | vs vanilla | training rollouts | all rollouts | to vanilla's final "
        "| with one-off | one-off | zero-adv | skipped | temperatures | min/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, s in stats.items():
        temps = " / ".join(f"{t:.2f}" for t in s["temperatures"][0]) if s["temperatures"] else ""
        if len(s["temperatures"]) > 1 and any(t != s["temperatures"][0] for t in s["temperatures"]):
            temps += f" (seed {s['seeds'][0]})"
        final = _with_ci(100 * s["final_mean"], None if s["final_ci"] is None else 100 * s["final_ci"])
        zero = "n/a" if s["zero_advantage_share"] is None else f"{100 * s['zero_advantage_share']:.1f}%"
        if has_vanilla:
            vs = "—" if v == "vanilla" else f"{s['vs_vanilla_paired']:+.1f}"
            if v != "vanilla" and s["vs_vanilla_ci"] is not None:
                vs += f" ± {s['vs_vanilla_ci']:.1f}"
            reach, with_one_off = _pct(s["share_of_vanilla_rollouts"]), _pct(s["share_with_one_off"])
        else:
            vs = reach = with_one_off = "n/a"
        lines.append(
            f"| {v} | {100 * s['base_mean']:.1f} | {final} | {vs} | {s['training_rollouts']:,} "
            f"| {s['all_rollouts']:,.0f} | {reach} | {with_one_off} | {s['one_off_rollouts']:,.0f} | {zero} "
            f"| {100 * s['skipped_share']:.0f}% | {temps} | {s['seconds'] / 60:.1f} |"
        )
    return lines


def format_curves(stats: Mapping[str, Any], key: str) -> list[str]:
    """Mean avg@8 at each evaluation of every variant (``key``: ``curve`` or ``curve_all``): one row per
    variant, its rollout counts in the row (they differ between variants on the all-rollouts axis and
    under dynamic sampling)."""
    seeds = len(next(iter(stats.values()))["seeds"])
    lines = ["| variant | rollouts: mean avg@8" + (" ± std" if seeds > 1 else "") + " |", "|---|---|"]
    for v, s in stats.items():
        cells = [f"{x:,}: {100 * m:.1f}" + (f" ± {100 * sd:.1f}" if seeds > 1 else "") for x, m, sd in s[key]]
        lines.append(f"| {v} | " + " · ".join(cells) + " |")
    return lines


def format_markdown(
    stats: dict[str, Any],
    budget: Budget,
    command: str,
    minutes: float,
    setting: str,
    *,
    cores: int | None = None,
    regime: str = "",
    paragraph: str = "",
) -> str:
    """The results page: the command, how to read the table, the table, the plain-words paragraph and
    every variant's mean curves."""
    cores = os.cpu_count() if cores is None else cores
    seeds = len(next(iter(stats.values()))["seeds"])
    spread = "95% intervals over seeds" if seeds > 1 else "one seed, so no intervals"
    title = f"# Ablation on the tiny setting, {regime} regime" if regime else "# Ablation on the tiny setting"
    lines = [
        title,
        "",
        f"Command: `{command}` ({budget.name}; the variant runs took {minutes:.0f} min in all on "
        f"{cores} CPU cores).",
        "",
        f"{setting}. Every variant starts from the same warm-started model and trains the same number of "
        f"steps; {spread}.",
        "",
        *TABLE_NOTES,
        "",
        *format_table(stats),
        "",
    ]
    if paragraph:
        lines += [paragraph, ""]
    lines += ["Mean avg@8 at each evaluation, by training rollouts:", "", *format_curves(stats, "curve"), ""]
    lines += ["By all rollouts (training + one-off):", "", *format_curves(stats, "curve_all"), ""]
    return "\n".join(lines)


def format_histograms(histograms: Mapping[int, Sequence[int]]) -> list[str]:
    """The base model's difficulty profile, solved c/k: one row per seed and their mean."""
    if not histograms:
        return ["(no profile)"]
    k = len(next(iter(histograms.values()))) - 1
    lines = [
        "| seed | " + " | ".join(f"{c}/{k}" for c in range(k + 1)) + " | problems |",
        "|---|" + "---|" * (k + 2),
    ]
    for seed, hist in histograms.items():
        lines.append(f"| {seed} | " + " | ".join(str(c) for c in hist) + f" | {sum(hist)} |")
    if len(histograms) > 1:
        mean = [statistics.fmean(col) for col in zip(*histograms.values(), strict=True)]
        lines.append("| mean | " + " | ".join(f"{c:.0f}" for c in mean) + f" | {sum(mean):.0f} |")
    return lines


def format_searches(searches: Sequence[Mapping[str, Any]]) -> list[str]:
    """The temperature searches (``TemperatureRecord.to_dict()`` per stage): accuracy / diversity at each
    temperature tried, and the choice."""
    if not searches:
        return ["(no temperature search)"]
    temps = sorted({p["temperature"] for s in searches for p in s["points"] if "temperature" in p})
    lines = [
        "| stage | rule | chosen | " + " | ".join(f"T={t:g}" for t in temps) + " |",
        "|---|---|---|" + "---|" * len(temps),
    ]
    for s in searches:
        at = {p["temperature"]: p for p in s["points"] if "temperature" in p}
        cells = [
            f"{100 * at[t]['accuracy']:.0f}% / {at[t]['diversity']:.2f}" if t in at else "" for t in temps
        ]
        lines.append(f"| {s['stage']} | {s['rule']} | {s['chosen']:g} | " + " | ".join(cells) + " |")
    return lines


def format_regime_section(
    regime: str,
    description: str,
    histograms: Mapping[int, Sequence[int]],
    searches: Sequence[Mapping[str, Any]],
    searches_from: str,
    stats: Mapping[str, Any],
    paragraph: str,
    command: str,
    budget: Budget,
) -> str:
    """One regime of the combined summary: the base model's difficulty profile, the temperature searches,
    the final table and the plain-words paragraph."""
    lines = [
        f"## {regime.capitalize()} regime",
        "",
        f"{description} Command: `{command}` ({budget.name}).",
        "",
        "Difficulty profile of the base model: training problems by how many of their k profile rollouts "
        "were right (c/k), per seed (the profile the variants of that seed share):",
        "",
        *format_histograms(histograms),
        "",
        f"Temperature searches, accuracy / diversity at each temperature ({searches_from}):",
        "",
        *format_searches(searches),
        "",
        *format_table(stats),
        "",
        paragraph,
        "",
    ]
    return "\n".join(lines)


def results_data(
    runs: Sequence[VariantRun], stats: dict[str, Any], budget: Budget, command: str, minutes: float
) -> dict[str, Any]:
    """What ``ablation-REGIME.json`` holds: the budget, the command, every variant's statistics and every
    run."""
    return {
        "budget": budget.__dict__,
        "command": command,
        "minutes": minutes,
        "variants": stats,
        "runs": [r.__dict__ for r in runs],
    }


__all__ = [
    "BENCH",
    "COMPARISONS",
    "COMPONENTS_ADDED",
    "COMPONENTS_OFF",
    "EVAL_K",
    "FULL",
    "QUICK",
    "QUICK_VARIANTS",
    "T975",
    "TABLE_NOTES",
    "VARIANTS",
    "Budget",
    "VariantRun",
    "classify",
    "compare",
    "comparisons",
    "components_added",
    "describe_setting",
    "format_histograms",
    "format_markdown",
    "format_regime_section",
    "format_searches",
    "format_table",
    "mean_curve",
    "mean_interval",
    "mean_std",
    "paired_interval",
    "plain_words",
    "pooled_zero_share",
    "profile_histogram",
    "read_searches",
    "read_variant",
    "results_data",
    "rollouts_to_reach",
    "summarize",
    "t975",
    "uses_profile",
    "uses_search",
    "variant_recipe",
]
