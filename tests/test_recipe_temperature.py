"""Temperature rules (docs/method.md § Diversity-based temperature) on grids shaped like the paper's measurements."""

import random

import pytest

from polaris.recipe import (
    TemperaturePoint,
    choose_exploration_temperature,
    match_diversity_temperature,
    temperature_grid,
)

# Qwen3-4B-like zones: accuracy flat ~0.74 on 0.6..1.4 (noise within ±0.005), slightly lower on
# 1.45..1.55, collapse above (0.50 at 1.6, 0.327 at 1.7); diversity rising with T.
# fmt: off
_FLAT = [0.740, 0.742, 0.738, 0.745, 0.741, 0.739, 0.743, 0.740, 0.737, 0.744, 0.741,
         0.739, 0.742, 0.740, 0.741, 0.738, 0.738]  # 0.6 .. 1.4 (17 points), best 0.745 at 0.75
_TAIL = [0.725, 0.715, 0.705, 0.500, 0.420, 0.327]  # 1.45 .. 1.7
# fmt: on


def qwen3_4b_grid(diversity=None):
    temps = temperature_grid(0.6, 1.7, 0.05)
    accs = _FLAT + _TAIL
    divs = diversity or [0.40 + 0.02 * i for i in range(len(temps))]
    return [TemperaturePoint(t, a, d) for t, a, d in zip(temps, accs, divs, strict=True)]


def test_grid_shape_is_what_the_tests_assume():
    grid = qwen3_4b_grid()
    assert len(grid) == 23
    assert grid[16].temperature == 1.4 and grid[17].temperature == 1.45 and grid[-1].temperature == 1.7


def test_qwen3_4b_shape_picks_1_4():
    # best 0.745, floor 0.735: 1.4 (0.738) is in, 1.45 (0.725) is out.
    assert choose_exploration_temperature(qwen3_4b_grid()) == 1.4


def test_order_of_points_does_not_matter():
    grid = qwen3_4b_grid()
    random.Random(0).shuffle(grid)
    assert choose_exploration_temperature(grid) == 1.4


def test_tolerance_is_absolute_and_inclusive():
    # floor 0.745 - 0.03 = 0.715: 1.5 (exactly 0.715) is accurate, 1.55 (0.705) is not.
    assert choose_exploration_temperature(qwen3_4b_grid(), accuracy_tolerance=0.03) == 1.5
    # zero tolerance: only the best point itself (0.75) qualifies
    assert choose_exploration_temperature(qwen3_4b_grid(), accuracy_tolerance=0.0) == 0.75


def test_diversity_that_stops_rising_caps_the_choice():
    divs = [0.40 + 0.02 * i for i in range(23)]
    for i in range(13, 23):  # from T=1.25 on, diversity stays at its 1.2 value
        divs[i] = divs[12]
    assert choose_exploration_temperature(qwen3_4b_grid(divs)) == 1.2
    # a required gain larger than the 0.02 steps leaves only the lowest temperature
    assert choose_exploration_temperature(qwen3_4b_grid(), min_diversity_gain=0.03) == 0.6


def test_r1_like_grid_picks_0_7():
    grid = [
        TemperaturePoint(0.5, 0.500, 0.30),
        TemperaturePoint(0.6, 0.550, 0.35),
        TemperaturePoint(0.7, 0.552, 0.40),
        TemperaturePoint(0.8, 0.530, 0.45),
        TemperaturePoint(0.9, 0.500, 0.50),
    ]
    assert choose_exploration_temperature(grid) == 0.7


def test_fallback_when_no_point_is_accurate_and_diverse():
    # 0.6 is diverse but inaccurate; 0.8 is accurate but less diverse than 0.6 -> best-accuracy point
    grid = [TemperaturePoint(0.6, 0.5, 0.9), TemperaturePoint(0.8, 0.7, 0.5)]
    assert choose_exploration_temperature(grid) == 0.8


def test_choose_rejects_bad_grids():
    with pytest.raises(ValueError, match="empty"):
        choose_exploration_temperature([])
    with pytest.raises(ValueError, match="twice"):
        choose_exploration_temperature([TemperaturePoint(1.0, 0.5, 0.5), TemperaturePoint(1.0, 0.6, 0.6)])
    with pytest.raises(ValueError, match="non-finite"):
        choose_exploration_temperature([TemperaturePoint(1.0, float("nan"), 0.5)])
    with pytest.raises(ValueError, match="tolerance"):
        choose_exploration_temperature(qwen3_4b_grid(), accuracy_tolerance=-0.1)


def stage2_grid():
    # the model after stage 1: diversity has fallen, accuracy flat up to 1.55, collapse above
    temps = [1.3, 1.35, 1.4, 1.45, 1.5, 1.55, 1.6, 1.65, 1.7]
    accs = [0.76, 0.76, 0.76, 0.76, 0.75, 0.75, 0.60, 0.50, 0.40]
    divs = [0.70, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80]  # 1.3 oddly high: below min, ignored
    return [TemperaturePoint(t, a, d) for t, a, d in zip(temps, accs, divs, strict=True)]


def test_match_picks_lowest_temperature_reaching_target():
    grid = stage2_grid()
    assert match_diversity_temperature(grid, 0.62, min_temperature=1.4) == 1.55
    assert match_diversity_temperature(grid, 0.60, min_temperature=1.4) == 1.5  # reaching = >=
    assert match_diversity_temperature(grid, 0.52, min_temperature=1.4) == 1.45  # one 0.05 step


def test_match_never_goes_below_min_temperature():
    grid = stage2_grid()
    # 1.3 has diversity 0.70 but lies below the previous stage's temperature
    assert match_diversity_temperature(grid, 0.68, min_temperature=1.4) == 1.6
    assert match_diversity_temperature(grid, 0.10, min_temperature=1.45) == 1.45
    assert match_diversity_temperature(grid, 0.68) == 1.3  # without a minimum the whole grid counts
    # float drift in the caller's minimum (1.4 + 0.05 = 1.4500000000000002) still admits 1.45
    assert match_diversity_temperature(grid, 0.10, min_temperature=1.4 + 0.05) == 1.45


def test_match_accuracy_guard_and_fallbacks():
    grid = stage2_grid()
    # target only reached at 1.65+, which collapsed: without a guard it is taken...
    assert match_diversity_temperature(grid, 0.74, min_temperature=1.4) == 1.65
    # ...with one (floor 0.76 - 0.02 = 0.74) the fallback is the highest eligible temperature
    assert match_diversity_temperature(grid, 0.74, min_temperature=1.4, accuracy_tolerance=0.02) == 1.55
    # target out of reach entirely, no guard: highest temperature at or above the minimum
    assert match_diversity_temperature(grid, 0.99, min_temperature=1.4) == 1.7
    # nothing eligible at or above the minimum: stay at the lowest temperature >= minimum
    assert match_diversity_temperature(grid, 0.99, min_temperature=1.6, accuracy_tolerance=0.02) == 1.6


def test_match_rejects_minimum_beyond_grid():
    with pytest.raises(ValueError, match="extend the grid"):
        match_diversity_temperature(stage2_grid(), 0.5, min_temperature=1.75)


def test_temperature_grid_is_inclusive_and_exact():
    assert temperature_grid(0.6, 1.0, 0.05) == [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
    assert temperature_grid(1.4, 1.55, 0.05) == [1.4, 1.45, 1.5, 1.55]
    assert temperature_grid(0.0, 0.12, 0.05) == [0.0, 0.05, 0.1]
    assert temperature_grid(1.0, 1.0, 0.05) == [1.0]
    with pytest.raises(ValueError):
        temperature_grid(1.0, 0.5, 0.05)
    with pytest.raises(ValueError):
        temperature_grid(0.5, 1.0, 0.0)
