"""Sending the outbox, exactly once per (event, target, channel).

A chunk of deliveries is sent in three steps, each its own short transaction:

1. *claim*: pending, due rows are locked (``SKIP LOCKED``), marked ``sending`` with a
   fresh claim token and their attempt counted; committed before anything is sent, so
   a second task (a retry, a re-delivered message, a second worker) finds nothing to do;
2. *send*: email through Django's backend, webhooks over HTTP, each carrying the
   delivery's idempotency key (``Message-ID`` and ``X-Idempotency-Key`` for email,
   ``X-Advisor-Delivery`` for webhooks);
3. *record*: ``sent`` (only if the claim token still matches), or back to ``pending``
   with an exponential backoff, or ``failed`` after :data:`MAX_ATTEMPTS`.

A crash between 2 and 3 leaves the row ``sending``: no task sends it again until its
claim is older than :data:`STALE_AFTER`; :func:`deliveries_recover_stale` then puts it
back with the same idempotency key, so a receiver that drops repeats of a key (as the
webhook documentation asks) sees it once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template import Context, Template
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Firm
from accounts.models_notifications import Channel, Delivery, DeliveryStatus
from accounts.tenancy.context import require_firm
from compliance.services.audit import audit_record

log = logging.getLogger("accounts.notifications")

MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 30  # 30 s, 60 s, 120 s, 240 s between attempts
STALE_AFTER = dt.timedelta(minutes=10)
SIGNATURE_HEADER = "X-Advisor-Signature"
WEBHOOK_TIMEOUT = 10


class TemplateFailed(RuntimeError):
    """A firm's own template failed (raised when ``NOTIFICATIONS_STRICT_TEMPLATES``)."""


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Advisor-Signature`` header: ``t=<unix time>,v1=<hex HMAC-SHA256>`` of
    ``"<t>." + body`` under the endpoint's secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhook_verify(
    *, secret: str, header: str, body: bytes, tolerance: int = 300, now: int | None = None
) -> bool:
    """What a receiver does: recompute the HMAC of ``"<t>." + body``, compare in constant
    time, and refuse a timestamp older than ``tolerance`` seconds (replays)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else int(time.time())) - timestamp) > tolerance:
        return False
    expected = webhook_signature(secret=secret, timestamp=timestamp, body=body).split("v1=")[1]
    return hmac.compare_digest(expected, given)


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- rendering


def _render(firm: Firm, context: dict[str, Any]) -> tuple[str, str, str]:
    """(text, html, note): the firm's own templates if it has them, else the default; a
    failing firm template raises in strict mode (tests) and falls back otherwise."""
    text = render_to_string("notifications/email.txt", context)
    html = render_to_string("notifications/email.html", context)
    custom = (firm.settings or {}).get("email_templates") or {}
    note = ""
    try:
        if custom.get("text"):
            text = Template(custom["text"]).render(Context(context))
        if custom.get("html"):
            html = Template(custom["html"]).render(Context(context))
    except Exception as exc:
        if getattr(settings, "NOTIFICATIONS_STRICT_TEMPLATES", False):
            raise TemplateFailed(f"firm {firm.slug}: email template failed: {exc}") from exc
        note = (
            f"The firm's email template failed ({type(exc).__name__}: {exc}); "
            "sent with the default."
        )
        text = render_to_string("notifications/email.txt", context)
        html = render_to_string("notifications/email.html", context)
    return text, html, note


def _email(delivery: Delivery, firm: Firm) -> tuple[EmailMultiAlternatives, str]:
    n = delivery.notification
    assert n is not None
    recipient = n.recipient
    link = n.link
    if link and not link.startswith("http"):
        link = getattr(settings, "SITE_URL", "").rstrip("/") + link
    context = {
        "firm": firm,
        "subject": n.subject,
        "body": n.body,
        "link": link,
        "recipient": recipient,
    }
    text, html, note = _render(firm, context)
    digest = hashlib.sha256(delivery.idempotency_key.encode()).hexdigest()[:32]
    message = EmailMultiAlternatives(
        subject=f"[{firm.name}] {n.subject}",
        body=text,
        to=[recipient.email],
        headers={
            "Message-ID": f"<{digest}@notifications.advisor>",
            "X-Idempotency-Key": delivery.idempotency_key,
        },
    )
    message.attach_alternative(html, "text/html")
    return message, note


def _post_webhook(delivery: Delivery) -> None:
    endpoint = delivery.endpoint
    assert endpoint is not None
    body = json.dumps(delivery.payload, sort_keys=True).encode()
    # The URL was validated at entry (http/https only).
    request = urllib.request.Request(  # noqa: S310
        endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "advisor-notifications/1",
            "X-Advisor-Event": str(delivery.payload.get("type", "")),
            "X-Advisor-Delivery": delivery.idempotency_key,
            SIGNATURE_HEADER: webhook_signature(
                secret=endpoint.secret, timestamp=int(time.time()), body=body
            ),
        },
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:  # noqa: S310
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status}")


# --------------------------------------------------------------------------- the steps


def _claim(ids: Sequence[int] | None, now: dt.datetime, limit: int) -> tuple[str, list[int]]:
    token = str(uuid.uuid4())
    with transaction.atomic():
        qs = Delivery.objects.select_for_update(skip_locked=True).filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        )
        if ids is not None:
            qs = qs.filter(pk__in=list(ids))
        claimed = list(qs.order_by("pk").values_list("pk", flat=True)[:limit])
        if claimed:
            from django.db.models import F

            Delivery.objects.filter(pk__in=claimed).update(
                status=DeliveryStatus.SENDING,
                claim_token=token,
                claimed_at=now,
                attempts=F("attempts") + 1,
            )
    return token, claimed


def _record_sent(delivery: Delivery, token: str, note: str) -> None:
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk, claim_token=token).update(
            status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error="", note=note
        )
        if note:
            audit_record(
                action="notification.template_fallback",
                actor_label="notifications",
                object_type="delivery",
                object_id=delivery.pk,
                payload={"note": note},
            )


def _record_failure(delivery: Delivery, token: str, error: str, now: dt.datetime) -> str:
    attempts = delivery.attempts
    with transaction.atomic():
        if attempts >= MAX_ATTEMPTS:
            Delivery.objects.filter(pk=delivery.pk, claim_token=token).update(
                status=DeliveryStatus.FAILED, last_error=error[:2000]
            )
            audit_record(
                action="notification.delivery_failed",
                actor_label="notifications",
                object_type="delivery",
                object_id=delivery.pk,
                payload={"channel": delivery.channel, "attempts": attempts, "error": error[:500]},
            )
            return DeliveryStatus.FAILED
        delay = dt.timedelta(seconds=BACKOFF_SECONDS * 2 ** (attempts - 1))
        Delivery.objects.filter(pk=delivery.pk, claim_token=token).update(
            status=DeliveryStatus.PENDING, last_error=error[:2000], next_attempt_at=now + delay
        )
    return DeliveryStatus.PENDING


def deliveries_send(
    *, delivery_ids: Sequence[int] | None = None, now: dt.datetime | None = None, limit: int = 500
) -> SendReport:
    """Send the current firm's due pending deliveries (``delivery_ids`` only, if given).

    Not inside a caller's transaction: each step commits on its own (see the module).
    """
    firm = require_firm()
    now = now or timezone.now()
    report = SendReport()
    token, claimed = _claim(delivery_ids, now, limit)
    report.claimed = len(claimed)
    if not claimed:
        return report
    with transaction.atomic():
        rows = list(
            Delivery.objects.filter(pk__in=claimed, claim_token=token)
            .select_related("notification__recipient", "endpoint")
            .order_by("pk")
        )
    connection = None
    for delivery in rows:
        note = ""
        try:
            if delivery.channel == Channel.EMAIL:
                message, note = _email(delivery, firm)
                if connection is None:
                    connection = get_connection()
                message.connection = connection
                message.send()
            elif delivery.channel == Channel.WEBHOOK:
                _post_webhook(delivery)
            else:
                raise RuntimeError(f"unknown channel {delivery.channel}")
        except TemplateFailed:
            raise
        except (OSError, urllib.error.URLError, RuntimeError, ValueError) as exc:
            outcome = _record_failure(delivery, token, f"{type(exc).__name__}: {exc}", now)
            if outcome == DeliveryStatus.FAILED:
                report.failed += 1
            else:
                report.retrying += 1
            continue
        _record_sent(delivery, token, note)
        if note:
            report.notes.append(note)
        report.sent += 1
    return report


def deliveries_recover_stale(*, now: dt.datetime | None = None) -> int:
    """Put back deliveries whose claim is older than :data:`STALE_AFTER` (a worker died
    between sending and recording); they are resent with the same idempotency key."""
    now = now or timezone.now()
    with transaction.atomic():
        return Delivery.objects.filter(
            status=DeliveryStatus.SENDING, claimed_at__lt=now - STALE_AFTER
        ).update(
            status=DeliveryStatus.PENDING,
            claim_token="",
            next_attempt_at=now,
            note="Claim expired (the sender stopped before recording); resent with the "
            "same idempotency key.",
        )
