"""Reads behind the client-book and risk-profile pages: materialised rows for templates."""

from __future__ import annotations

import datetime as dt
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


@dataclass
class ClientPage:
    client: Client
    household_name: str
    advisors: list[User]
    portfolios: list[Portfolio]
    profiles: list[ProfileView]
    assignments: list[tuple[StrategyAssignment, ModelPortfolio]]
    model_portfolios: list[ModelPortfolio]
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
    portfolios_by_id = {p.pk: p for p in ModelPortfolio.objects.all()}
    assignments = [
        (a, portfolios_by_id[a.model_portfolio_id])
        for a in StrategyAssignment.objects.filter(client=client).order_by("-created_at", "-pk")
    ]
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
        model_portfolios=sorted(portfolios_by_id.values(), key=lambda p: p.min_risk_level),
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
    status = "proposed"
    if assignment is not None:
        portfolio = ModelPortfolio.objects.get(pk=assignment.model_portfolio_id)
        status = assignment.status
    else:
        mapping = RiskLevelMapping.objects.filter(risk_level=profile.risk_level).first()
        if mapping is not None:
            portfolio = ModelPortfolio.objects.get(pk=mapping.model_portfolio_id)
    bad = portfolio.bad_year_return if portfolio else None
    return ResultPage(
        profile=profile_view(profile),
        level_words=LEVEL_WORDS[profile.risk_level],
        binding_words=[DIMENSION_WORDS[d] for d in profile.binding if d in DIMENSION_WORDS],
        model_portfolio=portfolio,
        assignment_status=status,
        bad_year_percent=None if bad is None else (bad * 100).quantize(Decimal(1)),
        bad_year_dollars=None if bad is None else (bad * 100_000).quantize(Decimal(1)),
        weights=[
            (ASSET_CLASS_WORDS.get(k, k), (Decimal(v) * 100).quantize(Decimal(1)))
            for k, v in (portfolio.weights.items() if portfolio else [])
        ],
    )
