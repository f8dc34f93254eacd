"""Reads behind the client-book and risk-profile pages: materialised rows for templates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from accounts.book_selectors import client_list_visible, household_advisors
from accounts.models import (
    AnswerOption,
    AssignmentStatus,
    Client,
    Membership,
    ModelPortfolio,
    ProfileFlag,
    ProfileStatus,
    Question,
    Questionnaire,
    QuestionnaireResponse,
    RiskLevelMapping,
    RiskProfile,
    StrategyAssignment,
    User,
)
from portfolios.models import Portfolio
from portfolios.models_strategy import Strategy, StrategyStatus
from portfolios.selectors_strategy import strategy_version_current

EXPIRING_DAYS = 60

PROFILE_FILTERS = {
    "": "All clients",
    "none": "No profile yet",
    "current": "Current profile",
    "flagged": "Open flags",
    "expiring": f"Expiring within {EXPIRING_DAYS} days",
    "stale": "Stale (expired)",
}


@dataclass(frozen=True)
class BookRow:
    client_id: int
    name: str
    email: str
    household: str
    household_id: int
    kyc_status: str
    portfolios: int
    risk_level: int | None
    profile_status: str  # "none", "current", "stale"
    valid_until: dt.date | None
    open_flags: int
    expiring: bool


def _expiring(status: str | None, valid_until: dt.date | None, soon: dt.date) -> bool:
    return status == ProfileStatus.CURRENT and valid_until is not None and valid_until <= soon


def book_rows(*, membership: Membership, query: str = "", status: str = "") -> list[BookRow]:
    today = timezone.localdate()
    latest = RiskProfile.objects.filter(
        client_id=OuterRef("pk"), status__in=[ProfileStatus.CURRENT, ProfileStatus.STALE]
    ).order_by("-created_at")
    clients = client_list_visible(membership=membership).annotate(
        profile_id=Subquery(latest.values("pk")[:1]),
        risk_level=Subquery(latest.values("risk_level")[:1]),
        profile_status=Subquery(latest.values("status")[:1]),
        valid_until=Subquery(latest.values("valid_until")[:1]),
        open_flags=Subquery(
            ProfileFlag.objects.filter(profile_id=OuterRef("profile_id"), resolved_at__isnull=True)
            .values("profile_id")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        ),
        portfolio_count=Subquery(
            Portfolio.objects.filter(client_id=OuterRef("pk"))
            .values("client_id")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        ),
    )
    if query:
        clients = clients.filter(
            Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
            | Q(household__name__icontains=query)
        )
    soon = today + dt.timedelta(days=EXPIRING_DAYS)
    if status == "none":
        clients = clients.filter(profile_id__isnull=True)
    elif status == "current":
        clients = clients.filter(profile_status=ProfileStatus.CURRENT)
    elif status == "stale":
        clients = clients.filter(profile_status=ProfileStatus.STALE)
    elif status == "flagged":
        clients = clients.filter(open_flags__gt=0)
    elif status == "expiring":
        clients = clients.filter(profile_status=ProfileStatus.CURRENT, valid_until__lte=soon)
    return [
        BookRow(
            client_id=c.pk,
            name=c.full_name,
            email=c.email,
            household=c.household.name,
            household_id=c.household_id,
            kyc_status=c.get_kyc_status_display(),
            portfolios=c.portfolio_count or 0,
            risk_level=c.risk_level,
            profile_status=c.profile_status or "none",
            valid_until=c.valid_until,
            open_flags=c.open_flags or 0,
            expiring=_expiring(c.profile_status, c.valid_until, soon),
        )
        for c in clients[:500]
    ]


@dataclass(frozen=True)
class AnswerRow:
    question: str
    dimension: str
    answer: str
    score: int | None


@dataclass
class ProfileView:
    profile: RiskProfile
    version: int
    flags: list[ProfileFlag]
    answers: list[AnswerRow]
    open_flags: int = 0


@dataclass(frozen=True)
class TargetView:
    """A strategy or a placeholder model portfolio, as the pages show and choose it."""

    kind: str  # "strategy" | "model_portfolio"
    pk: int
    name: str
    low: int
    high: int

    @property
    def value(self) -> str:
        """The ``<option>`` value: ``kind:id``."""
        return f"{self.kind}:{self.pk}"

    @property
    def kind_label(self) -> str:
        return "Strategy" if self.kind == "strategy" else "Model portfolio"


def _strategy_view(s: Strategy) -> TargetView:
    return TargetView("strategy", s.pk, s.name, s.risk_level_min, s.risk_level_max)


def _portfolio_view(p: ModelPortfolio) -> TargetView:
    return TargetView("model_portfolio", p.pk, p.name, p.min_risk_level, p.max_risk_level)


def target_choices() -> list[TargetView]:
    """What a level maps to or an advisor overrides with: the firm's active strategies
    (lowest band first), then its placeholder model portfolios."""
    strategies = Strategy.objects.filter(status=StrategyStatus.ACTIVE).order_by(
        "risk_level_min", "risk_level_max", "name"
    )
    portfolios = ModelPortfolio.objects.order_by("min_risk_level", "name")
    return [_strategy_view(s) for s in strategies] + [_portfolio_view(p) for p in portfolios]


def target_views(
    rows: Iterable[RiskLevelMapping | StrategyAssignment],
) -> dict[tuple[str, int], TargetView]:
    """The targets ``rows`` point at (any status), keyed by (kind, id)."""
    rows = list(rows)
    strategies = Strategy.objects.filter(pk__in={r.strategy_id for r in rows if r.strategy_id})
    portfolios = ModelPortfolio.objects.filter(
        pk__in={r.model_portfolio_id for r in rows if r.model_portfolio_id}
    )
    views = [_strategy_view(s) for s in strategies] + [_portfolio_view(p) for p in portfolios]
    return {(v.kind, v.pk): v for v in views}


def target_key(row: RiskLevelMapping | StrategyAssignment) -> tuple[str, int]:
    if row.strategy_id is not None:
        return ("strategy", row.strategy_id)
    assert row.model_portfolio_id is not None  # exactly one target (a DB constraint)
    return ("model_portfolio", row.model_portfolio_id)


def target_from_value(value: str | None) -> Strategy | ModelPortfolio | None:
    """The firm's active strategy or model portfolio an ``<option>`` value names."""
    kind, _, raw = (value or "").partition(":")
    if not raw.isdigit():
        return None
    if kind == "strategy":
        return Strategy.objects.filter(pk=int(raw), status=StrategyStatus.ACTIVE).first()
    if kind == "model_portfolio":
        return ModelPortfolio.objects.filter(pk=int(raw)).first()
    return None


@dataclass
class ClientPage:
    client: Client
    household_name: str
    advisors: list[User]
    portfolios: list[Portfolio]
    profiles: list[ProfileView]
    assignments: list[tuple[StrategyAssignment, TargetView]]
    choices: list[TargetView]
    in_progress: QuestionnaireResponse | None = None
    current: ProfileView | None = field(default=None)


def _answers(response: QuestionnaireResponse) -> list[AnswerRow]:
    questions = list(
        Question.objects.filter(questionnaire_id=response.questionnaire_id).order_by("position")
    )
    options = {
        (o.question_id, o.code): o for o in AnswerOption.objects.filter(question__in=questions)
    }
    rows = []
    for q in questions:
        chosen = options.get((q.pk, str(response.answers.get(q.code, ""))))
        rows.append(
            AnswerRow(
                question=q.text,
                dimension=q.get_dimension_display(),
                answer=chosen.text if chosen else "—",
                score=chosen.score if chosen else None,
            )
        )
    return rows


def profile_view(profile: RiskProfile) -> ProfileView:
    flags = list(ProfileFlag.objects.filter(profile=profile).order_by("pk"))
    response = QuestionnaireResponse.objects.get(pk=profile.response_id)
    return ProfileView(
        profile=profile,
        version=Questionnaire.objects.get(pk=profile.questionnaire_id).version,
        flags=flags,
        answers=_answers(response),
        open_flags=sum(1 for f in flags if f.resolved_at is None),
    )


def client_page(*, client: Client) -> ClientPage:
    profiles = [
        profile_view(p) for p in RiskProfile.objects.filter(client=client).order_by("-created_at")
    ]
    rows = list(StrategyAssignment.objects.filter(client=client).order_by("-created_at", "-pk"))
    targets = target_views(rows)
    assignments = [(a, targets[target_key(a)]) for a in rows]
    current = next(
        (p for p in profiles if p.profile.status in (ProfileStatus.CURRENT, ProfileStatus.STALE)),
        None,
    )
    return ClientPage(
        client=client,
        household_name=client.household.name,
        advisors=list(household_advisors(household=client.household)),
        portfolios=list(Portfolio.objects.filter(client=client).order_by("number")),
        profiles=profiles,
        assignments=assignments,
        choices=target_choices(),
        in_progress=QuestionnaireResponse.objects.filter(client=client, status="in_progress")
        .order_by("-started_at")
        .first(),
        current=current,
    )


# --- the investor's result in plain language ---------------------------------------------

LEVEL_WORDS = {
    1: "very cautious: keeping what you have matters most, growth comes second",
    2: "cautious: mostly steady investments with a little growth",
    3: "cautious: mostly steady investments with a little growth",
    4: "moderate: a balance of steady investments and growth",
    5: "moderate: a balance of steady investments and growth",
    6: "growth-oriented: more growth, with deeper falls along the way",
    7: "growth-oriented: more growth, with deeper falls along the way",
    8: "adventurous: mostly shares, for long-term growth",
    9: "adventurous: mostly shares, for long-term growth",
    10: "very adventurous: all shares, the largest swings",
}

DIMENSION_WORDS = {
    "tolerance": "how much risk you are comfortable with",
    "capacity": "how much loss your finances could absorb",
    "horizon": "when you will need the money",
}


@dataclass
class ResultPage:
    profile: ProfileView
    level_words: str
    binding_words: list[str]
    model_portfolio: ModelPortfolio | None
    assignment_status: str
    # A real strategy: its name, plain-language explanation and current holdings.
    strategy: Strategy | None
    strategy_weights: list[tuple[str, Decimal]]
    bad_year_percent: Decimal | None
    bad_year_dollars: Decimal | None
    weights: list[tuple[str, Decimal]]


ASSET_CLASS_WORDS = {
    "cash": "Cash",
    "us_bonds": "US bonds",
    "intl_bonds": "International bonds",
    "us_equity": "US shares",
    "intl_equity": "International shares",
}


def result_page(*, profile: RiskProfile) -> ResultPage:
    assignment = (
        StrategyAssignment.objects.filter(
            profile=profile,
            status__in=[AssignmentStatus.ACTIVE, AssignmentStatus.PENDING_APPROVAL],
        )
        .order_by("-created_at")
        .first()
    )
    portfolio: ModelPortfolio | None = None
    strategy: Strategy | None = None
    status = "proposed"
    row: RiskLevelMapping | StrategyAssignment | None = assignment
    if assignment is not None:
        status = assignment.status
    else:
        row = RiskLevelMapping.objects.filter(risk_level=profile.risk_level).first()
    if row is not None and row.strategy_id is not None:
        strategy = Strategy.objects.get(pk=row.strategy_id)
    elif row is not None:
        portfolio = ModelPortfolio.objects.get(pk=row.model_portfolio_id or 0)
    version = strategy_version_current(strategy=strategy) if strategy else None
    bad = portfolio.bad_year_return if portfolio else None
    return ResultPage(
        profile=profile_view(profile),
        level_words=LEVEL_WORDS[profile.risk_level],
        binding_words=[DIMENSION_WORDS[d] for d in profile.binding if d in DIMENSION_WORDS],
        model_portfolio=portfolio,
        assignment_status=status,
        strategy=strategy,
        strategy_weights=[
            (symbol, (weight * 100).quantize(Decimal("0.1")))
            for symbol, weight in (version.weights_decimal().items() if version else [])
            if weight > 0
        ],
        bad_year_percent=None if bad is None else (bad * 100).quantize(Decimal(1)),
        bad_year_dollars=None if bad is None else (bad * 100_000).quantize(Decimal(1)),
        weights=[
            (ASSET_CLASS_WORDS.get(k, k), (Decimal(v) * 100).quantize(Decimal(1)))
            for k, v in (portfolio.weights.items() if portfolio else [])
        ],
    )
