"""Deadlines, the worker pool and safety of the verifier.

The time bounds here are correctness bounds on the deadline (``timeout + 1 s`` for a 1 s timeout),
not performance measurements.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from polaris.reward import close_pool, grade_batch, grading, pool, score, score_batch, stats, timeout_count
from polaris.reward.pool import VerifierPool

TIMEOUT = 1.0
BOUND = TIMEOUT + 1.0

PATHOLOGICAL = {
    "power-tower": "9^{9^{9^{9}}}",
    "huge-factorial": "(10^{100})!",
    "power-of-power": "10^{10^{10}}",
    "deep-parentheses": "(" * 300 + "1" + ")" * 300,
    "deep-fractions": "\\frac{1}{" * 60 + "2" + "}" * 60,
}
MEGABYTE = {
    "1mb-reasoning": "<think>" + "step " * 200_000 + "</think> \\boxed{9^{9^{9^{9}}}}",
    "1mb-answer": "</think> \\boxed{" + "1+" * 500_000 + "1}",
    "1mb-no-think": "\\boxed{1}" * 100_000,
    "1mb-braces": "</think> \\boxed{" + "{" * 1_000_000,
}


def T(answer: str) -> str:
    return f"<think>reasoning</think> so $\\boxed{{{answer}}}$"


@pytest.fixture
def force_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every math-verify check through the shared worker pool, however small the batch."""
    monkeypatch.setattr(grading, "SMALL_BATCH", 0)


@pytest.fixture(scope="module", autouse=True)
def _stop_shared_pool():
    yield
    close_pool()


# -- deadlines -------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", list(PATHOLOGICAL.values()), ids=list(PATHOLOGICAL))
def test_score_pathological_answer_returns_by_the_deadline(answer: str) -> None:
    t0 = time.monotonic()
    assert score(T(answer), "5", timeout=TIMEOUT) == 0.0
    assert time.monotonic() - t0 <= BOUND


@pytest.mark.parametrize("response", list(MEGABYTE.values()), ids=list(MEGABYTE))
def test_score_megabyte_response_returns_by_the_deadline(response: str) -> None:
    t0 = time.monotonic()
    assert score(response, "5", require_think=False, timeout=TIMEOUT) == 0.0
    assert time.monotonic() - t0 <= BOUND


def test_timed_out_verdict_is_counted() -> None:
    before = timeout_count()
    [verdict] = grade_batch([T("9^{9^{9^{9}}}")], ["5"], timeout=TIMEOUT)
    assert verdict.timed_out and verdict.score == 0.0 and verdict.extracted == "9^{9^{9^{9}}}"
    assert timeout_count() == before + 1


@pytest.mark.usefixtures("force_pool")
@pytest.mark.parametrize(
    "response",
    [T(a) for a in PATHOLOGICAL.values()] + list(MEGABYTE.values()),
    ids=list(PATHOLOGICAL) + list(MEGABYTE),
)
def test_score_batch_pathological_returns_by_the_deadline(response: str) -> None:
    score_batch([T("\\frac{1}{2}")], ["0.5"], timeout=TIMEOUT)  # the pool is up and warm
    t0 = time.monotonic()
    assert score_batch([response], ["5"], require_think=False, timeout=TIMEOUT) == [0.0]
    assert time.monotonic() - t0 <= BOUND


@pytest.mark.usefixtures("force_pool")
def test_score_batch_mixed_batch_in_order() -> None:
    slow = [T(a) for a in PATHOLOGICAL.values()]
    good = [T(f"\\frac{{{i}}}{{{i + 1}}}") for i in range(12)]
    responses = slow[:2] + good[:6] + slow[2:] + good[6:]
    truths = ["5"] * 2 + [f"{i}/{i + 1}" for i in range(6)] + ["5"] * 3 + [f"{i}/{i + 1}" for i in range(6, 12)]
    expected = [0.0] * 2 + [1.0] * 6 + [0.0] * 3 + [1.0] * 6
    score_batch([T("1")], ["1"], timeout=TIMEOUT)  # pool up
    t0 = time.monotonic()
    verdicts = grade_batch(responses, truths, timeout=TIMEOUT)
    elapsed = time.monotonic() - t0
    assert [v.score for v in verdicts] == expected
    # Each slow item holds one worker for at most timeout + grace; the pool has default_workers().
    rounds = -(-len(slow) // pool.default_workers())
    assert elapsed <= rounds * BOUND + BOUND


@pytest.mark.usefixtures("force_pool")
def test_duplicates_and_order_through_the_pool() -> None:
    answers = [f"\\frac{{{i % 5}}}{{4}}" for i in range(40)]
    truths = [str((i % 5) / 4) if i % 3 else "7" for i in range(40)]
    expected = [1.0 if i % 3 else 0.0 for i in range(40)]
    assert score_batch([T(a) for a in answers], truths, timeout=TIMEOUT) == expected


def test_score_from_a_thread_uses_the_pool() -> None:
    out: dict[str, object] = {}

    def work() -> None:
        t0 = time.monotonic()
        out["slow"] = score(T("9^{9^{9^{9}}}"), "5", timeout=TIMEOUT)
        out["elapsed"] = time.monotonic() - t0
        out["right"] = score(T("\\frac{2}{4}"), "0.5", timeout=TIMEOUT)

    score_batch([T("\\frac{1}{2}")] * 1, ["0.5"])  # (main thread, in-process)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert out["right"] == 1.0 and out["slow"] == 0.0
    # Startup of the pool is not part of the deadline; allow for it once.
    assert out["elapsed"] <= BOUND + pool.STARTUP_TIMEOUT


def test_close_pool_stops_the_workers_and_a_new_batch_restarts_them(force_pool: None) -> None:
    assert score_batch([T("2")], ["\\frac{4}{2}"], timeout=TIMEOUT) == [1.0]
    pids = pool._shared.pids
    close_pool()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert score_batch([T("2")], ["\\frac{4}{2}"], timeout=TIMEOUT) == [1.0]
    assert set(pool._shared.pids).isdisjoint(pids)


# -- stuck and crashing workers ----------------------------------------------------------------------

WRAPPER = textwrap.dedent(
    """
    import os, signal, sys, time
    from polaris.reward import _worker

    _worker.warm_up = lambda: None
    _grade = _worker.grade_item

    def grade_item(answer, truths, timeout):
        if answer == "HANG":  # stuck where the in-worker deadline cannot reach
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        if answer == "CRASH":
            os._exit(3)
        if answer.startswith("SLOW "):  # a long check: time for the test to kill this worker from outside
            open(os.environ["POLARIS_TEST_SLOW_MARK"], "w").write(str(os.getpid()))
            time.sleep(float(os.environ.get("POLARIS_TEST_SLOW_SECONDS", "0")))
            answer = answer[5:]
        return _grade(answer, truths, timeout)

    _worker.grade_item = grade_item
    sys.exit(_worker.main())
    """
)


@pytest.fixture
def wrapper_command(tmp_path: Path) -> list[str]:
    script = tmp_path / "worker.py"
    script.write_text(WRAPPER)
    return [sys.executable, str(script)]


def test_stuck_worker_is_killed_and_replaced(wrapper_command: list[str]) -> None:
    p = VerifierPool(1, command=wrapper_command, grace=0.3)
    try:
        first = p.run([("1", ("1",))], TIMEOUT)  # started and answering
        assert first == [(1.0, False)]
        before, pids = stats(), p.pids
        items = [("\\frac{1}{2}", ("0.5",)), ("HANG", ("1",)), ("3", ("4",)), ("x+x", ("2x",))]
        t0 = time.monotonic()
        results = p.run(items, TIMEOUT)
        assert results == [(1.0, False), (0.0, True), (0.0, False), (1.0, False)]
        assert stats()["workers_killed"] == before["workers_killed"] + 1
        assert p.pids != pids
        for pid in pids:  # the stuck one is gone (killed and reaped)
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert time.monotonic() - t0 < pool.STARTUP_TIMEOUT
        # and the pool still answers correctly right after
        assert p.run([("\\sqrt{4}", ("2",)), ("5", ("6",))], TIMEOUT) == [(1.0, False), (0.0, False)]
    finally:
        p.close()


def test_an_item_that_crashes_two_workers_costs_only_itself(wrapper_command: list[str]) -> None:
    p = VerifierPool(1, command=wrapper_command)
    try:
        before = stats()
        results = p.run([("2", ("2",)), ("CRASH", ("1",)), ("\\frac{6}{3}", ("2",))], TIMEOUT)
        assert results == [(1.0, False), (0.0, False), (1.0, False)]
        after = stats()
        assert after["worker_crashes"] == before["worker_crashes"] + 2  # the first crash is retried
        assert after["retried"] == before["retried"] + 1
        assert after["unscored"] == before["unscored"] + 1
    finally:
        p.close()


def test_a_worker_killed_mid_batch_is_replaced_and_the_verdicts_do_not_change(
        wrapper_command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import threading

    mark = tmp_path / "slow.pid"
    monkeypatch.setenv("POLARIS_TEST_SLOW_MARK", str(mark))
    items = [("2", ("2",)), ("\\frac{1}{2}", ("0.5",)), ("SLOW 7", ("7",)), ("3", ("4",)), ("x+x", ("2x",))]
    p = VerifierPool(1, command=wrapper_command)
    try:
        clean = p.run(items, TIMEOUT)
        assert clean == [(1.0, False), (1.0, False), (1.0, False), (0.0, False), (1.0, False)]
        mark.unlink()
        monkeypatch.setenv("POLARIS_TEST_SLOW_SECONDS", "0.3")
        p.close()
        p = VerifierPool(1, command=wrapper_command)  # its worker sleeps 0.3 s in the SLOW item
        killed: list[int] = []

        def kill_when_slow() -> None:
            deadline = time.monotonic() + 30
            while not mark.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            pid = int(mark.read_text())
            mark.unlink()  # the retry writes it again; only the first worker is killed
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        killer = threading.Thread(target=kill_when_slow)
        before = stats()
        killer.start()
        again = p.run(items, TIMEOUT)
        killer.join()
        assert killed and killed[0] not in p.pids
        assert again == clean
        after = stats()
        assert after["retried"] == before["retried"] + 1
        assert after["unscored"] == before["unscored"]
    finally:
        p.close()


FAILING = [sys.executable, "-c", "import sys; sys.exit(3)"]


def test_pool_whose_workers_cannot_start_reports_unscored_items() -> None:
    p = VerifierPool(2, command=FAILING)
    try:
        assert p.run([("1", ("1",)), ("2", ("3",))], TIMEOUT) == [None, None]
        assert p.broken
    finally:
        p.close()


def test_grade_batch_falls_back_when_the_pool_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    close_pool()
    monkeypatch.setattr(pool, "worker_command", lambda: FAILING)
    try:
        answers = [f"\\frac{{{i}}}{{2}}" for i in range(10)]
        truths = [str(i / 2) for i in range(10)]
        # Main thread: the checks run in this process instead.
        assert score_batch([T(a) for a in answers], truths, timeout=TIMEOUT) == [1.0] * 10
        # Another thread cannot use the signal deadline: the items score 0 and are counted.
        before = stats()["unscored"]
        out: list[float] = []
        thread = threading.Thread(target=lambda: out.extend(score_batch([T(a) for a in answers], truths)))
        thread.start()
        thread.join(120)
        assert out == [0.0] * 10
        assert stats()["unscored"] == before + 10
    finally:
        close_pool()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="workers"):
        score_batch([T("1")], ["1"], workers=0)
    with pytest.raises(ValueError, match="at least one worker"):
        VerifierPool(0)


# -- model output is data ---------------------------------------------------------------------------


def _payloads(marker: Path) -> list[str]:
    cmd = f"touch {marker}"
    return [
        f"__import__('os').system('{cmd}')",
        f"\\text{{__import__('os').system('{cmd}')}}",
        f"eval(\"__import__('os').system('{cmd}')\")",
        f"exec('import os; os.system(\"{cmd}\")')",
        f"\\operatorname{{__import__}}('os').system('{cmd}')",
        f"lambda: __import__('os').system('{cmd}')",
        f"(__import__('os').system('{cmd}'), 1)",
        f"Symbol('x').__class__.__init__.__globals__['os'].system('{cmd}')",
    ]


@pytest.mark.parametrize("route", ["score", "score_batch-in-process", "score_batch-pool"])
def test_payloads_in_answers_have_no_side_effect(route: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / f"polaris_pwned_{uuid.uuid4().hex}"
    payloads = _payloads(marker)
    responses = [T(p) for p in payloads] + [f"</think> {p} \\boxed{{{p}}}" for p in payloads]
    truths = ["5", "x+1"] * len(payloads)
    if route == "score":
        scores = [score(r, t, timeout=TIMEOUT) for r, t in zip(responses, truths, strict=True)]
    else:
        if route == "score_batch-pool":
            monkeypatch.setattr(grading, "SMALL_BATCH", 0)
        else:
            monkeypatch.setattr(grading, "SMALL_BATCH", 10**9)
        scores = score_batch(responses, truths, timeout=TIMEOUT)
    assert scores == [0.0] * len(responses)
    assert not marker.exists()


def test_payloads_in_ground_truths_have_no_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / f"polaris_pwned_{uuid.uuid4().hex}"
    for p in _payloads(marker):
        score(T("5"), [p], timeout=TIMEOUT)
    assert not marker.exists()


def test_model_text_never_reaches_parse_expr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sympy's ``parse_expr`` (``eval`` underneath) only ever sees NUMBER tokens of the LaTeX grammar."""
    import math_verify.parser
    import sympy.parsing.sympy_parser as sympy_parser

    score(T("x+\\frac{1}{2}"), "\\sqrt{2}")  # imports done before recording
    seen: list[str] = []
    original = sympy_parser.parse_expr

    def recording(text: str, *args: object, **kwargs: object) -> object:
        seen.append(text)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(sympy_parser, "parse_expr", recording)
    monkeypatch.setattr(math_verify.parser, "parse_expr", recording)
    marker = tmp_path / "never"
    answers = [*_payloads(marker), "12", "3.5", "1,000", "\\frac{a}{b}", "x \\in [1,2)", "50\\%", "\\text{Yes}", "e^{i\\pi}"]
    for a in answers:
        for truth in ("5", "x+1", "\\frac{1}{2}"):
            score(T(a), truth, timeout=2.0)
    assert all(re.fullmatch(r"[0-9.,]+", s) for s in seen), seen
    assert not marker.exists()
