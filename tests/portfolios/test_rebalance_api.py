"""The rebalancing API and pages: roles, advisors' households, decisions, the blotter.

The run's computation and execution are after-commit work (eager Celery here): each
request runs inside ``django_capture_on_commit_callbacks(execute=True)``, as it would
after the request's commit.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.test import Client as WebClient
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Role, User
from accounts.tenancy import firm_context
from portfolios.models import (
    Holding,
    Order,
    OrderStatus,
    Portfolio,
    RebalanceRun,
    RunPortfolio,
    RunStatus,
)
from portfolios.selectors_rebalance import reason_text
from tests.accounts.book import Book, make_book
from tests.api.conftest import token_for

from .rebalance_factories import AS_OF, asset_make, strategy_make

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/rebalance-runs/"


def _drifted(book: Book) -> Book:
    """Both of the book's portfolios follow a 60/40 strategy and hold 25/75: far out of
    their bands."""
    world = book.world
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    strategy = strategy_make(world.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    with firm_context(world.firm), transaction.atomic():
        for portfolio in (book.portfolio, book.other_portfolio):
            # Retirement accounts: no tax lots needed to sell.
            Portfolio.objects.filter(pk=portfolio.pk).update(
                strategy=strategy, account_type="traditional_ira"
            )
            for symbol, quantity in (("AAA", "10"), ("BBB", "60")):
                Holding.objects.create(
                    firm=world.firm,
                    portfolio=portfolio,
                    asset_id=asset_make(symbol, "100" if symbol == "AAA" else "50").pk,
                    quantity=Decimal(quantity),
                )
    return book


@pytest.fixture
def book(firm_a) -> Book:
    return _drifted(make_book(firm_a))


@pytest.fixture
def api(django_capture_on_commit_callbacks):
    """``api(user).post(...)``: a token client whose after-commit work runs."""

    class Caller:
        def __init__(self, user: User) -> None:
            self.client = APIClient()
            self.client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")

        def get(self, url: str, params: dict[str, Any] | None = None) -> Any:
            return self.client.get(url, params or {})

        def post(self, url: str, body: dict[str, Any] | None = None) -> Any:
            with django_capture_on_commit_callbacks(execute=True):
                return self.client.post(url, body or {}, format="json")

    return Caller


def _start(api, user: User, **body: Any) -> dict[str, Any]:
    response = api(user).post(RUNS, {"as_of": AS_OF.isoformat(), **body})
    assert response.status_code == 201, response.content
    run: dict[str, Any] = api(user).get(f"{RUNS}{response.json()['id']}/").json()
    return run


def test_advisor_previews_their_book_and_sees_only_their_households(api, book):
    advisor = book.world.user(Role.ADVISOR)
    run = _start(api, advisor)
    assert run["status"] == RunStatus.PREVIEW
    assert run["preview"] is True
    # The advisor's book is their households: the investor's portfolio, not the other one.
    assert run["portfolios_total"] == 1
    assert run["progress"] == 1.0
    rows = api(advisor).get(f"{RUNS}{run['id']}/portfolios/").json()["results"]
    assert [r["portfolio_id"] for r in rows] == [book.portfolio.pk]
    assert rows[0]["trigger_text"].startswith("An investment drifted outside")

    admin = book.world.user(Role.FIRM_ADMIN)
    firm_run = _start(api, admin)
    assert firm_run["portfolios_total"] == 2
    # An advisor reads the firm's run but only their household's proposal in it.
    seen = api(advisor).get(f"{RUNS}{firm_run['id']}/portfolios/").json()["results"]
    assert [r["portfolio_id"] for r in seen] == [book.portfolio.pk]
    hidden = api(advisor).get(f"{RUNS}{firm_run['id']}/portfolios/{book.other_portfolio.pk}/")
    assert hidden.status_code == 404
    orders = api(advisor).get("/api/v1/orders/", {"run": firm_run["id"]}).json()["results"]
    assert orders
    assert {o["portfolio_id"] for o in orders} == {book.portfolio.pk}
    all_orders = api(admin).get("/api/v1/orders/", {"run": firm_run["id"]}).json()["results"]
    assert {o["portfolio_id"] for o in all_orders} == {book.portfolio.pk, book.other_portfolio.pk}


def test_proposal_carries_orders_with_reasons_in_plain_words(api, book):
    advisor = book.world.user(Role.ADVISOR)
    run = _start(api, advisor)
    proposal = api(advisor).get(f"{RUNS}{run['id']}/portfolios/{book.portfolio.pk}/").json()
    by_symbol = {o["symbol"]: o for o in proposal["orders"]}
    assert by_symbol["AAA"]["side"] == "buy"
    assert by_symbol["BBB"]["side"] == "sell"
    assert by_symbol["AAA"]["reason_text"] == reason_text(by_symbol["AAA"]["reason"])
    assert "drifted outside its tolerance band" in by_symbol["AAA"]["reason_text"]
    assert isinstance(by_symbol["AAA"]["failures"], list)


def test_inaccessible_and_foreign_scopes_answer_404(api, book, firm_b):
    advisor = book.world.user(Role.ADVISOR)
    other_book = make_book(firm_b)
    for body in (
        {"household_ids": [book.theirs.pk]},
        {"portfolio_ids": [book.other_portfolio.pk]},
        {"household_ids": [other_book.mine.pk]},
        {"portfolio_ids": [other_book.portfolio.pk]},
        {"portfolio_ids": [9 * 10**15]},
    ):
        response = api(advisor).post(RUNS, body)
        assert response.status_code == 404, (body, response.content)
        assert response.json()["error"]["code"] == "not_found"
    with firm_context(book.world.firm), transaction.atomic():
        assert not RebalanceRun.objects.exists()
    # A firm admin reaches every household of the firm, but not another firm's.
    admin = book.world.user(Role.FIRM_ADMIN)
    assert api(admin).post(RUNS, {"household_ids": [book.theirs.pk]}).status_code == 201
    assert api(admin).post(RUNS, {"household_ids": [other_book.mine.pk]}).status_code == 404


def test_roles(api, book):
    world = book.world
    run = _start(api, world.user(Role.ADVISOR))
    compliance, investor = world.user(Role.COMPLIANCE), world.user(Role.INVESTOR)
    assert api(compliance).get(f"{RUNS}{run['id']}/").status_code == 200
    assert api(compliance).get("/api/v1/orders/").status_code == 200
    assert api(compliance).post(RUNS, {}).status_code == 403
    assert api(compliance).post(f"{RUNS}{run['id']}/reject/", {"note": "x"}).status_code == 403
    assert api(investor).get(RUNS).status_code == 403
    assert api(investor).get("/api/v1/orders/").status_code == 403
    assert api(investor).get(f"/api/v1/portfolios/{book.portfolio.pk}/trades/").status_code == 200
    other = api(investor).get(f"/api/v1/portfolios/{book.other_portfolio.pk}/trades/")
    missing = api(investor).get(f"/api/v1/portfolios/{9 * 10**15}/trades/")
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()


def test_service_errors_answer_400_naming_the_field(api, book):
    advisor = book.world.user(Role.ADVISOR)
    preview = _start(api, advisor)
    response = api(advisor).post(f"{RUNS}{preview['id']}/approve/")
    assert response.status_code == 400
    assert "run" in response.json()["error"]["fields"]
    run = _start(api, advisor, preview=False)
    response = api(advisor).post(f"{RUNS}{run['id']}/reject/", {})
    assert response.status_code == 400
    assert "note" in response.json()["error"]["fields"]
    response = api(advisor).post(RUNS, {"preview": "maybe", "bogus": 1})
    assert response.status_code == 400
    assert {"preview", "bogus"} <= set(response.json()["error"]["fields"])
    response = api(advisor).get("/api/v1/orders/", {"side": "hold"})
    assert response.status_code == 400
    assert "side" in response.json()["error"]["fields"]


def test_run_approved_executes_and_the_investor_sees_the_trades(api, book):
    world = book.world
    advisor = world.user(Role.ADVISOR)
    run = _start(api, advisor, preview=False)
    assert run["status"] == RunStatus.AWAITING_APPROVAL
    response = api(advisor).post(f"{RUNS}{run['id']}/approve/", {"note": "Looks right."})
    assert response.status_code == 200, response.content
    assert response.json()["portfolios"] == 1
    assert api(advisor).get(f"{RUNS}{run['id']}/").json()["status"] == RunStatus.DONE
    trades = api(world.user(Role.INVESTOR)).get(f"/api/v1/portfolios/{book.portfolio.pk}/trades/")
    rows = trades.json()["results"]
    assert rows
    assert {r["status"] for r in rows} == {OrderStatus.FILLED}
    assert all(r["reason_text"] == reason_text(r["reason"]) for r in rows)
    with firm_context(world.firm), transaction.atomic():
        held = dict(
            Holding.objects.filter(portfolio=book.portfolio).values_list(
                "asset__symbol", "quantity"
            )
        )
    assert held["AAA"] > Decimal(10)
    assert held["BBB"] < Decimal(60)


def test_advisor_cannot_decide_a_run_holding_other_households(api, book):
    world = book.world
    run = _start(api, world.user(Role.FIRM_ADMIN), preview=False)
    advisor = world.user(Role.ADVISOR)
    response = api(advisor).post(f"{RUNS}{run['id']}/approve/")
    assert response.status_code == 403
    # ... but decides their own portfolio in it.
    url = f"{RUNS}{run['id']}/portfolios/{book.portfolio.pk}/"
    assert api(advisor).post(url + "reject/", {}).status_code == 400
    response = api(advisor).post(url + "reject/", {"note": "Client asked to wait."})
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert (
        api(advisor)
        .post(f"{RUNS}{run['id']}/portfolios/{book.other_portfolio.pk}/approve/")
        .status_code
        == 404
    )
    admin = api(world.user(Role.FIRM_ADMIN)).post(f"{RUNS}{run['id']}/approve/")
    assert admin.status_code == 200
    assert admin.json()["portfolios"] == 1


def test_non_discretionary_portfolio_is_approved_on_its_own(api, book):
    world = book.world
    with firm_context(world.firm), transaction.atomic():
        Portfolio.objects.filter(pk=book.portfolio.pk).update(discretionary=False)
    advisor = world.user(Role.ADVISOR)
    run = _start(api, advisor, preview=False)
    assert api(advisor).post(f"{RUNS}{run['id']}/approve/").json()["portfolios"] == 0
    url = f"{RUNS}{run['id']}/portfolios/{book.portfolio.pk}/approve/"
    response = api(advisor).post(url, {"note": "Client agreed by phone."})
    assert response.status_code == 200, response.content
    with firm_context(world.firm), transaction.atomic():
        assert RunPortfolio.objects.get(run_id=run["id"]).status == "executed"


def test_orders_blotter_as_csv(api, book):
    admin = book.world.user(Role.FIRM_ADMIN)
    run = _start(api, admin)
    response = api(admin).get("/api/v1/orders/", {"format": "csv", "side": "buy"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    with firm_context(book.world.firm), transaction.atomic():
        buys = Order.objects.filter(run_id=run["id"], side="buy").count()
    assert buys
    assert len(rows) == buys
    assert {r["side"] for r in rows} == {"buy"}
    assert all(r["reason_text"] == reason_text(r["reason"]) for r in rows)
    assert {r["portfolio"] for r in rows} == {book.portfolio.number, book.other_portfolio.number}


# --- pages -----------------------------------------------------------------------------


def _web(user: User) -> WebClient:
    client = WebClient()
    client.force_login(user)
    return client


def test_pages_advisor_previews_reads_the_proposal_and_the_blotter(
    book, django_capture_on_commit_callbacks
):
    advisor = _web(book.world.user(Role.ADVISOR))
    page = advisor.get(reverse("portfolios:rebalance_run_list"), {"sort": "nav"})
    assert page.status_code == 200
    text = page.content.decode()
    assert book.portfolio.number in text
    assert book.other_portfolio.number not in text
    assert 'data-class="us_equity"' in text
    assert "background:rgba(" in text
    with django_capture_on_commit_callbacks(execute=True):
        started = advisor.post(
            reverse("portfolios:rebalance_run_new"), {"scope": "book", "mode": "preview"}
        )
    assert started.status_code == 302
    run_page = advisor.get(started["Location"])
    text = run_page.content.decode()
    assert 'data-status="preview"' in text
    assert "progress/?polling=1" not in text  # no polling once computed
    with firm_context(book.world.firm), transaction.atomic():
        run = RebalanceRun.objects.get()
    proposal = advisor.get(
        reverse("portfolios:rebalance_run_portfolio", args=[run.pk, book.portfolio.pk])
    )
    assert "drifted outside its tolerance band" in proposal.content.decode()
    hidden = advisor.get(
        reverse("portfolios:rebalance_run_portfolio", args=[run.pk, book.other_portfolio.pk])
    )
    assert hidden.status_code == 404
    progress = advisor.get(
        reverse("portfolios:rebalance_run_progress", args=[run.pk]), {"polling": "1"}
    )
    assert progress["HX-Refresh"] == "true"
    csv_response = advisor.get(reverse("portfolios:order_blotter_csv"), {"run": run.pk})
    lines = b"".join(csv_response.streaming_content).decode().splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith("run,run_started,portfolio")
    assert len(lines) > 1


def test_pages_investor_sees_allocation_and_is_kept_out_of_rebalancing(book):
    investor = _web(book.world.user(Role.INVESTOR))
    page = investor.get(reverse("portfolios:my_portfolio"))
    text = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in text
    assert 'data-symbol="AAA" data-current=' in text
    assert 'data-target="0.6"' in text
    assert investor.get(reverse("portfolios:rebalance_run_list")).status_code == 403
    assert investor.get(reverse("portfolios:order_blotter")).status_code == 403
