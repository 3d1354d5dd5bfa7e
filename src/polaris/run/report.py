"""``polaris report RUN_DIR``: a readable report of a run, ``RUN_DIR/report.md`` with PNG plots.

Sections, each read through the run directory's layout (:mod:`polaris.run.layout`):

1. **Steps** — status and seconds of every step (``summary.json``).
2. **Difficulty** (docs/method.md § Difficulty-aware data) — the pass-count histogram of the
   profile before and after the filter (``steps.profile.result``: ``histogram``,
   ``histogram_kept``), and of what remains at each later stage after dynamic dropping (each stage's
   problem ids looked up in the profile's records; ``steps["drop:K"].result`` gives the counts).
   The profiled pass count is the one shown for every stage: the model is not re-profiled.
3. **Temperature search** (docs/method.md § Diversity-based temperature) — per stage, accuracy and
   distinct-4 diversity against temperature, the chosen point marked, the target diversity of a
   re-search drawn.
4. **Training curves** — every known key present in the metrics log; steps continue across stages
   (stage K's step s is plotted at s plus the last step of stages before K); a repeated (stage,
   step) record (a resumed run) counts once, the last one.
5. **Evaluation** — avg@k of the base model and every stage on every benchmark
   (``summary.json["results"][stage][benchmark]["avg@k"]``), in percent.

A run that stopped early gives a note in the missing sections, not an error. Plots use
matplotlib's Agg canvas (no display needed) and are written atomically to ``RUN_DIR/report/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polaris.errors import RunError
from polaris.run.layout import PROFILE, REPORT, RunLayout, RunSummary, StepRecord, drop_step, step_stage

#: Training metrics plotted when present, in this order.
TRAINING_KEYS = (
    "rollout/reward_mean",
    "recipe/informative_before",
    "recipe/informative_after",
    "recipe/rescued",
    "recipe/substituted",
    "recipe/skipped",
    "rollout/response_length",
    "rollout/truncation_rate",
    "train/entropy",
    "train/loss",
    "train/grad_norm",
    "recipe/temperature",
)

REPORT_DIR = "report"


@dataclass
class RunData:
    """What a run directory holds (anything missing is empty)."""

    path: Path
    summary: RunSummary | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    stage_ids: dict[int, list[str]] = field(default_factory=dict)
    temperatures: dict[int, dict[str, Any]] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def steps(self) -> dict[str, StepRecord]:
        return self.summary.steps if self.summary else {}

    @property
    def results(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.summary.results if self.summary else {}

    def step_result(self, name: str) -> dict[str, Any] | None:
        result = self.summary.result(name) if self.summary else None
        return result if isinstance(result, dict) else None


def load_run(run_dir: str | Path | RunLayout) -> RunData:
    """Everything the report reads, tolerating missing or damaged files."""
    layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(run_dir)
    data = RunData(layout.root)
    data.summary = _tolerant(layout.read_summary, layout.summary, data.notes)
    data.records = [r.to_dict() for r in _tolerant(layout.read_profile, layout.profile, data.notes) or []]
    data.stage_ids = _tolerant(layout.stages_with_ids, layout.root / "data", data.notes) or {}
    for k in layout.temperature_stages():
        record = _tolerant(lambda k=k: layout.read_temperature(k), layout.temperature_path(k), data.notes)
        if record is not None and record.points:
            data.temperatures[k] = record.to_dict()
    data.metrics = _tolerant(layout.read_metrics, layout.metrics, data.notes) or []
    data.samples = _tolerant(layout.read_profile_samples, layout.profile_samples, data.notes) or []
    return data


def _tolerant(read, path: Path, notes: list[str]) -> Any:
    """``read()``, or ``None`` with a note when the file is damaged."""
    try:
        return read()
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RunError) as e:
        notes.append(f"`{path.name}` could not be read ({e}); it is left out.")
        return None


# -- pure pieces --------------------------------------------------------------------------------


def stage_offsets(metrics: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """Stage -> the number added to its steps so that steps continue across stages."""
    last_step: dict[int, int] = {}
    for r in metrics:
        last_step[int(r["stage"])] = max(last_step.get(int(r["stage"]), 0), int(r["step"]))
    offsets, total = {}, 0
    for stage in sorted(last_step):
        offsets[stage] = total
        total += last_step[stage]
    return offsets


def training_series(metrics: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """Key -> stage -> [(continued step, value)] for every known key present."""
    offsets = stage_offsets(metrics)
    series: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for key in TRAINING_KEYS:
        for r in metrics:
            value = r.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                stage = int(r["stage"])
                series.setdefault(key, {}).setdefault(stage, []).append((offsets[stage] + int(r["step"]), float(value)))
    return series


def histogram(counts: Sequence[int], k: int) -> list[int]:
    from polaris.recipe.difficulty import pass_histogram

    return pass_histogram(counts, k)


def difficulty_histograms(data: RunData) -> tuple[int | None, dict[str, list[int]]]:
    """``(k, label -> pass-count histogram)``: before filtering, kept for stage 1, each later stage."""
    profile = data.step_result(PROFILE) or {}
    k = profile.get("k") or (int(data.records[0]["k"]) if data.records else None)
    if k is None:
        return None, {}
    correct = {str(r["problem_id"]): int(r["correct"]) for r in data.records if 0 <= int(r["correct"]) <= k}
    out: dict[str, list[int]] = {}
    if profile.get("histogram"):
        out["profiled"] = list(profile["histogram"])
    elif correct:
        out["profiled"] = histogram(correct.values(), k)
    if profile.get("histogram_kept"):
        out["stage 1 (after filter)"] = list(profile["histogram_kept"])
    elif correct and 1 in data.stage_ids:
        out["stage 1 (after filter)"] = histogram([correct[i] for i in data.stage_ids[1] if i in correct], k)
    if correct:
        for stage, ids in data.stage_ids.items():
            if stage > 1:
                out[f"stage {stage} (after dropping)"] = histogram([correct[i] for i in ids if i in correct], k)
    return k, out


def stage_order(names: Sequence[str]) -> list[str]:
    """``base`` first, then ``stage-1``, ``stage-2``, ... by number, then anything else."""

    def key(name: str) -> tuple[int, int, str]:
        if name == "base":
            return (0, 0, name)
        m = re.fullmatch(r"stage-(\d+)", name)
        return (1, int(m.group(1)), name) if m else (2, 0, name)

    return sorted(names, key=key)


def evaluation_table(results: Mapping[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    """``(benchmarks, stages, {(benchmark, stage): avg@k})`` from a summary's ``results``."""
    stages = stage_order([s for s in results if isinstance(results[s], Mapping)])
    benchmarks: list[str] = []
    values: dict[tuple[str, str], float] = {}
    for stage in stages:
        for bench, entry in results[stage].items():
            if isinstance(entry, Mapping) and isinstance(entry.get("avg@k"), int | float):
                if bench not in benchmarks:
                    benchmarks.append(bench)
                values[(bench, stage)] = float(entry["avg@k"])
    return benchmarks, stages, values


def _k_of(results: Mapping[str, Any], bench: str) -> int | None:
    for entry in results.values():
        if isinstance(entry, Mapping) and isinstance(entry.get(bench), Mapping) and "k" in entry[bench]:
            return int(entry[bench]["k"])
    return None


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


# -- plots ------------------------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: Path) -> Path:
    from polaris.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_difficulty(k: int, hists: Mapping[str, Sequence[int]], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(hists))
    for i, (label, counts) in enumerate(hists.items()):
        xs = [c + (i - (len(hists) - 1) / 2) * width for c in range(k + 1)]
        ax.bar(xs, counts, width=width, label=label)
    ax.set_xticks(range(k + 1), [f"{c}/{k}" for c in range(k + 1)])
    ax.set_xlabel("profiled pass count")
    ax.set_ylabel("problems")
    ax.set_title("Difficulty of the training data")
    ax.legend()
    return _save(fig, path)


def plot_temperature(record: Mapping[str, Any], path: Path) -> Path:
    points = sorted(record["points"], key=lambda p: p["temperature"])
    ts = [p["temperature"] for p in points]
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(ts, [p["accuracy"] for p in points], "o-", color="tab:blue", label="accuracy")
    ax.set_xlabel("temperature")
    ax.set_ylabel("accuracy", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(ts, [p["diversity"] for p in points], "s--", color="tab:orange", label="distinct-4 diversity")
    ax2.set_ylabel("distinct-4 diversity", color="tab:orange")
    if record.get("target_diversity") is not None:
        ax2.axhline(record["target_diversity"], color="tab:orange", linestyle=":", label="target diversity")
    chosen = record.get("chosen")
    if chosen is not None:
        ax.axvline(chosen, color="tab:green", linestyle="-", alpha=0.6, label=f"chosen T={chosen:g}")
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], loc="lower left", fontsize="small")
    ax.set_title(f"Temperature search, stage {record.get('stage', '?')} ({record.get('rule', '?')})")
    return _save(fig, path)


def plot_training(series: Mapping[str, Mapping[int, Sequence[tuple[int, float]]]], path: Path) -> Path:
    keys = list(series)
    cols = 2 if len(keys) > 1 else 1
    rows = (len(keys) + cols - 1) // cols
    fig = _figure(6.0 * cols, 2.6 * rows)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        for stage, pts in sorted(series[key].items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ".-", color=f"C{(stage - 1) % 10}", label=f"stage {stage}")
        ax.set_title(key, fontsize="medium")
        ax.set_xlabel("step")
        if i == 0:
            ax.legend(fontsize="small")
    return _save(fig, path)


def plot_evaluation(benchmarks: Sequence[str], stages: Sequence[str], values: Mapping[tuple[str, str], float],
                    path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(stages))
    for j, stage in enumerate(stages):
        xs = [i + (j - (len(stages) - 1) / 2) * width for i in range(len(benchmarks))]
        ys = [100 * values.get((b, stage), float("nan")) for b in benchmarks]
        ax.bar(xs, ys, width=width, label=stage)
        for x, y in zip(xs, ys, strict=True):
            if y == y:  # label each bar with its value; NaN (missing) bars get none
                ax.annotate(f"{y:.1f}", (x, y), ha="center", va="bottom", fontsize="small")
    ax.set_xticks(range(len(benchmarks)), list(benchmarks))
    ax.set_ylabel("avg@k (%)")
    ax.set_ylim(0, 115)  # room above the bars for the legend
    ax.set_title("Evaluation")
    ax.legend(loc="upper center", ncols=min(4, len(stages)), fontsize="small")
    return _save(fig, path)


# -- the report -------------------------------------------------------------------------------


def _steps_section(data: RunData) -> list[str]:
    if not data.steps:
        return ["## Steps", "", "_No `summary.json` steps: the run has not started a step yet._", ""]
    # the pipeline's own `report` step is still running while it writes this page
    rows = [(name, s.status, s.seconds) for name, s in data.steps.items() if name != REPORT]
    return ["## Steps", "", md_table(("step", "status", "seconds"), rows), ""]


def _difficulty_section(data: RunData, out: Path) -> list[str]:
    lines = ["## Difficulty", "", "_What the recipe does: docs/method.md § Difficulty-aware data._", ""]
    k, hists = difficulty_histograms(data)
    if not hists or k is None:
        return [*lines, "_No difficulty profile: the run stopped before the `profile` step._", ""]
    plot_difficulty(k, hists, out / "difficulty.png")
    lines += [f"![difficulty]({REPORT_DIR}/difficulty.png)", ""]
    rows = [(label, *counts, sum(counts)) for label, counts in hists.items()]
    lines += [md_table(("problems", *[f"{c}/{k}" for c in range(k + 1)], "total"), rows), ""]
    drops = [(k, r.get("dropped", ""), r.get("remaining", "")) for name in data.steps
             if (k := step_stage(name)) and name == drop_step(k) and (r := data.step_result(name))]
    if drops:
        lines += ["Dynamic dropping between stages (mean logged accuracy > threshold):", "",
                  md_table(("stage", "dropped", "remaining"), drops), ""]
    later = [s for s in data.stage_ids if s > 1]
    if later and not data.records:
        lines += ["_The difficulty profile is missing: the histograms after dropping cannot be drawn._", ""]
    return lines


#: Sample responses shown in the report (the rest are in the profile's samples file).
REPORT_SAMPLES = 4
#: Characters shown of each sample response.
SAMPLE_CHARS = 600


def _samples_section(data: RunData) -> list[str]:
    """What the profile's responses contain, and a few of them: why the rewards are what they are."""
    profile = data.step_result(PROFILE) or {}
    counts = profile.get("responses")
    if not counts and not data.samples:
        return []
    lines = ["### What the model wrote during the profile", ""]
    if counts and counts.get("responses"):
        n = counts["responses"]
        cells = [f"{counts[key]} ({pct(counts[key] / n)}%)" for key in ("think_closed", "boxed", "truncated", "correct")]
        lines += [md_table(("responses", "closed </think>", "boxed answer", "truncated", "correct"), [(n, *cells)]), ""]
    for warning in profile.get("warnings", []):
        lines += [f"**Warning:** {warning}", ""]
    correct = [s for s in data.samples if float(s.get("reward", 0)) > 0.5][: REPORT_SAMPLES // 2]
    wrong = [s for s in data.samples if float(s.get("reward", 0)) <= 0.5][: REPORT_SAMPLES - len(correct)]
    for s in correct + wrong:
        text = str(s.get("response", ""))
        cut = text[:SAMPLE_CHARS] + (" …" if len(text) > SAMPLE_CHARS else "")
        head = f"Problem `{s.get('problem_id')}`, reward {s.get('reward')}, {s.get('length')} tokens"
        lines += [head + (", truncated" if s.get("truncated") else "") + ":", "", "~~~text", cut.replace("~~~", "~ ~ ~"),
                  "~~~", ""]
    return lines


def _temperature_section(data: RunData, out: Path) -> list[str]:
    lines = ["## Temperature search", "", "_What the recipe does: docs/method.md § Diversity-based temperature._", ""]
    if not data.temperatures:
        return [*lines, "_No temperature search: the run stopped before the first `temperature` step._", ""]
    for stage, record in data.temperatures.items():
        name = f"temperature-stage-{stage}.png"
        plot_temperature(record, out / name)
        chosen = record.get("chosen")
        target = record.get("target_diversity")
        lines += [f"### Stage {stage}", "",
                  f"Rule `{record.get('rule', '?')}`; chosen temperature **{chosen}**"
                  + (f"; target diversity {pct(target)}" if target is not None else "") + ".", "",
                  f"![temperature stage {stage}]({REPORT_DIR}/{name})", ""]
        rows = [(f"{p['temperature']:g}", pct(p["accuracy"]), pct(p["diversity"]),
                 "←" if chosen is not None and abs(p["temperature"] - chosen) < 1e-9 else "")
                for p in sorted(record["points"], key=lambda p: p["temperature"])]
        lines += [md_table(("temperature", "accuracy (%)", "distinct-4 (%)", "chosen"), rows), ""]
    return lines


def _training_section(data: RunData, out: Path) -> list[str]:
    lines = ["## Training", ""]
    series = training_series(data.metrics)
    if not series:
        return [*lines, "_No training metrics: no stage has logged a step yet._", ""]
    plot_training(series, out / "training.png")
    lines += [f"![training curves]({REPORT_DIR}/training.png)", "",
              "Steps continue across stages. Mean per stage:", ""]
    stages = sorted({s for per in series.values() for s in per})
    rows = []
    for key, per in series.items():
        rows.append((f"`{key}`", *[
            f"{sum(v for _, v in per[s]) / len(per[s]):.4g}" if s in per else "" for s in stages
        ]))
    lines += [md_table(("metric", *[f"stage {s}" for s in stages]), rows), ""]
    return lines


def _evaluation_section(data: RunData, out: Path) -> list[str]:
    lines = ["## Evaluation (avg@k, %)", ""]
    benchmarks, stages, values = evaluation_table(data.results)
    if not values:
        return [*lines, "_No evaluation results yet: the run stopped before the first `eval` step._", ""]
    plot_evaluation(benchmarks, stages, values, out / "evaluation.png")
    rows = []
    for b in benchmarks:
        k = _k_of(data.results, b)
        rows.append((f"{b} (avg@{k})" if k else b, *[pct(values[(b, s)]) if (b, s) in values else "—" for s in stages]))
    lines += [md_table(("benchmark", *stages), rows), "", f"![evaluation]({REPORT_DIR}/evaluation.png)", ""]
    return lines


def write_report(run_dir: str | Path | RunLayout) -> Path:
    """Write the run's ``report.md`` and its plots; returns the report's path."""
    from polaris.io import atomic_path

    layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(run_dir)
    data = load_run(layout)
    out = layout.report_dir
    out.mkdir(parents=True, exist_ok=True)
    name = data.summary.recipe if data.summary and data.summary.recipe else data.path.name
    lines = [f"# POLARIS run report: {name}", "", f"Run directory: `{data.path}`", ""]
    lines += _steps_section(data)
    lines += _difficulty_section(data, out)
    lines += _samples_section(data)
    lines += _temperature_section(data, out)
    lines += _training_section(data, out)
    lines += _evaluation_section(data, out)
    if data.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in data.notes], ""]
    path = layout.report
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return path
