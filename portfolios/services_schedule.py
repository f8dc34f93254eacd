"""Scheduled rebalancing: calendar runs when a period turns, and the daily drift scan.

Both run per firm (a Celery beat entry fans out one task per firm). The drift scan
reads the book chunk by chunk through the same loader and engine as a run, writes
nothing, and starts a threshold run only for the portfolios outside their bands.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from accounts.tenancy.context import require_firm
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
    _chunk_load,
    _run_engine,
    _run_inputs,
    rebalance_run_start,
)

THRESHOLD_TRIGGERS = {int(engine.Trigger.BAND), int(engine.Trigger.CASH_FLOOR)}


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


def drift_scan(*, as_of: dt.date | None = None) -> list[int]:
    """The ids of portfolios under a threshold policy that are outside their bands (or
    below their cash floor) today. Reads only."""
    firm = require_firm()
    as_of = as_of or timezone.localdate()
    policies, rows = _effective_policies()
    ids = sorted(
        pid
        for pid, policy_id, _ in rows
        if policies[policy_id].trigger_mode != TriggerMode.CALENDAR
    )
    if not ids:
        return []
    probe = RebalanceRun(
        firm=firm,
        trigger=RunTrigger.DRIFT_SCAN,
        prices_as_of=as_of,
        started_at=timezone.now(),
        policy_snapshot=_run_inputs(portfolio_ids=ids, as_of=as_of, firm_id=firm.pk),
    )
    probe.policy_snapshot["force"] = False
    out: list[int] = []
    for start in range(0, len(ids), CHUNK_SIZE):
        with transaction.atomic():
            state = _chunk_load(run=probe, portfolio_ids=ids[start : start + CHUNK_SIZE])
        for rows_idx, proposal, _, _ in _run_engine(state, probe).proposals:
            hit = np.isin(proposal.trigger, list(THRESHOLD_TRIGGERS))
            out.extend(int(state.portfolio_ids[i]) for i in rows_idx[hit])
    return sorted(out)


def rebalance_drift_scan_run(*, as_of: dt.date | None = None) -> RebalanceRun | None:
    """The daily drift scan: a threshold run of only the portfolios outside their bands."""
    outside = drift_scan(as_of=as_of)
    if not outside:
        return None
    return rebalance_run_start(
        trigger=RunTrigger.DRIFT_SCAN,
        actor_label="daily drift scan",
        portfolio_ids=outside,
        as_of=as_of,
        force=False,
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
