"""Answer extraction and equivalence: a table of hand-checked cases, plus the reference files.

Every case states the response's answer, the ground truth as a data file stores it, and the
expected reward. ``T(x)`` is a response whose reasoning is closed by ``</think>`` and whose final
answer is ``\\boxed{x}``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from polaris.reward import Verdict, extract_boxed, grade_batch, score, score_batch
from polaris.reward.extract import answer_region
from polaris.reward.verify import as_decimal, ground_truth_alternatives, normalise, quick_match

TIMEOUT = 5.0


def T(answer: str) -> str:
    return f"<think>Let me work this out. 2+2=4, so \\boxed{{0}} is not it.</think>\nThe answer is $\\boxed{{{answer}}}$."


# (id, response, ground truth, require_think, expected score)
CASES: list[tuple[str, str, object, bool, float]] = [
    # -- AIME: ground truth strings, leading zeros -------------------------------------------------
    ("aime-exact", T("025"), "025", True, 1.0),
    ("aime-no-leading-zero", T("25"), "025", True, 1.0),
    ("aime-two-leading-zeros", T("0025"), "025", True, 1.0),
    ("aime-gold-no-zero", T("025"), "25", True, 1.0),
    ("aime-wrong", T("26"), "025", True, 0.0),
    ("aime-wrong-250", T("250"), "025", True, 0.0),
    ("aime-decimal", T("25.0"), "025", True, 1.0),
    ("aime-dollar", T("$25$"), "025", True, 1.0),
    ("aime-text", T("\\text{25}"), "025", True, 1.0),
    ("aime-trailing-dot", T("25."), "025", True, 1.0),
    ("aime-assignment", T("n = 25"), "025", True, 1.0),
    ("aime-spaces", T("  204  "), "204", True, 1.0),
    ("aime-809", T("809"), "809", True, 1.0),
    ("aime-809-wrong", T("908"), "809", True, 0.0),
    ("aime-thousands", T("8,178"), "8178", True, 1.0),
    ("aime-thin-space", T("8\\,178"), "8178", True, 1.0),
    ("aime-mathrm", T("\\mathrm{70}"), "70", True, 1.0),
    ("aime-textbf", T("\\textbf{70}"), "70", True, 1.0),
    ("aime-negative-wrong", T("-70"), "70", True, 0.0),
    ("aime-plus", T("+70"), "70", True, 1.0),
    ("aime-fraction-equal", T("\\frac{140}{2}"), "70", True, 1.0),
    ("aime-fraction-wrong", T("\\frac{141}{2}"), "70", True, 0.0),
    ("aime-expression", T("2^{6}+6"), "70", True, 1.0),
    ("aime-words", T("seventy"), "70", True, 0.0),
    # -- AMC: float ground truths ----------------------------------------------------------------
    ("amc-int", T("142"), 142.0, True, 1.0),
    ("amc-float", T("142.0"), 142.0, True, 1.0),
    ("amc-wrong", T("141"), 142.0, True, 0.0),
    ("amc-negative", T("-4"), -4.0, True, 1.0),
    ("amc-negative-wrong", T("4"), -4.0, True, 0.0),
    ("amc-negative-frac", T("-\\frac{8}{2}"), -4.0, True, 1.0),
    ("amc-half", T("\\frac{1}{2}"), 0.5, True, 1.0),
    ("amc-half-decimal", T("0.50"), 0.5, True, 1.0),
    ("amc-half-wrong", T("\\frac{1}{3}"), 0.5, True, 0.0),
    ("amc-int-gold", T("359"), 359, True, 1.0),
    ("amc-int-gold-wrong", T("358"), 359, True, 0.0),
    ("amc-8178", T("8178"), 8178.0, True, 1.0),
    ("amc-sqrt-int", T("\\sqrt{169}"), 13.0, True, 1.0),
    # -- Minerva: lists of alternatives ending in a newline ------------------------------------
    ("minerva-9.6", T("9.6"), ["9.6\n"], True, 1.0),
    ("minerva-9.60", T("9.60"), ["9.6\n"], True, 1.0),
    ("minerva-9.5", T("9.5"), ["9.6\n"], True, 0.0),
    ("minerva-9.6-units", T("9.6 \\text{ m/s}"), ["9.6\n"], True, 1.0),
    ("minerva-sci-same", T("8.7 \\times 10^{8}"), ["8.7 \\times 10^{8}"], True, 1.0),
    ("minerva-sci-nobrace", T("8.7\\times10^8"), ["8.7 \\times 10^{8}"], True, 1.0),
    ("minerva-sci-expanded", T("870000000"), ["8.7 \\times 10^{8}"], True, 1.0),
    ("minerva-sci-e", T("8.7e8"), ["8.7 \\times 10^{8}"], True, 1.0),
    ("minerva-sci-cdot", T("8.7 \\cdot 10^{8}"), ["8.7 \\times 10^{8}"], True, 1.0),
    ("minerva-sci-wrong", T("9 \\times 10^{8}"), ["8.7 \\times 10^{8}"], True, 0.0),
    ("minerva-sci-wrong-exp", T("8.7 \\times 10^{9}"), ["8.7 \\times 10^{8}"], True, 0.0),
    ("minerva-e-gold", T("4.5 \\times 10^{33}"), ["4.5e33\n"], True, 1.0),
    ("minerva-e-gold-wrong", T("4.5 \\times 10^{32}"), ["4.5e33\n"], True, 0.0),
    ("minerva-e-negative", T("3.89 \\times 10^{-10}"), ["3.89e-10\n", "3.89e-10"], True, 1.0),
    ("minerva-1e-5", T("0.00001"), ["1e-5\n"], True, 1.0),
    ("minerva-1e11", T("10^{11}"), ["1e11\n"], True, 1.0),
    ("minerva-tiny-wrong", T("5 \\times 10^{-19}"), ["8.224 \\times 10^{-19}"], True, 0.0),
    ("minerva-tiny-right", T("8.224 \\times 10^{-19}"), ["8.224 \\times 10^{-19}", "8.224 \\times 10^{-19}\n"], True, 1.0),
    ("minerva-first-alternative", T("0.01"), ["0.01\n", "0.02\n"], True, 1.0),
    ("minerva-second-alternative", T("0.02"), ["0.01\n", "0.02\n"], True, 1.0),
    ("minerva-no-alternative", T("0.03"), ["0.01\n", "0.02\n"], True, 0.0),
    ("minerva-6630", T("6630"), ["6630.65\n", "6630\n"], True, 1.0),
    ("minerva-arcsin", T("\\arcsin(10/13)"), ["\\arcsin{\\frac{1}{1.3}}", "\\arcsin{\\frac{10}{13}}\n"], True, 1.0),
    ("minerva-arcsin-wrong", T("\\arcsin(10/11)"), ["\\arcsin{\\frac{1}{1.3}}", "\\arcsin{\\frac{10}{13}}\n"], True, 0.0),
    ("minerva-degrees", T("41.8"), ["41.8^\\circ\n", "41.8^{\\circ}\n"], True, 1.0),
    ("minerva-degrees-both", T("41.8^{\\circ}"), ["41.8^\\circ\n"], True, 1.0),
    ("minerva-degrees-wrong", T("48.2^\\circ"), ["41.8^\\circ\n"], True, 0.0),
    ("minerva-complex", T("1+\\sqrt{3}i"), ["1 + i\\sqrt{3}\n", "1 + i \\sqrt{3}\n"], True, 1.0),
    ("minerva-complex-wrong", T("1-\\sqrt{3}i"), ["1 + i\\sqrt{3}\n"], True, 0.0),
    ("minerva-third", T("-\\frac{1}{3}"), ["-\\frac{1}{3}\n", "-1/3\n"], True, 1.0),
    ("minerva-third-slash", T("-1/3"), ["-\\frac{1}{3}\n"], True, 1.0),
    ("minerva-third-rounded", T("-0.3333"), ["-\\frac{1}{3}\n"], True, 0.0),
    ("minerva-expression", T("\\frac{c}{\\sqrt{2}}"), ["\\frac{1}{\\sqrt{2}}c\n", "\\frac{c}{\\sqrt{2}}\n"], True, 1.0),
    ("minerva-expression-wrong", T("\\frac{c}{2}"), ["\\frac{1}{\\sqrt{2}}c\n"], True, 0.0),
    ("minerva-poly", T("s^2+bs+1"), ["s^{2}+b s+1\n", "s^2 + bs + 1"], True, 1.0),
    ("minerva-poly-wrong", T("s^2+bs-1"), ["s^{2}+b s+1\n"], True, 0.0),
    ("minerva-units-alternative", T("15000"), ["15000 \\text{ kcal m}^{-2} \\text{yr}^{-1}\n", "15000\n"], True, 1.0),
    ("minerva-hz", T("4.4677 \\times 10^{14}"), ["4.4677 \\times 10^{14} Hz\n", "4.4677 \\times 10^{14}\n"], True, 1.0),
    ("minerva-exp", T("\\frac{e^{t}}{3}+ce^{-2t}"), ["\\frac{e^{t}} {3}+c e^{-2 t}\n"], True, 1.0),
    ("minerva-exp-wrong", T("\\frac{e^{t}}{3}+ce^{-3t}"), ["\\frac{e^{t}} {3}+c e^{-2 t}\n"], True, 0.0),
    ("minerva-list-text", T("E_1,E_2"), ["E_1, E_2"], True, 1.0),
    ("minerva-cosh", T("\\frac{1}{2}(e^{at}+e^{-at})"), ["\\frac{1}{2}(e^{at} + e^{-at})\n"], True, 1.0),
    # -- OlympiadBench: lists of one $-wrapped answer ------------------------------------------
    ("olymp-2", T("2"), ["2"], True, 1.0),
    ("olymp-frac", T("\\frac{1}{2 n+2}"), ["$\\frac{1}{2 n+2}$"], True, 1.0),
    ("olymp-dfrac", T("\\dfrac{1}{2n+2}"), ["$\\frac{1}{2 n+2}$"], True, 1.0),
    ("olymp-slash", T("1/(2n+2)"), ["$\\frac{1}{2 n+2}$"], True, 1.0),
    ("olymp-factored", T("\\frac{1}{2(n+1)}"), ["$\\frac{1}{2 n+2}$"], True, 1.0),
    ("olymp-frac-wrong", T("\\frac{1}{2n+1}"), ["$\\frac{1}{2 n+2}$"], True, 0.0),
    ("olymp-power", T("2^{1009}"), ["$2^{1009}$"], True, 1.0),
    ("olymp-power-wrong", T("2^{1008}"), ["$2^{1009}$"], True, 0.0),
    ("olymp-linear", T("2n-2"), ["$2n-2$"], True, 1.0),
    ("olymp-linear-factored", T("2(n-1)"), ["$2n-2$"], True, 1.0),
    ("olymp-linear-wrong", T("2n-1"), ["$2n-2$"], True, 0.0),
    ("olymp-tuples", T("(1,8,19), (2,7,13), (4,5,7)"), ["$(1,8,19), (2,7,13), (4,5,7)$"], True, 1.0),
    ("olymp-tuples-permuted", T("(2,7,13),(4,5,7),(1,8,19)"), ["$(1,8,19), (2,7,13), (4,5,7)$"], True, 1.0),
    ("olymp-tuples-missing", T("(1,8,19),(2,7,13)"), ["$(1,8,19), (2,7,13), (4,5,7)$"], True, 0.0),
    ("olymp-tuples-wrong", T("(1,8,19),(2,7,13),(4,5,8)"), ["$(1,8,19), (2,7,13), (4,5,7)$"], True, 0.0),
    ("olymp-binom", T("\\binom{2n}{n}"), ["$\\binom{2n}{n}$"], True, 1.0),
    ("olymp-binom-factorials", T("\\frac{(2n)!}{(n!)^2}"), ["$\\binom{2n}{n}$"], True, 1.0),
    ("olymp-binom-wrong", T("\\binom{2n}{n-1}"), ["$\\binom{2n}{n}$"], True, 0.0),
    ("olymp-floor", T("mn-\\lfloor m/2 \\rfloor"), ["$m n-\\lfloor m / 2\\rfloor$"], True, 1.0),
    ("olymp-floor-wrong", T("mn-\\lceil m/2 \\rceil"), ["$m n-\\lfloor m / 2\\rfloor$"], True, 0.0),
    ("olymp-function", T("f(x) = 2x"), ["$f(x)=2 x$"], True, 1.0),
    ("olymp-function-rhs", T("2x"), ["$f(x)=2 x$"], True, 1.0),
    ("olymp-function-wrong", T("f(x)=3x"), ["$f(x)=2 x$"], True, 0.0),
    ("olymp-zero", T("0"), ["0"], True, 1.0),
    ("olymp-zero-wrong", T("1"), ["0"], True, 0.0),
    ("olymp-2n", T("2n"), ["$2n$"], True, 1.0),
    ("olymp-2n-wrong", T("n"), ["$2n$"], True, 0.0),
    # -- forms: fractions, roots, pi, percentages, intervals, sets, text ----------------------------
    ("frac-decimal", T("0.75"), "\\frac{3}{4}", True, 1.0),
    ("decimal-frac", T("\\frac34"), "0.75", True, 1.0),
    ("tfrac", T("\\tfrac{3}{4}"), "\\frac{3}{4}", True, 1.0),
    ("frac-reduced", T("\\frac{6}{8}"), "\\frac{3}{4}", True, 1.0),
    ("frac-wrong", T("\\frac{4}{3}"), "\\frac{3}{4}", True, 0.0),
    ("third-rounded", T("0.333"), "\\frac{1}{3}", True, 0.0),
    ("sqrt-simplify", T("\\sqrt{8}"), "2\\sqrt{2}", True, 1.0),
    ("sqrt-rationalised", T("\\frac{1}{\\sqrt{2}}"), "\\frac{\\sqrt{2}}{2}", True, 1.0),
    ("sqrt-wrong", T("\\sqrt{3}"), "2\\sqrt{2}", True, 0.0),
    ("sqrt-no-braces", T("\\sqrt2"), "\\sqrt{2}", True, 1.0),
    ("pi", T("\\pi"), "\\pi", True, 1.0),
    ("pi-over-2", T("\\pi/2"), "\\frac{\\pi}{2}", True, 1.0),
    ("pi-times", T("\\pi \\cdot 2"), "2\\pi", True, 1.0),
    ("pi-wrong", T("3\\pi"), "2\\pi", True, 0.0),
    ("pi-numeric-rough", T("3.14"), "\\pi", True, 0.0),
    ("sci-e-plain", T("17000"), "1.70e4", True, 1.0),
    ("sci-e-times", T("1.7 \\times 10^{4}"), "1.70e4", True, 1.0),
    ("sci-e-wrong", T("1.8e4"), "1.70e4", True, 0.0),
    ("sci-negative-exp", T("0.001"), "10^{-3}", True, 1.0),
    ("percent-number", T("50"), "50\\%", True, 1.0),
    ("percent-both", T("50\\%"), "50\\%", True, 1.0),
    ("percent-of-number", T("50\\%"), "50", True, 1.0),
    ("percent-fraction", T("0.5"), "50\\%", True, 1.0),
    ("percent-wrong", T("40\\%"), "50\\%", True, 0.0),
    ("degrees-plain", T("30"), "30^\\circ", True, 1.0),
    ("degrees-wrong", T("60^\\circ"), "30^\\circ", True, 0.0),
    ("interval", T("[1, 2)"), "[1,2)", True, 1.0),
    ("interval-left-right", T("\\left[1,2\\right)"), "[1,2)", True, 1.0),
    ("interval-wrong-ends", T("(1,2]"), "[1,2)", True, 0.0),
    ("interval-infinity", T("(-\\infty,3]"), "(-\\infty, 3]", True, 1.0),
    ("interval-infinity-wrong", T("(-\\infty,3)"), "(-\\infty, 3]", True, 0.0),
    ("set-reordered", T("\\{2,1\\}"), "\\{1,2\\}", True, 1.0),
    ("set-wrong", T("\\{1,3\\}"), "\\{1,2\\}", True, 0.0),
    ("tuple-order-matters", T("(2,1)"), "(1,2)", True, 0.0),
    ("tuple-same", T("(1, 2)"), "(1,2)", True, 1.0),
    ("assignment", T("x=3"), "3", True, 1.0),
    ("assignment-spaces", T("x = 3"), "3", True, 1.0),
    ("assignment-wrong", T("x=4"), "3", True, 0.0),
    ("equation-both", T("y=2x+1"), "y=2x+1", True, 1.0),
    ("polynomial-expanded", T("(x+1)^2"), "x^2+2x+1", True, 1.0),
    ("polynomial-wrong", T("(x-1)^2"), "x^2+2x+1", True, 0.0),
    ("text-yes", T("\\text{Yes}"), "yes", True, 1.0),
    ("text-case", T("YES"), "\\text{yes}", True, 1.0),
    ("text-no", T("\\text{No}"), "yes", True, 0.0),
    ("infinity", T("\\infty"), "\\infty", True, 1.0),
    ("left-right-parens", T("\\left(1\\right)"), "1", True, 1.0),
    ("displaystyle", T("\\displaystyle\\frac{1}{2}"), "\\frac12", True, 1.0),
    ("negative-fraction-forms", T("\\frac{-1}{2}"), "-\\frac{1}{2}", True, 1.0),
    ("inequality", T("x \\geq 2"), "x\\ge 2", True, 1.0),
    # -- extraction ----------------------------------------------------------------------------
    ("last-box-wins", "</think> First \\boxed{1}, no wait: \\boxed{2}.", "2", True, 1.0),
    ("last-box-wins-not-first", "</think> First \\boxed{1}, no wait: \\boxed{2}.", "1", True, 0.0),
    ("nested-braces", "</think> \\boxed{\\frac{1}{\\sqrt{4}}}", "\\frac{1}{2}", True, 1.0),
    ("nested-braces-deep", "</think> \\boxed{\\frac{\\frac{1}{2}}{\\frac{3}{4}}}", "\\frac{2}{3}", True, 1.0),
    ("escaped-braces", "</think> \\boxed{\\{1, 2\\}}", "\\{1,2\\}", True, 1.0),
    ("boxed-space", "</think> \\boxed {5}", "5", True, 1.0),
    ("fbox", "</think> \\fbox{5}", "5", True, 1.0),
    ("fbox-last", "</think> \\boxed{4} and \\fbox{5}", "5", True, 1.0),
    ("boxed-no-braces", "</think> so \\boxed 5$.", "5", True, 1.0),
    ("boxed-unclosed", "</think> \\boxed{5", "5", True, 0.0),
    ("boxed-unclosed-after-good", "</think> \\boxed{5} and then \\boxed{6", "5", True, 0.0),
    ("boxed-empty", "</think> \\boxed{}", "5", True, 0.0),
    ("no-box", "</think> The answer is 5.", "5", True, 0.0),
    ("no-box-require-off", "The answer is 5.", "5", False, 0.0),
    ("boxed-in-dollars", "</think> $$\\boxed{5}$$", "5", True, 1.0),
    ("box-in-box", "</think> \\boxed{\\boxed{5}}", "5", True, 1.0),
    ("boxedfoo-ignored", "</think> \\boxed{5} \\boxedfoo{6}", "5", True, 1.0),
    # -- require_think ---------------------------------------------------------------------------
    ("think-missing", "\\boxed{5}", "5", True, 0.0),
    ("think-missing-eval", "\\boxed{5}", "5", False, 1.0),
    ("think-box-only-inside", "<think>\\boxed{5}</think> I am not sure.", "5", True, 0.0),
    ("think-box-only-inside-eval", "<think>\\boxed{5}</think> I am not sure.", "5", False, 0.0),
    ("think-box-after", "<think>\\boxed{4}</think> \\boxed{5}", "5", True, 1.0),
    ("think-box-after-eval", "<think>\\boxed{4}</think> \\boxed{5}", "5", False, 1.0),
    ("think-first-close-counts", "<think>a</think> \\boxed{5} </think> \\boxed{6}", "6", True, 1.0),
    ("think-open-only", "<think>\\boxed{5}", "5", True, 0.0),
    ("think-no-open-tag", "reasoning</think>\\boxed{5}", "5", True, 1.0),
    # -- odd ground truths and responses ---------------------------------------------------------
    ("gt-none", T("5"), None, True, 0.0),
    ("gt-nan", T("5"), math.nan, True, 0.0),
    ("gt-empty-list", T("5"), [], True, 0.0),
    ("gt-empty-string", T("5"), "  ", True, 0.0),
    ("gt-bool", T("1"), True, True, 0.0),
    ("gt-int", T("5"), 5, True, 1.0),
    ("gt-tuple", T("6"), ("5", "6"), True, 1.0),
    ("gt-dollar-dollar", T("5"), "$$5$$", True, 1.0),
    ("response-empty", "", "5", False, 0.0),
]


@pytest.mark.parametrize(("response", "truth", "require_think", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_score_table(response: str, truth: object, require_think: bool, expected: float) -> None:
    assert score(response, truth, require_think=require_think, timeout=TIMEOUT) == expected


def test_table_is_large_and_balanced() -> None:
    assert len(CASES) >= 150
    assert len({c[0] for c in CASES}) == len(CASES)
    right = sum(c[4] == 1.0 for c in CASES)
    assert 0.3 < right / len(CASES) < 0.7


def test_score_batch_agrees_with_score_in_order() -> None:
    # Through the worker pool (more than SMALL_BATCH distinct checks), same answers in the same order.
    responses = [c[1] for c in CASES]
    truths = [c[2] for c in CASES]
    flags = {c[3] for c in CASES}
    for flag in flags:
        idx = [i for i, c in enumerate(CASES) if c[3] == flag]
        got = score_batch([responses[i] for i in idx], [truths[i] for i in idx], require_think=flag, timeout=TIMEOUT)
        assert got == [CASES[i][4] for i in idx]


def test_grade_batch_verdicts() -> None:
    verdicts = grade_batch([T("025"), "no think \\boxed{1}", T("7")], ["25", "1", "8"], timeout=TIMEOUT)
    assert verdicts == [Verdict(1.0, "025", False), Verdict(0.0, None, False), Verdict(0.0, "7", False)]


def test_grade_batch_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 responses but 1 ground truths"):
        grade_batch(["a", "b"], ["1"])


@pytest.mark.parametrize("timeout", [0, -1.0, math.inf, math.nan])
def test_bad_timeout_is_an_argument_error(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        score("</think>\\boxed{1}", "1", timeout=timeout)


# -- extraction ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{5}", "5"),
        ("a \\boxed{1} b \\boxed{2} c", "2"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{ 12 }", "12"),
        ("\\boxed {x}", "x"),
        ("\\boxed\n{x}", "x"),
        ("\\fbox{7}", "7"),
        ("\\boxed 5$", "5"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\boxed{a\\\\b}", "a\\\\b"),
        ("\\boxed{a \\fbox{b}}", "a \\fbox{b}"),
        ("\\boxed{\\boxed{3}}", "\\boxed{3}"),
        ("\\boxed{}", ""),
        ("\\boxed{12", None),
        ("\\boxed{1} \\boxed{2", None),
        ("no box", None),
        ("\\boxedfoo{1}", None),
        ("\\boxed{1} \\boxedfoo{2}", "1"),
        ("\\fboxsep{3} \\boxed{4}", "4"),
        ("", None),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


def test_extract_boxed_long_unclosed_box_is_none() -> None:
    assert extract_boxed("\\boxed{" + "1" * 20_000 + "}") is None  # longer than MAX_BOX_CHARS


@pytest.mark.parametrize(
    ("response", "require_think", "expected"),
    [
        ("a</think>b</think>c", True, "b</think>c"),
        ("abc", True, None),
        ("abc", False, "abc"),
        ("a</think>b", False, "b"),
    ],
)
def test_answer_region(response: str, require_think: bool, expected: str | None) -> None:
    assert answer_region(response, require_think=require_think) == expected


# -- the cheap steps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("025", ("025",)),
        (142.0, ("142",)),
        (0.25, ("0.25",)),
        (-4, ("-4",)),
        (["9.6\n"], ("9.6",)),
        (["$\\frac{1}{2 n+2}$"], ("\\frac{1}{2 n+2}",)),
        (["4", "4\n"], ("4",)),
        ([None, "3"], ("3",)),
        (None, ()),
        (math.inf, ()),
    ],
)
def test_ground_truth_alternatives(raw: object, expected: tuple[str, ...]) -> None:
    assert ground_truth_alternatives(raw) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("\\text{ 5 }.", "5"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("30^{\\circ}", "30"),
        ("$1\\,000$", "1000"),
        ("x \\rightarrow y", "x\\rightarrowy"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("025", "25"),
        ("142.0", "142"),
        ("8,178", "8178"),
        ("1.70e4", "17000"),
        ("8.7\\times10^{8}", "870000000"),
        ("10^{-3}", "0.001"),
        ("-0.5", "-0.5"),
        ("1,2", None),
        ("x", None),
        ("1e99999", None),
    ],
)
def test_as_decimal(text: str, expected: str | None) -> None:
    value = as_decimal(text)
    assert (None if value is None else value.normalize()) == (None if expected is None else as_decimal(expected).normalize())


def test_quick_match_is_three_valued() -> None:
    assert quick_match("25", "025") is True
    assert quick_match("26", "025") is False  # both plain numbers: decided without math-verify
    assert quick_match("\\frac{50}{2}", "025") is None  # needs math-verify


# -- the reference benchmark files -----------------------------------------------------------------


def _reference_rows(folder: Path, name: str) -> list[object]:
    import pyarrow.parquet as pq

    path = folder / f"{name}.parquet"

    return [r["reward_model"]["ground_truth"] for r in pq.read_table(path, columns=["reward_model"]).to_pylist()]


def _as_stored_answer(truth: object) -> str:
    first = truth[0] if isinstance(truth, list) else truth
    if isinstance(first, float):
        return repr(first)  # "142.0", as a model might write it
    return str(first).strip().strip("$")


@pytest.mark.parametrize(("name", "kind"), [("aime24", str), ("aime25", str), ("amc23", float), ("minerva", list), ("olympiad", list)])
def test_reference_ground_truths(name: str, kind: type, benchmark_dir: Path) -> None:
    truths = _reference_rows(benchmark_dir, name)
    assert truths and all(isinstance(t, kind) for t in truths)
    # The stored answer, boxed, is right for every problem.
    right = score_batch([T(_as_stored_answer(t)) for t in truths], truths, timeout=TIMEOUT)
    assert right == [1.0] * len(truths)
    # A different answer is wrong: numbers n -> 2n+1, expressions changed (every 5th problem).
    sample = truths[::5]
    wrong_answers = []
    for t in sample:
        answer = _as_stored_answer(t)
        value = as_decimal(normalise(answer))
        wrong_answers.append(str(value * 2 + 1) if value is not None else f"{answer}+\\frac{{1}}{{7}}")
    wrong = score_batch([T(a) for a in wrong_answers], sample, timeout=TIMEOUT)
    assert wrong == [0.0] * len(sample), [a for a, s in zip(wrong_answers, wrong, strict=True) if s]


def test_reference_integer_forms(benchmark_dir: Path) -> None:
    # AIME strings with leading zeros (and one "336^\\circ") and AMC floats accept the plain
    # integer a model writes.
    for name in ("aime24", "aime25", "amc23"):
        truths = _reference_rows(benchmark_dir, name)
        answers = [str(int(float(str(t).replace("^\\circ", "")))) for t in truths]
        assert score_batch([T(a) for a in answers], truths) == [1.0] * len(truths)


def test_import_is_light() -> None:
    # Workers import only polaris.reward; it must not pull in torch, transformers or (until used) math-verify.
    import subprocess
    import sys

    code = "import sys, polaris.reward; print(sorted(m for m in ('torch', 'transformers', 'math_verify', 'sympy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
