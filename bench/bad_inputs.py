"""Bad input, refused clearly: every kind of broken data file, recipe or model folder a user can hand
``polaris``, run through the command itself (``polaris.cli.main``, in this process).

Each case writes its bad input into a directory of its own and gives the command line, the fragments
the error must contain (the file, and the row and the field, or the recipe key) and which files may
appear. :func:`run_cases` runs them and reports, per case, the exit status, the first line of the
message, whether it names what it must (``names_ok``) and whether nothing was half-written
(``untouched``: no file appeared or changed beyond those the case allows, and the outputs a later
step would pick up are absent).

A few inputs look odd and are valid: a ground truth that is a list of alternatives, or a number such
as 0.5. Those cases (``expected: accepted``) must exit 0: the file loads (as training data) and
grades (``polaris grade`` scores a right answer 1).

Choices the cases pin down:

- a problem text over ``polaris.data.loaders.MAX_PROBLEM_CHARS`` (1M characters; the case: 10 MB) is
  refused when the file is read, naming the row: it is longer than any context a model samples in,
  a broken row, and generation would refuse it later anyway without naming the row;
- a profile that shows no learning signal (every problem solved, none solved, no ``</think>`` while
  ``reward.require_think`` is on) stops before training (``profile.stop_without_signal``, on by
  default; off, it is a warning). What it wrote is complete and stays: its records and samples, to
  read and to reuse, and the stage-1 problems the filter kept (so a later ``polaris train --out``
  trains on those, or refuses an empty list, and never falls back to every problem); no
  temperature and no model are made;
- a stage whose prompt + response exceeds the model's positions is refused when the plan is built,
  before a run directory is made.

    .venv/bin/python bench/bad_inputs.py            # prints the table (about 30 s on 2 cores)
    .venv/bin/python bench/bad_inputs.py --out bench/results/bad_inputs.md

``bench/reliability.py`` imports this file (by path) and calls :func:`run_cases`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Exit status of ``polaris`` for an error the user can act on.
USAGE_ERROR = 2
MESSAGE_CHARS = 160


@dataclass
class Setup:
    """What a case wrote and what it expects."""

    argv: list[str]
    """``polaris`` arguments (for ``polaris.cli.main``)."""
    fragments: list[str]
    """Text the message must contain: the file, the row and field, or the recipe key."""
    absent: list[Path] = field(default_factory=list)
    """Paths that must not exist afterwards (outputs a later step would pick up)."""
    allow: list[Path] = field(default_factory=list)
    """Files that may appear: complete diagnostics a refusal keeps (a stopped profile's records)."""
    accepted: bool = False
    """The input is valid: exit 0 and ``check()`` holds."""
    check: Callable[[str], bool] | None = None
    """For accepted input: given stdout, whether the outcome is right."""


@dataclass(frozen=True)
class Case:
    kind: str
    build: Callable[[Path, Path], Setup]
    """``build(case_dir, model_dir) -> Setup``: write the input into ``case_dir``; ``model_dir`` is a
    working tiny model folder, to copy or to point at."""


# -- writing inputs -------------------------------------------------------------------------------------


def _jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _parquet(path: Path, rows: Sequence[dict[str, Any]], schema: Any = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), path)
    return path


def _good_rows(n: int = 4) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "problem": f"Compute {i} + {i + 1}.", "answer": str(2 * i + 1)} for i in range(n)]


def _with_row(bad: dict[str, Any], at: int = 2) -> list[dict[str, Any]]:
    rows = _good_rows()
    rows[at] = {**rows[at], **bad}
    return rows


def _profile(data: Path, out: Path, *extra: str, model: Path | None = None) -> list[str]:
    """``polaris profile`` on training data (default model: the built-in one, never made here): the data is
    read before any model loads."""
    return ["profile", *([str(model)] if model else []), "--data", str(data), "--out", str(out), *extra]


def _eval(model: Path, bench: Path, out: Path, *extra: str) -> list[str]:
    """``polaris eval`` of a benchmark file: the data is read before the model loads."""
    return ["eval", str(model), "--benchmark", str(bench), "--out", str(out), "--k", "1", "--max-new-tokens", "4",
            *extra]


def _row(path: Path, row: int, name: str) -> list[str]:
    return [str(path), f"row {row}", f"field '{name}'"]


def _copy_model(model: Path, dst: Path) -> Path:
    shutil.copytree(model, dst)
    return dst


# -- the cases ------------------------------------------------------------------------------------------


def empty_jsonl(d: Path, model: Path) -> Setup:
    data = d / "train.jsonl"
    data.write_bytes(b"")
    return Setup(_profile(data, d / "out"), [str(data), "empty file"], absent=[d / "out"])


def empty_parquet(d: Path, model: Path) -> Setup:
    data = d / "train.parquet"
    data.write_bytes(b"")
    return Setup(_profile(data, d / "out"), [str(data), "empty file (0 bytes)"], absent=[d / "out"])


def parquet_without_rows(d: Path, model: Path) -> Setup:
    import pyarrow as pa

    data = _parquet(d / "train.parquet", [], schema=pa.schema([("problem", pa.string()), ("answer", pa.string())]))
    return Setup(_profile(data, d / "out"), [str(data), "no rows"], absent=[d / "out"])


def missing_problem_column(d: Path, model: Path) -> Setup:
    rows = [{"question": r["problem"], "answer": r["answer"]} for r in _good_rows()]
    data = _parquet(d / "train.parquet", rows)
    return Setup(_profile(data, d / "out"), [*_row(data, 0, "problem"), "missing", "question"], absent=[d / "out"])


def missing_answer_column(d: Path, model: Path) -> Setup:
    rows = [{"problem": r["problem"], "solution": r["answer"]} for r in _good_rows()]
    data = _jsonl(d / "train.jsonl", rows)
    return Setup(_profile(data, d / "out"), [*_row(data, 0, "answer"), "missing"], absent=[d / "out"])


def answer_null(d: Path, model: Path) -> Setup:
    data = _jsonl(d / "train.jsonl", _with_row({"answer": None}))
    return Setup(_profile(data, d / "out"), [*_row(data, 2, "answer"), "missing"], absent=[d / "out"])


def answer_list_with_null(d: Path, model: Path) -> Setup:
    data = _jsonl(d / "train.jsonl", _with_row({"answer": ["5", None]}))
    return Setup(_profile(data, d / "out"), [*_row(data, 2, "answer"), "None"], absent=[d / "out"])


def answer_empty_list(d: Path, model: Path) -> Setup:
    data = _jsonl(d / "train.jsonl", _with_row({"answer": []}))
    return Setup(_profile(data, d / "out"), [*_row(data, 2, "answer"), "empty"], absent=[d / "out"])


def answer_dict(d: Path, model: Path) -> Setup:
    data = _jsonl(d / "train.jsonl", _with_row({"answer": {"value": 5}}))
    return Setup(_profile(data, d / "out"), [*_row(data, 2, "answer"), "dict"], absent=[d / "out"])


def answer_nan(d: Path, model: Path) -> Setup:
    rows = [{**r, "answer": float(r["answer"])} for r in _good_rows()]
    rows[1]["answer"] = math.nan  # what pandas writes for a missing number
    data = _parquet(d / "train.parquet", rows)
    return Setup(_profile(data, d / "out"), [*_row(data, 1, "answer"), "not a finite number"], absent=[d / "out"])


def _accepted_answer(answer: Any, response: str, expected: Any) -> Callable[[Path, Path], Setup]:
    """Valid odd ground truths: the data file loads as training data, and ``polaris grade`` scores a right
    response 1 against it."""

    def build(d: Path, model: Path) -> Setup:
        from polaris.data.loaders import load_problems

        data = _jsonl(d / "train.jsonl", _with_row({"answer": answer}))
        results = _jsonl(d / "responses.jsonl", [{"problem_id": "p2", "response": response, "ground_truth": answer}])
        summary = d / "grade.json"

        def check(stdout: str) -> bool:
            loaded = load_problems(data)
            graded = json.loads(summary.read_text(encoding="utf-8"))
            return loaded[2].answer == expected and graded["avg@k"] == 1.0

        return Setup(["grade", str(results), "--json", str(summary), "--workers", "1"], [], allow=[summary],
                     accepted=True, check=check)

    return build


def not_utf8(d: Path, model: Path) -> Setup:
    data = d / "train.jsonl"
    good = "".join(json.dumps(r) + "\n" for r in _good_rows(2)).encode("utf-8")
    data.write_bytes(good + b'{"id": "p9", "problem": "Caf\xe9 owner sells 3 cups.", "answer": "3"}\n')
    return Setup(_profile(data, d / "out"), [*_row(data, 2, "problem"), "not UTF-8", "0xe9"], absent=[d / "out"])


def huge_problem(d: Path, model: Path) -> Setup:
    rows = _with_row({"problem": "Compute " + "1 + " * (10 * 2**20 // 4) + "1."}, at=1)
    data = _jsonl(d / "train.jsonl", rows)
    return Setup(_profile(data, d / "out"), [*_row(data, 1, "problem"), "above the limit of 1,000,000"],
                 absent=[d / "out"])


def duplicate_ids(d: Path, model: Path) -> Setup:
    data = _jsonl(d / "train.jsonl", _with_row({"id": "p0"}, at=3))
    return Setup(_profile(data, d / "out"), [*_row(data, 3, "id"), "duplicate problem id 'p0'", "first at row 0"],
                 absent=[d / "out"])


def truncated_parquet(d: Path, model: Path) -> Setup:
    whole = _parquet(d / "whole.parquet", _good_rows(40))
    data = d / "train.parquet"
    data.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return Setup(_profile(data, d / "out"), [str(data), "not a readable parquet file", "truncated"],
                 absent=[d / "out"])


def torn_last_line(d: Path, model: Path) -> Setup:
    data = d / "train.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in _good_rows(3))
    data.write_text(text + '{"id": "p3", "problem": "Compute 3 + 4.", "ans', encoding="utf-8")
    return Setup(_profile(data, d / "out"), [str(data), "row 3", "line 4", "cut short"], absent=[d / "out"])


def _recipe(d: Path, text: str) -> Path:
    path = d / "bad-recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def unknown_recipe_key(d: Path, model: Path) -> Setup:
    recipe = _recipe(d, "name: bad\ntrain:\n  batch_prompts: 4\n  warmup_ratio: 0.1\nstages: [{steps: 1}]\n")
    return Setup(["run", str(recipe), "--dry-run", "--run-dir", str(d / "run")],
                 [str(recipe), "train.warmup_ratio", "unknown key", "valid keys of train"], absent=[d / "run"])


def misspelt_recipe_key(d: Path, model: Path) -> Setup:
    recipe = _recipe(d, "name: bad\nprofile: {k: 4, stop_without_signl: false}\nstages: [{steps: 1}]\n")
    return Setup(["run", str(recipe), "--dry-run", "--run-dir", str(d / "run")],
                 [str(recipe), "profile.stop_without_signl", "did you mean 'stop_without_signal'"], absent=[d / "run"])


def stage_past_declared_positions(d: Path, model: Path) -> Setup:
    recipe = _recipe(d, f"name: long\nmodel: {{path: {json.dumps(str(model))}, native_max_position_embeddings: 256}}\n"
                        "train: {max_prompt_tokens: 64}\nstages: [{steps: 1, max_response_tokens: 128},"
                        " {steps: 1, max_response_tokens: 224}]\n")
    return Setup(["run", str(recipe), "--dry-run", "--run-dir", str(d / "run")],
                 [str(recipe), "stages[1]", "64 + response 224 = 288", "256 positions",
                  "model.max_position_embeddings"], absent=[d / "run"])


def stage_past_model_positions(d: Path, model: Path) -> Setup:
    recipe = _recipe(d, f"name: long\nmodel: {{path: {json.dumps(str(model))}}}\n"
                        "stages: [{steps: 1, max_response_tokens: 300}]\n")
    run = d / "run"
    return Setup(["run", str(recipe), "--run-dir", str(run)],
                 ["stages[0].max_response_tokens", "response 300 tokens", f"256 positions (max_position_embeddings in "
                  f"{model / 'config.json'})"], absent=[run])


def _saved_profile(d: Path, correct: int, k: int = 8) -> tuple[Path, Path]:
    data = _jsonl(d / "train.jsonl", _good_rows())
    records = _jsonl(d / "saved-profile.jsonl", [{"problem_id": r["id"], "correct": correct, "k": k,
                                                  "mean_length": 40.0} for r in _good_rows()])
    return data, records


def _stopped_profile(out: Path) -> tuple[list[Path], list[Path]]:
    """``(absent, allow)`` of a profile stopped for want of learning signal: its records, samples and
    stage-1 problem list are complete and stay (a later ``polaris train --out`` trains only on what the
    filter kept, and refuses an empty list); no temperature and no model are made."""
    from polaris.run.layout import RunLayout

    layout = RunLayout(out)
    return [layout.temperature_path(1), layout.stage_model(1)], [layout.profile, layout.profile_samples,
                                                                  layout.stage_ids_path(1)]


def all_solved(d: Path, model: Path) -> Setup:
    data, records = _saved_profile(d, correct=8)
    out = d / "out"
    return Setup(_profile(data, out, "--set", f"profile.records={records}"),
                 ["solved 8/8", "nothing is left to train on", f"data.train: {data}", "profile.stop_without_signal"],
                 *_stopped_profile(out))


def none_solved(d: Path, model: Path) -> Setup:
    data, records = _saved_profile(d, correct=0)
    out = d / "out"
    return Setup(_profile(data, out, "--set", f"profile.records={records}"),
                 ["No profiled problem was solved in 8 rollouts", f"data.train: {data}", "model.path",
                  "profile.stop_without_signal"], *_stopped_profile(out))


def model_without_tokenizer(d: Path, model: Path) -> Setup:
    bad = _copy_model(model, d / "model")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        (bad / name).unlink(missing_ok=True)
    bench = _jsonl(d / "bench.jsonl", _good_rows(2))
    return Setup(_eval(bad, bench, d / "out"), [str(bad), "no tokenizer", "tokenizer.json"], absent=[d / "out"])


def model_folder_without_config(d: Path, model: Path) -> Setup:
    bad = d / "model"
    bad.mkdir()
    bench = _jsonl(d / "bench.jsonl", _good_rows(2))
    return Setup(_eval(bad, bench, d / "out"), [str(bad), "no config.json"], absent=[d / "out"])


def tokenizer_without_chat_template(d: Path, model: Path) -> Setup:
    bad = _copy_model(model, d / "model")
    (bad / "chat_template.jinja").unlink(missing_ok=True)
    config_path = bad / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config), encoding="utf-8")
    bench = _jsonl(d / "bench.jsonl", _good_rows(2))
    return Setup(_eval(bad, bench, d / "out"), [str(config_path), "field 'chat_template'"], absent=[d / "out"])


def tokenizer_without_eos(d: Path, model: Path) -> Setup:
    bad = _copy_model(model, d / "model")
    config_path = bad / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("eos_token", None)
    config_path.write_text(json.dumps(config), encoding="utf-8")
    data = _jsonl(d / "train.jsonl", _good_rows())
    out = d / "out"
    return Setup(_profile(data, out, model=bad), [str(config_path), "field 'eos_token'"], absent=[out])


def benchmark_other_schema(d: Path, model: Path) -> Setup:
    bench = _jsonl(d / "bench.jsonl", [{"foo": f"q{i}", "bar": i} for i in range(3)])
    return Setup(_eval(model, bench, d / "out"), [str(bench), "unknown layout", "'foo'", "problem", "answer"],
                 absent=[d / "out"])


def missing_data_file(d: Path, model: Path) -> Setup:
    data = d / "no-such-train.jsonl"
    return Setup(_profile(data, d / "out"), [str(data), "no such file"], absent=[d / "out"])


def model_that_never_thinks(d: Path, model: Path) -> Setup:
    """The tiny model with ``<think>``/``</think>`` marked special, so decoding drops them: its responses
    never contain ``</think>``, as a non-thinking model's do, while ``reward.require_think`` is on."""
    bad = _copy_model(model, d / "model")
    tokenizer_path = bad / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    for token in tokenizer["added_tokens"]:
        if token["content"] in ("<think>", "</think>"):
            token["special"] = True
    tokenizer_path.write_text(json.dumps(tokenizer), encoding="utf-8")
    data = _jsonl(d / "train.jsonl", _good_rows())
    out = d / "out"
    from polaris.run.layout import RunLayout

    samples = RunLayout(out).profile_samples
    return Setup(_profile(data, out, "--set", "profile.k=2", "--set", "stages[0].max_response_tokens=8", model=bad),
                 ["</think>", "reward.require_think", "reward.require_think: false", str(samples)],
                 *_stopped_profile(out))


CASES: list[Case] = [
    Case("empty file (jsonl)", empty_jsonl),
    Case("empty file (parquet, 0 bytes)", empty_parquet),
    Case("empty file (parquet, no rows)", parquet_without_rows),
    Case("missing problem column", missing_problem_column),
    Case("missing answer column", missing_answer_column),
    Case("answer null", answer_null),
    Case("answer a list holding null", answer_list_with_null),
    Case("answer an empty list", answer_empty_list),
    Case("answer a dict", answer_dict),
    Case("answer NaN", answer_nan),
    Case("answer a list of strings (valid)", _accepted_answer(["1/2", "0.5"], "<think>x</think> \\boxed{0.5}",
                                                             ["1/2", "0.5"])),
    Case("answer a float 0.5 (valid)", _accepted_answer(0.5, "\\boxed{\\frac{1}{2}}", "0.5")),
    Case("non-UTF-8 bytes in a jsonl", not_utf8),
    Case("a 10 MB problem text", huge_problem),
    Case("duplicate problem ids", duplicate_ids),
    Case("truncated parquet", truncated_parquet),
    Case("jsonl with a torn last line", torn_last_line),
    Case("missing data file", missing_data_file),
    Case("unknown recipe key", unknown_recipe_key),
    Case("misspelt recipe key", misspelt_recipe_key),
    Case("stage past the declared positions (--dry-run)", stage_past_declared_positions),
    Case("stage past the model folder's positions (run)", stage_past_model_positions),
    Case("no problem left after filtering (all solved)", all_solved),
    Case("all problems unsolved (no learning signal)", none_solved),
    Case("model folder without a tokenizer", model_without_tokenizer),
    Case("model folder without config.json", model_folder_without_config),
    Case("tokenizer without a chat template", tokenizer_without_chat_template),
    Case("tokenizer without an EOS token", tokenizer_without_eos),
    Case("benchmark file with another schema", benchmark_other_schema),
    Case("no </think> while reward.require_think", model_that_never_thinks),
]


# -- running them ---------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[Path, str]:
    """Every file under ``root`` with a digest of its bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def build_tiny_model(path: Path) -> Path:
    """An untrained built-in tiny model folder (tokenizer included): seconds on a CPU."""
    import random

    from polaris.data import arith
    from polaris.data.problem import build_messages
    from polaris.models.tiny import build_model, build_tokenizer, save, tokenizer_corpus

    sample = arith.generate(random.Random(0), 100, [1, 2, 3])
    tokenizer = build_tokenizer(tokenizer_corpus([build_messages(p.question) for p in sample],
                                                 [p.solution for p in sample]))
    return save(build_model(tokenizer, seed=0), tokenizer, path)


def message_line(stderr: str, case_dir: Path | None = None) -> str:
    """The error ``polaris`` printed (``polaris COMMAND: ...``), else the last line of stderr; paths inside
    ``case_dir`` shortened to their part under it, the line cut to :data:`MESSAGE_CHARS`."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    line = next((x for x in lines if x.startswith("polaris ")), lines[-1] if lines else "")
    line = " ".join(line.split())
    if case_dir is not None:
        line = line.replace(f"{case_dir}{os.sep}", "")
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def run_case(case: Case, case_dir: Path, model_dir: Path) -> dict[str, Any]:
    """One case through ``polaris.cli.main``: ``{kind, expected, exit, message, names_ok, untouched, ok}``."""
    from polaris.cli import main

    case_dir.mkdir(parents=True, exist_ok=True)
    setup = case.build(case_dir, model_dir)
    before = snapshot(case_dir)
    out, err = io.StringIO(), io.StringIO()
    status: int | None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(setup.argv)
        except SystemExit as e:  # tyro's usage errors
            status = e.code if isinstance(e.code, int) else 1
        except Exception as e:  # a bug: the error escaped the command (a traceback for the user)
            status = None
            err.write(f"\nuncaught {type(e).__name__}: {e}\n")
    stderr = err.getvalue()
    after = snapshot(case_dir)
    changed = sorted(p for p, digest in after.items() if before.get(p) != digest)
    allowed = set(setup.allow)
    untouched = (all(p in allowed for p in changed) and all(not p.exists() for p in setup.absent)
                 and all(p in after for p in before))
    if setup.accepted:
        lines = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
        said = " · ".join([*lines[:1], *(line for line in lines if line.startswith("avg@"))])
        message = message_line(stderr, case_dir) if status != 0 else message_line(said, case_dir)
        names_ok = status == 0 and setup.check is not None and setup.check(out.getvalue())
        ok = status == 0 and names_ok and untouched
    else:
        message = message_line(stderr, case_dir)
        names_ok = all(f in stderr for f in setup.fragments) and "Traceback" not in stderr
        ok = status == USAGE_ERROR and names_ok and untouched
    return {"kind": case.kind, "expected": "accepted" if setup.accepted else "refused", "exit": status,
            "message": message, "names_ok": bool(names_ok), "untouched": bool(untouched), "ok": bool(ok),
            "changed": [str(p.relative_to(case_dir)) for p in changed]}


def run_cases(tmp_dir: str | Path, *, model_dir: str | Path | None = None,
              cases: Sequence[Case] | None = None) -> list[dict[str, Any]]:
    """Every case (default :data:`CASES`) in a directory of its own under ``tmp_dir``.

    ``model_dir``: a working tiny model folder (default: one is built under ``tmp_dir``). Hugging Face
    access is set offline unless the environment says otherwise.
    """
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(name, "1")
    tmp_dir = Path(tmp_dir)
    model = Path(model_dir) if model_dir is not None else build_tiny_model(tmp_dir / "tiny-model")
    rows = []
    for i, case in enumerate(cases if cases is not None else CASES, start=1):
        rows.append(run_case(case, tmp_dir / f"case-{i:02d}", model))
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| # | kind | expected | exit | names file/row/field or key | nothing half-written | message |",
             "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, start=1):
        lines.append(f"| {i} | {cell(r['kind'])} | {r['expected']} | {r['exit']} | "
                     f"{'yes' if r['names_ok'] else '**no**'} | {'yes' if r['untouched'] else '**no**'} | "
                     f"`{cell(r['message'])}` |")
    good = sum(r["ok"] for r in rows)
    lines.append("")
    lines.append(f"{good} of {len(rows)} cases behave as expected.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("POLARIS_QUIET", "1")
    with tempfile.TemporaryDirectory(prefix="polaris-bad-inputs-") as tmp:
        rows = run_cases(tmp)
    table = format_table(rows)
    print(table)
    if args.out:
        Path(args.out).write_text(f"# Bad input\n\n`python bench/bad_inputs.py`\n\n{table}\n", encoding="utf-8")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
