"""The platform's events, turned into notifications (registered on the services' hooks).

Each function runs inside the transaction of the change it reports and writes the
outbox in bulk (:func:`accounts.notifications.services.notifications_emit`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import (
    Client,
    Firm,
    ModelPortfolio,
    ProfileFlag,
    ProfileStatus,
    RiskProfile,
    Role,
    StrategyAssignment,
)
from accounts.notifications import explain
from accounts.notifications.recipients import (
    advisors_of_households,
    investor_of_client,
    users_with_role,
)
from accounts.notifications.services import EmitResult, Outgoing, notifications_emit
from accounts.tenancy.context import firm_context

INBOX = "/notifications/"


def _investors_of_portfolios(pids: list[int]) -> dict[int, tuple[int, str]]:
    """portfolio id -> (investor user id, label) for portfolios whose client signs in."""
    from portfolios.models import Portfolio

    investors = users_with_role(Role.INVESTOR)
    out = {}
    for pid, number, name, uid in Portfolio.objects.filter(
        pk__in=pids, client__user__isnull=False
    ).values_list("pk", "number", "name", "client__user_id"):
        if uid in investors:
            out[pid] = (uid, f"{name} ({number})" if name else number)
    return out


# --------------------------------------------------------------------------- rebalancing


def on_portfolios_executed(run: Any, pids: list[int]) -> EmitResult:
    """Tell each investor what was bought and sold and why; and that their cash flows
    were processed."""
    from portfolios.models import Asset, CashFlow, LedgerEntry, Order, OrderStatus

    who = _investors_of_portfolios(pids)
    if not who:
        return EmitResult()
    told = list(who)
    orders = list(
        Order.objects.filter(run=run, portfolio_id__in=told, status=OrderStatus.FILLED)
        .order_by("portfolio_id", "side", "asset_id")
        .values_list(
            "pk",
            "portfolio_id",
            "asset_id",
            "side",
            "fill_quantity",
            "fill_price",
            "reason",
            "drift",
            "band",
            "failures",
        )
    )
    symbols = dict(Asset.objects.filter(pk__in={o[2] for o in orders}).values_list("pk", "symbol"))
    gains = dict(
        LedgerEntry.objects.filter(
            run=run, order_id__in=[o[0] for o in orders], realised_gain__isnull=False
        ).values_list("order_id", "realised_gain")
    )
    flows: dict[int, list[tuple[int, str, Decimal]]] = defaultdict(list)
    for fid, pid, kind, amount in CashFlow.objects.filter(
        run=run, portfolio_id__in=told
    ).values_list("pk", "portfolio_id", "kind", "amount"):
        flows[pid].append((fid, kind, amount))
    trades: dict[int, list[explain.TradeFact]] = defaultdict(list)
    for oid, pid, aid, side, filled, fill_price, reason, drift, band, failures in orders:
        qty, price = filled or Decimal(0), fill_price or Decimal(0)
        trades[pid].append(
            explain.TradeFact(
                symbol=symbols[aid],
                side=side,
                quantity=qty,
                amount=(qty * price).quantize(Decimal("0.01")),
                reason=reason,
                drift=drift,
                band=band,
                realised_gain=gains.get(oid),
                compliance=tuple(
                    str(f.get("message", "")) for f in (failures or []) if f.get("message")
                ),
            )
        )
    today = timezone.localdate()
    items = []
    for pid, (uid, label) in who.items():
        deposits = sum((a for _, k, a in flows[pid] if k == "deposit"), Decimal(0))
        withdrawals = sum((a for _, k, a in flows[pid] if k != "deposit"), Decimal(0))
        if trades[pid]:
            subject, body = explain.rebalance_message(
                explain.RebalanceFacts(
                    portfolio=label,
                    trade_date=today,
                    trades=trades[pid],
                    deposits=deposits,
                    withdrawals=withdrawals,
                )
            )
            items.append(
                Outgoing(
                    event_type="rebalance_executed",
                    event_key=f"rebalance:{run.pk}:{pid}",
                    recipient_id=uid,
                    subject=subject,
                    body=body,
                    link=INBOX,
                    data={
                        "run": run.pk,
                        "portfolio": pid,
                        "trades": [
                            {
                                "symbol": t.symbol,
                                "side": t.side,
                                "quantity": str(t.quantity),
                                "amount": str(t.amount),
                                "reason": t.reason,
                            }
                            for t in trades[pid]
                        ],
                    },
                )
            )
        for fid, kind, amount in flows[pid]:
            subject, body = explain.cash_flow_message(kind=kind, amount=amount, portfolio=label)
            items.append(
                Outgoing(
                    event_type="cash_flow_processed",
                    event_key=f"cash_flow:{fid}",
                    recipient_id=uid,
                    subject=subject,
                    body=body,
                    link=INBOX,
                    data={"portfolio": pid, "kind": kind, "amount": str(amount)},
                )
            )
    return notifications_emit(items=items)


def on_run_computed(run: Any) -> EmitResult:
    """Tell advisors what waits for their approval (second approvers: compliance officers
    for held portfolios) and who is concerned by orders compliance blocked."""
    from portfolios.models import (
        RUN_PORTFOLIO_WAITING,
        Order,
        OrderStatus,
        RunPortfolio,
        RunPortfolioStatus,
        RunStatus,
    )

    if run.preview:
        return EmitResult()
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    officers = users_with_role(Role.COMPLIANCE)
    if run.status == RunStatus.AWAITING_APPROVAL:
        # Counted in PostgreSQL per advisor granted on the household and status: a
        # run of a million portfolios gives as many rows as advisors, not portfolios.
        waiting = RunPortfolio.objects.filter(run=run, status__in=RUN_PORTFOLIO_WAITING)
        grant = "portfolio__client__household__householduserobjectpermission"
        advisors_active = users_with_role(Role.ADVISOR)
        per_advisor = (
            waiting.filter(**{f"{grant}__permission__codename": "view_household"})
            .values(f"{grant}__user_id", "status")
            .annotate(n=Count("pk"))
            .values_list(f"{grant}__user_id", "status", "n")
            .order_by()
        )
        for uid, status, n in per_advisor:
            if uid in advisors_active:
                counts[uid][status] += n
        held = waiting.filter(status=RunPortfolioStatus.HELD).count()
        for uid in officers if held else ():
            counts[uid]["held"] += held
    # The run counts its blocked orders: most runs have none, and then the orders of
    # the run (millions for a book) need not be read to find them.
    blocked = (
        list(
            Order.objects.filter(run=run, status=OrderStatus.BLOCKED).values_list(
                "portfolio__client__household_id", "failures"
            )
        )
        if run.orders_blocked
        else []
    )
    advisors = advisors_of_households({h for h, _ in blocked})
    items = []
    for uid, c in counts.items():
        subject, body = explain.approvals_waiting_message(
            run_id=run.pk,
            proposed=c[RunPortfolioStatus.PROPOSED],
            awaiting_client=c[RunPortfolioStatus.AWAITING_CLIENT],
            held=c["held"] or c[RunPortfolioStatus.HELD],
        )
        items.append(
            Outgoing(
                event_type="approvals_waiting",
                event_key=f"approvals:{run.pk}",
                recipient_id=uid,
                subject=subject,
                body=body,
                link=f"/rebalancing/runs/{run.pk}/",
                data={"run": run.pk, **dict(c.items())},
            )
        )
    if blocked:
        per_user: dict[int, int] = defaultdict(int)
        reasons: dict[int, set[str]] = defaultdict(set)
        for hid, failures in blocked:
            for uid in advisors.get(hid, set()) | officers:
                per_user[uid] += 1
                reasons[uid].update(
                    str(f.get("message")) for f in (failures or []) if f.get("message")
                )
        for uid, n in per_user.items():
            subject, body = explain.orders_blocked_message(
                run_id=run.pk, blocked=n, reasons=sorted(reasons[uid])[:10]
            )
            items.append(
                Outgoing(
                    event_type="orders_blocked",
                    event_key=f"blocked:{run.pk}",
                    recipient_id=uid,
                    subject=subject,
                    body=body,
                    link=f"/rebalancing/runs/{run.pk}/",
                    data={"run": run.pk, "blocked": n},
                )
            )
    return notifications_emit(items=items)


# --------------------------------------------------------------------------- profiles


def on_profile_created(profile: RiskProfile, flags: list[ProfileFlag]) -> EmitResult:
    items = []
    uid = investor_of_client(profile.client_id)
    if uid is not None:
        subject, body = explain.risk_profile_completed_message(
            risk_level=profile.risk_level, valid_until=profile.valid_until
        )
        items.append(
            Outgoing(
                event_type="risk_profile_completed",
                event_key=f"profile:{profile.pk}",
                recipient_id=uid,
                subject=subject,
                body=body,
                link="/risk-profile/",
                data={"profile": profile.pk, "risk_level": profile.risk_level},
            )
        )
    if flags:
        client = Client.objects.get(pk=profile.client_id)
        subject, body = explain.profile_flags_message(
            client=client.full_name, flags=[f.message for f in flags]
        )
        for advisor in advisors_of_households([client.household_id]).get(
            client.household_id, set()
        ):
            items.append(
                Outgoing(
                    event_type="profile_flags_open",
                    event_key=f"flags:{profile.pk}",
                    recipient_id=advisor,
                    subject=subject,
                    body=body,
                    link=f"/clients/{client.pk}/",
                    data={"profile": profile.pk, "flags": [f.code for f in flags]},
                )
            )
    return notifications_emit(items=items)


def on_profiles_expired(profiles: list[RiskProfile]) -> EmitResult:
    items = []
    for profile in profiles:
        uid = investor_of_client(profile.client_id)
        if uid is None:
            continue
        subject, body = explain.risk_profile_expired_message(valid_until=profile.valid_until)
        items.append(
            Outgoing(
                event_type="risk_profile_expired",
                event_key=f"profile_expired:{profile.pk}",
                recipient_id=uid,
                subject=subject,
                body=body,
                link="/risk-profile/",
                data={"profile": profile.pk},
            )
        )
    return notifications_emit(items=items)


def risk_profiles_notify_expiring(*, days: int = 30, today: dt.date | None = None) -> EmitResult:
    """The daily task: investors whose current profile expires within ``days`` days
    (told once per profile)."""
    today = today or timezone.localdate()
    with transaction.atomic():
        items = []
        for profile in RiskProfile.objects.filter(
            status=ProfileStatus.CURRENT,
            valid_until__gte=today,
            valid_until__lte=today + dt.timedelta(days=days),
        ).order_by("pk"):
            uid = investor_of_client(profile.client_id)
            if uid is None:
                continue
            subject, body = explain.risk_profile_expiring_message(
                valid_until=profile.valid_until, days=(profile.valid_until - today).days
            )
            items.append(
                Outgoing(
                    event_type="risk_profile_expiring",
                    event_key=f"profile_expiring:{profile.pk}",
                    recipient_id=uid,
                    subject=subject,
                    body=body,
                    link="/risk-profile/",
                    data={"profile": profile.pk, "valid_until": profile.valid_until},
                )
            )
        return notifications_emit(items=items)


def _target_name(assignment: StrategyAssignment) -> str:
    if assignment.strategy_id:
        from portfolios.models import Strategy

        return str(Strategy.objects.get(pk=assignment.strategy_id).name)
    assert assignment.model_portfolio_id is not None
    return str(ModelPortfolio.objects.get(pk=assignment.model_portfolio_id).name)


def on_strategy_activated(assignment: StrategyAssignment, superseded: list[int]) -> EmitResult:
    uid = investor_of_client(assignment.client_id)
    if uid is None:
        return EmitResult()
    previous = StrategyAssignment.objects.filter(pk__in=superseded).order_by("-pk").first()
    subject, body = explain.strategy_assigned_message(
        strategy=_target_name(assignment),
        previous=_target_name(previous) if previous else None,
    )
    return notifications_emit(
        items=[
            Outgoing(
                event_type="strategy_assigned",
                event_key=f"assignment:{assignment.pk}",
                recipient_id=uid,
                subject=subject,
                body=body,
                link="/risk-profile/",
                data={"assignment": assignment.pk},
            )
        ]
    )


# --------------------------------------------------------------------------- audit chain


def on_chain_broken(firm_id: int, result: Any) -> EmitResult:
    """Tell the firm's compliance officers that its audit chain failed verification."""
    firm = Firm.objects.get(pk=firm_id)
    # A ChainVerification (the recorded check) or a ChainCheck (the bare result).
    detail = str(getattr(result, "message", "") or getattr(result, "problem", "") or result)
    seq = getattr(result, "first_broken_seq", getattr(result, "broken_seq", None))
    intact = getattr(result, "events_checked", None)
    with firm_context(firm), transaction.atomic():
        subject, body = explain.chain_broken_message(
            firm=firm.name, detail=detail, slug=firm.slug, seq=seq, intact=intact
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M")
        return notifications_emit(
            items=[
                Outgoing(
                    event_type="audit_chain_broken",
                    event_key=f"chain_broken:{seq}:{stamp}",
                    recipient_id=uid,
                    subject=subject,
                    body=body,
                    data={"seq": seq, "detail": detail},
                )
                for uid in sorted(users_with_role(Role.COMPLIANCE))
            ]
        )


def register() -> None:
    """Connect the hooks (AccountsConfig.ready); idempotent."""
    from accounts import risk_services, strategy_services
    from compliance.services import verification
    from portfolios import services_execution, services_rebalance

    pairs: list[tuple[list[Any], Any]] = [
        (services_execution.ON_PORTFOLIOS_EXECUTED, on_portfolios_executed),
        (services_rebalance.ON_RUN_COMPUTED, on_run_computed),
        (risk_services.ON_PROFILE_CREATED, on_profile_created),
        (risk_services.ON_PROFILES_EXPIRED, on_profiles_expired),
        (strategy_services.ON_STRATEGY_ACTIVATED, on_strategy_activated),
        (verification.ON_CHAIN_BROKEN, on_chain_broken),
    ]
    for hooks, fn in pairs:
        if fn not in hooks:
            hooks.append(fn)
