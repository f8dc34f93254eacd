"""Exception reports: what compliance stopped, held or skipped in a period, and how the
held ones were resolved.

A period is a month or a custom range of whole days (site time zone, both ends
included); rebalancing rows belong to the period of their run's creation. Lists are
materialised up to ``limit`` rows each (the CSV export asks for all of them); the
counts always cover the whole period.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import Client, Firm
from accounts.tenancy.context import TenancyError, current_firm_id
from compliance.models import AuditEvent, ComplianceOverride
from compliance.selectors_audit import AuditSearchError
from portfolios.models import Portfolio
from portfolios.models_market import Asset
from portfolios.models_rebalance import Order, OrderStatus, RunPortfolio, RunPortfolioStatus

#: Audit actions that change a firm's compliance rules (compliance/services/rule_management.py).
RULE_CHANGE_ACTION_PREFIX = "compliance.rule_"

SOFT, HARD = 1, 2
RELEASED_STATUSES = frozenset(
    {
        RunPortfolioStatus.APPROVED,
        RunPortfolioStatus.EXECUTED,
        RunPortfolioStatus.PROPOSED,
        RunPortfolioStatus.AWAITING_CLIENT,
    }
)


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # included
    label: str

    @property
    def start_at(self) -> dt.datetime:
        return timezone.make_aware(dt.datetime.combine(self.start, dt.time.min))

    @property
    def end_before(self) -> dt.datetime:
        return timezone.make_aware(
            dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min)
        )

    def as_params(self) -> dict[str, str]:
        return {"date_from": self.start.isoformat(), "date_to": self.end.isoformat()}


def period_parse(params: Mapping[str, Any], *, today: dt.date | None = None) -> Period:
    """``month=YYYY-MM``, or ``date_from``/``date_to`` (YYYY-MM-DD); the current month
    when none is given. Raises :class:`AuditSearchError` naming the field at fault."""
    month = str(params.get("month") or "").strip()
    raw_from = str(params.get("date_from") or "").strip()
    raw_to = str(params.get("date_to") or "").strip()
    if month and (raw_from or raw_to):
        raise AuditSearchError("month", "give a month or a date range, not both")
    if raw_from or raw_to:
        days: dict[str, dt.date] = {}
        for name, raw in (("date_from", raw_from), ("date_to", raw_to)):
            if not raw:
                raise AuditSearchError(name, "a custom range needs both date_from and date_to")
            try:
                days[name] = dt.date.fromisoformat(raw)
            except ValueError:
                raise AuditSearchError(
                    name, f"must be a date as YYYY-MM-DD, not {raw[:40]!r}"
                ) from None
        start, end = days["date_from"], days["date_to"]
        if end < start:
            raise AuditSearchError(
                "date_to", f"{end.isoformat()} is before date_from {start.isoformat()}"
            )
        if (end - start).days > 366 * 5:
            raise AuditSearchError("date_to", "a report covers at most five years")
        return Period(start, end, f"{start:%-d %b %Y} to {end:%-d %b %Y}")
    if month:
        try:
            first = dt.date.fromisoformat(month + "-01")
        except ValueError:
            raise AuditSearchError(
                "month", f"must be a month as YYYY-MM, not {month[:40]!r}"
            ) from None
    else:
        first = (today or timezone.localdate()).replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return Period(first, following - dt.timedelta(days=1), f"{first:%B %Y}")


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockedOrderRow:
    order_id: int
    run_id: int
    run_created_at: dt.datetime
    portfolio_id: int
    portfolio_number: str
    client: str
    symbol: str
    side: str
    quantity: Decimal
    value: Decimal
    rule_kinds: tuple[str, ...]
    messages: tuple[str, ...]


@dataclass(frozen=True)
class HeldPortfolioRow:
    run_portfolio_id: int
    run_id: int
    run_created_at: dt.datetime
    portfolio_id: int
    portfolio_number: str
    client: str
    status: str
    resolution: str  # pending, released, rejected
    resolved_by: str
    resolved_at: dt.datetime | None
    resolution_reason: str
    rule_kinds: tuple[str, ...]


@dataclass(frozen=True)
class SkippedRow:
    run_portfolio_id: int
    run_id: int
    portfolio_id: int
    portfolio_number: str
    reason: str


@dataclass(frozen=True)
class RuleChangeRow:
    event_id: int
    seq: int
    created_at: dt.datetime
    actor_label: str
    action: str
    object_id: str
    summary: str


@dataclass(frozen=True)
class KindCount:
    kind: str
    hard: int
    soft: int

    @property
    def total(self) -> int:
        return self.hard + self.soft


@dataclass(frozen=True)
class ExceptionReport:
    period: Period
    blocked_orders_count: int
    blocked_portfolios_count: int
    held_count: int
    held_pending: int
    held_released: int
    held_rejected: int
    skipped_count: int
    skipped_by_reason: tuple[tuple[str, int], ...]
    rule_changes_count: int
    by_rule_kind: tuple[KindCount, ...]
    blocked_orders: tuple[BlockedOrderRow, ...]
    held_portfolios: tuple[HeldPortfolioRow, ...]
    skipped: tuple[SkippedRow, ...]
    rule_changes: tuple[RuleChangeRow, ...]
    limit: int | None


def _require_current(firm: Firm) -> None:
    if current_firm_id() != firm.pk:
        raise TenancyError("report selectors read the current firm only: use firm_context(firm)")


def _in_period(period: Period) -> Q:
    return Q(run__created_at__gte=period.start_at, run__created_at__lt=period.end_before)


def _kinds(failures: Any) -> tuple[str, ...]:
    if not isinstance(failures, list):
        return ()
    return tuple(sorted({str(f.get("kind", "?")) for f in failures if isinstance(f, dict)}))


def _messages(failures: Any) -> tuple[str, ...]:
    if not isinstance(failures, list):
        return ()
    return tuple(str(f.get("message", "")) for f in failures if isinstance(f, dict))


def _names(portfolio_ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    numbers: dict[int, str] = {}
    client_of: dict[int, int] = {}
    for pk, number, client_id in Portfolio.objects.filter(pk__in=list(portfolio_ids)).values_list(
        "pk", "number", "client_id"
    ):
        numbers[pk], client_of[pk] = number, client_id
    clients = {
        c.pk: c.full_name for c in Client.objects.filter(pk__in=list(set(client_of.values())))
    }
    return numbers, {pk: clients.get(cid, "") for pk, cid in client_of.items()}


def _cut(qs: QuerySet[Any], limit: int | None) -> QuerySet[Any]:
    return qs if limit is None else qs[:limit]


def _blocked_orders(period: Period) -> QuerySet[Order]:
    return Order.objects.filter(_in_period(period), status=OrderStatus.BLOCKED)


def _held_portfolios(period: Period) -> QuerySet[RunPortfolio]:
    return RunPortfolio.objects.filter(_in_period(period), compliance_outcome=SOFT)


def _resolution(status: str) -> str:
    if status == RunPortfolioStatus.HELD:
        return "pending"
    if status == RunPortfolioStatus.REJECTED:
        return "rejected"
    return "released" if status in RELEASED_STATUSES else status


def exception_report(*, firm: Firm, period: Period, limit: int | None = 200) -> ExceptionReport:
    """The period's exceptions in the current firm (see the module doc)."""
    _require_current(firm)
    blocked = _blocked_orders(period)
    held = _held_portfolios(period)
    skipped = RunPortfolio.objects.filter(_in_period(period), status=RunPortfolioStatus.SKIPPED)
    rule_events = AuditEvent.objects.filter(
        action__startswith=RULE_CHANGE_ACTION_PREFIX,
        created_at__gte=period.start_at,
        created_at__lt=period.end_before,
    )

    kinds: dict[str, Counter[int]] = {}
    failing = Order.objects.filter(
        _in_period(period), compliance_outcome__in=[SOFT, HARD]
    ).values_list("failures", flat=True)
    for failures in failing.iterator(chunk_size=5000):
        for failure in failures if isinstance(failures, list) else ():
            if isinstance(failure, dict):
                kind = str(failure.get("kind", "?"))
                outcome = HARD if int(failure.get("outcome", HARD)) == HARD else SOFT
                kinds.setdefault(kind, Counter())[outcome] += 1

    held_statuses = dict(
        held.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    resolutions: Counter[str] = Counter()
    for status, n in held_statuses.items():
        resolutions[_resolution(status)] += n

    order_rows = list(
        _cut(
            blocked.order_by("-run__created_at", "run_id", "portfolio_id", "pk"), limit
        ).values_list(
            "pk",
            "run_id",
            "run__created_at",
            "portfolio_id",
            "asset_id",
            "side",
            "quantity",
            "value",
            "failures",
        )
    )
    held_rows = list(
        _cut(held.order_by("-run__created_at", "run_id", "portfolio_id"), limit).values_list(
            "pk", "run_id", "run__created_at", "portfolio_id", "status"
        )
    )
    decisions = {
        rp: (decision, actor, at, reason)
        for rp, decision, actor, at, reason in ComplianceOverride.objects.filter(
            run_portfolio_id__in=[r[0] for r in held_rows]
        ).values_list("run_portfolio_id", "decision", "actor__username", "created_at", "reason")
    }
    skipped_rows = list(
        _cut(skipped.order_by("-run__created_at", "run_id", "portfolio_id"), limit).values_list(
            "pk", "run_id", "portfolio_id", "skip_reason"
        )
    )
    held_kinds: dict[tuple[int, int], set[str]] = {}
    for run_id, portfolio_id, failures in Order.objects.filter(
        run_id__in={r[1] for r in held_rows},
        portfolio_id__in={r[3] for r in held_rows},
        compliance_outcome=SOFT,
    ).values_list("run_id", "portfolio_id", "failures"):
        held_kinds.setdefault((run_id, portfolio_id), set()).update(_kinds(failures))

    numbers, clients = _names(
        {r[3] for r in order_rows} | {r[3] for r in held_rows} | {r[2] for r in skipped_rows}
    )
    symbols = dict(
        Asset.objects.filter(pk__in={r[4] for r in order_rows}).values_list("pk", "symbol")
    )

    return ExceptionReport(
        period=period,
        blocked_orders_count=blocked.count(),
        blocked_portfolios_count=RunPortfolio.objects.filter(
            _in_period(period), status=RunPortfolioStatus.BLOCKED
        ).count(),
        held_count=sum(held_statuses.values()),
        held_pending=resolutions["pending"],
        held_released=resolutions["released"],
        held_rejected=resolutions["rejected"],
        skipped_count=skipped.count(),
        skipped_by_reason=tuple(
            (reason or "(no reason recorded)", n)
            for reason, n in skipped.values_list("skip_reason")
            .annotate(n=Count("id"))
            .order_by("-n", "skip_reason")
            .values_list("skip_reason", "n")
        ),
        rule_changes_count=rule_events.count(),
        by_rule_kind=tuple(
            KindCount(kind, c[HARD], c[SOFT])
            for kind, c in sorted(kinds.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        ),
        blocked_orders=tuple(
            BlockedOrderRow(
                order_id=pk,
                run_id=run_id,
                run_created_at=created,
                portfolio_id=pid,
                portfolio_number=numbers.get(pid, str(pid)),
                client=clients.get(pid, ""),
                symbol=symbols.get(aid, str(aid)),
                side=side,
                quantity=quantity,
                value=value,
                rule_kinds=_kinds(failures),
                messages=_messages(failures),
            )
            for pk, run_id, created, pid, aid, side, quantity, value, failures in order_rows
        ),
        held_portfolios=tuple(
            HeldPortfolioRow(
                run_portfolio_id=pk,
                run_id=run_id,
                run_created_at=created,
                portfolio_id=pid,
                portfolio_number=numbers.get(pid, str(pid)),
                client=clients.get(pid, ""),
                status=status,
                resolution=decisions[pk][0] if pk in decisions else _resolution(status),
                resolved_by=decisions[pk][1] if pk in decisions else "",
                resolved_at=decisions[pk][2] if pk in decisions else None,
                resolution_reason=decisions[pk][3] if pk in decisions else "",
                rule_kinds=tuple(sorted(held_kinds.get((run_id, pid), ()))),
            )
            for pk, run_id, created, pid, status in held_rows
        ),
        skipped=tuple(
            SkippedRow(pk, run_id, pid, numbers.get(pid, str(pid)), reason)
            for pk, run_id, pid, reason in skipped_rows
        ),
        rule_changes=tuple(
            RuleChangeRow(
                event_id=e.pk,
                seq=e.seq,
                created_at=e.created_at,
                actor_label=e.actor_label,
                action=e.action,
                object_id=e.object_id,
                summary="; ".join(str(r) for r in e.reasons) if e.reasons else "",
            )
            for e in _cut(rule_events.order_by("-seq"), limit)
        ),
        limit=limit,
    )


def exception_report_csv_rows(report: ExceptionReport) -> Iterator[tuple[Any, ...]]:
    """The report as one CSV table: a section column, then the row's fields."""
    p = report.period
    yield ("section", "id", "run", "when", "portfolio", "client", "detail", "rule_kinds", "outcome")
    yield ("period", "", "", f"{p.start.isoformat()}..{p.end.isoformat()}", "", "", p.label, "", "")
    for k in report.by_rule_kind:
        yield ("rule_kind", "", "", "", "", "", k.kind, k.kind, f"hard={k.hard} soft={k.soft}")
    for o in report.blocked_orders:
        yield (
            "blocked_order",
            o.order_id,
            o.run_id,
            o.run_created_at.isoformat(),
            o.portfolio_number,
            o.client,
            f"{o.side} {o.quantity} {o.symbol} ({o.value})",
            " ".join(o.rule_kinds),
            " | ".join(o.messages) or "blocked with its portfolio",
        )
    for h in report.held_portfolios:
        yield (
            "held_portfolio",
            h.run_portfolio_id,
            h.run_id,
            h.run_created_at.isoformat(),
            h.portfolio_number,
            h.client,
            h.resolution
            + (f" by {h.resolved_by}" if h.resolved_by else "")
            + (f": {h.resolution_reason}" if h.resolution_reason else ""),
            " ".join(h.rule_kinds),
            h.status,
        )
    for s in report.skipped:
        yield (
            "skipped_portfolio",
            s.run_portfolio_id,
            s.run_id,
            "",
            s.portfolio_number,
            "",
            s.reason,
            "",
            "skipped",
        )
    for r in report.rule_changes:
        yield (
            "rule_change",
            r.event_id,
            "",
            r.created_at.isoformat(),
            "",
            "",
            f"{r.action} {r.object_id} by {r.actor_label}",
            "",
            r.summary,
        )
