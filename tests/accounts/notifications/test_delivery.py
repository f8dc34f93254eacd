"""Notifications on the database: recipients, exactly-once sending, digest, webhooks,
templates, bad input."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.models import Client, Household, Membership, Role, User
from accounts.models_notifications import Delivery, DeliveryStatus, Notification
from accounts.notifications import delivery as delivery_mod
from accounts.notifications.delivery import (
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    TemplateFailed,
    deliveries_recover_stale,
    deliveries_send,
    webhook_verify,
)
from accounts.notifications.digest import digests_build
from accounts.notifications.hooks import on_chain_broken
from accounts.notifications.services import (
    Outgoing,
    firm_email_templates_set,
    notification_preference_set,
    notifications_emit,
    user_email_set,
    webhook_endpoint_create,
)
from accounts.tenancy.context import firm_context
from compliance.models import AuditEvent
from portfolios import services_execution, services_rebalance
from portfolios.models import CashFlow, CashFlowKind
from tests.portfolios.rebalance_factories import AS_OF, asset_make, portfolio_make, strategy_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_auto_send(settings: Any) -> None:
    settings.NOTIFICATIONS_AUTO_SEND = False


def _investor(world: Any, name: str) -> User:
    with firm_context(world.firm), transaction.atomic():
        user = User.objects.create_user(
            username=f"{name}.{world.firm.slug}", email=f"{name}@x.test"
        )
        Membership.objects.create(user=user, role=Role.INVESTOR)
    return user


def _link(world: Any, portfolio: Any, user: User, advisor: User | None = None) -> None:
    with firm_context(world.firm), transaction.atomic():
        Client.objects.filter(pk=portfolio.client_id).update(user=user)
        if advisor is not None:
            household = Household.objects.get(pk=portfolio.client.household_id)
            assign_perm("view_household", advisor, household)


def _item(key: str, user: User, event_type: str = "strategy_assigned") -> Outgoing:
    return Outgoing(
        event_type=event_type, event_key=key, recipient_id=user.pk, subject=f"S {key}", body="B"
    )


# --------------------------------------------------------------------------- end to end


def test_rebalance_tells_each_investor_and_advisor_and_nobody_else(
    firm_a: Any, firm_b: Any, django_capture_on_commit_callbacks: Any
) -> None:
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    strategy = strategy_make(firm_a.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    ada, bob = _investor(firm_a, "ada"), _investor(firm_a, "bob")
    advisor = firm_a.users["advisor"]
    other_advisor = _investor(firm_a, "unrelated")  # an investor: never an approver
    with firm_context(firm_a.firm):
        p1 = portfolio_make(firm_a.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        p2 = portfolio_make(firm_a.firm, strategy=strategy, holdings={"AAA": "18", "BBB": "24"})
        CashFlow.objects.create(
            firm=firm_a.firm, portfolio=p2, kind=CashFlowKind.DEPOSIT, amount=Decimal("1000.00")
        )
    _link(firm_a, p1, ada, advisor)
    _link(firm_a, p2, bob)
    with firm_context(firm_a.firm):
        with django_capture_on_commit_callbacks(execute=True):
            run = services_rebalance.rebalance_run_start(
                trigger="manual", actor=advisor, as_of=AS_OF
            )
        waiting = Notification.objects.get(event_type="approvals_waiting")
        assert waiting.recipient_id == advisor.pk  # only p1's household is granted to them
        assert "2 proposal(s)" not in waiting.body
        assert "1 proposal(s) to approve" in waiting.body
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            services_execution.rebalance_run_approve(run=run, actor=advisor)
        executed = {
            (n.recipient_id, n.event_type, n.event_key)
            for n in Notification.objects.exclude(event_type="approvals_waiting")
        }
        flow = CashFlow.objects.get(portfolio=p2)
        assert executed == {
            (ada.pk, "rebalance_executed", f"rebalance:{run.pk}:{p1.pk}"),
            (bob.pk, "rebalance_executed", f"rebalance:{run.pk}:{p2.pk}"),
            (bob.pk, "cash_flow_processed", f"cash_flow:{flow.pk}"),
        }
        bobs = Notification.objects.get(recipient=bob, event_type="rebalance_executed")
        assert "Your deposit of $1,000.00 was invested" in bobs.body
        adas = Notification.objects.get(recipient=ada, event_type="rebalance_executed")
        assert "had drifted" in adas.body
        assert "Sold:" in adas.body
        assert not Notification.objects.filter(recipient=other_advisor).exists()
    to = sorted(m.to[0] for m in mail.outbox)
    assert to == ["ada@x.test", "bob@x.test", "bob@x.test"]
    assert all(m.subject.startswith("[Firm alpha] ") for m in mail.outbox)
    with firm_context(firm_b.firm), transaction.atomic():
        assert Notification.objects.count() == 0
        assert Delivery.objects.count() == 0


# --------------------------------------------------------------------------- exactly once


def test_a_delivery_task_run_twice_sends_once(firm_a: Any, no_auto_send: None) -> None:
    user = firm_a.users["investor"]
    with firm_context(firm_a.firm):
        notifications_emit(items=[_item("e1", user)])
        notifications_emit(items=[_item("e1", user)])  # a retried hook writes nothing
        assert Delivery.objects.count() == 1
        first = deliveries_send()
        second = deliveries_send()
        assert (first.sent, second.sent, second.claimed) == (1, 0, 0)
    assert len(mail.outbox) == 1


def test_a_crash_between_send_and_record_does_not_send_again(
    firm_a: Any, no_auto_send: None, monkeypatch: Any
) -> None:
    user = firm_a.users["investor"]
    with firm_context(firm_a.firm):
        notifications_emit(items=[_item("e2", user)])

        def crash(*args: Any, **kwargs: Any) -> None:
            raise SystemExit("worker killed after sending")

        monkeypatch.setattr(delivery_mod, "_record_sent", crash)
        with pytest.raises(SystemExit):
            deliveries_send()
        monkeypatch.undo()
        assert len(mail.outbox) == 1
        d = Delivery.objects.get()
        assert d.status == DeliveryStatus.SENDING
        assert d.claim_token
        # The task is re-delivered: the claim is held, nothing is sent again.
        assert deliveries_send().claimed == 0
        assert len(mail.outbox) == 1
        # Much later the claim is stale: it is resent with the same idempotency key.
        later = timezone.now() + dt.timedelta(hours=1)
        assert deliveries_recover_stale(now=later) == 1
        assert deliveries_send(now=later).sent == 1
        assert deliveries_send(now=later).claimed == 0
    ids = {m.extra_headers["Message-ID"] for m in mail.outbox}
    assert len(mail.outbox) == 2
    assert len(ids) == 1


# --------------------------------------------------------------------------- digest


def test_a_digest_collects_the_days_events_into_one_message(
    firm_a: Any, no_auto_send: None
) -> None:
    user = firm_a.users["investor"]
    with firm_context(firm_a.firm):
        notification_preference_set(
            user=user, event_type="strategy_assigned", channels=["in_app", "email"], mode="digest"
        )
        notifications_emit(items=[_item("d1", user), _item("d2", user)])
        assert deliveries_send().claimed == 0  # held for the digest
        assert Notification.objects.filter(recipient=user, in_inbox=True).count() == 2
        digests_build()
        digests_build()  # idempotent
        assert deliveries_send().sent == 1
        assert set(Delivery.objects.values_list("status", flat=True)) == {"digested", "sent"}
    assert len(mail.outbox) == 1
    assert "S d1" in mail.outbox[0].body
    assert "S d2" in mail.outbox[0].body
    assert "2 notification(s)" in mail.outbox[0].subject


# --------------------------------------------------------------------------- webhooks


class _Receiver:
    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://localhost:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver(200)
    yield r
    r.close()


def test_webhook_events_are_signed_and_verify(
    firm_a: Any, no_auto_send: None, receiver: _Receiver
) -> None:
    with firm_context(firm_a.firm):
        endpoint = webhook_endpoint_create(actor=firm_a.users["firm_admin"], url=receiver.url)
        notifications_emit(items=[_item("w1", firm_a.users["investor"])])
        assert deliveries_send().sent == 2  # the email and the webhook
    [(headers, body)] = receiver.requests
    assert json.loads(body)["type"] == "strategy_assigned"
    assert webhook_verify(secret=endpoint.secret, header=headers[SIGNATURE_HEADER], body=body)
    assert not webhook_verify(secret="wrong", header=headers[SIGNATURE_HEADER], body=body)
    assert not webhook_verify(
        secret=endpoint.secret, header=headers[SIGNATURE_HEADER], body=body + b" "
    )
    assert headers["X-Advisor-Delivery"].endswith(f":w1:endpoint:{endpoint.pk}:webhook")


def test_a_failing_receiver_is_retried_with_backoff_then_marked_failed(
    firm_a: Any, no_auto_send: None
) -> None:
    failing = _Receiver(500)
    try:
        with firm_context(firm_a.firm):
            webhook_endpoint_create(actor=None, url=failing.url, event_types=["orders_blocked"])
            notifications_emit(items=[_item("w2", firm_a.users["advisor"], "orders_blocked")])
            Delivery.objects.filter(channel="email").delete()
            now = timezone.now()
            gaps = []
            for _ in range(MAX_ATTEMPTS):
                report = deliveries_send(now=now)
                assert report.claimed == 1
                d = Delivery.objects.get()
                gaps.append((d.next_attempt_at - now).total_seconds())
                assert deliveries_send(now=now).claimed == 0  # not due yet
                now = d.next_attempt_at
            d = Delivery.objects.get()
            assert d.status == DeliveryStatus.FAILED
            assert d.attempts == MAX_ATTEMPTS
            assert "HTTP" in d.last_error or "500" in d.last_error
            assert AuditEvent.objects.filter(action="notification.delivery_failed").count() == 1
        assert len(failing.requests) == MAX_ATTEMPTS
        assert gaps[1] == 2 * gaps[0]
        assert gaps[2] == 2 * gaps[1]
    finally:
        failing.close()


# --------------------------------------------------------------------------- bad input


def test_bad_webhook_urls_and_emails_are_refused_naming_the_field(firm_a: Any) -> None:
    with firm_context(firm_a.firm):
        for url in ["not a url", "http://example.com/h", "https://u:p@example.com/h"]:
            with pytest.raises(ValidationError) as err:
                webhook_endpoint_create(actor=None, url=url)
            assert "url" in err.value.message_dict
        with pytest.raises(ValidationError) as err:
            user_email_set(user=firm_a.users["investor"], email="nobody@")
        assert "email" in err.value.message_dict
        with pytest.raises(ValidationError) as err:
            notification_preference_set(
                user=firm_a.users["investor"], event_type="rebalance_executed", channels=[]
            )
        assert "channels" in err.value.message_dict


def test_a_broken_firm_template_fails_loudly_in_tests_and_falls_back_at_run_time(
    firm_a: Any, no_auto_send: None, settings: Any
) -> None:
    firm = firm_a.firm
    with firm_context(firm):
        with pytest.raises(ValidationError) as err:
            firm_email_templates_set(firm=firm, actor=None, text="{% if %}", html="")
        assert "text" in err.value.message_dict
        firm_email_templates_set(
            firm=firm, actor=None, text='{{ firm.name }} {% include "missing.txt" %}', html=""
        )
        notifications_emit(items=[_item("t1", firm_a.users["investor"])])
        with pytest.raises(TemplateFailed):
            deliveries_send()
        Delivery.objects.update(status="pending", claim_token="")
        settings.NOTIFICATIONS_STRICT_TEMPLATES = False
        assert deliveries_send().sent == 1
        d = Delivery.objects.get()
        assert "template failed" in d.note
        assert AuditEvent.objects.filter(action="notification.template_fallback").exists()
    assert "Firm alpha" in mail.outbox[0].body  # the default template


def test_a_broken_audit_chain_tells_compliance_officers(firm_a: Any, no_auto_send: None) -> None:
    on_chain_broken(firm_a.firm.pk, SimpleNamespace(problem="hash mismatch", broken_seq=7))
    with firm_context(firm_a.firm), transaction.atomic():
        rows = list(Notification.objects.values_list("recipient_id", "event_type", "regulatory"))
    assert rows == [(firm_a.users["compliance"].pk, "audit_chain_broken", True)]


# --------------------------------------------------------------------------- HTML email


def _html(message: Any) -> str:
    """The HTML alternative of a sent message."""
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return str(content)


def test_the_html_alternative_carries_the_firms_name_and_the_escaped_message(
    firm_a: Any, no_auto_send: None
) -> None:
    user = firm_a.users["investor"]
    with firm_context(firm_a.firm):
        notifications_emit(
            items=[
                Outgoing(
                    event_type="strategy_assigned",
                    event_key="h1",
                    recipient_id=user.pk,
                    subject="Your investment strategy",
                    body="Your portfolio now follows <Growth & Income>.",
                    link="/notifications/",
                )
            ]
        )
        assert deliveries_send().sent == 1
    [message] = mail.outbox
    html = _html(message)
    assert "<h2>Firm alpha</h2>" in html
    assert "&lt;Growth &amp; Income&gt;" in html  # the body is escaped, not markup
    assert "<Growth & Income>" in str(message.body)  # the text part is plain
    assert '/notifications/">Read it in the app</a>' in html
    assert message.to == [user.email]


def test_a_firms_html_branding_is_used_and_a_broken_one_falls_back_recorded(
    firm_a: Any, no_auto_send: None, settings: Any
) -> None:
    firm = firm_a.firm
    user = firm_a.users["investor"]
    with firm_context(firm):
        firm_email_templates_set(
            firm=firm,
            actor=None,
            text="",
            html="<p class='brand'>{{ firm.name }} private office</p>{{ body }}",
        )
        notifications_emit(items=[_item("b1", user)])
        assert deliveries_send().sent == 1
        assert "<p class='brand'>Firm alpha private office</p>" in _html(mail.outbox[0])
        # Compiles, fails when rendered: refused loudly under the strict (test) setting.
        firm_email_templates_set(
            firm=firm, actor=None, text="", html='{% include "no/such/branding.html" %}'
        )
        notifications_emit(items=[_item("b2", user)])
        with pytest.raises(TemplateFailed, match="firm alpha: email template failed"):
            deliveries_send()
        # At run time (not strict): the default template, and the fallback recorded.
        Delivery.objects.filter(event_key="b2").update(status="pending", claim_token="")
        settings.NOTIFICATIONS_STRICT_TEMPLATES = False
        assert deliveries_send().sent == 1
        d = Delivery.objects.get(event_key="b2")
        assert "template failed (TemplateDoesNotExist" in d.note
        event = AuditEvent.objects.get(action="notification.template_fallback")
        assert event.object_id == str(d.pk)
        assert "TemplateDoesNotExist" in event.payload["note"]
    fallback = _html(mail.outbox[-1])
    assert "<h2>Firm alpha</h2>" in fallback  # the default template, the firm's name
    assert "private office" not in fallback
