"""The evaluation benchmarks of the paper (docs/method.md § Evaluation protocol), and how a benchmark argument is resolved.

``--benchmark`` takes, for each benchmark:

* a **registered name** — ``aime24``, ``aime25``, ``amc23``, ``minerva``, ``olympiad``: fetched
  from its Hugging Face data set when online, with the paper's k and sampling (T 1.4, top-p 1.0,
  top-k 20, up to 90000 new tokens). Offline, the error names the local file to pass instead
  (the reference implementation's ``<name>.parquet``);
* ``arith-test`` — the built-in task's test split: read from the file a run wrote (``builtin_test``,
  given by the run layer) when there is one, else generated with the defaults of
  :class:`polaris.config.TinyTaskSettings` (the same split ``polaris run`` writes);
* a **local file** the loaders read (reference parquet schema or ``problem``/``answer`` columns,
  parquet or jsonl), with k ``eval.k``.

A benchmark's k and sampling are the evaluation plan's (:func:`polaris.run.plan.eval_plan`, from the
recipe's ``eval`` section); ``polaris eval`` without a recipe samples as the paper does.

Deviations and choices
----------------------
- The Hub data sets are public copies with the same problem counts as the reference's files;
  their column names vary (``problem``/``question``, ``answer``/``final_answer``), so a few
  aliases are renamed to the loaders' ``problem``/``answer`` before parsing. They cannot be
  checked offline; the reference files are the tested path.
- ``polaris eval`` of the built-in task alone uses the recipe defaults (:class:`polaris.config.EvalSettings`:
  k 8, T 1.0, no top-k, 128 new tokens), not the paper's: a 0.5M-parameter model with a
  256-token context is not sampled at T 1.4 for 90K tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polaris.data.problem import DataError, Problem

BUILTIN_ARITH = "arith-test"
BUILTIN_ALIASES = (BUILTIN_ARITH, "builtin:arith-test")


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of an evaluation."""

    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int


#: docs/method.md § Evaluation protocol: T 1.4, top-p 1.0, top-k 20, up to 90000 new tokens.
PAPER_SAMPLING = Sampling(temperature=1.4, top_p=1.0, top_k=20, max_new_tokens=90000)
#: Hub column names -> the loaders' (applied only where the loader's column is absent).
COLUMN_ALIASES = {"question": "problem", "Problem": "problem", "final_answer": "answer", "Answer": "answer"}


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: where its data lives and how the paper evaluates it."""

    name: str
    hub_id: str
    split: str
    k: int
    local_file: str
    """The reference implementation's file of the same problems, to pass offline."""
    rows: int
    """Problems in the benchmark."""
    columns: dict[str, str] = field(default_factory=lambda: dict(COLUMN_ALIASES))
    """Hub column -> loader column renames."""
    sampling: Sampling = PAPER_SAMPLING


#: Benchmark name -> its registration (docs/method.md § Evaluation protocol: AIME24/25 avg@32, AMC23 avg@8, Minerva and
#: OlympiadBench avg@4).
BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("aime24", "HuggingFaceH4/aime_2024", "train", 32, "aime24.parquet", 30),
        Benchmark("aime25", "math-ai/aime25", "test", 32, "aime25.parquet", 30),
        Benchmark("amc23", "AI-MO/aimo-validation-amc", "train", 8, "amc23.parquet", 83),
        Benchmark("minerva", "math-ai/minervamath", "test", 4, "minerva.parquet", 272),
        Benchmark("olympiad", "math-ai/olympiadbench", "test", 4, "olympiad.parquet", 675),
    )
}


@dataclass(frozen=True)
class ResolvedBenchmark:
    """Problems of one benchmark (its k and sampling are the evaluation plan's: :mod:`polaris.run.plan`)."""

    name: str
    problems: list[Problem]
    source: str


def valid_names() -> list[str]:
    return [*BENCHMARKS, BUILTIN_ARITH]


def resolve_benchmark(spec: str, *, builtin_test: str | Path | None = None, split: str | None = None,
                      limit: int | None = None) -> ResolvedBenchmark:
    """A registered name, ``arith-test``, or a local file -> its problems (the first ``limit``).

    ``builtin_test``: the built-in test split a run wrote (read for ``arith-test`` instead of generating it).
    """
    if spec in BENCHMARKS:
        bench = BENCHMARKS[spec]
        problems = load_hub_benchmark(bench, split=split)
        resolved = ResolvedBenchmark(bench.name, problems, f"{bench.hub_id} [{split or bench.split}]")
    elif spec in BUILTIN_ALIASES:
        resolved = _builtin(builtin_test)
    elif Path(spec).is_file():
        from polaris.data.loaders import load_problems

        resolved = ResolvedBenchmark(Path(spec).stem, load_problems(spec), str(spec))
    else:
        raise DataError(
            spec, None, None, "not a registered benchmark and no such file; "
            f"valid names: {valid_names()}, or a local .parquet/.jsonl file"
        )
    if limit is not None:
        resolved = ResolvedBenchmark(resolved.name, resolved.problems[:limit], resolved.source)
    return resolved


def _builtin(path: str | Path | None) -> ResolvedBenchmark:
    from polaris.data.loaders import load_problems

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DataError(
                str(path), None, None, "no built-in test split here (was the run started with the built-in "
                "model?); drop --run-dir to generate the split from the default task settings"
            )
        return ResolvedBenchmark(BUILTIN_ARITH, load_problems(path), str(path))
    return ResolvedBenchmark(BUILTIN_ARITH, builtin_test_problems(), "generated (TinyTaskSettings defaults)")


def builtin_test_problems() -> list[Problem]:
    """The built-in task's test split with the default settings (what ``polaris run`` writes)."""
    from polaris.config import TinyTaskSettings
    from polaris.data import arith

    tiny = TinyTaskSettings()
    _, test = arith.make_splits(tiny.seed, tiny.train_size, tiny.test_size, tiny.levels)
    return arith.to_problems(test, "test")


def offline() -> bool:
    import os

    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def rename_columns(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """``row`` with Hub column names mapped to the loaders' (existing target columns win)."""
    out = dict(row)
    for src, dst in columns.items():
        if src in out and dst not in out:
            out[dst] = out.pop(src)
    return out


def load_hub_benchmark(bench: Benchmark, *, split: str | None = None) -> list[Problem]:
    """The benchmark's problems from its Hub data set; offline, a :class:`DataError` naming the local file."""
    if offline():
        raise DataError(
            bench.hub_id, None, None,
            f"benchmark {bench.name!r} is fetched from the Hugging Face Hub, and Hub access is offline "
            f"(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE). Pass the local file instead: "
            f"--benchmark path/to/{bench.local_file} (the reference implementation's evaluation file, "
            f"{bench.rows} problems), with --k {bench.k} for the paper's avg@{bench.k}",
        )
    import datasets

    from polaris.data.loaders import parse_rows

    split = split or bench.split
    try:
        ds = datasets.load_dataset(bench.hub_id, split=split)
    except Exception as e:  # network, auth, a renamed data set: say which, and the way around it
        raise DataError(bench.hub_id, None, None,
                        f"could not load split {split!r} from the Hub ({e}); pass the local file "
                        f"--benchmark path/to/{bench.local_file} instead") from e
    rows = [rename_columns(dict(r), bench.columns) for r in ds]
    return parse_rows(rows, f"{bench.hub_id} [{split}]")
