"""Scheduled rebalancing: calendar runs when a period turns, and the daily drift scan.

Both run per firm (a Celery beat entry fans out one task per firm). The drift scan
reads the book chunk by chunk through the same loader as a run, but only what drift
needs (holdings as arrays, cash, flows, targets; no lots, ledger or recorded state),
computes the engine's first step (``engine.drift_triggers``), writes nothing, and
starts a threshold run only for the portfolios outside their bands.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.tenancy.context import require_firm
from portfolios.bulk import map_on_connections
from portfolios.chunking import chunked, collector_paused
from portfolios.engine import rebalance as engine
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.models_rebalance import (
    Calendar,
    RebalancePolicy,
    RebalanceRun,
    RunTrigger,
    TriggerMode,
)
from portfolios.services_book import rebalance_policy_default_get
from portfolios.services_rebalance import (
    CHUNK_SIZE,
    ChunkState,
    RebalanceError,
    chunk_state_load,
    engine_policy,
    portfolio_scope_ids,
    rebalance_run_start,
    run_inputs_snapshot,
)

THRESHOLD_TRIGGERS = {int(engine.Trigger.BAND), int(engine.Trigger.CASH_FLOOR)}
# The scan holds only holdings and drift per chunk (no lots, no orders), so its chunks
# can be larger than a run's: fewer round trips for the same rows.
SCAN_CHUNK_SIZE = 5 * CHUNK_SIZE


def period_start(calendar: str, today: dt.date) -> dt.date:
    """The first day of the calendar period ``today`` is in."""
    if calendar == Calendar.MONTHLY:
        return today.replace(day=1)
    if calendar == Calendar.QUARTERLY:
        return today.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
    if calendar == Calendar.YEARLY:
        return today.replace(month=1, day=1)
    raise ValueError(f"calendar: unknown {calendar!r}")


def _effective_policies() -> tuple[dict[int, RebalancePolicy], list[tuple[int, int, Any]]]:
    firm = require_firm()
    default = rebalance_policy_default_get(firm=firm)
    policies = {p.pk: p for p in RebalancePolicy.objects.all()}
    rows = Portfolio.objects.filter(
        status=PortfolioStatus.OPEN, strategy__isnull=False
    ).values_list(
        "pk", "rebalance_policy_id", "strategy__rebalance_policy_id", "last_rebalanced_on"
    )
    out = []
    for pid, own, of_strategy, last in rows:
        policy = own or of_strategy or default.pk
        out.append((pid, policy if policy in policies else default.pk, last))
    return policies, out


def rebalance_calendar_due(*, today: dt.date | None = None) -> RebalanceRun | None:
    """Start a calendar run of the portfolios whose calendar period has turned since
    they were last rebalanced (never rebalanced counts as due). None when none is due."""
    today = today or timezone.localdate()
    policies, rows = _effective_policies()
    due = []
    for pid, policy_id, last in rows:
        policy = policies[policy_id]
        if policy.trigger_mode == TriggerMode.THRESHOLD:
            continue
        if last is None or last < period_start(policy.calendar, today):
            due.append(pid)
    if not due:
        return None
    return rebalance_run_start(
        trigger=RunTrigger.CALENDAR, actor_label="calendar schedule", portfolio_ids=due, force=True
    )


def drift_scan(
    *, as_of: dt.date | None = None, chunk_size: int = SCAN_CHUNK_SIZE, threads: int | None = None
) -> list[int]:
    """The ids of portfolios under a threshold policy that are outside their bands (or
    below their cash floor) today. Reads only, chunk by chunk, each chunk in its own
    transaction; ``threads`` chunks at a time on connections of their own (default
    ``settings.REBALANCE_SCAN_THREADS``; one by one inside a caller's transaction)."""
    firm = require_firm()
    as_of = as_of or timezone.localdate()
    if chunk_size < 1:
        raise RebalanceError("chunk_size", "must be at least 1")
    with transaction.atomic():
        # Every open portfolio following a strategy; those under calendar-only policies
        # are dropped per chunk, where their effective policy is known anyway.
        ids = portfolio_scope_ids(portfolio_ids=None, household_ids=None)
        if not ids:
            return []
        probe = RebalanceRun(
            firm=firm,
            trigger=RunTrigger.DRIFT_SCAN,
            prices_as_of=as_of,
            started_at=timezone.now(),
            policy_snapshot=run_inputs_snapshot(portfolio_ids=ids, as_of=as_of, firm_id=firm.pk),
        )
    probe.policy_snapshot["force"] = False
    policies = probe.policy_snapshot["policies"]

    def outside(chunk: list[int]) -> list[int]:
        with collector_paused(), transaction.atomic():
            state = chunk_state_load(run=probe, portfolio_ids=chunk, drift_only=True)
        return _outside_bands(state, policies)

    found = map_on_connections(
        outside,
        chunked(ids, chunk_size),
        threads=settings.REBALANCE_SCAN_THREADS if threads is None else threads,
    )
    return sorted(pid for chunk in found for pid in chunk)


def _outside_bands(state: ChunkState, policies: dict[str, Any]) -> list[int]:
    """The chunk's portfolios whose trigger is a band crossed or the cash floor (those
    under a calendar-only policy are never threshold-triggered)."""
    prices = np.array([float(p) for p in state.prices])
    cash = np.array([float(c) for c in state.cash])
    flow = np.array([float(f) for f in state.cash_flow])
    out: list[int] = []
    for policy_id in np.unique(state.policy_ids).tolist():
        snapshot = policies[str(policy_id)]
        if snapshot["trigger_mode"] == TriggerMode.CALENDAR:
            continue
        rows = np.flatnonzero(state.policy_ids == policy_id)
        drift = engine.drift_triggers(
            prices=prices,
            holdings=state.holdings[rows],
            cash=cash[rows],
            cash_flow=flow[rows],
            target_index=state.target_index[rows],
            targets=state.targets,
            policy=engine_policy(snapshot),
        )
        hit = np.isin(drift.trigger, list(THRESHOLD_TRIGGERS))
        out.extend(state.portfolio_ids[rows[hit]].tolist())
    return out


def rebalance_drift_scan_run(
    *,
    as_of: dt.date | None = None,
    actor_label: str = "daily drift scan",
    preview: bool = False,
    chunk_size: int = CHUNK_SIZE,
    dispatch: bool = True,
) -> RebalanceRun | None:
    """The daily drift scan: a threshold run of only the portfolios outside their bands
    (``preview``, ``chunk_size`` and ``dispatch`` as for :func:`rebalance_run_start`)."""
    outside = drift_scan(as_of=as_of)
    if not outside:
        return None
    return rebalance_run_start(
        trigger=RunTrigger.DRIFT_SCAN,
        actor_label=actor_label,
        portfolio_ids=outside,
        as_of=as_of,
        force=False,
        preview=preview,
        chunk_size=chunk_size,
        dispatch=dispatch,
    )


def rebalance_cash_flow_start(*, portfolio_id: int) -> RebalanceRun | None:
    """A deposit or withdrawal starts a cash-flow rebalance of its portfolio (when it
    follows a strategy; otherwise the flow waits for the next run)."""
    if not Portfolio.objects.filter(
        pk=portfolio_id, status=PortfolioStatus.OPEN, strategy__isnull=False
    ).exists():
        return None
    return rebalance_run_start(
        trigger=RunTrigger.CASH_FLOW, actor_label="cash flow", portfolio_ids=[portfolio_id]
    )
