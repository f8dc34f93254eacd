"""Every event type, raised through the real services, reaches the right recipients
through the channels they chose, and nobody of another firm or another household.

Each test drives the service that makes the change (questionnaire submission, the daily
tasks, strategy assignment, the rebalance run, ``verify_audit``); the outbox is sent
after commit by the eager Celery tasks, as in production.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.models import Client, Household, Membership, Role, User
from accounts.models_notifications import Delivery, DeliveryStatus, Notification
from accounts.notifications.services import notification_preference_set
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.strategy_services import (
    model_portfolios_install_default,
    strategy_assign_from_profile,
    strategy_override,
    strategy_override_decide,
)
from accounts.tenancy.context import firm_context
from compliance import rules as compliance_rules
from compliance.rules.params import RESTRICTED_LIST
from portfolios import services_execution, services_rebalance
from portfolios.models import CashFlow, CashFlowKind, Portfolio, RunPortfolio
from tests.accounts.book import Book, make_book
from tests.conftest import FirmWorld
from tests.portfolios.rebalance_factories import AS_OF, asset_make, portfolio_make, strategy_make

pytestmark = pytest.mark.django_db

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
CONTRADICTORY = {
    **{q.code: q.options[-1].code for q in DEFAULT_QUESTIONS},
    "tol_fall_20": "sell_all",
}

Told = dict[int, set[str]]  # user id -> channels it reached ("in_app", "email")


@pytest.fixture
def books(firm_a: FirmWorld, firm_b: FirmWorld) -> tuple[Book, Book]:
    return make_book(firm_a), make_book(firm_b)


@contextmanager
def sending(capture: Any, firm: Any) -> Iterator[None]:
    """Run a change in ``firm``'s transaction and send its outbox after the commit."""
    with firm_context(firm), capture(execute=True), transaction.atomic():
        yield


def told(world: FirmWorld, event_type: str) -> Told:
    """Who was told of ``event_type`` in ``world``'s firm, and through which channels."""
    out: Told = defaultdict(set)
    with firm_context(world.firm), transaction.atomic():
        for n in Notification.objects.filter(event_type=event_type):
            out.setdefault(n.recipient_id, set())  # told, even through no channel
            if n.in_inbox:
                out[n.recipient_id].add("in_app")
        for uid, status in Delivery.objects.filter(
            channel="email", notification__event_type=event_type
        ).values_list("notification__recipient_id", "status"):
            if status == DeliveryStatus.SENT:
                out[uid].add("email")
    return dict(out)


def emailed(subject: str) -> list[str]:
    return sorted(m.to[0] for m in mail.outbox if subject in m.subject)


def nothing_in(world: FirmWorld) -> None:
    with firm_context(world.firm), transaction.atomic():
        assert Notification.objects.count() == 0
        assert Delivery.objects.count() == 0


def _profile(book: Book, answers: dict[str, str], answered_on: dt.date | None = None) -> Any:
    questionnaire = questionnaire_install_default()
    response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
    return response_submit(response=response, actor=None, answers=answers, answered_on=answered_on)


BOTH = {"in_app", "email"}


# --------------------------------------------------------------------------- profiles


def test_a_completed_profile_tells_the_investor_and_flags_tell_their_advisor(
    books: tuple[Book, Book], django_capture_on_commit_callbacks: Any
) -> None:
    book, other = books
    world = book.world
    investor, advisor = world.user(Role.INVESTOR), world.user(Role.ADVISOR)
    with sending(django_capture_on_commit_callbacks, world.firm):
        _profile(book, CONTRADICTORY)
    assert told(world, "risk_profile_completed") == {investor.pk: BOTH}
    # Flags go to the advisor of the client's household, not to the other household's.
    assert told(world, "profile_flags_open") == {advisor.pk: BOTH}
    assert emailed("risk profile is complete") == [investor.email]
    assert emailed("Questionnaire flags to resolve") == [advisor.email]
    with firm_context(world.firm), transaction.atomic():
        flags = Notification.objects.get(event_type="profile_flags_open")
        assert book.client.full_name in flags.subject
    nothing_in(other.world)


def test_a_clean_profile_raises_no_flags(
    books: tuple[Book, Book], django_capture_on_commit_callbacks: Any
) -> None:
    book, _ = books
    with sending(django_capture_on_commit_callbacks, book.world.firm):
        _profile(book, MODERATE)
    assert told(book.world, "profile_flags_open") == {}
    assert list(told(book.world, "risk_profile_completed")) == [book.world.user(Role.INVESTOR).pk]


def test_the_daily_task_tells_investors_of_profiles_expiring_soon_once(
    books: tuple[Book, Book], django_capture_on_commit_callbacks: Any
) -> None:
    from accounts.notifications.tasks import notifications_daily

    book, other = books
    world = book.world
    today = timezone.localdate()
    # Valid for 12 months: answered 12 months less 10 days ago, it expires in 10 days.
    answered = (today + dt.timedelta(days=10)).replace(year=today.year - 1)
    with firm_context(world.firm), transaction.atomic():
        _profile(book, MODERATE, answered_on=answered)
        # The investor wants this one in the app only.
        notification_preference_set(
            user=world.user(Role.INVESTOR), event_type="risk_profile_expiring", channels=["in_app"]
        )
    with django_capture_on_commit_callbacks(execute=True):
        result = notifications_daily.delay(firm_id=world.firm.pk).get()
    assert result["expiring"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_daily.delay(firm_id=world.firm.pk).get()["expiring"] == 0
    assert told(world, "risk_profile_expiring") == {world.user(Role.INVESTOR).pk: {"in_app"}}
    assert emailed("expires soon") == []
    with firm_context(world.firm), transaction.atomic():
        body = Notification.objects.get(event_type="risk_profile_expiring").body
    assert "in 10 days" in body
    nothing_in(other.world)


def test_the_expiry_task_tells_the_investor_their_profile_expired(
    books: tuple[Book, Book], django_capture_on_commit_callbacks: Any
) -> None:
    from accounts.tasks import risk_profiles_expire

    book, other = books
    world = book.world
    with firm_context(world.firm), transaction.atomic():
        profile = _profile(book, MODERATE, answered_on=dt.date(2000, 1, 1))
    with django_capture_on_commit_callbacks(execute=True):
        assert risk_profiles_expire.delay(firm_id=world.firm.pk).get() == [profile.pk]
    assert told(world, "risk_profile_expired") == {world.user(Role.INVESTOR).pk: BOTH}
    assert emailed("risk profile has expired") == [world.user(Role.INVESTOR).email]
    nothing_in(other.world)


# --------------------------------------------------------------------------- strategy


def test_a_strategy_assigned_then_changed_tells_the_investor_each_time(
    books: tuple[Book, Book], django_capture_on_commit_callbacks: Any
) -> None:
    from accounts.models import ModelPortfolio

    book, other = books
    world = book.world
    investor = world.user(Role.INVESTOR)
    with sending(django_capture_on_commit_callbacks, world.firm):
        model_portfolios_install_default()
        profile = _profile(book, MODERATE)
        first = strategy_assign_from_profile(profile=profile, actor=None)
    assert told(world, "strategy_assigned") == {investor.pk: BOTH}
    assert first.model_portfolio_id is not None
    with firm_context(world.firm), transaction.atomic():
        name = ModelPortfolio.objects.get(pk=first.model_portfolio_id).name
        aggressive = ModelPortfolio.objects.get(name="All equity")
    # Outside the profile's band: nothing is told until compliance approves the change.
    with sending(django_capture_on_commit_callbacks, world.firm):
        override = strategy_override(
            profile=profile,
            actor=world.user(Role.ADVISOR),
            model_portfolio=aggressive,
            rationale="Inheritance, long view",
        )
    assert emailed("strategy") == [investor.email]
    with sending(django_capture_on_commit_callbacks, world.firm):
        strategy_override_decide(
            assignment=override, actor=world.user(Role.COMPLIANCE), approve=True, note="OK"
        )
    with firm_context(world.firm), transaction.atomic():
        changed = Notification.objects.get(event_key=f"assignment:{override.pk}")
    assert changed.recipient_id == investor.pk
    assert changed.subject == "Your investment strategy changed"
    assert name in changed.body
    assert "All equity" in changed.body
    assert emailed("strategy") == [investor.email, investor.email]
    # The other household's investor and the other firm hear nothing.
    assert book.other_investor.pk not in told(world, "strategy_assigned")
    nothing_in(other.world)


# --------------------------------------------------------------------------- rebalancing


def _investor(world: FirmWorld, name: str) -> User:
    with firm_context(world.firm), transaction.atomic():
        user = User.objects.create_user(
            username=f"{name}.{world.firm.slug}", email=f"{name}@{world.firm.slug}.test"
        )
        Membership.objects.create(user=user, role=Role.INVESTOR)
    return user


def _drifted_book(world: FirmWorld, advisor: User) -> tuple[Portfolio, Portfolio, User, User]:
    """Two drifted portfolios in two households; only the first is the advisor's."""
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    strategy = strategy_make(world.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    ada, bob = _investor(world, "ada"), _investor(world, "bob")
    with firm_context(world.firm), transaction.atomic():
        mine = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        theirs = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        Client.objects.filter(pk=mine.client_id).update(user=ada)
        Client.objects.filter(pk=theirs.client_id).update(user=bob)
        assign_perm("view_household", advisor, Household.objects.get(pk=mine.client.household_id))
    return mine, theirs, ada, bob


def _rules(monkeypatch: Any, *rules: compliance_rules.Rule) -> None:
    """The firm's rule set for the next runs (as a configured rule set would answer)."""
    providers: list[Callable[[], tuple[int | None, Any]]] = [
        *services_rebalance.RULE_SET_PROVIDERS,
        lambda: (None, (*compliance_rules.BUILTIN_RULES, *rules)),
    ]
    monkeypatch.setattr(services_rebalance, "RULE_SET_PROVIDERS", providers)


def _restricted(rule_id: int, severity: compliance_rules.Severity, client_id: int) -> Any:
    return compliance_rules.Rule(
        rule_id,
        RESTRICTED_LIST,
        severity,
        MappingProxyType({"symbols": ("AAA",), "use_client_restrictions": False}),
        client_ids=frozenset({client_id}),
    )


def test_approvals_waiting_reach_the_advisor_and_held_ones_compliance(
    firm_a: FirmWorld,
    firm_b: FirmWorld,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: Any,
) -> None:
    advisor, officer = firm_a.user(Role.ADVISOR), firm_a.user(Role.COMPLIANCE)
    mine, _theirs, ada, bob = _drifted_book(firm_a, advisor)
    # A soft rule holds the advisor's portfolio for a second approver.
    _rules(monkeypatch, _restricted(-90, compliance_rules.Severity.SOFT, mine.client_id))
    with sending(django_capture_on_commit_callbacks, firm_a.firm):
        run = services_rebalance.rebalance_run_start(trigger="manual", actor=advisor, as_of=AS_OF)
    with firm_context(firm_a.firm), transaction.atomic():
        assert RunPortfolio.objects.get(run=run, portfolio=mine).status == "held"
        waiting = {
            n.recipient_id: n for n in Notification.objects.filter(event_type="approvals_waiting")
        }
    # The advisor of the held portfolio's household, and the firm's compliance officer as
    # the second approver; not the investors, not the other firm.
    assert set(waiting) == {advisor.pk, officer.pk}
    assert told(firm_a, "approvals_waiting") == {advisor.pk: BOTH, officer.pk: BOTH}
    assert "1 held for a second approver" in waiting[officer.pk].body
    assert emailed("approval") == sorted([advisor.email, officer.email])
    assert ada.pk not in waiting
    assert bob.pk not in waiting
    nothing_in(firm_b)


def test_approvals_waiting_are_counted_per_advisor_over_their_households(
    firm_a: FirmWorld, django_capture_on_commit_callbacks: Any
) -> None:
    # Three proposals: two in the advisor's household, one in a household shared with a
    # second advisor, whose membership is inactive (told nothing).
    advisor = firm_a.user(Role.ADVISOR)
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    strategy = strategy_make(firm_a.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    with firm_context(firm_a.firm), transaction.atomic():
        other = User.objects.create_user(username="other.alpha", email="other@alpha.test")
        Membership.objects.create(user=other, role=Role.ADVISOR, is_active=False)
        drifted = {"AAA": "10", "BBB": "40"}
        first = portfolio_make(firm_a.firm, strategy=strategy, holdings=drifted)
        portfolio_make(
            firm_a.firm,
            strategy=strategy,
            holdings=drifted,
            household=Household.objects.get(pk=first.client.household_id),
        )
        shared = portfolio_make(firm_a.firm, strategy=strategy, holdings=drifted)
        for household_id in (first.client.household_id, shared.client.household_id):
            household = Household.objects.get(pk=household_id)
            assign_perm("view_household", advisor, household)
        assign_perm("view_household", other, Household.objects.get(pk=shared.client.household_id))
    with sending(django_capture_on_commit_callbacks, firm_a.firm):
        services_rebalance.rebalance_run_start(trigger="manual", actor=advisor, as_of=AS_OF)
    with firm_context(firm_a.firm), transaction.atomic():
        waiting = {
            n.recipient_id: n for n in Notification.objects.filter(event_type="approvals_waiting")
        }
    assert set(waiting) == {advisor.pk}
    assert waiting[advisor.pk].data["proposed"] == 3
    assert "3 proposal(s) to approve" in waiting[advisor.pk].body


def test_orders_blocked_by_compliance_reach_the_advisor_and_compliance(
    firm_a: FirmWorld,
    firm_b: FirmWorld,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: Any,
) -> None:
    advisor, officer = firm_a.user(Role.ADVISOR), firm_a.user(Role.COMPLIANCE)
    mine, _theirs, ada, bob = _drifted_book(firm_a, advisor)
    _rules(monkeypatch, _restricted(-91, compliance_rules.Severity.HARD, mine.client_id))
    # The officer reads this one in the app only.
    with firm_context(firm_a.firm), transaction.atomic():
        notification_preference_set(user=officer, event_type="orders_blocked", channels=["in_app"])
    with sending(django_capture_on_commit_callbacks, firm_a.firm):
        services_rebalance.rebalance_run_start(trigger="manual", actor=advisor, as_of=AS_OF)
    assert told(firm_a, "orders_blocked") == {advisor.pk: BOTH, officer.pk: {"in_app"}}
    assert emailed("blocked") == [advisor.email]
    assert not {ada.pk, bob.pk} & set(told(firm_a, "orders_blocked"))
    with firm_context(firm_a.firm), transaction.atomic():
        body = Notification.objects.get(event_type="orders_blocked", recipient=advisor).body
    assert "AAA" in body
    nothing_in(firm_b)


def test_deposits_and_withdrawals_processed_reach_their_own_investor_only(
    firm_a: FirmWorld,
    firm_b: FirmWorld,
    django_capture_on_commit_callbacks: Any,
) -> None:
    advisor = firm_a.user(Role.ADVISOR)
    mine, theirs, ada, bob = _drifted_book(firm_a, advisor)
    with firm_context(firm_a.firm), transaction.atomic():
        deposit = CashFlow.objects.create(
            firm=firm_a.firm, portfolio=mine, kind=CashFlowKind.DEPOSIT, amount=Decimal("1000.00")
        )
        withdrawal = CashFlow.objects.create(
            firm=firm_a.firm,
            portfolio=theirs,
            kind=CashFlowKind.WITHDRAWAL,
            amount=Decimal("500.00"),
        )
    with sending(django_capture_on_commit_callbacks, firm_a.firm):
        run = services_rebalance.rebalance_run_start(trigger="manual", actor=advisor, as_of=AS_OF)
    with sending(django_capture_on_commit_callbacks, firm_a.firm):
        run.refresh_from_db()
        services_execution.rebalance_run_approve(run=run, actor=advisor)
    assert told(firm_a, "cash_flow_processed") == {ada.pk: BOTH, bob.pk: BOTH}
    with firm_context(firm_a.firm), transaction.atomic():
        keys = dict(
            Notification.objects.filter(event_type="cash_flow_processed").values_list(
                "recipient_id", "event_key"
            )
        )
        bobs = Notification.objects.get(event_type="rebalance_executed", recipient=bob).body
    assert keys == {ada.pk: f"cash_flow:{deposit.pk}", bob.pk: f"cash_flow:{withdrawal.pk}"}
    assert emailed("deposit of $1,000.00 was processed") == [ada.email]
    assert emailed("withdrawal of $500.00 was processed") == [bob.email]
    assert "withdrawal" in bobs
    nothing_in(firm_b)


# --------------------------------------------------------------------------- audit chain


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_a_broken_audit_chain_found_by_verify_audit_tells_its_compliance_officers(
    firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    from compliance.services.audit import audit_record
    from tests.compliance.test_audit_trail import TABLE, owner_tamper

    with firm_context(firm_a.firm), transaction.atomic():
        events = [audit_record(action=f"test.event.{i}", payload={"i": i}) for i in range(3)]
    with firm_context(firm_b.firm), transaction.atomic():
        audit_record(action="test.event", payload={})
    owner_tamper(
        firm_a.firm,
        (f"UPDATE {TABLE} SET payload = %s::jsonb WHERE id = %s", ['{"i": 9}', events[1].pk]),
    )
    with pytest.raises(CommandError):
        call_command("verify_audit", "--all", stdout=StringIO())
    officer = firm_a.user(Role.COMPLIANCE)
    assert told(firm_a, "audit_chain_broken") == {officer.pk: BOTH}
    assert emailed("Audit trail integrity check failed") == [officer.email]
    with firm_context(firm_a.firm), transaction.atomic():
        n = Notification.objects.get(event_type="audit_chain_broken")
    assert n.regulatory
    assert f"#{events[1].seq}" in n.body
    # Firm b's chain is intact: its officers hear nothing.
    with firm_context(firm_b.firm), transaction.atomic():
        assert not Notification.objects.filter(event_type="audit_chain_broken").exists()
