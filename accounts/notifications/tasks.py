"""Celery tasks of notifications: take ids, set the firm, call a service.

Beat: ``accounts.notifications_send_due_all_firms`` every minute (retries after their
backoff and stale claims), ``accounts.notifications_daily_all_firms`` once a day
(digests, profiles expiring soon).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from accounts.models import Firm
from accounts.notifications.delivery import deliveries_recover_stale, deliveries_send
from accounts.notifications.digest import digests_build
from accounts.notifications.hooks import risk_profiles_notify_expiring
from accounts.tenancy import context
from accounts.tenancy.tasks import firm_task
from advisor.celery import app


def _as_firm(firm_id: int) -> Any:
    """Run a block as ``firm_id`` *without* an enclosing transaction (sending commits
    its claim before it sends); restores the previous context afterwards."""

    class _Scope:
        def __enter__(self) -> None:
            self.previous = (context.current_firm(), context.current_user_id())
            context.clear()
            context.set_current_firm(Firm.objects.get(pk=firm_id))

        def __exit__(self, *exc: object) -> None:
            context.set_current_firm(self.previous[0])
            context.set_current_user_id(self.previous[1])

    return _Scope()


@app.task(name="accounts.notifications_send", acks_late=True)
def notifications_send(*, firm_id: int, delivery_ids: list[int]) -> dict[str, int]:
    """Send one chunk of deliveries (a chunk, never a task per message)."""
    with _as_firm(firm_id):
        report = deliveries_send(delivery_ids=delivery_ids, limit=len(delivery_ids))
    return {"sent": report.sent, "retrying": report.retrying, "failed": report.failed}


@app.task(name="accounts.notifications_send_due")
def notifications_send_due(*, firm_id: int) -> dict[str, int]:
    """Recover stale claims, then send what is due (retries after their backoff)."""
    with _as_firm(firm_id):
        recovered = deliveries_recover_stale()
        total = {"recovered": recovered, "sent": 0, "retrying": 0, "failed": 0}
        while True:
            report = deliveries_send(limit=getattr(settings, "NOTIFICATIONS_SEND_CHUNK", 500))
            total["sent"] += report.sent
            total["retrying"] += report.retrying
            total["failed"] += report.failed
            if report.claimed == 0:
                break
    return total


@app.task(name="accounts.notifications_send_due_all_firms")
def notifications_send_due_all_firms() -> int:
    firm_ids = list(Firm.objects.filter(is_active=True).values_list("pk", flat=True))
    for firm_id in firm_ids:
        notifications_send_due.delay(firm_id=firm_id)
    return len(firm_ids)


@app.task(name="accounts.notifications_daily")
@firm_task
def notifications_daily(*, firm_id: int, days: int = 30) -> dict[str, int]:
    """Profiles expiring within ``days`` days, then today's digests."""
    expiring = risk_profiles_notify_expiring(days=days)
    digest = digests_build()
    return {"expiring": expiring.notifications, "digests": digest.notifications}


@app.task(name="accounts.notifications_daily_all_firms")
def notifications_daily_all_firms() -> int:
    firm_ids = list(Firm.objects.filter(is_active=True).values_list("pk", flat=True))
    for firm_id in firm_ids:
        notifications_daily.delay(firm_id=firm_id)
    return len(firm_ids)
