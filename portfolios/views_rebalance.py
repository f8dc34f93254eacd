"""The rebalancing pages: the advisor's book (drift heat map, start a run), a run (its
progress polled with htmx, its proposals, approve or reject), one portfolio's proposal,
the orders blotter (and its CSV), and the investor's portfolio (allocation against
target, trades).

Thin views over :mod:`portfolios.selectors_rebalance` and the rebalancing services,
with the API's access rules: staff read, advisors and firm admins decide, advisors only
over their households; another firm's or an inaccessible object is a 404.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_POST

from accounts.book_selectors import (
    FIRM_WIDE_ROLES,
    household_list_visible,
    portfolio_list_visible,
)
from accounts.models import Membership, Role
from accounts.tenancy import firm_context
from accounts.web import signed_in_user
from portfolios.charts import allocation_svg
from portfolios.models_rebalance import (
    Order,
    OrderSide,
    OrderStatus,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
    RunStatus,
    RunTrigger,
)
from portfolios.selectors_rebalance import (
    SORTS,
    book_drift_by_class,
    order_list,
    orders_csv_lines,
    portfolio_allocation,
    portfolio_trades,
    proposal_orders,
    reason_text,
    run_get_visible,
    run_list_visible,
    run_portfolio_get,
    run_portfolio_list,
    trigger_text,
)
from portfolios.services_execution import (
    rebalance_run_approve,
    rebalance_run_reject,
    run_portfolio_decide,
)
from portfolios.services_rebalance import RebalanceError, rebalance_run_start

READERS = frozenset({Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE})
DECIDERS = frozenset({Role.FIRM_ADMIN, Role.ADVISOR})
ACTIVE = (RunStatus.QUEUED, RunStatus.COMPUTING, RunStatus.EXECUTING)
WAITING = (RunPortfolioStatus.PROPOSED, RunPortfolioStatus.AWAITING_CLIENT)
MAX_ID = 2**63 - 1


def _membership(request: HttpRequest, roles: frozenset[str]) -> Membership:
    membership = getattr(request, "membership", None)
    if not isinstance(membership, Membership) or membership.role not in roles:
        raise PermissionDenied
    return membership


def _run(membership: Membership, pk: int) -> RebalanceRun:
    run = run_get_visible(membership=membership, run_id=pk) if pk <= MAX_ID else None
    if run is None:
        raise Http404("No such run.")
    return run


def _row(membership: Membership, run: RebalanceRun, portfolio_id: int) -> RunPortfolio:
    row = (
        run_portfolio_get(membership=membership, run=run, portfolio_id=portfolio_id)
        if portfolio_id <= MAX_ID
        else None
    )
    if row is None:
        raise Http404("No such proposal.")
    return row


def drift_style(drift: Any) -> str:
    """Background of a heat-map cell: red when overweight, blue when underweight, the
    stronger the further from target (full colour at 10 points)."""
    if drift is None:
        return "background:#f4f5f7"
    strength = min(abs(float(drift)) / 0.10, 1.0)
    alpha = 0.08 + 0.82 * strength
    colour = "192,57,43" if drift > 0 else "47,111,222"
    ink = "#fff" if strength > 0.55 else "inherit"
    return f"background:rgba({colour},{alpha:.2f});color:{ink}"


# --------------------------------------------------------------------------- book


@login_required
@require_GET
def rebalance_run_list(request: HttpRequest) -> HttpResponse:
    membership = _membership(request, READERS)
    sort = request.GET.get("sort", "drift")
    if sort not in SORTS:
        sort = "drift"
    drift = book_drift_by_class(membership=membership, sort=sort)
    rows = [
        {
            "row": row,
            "cells": [
                (value, drift_style(value), None if value is None else value * 100)
                for value in row.drifts
            ],
        }
        for row in drift.rows
    ]
    context = {
        "drift": drift,
        "rows": rows,
        "sort": sort,
        "runs": run_list_visible(membership=membership)[:20],
        "households": household_list_visible(membership=membership),
        "can_decide": membership.role in DECIDERS,
    }
    return render(request, "portfolios/rebalance_book.html", context)


@login_required
@require_POST
def rebalance_run_new(request: HttpRequest) -> HttpResponse:
    membership = _membership(request, DECIDERS)
    preview = request.POST.get("mode", "preview") != "run"
    scope = request.POST.get("scope", "book")
    portfolio_ids: list[int] | None = None
    household_ids: list[int] | None = None
    raw = request.POST.get("target", "")
    if scope in ("household", "portfolio"):
        if not raw.isdigit() or int(raw) > MAX_ID:
            messages.error(request, f"Choose a {scope} to rebalance.")
            return redirect("portfolios:rebalance_run_list")
        visible: QuerySet[Any] = (
            household_list_visible(membership=membership)
            if scope == "household"
            else portfolio_list_visible(membership=membership)
        )
        if not visible.filter(pk=int(raw)).exists():
            raise Http404(f"No such {scope}.")
        if scope == "household":
            household_ids = [int(raw)]
        else:
            portfolio_ids = [int(raw)]
    elif membership.role not in FIRM_WIDE_ROLES:
        household_ids = list(
            household_list_visible(membership=membership).values_list("pk", flat=True)
        )
    try:
        run = rebalance_run_start(
            trigger=RunTrigger.MANUAL,
            actor=signed_in_user(request),
            preview=preview,
            portfolio_ids=portfolio_ids,
            household_ids=household_ids,
        )
    except RebalanceError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
        return redirect("portfolios:rebalance_run_list")
    return redirect("portfolios:rebalance_run_detail", pk=run.pk)


# --------------------------------------------------------------------------- run


def _progress_context(run: RebalanceRun) -> dict[str, Any]:
    return {"run": run, "active": run.status in ACTIVE, "percent": round(run.progress * 100)}


@login_required
@require_GET
def rebalance_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request, READERS)
    run = _run(membership, pk)
    wanted = request.GET.get("status", "")
    if wanted not in RunPortfolioStatus.values:
        wanted = ""
    rows = run_portfolio_list(membership=membership, run=run, status=wanted or None)
    context = {
        **_progress_context(run),
        "rows": [{"row": r, "why": trigger_text(r.trigger)} for r in rows[:500]],
        "row_count": rows.count(),
        "statuses": RunPortfolioStatus.choices,
        "wanted": wanted,
        "can_decide": membership.role in DECIDERS
        and not run.preview
        and run.status == RunStatus.AWAITING_APPROVAL,
        "can_reject": membership.role in DECIDERS
        and run.status in (RunStatus.AWAITING_APPROVAL, RunStatus.PREVIEW),
    }
    return render(request, "portfolios/rebalance_run.html", context)


@login_required
@require_GET
def rebalance_run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress bar alone, polled every second while the run computes or executes;
    once it ends, the page reloads (HX-Refresh) to show the proposals."""
    run = _run(_membership(request, READERS), pk)
    context = _progress_context(run)
    response = render(request, "portfolios/_run_progress.html", context)
    if not context["active"] and request.GET.get("polling"):
        response["HX-Refresh"] = "true"
    return response


def _whole_run_allowed(membership: Membership, run: RebalanceRun) -> None:
    if membership.role in FIRM_WIDE_ROLES:
        return
    waiting = RunPortfolio.objects.filter(run=run, status__in=[*WAITING, "held"])
    if waiting.exclude(portfolio__in=portfolio_list_visible(membership=membership)).exists():
        raise PermissionDenied(
            "This run holds proposals of households not assigned to you: decide your "
            "portfolios one by one, or ask a firm admin."
        )


@login_required
@require_POST
def rebalance_run_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    membership = _membership(request, DECIDERS)
    run = _run(membership, pk)
    _whole_run_allowed(membership, run)
    note = request.POST.get("note", "").strip()
    try:
        if decision == "approve":
            count = rebalance_run_approve(run=run, actor=signed_in_user(request), note=note)
            messages.success(request, f"Approved: {count} portfolio(s) sent for execution.")
        else:
            count = rebalance_run_reject(run=run, actor=signed_in_user(request), note=note)
            messages.success(request, f"Rejected: {count} proposal(s) will not trade.")
    except RebalanceError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
    return redirect("portfolios:rebalance_run_detail", pk=run.pk)


@login_required
@require_GET
def rebalance_run_portfolio(request: HttpRequest, pk: int, portfolio_id: int) -> HttpResponse:
    membership = _membership(request, READERS)
    run = _run(membership, pk)
    row = _row(membership, run, portfolio_id)
    orders = [
        {"order": o, "reason": reason_text(o.reason)} for o in proposal_orders(run_portfolio=row)
    ]
    context = {
        "run": run,
        "row": row,
        "trigger": trigger_text(row.trigger),
        "orders": orders,
        "can_decide": membership.role in DECIDERS
        and not run.preview
        and row.status in WAITING
        and run.status
        in (RunStatus.AWAITING_APPROVAL, RunStatus.APPROVED, RunStatus.EXECUTING, RunStatus.DONE),
    }
    return render(request, "portfolios/rebalance_proposal.html", context)


@login_required
@require_POST
def rebalance_run_portfolio_decide(
    request: HttpRequest, pk: int, portfolio_id: int, decision: str
) -> HttpResponse:
    membership = _membership(request, DECIDERS)
    run = _run(membership, pk)
    row = _row(membership, run, portfolio_id)
    try:
        run_portfolio_decide(
            run_portfolio=row,
            actor=signed_in_user(request),
            approve=decision == "approve",
            note=request.POST.get("note", "").strip(),
        )
        messages.success(request, "Approved." if decision == "approve" else "Rejected.")
    except RebalanceError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
    return redirect("portfolios:rebalance_run_portfolio", pk=run.pk, portfolio_id=portfolio_id)


# --------------------------------------------------------------------------- blotter


def _blotter(request: HttpRequest, membership: Membership) -> QuerySet[Order]:
    get = request.GET

    def integer(name: str) -> int | None:
        value = get.get(name, "")
        return int(value) if value.isdigit() and int(value) <= MAX_ID else None

    status = get.get("status", "")
    side = get.get("side", "")
    return order_list(
        membership=membership,
        run_id=integer("run"),
        status=status if status in OrderStatus.values else None,
        side=side if side in OrderSide.values else None,
        asset=get.get("asset", "").strip() or None,
        portfolio_id=integer("portfolio"),
        date_from=_date(get.get("date_from", "")),
        date_to=_date(get.get("date_to", "")),
    )


def _date(value: str) -> dt.date | None:
    try:
        return parse_date(value) if value else None
    except ValueError:
        return None


@login_required
@require_GET
def order_blotter(request: HttpRequest) -> HttpResponse:
    membership = _membership(request, READERS)
    orders = _blotter(request, membership)
    context = {
        "orders": [{"order": o, "reason": reason_text(o.reason)} for o in orders[:500]],
        "total": orders.count(),
        "query": request.GET.urlencode(),
        "filters": request.GET,
        "statuses": OrderStatus.choices,
        "sides": OrderSide.choices,
    }
    return render(request, "portfolios/order_blotter.html", context)


@login_required
@require_GET
def order_blotter_csv(request: HttpRequest) -> StreamingHttpResponse:
    membership = _membership(request, READERS)
    orders = _blotter(request, membership)
    firm = membership.firm

    def stream() -> Iterator[str]:
        # After the request's transaction: the firm and a transaction of its own.
        with firm_context(firm), transaction.atomic():
            yield from orders_csv_lines(orders)

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="orders.csv"'
    return response


# --------------------------------------------------------------------------- investor


@login_required
@require_GET
def my_portfolio(request: HttpRequest) -> HttpResponse:
    membership = getattr(request, "membership", None)
    if not isinstance(membership, Membership):
        raise PermissionDenied
    portfolios = []
    own = portfolio_list_visible(membership=membership).filter(client__user=signed_in_user(request))
    for portfolio in own:
        rows, nav = portfolio_allocation(portfolio=portfolio)
        trades = portfolio_trades(membership=membership, portfolio_id=portfolio.pk)
        portfolios.append(
            {
                "portfolio": portfolio,
                "nav": nav,
                "rows": rows,
                "svg": allocation_svg(
                    [(r.symbol, r.weight, r.target) for r in rows],
                    title=f"{portfolio.number}: now against target",
                ),
                "trades": [
                    {"order": o, "reason": reason_text(o.reason)}
                    for o in (trades[:100] if trades is not None else [])
                ],
            }
        )
    return render(request, "portfolios/my_portfolio.html", {"portfolios": portfolios})
