"""bench/seeds.py: the default run over seeds. Its figures are read from finished run directories (made
here by hand, with known accuracies), a seed's run borrows seed 0's warm start, and the table's mean ± sd is
the one computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_scripts import load_bench
from polaris.config import load_recipe
from polaris.errors import PolarisError
from polaris.io import read_json
from polaris.run.layout import RunLayout, RunSummary
from polaris.run.pipeline import RunDir, recipe_digest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tiny-cpu.yaml"
seeds = load_bench("seeds")


def _finished_run(layout: RunLayout, seed: int, accuracy: list[float], temperatures: list[float]) -> None:
    """A finished three-stage run: summary steps with seconds, and avg@8 ``accuracy`` (base, stages) in %."""
    recipe = load_recipe(RECIPE, [f"seed={seed}"])
    names = ["base", "stage-1", "stage-2", "stage-3"]
    steps = {
        "prepare": {"status": "done", "seconds": 6.0, "result": {"train": 2048}},
        "warm_start": {"status": "done", "seconds": 480.0, "result": {"loss": 0.1}},
        "profile": {
            "status": "done",
            "seconds": 60.0,
            "result": {"histogram": [seed, 1, 2, 3, 4, 5, 6, 7, 8]},
        },
    }
    for k, t in enumerate(temperatures, 1):
        steps[f"temperature:{k}"] = {"status": "done", "seconds": 12.0, "result": {"temperature": t}}
        steps[f"train:{k}"] = {"status": "done", "seconds": 120.0, "result": {"steps": 80}}
    steps["report"] = {"status": "done", "seconds": 6.0, "result": {}}
    layout.root.mkdir(parents=True)
    layout.write_summary(RunSummary.from_dict(
        {
            "recipe": recipe.name,
            "recipe_sha256": recipe_digest(recipe),
            "steps": steps,
            "results": {
                n: {"arith-test": {"avg@k": a / 100, "k": 8}} for n, a in zip(names, accuracy, strict=True)
            },
        }
    ))


def test_seed_directories_and_commands():
    recipe = load_recipe(RECIPE)
    assert seeds.seed_layout(recipe, 0).root == Path("runs") / "tiny-cpu"  # make run's own
    s2 = seeds.seed_layout(recipe, 2)
    assert s2.root == Path("runs") / "tiny-cpu-s2"
    assert seeds.seed_arguments(RECIPE, 0, seeds.seed_layout(recipe, 0)) == ["run", str(RECIPE)]
    assert seeds.seed_arguments(RECIPE, 2, s2) == [
        "run",
        str(RECIPE),
        "--set",
        "seed=2",
        "--run-dir",
        str(s2.root),
    ]


def test_with_their_own_warm_start_seeds_set_both_seeds_and_use_their_own_directories():
    recipe = load_recipe(RECIPE)
    assert seeds.seed_overrides(0, warm_start=True) == [] and seeds.seed_overrides(2) == ["seed=2"]
    assert seeds.seed_overrides(2, warm_start=True) == ["seed=2", "warm_start.seed=2"]
    assert seeds.seed_layout(recipe, 0, warm_start=True).root == Path("runs") / "tiny-cpu"
    ws2 = seeds.seed_layout(recipe, 2, warm_start=True)
    assert ws2.root == Path("runs") / "tiny-cpu-ws2"
    args = seeds.seed_arguments(RECIPE, 2, ws2, warm_start=True)
    assert args == [
        "run",
        str(RECIPE),
        "--set",
        "seed=2",
        "--set",
        "warm_start.seed=2",
        "--run-dir",
        str(ws2.root),
    ]
    # the recipe those arguments run is another warm start's: its run directory is not seed 2's shared one
    assert recipe_digest(load_recipe(RECIPE, seeds.seed_overrides(2, warm_start=True))) != recipe_digest(
        load_recipe(RECIPE, ["seed=2"])
    )


def test_with_their_own_warm_start_nothing_is_shared_and_minutes_count_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(RECIPE)
    _finished_run(seeds.seed_layout(recipe, 0), 0, [50.0, 53.0, 55.0, 56.0], [0.6, 0.65, 0.75])
    ran = []

    def fake_run(arguments):  # polaris run makes the whole run, its warm start included
        ran.append(arguments)
        layout = RunLayout(arguments[arguments.index("--run-dir") + 1])
        _finished_run(layout, 1, [46.0, 50.0, 54.0, 56.0], [0.8, 0.85, 0.85])
        summary = layout.read_summary()
        summary.recipe_sha256 = recipe_digest(seeded)
        layout.write_summary(summary)

    seeded = load_recipe(RECIPE, ["seed=1", "warm_start.seed=1"])
    monkeypatch.setattr(seeds, "run_seed", fake_run)
    monkeypatch.setattr(seeds, "share_warm_start", lambda *a, **k: pytest.fail("shared a warm start"))
    assert seeds.main(["--warm-start", "--seeds", "0", "1", "--out", "out", "--recipe", str(RECIPE)]) == 0
    assert ran == [
        seeds.seed_arguments(RECIPE, 1, seeds.seed_layout(recipe, 1, warm_start=True), warm_start=True)
    ]
    assert not (tmp_path / "out" / "seeds.md").exists()
    text = (tmp_path / "out" / "seeds-warm-start.md").read_text()
    assert text.startswith("# `make run` over seeds and warm starts: arith-test, avg@8")
    # seed 1's minutes include its own prepare and warm start (6 + 480 s): 948 s as seed 0's
    assert "| 1 | 46.0 | 50.0 | 54.0 | 56.0 | +10.0 | 0.80 / 0.85 / 0.85 | 15.8 |" in text
    assert "**+8.0 ± 2.8 points**" in text and "sets `warm_start.seed=N` as well" in text
    assert read_json(tmp_path / "out" / "seeds-warm-start.json")["gain"]["mean"] == pytest.approx(8.0)


def test_figures_mean_and_sd_over_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(RECIPE)
    # gains 6, 7, 8: mean 7.0, sd 1.0; bases 50, 50, 53: mean 51.0, sd sqrt(3) = 1.7
    _finished_run(seeds.seed_layout(recipe, 0), 0, [50.0, 53.0, 55.0, 56.0], [0.6, 0.65, 0.75])
    _finished_run(seeds.seed_layout(recipe, 1), 1, [50.0, 54.0, 56.0, 57.0], [0.8, 0.95, 1.0])
    _finished_run(seeds.seed_layout(recipe, 2), 2, [53.0, 55.0, 58.0, 61.0], [0.8, 1.0, 1.15])

    row = seeds.read_seed(recipe, 1, seeds.seed_layout(recipe, 1))
    assert row["avg@k"] == pytest.approx({"base": 50.0, "stage-1": 54.0, "stage-2": 56.0, "stage-3": 57.0})
    assert row["gain"] == pytest.approx({"stage-1": 4.0, "stage-2": 6.0, "stage-3": 7.0})
    assert row["temperatures"] == [0.8, 0.95, 1.0] and row["histogram"][0] == 1
    # seed 1's own steps (3 x (12 + 120) + 60 + 6 s), not the warm start it shares; seed 0 counts it
    assert row["minutes"] == pytest.approx((3 * 132 + 66) / 60)
    assert seeds.read_seed(recipe, 0, seeds.seed_layout(recipe, 0))["minutes"] == pytest.approx(
        (3 * 132 + 66 + 486) / 60
    )

    # everything is finished: nothing runs
    monkeypatch.setattr(seeds, "run_seed", lambda arguments: pytest.fail(f"ran {arguments}"))
    assert seeds.main(["--recipe", str(RECIPE), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "seeds.md").read_text()
    assert "| 1 | 50.0 | 54.0 | 56.0 | 57.0 | +7.0 | 0.80 / 0.95 / 1.00 | 7.7 |" in text
    assert "| mean ± sd | 51.0 ± 1.7 | 54.0 ± 1.0 | 56.3 ± 1.5 | 58.0 ± 2.6 | +7.0 ± 1.0 | | |" in text
    assert "**+7.0 ± 1.0 points** (mean ± sd over 3 seeds; range +6.0 to +8.0)" in text
    assert "cores" in text  # the machine
    data = read_json(tmp_path / "out" / "seeds.json")
    assert data["gain"] == pytest.approx({"mean": 7.0, "sd": 1.0, "min": 6.0, "max": 8.0})
    assert [r["seed"] for r in data["seeds"]] == [0, 1, 2]


def test_a_seed_borrows_seed_zeros_warm_start_and_runs_the_rest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(RECIPE)
    source = seeds.seed_layout(recipe, 0)
    _finished_run(source, 0, [50.0, 53.0, 55.0, 56.0], [0.6, 0.65, 0.75])
    for name in ("arith-train", "arith-test"):
        source.split(name).parent.mkdir(parents=True, exist_ok=True)
        source.split(name).write_text(name)
    for name in ("init", "base"):
        source.model(name).mkdir(parents=True)
        (source.model(name) / "config.json").write_text(f'{{"name": "{name}"}}')

    ran = []

    def fake_run(arguments):  # what polaris run would leave: the seed's own finished run
        ran.append(arguments)
        target = seeds.seed_layout(recipe, 3)
        summary = target.read_summary()
        assert {n: s.status for n, s in summary.steps.items()} == {
            "prepare": "done",
            "warm_start": "done",
        }
        summary.steps.update(
            {k: v for k, v in source.read_summary().steps.items() if k not in summary.steps}
        )
        summary.results = source.read_summary().results
        target.write_summary(summary)

    monkeypatch.setattr(seeds, "run_seed", fake_run)
    assert seeds.main(["--recipe", str(RECIPE), "--seeds", "3", "--out", str(tmp_path / "out")]) == 0
    target = seeds.seed_layout(recipe, 3)
    assert ran == [["run", str(RECIPE), "--set", "seed=3", "--run-dir", str(target.root)]]
    # the data and both models are copies of seed 0's; the steps carry seed 0's results
    assert target.split("arith-test").read_text() == "arith-test"
    assert (target.model("base") / "config.json").read_text() == '{"name": "base"}'
    assert (target.model("init") / "config.json").exists()
    summary = target.read_summary()
    assert summary.result("warm_start") == {"loss": 0.1} and summary.result("prepare") == {"train": 2048}
    # the directory belongs to the recipe at seed 3 (polaris run --set seed=3 continues it), not seed 0's
    RunDir(target, load_recipe(RECIPE, ["seed=3"]))
    with pytest.raises(PolarisError, match="different recipe"):
        RunDir(target, recipe)


def test_no_warm_start_to_borrow_is_an_error(tmp_path):
    recipe = load_recipe(RECIPE, ["seed=1"])
    with pytest.raises(PolarisError, match="has not finished prepare, warm_start: nothing to share"):
        seeds.share_warm_start(RunLayout(tmp_path / "none"), RunLayout(tmp_path / "s1"), recipe)
