"""Deciding on a computed run (approve, reject) and executing it through the broker.

Discretionary portfolios execute when an advisor approves the run; a
non-discretionary portfolio needs its own approval. Execution runs in chunks, one
transaction each: the approved orders go to the broker adapter, and the fills are
booked in bulk (holdings, tax lots, cash, ledger, cash flows). A portfolio whose
holdings or cash changed since the run read them is not traded: its proposal is
stale and is rejected with that reason.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.tenancy.context import require_firm
from compliance.services.audit import AuditEntry, audit_record, audit_record_many
from portfolios.brokers import Fill, Ticket, broker_get
from portfolios.bulk import staged_copy, staged_update
from portfolios.chunking import chunked, in_ids
from portfolios.models import Portfolio
from portfolios.models_holdings import CashFlow, CashFlowStatus, Holding, LedgerKind
from portfolios.models_market import Asset
from portfolios.models_rebalance import (
    Order,
    OrderLot,
    OrderSide,
    OrderStatus,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
    RunStatus,
)
from portfolios.services_rebalance import CHUNK_SIZE, EXECUTE_DISPATCH, RebalanceError, _dispatch

#: Called inside the execution transaction with the run and the portfolio ids whose
#: fills were just booked (notifications write their outbox rows here).
ON_PORTFOLIOS_EXECUTED: list[Callable[[RebalanceRun, list[int]], None]] = []

CENT = Decimal("0.01")
QUANTITY = Decimal("0.0000000001")
EXECUTABLE = [RunPortfolioStatus.PROPOSED, RunPortfolioStatus.AWAITING_CLIENT]


def _label(actor: User | None) -> str:
    return actor.get_username() if actor else "system"


def rebalance_run_approve(*, run: RebalanceRun, actor: User | None, note: str = "") -> int:
    """Approve a computed run: its discretionary portfolios' proposals execute.
    Non-discretionary ones keep waiting for their own approval. Returns how many
    portfolios were approved."""
    if run.preview:
        raise RebalanceError("run", "a preview is never executed; start a run to trade")
    now = timezone.now()
    with transaction.atomic():
        locked = RebalanceRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.AWAITING_APPROVAL:
            raise RebalanceError("status", f"the run is {locked.get_status_display().lower()}")
        approved = RunPortfolio.objects.filter(run=run, status=RunPortfolioStatus.PROPOSED)
        ids = sorted(approved.values_list("portfolio_id", flat=True))
        approved.update(status=RunPortfolioStatus.APPROVED, approved_by=actor, approved_at=now)
        Order.objects.filter(run=run, portfolio_id__in=ids, status=OrderStatus.PROPOSED).update(
            status=OrderStatus.APPROVED
        )
        RebalanceRun.objects.filter(pk=run.pk).update(
            status=RunStatus.EXECUTING if ids else RunStatus.APPROVED,
            decided_by=actor,
            decided_at=now,
            decision_note=note,
        )
        audit_record(
            action="rebalance.run_approved",
            actor=actor,
            actor_label=_label(actor),
            object_type="rebalance_run",
            object_id=run.pk,
            run_id=str(run.pk),
            payload={"portfolios": len(ids), "note": note},
        )
        _after_commit_execute(run, ids)
    with transaction.atomic():
        run.refresh_from_db()
    return len(ids)


def _after_commit_execute(run: RebalanceRun, ids: list[int]) -> None:
    firm_id, run_id, chunks = run.firm_id, run.pk, chunked(ids, CHUNK_SIZE)
    transaction.on_commit(lambda: _dispatch(EXECUTE_DISPATCH, firm_id, run_id, chunks))


def rebalance_run_reject(*, run: RebalanceRun, actor: User | None, note: str) -> int:
    """Reject every proposal of the run still waiting; nothing of them executes."""
    if not note.strip():
        raise RebalanceError("note", "say why the run is rejected")
    with transaction.atomic():
        run = RebalanceRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in (RunStatus.AWAITING_APPROVAL, RunStatus.PREVIEW):
            raise RebalanceError("status", f"the run is {run.get_status_display().lower()}")
        waiting = RunPortfolio.objects.filter(
            run=run, status__in=[*EXECUTABLE, RunPortfolioStatus.HELD]
        )
        ids = list(waiting.values_list("portfolio_id", flat=True))
        waiting.update(status=RunPortfolioStatus.REJECTED)
        Order.objects.filter(
            run=run,
            portfolio_id__in=ids,
            status__in=[OrderStatus.PROPOSED, OrderStatus.HELD, OrderStatus.APPROVED],
        ).update(status=OrderStatus.REJECTED)
        now = timezone.now()
        RebalanceRun.objects.filter(pk=run.pk).update(
            status=RunStatus.REJECTED,
            decided_by=actor,
            decided_at=now,
            decision_note=note,
            finished_at=now,
        )
        audit_record(
            action="rebalance.run_rejected",
            actor=actor,
            actor_label=_label(actor),
            object_type="rebalance_run",
            object_id=run.pk,
            run_id=str(run.pk),
            payload={"portfolios": len(ids), "note": note},
            reasons=[note],
        )
    with transaction.atomic():
        run.refresh_from_db()
    return len(ids)


def run_portfolio_decide(
    *, run_portfolio: RunPortfolio, actor: User | None, approve: bool, note: str = ""
) -> RunPortfolio:
    """Approve (it executes) or reject one portfolio's proposal of a computed run; how
    non-discretionary portfolios are traded."""
    run = RebalanceRun.objects.get(pk=run_portfolio.run_id)
    if run.preview:
        raise RebalanceError("run", "a preview is never executed; start a run to trade")
    if run.status not in (
        RunStatus.AWAITING_APPROVAL,
        RunStatus.APPROVED,
        RunStatus.EXECUTING,
        RunStatus.DONE,
    ):
        raise RebalanceError("status", f"the run is {run.get_status_display().lower()}")
    if not approve and not note.strip():
        raise RebalanceError("note", "say why the proposal is rejected")
    with transaction.atomic():
        locked = RunPortfolio.objects.select_for_update().get(pk=run_portfolio.pk)
        if locked.status not in EXECUTABLE:
            raise RebalanceError(
                "status", f"this proposal is {locked.get_status_display().lower()}"
            )
        now = timezone.now()
        new_status = RunPortfolioStatus.APPROVED if approve else RunPortfolioStatus.REJECTED
        RunPortfolio.objects.filter(pk=locked.pk).update(
            status=new_status, approved_by=actor if approve else None, approved_at=now
        )
        Order.objects.filter(
            run=run, portfolio_id=locked.portfolio_id, status=OrderStatus.PROPOSED
        ).update(status=OrderStatus.APPROVED if approve else OrderStatus.REJECTED)
        audit_record(
            action="rebalance.portfolio_approved" if approve else "rebalance.portfolio_rejected",
            actor=actor,
            actor_label=_label(actor),
            object_type="portfolio",
            object_id=locked.portfolio_id,
            run_id=str(run.pk),
            payload={"run_portfolio": locked.pk, "note": note},
            reasons=[note] if note else [],
        )
        if approve:
            _after_commit_execute(run, [locked.portfolio_id])
    with transaction.atomic():
        run_portfolio.refresh_from_db()
    return run_portfolio


# --------------------------------------------------------------------------- execution


def _policy_cost(run: RebalanceRun, policy_id: int | None, value: Decimal) -> Decimal:
    policies = run.policy_snapshot.get("policies", {})
    snapshot = policies.get(str(policy_id)) or policies.get(
        str(run.policy_snapshot.get("default_policy"))
    )
    if not snapshot:
        return Decimal(0)
    bps, fixed = Decimal(snapshot["cost_bps"]), Decimal(snapshot["cost_fixed"])
    return (value * bps / Decimal(10_000) + fixed).quantize(CENT, ROUND_HALF_EVEN)


def _stale(rp: RunPortfolio, holdings: dict[int, dict[str, Decimal]], cash: Decimal) -> bool:
    recorded = {a: Decimal(q) for a, q in rp.state.get("holdings", {}).items()}
    return recorded != holdings.get(rp.portfolio_id, {}) or Decimal(rp.state["cash"]) != cash


def rebalance_execute_chunk(*, run_id: int, portfolio_ids: Sequence[int]) -> dict[str, int]:
    """Execute the approved proposals of these portfolios, in one transaction.
    Portfolios already executed (a retry) are skipped."""
    firm = require_firm()
    today = timezone.localdate()
    now = timezone.now()
    with transaction.atomic():
        run = RebalanceRun.objects.get(pk=run_id)
        rps = list(
            RunPortfolio.objects.select_for_update()
            .filter(
                run=run, portfolio_id__in=list(portfolio_ids), status=RunPortfolioStatus.APPROVED
            )
            .order_by("portfolio_id")
        )
        if not rps:
            _run_maybe_done(run)
            return {"executed": 0, "stale": 0}
        pids = [rp.portfolio_id for rp in rps]
        portfolios = {
            p.pk: p
            for p in Portfolio.objects.select_for_update().filter(in_ids("pk", pids)).order_by("pk")
        }
        current: dict[int, dict[str, Decimal]] = defaultdict(dict)
        for pid, aid, qty in Holding.objects.filter(in_ids("portfolio_id", pids)).values_list(
            "portfolio_id", "asset_id", "quantity"
        ):
            current[pid][str(aid)] = qty
        fresh: list[RunPortfolio] = []
        stale: list[RunPortfolio] = []
        for rp in rps:
            (stale if _stale(rp, current, portfolios[rp.portfolio_id].cash) else fresh).append(rp)
        if stale:
            _reject_stale(run, stale)
        executed = _execute(run=run, rps=fresh, today=today, now=now, firm_id=firm.pk)
        _run_maybe_done(run)
    return {"executed": executed, "stale": len(stale)}


def _reject_stale(run: RebalanceRun, stale: list[RunPortfolio]) -> None:
    ids = [rp.portfolio_id for rp in stale]
    RunPortfolio.objects.filter(pk__in=[rp.pk for rp in stale]).update(
        status=RunPortfolioStatus.REJECTED
    )
    Order.objects.filter(run=run, portfolio_id__in=ids, status=OrderStatus.APPROVED).update(
        status=OrderStatus.REJECTED
    )
    audit_record_many(
        entries=[
            AuditEntry(
                action="rebalance.portfolio_stale",
                actor_label="rebalance",
                object_type="portfolio",
                object_id=pid,
                run_id=str(run.pk),
                reasons=["holdings or cash changed after the run computed; not traded"],
            )
            for pid in ids
        ]
    )


def _execute(
    *, run: RebalanceRun, rps: list[RunPortfolio], today: dt.date, now: dt.datetime, firm_id: int
) -> int:
    if not rps:
        return 0
    pids = [rp.portfolio_id for rp in rps]
    rp_of = {rp.portfolio_id: rp for rp in rps}
    orders = list(
        Order.objects.filter(run=run, portfolio_id__in=pids, status=OrderStatus.APPROVED).order_by(
            "portfolio_id", "asset_id"
        )
    )
    symbols = dict(
        Asset.objects.filter(pk__in={o.asset_id for o in orders}).values_list("pk", "symbol")
    )
    fills = {
        f.order_id: f
        for f in broker_get().submit(
            [
                Ticket(
                    order_id=o.pk,
                    symbol=symbols[o.asset_id],
                    side=o.side,
                    quantity=o.quantity,
                    reference_price=o.price,
                )
                for o in orders
            ]
        )
    }
    lots_of: dict[int, list[OrderLot]] = defaultdict(list)
    for ol in OrderLot.objects.filter(order_id__in=[o.pk for o in orders]).select_related("lot"):
        lots_of[ol.order_id].append(ol)

    cash_delta: dict[int, Decimal] = defaultdict(Decimal)
    holding_rows: list[tuple[Any, ...]] = []
    lot_updates: list[tuple[Any, ...]] = []
    new_lots: list[tuple[Any, ...]] = []
    ledger: list[tuple[Any, ...]] = []
    order_updates: list[tuple[Any, ...]] = []
    for o in orders:
        fill: Fill | None = fills.get(o.pk)
        if fill is None:  # the broker has not filled it (yet): stays approved
            continue
        rp = rp_of[o.portfolio_id]
        household = int(rp.state.get("household", 0))
        value = (fill.quantity * fill.price).quantize(CENT, ROUND_HALF_EVEN)
        cost = _policy_cost(run, rp.policy_id_used, value) + fill.cost
        sign = Decimal(1) if o.side == OrderSide.BUY else Decimal(-1)
        cash_delta[o.portfolio_id] += -sign * value - cost
        holding_rows.append((firm_id, o.portfolio_id, o.asset_id, sign * fill.quantity, now))
        gain: Decimal | None = None
        if o.side == OrderSide.SELL and lots_of.get(o.pk):
            gain = Decimal(0)
            for ol in lots_of[o.pk]:
                lot_updates.append((ol.lot_id, ol.quantity))
                gain += (fill.price - ol.lot.unit_cost) * ol.quantity
            gain = (gain - cost).quantize(CENT, ROUND_HALF_EVEN)
        elif o.side == OrderSide.BUY and rp.state.get("taxable"):
            unit_cost = ((value + cost) / fill.quantity).quantize(QUANTITY, ROUND_HALF_EVEN)
            new_lots.append(
                (
                    firm_id,
                    o.portfolio_id,
                    o.asset_id,
                    today,
                    fill.quantity,
                    fill.quantity,
                    unit_cost,
                )
            )
        ledger.append(
            (
                firm_id,
                o.portfolio_id,
                household,
                LedgerKind.BUY if o.side == OrderSide.BUY else LedgerKind.SELL,
                today,
                o.asset_id,
                fill.quantity,
                fill.price,
                -sign * value,
                gain,
                run.pk,
                o.pk,
                o.reason,
                now,
            )
        )
        if cost:
            ledger.append(
                (
                    firm_id,
                    o.portfolio_id,
                    household,
                    LedgerKind.FEE,
                    today,
                    o.asset_id,
                    None,
                    None,
                    -cost,
                    None,
                    run.pk,
                    o.pk,
                    "trading cost",
                    now,
                )
            )
        order_updates.append((o.pk, fill.quantity, fill.price, cost, now))

    flow_ids = [f for rp in rps for f in rp.state.get("flows", [])]
    for fid, pid, kind, amount in CashFlow.objects.filter(
        pk__in=flow_ids, status=CashFlowStatus.PENDING
    ).values_list("pk", "portfolio_id", "kind", "amount"):
        signed = amount if kind == "deposit" else -amount
        cash_delta[pid] += signed
        ledger.append(
            (
                firm_id,
                pid,
                int(rp_of[pid].state.get("household", 0)),
                LedgerKind.DEPOSIT if kind == "deposit" else LedgerKind.WITHDRAWAL,
                today,
                None,
                None,
                None,
                signed,
                None,
                run.pk,
                None,
                f"cash flow {fid}",
                now,
            )
        )
    CashFlow.objects.filter(pk__in=flow_ids, status=CashFlowStatus.PENDING).update(
        status=CashFlowStatus.PROCESSED, processed_at=now, run=run
    )

    _holdings_apply(holding_rows, pids=pids, firm_id=firm_id, now=now)
    if lot_updates:
        staged_update(
            table="portfolios_taxlot",
            key="id",
            columns=[("id", "bigint"), ("sold", "numeric")],
            rows=lot_updates,
            assignments=f"quantity = t.quantity - s.sold, closed_on = CASE WHEN "
            f"t.quantity - s.sold = 0 THEN DATE '{today.isoformat()}' END",
        )
    if new_lots:
        staged_copy(
            table="portfolios_taxlot",
            columns=[
                "firm_id",
                "portfolio_id",
                "asset_id",
                "acquired_on",
                "quantity",
                "original_quantity",
                "unit_cost",
            ],
            rows=new_lots,
        )
    staged_update(
        table="portfolios_portfolio",
        key="id",
        columns=[("id", "bigint"), ("delta", "numeric")],
        rows=[(pid, cash_delta.get(pid, Decimal(0))) for pid in pids],
        assignments=f"cash = t.cash + s.delta, last_rebalanced_on = DATE '{today.isoformat()}'",
    )
    if ledger:
        staged_copy(
            table="portfolios_ledgerentry",
            columns=[
                "firm_id",
                "portfolio_id",
                "household_id",
                "kind",
                "trade_date",
                "asset_id",
                "quantity",
                "price",
                "amount",
                "realised_gain",
                "run_id",
                "order_id",
                "note",
                "created_at",
            ],
            rows=ledger,
        )
    if order_updates:
        staged_update(
            table="portfolios_order",
            key="id",
            columns=[
                ("id", "bigint"),
                ("fq", "numeric"),
                ("fp", "numeric"),
                ("fc", "numeric"),
                ("fa", "timestamptz"),
            ],
            rows=order_updates,
            assignments=f"status = '{OrderStatus.FILLED}', fill_quantity = s.fq, "
            "fill_price = s.fp, fill_cost = s.fc, filled_at = s.fa",
        )
    RunPortfolio.objects.filter(pk__in=[rp.pk for rp in rps]).update(
        status=RunPortfolioStatus.EXECUTED
    )
    for hook in ON_PORTFOLIOS_EXECUTED:
        hook(run, pids)
    audit_record_many(
        entries=[
            AuditEntry(
                action="rebalance.portfolio_executed",
                actor_label="rebalance",
                object_type="portfolio",
                object_id=pid,
                run_id=str(run.pk),
                payload={
                    "fills": [
                        {
                            "order": u[0],
                            "quantity": str(u[1]),
                            "price": str(u[2]),
                            "cost": str(u[3]),
                        }
                        for u in order_updates
                        if u[0] in {o.pk for o in orders if o.portfolio_id == pid}
                    ],
                    "cash_change": str(cash_delta.get(pid, Decimal(0))),
                },
            )
            for pid in pids
        ]
    )
    return len(pids)


def _holdings_apply(
    rows: list[tuple[Any, ...]], *, pids: list[int], firm_id: int, now: dt.datetime
) -> None:
    """Add the fills' signed quantities to the holdings: sells reduce existing rows,
    buys add to a row or create it; rows that reach zero are deleted."""
    delta: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for _, pid, aid, quantity, _ in rows:
        delta[(pid, aid)] += quantity
    reduce = [(pid, aid, q) for (pid, aid), q in delta.items() if q < 0]
    add = [(firm_id, pid, aid, q, now) for (pid, aid), q in delta.items() if q > 0]
    if reduce:
        staged_update(
            table="portfolios_holding",
            key=["portfolio_id", "asset_id"],
            columns=[("portfolio_id", "bigint"), ("asset_id", "bigint"), ("delta", "numeric")],
            rows=reduce,
            assignments="quantity = t.quantity + s.delta",
        )
    if add:
        staged_copy(
            table="portfolios_holding",
            columns=["firm_id", "portfolio_id", "asset_id", "quantity", "updated_at"],
            rows=add,
            on_conflict="ON CONFLICT (firm_id, portfolio_id, asset_id) DO UPDATE SET "
            "quantity = portfolios_holding.quantity + EXCLUDED.quantity, "
            "updated_at = EXCLUDED.updated_at",
        )
    Holding.objects.filter(in_ids("portfolio_id", pids), quantity=0).delete()


def _run_maybe_done(run: RebalanceRun) -> None:
    """An executing run is done when no approved proposal is left to execute."""
    if run.status not in (RunStatus.EXECUTING, RunStatus.APPROVED):
        return
    if RunPortfolio.objects.filter(run=run, status=RunPortfolioStatus.APPROVED).exists():
        return
    RebalanceRun.objects.filter(pk=run.pk).update(status=RunStatus.DONE, finished_at=timezone.now())
    audit_record(
        action="rebalance.run_executed",
        actor_label="rebalance",
        object_type="rebalance_run",
        object_id=run.pk,
        run_id=str(run.pk),
        payload={
            "executed": RunPortfolio.objects.filter(
                run=run, status=RunPortfolioStatus.EXECUTED
            ).count()
        },
    )
