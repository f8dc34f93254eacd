"""The daily digest: a user's held email deliveries of the day, in one message."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from accounts.models_notifications import Delivery, DeliveryStatus, Notification
from accounts.notifications.explain import digest_message
from accounts.notifications.services import EmitResult, Outgoing, notifications_emit


def digests_build(*, day: dt.date | None = None) -> EmitResult:
    """For each user of the current firm with held deliveries created up to the end of
    ``day``, write one digest notification (email only) and mark the held ones digested.

    Idempotent: the digest's key is per user and day, and held rows change status.
    """
    day = day or timezone.localdate()
    end = timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))
    with transaction.atomic():
        held = list(
            Delivery.objects.select_for_update()
            .filter(status=DeliveryStatus.HELD_FOR_DIGEST, created_at__lt=end)
            .values_list("pk", "notification_id")
        )
        if not held:
            return EmitResult()
        notes = {
            n.pk: n
            for n in Notification.objects.filter(pk__in=[nid for _, nid in held]).order_by(
                "created_at", "pk"
            )
        }
        by_user: dict[int, list[Notification]] = defaultdict(list)
        for _, nid in held:
            n = notes[nid]
            by_user[n.recipient_id].append(n)
        items = []
        for uid, group in by_user.items():
            group.sort(key=lambda n: (n.created_at, n.pk))
            subject, body = digest_message(day=day, items=[(n.subject, n.body) for n in group])
            items.append(
                Outgoing(
                    event_type="digest",
                    event_key=f"digest:{day.isoformat()}",
                    recipient_id=uid,
                    subject=subject,
                    body=body,
                    link="/notifications/",
                    data={"notifications": [n.pk for n in group]},
                )
            )
        result = notifications_emit(items=items)
        Delivery.objects.filter(pk__in=[pk for pk, _ in held]).update(
            status=DeliveryStatus.DIGESTED, sent_at=timezone.now()
        )
    return result
