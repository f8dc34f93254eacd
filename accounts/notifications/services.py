"""Writing the outbox: notifications and their deliveries, in the caller's transaction.

Every event of the platform comes here as a list of :class:`Outgoing` items (one per
recipient). One call writes them all with staged COPY (``portfolios.bulk.staged_copy``),
``ON CONFLICT DO NOTHING`` on the unique (event, recipient[, channel]) keys, so a retried
hook writes nothing twice; the deliveries to send are queued to Celery in chunks once
the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.template import Template, TemplateSyntaxError
from django.utils import timezone

from accounts.models import Firm, User
from accounts.models_notifications import (
    Channel,
    DeliveryStatus,
    DigestMode,
    Notification,
    NotificationPreference,
    WebhookEndpoint,
)
from accounts.notifications.events import (
    DEFAULT_CHANNELS,
    EVENT_TYPES,
    PreferenceRefused,
    preference_check,
)
from accounts.tenancy.context import require_firm
from compliance.services.audit import audit_record
from portfolios.bulk import staged_copy

SEND_CHUNK = 500  # deliveries per Celery task

NOTIFICATION_COLUMNS = (
    "firm_id",
    "event_type",
    "event_key",
    "recipient_id",
    "subject",
    "body",
    "link",
    "data",
    "regulatory",
    "in_inbox",
    "created_at",
)
DELIVERY_COLUMNS = (
    "firm_id",
    "event_key",
    "target",
    "channel",
    "notification_id",
    "endpoint_id",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "claim_token",
    "last_error",
    "note",
    "created_at",
)


@dataclass(frozen=True)
class Outgoing:
    """One event for one user."""

    event_type: str
    event_key: str
    recipient_id: int
    subject: str
    body: str
    link: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class EmitResult:
    notifications: int = 0
    deliveries: int = 0
    queued: list[int] = field(default_factory=list)


def _preferences(user_ids: set[int], types: set[str]) -> dict[tuple[int, str], tuple[Any, str]]:
    rows = NotificationPreference.objects.filter(
        user_id__in=user_ids, event_type__in=types
    ).values_list("user_id", "event_type", "channels", "mode")
    return {(u, t): (c, m) for u, t, c, m in rows}


def notifications_emit(*, items: Sequence[Outgoing], now: dt.datetime | None = None) -> EmitResult:
    """Write ``items`` (and their email and webhook deliveries) to the outbox, in bulk.

    Must run inside the transaction of the change it reports; sending is queued for
    after the commit. Items already written (same event and recipient) are skipped.
    """
    firm = require_firm()
    result = EmitResult()
    if not items:
        return result
    for item in items:
        if item.event_type not in EVENT_TYPES:
            raise ValueError(f"event_type: unknown event type {item.event_type!r}")
    if not transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return notifications_emit(items=items, now=now)
    now = now or timezone.now()
    user_ids = {i.recipient_id for i in items}
    types = {i.event_type for i in items}
    prefs = _preferences(user_ids, types)
    emails = dict(User.objects.filter(pk__in=user_ids).exclude(email="").values_list("pk", "email"))

    def channels_of(item: Outgoing) -> tuple[list[str], str]:
        if EVENT_TYPES[item.event_type].internal:
            return [Channel.EMAIL], DigestMode.IMMEDIATE
        if EVENT_TYPES[item.event_type].regulatory:
            return list(DEFAULT_CHANNELS), DigestMode.IMMEDIATE
        chosen, mode = prefs.get((item.recipient_id, item.event_type), (DEFAULT_CHANNELS, "i"))
        return list(chosen), (DigestMode.DIGEST if mode == DigestMode.DIGEST else "immediate")

    plans = {(i.event_key, i.recipient_id): channels_of(i) for i in items}
    inserted = staged_copy(
        table="accounts_notification",
        columns=NOTIFICATION_COLUMNS,
        rows=(
            (
                firm.pk,
                i.event_type,
                i.event_key,
                i.recipient_id,
                i.subject[:200],
                i.body,
                i.link,
                json.dumps(i.data, default=str),
                EVENT_TYPES[i.event_type].regulatory,
                Channel.IN_APP in plans[(i.event_key, i.recipient_id)][0],
                now,
            )
            for i in items
        ),
        returning=("id", "event_key", "recipient_id"),
        on_conflict="ON CONFLICT (firm_id, event_key, recipient_id) DO NOTHING",
    )
    result.notifications = len(inserted)
    by_key = {(i.event_key, i.recipient_id): i for i in items}
    deliveries: list[tuple[Any, ...]] = []
    for nid, key, uid in inserted:
        chosen, mode = plans[(key, uid)]
        if Channel.EMAIL in chosen and uid in emails:
            status = (
                DeliveryStatus.HELD_FOR_DIGEST
                if mode == DigestMode.DIGEST
                else DeliveryStatus.PENDING
            )
            deliveries.append(
                (
                    firm.pk,
                    key,
                    f"user:{uid}",
                    Channel.EMAIL,
                    nid,
                    None,
                    "{}",
                    status,
                    0,
                    now,
                    "",
                    "",
                    "",
                    now,
                )
            )
    # Webhooks: one delivery per event and endpoint, whoever the recipients were.
    endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
    if endpoints:
        first_of_event: dict[str, Outgoing] = {}
        for _nid, key, uid in inserted:
            first_of_event.setdefault(key, by_key[(key, uid)])
        for key, item in first_of_event.items():
            payload = json.dumps(
                {
                    "id": key,
                    "type": item.event_type,
                    "firm": firm.slug,
                    "created_at": now.isoformat(),
                    "data": dict(item.data),
                },
                default=str,
            )
            for ep in endpoints:
                if ep.event_types and item.event_type not in ep.event_types:
                    continue
                deliveries.append(
                    (
                        firm.pk,
                        key,
                        f"endpoint:{ep.pk}",
                        Channel.WEBHOOK,
                        None,
                        ep.pk,
                        payload,
                        DeliveryStatus.PENDING,
                        0,
                        now,
                        "",
                        "",
                        "",
                        now,
                    )
                )
    if deliveries:
        rows = staged_copy(
            table="accounts_delivery",
            columns=DELIVERY_COLUMNS,
            rows=deliveries,
            returning=("id", "status"),
            on_conflict="ON CONFLICT (firm_id, event_key, target, channel) DO NOTHING",
        )
        result.deliveries = len(rows)
        result.queued = [pk for pk, status in rows if status == DeliveryStatus.PENDING]
    if result.queued:
        deliveries_queue(firm_id=firm.pk, delivery_ids=result.queued)
    return result


def deliveries_queue(*, firm_id: int, delivery_ids: Sequence[int]) -> None:
    """After the commit, send ``delivery_ids`` in chunks of :data:`SEND_CHUNK` per task."""
    ids = list(delivery_ids)

    def dispatch() -> None:
        from accounts.notifications.tasks import notifications_send

        for start in range(0, len(ids), SEND_CHUNK):
            notifications_send.delay(firm_id=firm_id, delivery_ids=ids[start : start + SEND_CHUNK])

    if getattr(settings, "NOTIFICATIONS_AUTO_SEND", True):
        transaction.on_commit(dispatch)


# --------------------------------------------------------------------------- inbox


def notification_mark_read(*, notification: Notification, actor: User) -> Notification:
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    return notification


def notification_archive(*, notification: Notification, actor: User) -> Notification:
    now = timezone.now()
    notification.archived_at = now
    notification.read_at = notification.read_at or now
    notification.save(update_fields=["archived_at", "read_at"])
    return notification


def notifications_mark_all_read(*, user: User) -> int:
    return Notification.objects.filter(
        recipient=user, read_at__isnull=True, archived_at__isnull=True
    ).update(read_at=timezone.now())


# --------------------------------------------------------------------------- preferences


def notification_preference_set(
    *, user: User, event_type: str, channels: Sequence[str], mode: str = "immediate"
) -> NotificationPreference:
    """Set ``user``'s choice for one event type; refuses to switch off a regulatory one."""
    try:
        preference_check(event_type, list(channels), mode)
    except PreferenceRefused as exc:
        raise ValidationError({exc.field: [exc.message]}) from exc
    with transaction.atomic():
        pref, _ = NotificationPreference.objects.update_or_create(
            user=user,
            event_type=event_type,
            defaults={"channels": list(dict.fromkeys(channels)), "mode": mode},
            create_defaults={
                "firm_id": require_firm().pk,
                "channels": list(dict.fromkeys(channels)),
                "mode": mode,
            },
        )
        audit_record(
            action="notification.preference_set",
            actor=user,
            object_type="notification_preference",
            object_id=pref.pk,
            payload={"event_type": event_type, "channels": list(channels), "mode": mode},
        )
    return pref


def notification_preferences_get(*, user: User) -> list[dict[str, Any]]:
    """Every event type with the user's choice (or the default) and whether it is fixed."""
    chosen = {
        p.event_type: p for p in NotificationPreference.objects.filter(user=user).order_by("pk")
    }
    out = []
    for code, spec in EVENT_TYPES.items():
        if spec.internal:
            continue
        p = chosen.get(code)
        out.append(
            {
                "event_type": code,
                "label": spec.label,
                "audience": spec.audience,
                "regulatory": spec.regulatory,
                "channels": list(p.channels) if p else list(DEFAULT_CHANNELS),
                "mode": p.mode if p else DigestMode.IMMEDIATE,
            }
        )
    return out


def user_email_set(*, user: User, email: str) -> User:
    """Change a user's notification address; an invalid one is refused naming ``email``."""
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ValidationError({"email": ["Enter a valid email address."]}) from exc
    user.email = email
    user.save(update_fields=["email"])
    return user


# --------------------------------------------------------------------------- webhooks


def webhook_url_validate(url: str) -> str:
    """https only (http to localhost when ``NOTIFICATIONS_WEBHOOK_ALLOW_LOCALHOST``), no
    credentials in the URL. Raises ``ValidationError({"url": ...})``."""
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise ValidationError({"url": ["Enter a valid URL."]}) from exc
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValidationError({"url": ["The URL must not carry credentials (user:password@)."]})
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (
        local and getattr(settings, "NOTIFICATIONS_WEBHOOK_ALLOW_LOCALHOST", False)
    ):
        raise ValidationError({"url": ["The URL must use https."]})
    return url


def webhook_endpoint_create(
    *,
    actor: User | None,
    url: str,
    event_types: Sequence[str] = (),
    description: str = "",
) -> WebhookEndpoint:
    webhook_url_validate(url)
    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if unknown:
        raise ValidationError({"event_types": [f"Unknown event type(s): {', '.join(unknown)}."]})
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            url=url,
            secret=secrets.token_hex(32),
            event_types=list(event_types),
            description=description,
            created_by=actor,
        )
        audit_record(
            action="webhook_endpoint.created",
            actor=actor,
            object_type="webhook_endpoint",
            object_id=endpoint.pk,
            payload={"url": url, "event_types": list(event_types)},
        )
    return endpoint


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, actor: User | None, **fields: Any
) -> WebhookEndpoint:
    allowed = {"url", "event_types", "is_active", "description"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError({k: ["Unknown field."] for k in sorted(unknown)})
    if "url" in fields:
        webhook_url_validate(fields["url"])
    if "event_types" in fields:
        bad = [t for t in fields["event_types"] if t not in EVENT_TYPES]
        if bad:
            raise ValidationError({"event_types": [f"Unknown event type(s): {', '.join(bad)}."]})
    with transaction.atomic():
        changes = {}
        for name, value in fields.items():
            old = getattr(endpoint, name)
            if old != value:
                changes[name] = [old, value]
                setattr(endpoint, name, value)
        if changes:
            endpoint.save(update_fields=list(changes))
            audit_record(
                action="webhook_endpoint.updated",
                actor=actor,
                object_type="webhook_endpoint",
                object_id=endpoint.pk,
                payload={"changes": changes},
            )
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: User | None) -> None:
    with transaction.atomic():
        pk = endpoint.pk
        endpoint.is_active = False
        endpoint.save(update_fields=["is_active"])
        audit_record(
            action="webhook_endpoint.deactivated",
            actor=actor,
            object_type="webhook_endpoint",
            object_id=pk,
            payload={"url": endpoint.url},
        )


# --------------------------------------------------------------------------- branding


def firm_email_templates_set(*, firm: Firm, actor: User | None, text: str, html: str) -> Firm:
    """A firm's own email templates (Django template language; context: firm, subject,
    body, link, recipient). A template that does not compile is refused naming its field."""
    errors: dict[str, list[str]] = defaultdict(list)
    for name, source in (("text", text), ("html", html)):
        if source:
            try:
                Template(source)
            except TemplateSyntaxError as exc:
                errors[name].append(f"Template error: {exc}")
    if errors:
        raise ValidationError(dict(errors))
    with transaction.atomic():
        settings_ = dict(firm.settings)
        settings_["email_templates"] = {"text": text, "html": html}
        Firm.objects.filter(pk=firm.pk).update(settings=settings_)
        firm.settings = settings_
        audit_record(
            action="firm.email_templates_set",
            actor=actor,
            object_type="firm",
            object_id=firm.pk,
            payload={"text": bool(text), "html": bool(html)},
        )
    return firm
