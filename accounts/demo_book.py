"""The demo's client book: households, clients, portfolios and risk profiles across the
levels (some flagged, some stale, one half-answered), built through the services.

Registered in :data:`accounts.demo.FIRM_SEEDERS`; runs inside the firm's context and
transaction. Idempotent: a firm that has its first demo household is left alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.book_services import (
    client_create,
    client_link_user,
    household_advisor_assign,
    household_create,
    portfolio_open,
)
from accounts.models import (
    AssignmentSource,
    AssignmentStatus,
    Firm,
    Household,
    ProfileStatus,
    RiskLevelMapping,
    RiskProfile,
    Role,
    StrategyAssignment,
    User,
)
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import (
    questionnaire_install_default,
    response_save,
    response_start,
    response_submit,
    risk_profiles_mark_stale,
)
from accounts.strategy_services import (
    model_portfolios_install_default,
    risk_mapping_install_strategies,
    strategy_assign_from_profile,
)

if TYPE_CHECKING:
    from accounts.demo import Created, DemoFirm

SEED_NOTE = "demo seed"


def _answers(tolerance: int, capacity: int, horizon: int, **overrides: str) -> dict[str, str]:
    """Option index per dimension (clamped), goals and experience in the middle."""
    pick = {"tolerance": tolerance, "capacity": capacity, "horizon": horizon}
    answers = {}
    for question in DEFAULT_QUESTIONS:
        index = pick.get(question.dimension, 1)
        answers[question.code] = question.options[min(index, len(question.options) - 1)].code
    return {**answers, **overrides}


@dataclass(frozen=True)
class DemoClient:
    first_name: str
    last_name: str
    household: int  # index into HOUSEHOLDS
    account_type: str
    answers: dict[str, str] | None  # None: no profile; {} half-answered
    months_ago: int = 0  # answered that long ago (13+: stale)
    investor_login: bool = False


HOUSEHOLDS = ("{last} family", "The Ortega household", "Chen & Patel", "Estate of M. Brooks")
ASSIGNED = (0, 1, 2)  # households of the demo advisor; the last one is the firm admin's

CLIENTS = (
    DemoClient("{first}", "{last}", 0, "taxable", _answers(2, 2, 3), investor_login=True),
    DemoClient("Clara", "{last}", 0, "roth_ira", _answers(1, 2, 3)),
    DemoClient("Mateo", "Ortega", 1, "traditional_ira", _answers(0, 1, 2)),
    DemoClient("Lucia", "Ortega", 1, "taxable", _answers(3, 3, 3)),
    DemoClient("Wei", "Chen", 2, "taxable", _answers(3, 3, 0)),  # flag: short horizon
    DemoClient(
        "Ravi", "Patel", 2, "crypto", _answers(3, 3, 3, tol_fall_20="sell_all")
    ),  # flag: sells after a fall yet seeks maximum growth
    DemoClient("Margaret", "Brooks", 3, "traditional_ira", _answers(1, 1, 1), months_ago=14),
    DemoClient("Tom", "Brooks", 3, "taxable", _answers(2, 3, 2), months_ago=13),
    DemoClient("Ada", "Brooks", 3, "roth_ira", {}),
    DemoClient("Noah", "Ortega", 1, "taxable", None),
    # Mixed answers, so that the firm's questionnaire statistics (from 10 responses) show.
    DemoClient(
        "Sam", "Chen", 2, "taxable", _answers(2, 1, 3, tol_job="decline", tol_word="thrill")
    ),
    DemoClient("Iris", "Chen", 2, "roth_ira", _answers(1, 3, 3, tol_choice="even")),
    DemoClient("Leo", "Ortega", 1, "taxable", _answers(2, 2, 2, tol_sleep="lot")),
    DemoClient("Nina", "{last}", 0, "taxable", _answers(3, 2, 3, tol_friend="cautious")),
)


def _months_back(today: dt.date, months: int) -> dt.date:
    year, month = divmod(today.month - 1 - months, 12)
    return dt.date(today.year + year, month + 1, min(today.day, 28))


def seed_client_book(firm: Firm, spec: DemoFirm) -> Created:
    from accounts.demo import Created  # accounts.demo registers this seeder

    created = Created()
    investor = next(p for p in spec.people if p.role == Role.INVESTOR)
    names = [h.format(last=investor.last_name) for h in HOUSEHOLDS]
    if Household.objects.filter(name=names[0]).exists():
        return created
    advisor = User.objects.get(username__iexact=spec.username(Role.ADVISOR))
    admin = User.objects.get(username__iexact=spec.username(Role.FIRM_ADMIN))
    questionnaire = questionnaire_install_default(actor=admin)
    model_portfolios_install_default(actor=admin)
    households = []
    for index, name in enumerate(names):
        household = household_create(actor=admin, name=name, notes=SEED_NOTE)
        if index in ASSIGNED:
            household_advisor_assign(household=household, advisor=advisor, actor=admin)
        households.append(household)
    created.add("households", len(households))
    today = timezone.localdate()
    for number, demo in enumerate(CLIENTS, start=1):
        client = client_create(
            household=households[demo.household],
            actor=advisor,
            first_name=demo.first_name.format(first=investor.first_name),
            last_name=demo.last_name.format(last=investor.last_name),
            email=f"client{number}@{spec.slug}.example.com",
            date_of_birth=dt.date(1950 + 4 * number, 1 + number % 12, 1 + number),
            kyc_status="verified" if number % 4 else "pending",
        )
        created.add("clients")
        if demo.investor_login:
            client_link_user(
                client=client,
                user=User.objects.get(username__iexact=spec.username(Role.INVESTOR)),
                actor=admin,
            )
        portfolio_open(
            client=client,
            actor=advisor,
            number=f"{spec.slug.upper()}-{number:04d}",
            account_type=demo.account_type,
            discretionary=demo.account_type != "crypto",
        )
        created.add("portfolios")
        if demo.answers is None:
            continue
        response = response_start(client=client, questionnaire=questionnaire, actor=advisor)
        if not demo.answers:  # half-answered: saved, not submitted
            half = dict(list(_answers(1, 1, 1).items())[:8])
            response_save(response=response, answers=half, actor=advisor)
            continue
        profile = response_submit(
            response=response,
            actor=advisor,
            answers=demo.answers,
            answered_on=_months_back(today, demo.months_ago) if demo.months_ago else None,
        )
        created.add("risk profiles")
        if demo.months_ago == 0:
            try:
                with transaction.atomic():
                    strategy_assign_from_profile(profile=profile, actor=advisor)
                created.add("strategy assignments")
            except ValidationError:
                pass  # flagged: waits for the advisor to resolve it
    stale = risk_profiles_mark_stale(today=today)
    created.add("stale profiles", len(stale))
    return created


def seed_strategy_mapping(firm: Firm, spec: DemoFirm) -> Created:
    """Point every risk level at the best-fitting active strategy, once the strategy
    seeder has run (registered after it, from :mod:`portfolios.apps`), and move the demo
    clients' mapped assignments along. Idempotent: unchanged levels and clients that
    already follow their level's target are left alone."""
    from accounts.demo import Created

    created = Created()
    admin = User.objects.get(username__iexact=spec.username(Role.FIRM_ADMIN))
    advisor = User.objects.get(username__iexact=spec.username(Role.ADVISOR))
    before = {
        m.risk_level: (m.strategy_id, m.model_portfolio_id) for m in RiskLevelMapping.objects.all()
    }
    rows = risk_mapping_install_strategies(actor=admin)
    after = {m.risk_level: (m.strategy_id, m.model_portfolio_id) for m in rows}
    created.add("risk levels mapped to strategies", sum(after[k] != before.get(k) for k in after))
    for assignment in StrategyAssignment.objects.filter(
        status=AssignmentStatus.ACTIVE, source=AssignmentSource.MAPPING
    ).order_by("pk"):
        profile = RiskProfile.objects.get(pk=assignment.profile_id)
        target = after.get(profile.risk_level)
        if profile.status != ProfileStatus.CURRENT or target is None:
            continue
        if (assignment.strategy_id, assignment.model_portfolio_id) == target:
            continue
        try:
            with transaction.atomic():
                strategy_assign_from_profile(profile=profile, actor=advisor)
            created.add("strategy assignments moved to strategies")
        except ValidationError:
            pass  # e.g. a flag opened since: waits for the advisor
    return created
