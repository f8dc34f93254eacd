"""Cronbach's alpha and item-total correlations against hand-computed figures."""

from __future__ import annotations

import math

import pytest

from accounts.profiling.psychometrics import cronbach_alpha, scale_report

# Four respondents, three items. By hand (sample variances, n - 1 = 3):
#   item 1: 1 2 3 4, mean 2.5,  squared deviations 5     -> variance 5/3
#   item 2: 2 3 3 5, mean 3.25, squared deviations 4.75  -> variance 4.75/3
#   item 3: 3 3 4 5, mean 3.75, squared deviations 2.75  -> variance 2.75/3
#   sum of item variances: 12.5/3
#   totals: 6 8 10 14, mean 9.5, squared deviations 35   -> variance 35/3
#   alpha = 3/2 * (1 - (12.5/3) / (35/3)) = 1.5 * 22.5/35 = 27/28 = 0.9642857...
SCORES = [[1, 2, 3], [2, 3, 3], [3, 3, 4], [4, 5, 5]]


def test_alpha_matches_the_hand_computed_example():
    assert cronbach_alpha(SCORES) == pytest.approx(27 / 28, abs=1e-12)


def test_item_total_correlation_by_hand():
    # Item 1 against the rest (items 2 + 3): 5, 6, 7, 10; mean 7.
    # deviations item: -1.5 -.5 .5 1.5 ; rest: -2 -1 0 3
    # covariance sum: 3 + .5 + 0 + 4.5 = 8; sqrt(5 * 14) = sqrt(70)
    report = scale_report(SCORES, ["a", "b", "c"])
    first = report.item_statistics[0]
    assert first.corrected_item_total == pytest.approx(8 / math.sqrt(70))
    assert first.mean == pytest.approx(2.5)
    assert report.alpha == pytest.approx(27 / 28)
    assert report.respondents == 4
    assert report.items == 3
    # Alpha without item 1: items 2 and 3: variances 4.75/3, 2.75/3; totals 5 6 7 10 (var 14/3)
    assert first.alpha_if_deleted == pytest.approx(2 * (1 - (7.5 / 3) / (14 / 3)))


def test_undefined_cases_answer_none():
    assert cronbach_alpha([[1, 2]]) is None  # one respondent
    assert cronbach_alpha([[1], [2]]) is None  # one item
    assert cronbach_alpha([[1, 1], [1, 1]]) is None  # no variance
    report = scale_report([[1, 2], [1, 3]], ["a", "b"])
    assert report.item_statistics[0].corrected_item_total is None  # constant item


def test_uncorrelated_items_give_a_low_alpha():
    alpha = cronbach_alpha([[1, 3], [2, 1], [3, 4], [4, 2]])
    assert alpha is not None
    assert alpha < 0.5
