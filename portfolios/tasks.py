"""Celery tasks of the portfolios app: take ids, set the firm, call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from accounts.models import Firm
from accounts.tenancy.tasks import firm_task
from portfolios.services_strategy import strategy_versions_recompute


@shared_task(name="portfolios.strategy_versions_recompute")
@firm_task
def strategy_versions_recompute_task(*, firm_id: int) -> dict[str, Any]:
    """Recompute the firm's active strategies on the latest usable prices (schedule)."""
    return strategy_versions_recompute()


@shared_task(name="portfolios.strategy_versions_recompute_all_firms")
def strategy_versions_recompute_all_firms() -> int:
    """The periodic entry point (django-celery-beat): one task per active firm."""
    firm_ids = list(Firm.objects.filter(is_active=True).values_list("pk", flat=True))
    for firm_id in firm_ids:
        strategy_versions_recompute_task.delay(firm_id=firm_id)
    return len(firm_ids)
