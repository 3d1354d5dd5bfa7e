"""Fuzzing the verifier with Hypothesis: hostile model output never crashes the scoring API, never
scores anything but 0.0 or 1.0, never runs, and never holds a call past its deadline; valid answers
mixed in score exactly 1.0 and their near misses 0.0.

The case generators live in ``bench/fuzz_verifier.py`` (its ``fuzz()`` runs 10,000 of them); here a
few hundred go through ``score_batch`` (worker pool and in-process) and ``score``. Payloads would
create files in a temporary folder or print a token that their text does not contain; this
process's stdout/stderr (which the pool's workers inherit when they start) are captured and searched.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from polaris.reward import close_pool, grade_batch, grading, pool, score, score_batch, stats

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 1.0


def _load_bench() -> types.ModuleType:
    path = REPO / "bench" / "fuzz_verifier.py"
    module = types.ModuleType("bench_fuzz_verifier")
    module.__file__ = str(path)
    # As bench/reliability.py loads it: by path, without an entry in sys.modules.
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    return module


fuzz = _load_bench()
FUZZ_SETTINGS = settings(
    deadline=None,  # the deadline property is measured below, against the verifier's own timeout
    database=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a failing round is reported as generated
    suppress_health_check=list(HealthCheck),
)


class Sandbox:
    """Where payloads would leave files (``markers``), the captured output (``log``), the case generator."""

    def __init__(self, markers: Path, log: Path) -> None:
        self.markers, self.log = markers, log
        self.rounds = fuzz.rounds(markers)

    def __repr__(self) -> str:  # Hypothesis prints it with a failing example; the generator's repr is huge
        return f"Sandbox(markers={self.markers}, log={self.log})"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("fuzz")
    markers = root / "markers"
    markers.mkdir()
    close_pool()  # the workers must start inside a capture (they keep the stdout/stderr they start with)
    yield Sandbox(markers, root / "output.txt")
    close_pool()


def _check_scores(batch: Sequence[object], scores: object) -> None:
    assert isinstance(scores, list) and len(scores) == len(batch)
    for case, s in zip(batch, scores, strict=True):
        assert type(s) is float and s in (0.0, 1.0), f"score {s!r} for {case!r}"
        if case.expected is not None:
            assert s == case.expected, f"expected {case.expected}, got {s} for {case!r}"


def _check_nothing_ran(box: Sandbox) -> None:
    assert not any(box.markers.iterdir()), f"a payload ran: {sorted(p.name for p in box.markers.iterdir())}"
    assert fuzz.printed_tokens(box.log) == 0, "a payload printed its token"


def _pool_up(box: Sandbox, workers: int) -> None:
    """Start the shared pool inside the capture (its start-up is not part of any deadline)."""
    with fuzz.capture_output(box.log):
        fuzz.warm_pool(TIMEOUT, workers)


def _scored_within_deadline(box: Sandbox, batch: Sequence[object], require_think: bool, workers: int) -> None:
    before = stats()["timeouts"]
    with fuzz.capture_output(box.log):
        started = time.monotonic()
        scores = score_batch(
            [c.response for c in batch],
            [c.truth for c in batch],
            require_think=require_think,
            timeout=TIMEOUT,
            workers=workers,
        )
        elapsed = time.monotonic() - started
    bound = fuzz.deadline_bound(stats()["timeouts"] - before, TIMEOUT, workers)
    assert elapsed <= bound, f"{len(batch)} cases took {elapsed:.2f} s, more than {bound:.2f} s"
    _check_scores(batch, scores)


@settings(FUZZ_SETTINGS, max_examples=12)
@given(data=st.data())
def test_fuzzed_rounds_through_the_pool(sandbox: Sandbox, data: st.DataObject) -> None:
    generated = data.draw(sandbox.rounds, label="round")
    workers = pool.default_workers()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grading, "SMALL_BATCH", 0)  # every math-verify check goes to the worker pool
        _score_all(sandbox, generated, workers)


def _score_all(sandbox, generated, workers: int) -> None:
    """Start the pool, score each reward mode's cases within their deadline, check no payload ran."""
    _pool_up(sandbox, workers)
    for require_think in (True, False):
        batch = [c for c in generated if c.require_think == require_think]
        if batch:
            _scored_within_deadline(sandbox, batch, require_think, workers)
    _check_nothing_ran(sandbox)


@settings(FUZZ_SETTINGS, max_examples=6)
@given(data=st.data())
def test_fuzzed_batches_mixing_rounds(sandbox: Sandbox, data: st.DataObject) -> None:
    """Bigger batches through the public routing (the pool when 8 or more checks are left)."""
    generated = [c for _ in range(3) for c in data.draw(sandbox.rounds, label="round")]
    workers = pool.default_workers()
    _score_all(sandbox, generated, workers)


@settings(FUZZ_SETTINGS, max_examples=5)
@given(data=st.data())
def test_fuzzed_cases_one_at_a_time_in_process(sandbox: Sandbox, data: st.DataObject) -> None:
    """``score`` on the main thread: no pool, a signal deadline; each call within timeout + grace + 1 s."""
    score("</think>\\boxed{\\frac{1}{2}}", "0.5")  # math-verify imported (once, outside any measurement)
    for case in data.draw(sandbox.rounds, label="round"):
        with fuzz.capture_output(sandbox.log):
            started = time.monotonic()
            s = score(case.response, case.truth, require_think=case.require_think, timeout=TIMEOUT)
            elapsed = time.monotonic() - started
        assert elapsed <= TIMEOUT + pool.GRACE + 1.0, f"{elapsed:.2f} s for {case!r}"
        _check_scores([case], [s])
    _check_nothing_ran(sandbox)


def test_fuzz_bench_counts_no_violation() -> None:
    result = fuzz.fuzz(n=100, seed=3, batch_size=50, timeout=TIMEOUT)
    assert result["cases"] == 100 and result["batches"] >= 2
    assert result["crashes"] == 0
    assert result["non_binary_scores"] == 0
    assert result["payloads_run"] == 0
    assert result["over_deadline"] == 0 and result["max_overrun_s"] == 0.0
    assert result["correct_total"] > 0 and result["correct_scored_1"] == result["correct_total"]
    assert result["wrong_total"] > 0 and result["wrong_scored_0"] == result["wrong_total"]
    assert result["examples"] == []
    assert set(result["kinds"]) >= {"nesting", "exponent", "unicode", "code", "tex", "megabyte", "mixed"}
    assert math.isfinite(result["wall_s"]) and result["wall_s"] > 0


# -- the checks themselves can fail ----------------------------------------------------------------


def test_payload_texts_never_contain_the_printed_token() -> None:
    for payload in fuzz.PYTHON_PAYLOADS + fuzz.TEX_PAYLOADS:
        assert fuzz.PRINT_TOKEN not in payload


def test_the_detectors_see_a_payload_that_runs(tmp_path: Path) -> None:
    """Run two payloads on purpose, in a child process as a worker would: both are detected."""
    markers = tmp_path / "markers"
    markers.mkdir()
    log = tmp_path / "output.txt"
    touch = next(p for p in fuzz.PYTHON_PAYLOADS if p.startswith("__import__('os').system('touch"))
    printing = next(p for p in fuzz.PYTHON_PAYLOADS if p.startswith("print("))
    with fuzz.capture_output(log):
        for payload in (touch.replace(fuzz.F, str(markers / "m0")), printing):
            subprocess.run([sys.executable, "-c", payload], check=True)
        exec(printing)  # and in this process
    assert (markers / "m0").exists()
    assert fuzz.printed_tokens(log) == 2


def test_the_capture_hears_a_pool_worker(tmp_path: Path) -> None:
    """A worker started inside the capture writes into it (as a payload running there would)."""
    log = tmp_path / "output.txt"
    loud = (
        "import sys; print('POLARIS_FUZZ_' + 'PRINTED', file=sys.stderr); "
        "from polaris.reward._worker import main; sys.exit(main())"
    )
    with fuzz.capture_output(log):
        p = pool.VerifierPool(1, command=[sys.executable, "-c", loud])
        try:
            assert p.run([("\\frac{1}{2}", ("0.5",))], 5.0) == [(1.0, False)]
        finally:
            p.close()
    assert fuzz.printed_tokens(log) == 1


def test_the_valid_answers_are_valid() -> None:
    """The answer forms the generator calls correct: each integer and fraction form of a few values."""
    for k in (0, 7, -1000, 123456, -(10**40) - 3):
        truths, answers = fuzz._integer_forms(k)
        for truth in truths:
            assert score_batch([f"</think>\\boxed{{{a}}}" for a in answers], [truth] * len(answers)) == [
                1.0
            ] * len(answers), (k, truth)
    for p, q, m in ((3, 4, 2), (-7, 8, 3), (5, 3, 1), (0, 9, 4)):
        truths, answers = fuzz._fraction_forms(p, q, m)
        for truth in truths:
            assert score_batch([f"</think>\\boxed{{{a}}}" for a in answers], [truth] * len(answers)) == [
                1.0
            ] * len(answers), (p, q, truth)


# -- found by fuzzing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        ("</think>\\boxed{\\boxed{-1000.}}", ["-1000\n"]),
        ("</think>\\boxed{\\boxed{-191.}}", -191.0),
        ("</think>\\boxed{\\boxed{-1.26175 \\times 10^{5}}}", -126175),
        ("</think>\\fbox{\\boxed{ 5. }}", "5"),
        ("</think>\\boxed{\\boxed{\\boxed{\\frac{3}{4}}}}", "0.75"),
    ],
)
def test_a_box_in_a_box_is_graded_by_its_content(response: str, truth: object) -> None:
    """``\\boxed{\\boxed{5.}}``: the answer is ``5.``, which scores as ``\\boxed{5.}`` does (it scored 0)."""
    [verdict] = grade_batch([response], [truth], timeout=5.0)
    assert verdict.score == 1.0
    assert verdict.extracted.startswith("\\boxed")  # what extract_boxed gives is unchanged


def test_a_box_in_a_box_still_fails_a_wrong_answer() -> None:
    assert score("</think>\\boxed{\\boxed{5.}}", "6") == 0.0
    assert score("</think>\\boxed{\\boxed{}}", "0") == 0.0


IMPORT_PROBE = """
import sys
from polaris.reward import verify

seen = []
armed = verify.call_with_deadline


def spy(fn, seconds):
    seen.append("sympy" in sys.modules and "math_verify" in sys.modules)
    return armed(fn, seconds)


verify.call_with_deadline = spy
print(verify.check_with_deadline("\\\\frac{0}{2}", ["0/2"], 5.0), seen)
"""


def test_the_first_check_in_a_process_does_not_pay_for_the_import() -> None:
    """The first in-process check used to import math-verify and sympy (0.6 to 1 s, more under load)
    inside its deadline: with a 1 s timeout, a correct ``\\frac{0}{2}`` for ``0/2`` timed out."""
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1.0, False) [True]", out.stdout + out.stderr
