"""Fuzzing the verifier: hostile model output through ``polaris.reward.score_batch`` and its worker pool.

Hypothesis generates (response, ground truth) cases: brackets and ``\\frac`` nested up to 1000 deep,
power towers and huge exponents (``10^10^10^10``, ``9**9**9**9``, ``2^{99999999}``, factorials),
unicode (random text, right-to-left text and overrides, combining marks, lone surrogates, escape
look-alikes), TeX macro bombs and file/shell access (``\\def\\a{\\a\\a}``, ``\\newcommand``
recursion, ``\\input{/etc/passwd}``, ``\\write18``), Python payloads (``__import__('os').system``,
``open``, ``eval``, ``exec``, sympy ``sympify``/``Lambda`` strings) and 1 MB strings, placed in boxed
answers, bare text, before and after ``</think>``, and in ground truths. Mixed in are valid
responses (a random integer or fraction in one of its accepted written forms, boxed after
``</think>``, after arbitrary hostile reasoning) that must score exactly 1.0, and their near
misses (no ``</think>`` when it is required, the answer only inside the reasoning, a different
number) that must score exactly 0.0.

Properties checked, per scoring call (a batch of cases with the same ``require_think``):

* no exception comes out of ``score_batch`` (``crashes``: cases in a call that raised);
* every score is exactly ``0.0`` or ``1.0`` (``non_binary_scores``);
* no payload ran: the payloads would create files in a fresh temporary folder, or print a token
  that appears nowhere in their text (``POLARIS_FUZZ_`` + ``PRINTED`` built by the payload); the
  folder is checked after every call and this process's stdout/stderr, which the workers inherit,
  are captured and searched (``payloads_run``);
* the call returns by its deadline (``over_deadline``, ``max_overrun_s``). The pool gives each
  math-verify check ``timeout`` seconds in the worker and kills the worker at ``timeout +
  pool.GRACE``; a call whose checks time out ``t`` times (``stats()["timeouts"]`` before and after)
  may take ``ceil(t / workers)`` such deadlines, plus one more deadline and 1 s for everything
  else: ``(ceil(t / workers) + 1) * (timeout + GRACE) + 1``. With no timeout in a call that is the
  plain ``timeout + GRACE + 1`` bound;
* valid answers score 1.0 (``correct_scored_1`` of ``correct_total``) and their near misses 0.0
  (``wrong_scored_0`` of ``wrong_total``).

:func:`fuzz` closes the shared verifier pool before and after the run, so that its workers start
with the captured output streams. Standalone::

    .venv/bin/python bench/fuzz_verifier.py              # 10,000 cases, prints a markdown table
    .venv/bin/python bench/fuzz_verifier.py --n 500 --seed 3
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from polaris.reward import close_pool, pool, score_batch

#: What the printing payloads print, assembled at run time; their text never contains it whole.
PRINT_TOKEN = "POLARIS_FUZZ_" + "PRINTED"
#: Placeholder for a marker file path in the payload templates below.
F = "%MARKER%"

# -- hostile fragments -----------------------------------------------------------------------------

PYTHON_PAYLOADS = (
    f"__import__('os').system('touch {F}')",
    f"open('{F}', 'w').write('x')",
    f"eval(\"open('{F}', 'w')\")",
    f"exec('import os; os.system(\"touch {F}\")')",
    f"__import__('pathlib').Path('{F}').touch()",
    f"__import__('subprocess').run(['touch', '{F}'])",
    f"(lambda: __import__('os').system('touch {F}'))()",
    f"lambda x: exec(\"open('{F}', 'w')\")",
    f"sympify(\"__import__('os').system('touch {F}')\")",
    f"S(\"open('{F}', 'w')\")",
    f"parse_expr(\"__import__('os').system('touch {F}')\")",
    f"Lambda(x, __import__('os').system('touch {F}'))",
    f"Symbol('x').__class__.__init__.__globals__['os'].system('touch {F}')",
    f"[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen'][0](['touch', '{F}'])",
    f"globals()['__builtins__']['open']('{F}', 'w')",
    f"__builtins__.__import__('os').popen('touch {F}').read()",
    f"compile(\"open('{F}','w')\", 'x', 'exec')",
    "print('POLARIS_FUZZ_' + 'PRINTED')",
    "__import__('sys').stdout.write('POLARIS_FUZZ_' + 'PRINTED')",
    "__import__('os').write(2, b'POLARIS_FUZZ_' + b'PRINTED')",
    "__import__('os').system('echo POLARIS_FUZZ_\"\"PRINTED')",
    "x = 1; print('POLARIS_FUZZ_' 'PRINTED')",
)
TEX_PAYLOADS = (
    "\\def\\a{\\a\\a}\\a",
    "\\def\\a{\\a}\\a",
    "\\def\\x#1{\\x{#1#1}}\\x{x}",
    "\\newcommand{\\x}{\\x\\x}\\x",
    "\\newcommand*\\bomb{\\bomb\\bomb}\\bomb",
    "\\renewcommand{\\frac}[2]{\\frac{#2}{#1}}\\frac{1}{2}",
    "\\let\\a\\a\\a",
    "\\input{/etc/passwd}",
    "\\include{/etc/shadow}",
    "\\input /etc/passwd ",
    f'\\input{{|"touch {F}"}}',
    f"\\write18{{touch {F}}}",
    f"\\immediate\\write18{{touch {F}}}",
    '\\immediate\\write18{echo POLARIS_FUZZ_""PRINTED}',
    f"\\newwrite\\f\\immediate\\openout\\f={F}\\immediate\\write\\f{{x}}\\immediate\\closeout\\f",
    f"\\directlua{{os.execute('touch {F}')}}",
    f"\\usepackage{{shellesc}}\\ShellEscape{{touch {F}}}",
    "\\typeout{POLARIS_FUZZ_\\empty PRINTED}",
    "\\catcode`\\{=12 \\def\\a{",
    "\\expandafter\\expandafter\\expandafter\\a\\csname\\endcsname",
    "\\loop\\iftrue\\repeat",
    "\\begin{verbatim}\\end{verbatim}\\verb|x|",
    "\\href{file:///etc/passwd}{x}\\includegraphics{/etc/passwd}",
)
EXPONENTS = (
    "10^10^10^10",
    "9**9**9**9",
    "2^{99999999}",
    "10^{10^{10^{10}}}",
    "9^{9^{9^{9}}}",
    "(10^{100})!",
    "99999999!",
    "1e99999999",
    "10^{-99999999}",
    "\\binom{10^{9}}{5\\cdot 10^{8}}",
    "{10^{10}}^{10^{10}}",
    "2\\uparrow\\uparrow 5",
    "e^{e^{e^{e^{e}}}}",
    "\\exp(\\exp(\\exp(100)))",
    "(-1)^{10^{100}}",
    "\\sqrt[10^{9}]{2}",
    "0^{0^{0}}",
    "\\infty^{\\infty}",
    "\\frac{1}{0}",
    "0/0",
    "\\pi^{10^{10}}",
    "\\prod_{k=1}^{10^{9}} k",
    "x^{x^{x^{x}}}",
    "9^9^9^9",
    "10**10**10",
    "2^2^2^2^2^2",
)
UNICODE_FIXED = (
    "\u202e5\u202c",
    "\u200f\u05d0\u05d1\u05d2",
    "\u0627\u0644\u062c\u0648\u0627\u0628 \u0665",
    "\ufeff5",
    "5\u0301\u0302\u0303",
    "\u200b\u200c\u200d",
    "\uff15",
    "\u00b2",
    "\\ud800",
    "\\udfff",
    "\\u0000",
    "\\x00",
    "%00",
    "&#xD800;",
    "\ud800",
    "\udfff\ud800",
    "\x00",
    "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    "\U0001f600" * 3,
    "\u0000\\boxed{5}",
)
NESTING_OPENERS = (
    ("(", ")"),
    ("[", "]"),
    ("{", "}"),
    ("\\{", "\\}"),
    ("\\left(", "\\right)"),
    ("\\frac{1}{", "}"),
    ("\\sqrt{", "}"),
    ("x^{", "}"),
    ("\\boxed{", "}"),
    ("\\text{", "}"),
    ("|", "|"),
    ("2^{", "}"),
)


def _nesting() -> st.SearchStrategy[str]:
    depth = st.one_of(st.integers(1, 20), st.integers(20, 1000), st.just(1000))
    shape = st.sampled_from(["balanced", "open", "close", "mixed"])

    def build(pair: tuple[str, str], d: int, core: str, kind: str) -> str:
        opener, closer = pair
        if kind == "open":
            return opener * d + core
        if kind == "close":
            return core + closer * d
        if kind == "mixed":
            return (opener + closer[::-1]) * d + core
        return opener * d + core + closer * d

    return st.builds(
        build, st.sampled_from(NESTING_OPENERS), depth, st.sampled_from(["1", "x", "", "2+2"]), shape
    )


def _exponents() -> st.SearchStrategy[str]:
    def tower(bases: list[str], style: str) -> str:
        if style == "braces":
            out = bases[-1]
            for b in reversed(bases[:-1]):
                out = f"{b}^{{{out}}}"
            return out
        return ("**" if style == "stars" else "^").join(bases)

    base = st.sampled_from(["2", "3", "9", "10", "99", "e", "\\pi", "x", "1.5", "(10^{100})"])
    towers = st.builds(
        tower, st.lists(base, min_size=2, max_size=6), st.sampled_from(["braces", "stars", "caret"])
    )
    big = st.integers(10**6, 10**12)
    powers = st.builds(lambda b, e: f"{b}^{{{e}}}", st.sampled_from(["2", "3", "7", "10", "x"]), big)
    factorials = st.builds(lambda k: f"{k}!", big)
    return st.one_of(st.sampled_from(EXPONENTS), towers, powers, factorials)


def _unicode() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(UNICODE_FIXED),
        st.text(max_size=60),
        st.text(st.characters(categories=["Mn", "Me"]), max_size=30).map(lambda s: "5" + s),
        st.text(st.characters(min_codepoint=0x590, max_codepoint=0x6FF), max_size=30).map(
            lambda s: "\u202b" + s
        ),
        st.text(st.characters(categories=["Cs"]), min_size=1, max_size=8),
        st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Co"]), max_size=20),
    )


def _code(marker: Callable[[str], str]) -> st.SearchStrategy[str]:
    wrap = st.sampled_from(["{}", "\\text{{{}}}", "\\operatorname{{{}}}", "\\mathrm{{{}}}", "${}$", "{} + 1"])
    payload = st.sampled_from(PYTHON_PAYLOADS + TEX_PAYLOADS).map(marker)
    return st.builds(lambda w, p: w.format(p), wrap, payload)


def _macro_bombs(marker: Callable[[str], str]) -> st.SearchStrategy[str]:
    return st.builds(lambda p, k: p * k, st.sampled_from(TEX_PAYLOADS).map(marker), st.integers(1, 40))


def _megabyte(small: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """About 0.5 to 1 MB of one repeated piece (the piece may itself be hostile)."""
    piece = st.one_of(
        small, st.sampled_from(["step ", "{", "}", "\\boxed{1}", "</think>", "\\frac{1}{", "9^", "x"])
    )
    size = st.integers(1 << 19, 1 << 20)
    return st.builds(lambda p, n: ((p or "x") * (n // max(1, len(p or "x")) + 1))[:n], piece, size)


# -- cases -----------------------------------------------------------------------------------------


class Case:
    """One generated case. ``expected``: 1.0 or 0.0 for the valid answers and their near misses,
    ``None`` for the hostile ones (any binary score is right).

    A plain class, not a dataclass: this file is also loaded by path with importlib, without an
    entry in ``sys.modules``, which dataclasses need."""

    __slots__ = ("expected", "kind", "require_think", "response", "truth")

    def __init__(
        self, response: str, truth: Any, require_think: bool, expected: float | None, kind: str
    ) -> None:
        self.response, self.truth, self.require_think, self.expected, self.kind = (
            response,
            truth,
            require_think,
            expected,
            kind,
        )

    def short(self) -> str:
        def cut(x: Any) -> str:
            r = ascii(x)
            return r if len(r) <= 160 else f"{r[:100]}...({len(r)} chars)...{r[-40:]}"

        response, truth = cut(self.response), cut(self.truth)
        return f"{self.kind}: response={response} truth={truth} require_think={self.require_think}"

    # Hypothesis prints the cases of a failing example: shortened, as 1 MB each would drown the report.
    __repr__ = short

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.short())


PLACEMENTS = (
    "<think>r</think> \\boxed{%s}",
    "</think>\\boxed{%s}",
    "\\boxed{%s}",
    "<think>\\boxed{%s}</think>",
    "</think> %s",
    "</think> $\\boxed{%s}$.",
    "</think>\\fbox{%s}",
    "</think>\\boxed %s",
    "</think>\\boxed{%s",
    "</think>\\boxed{\\boxed{%s}}",
    "%s</think>\\boxed{%s}",
    "</think>\\boxed{1} \\boxed{%s} \\boxed{2}",
    "</think></think>\\boxed{%s}</think>",
    "<think>%s",
    "%s",
)
ODD_TRUTHS = (b"5", {"a": 1}, (1, 2), [[1]], Fraction(1, 2), None, True, float("nan"), float("inf"))


def _decimal(value: Fraction) -> str | None:
    """The exact decimal expansion of ``value``, or ``None`` when it does not terminate."""
    q = value.denominator
    twos = fives = 0
    while q % 2 == 0:
        q, twos = q // 2, twos + 1
    while q % 5 == 0:
        q, fives = q // 5, fives + 1
    if q != 1:
        return None
    places = max(twos, fives)
    scaled = abs(value.numerator) * (10**places // value.denominator)
    digits = str(scaled).rjust(places + 1, "0")
    text = digits if places == 0 else f"{digits[:-places]}.{digits[-places:]}"
    return ("-" if value < 0 else "") + text


def _integer_forms(k: int) -> tuple[list[Any], list[str]]:
    """(ground-truth forms, answer forms) of the integer ``k``."""
    truths: list[Any] = [k, str(k), f"${k}$", [f"{k}\n"], [str(k + 7), str(k)]]
    if abs(k) < 2**53:
        truths.append(float(k))
    if k >= 0:
        truths.append(f"{k:04d}")
    answers = [
        str(k),
        f"{k}.",
        f"\\text{{{k}}}",
        f"x = {k}",
        f"{k:,}",
        f"{k}.0",
        f"\\mathbf{{{k}}}",
        f"$ {k} $",
        f"\\left( {k} \\right)",
        f"{{{k}}}",
        f"\\displaystyle {k}",
        f"{k:,}".replace(",", "\\,"),
        f"{k:,}".replace(",", "{,}"),
        f"\\!{k}\\;",
    ]
    digits = str(abs(k))
    if k and len(digits) <= 40:
        mantissa = (digits[0] + "." + digits[1:]).rstrip("0").rstrip(".")
        sign = "-" if k < 0 else ""
        answers += [
            f"{sign}{mantissa} \\times 10^{{{len(digits) - 1}}}",
            f"{sign}{mantissa}e{len(digits) - 1}",
        ]
    return truths, answers


def _fraction_forms(p: int, q: int, m: int) -> tuple[list[Any], list[str]]:
    """(ground-truth forms, answer forms) of ``p/q`` (``m``: a factor to write it unreduced)."""
    value = Fraction(p, q)
    truths: list[Any] = [
        f"{p}/{q}",
        f"\\frac{{{p}}}{{{q}}}",
        f"$\\frac{{{p}}}{{{q}}}$",
        [f"\\dfrac{{{p}}}{{{q}}}\n"],
    ]
    answers = [
        f"\\frac{{{p}}}{{{q}}}",
        f"\\dfrac{{{p * m}}}{{{q * m}}}",
        f"\\tfrac{{{p}}}{{{q}}}",
        f"{p * m}/{q * m}",
        f"\\frac{{ {p} }}{{ {q} }}",
        f"\\left(\\frac{{{p}}}{{{q}}}\\right)",
        f"{p} / {q}",
    ]
    if 0 <= p < 10 and q < 10:
        answers.append(f"\\frac{p}{q}")
    if p < 0:
        answers.append(f"-\\frac{{{-p}}}{{{q}}}")
    decimal = _decimal(value)
    if decimal is not None:
        truths += [decimal, float(value)] if abs(value) < 2**40 else [decimal]
        answers += [decimal, decimal + "0" if "." in decimal else decimal + ".00"]
    return truths, answers


SAFE_TEXT = st.text(st.characters(exclude_characters="\\"), max_size=40)
INTEGERS = st.one_of(st.integers(-1000, 1000), st.integers(-(10**9), 10**9), st.integers(-(10**100), 10**100))
NUMERATORS = st.integers(-(10**6), 10**6)
DENOMINATORS = st.integers(2, 999)
FACTORS = st.integers(1, 5)
OFFSETS = st.sampled_from([-1, 1, 10, -100])
BOXES = st.sampled_from(
    ["\\boxed{%s}", "\\fbox{%s}", "\\boxed {%s}", "$\\boxed{%s}$", "\\boxed{\\boxed{%s}}"]
)
VARIANTS = st.sampled_from(["think", "think", "think", "no-think", "missing-think", "inside-only", "wrong"])
TENTHS = st.integers(0, 9)


@st.composite
def _valid(draw: st.DrawFn, reasoning_strategy: st.SearchStrategy[str]) -> Case:
    """A correct answer in an accepted form, or one of its near misses."""
    if draw(st.booleans()):
        k = draw(INTEGERS)
        truths, answers = _integer_forms(k)
        wrong = str(k + draw(OFFSETS))
        what = "integer"
    else:
        p, q = draw(NUMERATORS), draw(DENOMINATORS)
        truths, answers = _fraction_forms(p, q, draw(FACTORS))
        wrong = f"\\frac{{{p + 1}}}{{{q}}}"
        what = "fraction"
    truth = draw(st.sampled_from(truths))
    answer = draw(st.sampled_from(answers))
    box = draw(BOXES)
    if " " not in answer and "$" not in answer and draw(TENTHS) == 0:
        box = "\\boxed %s"
    boxed = box.replace("%s", answer)
    # The reasoning may hold anything but </think>; the graded region has no backslash (no other box).
    reasoning = draw(reasoning_strategy).replace("</think>", "")
    before, after = draw(SAFE_TEXT), draw(SAFE_TEXT)
    after = (" " + after) if box == "\\boxed %s" else after
    variant = draw(VARIANTS)
    if variant == "think":
        response = f"<think>{reasoning}</think>{before}{boxed}{after}"
        return Case(response, truth, draw(st.booleans()), 1.0, f"valid-{what}")
    if variant == "no-think":
        return Case(f"{before}{boxed}{after}", truth, False, 1.0, f"valid-{what}-no-think")
    if variant == "missing-think":
        return Case(
            f"<think>{reasoning}{before}{boxed}{after}", truth, True, 0.0, f"near-miss-{what}-no-think"
        )
    if variant == "inside-only":
        response = f"<think>{reasoning}{boxed}</think>{before}{after}"
        return Case(response, truth, draw(st.booleans()), 0.0, f"near-miss-{what}-in-reasoning")
    response = f"<think>{reasoning}</think>{before}{box.replace('%s', wrong)}{after}"
    return Case(response, truth, draw(st.booleans()), 0.0, f"near-miss-{what}-wrong")


def categories(marker_dir: str | Path) -> dict[str, st.SearchStrategy[Case]]:
    """A strategy of cases per category; the payloads would create files in ``marker_dir``."""
    folder = str(marker_dir)
    counter = iter(range(10**12))

    def marker(template: str) -> str:
        return template.replace(F, f"{folder}/m{next(counter)}") if F in template else template

    nesting, unicode, code, tex = _nesting(), _unicode(), _code(marker), _macro_bombs(marker)
    small = st.one_of(nesting, unicode, code, tex)
    megabyte = _megabyte(small)
    fragments = {
        "nesting": nesting,
        "exponent": _exponents(),
        "unicode": unicode,
        "code": code,
        "tex": tex,
        "megabyte": megabyte,
        "mixed": st.lists(small, min_size=2, max_size=4).map("".join),
    }
    plain_truth = st.one_of(
        st.integers(-100, 100).map(str), st.sampled_from(["5", "\\frac{1}{2}", "x+1", "[1,3)"])
    )
    truth = st.one_of(
        plain_truth,
        st.integers(),
        st.floats(),
        small,
        st.lists(st.one_of(plain_truth, small), max_size=3),
        st.sampled_from(ODD_TRUTHS),
    )

    def hostile(kind: str) -> st.SearchStrategy[Case]:
        def build(fragment: str, placement: str, truth: Any, require_think: bool) -> Case:
            return Case(placement.replace("%s", fragment), truth, require_think, None, kind)

        return st.builds(build, fragments[kind], st.sampled_from(PLACEMENTS), truth, st.booleans())

    valid = {
        "valid": _valid(st.one_of(st.sampled_from(["", "reasoning"]), small)),
        "valid_long": _valid(megabyte),
    }
    return valid | {kind: hostile(kind) for kind in fragments}


#: Cases of each category in one round (a round is one generated example of :func:`rounds`).
ROUND = {
    "valid": 7,
    "valid_long": 1,
    "nesting": 2,
    "exponent": 1,
    "unicode": 2,
    "code": 2,
    "tex": 2,
    "megabyte": 1,
    "mixed": 2,
}


def rounds(marker_dir: str | Path) -> st.SearchStrategy[tuple[Case, ...]]:
    """A round of ``sum(ROUND.values())`` cases in the proportions of :data:`ROUND` (Hypothesis'
    choice of a ``one_of`` branch is far from uniform, so the mix is fixed this way)."""
    by_category = categories(marker_dir)
    generated = st.tuples(*[by_category[name] for name, count in ROUND.items() for _ in range(count)])
    return st.deferred(lambda: generated)  # a short repr in Hypothesis' reports


# -- running ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def capture_output(path: Path) -> Iterator[None]:
    """Send file descriptors 1 and 2 and ``sys.stdout``/``sys.stderr`` to ``path`` (appending).

    Processes started inside (the verifier workers) inherit the redirected descriptors."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    old_streams = sys.stdout, sys.stderr
    target = open(path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    try:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        sys.stdout = sys.stderr = target
        yield
    finally:
        with contextlib.suppress(Exception):
            target.flush()
        sys.stdout, sys.stderr = old_streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        target.close()


def printed_tokens(path: Path) -> int:
    """How many times the printing payloads' token appears in the captured output at ``path``."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().count(PRINT_TOKEN.encode())
    return 0


def deadline_bound(timeouts: int, timeout: float, workers: int) -> float:
    """Seconds one scoring call may take when ``timeouts`` of its checks ran out of time."""
    return (math.ceil(timeouts / workers) + 1) * (timeout + pool.GRACE) + 1.0


#: How many distinct violations :func:`fuzz` describes in its result.
MAX_EXAMPLES = 20


class Runner:
    """Scores cases in batches through ``score_batch`` and keeps the counts."""

    def __init__(self, marker_dir: Path, *, batch_size: int, timeout: float, workers: int | None) -> None:
        self.marker_dir = marker_dir
        self.batch_size = batch_size
        self.timeout = timeout
        self.workers = workers
        self.pool_size = workers or pool.default_workers()
        self.pending: dict[bool, list[Case]] = {True: [], False: []}
        self.examples: list[str] = []
        self.counts = dict.fromkeys(
            [
                "cases",
                "batches",
                "crashes",
                "non_binary_scores",
                "payloads_run",
                "over_deadline",
                "correct_total",
                "correct_scored_1",
                "wrong_total",
                "wrong_scored_0",
                "timeouts",
                "workers_killed",
                "worker_crashes",
                "unscored",
            ],
            0,
        )
        self.max_overrun_s = 0.0
        self.generated = 0
        self.kinds: Counter[str] = Counter()
        self.max_call_s = 0.0

    def add(self, case: Case) -> None:
        self.generated += 1
        self.kinds[case.kind.split("-")[0] if case.expected is None else case.kind] += 1
        batch = self.pending[case.require_think]
        batch.append(case)
        if len(batch) >= self.batch_size:
            self.flush(case.require_think)

    def finish(self) -> None:
        for require_think in (True, False):
            self.flush(require_think)

    def _note(self, what: str, case: Case | None = None) -> None:
        """Keep the first distinct violations (Hypothesis repeats an example now and then)."""
        note = what if case is None else f"{what}: {case.short()}"
        if len(self.examples) < MAX_EXAMPLES and note not in self.examples:
            self.examples.append(note)

    def _score(self, batch: list[Case], require_think: bool) -> list[Any]:
        scores = score_batch(
            [c.response for c in batch],
            [c.truth for c in batch],
            require_think=require_think,
            timeout=self.timeout,
            workers=self.workers,
        )
        if not isinstance(scores, list) or len(scores) != len(batch):
            raise TypeError(f"score_batch returned {type(scores).__name__} of the wrong length")
        return scores

    def flush(self, require_think: bool) -> None:
        batch, self.pending[require_think] = self.pending[require_think], []
        if not batch:
            return
        c = self.counts
        c["cases"] += len(batch)
        c["batches"] += 1
        before = pool.stats()
        started = time.monotonic()
        try:
            scores: list[Any] | None = self._score(batch, require_think)
        except BaseException as error:  # also DeadlineExceeded and the like, not KeyboardInterrupt/SystemExit
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            scores = None
            self._note(f"score_batch raised {type(error).__name__}: {str(error)[:200]}")
        elapsed = time.monotonic() - started
        after = pool.stats()
        for key in ("timeouts", "workers_killed", "worker_crashes", "unscored"):
            c[key] += after[key] - before[key]
        if scores is None:
            c["crashes"] += self._isolate(batch, require_think)
        else:
            bound = deadline_bound(after["timeouts"] - before["timeouts"], self.timeout, self.pool_size)
            self.max_call_s = max(self.max_call_s, elapsed)
            self.max_overrun_s = max(self.max_overrun_s, elapsed - bound)
            if elapsed > bound:
                c["over_deadline"] += 1
                self._note(f"a call of {len(batch)} cases took {elapsed:.2f} s, bound {bound:.2f} s")
            for case, s in zip(batch, scores, strict=True):
                if type(s) is not float or s not in (0.0, 1.0):
                    c["non_binary_scores"] += 1
                    self._note(f"score {s!r}", case)
                if case.expected == 1.0:
                    c["correct_total"] += 1
                    c["correct_scored_1"] += s == 1.0
                    if s != 1.0:
                        self._note(f"valid answer scored {s!r}", case)
                elif case.expected == 0.0:
                    c["wrong_total"] += 1
                    c["wrong_scored_0"] += s == 0.0
                    if s != 0.0:
                        self._note(f"near miss scored {s!r}", case)
        created = sorted(self.marker_dir.iterdir())
        if created:
            c["payloads_run"] += len(created)
            self._note(f"payload ran: created {[p.name for p in created]} (in a batch of {len(batch)})")
            for p in created:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    def _isolate(self, batch: list[Case], require_think: bool) -> int:
        """After a call raised: score the cases one by one; the number that raise alone (at least 1)."""
        failing = 0
        for case in batch:
            try:
                self._score([case], require_think)
            except BaseException as error:
                if isinstance(error, KeyboardInterrupt | SystemExit):
                    raise
                failing += 1
                self._note(f"raised {type(error).__name__}", case)
        return max(failing, 1)


def warm_pool(timeout: float, workers: int | None) -> None:
    """Start the shared pool (a batch with enough distinct math-verify checks to go to it)."""
    responses = [f"</think> \\boxed{{\\frac{{{i}}}{{{i + 1}}}}}" for i in range(1, 17)]
    score_batch(responses, [f"{i}/{i + 1}" for i in range(1, 17)], timeout=max(timeout, 5.0), workers=workers)


def fuzz(
    n: int = 10000, seed: int = 0, *, batch_size: int = 200, timeout: float = 1.0, workers: int | None = None
) -> dict[str, Any]:
    """Score ``n`` generated cases through ``score_batch`` (shared worker pool) and count property
    violations; see the module docstring. ``timeout`` goes to ``score_batch``; ``workers`` is the
    pool size (default: one per CPU)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="polaris-fuzz-") as tmp:
        marker_dir = Path(tmp) / "markers"
        marker_dir.mkdir()
        log = Path(tmp) / "output.txt"
        runner = Runner(marker_dir, batch_size=batch_size, timeout=timeout, workers=workers)

        size = sum(ROUND.values())

        @settings(
            max_examples=-(-n // size),
            database=None,
            deadline=None,
            phases=(Phase.generate,),
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @hypothesis.seed(seed)
        @given(rounds(marker_dir))
        def drive(generated: tuple[Case, ...]) -> None:
            for case in generated[: n - runner.generated]:
                runner.add(case)

        close_pool()  # the workers must start inside the capture, to inherit it
        try:
            with capture_output(log):
                warm_pool(timeout, workers)
                startup_s = time.monotonic() - started
                drive()
                runner.finish()
                close_pool()
        finally:
            close_pool()
        printed = printed_tokens(log)
        captured = log.read_text(encoding="utf-8", errors="replace")
    if printed:
        runner.counts["payloads_run"] += printed
        runner._note(f"the print token appeared {printed} times in the captured output")
    result: dict[str, Any] = dict(runner.counts)
    result.update(
        max_overrun_s=round(max(0.0, runner.max_overrun_s), 3),
        max_call_s=round(runner.max_call_s, 3),
        wall_s=round(time.monotonic() - started, 1),
        startup_s=round(startup_s, 1),
        timeout_s=timeout,
        grace_s=pool.GRACE,
        workers=runner.pool_size,
        batch_size=batch_size,
        seed=seed,
        captured_output_chars=len(captured),
        kinds=dict(sorted(runner.kinds.items())),
        examples=runner.examples,
    )
    return result


def markdown(result: dict[str, Any]) -> str:
    rows = [
        ("cases", result["cases"]),
        ("crashes", result["crashes"]),
        ("non-binary scores", result["non_binary_scores"]),
        ("payloads run", result["payloads_run"]),
        ("calls over deadline", f"{result['over_deadline']} of {result['batches']}"),
        ("max overrun (s)", result["max_overrun_s"]),
        ("slowest call (s)", result["max_call_s"]),
        ("valid answers scored 1.0", f"{result['correct_scored_1']} / {result['correct_total']}"),
        ("near misses scored 0.0", f"{result['wrong_scored_0']} / {result['wrong_total']}"),
        (
            "timeouts / workers killed / worker crashes / unscored",
            " / ".join(str(result[k]) for k in ("timeouts", "workers_killed", "worker_crashes", "unscored")),
        ),
        ("wall time (s)", f"{result['wall_s']} (pool start {result['startup_s']})"),
        ("cases by kind", ", ".join(f"{k} {v}" for k, v in result["kinds"].items())),
    ]
    head = (
        f"Verifier fuzzing: seed {result['seed']}, "
        f"timeout {result['timeout_s']} s + grace {result['grace_s']} s, "
        f"{result['workers']} workers, batches of {result['batch_size']}\n\n| | |\n|---|---|\n"
    )
    table = head + "\n".join(f"| {k} | {v} |" for k, v in rows)
    if result["examples"]:
        table += "\n\nFirst violations:\n" + "\n".join(f"- {e}" for e in result["examples"])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=10000, help="number of generated cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1.0, help="score_batch's per-check timeout (s)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    result = fuzz(args.n, args.seed, batch_size=args.batch_size, timeout=args.timeout, workers=args.workers)
    print(markdown(result))
    clean = not (
        result["crashes"] or result["non_binary_scores"] or result["payloads_run"] or result["over_deadline"]
    )
    return 0 if clean and result["correct_scored_1"] == result["correct_total"] else 1


if __name__ == "__main__":
    sys.exit(main())
