"""Make the warm-started tiny model that ships with polaris (``src/polaris/models/tiny_base/``).

``make run`` takes it instead of running its warm start whenever the recipe's ``warm_start`` and
``data.tiny`` settings are the ones it was made with (``warm_start.shipped``, on by default): the run
then starts from the same weights on every machine, and skips minutes of supervised training. This
script makes it with the project's own warm start: the ``prepare`` and ``warm_start`` steps of
``recipes/tiny-cpu.yaml`` with ``warm_start.shipped=false``, in ``runs/tiny-base``, then copies the
model folder into the package with its record (the settings, the warm start's result, the machine,
the seconds and the weights' sha256). Run it again after changing the warm start, the tiny model or
``recipes/tiny-cpu.yaml``'s ``warm_start``/``data.tiny``; it says whether the weights changed.

    .venv/bin/python bench/tiny_base.py            # ~2.5-5 min on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from polaris.config import load_recipe  # noqa: E402
from polaris.io import read_json, write_json  # noqa: E402
from polaris.models.tiny import SHIPPED_BASE, SHIPPED_RECORD, base_settings  # noqa: E402
from polaris.run.layout import PREPARE, WARM_START, RunLayout  # noqa: E402
from seeds import machine  # noqa: E402

RECIPE = REPO / "recipes" / "tiny-cpu.yaml"
WEIGHTS = "model.safetensors"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_base(recipe_path: Path, work: Path, target: Path) -> dict:
    """Warm-start the tiny model of ``recipe_path`` in ``work`` and copy it into ``target`` with its record."""
    from polaris.run import steps
    from polaris.run.pipeline import RunDir
    from polaris.run.plan import build_plan

    recipe = load_recipe(recipe_path, ["warm_start.shipped=false"])
    layout = RunLayout(work)
    run = RunDir(layout, recipe, source=f"{recipe_path} --set warm_start.shipped=false")
    ctx = steps.Context(build_plan(recipe), layout)
    start = time.monotonic()
    run.step(PREPARE, lambda: steps.prepare(ctx))
    result = run.step(WARM_START, lambda: steps.warm_start(ctx))
    seconds = run.summary.steps[WARM_START].seconds
    before = read_json(target / SHIPPED_RECORD) or {}
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(layout.model("base"), target)
    record = {
        "made_by": "bench/tiny_base.py",
        "recipe": str(recipe_path.relative_to(REPO) if recipe_path.is_relative_to(REPO) else recipe_path),
        "settings": base_settings(recipe.data.tiny, recipe.warm_start),
        "result": result,
        "warm_start_seconds": seconds,
        "machine": machine(),
        "sha256": sha256(target / WEIGHTS),
    }
    write_json(target / SHIPPED_RECORD, record)
    same = before.get("sha256") == record["sha256"]
    print(f"[tiny-base] warm start {seconds:.0f} s ({time.monotonic() - start:.0f} s in all) -> {target}; "
          f"weights {'unchanged' if same else 'changed'} (sha256 {record['sha256'][:16]})", flush=True)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "tiny-base",
                        help="run directory of the warm start (reused when it finished)")
    parser.add_argument("--target", type=Path, default=SHIPPED_BASE)
    args = parser.parse_args(argv)
    make_base(args.recipe.resolve(), args.work, args.target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
