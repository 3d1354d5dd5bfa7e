"""``polaris eval``: benchmarks, grading of the reference files' ground truths, results and summary."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
from pathlib import Path

import pytest

from polaris.benchmarks import BENCHMARKS, resolve_benchmark
from polaris.commands import EvalConfig
from polaris.config import EvalSettings
from polaris.data.problem import DataError
from polaris.evaluate import RESULT_COLUMNS, format_table, summarize
from polaris.run.layout import RunLayout

FILES = ["aime24", "aime25", "amc23", "minerva", "olympiad"]


def _row(pid: str, score: float, text: str, *, extracted: str | None = "1", length: int = 4,
         truncated: bool = False) -> dict:
    return {"problem_id": pid, "score": score, "response": text, "extracted": extracted, "length": length,
            "truncated": truncated}


def test_summary_metrics_by_hand():
    rows = [
        _row("a", 1.0, "x y z w v", length=10),              # 4-grams: (x y z w), (y z w v)
        _row("a", 0.0, "x y z w v", length=20, truncated=True, extracted=None),
        _row("b", 0.0, "a b c d", length=30),
        _row("b", 0.0, "e f g h", length=40, extracted=None),
    ]
    s = summarize(rows, EvalSettings(k=2, temperature=1.4, top_p=1.0, top_k=20, max_new_tokens=64))
    assert s["problems"] == 2 and s["k"] == 2
    assert s["avg@k"] == pytest.approx(0.25)  # (1/2 + 0/2) / 2
    assert s["pass@1"] == pytest.approx(0.25)
    assert s["pass@k"] == pytest.approx(0.5)  # a: 1 - C(1,2)/C(2,2) = 1; b: 0
    assert s["best@k"] == pytest.approx(0.5)
    assert s["no_boxed"] == 2
    assert s["distinct_4"] == pytest.approx(0.75)  # a: 2 unique of 4; b: 2 of 2
    assert s["mean_length"] == pytest.approx(25.0)
    assert s["truncated"] == pytest.approx(0.25)
    assert (s["temperature"], s["top_p"], s["top_k"], s["max_new_tokens"]) == (1.4, 1.0, 20, 64)
    table = format_table({"toy": s})
    assert "avg@k" in table.splitlines()[0]
    assert table.splitlines()[2].split() == ["toy", "2", "2", "25.0", "50.0", "50.0", "2", "75.0", "25.0", "25.0"]


def test_registry_has_the_papers_k_and_offline_names_the_file(monkeypatch):
    assert {n: b.k for n, b in BENCHMARKS.items()} == {"aime24": 32, "aime25": 32, "amc23": 8, "minerva": 4,
                                                       "olympiad": 4}
    for b in BENCHMARKS.values():
        assert (b.sampling.temperature, b.sampling.top_p, b.sampling.top_k, b.sampling.max_new_tokens) == (
            1.4, 1.0, 20, 90000)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"offline.*--benchmark path/to/aime24\.parquet"):
        resolve_benchmark("aime24")
    with pytest.raises(ValueError, match=r"valid names: \['aime24', 'aime25', 'amc23', 'minerva', 'olympiad', 'arith-test'\]"):
        resolve_benchmark("aime2024")


def test_named_benchmark_online_reads_the_hub_columns(monkeypatch):
    """No network: ``datasets.load_dataset`` is replaced; the Hub's column variants are normalised."""
    import datasets

    calls = []

    def fake_load_dataset(dataset_id, split):
        calls.append((dataset_id, split))
        return [{"id": 7, "question": "What is $1+1$?", "final_answer": ["$2$"]},
                {"id": 8, "question": "What is $2+2$?", "final_answer": ["4"]}]

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    bench = resolve_benchmark("olympiad", limit=1)
    assert calls == [("math-ai/olympiadbench", "test")]
    assert bench.name == "olympiad"
    assert [(p.id, p.problem, p.answer) for p in bench.problems] == [("7", "What is $1+1$?", ["2"])]


def test_eval_settings_are_the_recipes_with_the_options_as_keys():
    """Without --recipe: the defaults with the paper's sampling (the built-in task alone: the defaults);
    with one: its eval section; the options set keys and --set wins over them."""
    from polaris.commands import eval_recipe
    from polaris.run.plan import eval_plan

    def plan(*args, **options):
        config = EvalConfig("m", **options)
        config.set = list(args)
        return eval_plan(eval_recipe(config))

    p = plan(benchmark=["aime24", "x.parquet"])
    s = p.settings
    assert (p.benchmarks, s.temperature, s.top_p, s.top_k, s.max_new_tokens) == (
        {"aime24": 32, "x.parquet": 8}, 1.4, 1.0, 20, 90000)
    s = plan(benchmark=["arith-test"]).settings
    assert (s.k, s.temperature, s.top_k, s.max_new_tokens) == (8, 1.0, 0, 128)
    p = plan()  # no --benchmark: the defaults' benchmark, the built-in task, with the defaults' sampling
    assert (p.benchmarks, p.settings.temperature, p.settings.max_new_tokens) == ({"builtin:arith-test": 8}, 1.0, 128)
    p = plan("eval.top_k=5", benchmark=["aime24"], k=3, temperature=0.6, max_new_tokens=99, limit=2)
    assert (p.benchmarks, p.settings.temperature, p.settings.top_k, p.settings.max_new_tokens, p.settings.limit) == (
        {"aime24": 3}, 0.6, 5, 99, 2)
    assert plan("eval.temperature=0.7", benchmark=["aime24"], temperature=0.6).settings.temperature == 0.7


def test_eval_with_a_recipe_takes_its_section(tmp_path: Path):
    from polaris.commands import eval_recipe
    from polaris.run.plan import eval_plan

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 5\neval: {temperature: 0.8, max_new_tokens: 1000, top_k: 0, yarn_factor: 1.5,\n"
                      "       yarn_original_max_position_embeddings: 4096}\n", encoding="utf-8")
    r = eval_recipe(EvalConfig("m", benchmark=["aime24", "amc23"], recipe=str(recipe)))
    p = eval_plan(r)
    assert (r.seed, p.benchmarks, p.settings.temperature, p.settings.top_k, p.settings.max_new_tokens) == (
        5, {"aime24": 32, "amc23": 8}, 0.8, 0, 1000)
    assert p.yarn.max_position_embeddings == 6144 and p.context >= 6144
    r = eval_recipe(EvalConfig("m", benchmark=["aime24"], recipe=str(recipe), k=4, seed=2))
    assert (eval_plan(r).benchmarks, r.seed, r.eval.temperature) == ({"aime24": 4}, 2, 0.8)
    recipe.write_text("eval: {benchmarks: [amc23, minerva], temperature: 0.9}\n", encoding="utf-8")
    r = eval_recipe(EvalConfig("m", recipe=str(recipe)))  # no --benchmark: the recipe's benchmarks
    assert (eval_plan(r).benchmarks, r.eval.temperature, r.eval.max_new_tokens) == ({"amc23": 8, "minerva": 4}, 0.9, 128)


@pytest.mark.parametrize(("options", "message"), [
    ({"k": 0}, r"eval: k must be >= 1, got 0"),
    ({"temperature": -1.0}, r"eval: temperature must be >= 0"),
    ({"limit": 0}, r"eval: limit must be >= 1"),
    ({"backend": "tgi"}, r"valid backends: \['transformers', 'vllm'\]"),
    ({"yarn_factor": 1.5}, r"eval.yarn_factor needs the context it scales from.*--original-max-position is "
                           r"eval.yarn_original_max_position_embeddings"),
    ({"k": 0, "temperature": 0.5}, r"k must be >= 1, got 0 \(--k is eval.k; --temperature is eval.temperature\)"),
    ({"benchmark": []}, r"--benchmark: give at least one"),
])
def test_bad_eval_options_name_the_key(options, message):
    from polaris.cli import main
    from polaris.commands import eval_setup
    from polaris.errors import PolarisError

    with pytest.raises(PolarisError, match=message):
        eval_setup(EvalConfig("m", **options))
    argv = ["eval", "m", *[a for key, value in options.items() if key != "benchmark"
                           for a in (f"--{key.replace('_', '-')}", str(value))]]
    if "benchmark" not in options:  # the whole command: one line, exit 2, before any model is looked for
        assert main(argv) == 2


def test_eval_top_p_out_of_range_is_refused_through_set():
    from polaris.commands import eval_recipe
    from polaris.errors import PolarisError

    config = EvalConfig("m", benchmark=["aime24"])
    config.set = ["eval.top_p=0"]
    with pytest.raises(PolarisError, match=r"eval: top_p must be in \(0, 1\], got 0"):
        eval_recipe(config)


@pytest.mark.parametrize("name", FILES)
def test_reference_ground_truths_are_graded(name, benchmark_dir: Path):
    """A response boxing the ground truth scores 1, another answer 0, no box 0 — for every file's form."""
    from polaris.data.loaders import load_problems
    from polaris.evaluate import score_completions
    from polaris.generation import Completion

    problems = load_problems(benchmark_dir / f"{name}.parquet", limit=12)
    completions = []
    for p in problems:
        truth = p.answer if isinstance(p.answer, str) else p.answer[0]
        completions.append([
            Completion(f"<think>\nwork\n</think>\nThe answer is \\boxed{{{truth}}}.", (1, 2, 3), False),
            Completion("<think>\nwork\n</think>\n\\boxed{-987654321}", (1, 2), False),
            Completion("<think>\nno answer", (1,) * 8, True),
        ])
    rows, summary = score_completions(problems, completions, EvalSettings(k=3))
    assert [r["score"] for r in rows] == [1.0, 0.0, 0.0] * len(problems)
    assert summary["avg@k"] == pytest.approx(1 / 3)
    assert summary["best@k"] == 1.0
    assert summary["no_boxed"] == len(problems)
    assert summary["truncated"] == pytest.approx(1 / 3)


def test_eval_runs_offline_on_every_reference_file(tiny_model_dir: Path, tmp_path: Path, benchmark_dir: Path):
    import pyarrow.parquet as pq

    from polaris.cli import main
    from polaris.data.loaders import load_problems

    files = [benchmark_dir / f"{n}.parquet" for n in FILES]
    out = tmp_path / "out"
    argv = ["eval", str(tiny_model_dir), "--benchmark", *map(str, files), "--k", "2", "--max-new-tokens", "8",
            "--limit", "3", "--out", str(out)]
    # some olympiad problems are longer than the tiny model's 256 positions: refused, or skipped on request
    assert main(argv) == 2
    assert main([*argv, "--set", "eval.skip_long_prompts=true"]) == 0
    from polaris.data.problem import build_messages
    from polaris.generation import chat_prompts
    from polaris.models.loading import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["yarn"] is None and summary["backend"]["backend"] == "transformers"
    assert list(summary["benchmarks"]) == FILES
    skipped_somewhere = False
    for name, path in zip(FILES, files, strict=True):
        s = summary["benchmarks"][name]
        for key in ("avg@k", "pass@k", "best@k", "no_boxed", "distinct_4", "mean_length", "truncated"):
            assert key in s, (name, key)
        problems = load_problems(path, limit=3)
        lengths = [len(ids) for ids in chat_prompts(tokenizer, [build_messages(p) for p in problems])]
        kept = [p for p, n in zip(problems, lengths, strict=True) if n < 256]
        skipped_somewhere |= len(kept) < 3
        assert (s["problems"], s["skipped_long_prompts"]) == (len(kept), 3 - len(kept))
        assert (s["k"], s["max_new_tokens"], s["temperature"], s["top_k"]) == (2, 8, 1.4, 20)
        table = pq.read_table(out / f"{name}.parquet")
        assert set(RESULT_COLUMNS) <= set(table.column_names)
        rows = table.to_pylist()
        assert len(rows) == 2 * len(kept) and [r["sample"] for r in rows] == [0, 1] * len(kept)
        assert all(r["length"] <= 8 for r in rows)
        truths = {p.id: ([p.answer] if isinstance(p.answer, str) else p.answer) for p in kept}
        assert {r["problem_id"]: r["ground_truth"] for r in rows} == truths
    assert skipped_somewhere


def test_eval_builtin_task_with_yarn(tiny_model_dir: Path, tmp_path: Path):
    from polaris.benchmarks import builtin_test_problems
    from polaris.commands import EvalConfig, run_eval

    config = EvalConfig(str(tiny_model_dir), benchmark=["arith-test"], k=2, max_new_tokens=6, limit=4,
                        out=str(tmp_path / "out"), yarn_factor=2.0, original_max_position=256)
    summary = run_eval(config)
    s = summary["benchmarks"]["arith-test"]
    assert (s["problems"], s["k"], s["temperature"], s["top_k"]) == (4, 2, 1.0, 0)  # the built-in defaults
    expected_yarn = {"factor": 2.0, "original_max_position_embeddings": 256, "rope_type": "yarn",
                     "max_position_embeddings": 512}
    assert summary["yarn"] == expected_yarn and s["yarn"] == expected_yarn
    assert summary["backend"]["rope_parameters"]["rope_type"] == "yarn"
    import pyarrow.parquet as pq

    ids = [r["problem_id"] for r in pq.read_table(tmp_path / "out" / "arith-test.parquet").to_pylist()]
    assert ids[::2] == [p.id for p in builtin_test_problems()[:4]]
    assert '"rope_type": "default"' in (tiny_model_dir / "config.json").read_text()


def test_builtin_task_from_a_run_directory(tmp_path: Path):
    from polaris.data.loaders import write_problems
    from polaris.data.problem import Problem

    run = tmp_path / "run"
    write_problems([Problem("t-0", "Compute 1+1.", "2"), Problem("t-1", "Compute 2+2.", "4")],
                   run / "data" / "arith-test.parquet")
    bench = resolve_benchmark("arith-test", builtin_test=RunLayout(run).split("arith-test"))
    assert [p.id for p in bench.problems] == ["t-0", "t-1"]
    with pytest.raises(DataError, match="drop --run-dir"):
        resolve_benchmark("arith-test", builtin_test=RunLayout(tmp_path / "nowhere").split("arith-test"))


def test_eval_help(capsys):
    from polaris.cli import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--benchmark", "--recipe", "--set", "--k", "--temperature", "--max-new-tokens", "--out",
                   "--limit", "--yarn-factor", "--original-max-position", "--backend", "--seed", "--run-dir",
                   "eval.max_new_tokens", "eval.limit"):
        assert option in out, option
