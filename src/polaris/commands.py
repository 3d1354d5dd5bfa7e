"""``polaris profile``, ``polaris temperature``, ``polaris train``: each step of a run, alone.

They work on any HF causal LM folder (or Hub id when online) and any problem file the loaders
read; ``polaris run`` chains them with the recipe's settings. Run ``polaris train`` under
``accelerate launch`` for several processes or GPUs (see ``docs/training.md``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from polaris.io import write_json
from polaris.progress import log


def _load(data: str, limit: int | None, ids_file: str | None = None):
    from polaris.data.loaders import load_problems

    problems = load_problems(data, limit=limit)
    if ids_file:
        keep = set(json.loads(Path(ids_file).read_text(encoding="utf-8")))
        problems = [p for p in problems if p.id in keep]
    if not problems:
        raise SystemExit(f"no problems to work on in {data}")
    return problems


@dataclass
class ProfileConfig:
    """Profile difficulty: k rollouts per problem with the model to be trained; write the per-problem
    records and the problems kept by the pass-rate filter (SPEC 1)."""

    model: tyro.conf.Positional[str]
    """HF model folder or Hub id."""
    data: str = ""
    """Problems: a parquet/jsonl file or a Hub data set id."""
    out: str = "profile"
    """Output directory: records.jsonl, kept.ids.json, histogram.json."""
    k: int = 8
    """Rollouts per problem."""
    temperature: float = 1.0
    """Sampling temperature."""
    max_new_tokens: int = 1024
    """Response budget."""
    min_correct: int = 0
    """Keep problems solved at least this many times (0 keeps the unsolved ones)."""
    max_correct: int | None = None
    """Keep problems solved at most this many times (default k-1: drop the solved ones)."""
    limit: int | None = None
    """Only the first N problems."""
    batch_size: int = 512
    """Sequences per generation batch."""
    seed: int = 0
    """Sampling seed."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype."""

    def __post_init__(self) -> None:
        if not self.data:
            raise SystemExit("polaris profile: --data FILE_OR_HUB_ID is required")
        if self.k < 1:
            raise SystemExit("polaris profile: --k must be at least 1")


def profile_main(config: ProfileConfig) -> int:
    from polaris.models.loading import load_model, set_threads
    from polaris.recipe import filter_by_pass_rate, pass_histogram
    from polaris.train.stages import profile_difficulty, write_records

    set_threads()
    problems = _load(config.data, config.limit)
    model, tokenizer = load_model(config.model, dtype=config.dtype)
    records = profile_difficulty(model, tokenizer, problems, k=config.k, temperature=config.temperature,
                                 max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
                                 seed=config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_records(records, out / "records.jsonl")
    kept = filter_by_pass_rate(records, min_correct=config.min_correct, max_correct=config.max_correct)
    write_json(out / "kept.ids.json", [r.problem_id for r in kept])
    histogram = pass_histogram((r.correct for r in records), config.k)
    write_json(out / "histogram.json", {"k": config.k, "all": histogram,
                                        "kept": pass_histogram((r.correct for r in kept), config.k)})
    print(f"pass counts 0/{config.k}..{config.k}/{config.k}: {histogram}")
    print(f"kept {len(kept)} of {len(records)} problems -> {out / 'kept.ids.json'}")
    return 0


@dataclass
class TemperatureConfig:
    """Search the rollout temperature: accuracy and distinct-4 diversity on a grid, then SPEC 2's rule
    (the start of the exploration zone, or with --target-diversity the lowest temperature reaching it)."""

    model: tyro.conf.Positional[str]
    """HF model folder or Hub id."""
    data: str = ""
    """Problems: a parquet/jsonl file or a Hub data set id."""
    grid: list[float] = field(default_factory=lambda: [0.6, 0.8, 1.0, 1.2, 1.4])
    """Temperatures to try."""
    problems: int = 64
    """Problems sampled from the data."""
    n: int = 8
    """Responses per problem and temperature."""
    max_new_tokens: int = 1024
    """Response budget."""
    accuracy_tolerance: float = 0.05
    """Absolute accuracy drop from the grid's best that is still acceptable."""
    target_diversity: float | None = None
    """Match this diversity (a later stage) instead of finding the exploration start."""
    min_temperature: float | None = None
    """With --target-diversity: never go below this (the previous stage's temperature)."""
    out: str = "temperature.json"
    """Where to write the grid and the choice."""
    ids: str | None = None
    """Only problems whose ids are in this JSON list (e.g. a profile's kept.ids.json)."""
    batch_size: int = 512
    """Sequences per generation batch."""
    seed: int = 0
    """Sampling seed."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype."""

    def __post_init__(self) -> None:
        if not self.data:
            raise SystemExit("polaris temperature: --data FILE_OR_HUB_ID is required")
        if not self.grid or any(t <= 0 for t in self.grid):
            raise SystemExit("polaris temperature: --grid needs positive temperatures")


def temperature_main(config: TemperatureConfig) -> int:
    from polaris.models.loading import load_model, set_threads
    from polaris.recipe import choose_exploration_temperature, match_diversity_temperature
    from polaris.train.stages import search_temperatures

    set_threads()
    problems = _load(config.data, None, config.ids)
    sample = random.Random(f"{config.seed}:temperature").sample(problems, min(config.problems, len(problems)))
    model, tokenizer = load_model(config.model, dtype=config.dtype)
    points = search_temperatures(model, tokenizer, sample, sorted(config.grid), n=config.n,
                                 max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
                                 seed=config.seed)
    if config.target_diversity is None:
        chosen = choose_exploration_temperature(points, accuracy_tolerance=config.accuracy_tolerance)
        rule = "exploration-start"
    else:
        chosen = match_diversity_temperature(points, config.target_diversity, min_temperature=config.min_temperature,
                                             accuracy_tolerance=config.accuracy_tolerance)
        rule = "match-diversity"
    write_json(config.out, {"rule": rule, "chosen": chosen, "target_diversity": config.target_diversity,
                            "points": [p.__dict__ for p in points]})
    for p in points:
        mark = "  <- chosen" if abs(p.temperature - chosen) < 1e-9 else ""
        print(f"T={p.temperature:.2f}  accuracy {p.accuracy:.3f}  distinct-4 {p.diversity:.3f}{mark}")
    return 0


@dataclass
class TrainConfig:
    """Train one GRPO stage with the POLARIS recipe (rescue, substitution, clip-higher, no KL).
    Re-running the same command resumes from the last checkpoint in --out."""

    model: tyro.conf.Positional[str]
    """HF model folder or Hub id to start from."""
    data: str = ""
    """Problems: a parquet/jsonl file or a Hub data set id."""
    out: str = "train-out"
    """Output directory: checkpoints (work/), the final model (model/), logs (logs/)."""
    ids: str | None = None
    """Only problems whose ids are in this JSON list (a profile's kept.ids.json)."""
    stage: int = 1
    """Stage number, for logs and the difficulty log."""
    steps: int = 20
    """Optimizer steps."""
    temperature: float = 1.0
    """Rollout temperature."""
    max_response_tokens: int = 1024
    """Response budget of rollouts."""
    batch_prompts: int = 16
    """Problems per batch."""
    rollouts: int = 8
    """Rollouts per problem."""
    learning_rate: float = 1e-6
    """Constant AdamW learning rate."""
    rescue: bool = True
    """Rollout rescue."""
    substitution: bool = True
    """Intra-batch informative substitution."""
    save_steps: int = 5
    """Checkpoint cadence."""
    seed: int = 0
    """Seed of sampling and recipe decisions."""
    limit: int | None = None
    """Only the first N problems."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype."""

    def __post_init__(self) -> None:
        if not self.data:
            raise SystemExit("polaris train: --data FILE_OR_HUB_ID is required")
        if self.rollouts < 2:
            raise SystemExit("polaris train: --rollouts must be at least 2 (GRPO compares rollouts)")
        if self.steps < 1:
            raise SystemExit("polaris train: --steps must be at least 1")


def train_main(config: TrainConfig) -> int:
    from polaris.config import StageSettings, TrainSettings
    from polaris.models.loading import set_threads
    from polaris.recipe import DifficultyLog
    from polaris.train.stages import StagePlan, train_stage

    set_threads()
    problems = _load(config.data, config.limit, config.ids)
    out = Path(config.out)
    stage = StageSettings(steps=config.steps, max_response_tokens=config.max_response_tokens,
                          temperature=config.temperature)
    train = TrainSettings(batch_prompts=config.batch_prompts, rollouts=config.rollouts,
                          learning_rate=config.learning_rate, rescue=config.rescue,
                          substitution=config.substitution, save_steps=config.save_steps)
    plan = StagePlan(index=config.stage, settings=stage, temperature=config.temperature, problems=problems)
    result = train_stage(Path(config.model), plan, train, seed=config.seed, work_dir=out / "work",
                         final_dir=out / "model", logs_dir=out / "logs",
                         difficulty_log=DifficultyLog(out / "logs" / "difficulty.jsonl"), dtype=config.dtype)
    log(f"[polaris] trained {result['steps']} steps -> {out / 'model'}")
    return 0

