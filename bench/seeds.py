"""How much does ``make run`` gain, over seeds? The default recipe run at several seeds on this machine,
with the gain of every stage over the base model as mean ± sd.

    .venv/bin/python bench/seeds.py                 # seeds 0 1 2 of recipes/tiny-cpu.yaml (~4 min per missing seed)
    .venv/bin/python bench/seeds.py --warm-start    # the warm start at each seed too (+2.5-5 min per missing seed)
    .venv/bin/python bench/seeds.py --seeds 0 1 2 3 --recipe recipes/tiny-cpu.yaml

Seed 0 is ``make run`` itself (its run directory, ``runs/NAME``); seed N runs into ``runs/NAME-sN`` as
``polaris run RECIPE --set seed=N --run-dir runs/NAME-sN`` would. What is missing is run first, and a
run directory that is already complete is read as it is (resumable: kill it and run it again).

The built-in task's data and warm start do not depend on ``seed`` (they have their own,
``data.tiny.seed`` and ``warm_start.seed``), so a seed's run takes them from seed 0's run instead of
making them again: its ``prepare`` and ``warm_start`` steps copy seed 0's files and results. The seeds
therefore differ in what the recipe samples (profile, temperature searches, rollouts, evaluation), not
in the base model. ``make run``'s warm start is the model shipped with polaris (``bench/tiny_base.py``),
the same on every machine; what RL does from it still follows the CPU's floating-point path.

``--warm-start`` measures how much another base model moves the figures: seed N also sets
``warm_start.seed=N`` (another initialisation and order of worked examples) and makes its own warm start
here, in ``runs/NAME-wsN``; seed 0 is still ``make run``.

Writes ``bench/results/seeds.md`` and ``.json`` (``--warm-start``: ``seeds-warm-start.*``; ``--out``): per seed the held-out accuracy (avg@k) of
the base model and of every stage, the temperatures chosen and the minutes the run took; then mean ± sd
over seeds and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ablation_analysis import mean_std
from polaris.config import RecipeConfig, load_recipe
from polaris.errors import PolarisError
from polaris.io import write_json
from polaris.run.layout import PREPARE, PROFILE, REPORT, WARM_START, RunLayout, temperature_step
from polaris.run.plan import build_plan

#: The steps a seed's run takes from seed 0's: they depend on ``data.tiny`` and ``warm_start`` only.
SHARED_STEPS = (PREPARE, WARM_START)


def seed_overrides(seed: int, *, warm_start: bool = False) -> list[str]:
    """The recipe keys seed N sets: ``seed``, and with ``warm_start`` the warm start's seed too."""
    if seed == 0:
        return []
    return [f"seed={seed}", *([f"warm_start.seed={seed}"] if warm_start else [])]


def seed_layout(recipe: RecipeConfig, seed: int, *, warm_start: bool = False) -> RunLayout:
    """Seed 0: the recipe's own run directory (``make run``'s); seed N: the same with ``-sN`` (``-wsN``
    with its own warm start)."""
    default = RunLayout.of(recipe.name)
    if seed == 0:
        return default
    return RunLayout(default.root.with_name(f"{default.root.name}-{'ws' if warm_start else 's'}{seed}"))


def share_steps(source: RunLayout, target: RunLayout, recipe: RecipeConfig, copies: dict[str, Sequence[tuple[Path, Path]]],
                *, origin: str = "") -> None:
    """Record each step of ``copies`` as finished in ``target`` (a run of ``recipe``), with ``source``'s result,
    after copying the step's files (``(from, to)`` pairs, files or folders). The caller vouches that the
    step's inputs are the same in both runs; a step ``target`` has finished already is left alone."""
    from polaris.run.pipeline import RunDir

    missing = [step for step in copies if not finished(source, step)]
    if missing:
        raise PolarisError(f"{source.root} has not finished {', '.join(missing)}: nothing to share")
    done = source.read_summary()
    run = RunDir(target, recipe, source=origin)

    def copy(paths: Sequence[tuple[Path, Path]], step: str):
        def go() -> Any:
            for src, dst in paths:
                if src.is_dir():
                    shutil.copytree(src, dst, dirs_exist_ok=True)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
            return done.result(step)

        return go

    for step, paths in copies.items():
        run.step(step, copy(paths, step))


def share_warm_start(source: RunLayout, target: RunLayout, recipe: RecipeConfig, *, origin: str = "") -> None:
    """Give ``target`` (a run at another seed of the same recipe) ``source``'s data and warm-started model,
    recorded as its own ``prepare`` and ``warm_start`` steps (with ``source``'s results)."""
    splits = [(source.split(name), target.split(name)) for name in ("arith-train", "arith-test")]
    share_steps(source, target, recipe, {
        PREPARE: [*splits, (source.model("init"), target.model("init"))],
        WARM_START: [(source.model("base"), target.model("base"))],
    }, origin=origin)


def seed_arguments(recipe_path: Path, seed: int, layout: RunLayout, *, warm_start: bool = False) -> list[str]:
    """``run RECIPE`` for seed 0 (``make run``), ``run RECIPE --set seed=N [--set warm_start.seed=N]
    --run-dir DIR`` for the others."""
    if seed == 0:
        return ["run", str(recipe_path)]
    sets = [arg for key in seed_overrides(seed, warm_start=warm_start) for arg in ("--set", key)]
    return ["run", str(recipe_path), *sets, "--run-dir", str(layout.root)]


def run_seed(arguments: Sequence[str]) -> None:
    """``polaris ARGUMENTS`` in a process of its own (one run's threads and memory, as ``make run``'s)."""
    polaris = Path(sys.executable).with_name("polaris")
    print(f"[seeds] polaris {' '.join(arguments)}", file=sys.stderr, flush=True)
    subprocess.run([str(polaris if polaris.exists() else "polaris"), *arguments], check=True)


def finished(layout: RunLayout, step: str) -> bool:
    """Whether the run in ``layout`` has finished ``step``."""
    summary = layout.read_summary()
    return summary is not None and summary.done(step)


def read_seed(recipe: RecipeConfig, seed: int, layout: RunLayout, *, shared: bool = True) -> dict[str, Any]:
    """One finished run's figures: avg@k of the base model and each stage on the first benchmark, the
    temperatures, minutes (a warm start ``shared`` from seed 0 counted once, in seed 0's)."""
    if not finished(layout, REPORT):
        raise PolarisError(f"{layout.root} is not a finished run")
    summary = layout.read_summary()
    steps, results = summary.steps, summary.results
    models = list(build_plan(recipe).eval.models)  # the base model, then every stage's
    stages = models[1:]
    benchmark = next(iter(results[models[0]]))
    accuracy = {name: 100 * results[name][benchmark]["avg@k"] for name in models}
    own = [name for name in steps if seed == 0 or not shared or name not in SHARED_STEPS]
    return {
        "seed": seed,
        "run": str(layout.root),
        "benchmark": benchmark,
        "k": results[models[0]][benchmark]["k"],
        "avg@k": accuracy,
        "gain": {name: accuracy[name] - accuracy[models[0]] for name in stages},
        "temperatures": [
            summary.result(temperature_step(k))["temperature"] for k in range(1, len(stages) + 1)
        ],
        "histogram": summary.result(PROFILE)["histogram"],
        "minutes": sum(steps[name].seconds for name in own) / 60,
        "warm_start_minutes": steps[WARM_START].seconds / 60,
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    values = list(values)
    mean, sd = mean_std(values)
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values)}


def gain_spread(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """:func:`spread` of the last stage's gain over the base model."""
    last = list(rows[0]["gain"])[-1]
    return spread([r["gain"][last] for r in rows])


def machine() -> str:
    """The CPU model and core count (``lscpu``, else ``platform``), e.g. ``AMD EPYC, 2 cores``."""
    name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def format_markdown(
    rows: Sequence[dict[str, Any]], command: str, where: str, *, warm_start: bool = False
) -> str:
    names = list(rows[0]["avg@k"])  # the base model, then every stage
    stages = names[1:]
    bench, k = rows[0]["benchmark"], rows[0]["k"]
    head = ["seed", *names, "gain", "temperatures", "minutes"]
    lines = [
        f"# `make run` over seeds{' and warm starts' if warm_start else ''}: {bench}, avg@{k}",
        "",
        f"Command: `{command}`. Machine: {where}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [str(r["seed"]), *(f"{r['avg@k'][n]:.1f}" for n in names)]
        cells += [f"{r['gain'][stages[-1]]:+.1f}", " / ".join(f"{t:.2f}" for t in r["temperatures"])]
        cells.append(f"{r['minutes']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    columns = {name: spread([r["avg@k"][name] for r in rows]) for name in names}
    means = [f"{c['mean']:.1f} ± {c['sd']:.1f}" for c in columns.values()]
    gain = gain_spread(rows)
    gain_text = f"{gain['mean']:+.1f} ± {gain['sd']:.1f}"
    lines.append("| mean ± sd | " + " | ".join(means) + f" | {gain_text} | | |")
    base, final = columns[names[0]], columns[names[-1]]
    lines += [
        "",
        f"Gain of the last stage over the base model: **{gain_text} points** (mean ± sd over "
        f"{len(rows)} seeds; range {gain['min']:+.1f} to {gain['max']:+.1f}); base "
        f"{base['mean']:.1f}, last stage {final['mean']:.1f}.",
        "",
        *(
            [
                "Minutes: each run's steps, its own warm start included. Seed N sets `warm_start.seed=N` as "
                "well: each seed starts from another warm-started model (another initialisation and order of "
                "worked examples), so the spread here includes the warm start's."
            ]
            if warm_start
            else [
                "Minutes: each run's own steps; the warm start "
                f"({rows[0]['warm_start_minutes']:.1f} min: the model shipped with polaris, when the recipe's "
                "settings are the ones it was made with) is made once, by seed 0, and shared. Every seed "
                "starts from the same warm-started model; what RL does from it follows the CPU's floating-point "
                "path, so another CPU type can give other figures (`--warm-start` measures how much another "
                "warm start changes them)."
            ]
        ),
        "",
        "Difficulty profile of the base model (problems solved 0/8 .. 8/8):",
        "",
    ]
    lines += [f"- seed {r['seed']}: {', '.join(map(str, r['histogram']))}" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="recipes/tiny-cpu.yaml", help="a built-in model recipe")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="seed N also sets warm_start.seed=N and makes its own warm start (runs/NAME-wsN)",
    )
    parser.add_argument(
        "--out", default="bench/results", help="results directory (seeds[-warm-start].md and .json)"
    )
    args = parser.parse_args(argv)
    try:
        recipe_path = Path(args.recipe)
        recipe = load_recipe(recipe_path)
        if not recipe.builtin_model:
            raise PolarisError(f"{recipe_path}: bench/seeds.py runs the built-in model's recipes")
        rows, vary = [], args.warm_start
        for seed in args.seeds:
            layout = seed_layout(recipe, seed, warm_start=vary)
            seeded = load_recipe(recipe_path, seed_overrides(seed, warm_start=vary))
            if seed != 0 and not vary and not finished(layout, "warm_start"):
                source = seed_layout(recipe, 0)
                if not finished(source, "warm_start"):
                    run_seed(seed_arguments(recipe_path, 0, source))
                share_warm_start(source, layout, seeded, origin=f"{recipe_path} --set seed={seed}")
            if not finished(layout, REPORT):
                run_seed(seed_arguments(recipe_path, seed, layout, warm_start=vary))
            rows.append(read_seed(seeded, seed, layout, shared=not vary))
    except (PolarisError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/seeds.py " + " ".join(argv if argv is not None else sys.argv[1:])
    where = machine()
    name = "seeds-warm-start" if vary else "seeds"
    text = format_markdown(rows, command.strip(), where, warm_start=vary)
    (out / f"{name}.md").write_text(text, encoding="utf-8")
    write_json(
        out / f"{name}.json",
        {"recipe": str(recipe_path), "machine": where, "seeds": rows, "gain": gain_spread(rows)},
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
