"""Celery tasks of the portfolios app: take ids, set the firm, call a service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from accounts.models import Firm
from accounts.tenancy.tasks import firm_task
from portfolios.services_execution import rebalance_execute_chunk
from portfolios.services_rebalance import rebalance_chunk_compute, rebalance_run_fail
from portfolios.services_schedule import (
    rebalance_calendar_due,
    rebalance_cash_flow_start,
    rebalance_drift_scan_run,
)
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


# --------------------------------------------------------------------------- rebalancing

log = logging.getLogger("portfolios.rebalance")


@firm_task
def _chunk_compute(*, firm_id: int, run_id: int, portfolio_ids: list[int]) -> dict[str, Any]:
    return rebalance_chunk_compute(run_id=run_id, portfolio_ids=portfolio_ids)


@firm_task
def _chunk_execute(*, firm_id: int, run_id: int, portfolio_ids: list[int]) -> dict[str, Any]:
    return rebalance_execute_chunk(run_id=run_id, portfolio_ids=portfolio_ids)


@firm_task
def _run_fail(*, firm_id: int, run_id: int, error: str) -> None:
    rebalance_run_fail(run_id=run_id, error=error)


def _retry_or_fail(task: Any, exc: Exception, *, firm_id: int, run_id: int) -> None:
    """Retry with backoff on a worker; after the last retry (or run eagerly) the run
    is marked failed with the error, so nothing half-computed is ever approved."""
    if not task.request.is_eager and task.request.retries < task.max_retries:
        raise task.retry(exc=exc, countdown=2**task.request.retries)
    log.exception("rebalance run %s failed", run_id)
    _run_fail(firm_id=firm_id, run_id=run_id, error=f"{type(exc).__name__}: {exc}")


@shared_task(
    name="portfolios.rebalance_chunk",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=3,
)
def rebalance_chunk_task(
    self: Any, *, firm_id: int, run_id: int, portfolio_ids: list[int]
) -> dict[str, Any] | None:
    """Compute one chunk of a run (idempotent: a re-delivered chunk does nothing)."""
    try:
        return _chunk_compute(firm_id=firm_id, run_id=run_id, portfolio_ids=portfolio_ids)
    except Exception as exc:
        _retry_or_fail(self, exc, firm_id=firm_id, run_id=run_id)
        return None


@shared_task(
    name="portfolios.rebalance_execute_chunk",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=3,
)
def rebalance_execute_chunk_task(
    self: Any, *, firm_id: int, run_id: int, portfolio_ids: list[int]
) -> dict[str, Any] | None:
    """Execute one chunk of approved proposals (idempotent: executed ones are skipped)."""
    try:
        return _chunk_execute(firm_id=firm_id, run_id=run_id, portfolio_ids=portfolio_ids)
    except Exception as exc:
        _retry_or_fail(self, exc, firm_id=firm_id, run_id=run_id)
        return None


def dispatch_chunks(firm_id: int, run_id: int, chunks: list[list[int]]) -> None:
    for chunk in chunks:
        rebalance_chunk_task.delay(firm_id=firm_id, run_id=run_id, portfolio_ids=chunk)


def dispatch_execution(firm_id: int, run_id: int, chunks: list[list[int]]) -> None:
    for chunk in chunks:
        rebalance_execute_chunk_task.delay(firm_id=firm_id, run_id=run_id, portfolio_ids=chunk)


@shared_task(name="portfolios.rebalance_calendar")
@firm_task
def rebalance_calendar_task(*, firm_id: int) -> int | None:
    """Start the firm's calendar run, if a period has turned for any portfolio."""
    run = rebalance_calendar_due()
    return run.pk if run else None


@shared_task(name="portfolios.rebalance_drift_scan")
@firm_task
def rebalance_drift_scan_task(*, firm_id: int) -> int | None:
    """The daily drift scan: a threshold run of only the portfolios outside their bands."""
    run = rebalance_drift_scan_run()
    return run.pk if run else None


@shared_task(name="portfolios.rebalance_cash_flow")
@firm_task
def rebalance_cash_flow_task(*, firm_id: int, portfolio_id: int) -> int | None:
    """A deposit or withdrawal was requested: rebalance that portfolio."""
    run = rebalance_cash_flow_start(portfolio_id=portfolio_id)
    return run.pk if run else None


@shared_task(name="portfolios.rebalance_scheduled_all_firms")
def rebalance_scheduled_all_firms() -> int:
    """The daily beat entry: per active firm, the calendar run then the drift scan."""
    firm_ids = list(Firm.objects.filter(is_active=True).values_list("pk", flat=True))
    for firm_id in firm_ids:
        rebalance_calendar_task.delay(firm_id=firm_id)
        rebalance_drift_scan_task.delay(firm_id=firm_id)
    return len(firm_ids)


def on_cash_flow(firm_id: int, portfolio_id: int) -> None:
    rebalance_cash_flow_task.delay(firm_id=firm_id, portfolio_id=portfolio_id)
