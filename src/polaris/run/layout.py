"""A run directory: the only code that knows where a run keeps what.

Layout (every write is atomic: a killed run leaves the old file or the new one)::

    summary.json               RunSummary: steps (StepRecord: status, seconds, result), results[model][benchmark]
    run.lock                   the pid of the `polaris run` working in the directory (while it runs)
    recipe.yaml                the recipe it ran (with its command-line overrides applied)
    data/arith-{train,test}.parquet   the built-in task's splits (built-in model only)
    data/stage-K.ids.json      the problems of stage K (after the filter, then after dropping)
    profile/records.jsonl      one difficulty record per training problem
    profile/samples.jsonl      a few of the profile's responses per problem, with their rewards
    temperature/stage-K.json   the stage's temperature grid, the rule and the choice
    models/init, models/base   the built-in model before and after its warm start
    models/stage-K             the weights after stage K; models/stage-K.state.json its recipe state
    work/sft, work/stage-K     checkpoints (resume); work/stage-K/decisions-rankR.jsonl: recipe decisions
    logs/metrics.jsonl         per-step metrics, tagged with stage and step; logs/tb/stage-K TensorBoard
    logs/difficulty.jsonl      per-step group accuracy of every problem, before rescue/substitution
    logs/vllm-server.log       the vLLM server's output (``polaris run --launch``, server mode)
    eval/STAGE/BENCH.parquet   per-response evaluation results
    report.md, report/         the readable report and its plots

The single-step commands (``polaris profile``, ``temperature``, ``train``) write the same layout
into their ``--out`` directory, so their outputs are where ``polaris run`` would put them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from polaris.io import atomic_path, read_json, read_jsonl, write_json

BUILTIN_SPLITS = ("arith-train", "arith-test")


@dataclass
class TemperatureRecord:
    """One stage's temperature search (``temperature/stage-K.json``)."""

    stage: int
    rule: str
    """``exploration-start`` (stage 1), ``match-diversity`` (later stages) or ``fixed``."""
    chosen: float
    points: list[dict[str, float]]
    """``{"temperature", "accuracy", "diversity"}`` at each temperature tried."""
    target_diversity: float | None = None
    diversity_at_chosen: float | None = None
    accuracy_at_chosen: float | None = None
    problems: int = 0
    n: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(out.pop("extra"))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemperatureRecord:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


#: The run's step names, as ``summary.json`` records them (in the order a run takes them).
PREPARE, WARM_START, PROFILE, REPORT = "prepare", "warm_start", "profile", "report"


def drop_step(stage: int) -> str:
    return f"drop:{stage}"


def temperature_step(stage: int) -> str:
    return f"temperature:{stage}"


def train_step(stage: int) -> str:
    return f"train:{stage}"


def eval_step(model: str) -> str:
    """The evaluation of ``model`` (``base`` or ``stage-K``)."""
    return f"eval:{model}"


def step_stage(name: str) -> int | None:
    """K of ``drop:K``, ``temperature:K`` or ``train:K`` (``None`` for the other steps)."""
    kind, _, stage = name.partition(":")
    return int(stage) if kind in ("drop", "temperature", "train") and stage.isdigit() else None


StepStatus = Literal["running", "done", "failed"]


@dataclass
class StepRecord:
    """One step of ``summary.json``: its status, the seconds spent on it (over every attempt) and what
    it returned (the step's own small dict: the profile's histogram, a stage's steps, ...)."""

    status: StepStatus
    seconds: float = 0.0
    result: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "seconds": self.seconds}
        if self.result is not None:
            out["result"] = self.result
        return out


@dataclass
class RunSummary:
    """``summary.json``: the recipe it belongs to, every step's record, and the evaluations' results
    (``results[model][benchmark]``: avg@k and the other metrics of :func:`polaris.evaluate.summarize`)."""

    recipe: str
    recipe_sha256: str
    steps: dict[str, StepRecord] = field(default_factory=dict)
    results: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def status(self, name: str) -> StepStatus | None:
        record = self.steps.get(name)
        return None if record is None else record.status

    def done(self, name: str) -> bool:
        return self.status(name) == "done"

    def result(self, name: str) -> dict[str, Any] | None:
        """What step ``name`` returned (``None``: not run, or returned nothing)."""
        record = self.steps.get(name)
        return None if record is None else record.result

    def seconds(self) -> float:
        """Seconds spent on every step."""
        return sum(r.seconds for r in self.steps.values())

    def with_status(self, status: StepStatus) -> list[str]:
        return [name for name, r in self.steps.items() if r.status == status]

    def avg_at_k(self, model: str, benchmark: str) -> float | None:
        return (self.results.get(model) or {}).get(benchmark, {}).get("avg@k")

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "recipe_sha256": self.recipe_sha256,
                "steps": {name: r.to_dict() for name, r in self.steps.items()}, "results": self.results}

    @classmethod
    def from_dict(cls, data: Any, where: str | Path = "summary.json") -> RunSummary:
        """A summary read back; :class:`RunError` naming the file and the field when it is not one."""
        from polaris.errors import RunError

        def bad(what: str) -> RunError:
            return RunError(f"{where}: {what}; it is not a polaris run summary (delete it to start the run over)")

        if not isinstance(data, dict) or not isinstance(data.get("steps", {}), dict):
            raise bad("expected an object with 'steps'")
        steps = {}
        for name, record in data.get("steps", {}).items():
            if not isinstance(record, dict) or record.get("status") not in ("running", "done", "failed"):
                raise bad(f"steps.{name}: expected a status of running, done or failed")
            steps[name] = StepRecord(record["status"], float(record.get("seconds", 0.0)), record.get("result"))
        return cls(recipe=str(data.get("recipe", "")), recipe_sha256=str(data.get("recipe_sha256", "")),
                   steps=steps, results=dict(data.get("results") or {}))


class RunLayout:
    """Paths of one run directory, with typed readers and writers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunLayout({str(self.root)!r})"

    @classmethod
    def of(cls, name: str, run_dir: str | Path | None = None) -> RunLayout:
        """``run_dir``, or the default run directory of the recipe called ``name``: ``runs/NAME``."""
        return cls(run_dir or Path("runs") / name)

    # -- top level ---------------------------------------------------------------------------------
    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def lock(self) -> Path:
        return self.root / "run.lock"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def read_summary(self) -> RunSummary | None:
        data = read_json(self.summary)
        return None if data is None else RunSummary.from_dict(data, self.summary)

    def write_summary(self, summary: RunSummary) -> None:
        write_json(self.summary, summary.to_dict())

    def write_recipe(self, text: str) -> None:
        with atomic_path(self.recipe) as tmp:
            tmp.write_text(text, encoding="utf-8")

    # -- data ----------------------------------------------------------------------------------------
    def split(self, name: str) -> Path:
        """A built-in split written by the prepare step (``arith-train``, ``arith-test``)."""
        if name not in BUILTIN_SPLITS:
            raise ValueError(f"unknown built-in split {name!r}; valid: {list(BUILTIN_SPLITS)}")
        return self.root / "data" / f"{name}.parquet"

    def stage_ids_path(self, stage: int) -> Path:
        return self.root / "data" / f"stage-{stage}.ids.json"

    def read_stage_ids(self, stage: int) -> list[str] | None:
        ids = read_json(self.stage_ids_path(stage))
        return None if ids is None else [str(i) for i in ids]

    def write_stage_ids(self, stage: int, ids: Sequence[str]) -> None:
        write_json(self.stage_ids_path(stage), list(ids))

    def stages_with_ids(self) -> dict[int, list[str]]:
        """Stage -> its problem ids, for every ``data/stage-K.ids.json`` present."""
        out = {}
        for stage in _numbered(self.root / "data", r"stage-(\d+)\.ids\.json"):
            ids = self.read_stage_ids(stage)
            if ids is not None:
                out[stage] = ids
        return out

    # -- profile -------------------------------------------------------------------------------------
    @property
    def profile(self) -> Path:
        return self.root / "profile" / "records.jsonl"

    def read_profile(self) -> list[Any]:
        """The difficulty records (:class:`polaris.recipe.DifficultyRecord`), or ``[]``."""
        from polaris.recipe import DifficultyRecord

        return [DifficultyRecord.from_dict(r) for r in read_jsonl(self.profile)]

    def write_profile(self, records: Iterable[Any]) -> None:
        write_jsonl(self.profile, (r.to_dict() for r in records))

    @property
    def profile_samples(self) -> Path:
        return self.root / "profile" / "samples.jsonl"

    def write_profile_samples(self, samples: Iterable[dict[str, Any]]) -> None:
        write_jsonl(self.profile_samples, samples)

    def read_profile_samples(self) -> list[dict[str, Any]]:
        return read_jsonl(self.profile_samples)

    # -- temperature ---------------------------------------------------------------------------------
    def temperature_path(self, stage: int) -> Path:
        return self.root / "temperature" / f"stage-{stage}.json"

    def read_temperature(self, stage: int) -> TemperatureRecord | None:
        data = read_json(self.temperature_path(stage))
        return None if data is None else TemperatureRecord.from_dict(data)

    def write_temperature(self, record: TemperatureRecord) -> None:
        write_json(self.temperature_path(record.stage), record.to_dict())

    def temperature_stages(self) -> list[int]:
        return _numbered(self.root / "temperature", r"stage-(\d+)\.json")

    # -- models and checkpoints ----------------------------------------------------------------------
    def model(self, name: str) -> Path:
        """``init``, ``base`` or ``stage-K``."""
        return self.root / "models" / name

    def stage_model(self, stage: int) -> Path:
        return self.model(f"stage-{stage}")

    def stage_state(self, stage: int) -> Path:
        """The recipe state (rescue store) after stage K, carried into stage K+1."""
        return self.root / "models" / f"stage-{stage}.state.json"

    @property
    def sft_work(self) -> Path:
        return self.root / "work" / "sft"

    def stage_work(self, stage: int) -> Path:
        return self.root / "work" / f"stage-{stage}"

    def stage_paths(self, stage: int):
        """Everything ``polaris.train.stages.train_stage`` writes for stage K."""
        from polaris.train.stages import StagePaths

        return StagePaths(
            work=self.stage_work(stage),
            model=self.stage_model(stage),
            state=self.stage_state(stage),
            metrics=self.metrics,
            tensorboard=self.tensorboard(stage),
            difficulty=self.difficulty,
            decisions=str(self.stage_work(stage) / "decisions-rank{rank}.jsonl"),
            initial_state=self.stage_state(stage - 1) if stage > 1 else None,
        )

    # -- logs ----------------------------------------------------------------------------------------
    @property
    def metrics(self) -> Path:
        return self.root / "logs" / "metrics.jsonl"

    @property
    def difficulty(self) -> Path:
        return self.root / "logs" / "difficulty.jsonl"

    def tensorboard(self, stage: int) -> Path:
        return self.root / "logs" / "tb" / f"stage-{stage}"

    @property
    def server_log(self) -> Path:
        return self.root / "logs" / "vllm-server.log"

    def read_metrics(self, *, dedupe: bool = True) -> list[dict[str, Any]]:
        """Per-step records; with ``dedupe`` one per (stage, step) — the last written — sorted by stage and
        step (validation records share their step's key and come first, so ``dedupe`` keeps training's)."""
        records = read_jsonl(self.metrics)
        return dedupe_metrics(records) if dedupe else records

    def difficulty_log(self):
        from polaris.recipe import DifficultyLog

        return DifficultyLog(self.difficulty)

    # -- evaluation ----------------------------------------------------------------------------------
    def eval_results(self, stage: str, benchmark: str) -> Path:
        return self.root / "eval" / stage / f"{benchmark}.parquet"


class EvalLayout:
    """The results directory of ``polaris eval``: ``NAME.parquet`` per benchmark and ``summary.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def results(self, benchmark: str) -> Path:
        return self.root / f"{benchmark}.parquet"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """A whole JSONL file, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def dedupe_metrics(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (stage, step), the last written (a resumed run repeats steps), sorted."""
    last: dict[tuple[int, int], dict[str, Any]] = {}
    for r in records:
        try:
            key = (int(r["stage"]), int(r["step"]))
        except (KeyError, TypeError, ValueError):
            continue
        last[key] = dict(r)
    return [last[k] for k in sorted(last)]


def _numbered(directory: Path, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := regex.fullmatch(p.name)))


__all__ = [
    "PREPARE", "PROFILE", "REPORT", "WARM_START", "EvalLayout", "RunLayout", "RunSummary", "StepRecord",
    "TemperatureRecord", "dedupe_metrics", "drop_step", "eval_step", "step_stage", "temperature_step", "train_step",
    "write_jsonl",
]
