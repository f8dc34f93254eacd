"""Profile to strategy through the API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from accounts.models import ModelPortfolio, Role
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.strategy_services import model_portfolios_install_default
from accounts.tenancy import firm_context
from tests.accounts.book import Book, make_book

pytestmark = pytest.mark.django_db

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
CONTRADICTORY = {
    **{q.code: q.options[-1].code for q in DEFAULT_QUESTIONS},
    "tol_fall_20": "sell_all",
}


@pytest.fixture
def book(firm_a) -> Book:
    book = make_book(firm_a)
    with firm_context(firm_a.firm), transaction.atomic():
        model_portfolios_install_default()
    return book


def _profile(book: Book, answers) -> int:
    with firm_context(book.world.firm), transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        return response_submit(response=response, actor=None, answers=answers).pk


def _portfolio(book: Book, name: str) -> int:
    with firm_context(book.world.firm), transaction.atomic():
        return ModelPortfolio.objects.get(name=name).pk


def test_map_override_and_approve(book: Book, client_as: Callable[..., APIClient]):
    profile = _profile(book, MODERATE)
    advisor = client_as(book.world.user(Role.ADVISOR))
    mapped = advisor.post("/api/v1/strategy-assignments/", {"profile_id": profile}, format="json")
    assert mapped.status_code == 201, mapped.content
    assert mapped.json()["source"] == "mapping"

    equity = _portfolio(book, "All equity")
    no_reason = advisor.post(
        "/api/v1/strategy-assignments/",
        {"profile_id": profile, "model_portfolio_id": equity},
        format="json",
    )
    assert no_reason.status_code == 400
    assert "rationale" in no_reason.json()["error"]["fields"]
    override = advisor.post(
        "/api/v1/strategy-assignments/",
        {"profile_id": profile, "model_portfolio_id": equity, "rationale": "Long horizon"},
        format="json",
    ).json()
    assert override["status"] == "pending_approval"
    assert override["outside_band"] is True

    url = f"/api/v1/strategy-assignments/{override['id']}/decision/"
    assert advisor.post(url, {"approve": True}, format="json").status_code == 403
    compliance = client_as(book.world.user(Role.COMPLIANCE))
    decided = compliance.post(url, {"approve": True, "note": "Documented."}, format="json")
    assert decided.status_code == 200, decided.content
    assert decided.json()["status"] == "active"
    listed = compliance.get("/api/v1/strategy-assignments/").json()["results"]
    assert {a["status"] for a in listed} == {"active", "superseded"}


def test_a_flagged_profile_is_not_mapped(book: Book, client_as: Callable[..., APIClient]):
    profile = _profile(book, CONTRADICTORY)
    advisor = client_as(book.world.user(Role.ADVISOR))
    response = advisor.post("/api/v1/strategy-assignments/", {"profile_id": profile}, format="json")
    assert response.status_code == 400
    assert "open consistency flags" in response.json()["error"]["fields"]["profile"][0]


def test_another_advisor_cannot_assign(book: Book, client_as: Callable[..., APIClient]):
    profile = _profile(book, MODERATE)
    other = client_as(book.other_advisor)
    response = other.post("/api/v1/strategy-assignments/", {"profile_id": profile}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"profile_id": ["no such risk profile"]}


def test_firm_admin_edits_the_mapping(book: Book, client_as: Callable[..., APIClient]):
    admin = client_as(book.world.user(Role.FIRM_ADMIN))
    balanced = _portfolio(book, "Balanced")
    response = admin.put("/api/v1/risk-mapping/", {"mapping": {"3": balanced}}, format="json")
    assert response.status_code == 200
    rows = {r["risk_level"]: r["model_portfolio_id"] for r in response.json()}
    assert rows[3] == balanced
    assert len(rows) == 10
    bad = admin.put("/api/v1/risk-mapping/", {"mapping": {"11": balanced}}, format="json")
    assert bad.status_code == 400
    created = admin.post(
        "/api/v1/model-portfolios/",
        {
            "name": "Income plus",
            "weights": {"us_bonds": "0.7", "us_equity": "0.3"},
            "min_risk_level": 3,
            "max_risk_level": 4,
            "bad_year_return": "-0.1",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    investor = client_as(book.world.user(Role.INVESTOR))
    assert investor.put("/api/v1/risk-mapping/", {"mapping": {}}, format="json").status_code == 403
