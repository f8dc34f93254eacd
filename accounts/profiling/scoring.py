"""Scoring a risk questionnaire into a profile that keeps tolerance, capacity and horizon apart.

Pure: dataclasses in, dataclasses out, no Django. The rules:

* tolerance and capacity scores are each normalised to 0-100 (share of the possible
  points above each item's minimum);
* each dimension *allows* a risk level 1-10: tolerance and capacity by their score
  (``1 + score // 10``, 100 allows 10), the horizon by the shortest horizon answered
  (money needed within two years cannot take equity risk: level 1);
* the risk level is the most conservative (lowest) of the three, and the profile
  records which dimension(s) were binding and why;
* consistency flags catch contradictory answers. A flagged profile cannot be mapped to
  a strategy automatically until an advisor resolves every flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

TOLERANCE = "tolerance"
CAPACITY = "capacity"
HORIZON = "horizon"
GOALS = "goals"
EXPERIENCE = "experience"
DIMENSIONS = (TOLERANCE, CAPACITY, HORIZON, GOALS, EXPERIENCE)
SCORED_DIMENSIONS = (TOLERANCE, CAPACITY, HORIZON)

MIN_LEVEL = 1
MAX_LEVEL = 10

# Tags an answer option may carry; the consistency rules read them.
TAG_SELLS_AFTER_FALL = "sells_after_fall"  # "I would sell everything after a 20% fall"
TAG_SEEKS_MAX_GROWTH = "seeks_max_growth"  # "I seek maximum growth"
TAG_NO_EMERGENCY_FUND = "no_emergency_fund"
TAG_NO_EXPERIENCE = "no_experience"
KNOWN_TAGS = frozenset(
    {TAG_SELLS_AFTER_FALL, TAG_SEEKS_MAX_GROWTH, TAG_NO_EMERGENCY_FUND, TAG_NO_EXPERIENCE}
)

HIGH_TOLERANCE = Decimal(70)  # a tolerance score at or above this is "aggressive"
SHORT_HORIZON_YEARS = Decimal(3)

# Shortest horizon (years, exclusive upper bound) -> highest risk level it allows.
HORIZON_BANDS: tuple[tuple[Decimal, int], ...] = (
    (Decimal(2), 1),  # needed within two years: no equity risk
    (Decimal(3), 3),
    (Decimal(5), 5),
    (Decimal(7), 7),
    (Decimal(10), 9),
)

FLAG_SELL_VS_GROWTH = "sell_after_fall_vs_max_growth"
FLAG_SHORT_HORIZON_AGGRESSIVE = "short_horizon_aggressive_tolerance"
FLAG_NO_EMERGENCY_FUND = "high_tolerance_no_emergency_fund"
FLAG_NO_EXPERIENCE = "high_tolerance_no_experience"


class ScoringError(ValueError):
    """The answers cannot be scored (a dimension has no answer, a score out of range)."""


@dataclass(frozen=True)
class ScoredAnswer:
    """One answered question: the chosen option's score and the item's possible range."""

    question: str
    dimension: str
    score: int
    min_score: int
    max_score: int
    tags: frozenset[str] = frozenset()
    horizon_years: Decimal | None = None  # horizon items: years until the money is needed


@dataclass(frozen=True)
class Flag:
    code: str
    message: str
    questions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProfileResult:
    tolerance_score: Decimal  # 0-100, two decimals
    capacity_score: Decimal
    horizon_years: Decimal
    tolerance_level: int  # the level each dimension allows
    capacity_level: int
    horizon_level: int
    risk_level: int  # min of the three
    binding: tuple[str, ...]  # dimension(s) whose allowance is the risk level
    explanation: str
    flags: tuple[Flag, ...] = field(default_factory=tuple)

    @property
    def allowed(self) -> dict[str, int]:
        return {
            TOLERANCE: self.tolerance_level,
            CAPACITY: self.capacity_level,
            HORIZON: self.horizon_level,
        }


def _two(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def normalised_score(answers: Sequence[ScoredAnswer]) -> Decimal:
    """Share of the possible points above each item's minimum, 0-100."""
    if not answers:
        raise ScoringError("no answers to score")
    got = 0
    possible = 0
    for answer in answers:
        if answer.max_score < answer.min_score:
            raise ScoringError(f"{answer.question}: max score below min score")
        if not answer.min_score <= answer.score <= answer.max_score:
            raise ScoringError(f"{answer.question}: score {answer.score} out of range")
        got += answer.score - answer.min_score
        possible += answer.max_score - answer.min_score
    if possible == 0:
        return Decimal(0)
    return _two(Decimal(100) * got / possible)


def level_for_score(score: Decimal) -> int:
    """0-9.99 allows 1, 10-19.99 allows 2, ..., 90-100 allows 10."""
    if not Decimal(0) <= score <= Decimal(100):
        raise ScoringError(f"score {score} outside 0-100")
    return min(MAX_LEVEL, MIN_LEVEL + int(score // 10))


def level_for_horizon(years: Decimal) -> int:
    if years < 0:
        raise ScoringError("a horizon cannot be negative")
    for upper, level in HORIZON_BANDS:
        if years < upper:
            return level
    return MAX_LEVEL


def _horizon_reason(years: Decimal, level: int) -> str:
    if years < HORIZON_BANDS[0][0]:
        return (
            f"the money is needed within {years.normalize():f} years, too soon to take "
            f"equity risk, so the horizon allows level {level} at most"
        )
    return f"a horizon of {years.normalize():f} years allows level {level} at most"


def consistency_flags(
    answers: Sequence[ScoredAnswer], *, tolerance_score: Decimal, horizon_years: Decimal
) -> tuple[Flag, ...]:
    def with_tag(tag: str) -> tuple[str, ...]:
        return tuple(a.question for a in answers if tag in a.tags)

    tolerance_items = tuple(a.question for a in answers if a.dimension == TOLERANCE)
    horizon_items = tuple(a.question for a in answers if a.dimension == HORIZON)
    flags: list[Flag] = []
    sells, growth = with_tag(TAG_SELLS_AFTER_FALL), with_tag(TAG_SEEKS_MAX_GROWTH)
    if sells and growth:
        flags.append(
            Flag(
                FLAG_SELL_VS_GROWTH,
                "Would sell everything after a 20% fall, yet seeks maximum growth.",
                sells + growth,
            )
        )
    aggressive = tolerance_score >= HIGH_TOLERANCE
    if aggressive and horizon_years < SHORT_HORIZON_YEARS:
        flags.append(
            Flag(
                FLAG_SHORT_HORIZON_AGGRESSIVE,
                f"Aggressive risk tolerance ({tolerance_score}) with money needed within "
                f"{horizon_years.normalize():f} years.",
                horizon_items + tolerance_items,
            )
        )
    no_fund = with_tag(TAG_NO_EMERGENCY_FUND)
    if aggressive and no_fund:
        flags.append(
            Flag(
                FLAG_NO_EMERGENCY_FUND,
                f"High risk tolerance ({tolerance_score}) but no emergency fund.",
                no_fund,
            )
        )
    novice = with_tag(TAG_NO_EXPERIENCE)
    if aggressive and novice:
        flags.append(
            Flag(
                FLAG_NO_EXPERIENCE,
                f"High risk tolerance ({tolerance_score}) with no investing experience.",
                novice,
            )
        )
    return tuple(flags)


def score_profile(answers: Sequence[ScoredAnswer]) -> ProfileResult:
    """Score answers into a profile; raises :class:`ScoringError` when it cannot."""
    by_dimension: dict[str, list[ScoredAnswer]] = {d: [] for d in DIMENSIONS}
    for answer in answers:
        if answer.dimension not in by_dimension:
            raise ScoringError(f"{answer.question}: unknown dimension {answer.dimension!r}")
        unknown = answer.tags - KNOWN_TAGS
        if unknown:
            raise ScoringError(f"{answer.question}: unknown tags {sorted(unknown)}")
        by_dimension[answer.dimension].append(answer)
    for dimension in SCORED_DIMENSIONS:
        if not by_dimension[dimension]:
            raise ScoringError(f"no {dimension} answer: the profile needs one")
    horizons = [a.horizon_years for a in by_dimension[HORIZON] if a.horizon_years is not None]
    if not horizons:
        raise ScoringError("no horizon answer carries a number of years")

    tolerance = normalised_score(by_dimension[TOLERANCE])
    capacity = normalised_score(by_dimension[CAPACITY])
    years = min(horizons)
    allowed = {
        TOLERANCE: level_for_score(tolerance),
        CAPACITY: level_for_score(capacity),
        HORIZON: level_for_horizon(years),
    }
    level = min(allowed.values())
    binding = tuple(d for d in SCORED_DIMENSIONS if allowed[d] == level)
    reasons = {
        TOLERANCE: f"a risk-tolerance score of {tolerance} out of 100 allows level "
        f"{allowed[TOLERANCE]}",
        CAPACITY: f"a risk-capacity score of {capacity} out of 100 allows level "
        f"{allowed[CAPACITY]}",
        HORIZON: _horizon_reason(years, allowed[HORIZON]),
    }
    others = [d for d in SCORED_DIMENSIONS if d not in binding]
    explanation = f"Risk level {level}, set by {' and '.join(binding)}: " + "; ".join(
        reasons[d] for d in binding
    )
    if others:
        explanation += ". Less restrictive: " + "; ".join(reasons[d] for d in others)
    explanation += "."
    flags = consistency_flags(answers, tolerance_score=tolerance, horizon_years=years)
    return ProfileResult(
        tolerance_score=tolerance,
        capacity_score=capacity,
        horizon_years=years,
        tolerance_level=allowed[TOLERANCE],
        capacity_level=allowed[CAPACITY],
        horizon_level=allowed[HORIZON],
        risk_level=level,
        binding=binding,
        explanation=explanation,
        flags=flags,
    )
