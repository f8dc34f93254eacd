"""The pure scoring engine: tolerance, capacity and horizon interplay, flags, binding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.profiling.scoring import (
    CAPACITY,
    EXPERIENCE,
    FLAG_NO_EMERGENCY_FUND,
    FLAG_NO_EXPERIENCE,
    FLAG_SELL_VS_GROWTH,
    FLAG_SHORT_HORIZON_AGGRESSIVE,
    HORIZON,
    TAG_NO_EMERGENCY_FUND,
    TAG_NO_EXPERIENCE,
    TAG_SEEKS_MAX_GROWTH,
    TAG_SELLS_AFTER_FALL,
    TOLERANCE,
    ScoredAnswer,
    ScoringError,
    level_for_horizon,
    level_for_score,
    normalised_score,
    score_profile,
)


def answers(
    tolerance: int, capacity: int, years: str, *tags: tuple[str, str]
) -> list[ScoredAnswer]:
    """One 0-100 item per scored dimension; ``tags`` are (dimension, tag) extras."""
    out = [
        ScoredAnswer("tol", TOLERANCE, tolerance, 0, 100),
        ScoredAnswer("cap", CAPACITY, capacity, 0, 100),
        ScoredAnswer("hor", HORIZON, 0, 0, 3, horizon_years=Decimal(years)),
    ]
    for index, (dimension, tag) in enumerate(tags):
        out.append(ScoredAnswer(f"x{index}", dimension, 0, 0, 0, tags=frozenset({tag})))
    return out


@pytest.mark.parametrize(
    ("tolerance", "capacity", "years", "level", "binding", "allowed"),
    [
        (85, 90, "15", 9, ("tolerance",), (9, 10, 10)),
        (85, 35, "15", 4, ("capacity",), (9, 4, 10)),
        (85, 95, "1", 1, ("horizon",), (9, 10, 1)),
        (50, 55, "15", 6, ("tolerance", "capacity"), (6, 6, 10)),
        (0, 100, "30", 1, ("tolerance",), (1, 10, 10)),
        (100, 100, "30", 10, ("tolerance", "capacity", "horizon"), (10, 10, 10)),
        (100, 100, "2", 3, ("horizon",), (10, 10, 3)),
        (100, 100, "4", 5, ("horizon",), (10, 10, 5)),
        (100, 100, "6", 7, ("horizon",), (10, 10, 7)),
        (100, 100, "9.5", 9, ("horizon",), (10, 10, 9)),
        (100, 100, "10", 10, ("tolerance", "capacity", "horizon"), (10, 10, 10)),
        (30, 20, "3", 3, ("capacity",), (4, 3, 5)),
        (20, 20, "3", 3, ("tolerance", "capacity"), (3, 3, 5)),
        (60, 60, "1.5", 1, ("horizon",), (7, 7, 1)),
    ],
)
def test_the_most_conservative_dimension_sets_the_level(
    tolerance, capacity, years, level, binding, allowed
):
    result = score_profile(answers(tolerance, capacity, years))
    assert result.risk_level == level
    assert result.binding == binding
    assert (result.tolerance_level, result.capacity_level, result.horizon_level) == allowed
    assert result.explanation.startswith(f"Risk level {level}, set by {' and '.join(binding)}")


def test_explanation_says_why_the_horizon_binds():
    result = score_profile(answers(90, 90, "1"))
    assert "needed within 1 years, too soon to take equity risk" in result.explanation
    assert "Less restrictive: a risk-tolerance score of 90.00" in result.explanation


def test_explanation_names_the_binding_capacity_score():
    result = score_profile(answers(80, 25, "20"))
    assert "set by capacity: a risk-capacity score of 25.00 out of 100 allows level 3" in (
        result.explanation
    )


@pytest.mark.parametrize(
    ("tolerance", "years", "tags", "expected"),
    [
        (
            50,
            "15",
            [(TOLERANCE, TAG_SELLS_AFTER_FALL), (TOLERANCE, TAG_SEEKS_MAX_GROWTH)],
            {FLAG_SELL_VS_GROWTH},
        ),
        (50, "15", [(TOLERANCE, TAG_SELLS_AFTER_FALL)], set()),
        (50, "15", [(TOLERANCE, TAG_SEEKS_MAX_GROWTH)], set()),
        (80, "1", [], {FLAG_SHORT_HORIZON_AGGRESSIVE}),
        (80, "2.5", [], {FLAG_SHORT_HORIZON_AGGRESSIVE}),
        (80, "3", [], set()),
        (60, "1", [], set()),
        (70, "15", [(CAPACITY, TAG_NO_EMERGENCY_FUND)], {FLAG_NO_EMERGENCY_FUND}),
        (69, "15", [(CAPACITY, TAG_NO_EMERGENCY_FUND)], set()),
        (90, "15", [(EXPERIENCE, TAG_NO_EXPERIENCE)], {FLAG_NO_EXPERIENCE}),
        (
            90,
            "1",
            [
                (CAPACITY, TAG_NO_EMERGENCY_FUND),
                (TOLERANCE, TAG_SELLS_AFTER_FALL),
                (TOLERANCE, TAG_SEEKS_MAX_GROWTH),
            ],
            {FLAG_SELL_VS_GROWTH, FLAG_SHORT_HORIZON_AGGRESSIVE, FLAG_NO_EMERGENCY_FUND},
        ),
    ],
)
def test_consistency_flags(tolerance, years, tags, expected):
    result = score_profile(answers(tolerance, 80, years, *tags))
    assert {flag.code for flag in result.flags} == expected
    for flag in result.flags:
        assert flag.message
        assert flag.questions


def test_flags_name_the_contradicting_questions():
    result = score_profile(
        answers(50, 50, "15", (TOLERANCE, TAG_SELLS_AFTER_FALL), (TOLERANCE, TAG_SEEKS_MAX_GROWTH))
    )
    (flag,) = result.flags
    assert flag.questions == ("x0", "x1")


def test_scores_are_normalised_over_each_items_range():
    items = [
        ScoredAnswer("a", TOLERANCE, 2, 1, 4),  # 1 of 3
        ScoredAnswer("b", TOLERANCE, 3, 1, 3),  # 2 of 2
    ]
    assert normalised_score(items) == Decimal("60.00")


def test_shortest_horizon_counts():
    result = score_profile(
        [
            *answers(100, 100, "30"),
            ScoredAnswer("hor2", HORIZON, 0, 0, 3, horizon_years=Decimal("4")),
        ]
    )
    assert result.horizon_years == Decimal("4")
    assert result.risk_level == 5


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([ScoredAnswer("cap", CAPACITY, 1, 0, 1)], "no tolerance answer"),
        (
            [ScoredAnswer("t", TOLERANCE, 1, 0, 1), ScoredAnswer("c", CAPACITY, 1, 0, 1)],
            "no horizon answer",
        ),
        (
            [
                ScoredAnswer("t", TOLERANCE, 5, 0, 1),
                ScoredAnswer("c", CAPACITY, 1, 0, 1),
                ScoredAnswer("h", HORIZON, 0, 0, 1, horizon_years=Decimal(1)),
            ],
            "out of range",
        ),
        ([ScoredAnswer("t", "mood", 1, 0, 1)], "unknown dimension"),
        ([ScoredAnswer("t", TOLERANCE, 1, 0, 1, tags=frozenset({"x"}))], "unknown tags"),
    ],
)
def test_unscorable_answers_are_refused(bad, message):
    with pytest.raises(ScoringError, match=message):
        score_profile(bad)


def test_level_boundaries():
    assert [level_for_score(Decimal(s)) for s in (0, "9.99", 10, 50, "89.99", 90, 100)] == [
        1,
        1,
        2,
        6,
        9,
        10,
        10,
    ]
    assert [level_for_horizon(Decimal(y)) for y in ("0", "1.99", "2", "3", "5", "7", "10")] == [
        1,
        1,
        3,
        5,
        7,
        9,
        10,
    ]


item = st.tuples(st.integers(0, 10), st.integers(0, 10)).map(sorted)


@st.composite
def scored(draw, dimension: str, name: str) -> list[ScoredAnswer]:
    out = []
    for index in range(draw(st.integers(1, 6))):
        low, high = draw(item)
        score = draw(st.integers(low, high))
        years = None
        if dimension == HORIZON:
            years = draw(st.decimals(min_value=0, max_value=40, places=2))
        out.append(ScoredAnswer(f"{name}{index}", dimension, score, low, high, horizon_years=years))
    return out


@given(
    scored(TOLERANCE, "t"),
    scored(CAPACITY, "c"),
    scored(HORIZON, "h"),
    st.lists(
        st.sampled_from(
            [TAG_SELLS_AFTER_FALL, TAG_SEEKS_MAX_GROWTH, TAG_NO_EMERGENCY_FUND, TAG_NO_EXPERIENCE]
        ),
        max_size=4,
    ),
)
def test_the_level_never_exceeds_what_any_dimension_allows(tol, cap, hor, tags):
    extras = [
        ScoredAnswer(f"g{i}", EXPERIENCE, 0, 0, 0, tags=frozenset({t})) for i, t in enumerate(tags)
    ]
    result = score_profile([*tol, *cap, *hor, *extras])
    allowed = result.allowed
    assert 1 <= result.risk_level <= 10
    assert all(result.risk_level <= level for level in allowed.values())
    assert result.risk_level == min(allowed.values())
    assert result.binding
    assert all(allowed[d] == result.risk_level for d in result.binding)
    assert result.risk_level <= level_for_score(normalised_score(tol))
    assert result.risk_level <= level_for_score(normalised_score(cap))
    assert result.risk_level <= level_for_horizon(min(a.horizon_years for a in hor))
