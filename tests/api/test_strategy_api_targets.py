"""The strategy-assignment and mapping API with real strategies as targets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.strategy_services import model_portfolios_install_default
from accounts.tenancy import firm_context
from tests.accounts.book import Book, make_book
from tests.accounts.strategy_targets import active_strategy, etf_prices_load

pytestmark = pytest.mark.django_db

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
URL = "/api/v1/strategy-assignments/"


@pytest.fixture
def book(firm_a) -> Book:
    etf_prices_load()
    book = make_book(firm_a)
    with firm_context(firm_a.firm), transaction.atomic():
        model_portfolios_install_default()
    return book


def _profile(book: Book) -> tuple[int, int]:
    with firm_context(book.world.firm), transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        profile = response_submit(response=response, actor=None, answers=MODERATE)
        return profile.pk, profile.risk_level


def _strategy(book: Book, name: str, low: int, high: int) -> int:
    with firm_context(book.world.firm), transaction.atomic():
        return active_strategy(name, low, high).pk


def test_override_with_a_strategy_and_the_target_in_responses(
    book: Book, client_as: Callable[..., APIClient]
):
    profile, level = _profile(book)
    far = _strategy(book, "Far", 10, 10) if level < 10 else _strategy(book, "Far", 1, 1)
    advisor = client_as(book.world.user(Role.ADVISOR))
    made = advisor.post(
        URL, {"profile_id": profile, "strategy_id": far, "rationale": "Asked"}, format="json"
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["status"] == "pending_approval"
    assert body["outside_band"] is True
    assert body["strategy_id"] == far
    assert body["model_portfolio_id"] is None
    assert body["target"] == {"type": "strategy", "id": far, "name": "Far"}

    decided = client_as(book.world.user(Role.COMPLIANCE)).post(
        f"{URL}{body['id']}/decision/", {"approve": True}, format="json"
    )
    assert decided.status_code == 200, decided.content
    assert decided.json()["status"] == "active"


def test_exactly_one_target_is_required_naming_the_field(
    book: Book, client_as: Callable[..., APIClient]
):
    profile, _ = _profile(book)
    strategy = _strategy(book, "Any", 1, 10)
    advisor = client_as(book.world.user(Role.ADVISOR))
    both = advisor.post(
        URL,
        {"profile_id": profile, "strategy_id": strategy, "model_portfolio_id": 1, "rationale": "x"},
        format="json",
    )
    assert both.status_code == 400
    assert "strategy_id" in both.content.decode()


def test_a_foreign_firms_strategy_is_refused_like_a_missing_one(
    book: Book, firm_b, client_as: Callable[..., APIClient]
):
    with firm_context(firm_b.firm), transaction.atomic():
        foreign = active_strategy("Foreign secret", 1, 10).pk
    profile, _ = _profile(book)
    advisor = client_as(book.world.user(Role.ADVISOR))
    answers = [
        advisor.post(
            URL, {"profile_id": profile, "strategy_id": sid, "rationale": "x"}, format="json"
        )
        for sid in (foreign, 999_999_999)
    ]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()
    assert "Foreign secret" not in answers[0].content.decode()

    admin = client_as(book.world.user(Role.FIRM_ADMIN))
    mapped = [
        admin.put("/api/v1/risk-mapping/", {"strategies": {"3": sid}}, format="json")
        for sid in (foreign, 999_999_999)
    ]
    assert [m.status_code for m in mapped] == [400, 400]
    assert mapped[0].json() == mapped[1].json()


def test_the_mapping_takes_strategies_and_shows_the_target(
    book: Book, client_as: Callable[..., APIClient]
):
    strategy = _strategy(book, "Everything", 1, 10)
    admin = client_as(book.world.user(Role.FIRM_ADMIN))
    clash = admin.put(
        "/api/v1/risk-mapping/",
        {"strategies": {"4": strategy}, "mapping": {"4": 1}},
        format="json",
    )
    assert clash.status_code == 400
    put = admin.put("/api/v1/risk-mapping/", {"strategies": {"4": strategy}}, format="json")
    assert put.status_code == 200, put.content
    rows = {r["risk_level"]: r for r in put.json()}
    assert rows[4]["strategy_id"] == strategy
    assert rows[4]["model_portfolio_id"] is None
    assert rows[4]["target"] == {"type": "strategy", "id": strategy, "name": "Everything"}
    assert rows[5]["target"]["type"] == "model_portfolio"

    profile, level = _profile(book)
    put = admin.put("/api/v1/risk-mapping/", {"strategies": {str(level): strategy}}, format="json")
    advisor = client_as(book.world.user(Role.ADVISOR))
    mapped = advisor.post(URL, {"profile_id": profile}, format="json")
    assert mapped.status_code == 201, mapped.content
    assert mapped.json()["target"]["type"] == "strategy"
