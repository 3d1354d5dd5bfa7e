"""Distinct-n diversity (docs/method.md § Diversity-based temperature), counted by hand."""

import pytest

from polaris.recipe import distinct_n, mean_distinct_n


def test_distinct_4_single_response():
    # 4-grams: (a b c d), (b c d e)
    assert distinct_n(["a b c d e"]) == 1.0


def test_distinct_4_repeats_across_responses():
    # abcd, bcde from the first; abcd again from the second: 2 unique of 3
    assert distinct_n(["a b c d e", "a b c d"]) == pytest.approx(2 / 3)


def test_ngrams_do_not_span_responses():
    # joined, "a b a b" would give 2-grams ab, ba, ab; kept apart only ab, ab
    assert distinct_n(["a b", "a b"], n=2) == 0.5
    assert distinct_n(["a b", "c d"], n=4) == 0.0


def test_whitespace_tokenisation():
    assert distinct_n(["a\tb\nc   d"], n=4) == 1.0
    assert distinct_n(["x x x x x"], n=1) == 0.2


def test_bad_arguments():
    with pytest.raises(ValueError):
        distinct_n(["a b"], n=0)
    with pytest.raises(TypeError):
        distinct_n("a b c d e")


def test_mean_over_problems_skips_those_without_ngrams():
    texts = [["a b c d e", "a b c d"], ["x y z w"], ["short"]]
    assert mean_distinct_n(texts) == pytest.approx((2 / 3 + 1.0) / 2)
    assert mean_distinct_n([]) == 0.0
    assert mean_distinct_n([["a"], []]) == 0.0
