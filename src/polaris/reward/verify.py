"""Is an extracted answer equivalent to the ground truth? (docs/method.md § The reward; the in-process half.)

Ground truths arrive as the reference files store them: ``"025"``, ``142.0``, ``['9.6\\n']``,
``['$\\frac{1}{2 n+2}$']``. :func:`ground_truth_alternatives` turns any of them into a tuple of
cleaned strings; a list means alternatives (any match counts).

Grading one answer against one alternative, cheapest first:

1. **Exact match** of :func:`normalise` d strings: whitespace, ``$``, ``\\left``/``\\right``, spacing
   commands (``\\! \\, \\; \\quad``), ``\\displaystyle``, a ``\\text{}``/``\\mathrm{}`` wrapper, degree
   marks, ``\\%``, one trailing ``.`` removed; ``\\dfrac``/``\\tfrac`` -> ``\\frac``; one-word text answers
   compared case-blind. ``x=3`` is also tried as ``3`` when the ground truth has no ``=``.
2. **Numbers**: when both sides are plain decimal numbers (``025``, ``142.0``, ``8,178``, ``1.70e4``,
   ``8.7 \\times 10^{8}``, ``10^{-3}``) they are compared here and math-verify is not asked:
   integers exactly, other values within a relative 1e-6 (absolute 1e-6 above 1). Deviation from
   math-verify, which rounds floats to 6 decimal places: it would call ``5 \\times 10^{-19}``
   equal to ``8.224 \\times 10^{-19}`` (Minerva has such answers).
3. **math-verify** (``math_verify.parse`` with :class:`LatexExtractionConfig` only, then
   ``math_verify.verify``): fractions, roots, pi, percentages, intervals, sets, tuples, equations,
   expressions. Scientific ``1.70e4`` is rewritten as ``1.70\\times 10^{4}`` first (latex2sympy
   reads ``e`` as Euler's number). Answers longer than :data:`MAX_SYMBOLIC_CHARS` or nested deeper
   than :data:`MAX_NESTING` brackets skip this step (ANTLR needs seconds on deep nesting; no real
   answer looks like that).

Step 3 runs under a deadline. math-verify's own timeouts use ``signal.alarm`` with whole seconds
and reset any alarm already set, so they are switched off (``parsing_timeout=None``,
``timeout_seconds=None``) and :func:`call_with_deadline` puts one ``setitimer`` deadline around the
whole check instead. Signals only reach the main thread: elsewhere the batch pool
(:mod:`polaris.reward.pool`) gives the deadline by killing its worker.

Safety: model output is data. Only ``LatexExtractionConfig`` is used, never ``ExprExtractionConfig``
(whose path calls sympy ``parse_expr``, i.e. ``eval``, on matched text). The LaTeX path tokenises
with ANTLR and builds sympy objects node by node; the one place it turns text into a number through
``sympify`` is ``sympy.Number(token)`` on a NUMBER token (digits, ``.`` and ``,``). See
docs/verification.md and the test that records every ``parse_expr`` call.
"""

from __future__ import annotations

import functools
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from polaris.reward.extract import answer_region, extract_boxed, unwrap_boxes

GroundTruth = str | int | float | list[str]
T = TypeVar("T")

#: Answers longer than this (characters) are compared by exact match only.
MAX_SYMBOLIC_CHARS = 1_000
#: Answers nested deeper than this in ``( [ {`` are compared by exact match only.
MAX_NESTING = 16


@dataclass(frozen=True)
class Verdict:
    """The grade of one response."""

    score: float
    """1.0 when the boxed answer matches the ground truth, else 0.0."""
    extracted: str | None
    """The extracted boxed answer; ``None`` when there is none (or no ``</think>`` when required)."""
    timed_out: bool
    """The equivalence check ran out of time (the score is then 0.0)."""


# -- ground truths ---------------------------------------------------------------------------------


def _clean(text: str) -> str:
    text = text.strip()
    for fence in ("$$", "$"):
        if len(text) > 2 * len(fence) - 1 and text.startswith(fence) and text.endswith(fence):
            return text[len(fence) : -len(fence)].strip()
    return text


def _one_truth(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return _clean(value) or None
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalars
        return _one_truth(value.item())
    return None


def ground_truth_alternatives(ground_truth: Any) -> tuple[str, ...]:
    """The cleaned alternatives of a ground truth (str, int, float or a list of them).

    Unusable values (``None``, NaN, empty strings) are dropped; an empty tuple scores 0.
    """
    if hasattr(ground_truth, "tolist") and not isinstance(ground_truth, str):
        ground_truth = ground_truth.tolist()  # numpy arrays from pandas / pyarrow
    values = ground_truth if isinstance(ground_truth, list | tuple) else [ground_truth]
    out: list[str] = []
    for v in values:
        text = _one_truth(v)
        if text is not None and text not in out:
            out.append(text)
    return tuple(out)


# -- fast path: normalised strings and plain numbers -----------------------------------------------

_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")
_SPACING = re.compile(r"\\(?:[,;:! ]|quad(?![A-Za-z])|qquad(?![A-Za-z])|displaystyle(?![A-Za-z]))|~")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|°")
_WHITESPACE = re.compile(r"\s+")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![A-Za-z])")
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?=(?!=)(.+)$")

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(rf"^{_NUM}$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_E_NOTATION = re.compile(rf"^({_NUM})[eE]([+-]?\d+)$")
_TIMES_TEN = re.compile(rf"^({_NUM})(?:\\times|\\cdot|\*|×)10\^(?:\{{([+-]?\d+)\}}|([+-]?\d))$")
_TEN_POWER = re.compile(r"^10\^(?:\{([+-]?\d+)\}|([+-]?\d))$")
_MAX_EXPONENT = 400


def normalise(text: str) -> str:
    """The form both sides are compared in by the exact-match step (see the module docstring)."""
    s = text.replace("$", "")
    for _ in range(4):  # unwrap \text{...} (a few levels)
        s, n = _WRAPPER.subn(r"\1", s)
        if not n:
            break
    s = _LEFT_RIGHT.sub("", s)
    s = _SPACING.sub("", s)
    s = _FRAC_VARIANTS.sub(r"\\frac", s)
    s = _DEGREES.sub("", s)
    s = _WHITESPACE.sub("", s)
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1]
    return s


def _key(normalised: str) -> str:
    return normalised.replace("\\%", "").replace("%", "")


def as_decimal(normalised: str) -> Decimal | None:
    """The value of a plain decimal number in :func:`normalise` d form, else ``None``."""
    s = normalised
    if len(s) > 64:
        return None
    try:
        if _PLAIN.match(s):
            return Decimal(s)
        if _THOUSANDS.match(s):
            return Decimal(s.replace(",", ""))
        m = _E_NOTATION.match(s)
        if m:
            exponent = int(m.group(2))
            return Decimal(f"{m.group(1)}e{exponent}") if abs(exponent) <= _MAX_EXPONENT else None
        m = _TIMES_TEN.match(s) or _TEN_POWER.match(s)
        if m:
            mantissa = m.group(1) if m.re is _TIMES_TEN else "1"
            exponent = int(next(g for g in m.groups()[m.re is _TIMES_TEN :] if g is not None))
            return Decimal(f"{mantissa}e{exponent}") if abs(exponent) <= _MAX_EXPONENT else None
    except (InvalidOperation, ValueError):
        return None
    return None


def numbers_equal(a: Decimal, b: Decimal) -> bool:
    """Integers exactly; otherwise within 1e-6 relative (and 1e-6 absolute for values above 1)."""
    if a == b:
        return True
    if a == a.to_integral_value() and b == b.to_integral_value():
        return False
    scale = min(Decimal(1), max(abs(a), abs(b)))
    return abs(a - b) <= Decimal("1e-6") * scale


def _is_word(s: str) -> bool:
    return len(s) > 1 and s.isalpha()


def quick_match(answer: str, truth: str) -> bool | None:
    """Exact/number comparison: ``True`` (equal), ``False`` (both numbers, different), ``None``
    (undecided: ask math-verify)."""
    a, t = normalise(answer), normalise(truth)
    candidates = [a]
    m = _ASSIGNMENT.match(a)
    if m and "=" not in t:
        candidates.append(m.group(1))
    t_key = _key(t)
    t_num = as_decimal(t)
    decided_false = True
    for c in candidates:
        c_key = _key(c)
        if c_key == t_key or (_is_word(c_key) and _is_word(t_key) and c_key.casefold() == t_key.casefold()):
            return True
        c_num = as_decimal(c)
        if c_num is not None and t_num is not None:
            if numbers_equal(c_num, t_num):
                return True
        else:
            decided_false = False
    return False if decided_false else None


def nesting_depth(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
    return best


def symbolic_possible(answer: str) -> bool:
    """Whether the answer is small enough to hand to math-verify."""
    return len(answer) <= MAX_SYMBOLIC_CHARS and nesting_depth(answer) <= MAX_NESTING


# -- math-verify -----------------------------------------------------------------------------------

_E_IN_TEXT = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")


def _latex_for_verify(text: str) -> str:
    return _E_IN_TEXT.sub(r"\1\\times 10^{\2}", text)


@functools.cache
def _math_verify() -> Any:
    """Import math-verify on first use (keeps ``import polaris.reward`` light)."""
    import math_verify
    import math_verify.grader
    import math_verify.parser

    # Deadlines are ours (call_with_deadline); silence its one-time "timeout disabled" warning.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return math_verify


@functools.lru_cache(maxsize=8192)
def _parse(latex: str) -> tuple[Any, ...]:
    mv = _math_verify()
    parsed = mv.parse(
        "\\boxed{" + _latex_for_verify(latex) + "}",
        extraction_config=[mv.LatexExtractionConfig()],
        parsing_timeout=None,
    )
    return tuple(parsed)


def symbolic_match(answer: str, truths: Sequence[str]) -> bool:
    """math-verify equivalence of ``answer`` with any of ``truths`` (no deadline of its own)."""
    mv = _math_verify()
    try:
        pred = _parse(answer)
        if not pred:
            return False
        for truth in truths:
            gold = _parse(truth)
            if gold and mv.verify(list(gold), list(pred), timeout_seconds=None):
                return True
    except Exception:  # math-verify swallows most errors itself; anything left is "not equal"
        return False
    return False


#: Typical answer shapes. ANTLR's parser builds its prediction tables as it meets new input, so a
#: fresh process parses its first few hundred answers several times slower; workers run these
#: before they report ready.
WARM_UP: tuple[tuple[str, str], ...] = (
    ("\\frac{1}{2}", "0.5"), ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}"), ("\\binom{2n}{n}", "\\frac{(2n)!}{(n!)^2}"),
    ("(1,2),(3,4)", "\\{(3,4),(1,2)\\}"), ("[1,3)", "(1,3]"), ("x=\\frac{\\pi}{6}+k\\pi", "\\frac{\\pi}{6}"),
    ("2^{10}-1", "1023"), ("\\left(n^{2}-n+1\\right)", "n^2-n+1"), ("\\sin(2t)+\\cos t", "\\sin 2t + \\cos(t)"),
    ("e^{-at}\\ln 2", "\\log 2 \\cdot e^{-a t}"), ("x_{0} \\cdot y_{1}^{2}", "x_0 y_1^2"),
    ("\\lfloor m/2 \\rfloor", "\\lceil n \\rceil"), ("1+i\\sqrt{3}", "1 + \\sqrt{3} i"), ("30^\\circ", "\\frac{\\pi}{6}"),
    ("50\\%", "0.5"), ("8.7 \\times 10^{8}", "870000000"), ("a \\leq b", "b \\geq a"), ("f(x)=2x+1", "2x+1"),
    ("\\arcsin(\\frac{1}{1.3})", "\\arcsin \\frac{10}{13}"), ("\\infty", "(-\\infty, 3]"), ("\\text{Yes}", "\\text{no}"),
    ("\\mathbf{v} = (1, 2)", "(1,2)"), ("\\frac{a M^{1/3}}{G M^{2/3}+b}", "\\frac{x}{y}"), ("y' + ry = 0", "y^{\\prime}+ry=0"),
    ("\\sum_{k=1}^{n} k", "\\frac{n(n+1)}{2}"), ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "(1,2)"),
)


def warm_up() -> None:
    """Import math-verify and run :data:`WARM_UP` through it (about 2 s on one core)."""
    for answer, truth in WARM_UP:
        symbolic_match(answer, [truth])
    _parse.cache_clear()


# -- deadlines -------------------------------------------------------------------------------------


class DeadlineExceeded(BaseException):
    """Raised inside a check that ran past its deadline.

    A ``BaseException`` so that the ``except Exception`` blocks in math-verify and sympy do not
    swallow it.
    """


_armed = [False]  # a list, so the handler and the finally block share it without a global statement


def _on_alarm(signum: int, frame: Any) -> None:
    if _armed[0]:
        # Fire again shortly in case a bare ``except:`` somewhere swallows this one.
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        raise DeadlineExceeded


def can_use_signals() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


def call_with_deadline(fn: Callable[[], T], seconds: float) -> tuple[T | None, bool]:
    """``(fn(), False)``, or ``(None, True)`` when it ran past ``seconds``. Main thread only.

    A previous SIGALRM handler and timer are restored afterwards (the timer with its time left).
    """
    if not can_use_signals():
        raise RuntimeError("call_with_deadline needs the main thread (signals)")
    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    _armed[0] = True
    try:
        return fn(), False
    except DeadlineExceeded:
        _armed[0] = False  # before anything that could let a re-armed alarm in
        return None, True
    finally:
        # First statement: from here on a pending alarm is a no-op (no call, no check point before it).
        _armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            left = max(old_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


# -- one response ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A response after the cheap steps: either decided, or waiting for math-verify."""

    verdict: Verdict | None
    answer: str = ""
    """What math-verify compares: the extracted answer, less any box that wraps all of it."""
    truths: tuple[str, ...] = ()
    extracted: str | None = None
    """The extracted answer as :class:`Verdict` reports it."""


def prepare(response: str, ground_truth: Any, *, require_think: bool) -> Prepared:
    """Extraction and the exact/number comparison; math-verify is left to the caller."""
    region = answer_region(response, require_think=require_think)
    extracted = extract_boxed(region) if region is not None else None
    answer = unwrap_boxes(extracted) if extracted else ""  # a box in a box: grade the inner content
    if not answer.strip():
        return Prepared(Verdict(0.0, extracted, False))
    truths = ground_truth_alternatives(ground_truth)
    undecided = []
    for t in truths:
        quick = quick_match(answer, t)
        if quick:
            return Prepared(Verdict(1.0, extracted, False))
        if quick is None:
            undecided.append(t)
    if not undecided or not symbolic_possible(answer):
        return Prepared(Verdict(0.0, extracted, False))
    return Prepared(None, answer, tuple(undecided), extracted)


def check_with_deadline(answer: str, truths: Sequence[str], timeout: float) -> tuple[float, bool]:
    """(score, timed_out) of math-verify under a signal deadline (main thread only).

    The first call in a process imports math-verify and sympy (about a second, more on a loaded
    machine) before the deadline starts: that one-time cost is no part of any answer's time.
    """
    _math_verify()
    matched, timed_out = call_with_deadline(lambda: symbolic_match(answer, truths), timeout)
    return (1.0 if matched else 0.0), timed_out


def grade_in_process(response: str, ground_truth: Any, *, require_think: bool, timeout: float) -> Verdict:
    """One response, graded in this process (main thread: the deadline is a signal)."""
    p = prepare(response, ground_truth, require_think=require_think)
    if p.verdict is not None:
        return p.verdict
    score, timed_out = check_with_deadline(p.answer, p.truths, timeout)
    return Verdict(score, p.extracted, timed_out)
