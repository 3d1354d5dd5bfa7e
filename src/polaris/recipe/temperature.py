"""Choosing the sampling temperature from diversity and accuracy (docs/method.md § Diversity-based temperature).

The paper measures, on a grid of temperatures, the model's accuracy and the diversity of its
rollouts (:func:`polaris.recipe.diversity.mean_distinct_n`). For Qwen3-4B it sees three zones:
a *robust* zone (T ≈ 0.6–1.4) where accuracy is flat while diversity rises, a *controlled
exploration* zone (T ≈ 1.45–1.55) where accuracy has only started to decline, and *collapse*
(T > 1.55; AIME24 50.0 at 1.6, 32.7 at 1.7). Training samples at the highest temperature that
still has the robust zone's accuracy — the start of the exploration zone, 1.4 for Qwen3-4B and 0.7
for R1-Distill-7B — because more diverse rollouts give GRPO more distinct outcomes to compare
(1.4 beat 0.6 by ~2.5 AIME24 points) while a collapsed model only produces noise.

Rule for the first stage (:func:`choose_exploration_temperature`)
----------------------------------------------------------------
Sort the grid by temperature (temperatures must be distinct). Let ``best`` be the grid's highest
accuracy. A point is

- *accurate* when ``accuracy >= best - accuracy_tolerance``. The tolerance is **absolute**, in
  accuracy units (0.01 = one avg@k point), because the noise of an avg@k estimate is absolute
  too; set it to about one standard error of your accuracy estimate. Default 0.01.
- *diverse* when its diversity is above every lower temperature's diversity by more than
  ``min_diversity_gain`` (default 0.0: strictly higher). The lowest grid point is diverse by
  definition. Raising T past a point where diversity stops growing buys risk and no exploration.

The answer is the **highest temperature that is both accurate and diverse**. The grid has no ties
to break (distinct temperatures), so the answer is unique. If no point is both (diversity peaks
below the accurate points), the fallback is the highest temperature among the points with the best
accuracy. The rule does not require the accurate points to be contiguous: a noisy dip inside the
flat zone must not end the zone early, and past collapse accuracy does not come back.

On the paper's Qwen3-4B shape (flat ≈ 0.74 up to 1.4, 1–4 points lower at 1.45–1.55, 0.50 at 1.6)
the rule returns 1.4: the first temperature whose accuracy has left the flat zone's noise band is
where the exploration zone starts, and the chosen temperature is the last one before it.

Rule for later stages (:func:`match_diversity_temperature`)
-----------------------------------------------------------
RL lowers the policy's entropy, so at each new stage the grid is re-measured on the current model
and the temperature raised until diversity matches the previous stage's measured diversity:
the **lowest temperature ``>= min_temperature``** (the previous stage's temperature: it never goes
down) **whose diversity reaches ``target_diversity``**. With a 0.05 grid this moves in 0.05 steps
when diversity fell a little and jumps further when it fell a lot, as the paper does. When
``accuracy_tolerance`` is given, points below ``best - accuracy_tolerance`` (best over the whole
grid) are not eligible, so matching diversity never walks into collapse.

Fallback when no eligible point reaches the target: the highest eligible temperature (the most
diverse one the accuracy allows); when no point at or above ``min_temperature`` is eligible, the
lowest grid temperature at or above ``min_temperature`` (stay where the previous stage was).
Without ``accuracy_tolerance`` every point at or above ``min_temperature`` is eligible, so pass one
whenever the grid extends into the collapse zone.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Absolute accuracy tolerance (one avg@k point) used by :func:`choose_exploration_temperature`.
DEFAULT_ACCURACY_TOLERANCE = 0.01

# Grid temperatures are decimals like 1.45; comparisons allow for their binary representation.
_FUZZ = 1e-9


@dataclass(frozen=True)
class TemperaturePoint:
    """One grid point: accuracy (e.g. avg@k in [0, 1]) and rollout diversity (distinct-4 in [0, 1])."""

    temperature: float
    accuracy: float
    diversity: float


def _sorted_grid(points: Sequence[TemperaturePoint]) -> list[TemperaturePoint]:
    if not points:
        raise ValueError("the temperature grid is empty")
    for p in points:
        if not all(math.isfinite(v) for v in (p.temperature, p.accuracy, p.diversity)):
            raise ValueError(f"non-finite value in temperature grid point {p}")
    grid = sorted(points, key=lambda p: p.temperature)
    for a, b in itertools.pairwise(grid):
        if b.temperature - a.temperature <= _FUZZ:
            raise ValueError(f"temperature {a.temperature} appears twice in the grid")
    return grid


def choose_exploration_temperature(
    points: Sequence[TemperaturePoint],
    *,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
    min_diversity_gain: float = 0.0,
) -> float:
    """The start of the controlled-exploration zone: the highest accurate and still-diverse temperature.

    See the module docstring for the exact rule, its parameters and its fallback.
    """
    if accuracy_tolerance < 0:
        raise ValueError(f"accuracy_tolerance must be >= 0, got {accuracy_tolerance}")
    grid = _sorted_grid(points)
    best = max(p.accuracy for p in grid)
    floor = best - accuracy_tolerance - _FUZZ
    chosen: float | None = None
    running_max = -math.inf
    for p in grid:
        diverse = p.diversity > running_max + min_diversity_gain
        running_max = max(running_max, p.diversity)
        if diverse and p.accuracy >= floor:
            chosen = p.temperature
    if chosen is None:
        chosen = max(p.temperature for p in grid if p.accuracy == best)
    return chosen


def match_diversity_temperature(
    points: Sequence[TemperaturePoint],
    target_diversity: float,
    *,
    min_temperature: float | None = None,
    accuracy_tolerance: float | None = None,
) -> float:
    """The lowest temperature ``>= min_temperature`` whose diversity reaches ``target_diversity``.

    See the module docstring for eligibility under ``accuracy_tolerance`` and the fallbacks.
    """
    if accuracy_tolerance is not None and accuracy_tolerance < 0:
        raise ValueError(f"accuracy_tolerance must be >= 0, got {accuracy_tolerance}")
    grid = _sorted_grid(points)
    above = [p for p in grid if min_temperature is None or p.temperature >= min_temperature - _FUZZ]
    if not above:
        raise ValueError(
            f"no grid temperature is >= min_temperature={min_temperature}; "
            f"extend the grid (it ends at {grid[-1].temperature})"
        )
    if accuracy_tolerance is None:
        eligible = above
    else:
        floor = max(p.accuracy for p in grid) - accuracy_tolerance - _FUZZ
        eligible = [p for p in above if p.accuracy >= floor]
    for p in eligible:
        if p.diversity >= target_diversity - _FUZZ:
            return p.temperature
    if eligible:
        return eligible[-1].temperature
    return above[0].temperature


def temperature_grid(start: float, stop: float, step: float) -> list[float]:
    """``start, start+step, ..., stop`` inclusive, each value rounded so 0.6 + 3*0.05 == 0.75."""
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    if stop < start:
        raise ValueError(f"stop ({stop}) must be >= start ({start})")
    count = math.floor((stop - start) / step + _FUZZ)
    return [round(start + i * step, 10) for i in range(count + 1)]
