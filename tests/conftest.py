"""Shared fixtures. Everything runs offline; heavy fixtures are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("POLARIS_QUIET", "1")

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO.parent / "shared" / "data" / "polaris-benchmarks"


def pytest_collection_modifyitems(config, items):
    """Every test that needs the whole pipeline run (``tiny_run``, minutes) must be marked ``slow`` where it is
    written (``make test`` runs them, ``make test-fast`` leaves them out): an unmarked one stops collection."""
    unmarked = [item.nodeid for item in items
                if "tiny_run" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("these tests use tiny_run (minutes) without @pytest.mark.slow: " + ", ".join(unmarked))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny model folder (tokenizer included), for format and plumbing tests."""
    import random

    from polaris.data import arith
    from polaris.data.problem import build_messages
    from polaris.models.tiny import build_model, build_tokenizer, save, tokenizer_corpus

    sample = arith.generate(random.Random(0), 100, [1, 2, 3])
    tokenizer = build_tokenizer(tokenizer_corpus([build_messages(p.question) for p in sample],
                                                 [p.solution for p in sample]))
    return save(build_model(tokenizer, seed=0), tokenizer, tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    if not BENCHMARKS.is_dir():
        pytest.skip(f"reference benchmark files not found at {BENCHMARKS}")
    return BENCHMARKS

TEST_RECIPE = """\
name: tiny-test
seed: 0
model: {path: "builtin:tiny"}
warm_start: {steps: 600, planned_steps: 950, batch_size: 64, learning_rate: 3.0e-3, levels: [1, 2, 3, 4, 5, 6]}
data:
  train: "builtin:arith-train"
  tiny: {seed: 0, train_size: 96, test_size: 48, levels: [1, 2, 3, 4, 5, 6]}
profile: {k: 8}
temperature_search: {grid: [0.8, 1.0, 1.2], problems: 16, n: 4, accuracy_tolerance: 0.05, stage_step: 0.05,
                     stage_max_increase: 0.1}
# min_informative 0: a step trains whenever one group of 6 is informative. With the default (a batch of at
# most 6 // 3 informative groups is skipped), how many steps train hangs on the warm start's floating-point
# path: on some machines every step of this short run is skipped and nothing downstream can be checked.
train: {batch_prompts: 6, rollouts: 4, learning_rate: 1.0e-4, save_steps: 2, min_informative: 0}
stages:
  - {steps: 3, max_response_tokens: 80, temperature: search}
  - {steps: 2, max_response_tokens: 96, temperature: search}
eval: {benchmarks: ["builtin:arith-test"], k: 4, temperature: 0.6, max_new_tokens: 96}
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole pipeline on a reduced budget, through the real CLI, once per session."""
    from polaris.cli import main

    root = tmp_path_factory.mktemp("tiny-run")
    recipe = root / "tiny-test.yaml"
    recipe.write_text(TEST_RECIPE, encoding="utf-8")
    assert main(["run", str(recipe), "--run-dir", str(root / "run")]) == 0
    return root / "run"
