"""The compliance console: audit search (API and page), event detail, streamed CSV
export, exception reports, review queue, rule pages, "why this trade", the home page."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tenancy.context import firm_context
from compliance.models import AuditEvent, ComplianceRule, ComplianceRuleVersion
from compliance.selectors_audit import AuditSearchError, audit_search_parse
from compliance.services import AuditEntry, audit_record, audit_record_many
from compliance.services.verification import audit_chain_verification_run
from portfolios.models import Order, RunPortfolio, RunPortfolioStatus
from tests.api.conftest import auth_headers

from .console_world import ConsoleBook, console_book

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(firm_a, django_capture_on_commit_callbacks: Any) -> ConsoleBook:
    return console_book(firm_a, django_capture_on_commit_callbacks)


def api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(**{"HTTP_" + k.upper(): v for k, v in auth_headers(user).items()})
    return client


def search(user: Any, **params: Any) -> Any:
    return api(user).get(reverse("api:audit-event-list"), {"page_size": 500, **params})


def actions(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["action"] for row in response.json()["results"]]


def events(world: Any, **filters: Any) -> list[AuditEvent]:
    with firm_context(world.firm), transaction.atomic():
        return list(AuditEvent.objects.filter(**filters).order_by("-seq"))


def stream_text(response: Any) -> tuple[str, int]:
    chunks = [c.decode() if isinstance(c, bytes) else c for c in response.streaming_content]
    return "".join(chunks), len(chunks)


# --- search -------------------------------------------------------------------------------


def test_search_by_portfolio_client_household_run_and_action(book):
    world, officer = book.world, book.world.user("compliance")
    proposed = events(world, action="rebalance.portfolio_proposed")
    assert len(proposed) == 3  # one per drifted portfolio

    by_portfolio = search(officer, portfolio=book.held.pk).json()["results"]
    assert {(r["object_type"], r["object_id"]) for r in by_portfolio} == {
        ("portfolio", str(book.held.pk))
    }
    assert "rebalance.portfolio_proposed" in [r["action"] for r in by_portfolio]

    by_client = actions(search(officer, client=book.blocked.client_id))
    assert by_client.count("rebalance.portfolio_proposed") == 1
    # the household holds the held portfolio's client, not the blocked one's
    by_household = search(officer, household=book.held.client.household_id).json()["results"]
    assert {r["object_id"] for r in by_household if r["object_type"] == "portfolio"} == {
        str(book.held.pk)
    }

    by_run = actions(search(officer, run=str(book.run.pk)))
    assert set(by_run) >= {"rebalance.run_started", "rebalance.portfolio_proposed"}
    assert all(e.run_id == str(book.run.pk) for e in events(world, run_id=str(book.run.pk)))
    assert len(by_run) == len(events(world, run_id=str(book.run.pk)))

    by_prefix = actions(search(officer, action="compliance.rule_"))
    assert by_prefix == ["compliance.rule_created", "compliance.rule_created"]
    assert actions(search(officer, actor=officer.username)) == by_prefix
    assert actions(search(officer, object_type="rebalance_run", action="rebalance.run_st")) == [
        "rebalance.run_started"
    ]


def test_search_by_reasons_text_and_dates(firm_a):
    officer = firm_a.user("compliance")
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record(action="t.one", reasons=["Band crossed on AAA"])
        audit_record(action="t.two", reasons=["wash sale window"])
    assert actions(search(firm_a.user("firm_admin"), q="band CROSSED")) == ["t.one"]
    today = timezone.localdate()
    day = dt.timedelta(days=1)
    both = actions(search(officer, date_from=today.isoformat(), date_to=today.isoformat()))
    assert {"t.one", "t.two"} <= set(both)
    assert actions(search(officer, date_to=(today - day).isoformat())) == []
    assert actions(search(officer, date_from=(today + day).isoformat())) == []
    assert set(actions(search(officer, date_from=(today - day).isoformat()))) >= {"t.one"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "2025-13-01"}, "date_from"),
        ({"date_to": "yesterday"}, "date_to"),
        ({"date_from": "2025-03-02", "date_to": "2025-03-01"}, "date_to"),
        ({"client": "abc"}, "client"),
        ({"portfolio": "-3"}, "portfolio"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_search_answers_400_naming_the_field(firm_a, params, field):
    response = search(firm_a.user("compliance"), **params)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    with pytest.raises(AuditSearchError) as err:
        audit_search_parse(params)
    assert err.value.field == field
    # the page says the same, with 400
    client = _web(firm_a.user("compliance"))
    page = client.get(reverse("compliance:audit_list"), params)
    assert page.status_code == 400
    assert f'data-field="{field}"' in page.content.decode()


def test_only_compliance_officers_and_firm_admins_search(firm_a, firm_b):
    with firm_context(firm_b.firm), transaction.atomic():
        foreign = audit_record(action="b.secret")
    with firm_context(firm_a.firm), transaction.atomic():
        mine = audit_record(action="a.mine")
    for role in ("advisor", "investor"):
        user = firm_a.user(role)
        assert search(user).status_code == 403
        assert api(user).get(reverse("api:audit-event-detail", args=[mine.pk])).status_code == 403
        assert _web(user).get(reverse("compliance:audit_list")).status_code == 403
        assert _web(user).get(reverse("compliance:audit_export")).status_code == 403
    officer = firm_a.user("compliance")
    assert "b.secret" not in actions(search(officer))
    detail = api(officer).get(reverse("api:audit-event-detail", args=[foreign.pk]))
    assert detail.status_code == 404
    assert (
        _web(officer).get(reverse("compliance:audit_detail", args=[foreign.pk])).status_code == 404
    )


def test_search_is_paginated(firm_a):
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record_many(entries=[AuditEntry(action=f"p.{i}") for i in range(7)])
    response = api(firm_a.user("compliance")).get(
        reverse("api:audit-event-list"), {"action": "p.", "page_size": "3"}
    )
    body = response.json()
    assert body["count"] == 7
    assert len(body["results"]) == 3
    assert body["next"]
    assert [r["action"] for r in body["results"]] == ["p.6", "p.5", "p.4"]


# --- one event ----------------------------------------------------------------------------


def test_event_detail_links_to_the_previous_event_and_tells_the_chain_state(firm_a):
    officer = firm_a.user("compliance")
    with firm_context(firm_a.firm), transaction.atomic():
        first = audit_record(action="d.first", payload={"n": 1})
        second = audit_record(action="d.second", payload={"n": 2}, reasons=["because"])
    body = api(officer).get(reverse("api:audit-event-detail", args=[second.pk])).json()
    assert body["payload"] == {"n": 2}
    assert body["reasons"] == ["because"]
    assert body["prev_hash"] == first.hash == body["previous_event_hash"]
    assert body["previous_event_id"] == first.pk
    assert body["hash"] == second.hash
    assert body["chain"]["link_ok"]
    assert body["chain"]["content_ok"]
    assert body["chain"]["state"] == "not_checked"
    assert body["chain"]["last_check"] is None

    check = audit_chain_verification_run(firm=firm_a.firm, actor=officer)
    assert check.ok
    assert check.events_checked >= 2
    body = api(officer).get(reverse("api:audit-event-detail", args=[second.pk])).json()
    assert body["chain"]["state"] == "verified"
    assert body["chain"]["last_check"]["id"] == check.pk

    page = _web(officer).get(reverse("compliance:audit_detail", args=[second.pk])).content.decode()
    assert second.hash in page
    assert first.hash in page
    assert 'data-chain-event="ok"' in page
    assert 'data-chain-state="verified"' in page


# --- export -------------------------------------------------------------------------------


def test_export_of_a_large_search_streams_every_event(firm_a):
    count = 3_200
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record_many(
            entries=[
                AuditEntry(action="bulk.row", payload={"i": i}, reasons=[f"=cmd|{i}"])
                for i in range(count)
            ]
        )
        audit_record(action="other.row")
    response = api(firm_a.user("compliance")).get(
        reverse("api:audit-event-export"), {"action": "bulk."}
    )
    assert response.status_code == 200
    assert response.streaming  # a StreamingHttpResponse: nothing was built in memory
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text, chunks = stream_text(response)
    assert chunks > 2  # written as it was read, batch by batch
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:4] == ["seq", "created_at", "actor_label", "action"]
    body = rows[1:]
    assert len(body) == count
    assert {r[3] for r in body} == {"bulk.row"}
    seqs = [int(r[0]) for r in body]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == count
    # a formula-looking reason is neutralised for spreadsheets
    assert all(r[8].startswith("'") or r[8].startswith("[") for r in body)
    hashes = {e.hash for e in events(firm_a, action="bulk.row")}
    assert {r[11] for r in body} == hashes


def test_web_export_follows_the_page_search(firm_a):
    officer = firm_a.user("compliance")
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record(action="w.keep", reasons=["needle"])
        audit_record(action="w.drop", reasons=["hay"])
    page = _web(officer).get(reverse("compliance:audit_list"), {"q": "needle"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-event="w.keep"' in html
    assert 'data-event="w.drop"' not in html
    assert f'href="{reverse("compliance:audit_export")}?q=needle"' in html
    response = _web(officer).get(reverse("compliance:audit_export"), {"q": "needle"})
    text, _ = stream_text(response)
    assert "w.keep" in text
    assert "w.drop" not in text
    bad = _web(officer).get(reverse("compliance:audit_export"), {"date_to": "nope"})
    assert bad.status_code == 400
    assert b"date_to" in bad.content


# --- exception report ----------------------------------------------------------------------


def test_exception_report_counts_blocked_held_skipped_and_rule_changes(book):
    world = book.world
    officer, admin = world.user("compliance"), world.user("firm_admin")
    from compliance.services.overrides import held_portfolio_release

    with firm_context(world.firm), transaction.atomic():
        blocked_orders = Order.objects.filter(run=book.run, status="blocked").count()
    held_portfolio_release(
        firm=world.firm, actor=admin, run_portfolio=book.held_rp, reason="Client asked for it"
    )
    month = timezone.localdate().strftime("%Y-%m")
    report = api(officer).get(reverse("api:exception-report"), {"month": month}).json()
    assert report["blocked_orders_count"] == blocked_orders > 0
    assert report["blocked_portfolios_count"] == 1
    assert report["held_count"] == 1
    assert report["held_released"] == 1
    assert report["held_pending"] == 0
    assert report["held_rejected"] == 0
    (held,) = report["held_portfolios"]
    assert held["resolved_by"] == admin.username
    assert held["resolution_reason"] == "Client asked for it"
    assert held["rule_kinds"] == ["max_turnover"]
    assert report["rule_changes_count"] == 2
    kinds = {k["kind"]: k for k in report["by_rule_kind"]}
    assert kinds["max_turnover"]["hard"] >= 1
    assert kinds["max_turnover"]["soft"] >= 1
    assert {o["order_id"] for o in report["blocked_orders"]} >= {book.blocked_order.pk}

    # another month has none of it
    empty = api(officer).get(reverse("api:exception-report"), {"month": "2001-02"}).json()
    assert empty["blocked_orders_count"] == empty["held_count"] == 0
    assert empty["date_to"] == "2001-02-28"

    page = _web(officer).get(reverse("compliance:exception_report"), {"month": month})
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-resolution="released"' in html
    assert reverse("compliance:order_explain", args=[book.blocked_order.pk]) in html
    response = _web(officer).get(reverse("compliance:exception_report_csv"), {"month": month})
    text, _ = stream_text(response)
    sections = [row[0] for row in csv.reader(io.StringIO(text))]
    assert sections.count("blocked_order") == blocked_orders
    assert sections.count("held_portfolio") == 1
    assert sections.count("rule_change") == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"month": "2025-13"}, "month"),
        ({"date_from": "2025-01-01"}, "date_to"),
        ({"date_from": "2025-02-01", "date_to": "2025-01-01"}, "date_to"),
        ({"month": "2025-01", "date_from": "2025-01-01", "date_to": "2025-01-02"}, "month"),
    ],
)
def test_exception_report_refuses_a_bad_period(firm_a, params, field):
    response = api(firm_a.user("compliance")).get(reverse("api:exception-report"), params)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


# --- review queue, why this trade, rules ----------------------------------------------------


def _web(user: Any) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_review_queue_release_needs_a_second_person_and_a_reason(book):
    world = book.world
    advisor_as_proposer = world.user("advisor")
    officer = world.user("compliance")
    page = _web(officer).get(reverse("compliance:review_queue"))
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-run-portfolio="{book.held_rp.pk}"' in html
    assert "turnover" in html.lower()
    decide = reverse("compliance:review_decide", args=[book.held_rp.pk])
    # no reason: refused, still held
    response = _web(officer).post(decide, {"decision": "release", "reason": " "}, follow=True)
    assert "reason:" in response.content.decode()
    with firm_context(world.firm), transaction.atomic():
        assert RunPortfolio.objects.get(pk=book.held_rp.pk).status == RunPortfolioStatus.HELD
    # the advisor who proposed the run is not allowed to open the queue at all
    assert _web(advisor_as_proposer).post(decide, {"decision": "release"}).status_code == 403
    _web(officer).post(decide, {"decision": "release", "reason": "Within the client's mandate"})
    with firm_context(world.firm), transaction.atomic():
        assert RunPortfolio.objects.get(pk=book.held_rp.pk).status != RunPortfolioStatus.HELD
        released = AuditEvent.objects.get(action="compliance.override_released")
    assert released.actor_id == officer.pk
    assert released.reasons == ["Within the client's mandate"]
    page = _web(officer).get(reverse("compliance:review_queue")).content.decode()
    assert f'data-run-portfolio="{book.held_rp.pk}"' not in page


def test_why_this_trade_page_shows_the_failed_rule(book):
    officer = book.world.user("compliance")
    url = reverse("compliance:order_explain", args=[book.blocked_order.pk])
    page = _web(officer).get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-rule-kind="max_turnover" data-outcome="HARD_FAIL"' in html
    assert 'data-matches="yes"' in html
    assert _web(book.world.user("investor")).get(url).status_code == 403
    assert _web(officer).get(reverse("compliance:order_explain", args=[10**12])).status_code == 404


def test_event_detail_page_lists_the_portfolios_orders_with_why_links(book):
    officer = book.world.user("compliance")
    (event,) = events(
        book.world, action="rebalance.portfolio_proposed", object_id=str(book.blocked.pk)
    )
    html = _web(officer).get(reverse("compliance:audit_detail", args=[event.pk])).content.decode()
    assert f'data-order="{book.blocked_order.pk}" data-status="blocked"' in html
    assert reverse("compliance:order_explain", args=[book.blocked_order.pk]) in html


def test_rule_pages_create_edit_as_a_new_version_and_refuse_bad_params(firm_a):
    officer = firm_a.user("compliance")
    web = _web(officer)
    bad = web.post(
        reverse("compliance:rule_new"),
        {"name": "Cash", "kind": "cash_floor", "severity": "hard", "params": '{"min_share": 2}'},
    )
    assert bad.status_code == 400
    assert 'data-field="min_share"' in bad.content.decode()
    created = web.post(
        reverse("compliance:rule_new"),
        {"name": "Cash", "kind": "cash_floor", "severity": "hard", "params": '{"min_share": 0.01}'},
    )
    assert created.status_code == 302
    with firm_context(firm_a.firm), transaction.atomic():
        rule = ComplianceRule.objects.get(name="Cash")
    edited = web.post(
        reverse("compliance:rule_detail", args=[rule.pk]),
        {"severity": "soft", "params": '{"min_share": 0.02}', "active": "on"},
    )
    assert edited.status_code == 302
    with firm_context(firm_a.firm), transaction.atomic():
        versions = list(
            ComplianceRuleVersion.objects.filter(rule=rule)
            .order_by("number")
            .values_list("number", "severity")
        )
    assert versions == [(1, 2), (2, 1)]
    page = web.get(reverse("compliance:rule_detail", args=[rule.pk])).content.decode()
    assert 'data-version="1"' in page
    assert 'data-version="2"' in page
    assert "Cash" in web.get(reverse("compliance:rule_list")).content.decode()
    assert _web(firm_a.user("advisor")).get(reverse("compliance:rule_list")).status_code == 403


def test_compliance_home_shows_the_console(book):
    officer = book.world.user("compliance")
    audit_chain_verification_run(firm=book.world.firm, actor=officer)
    html = _web(officer).get(reverse("home")).content.decode()
    assert 'data-figure="review_queue" data-value="1"' in html
    assert f'data-order="{book.blocked_order.pk}"' in html
    assert 'data-chain-recorded="ok"' in html
    assert 'data-testid="chain-checked-at"' in html
