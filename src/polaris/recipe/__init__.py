"""The POLARIS recipe, engine-neutral: pure functions over groups of scored rollouts.

Nothing here imports torch, a trainer or model code (standard library only), so an adapter for any
RL engine (TRL, verl, OpenRLHF) can reuse it unchanged. Every function that draws takes a
``random.Random``; derive it per step (``random.Random(f"{seed}:{stage}:{step}")``) so every rank
of a distributed run decides identically.

Modules, in the order a training step uses them:

- :mod:`~polaris.recipe.groups` — :class:`Rollout`, :class:`Group`.
- :mod:`~polaris.recipe.difficulty` — profile records, the pass-rate filter, the per-step
  difficulty log and the between-stage drop rule (docs/method.md § Difficulty-aware data).
- :mod:`~polaris.recipe.diversity`, :mod:`~polaris.recipe.temperature` — distinct-4 diversity and
  the temperature rules (docs/method.md § Diversity-based temperature).
- :mod:`~polaris.recipe.rescue`, :mod:`~polaris.recipe.substitution` — keeping every group
  informative (docs/method.md § Informative batches); :mod:`~polaris.recipe.batch` runs them in order.
- :mod:`~polaris.recipe.dynamic`, :mod:`~polaris.recipe.overlong` — DAPO's dynamic sampling (an
  alternative to rescue and substitution) and soft overlong punishment, both off by default
  (docs/method.md § Dynamic sampling and overlong shaping).
- :mod:`~polaris.recipe.advantages` — GRPO advantages (docs/method.md § The objective).
- :mod:`~polaris.recipe.metrics` — avg@k, pass@k and the per-step ``recipe/`` metrics (docs/method.md § Evaluation protocol).

See ``docs/recipe.md`` for a worked example.
"""

from polaris.recipe.advantages import batch_advantages, grpo_advantages
from polaris.recipe.batch import BatchOutcome, group_accuracies, process_batch
from polaris.recipe.difficulty import (
    DEFAULT_DROP_THRESHOLD,
    DifficultyLog,
    DifficultyRecord,
    filter_by_pass_rate,
    pass_histogram,
    problems_to_drop,
    record_from_group,
)
from polaris.recipe.diversity import distinct_n, mean_distinct_n
from polaris.recipe.dynamic import (
    FillResult,
    choose_extra_problems,
    dynamic_metrics,
    extra_request,
    fill_slots,
    zero_advantage_slots,
)
from polaris.recipe.groups import CORRECT_THRESHOLD, Group, Origin, Rollout, is_correct
from polaris.recipe.metrics import (
    avg_at_k,
    batch_metrics,
    best_at_k,
    mean_pass_at_k,
    pass_at_k,
    ratio_by_length,
)
from polaris.recipe.overlong import overlong_metrics, overlong_penalty, shaped_rewards
from polaris.recipe.rescue import RescueStore
from polaris.recipe.substitution import SubstitutionResult, copy_group, substitute_informative
from polaris.recipe.temperature import (
    DEFAULT_ACCURACY_TOLERANCE,
    TemperaturePoint,
    choose_exploration_temperature,
    match_diversity_temperature,
    temperature_grid,
)

__all__ = [
    "CORRECT_THRESHOLD",
    "DEFAULT_ACCURACY_TOLERANCE",
    "DEFAULT_DROP_THRESHOLD",
    "BatchOutcome",
    "DifficultyLog",
    "DifficultyRecord",
    "FillResult",
    "Group",
    "Origin",
    "RescueStore",
    "Rollout",
    "SubstitutionResult",
    "TemperaturePoint",
    "avg_at_k",
    "batch_advantages",
    "batch_metrics",
    "best_at_k",
    "choose_exploration_temperature",
    "choose_extra_problems",
    "copy_group",
    "distinct_n",
    "dynamic_metrics",
    "extra_request",
    "fill_slots",
    "filter_by_pass_rate",
    "group_accuracies",
    "grpo_advantages",
    "is_correct",
    "match_diversity_temperature",
    "mean_distinct_n",
    "mean_pass_at_k",
    "overlong_metrics",
    "overlong_penalty",
    "pass_at_k",
    "pass_histogram",
    "problems_to_drop",
    "process_batch",
    "ratio_by_length",
    "record_from_group",
    "shaped_rewards",
    "substitute_informative",
    "temperature_grid",
    "zero_advantage_slots",
]
