"""Reads of rebalancing: runs, each portfolio's proposal, the orders blotter, drift.

What a caller sees follows the client book's rules (``accounts.book_selectors``):

* firm admins and compliance officers: every run, proposal and order of the firm;
* advisors: every run of the firm (a run row carries only counts), but the proposals
  and orders of the households assigned to them only;
* investors: no run; their own portfolios' orders through :func:`portfolio_trades`.

Every function reads the current firm (firm-scoped managers) and is called inside the
request's transaction; reason codes become plain words here, once, for every screen.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from accounts.book_selectors import FIRM_WIDE_ROLES, portfolio_list_visible
from accounts.models import Membership, Role
from portfolios.engine.rebalance import Reason, Trigger
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.models_holdings import Holding
from portfolios.models_market import Asset, AssetClass
from portfolios.models_rebalance import (
    Order,
    OrderStatus,
    RebalanceRun,
    RunPortfolio,
)
from portfolios.selectors_book import (
    book_drift_matrix,
    price_latest_map,
    strategy_version_latest_map,
)

__all__ = [
    "ORDER_CSV_COLUMNS",
    "AllocationRow",
    "BookDrift",
    "DriftRow",
    "book_drift_by_class",
    "order_list",
    "orders_csv_lines",
    "portfolio_allocation",
    "portfolio_trades",
    "proposal_orders",
    "reason_text",
    "run_get_visible",
    "run_list_visible",
    "run_portfolio_get",
    "run_portfolio_list",
    "trigger_text",
]

RUN_READERS = frozenset({Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE})
ZERO = Decimal(0)
WEIGHT_QUANTUM = Decimal("0.0001")


# --------------------------------------------------------------------------- words


def reason_text(code: str) -> str:
    """The plain-language sentence of an engine reason code name (``BAND_REBALANCE``)."""
    try:
        return Reason[code].describe()
    except KeyError:
        return code.replace("_", " ").capitalize() + "."


def trigger_text(code: str) -> str:
    """The plain-language sentence of an engine trigger code name (``BAND``)."""
    try:
        return Trigger[code].describe()
    except KeyError:
        return code.replace("_", " ").capitalize() + "."


# --------------------------------------------------------------------------- runs


def run_list_visible(*, membership: Membership) -> QuerySet[RebalanceRun]:
    """Runs the caller may see: the firm's for staff roles, none for investors."""
    runs = RebalanceRun.objects.all().order_by("-created_at", "-id")
    if membership.role not in RUN_READERS:
        return runs.none()
    return runs


def run_get_visible(*, membership: Membership, run_id: int) -> RebalanceRun | None:
    return run_list_visible(membership=membership).filter(pk=run_id).first()


def run_portfolio_list(
    *, membership: Membership, run: RebalanceRun, status: str | None = None
) -> QuerySet[RunPortfolio]:
    """The run's portfolios the caller sees (advisors: their households' only)."""
    rows = RunPortfolio.objects.filter(run=run).select_related(
        "portfolio", "portfolio__client", "portfolio__client__household"
    )
    if membership.role not in FIRM_WIDE_ROLES:
        rows = rows.filter(portfolio__in=portfolio_list_visible(membership=membership))
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("-max_drift", "portfolio__number", "pk")


def run_portfolio_get(
    *, membership: Membership, run: RebalanceRun, portfolio_id: int
) -> RunPortfolio | None:
    return (
        run_portfolio_list(membership=membership, run=run).filter(portfolio_id=portfolio_id).first()
    )


def proposal_orders(*, run_portfolio: RunPortfolio) -> QuerySet[Order]:
    """One portfolio's orders of one run (skipped ones too: they keep their reason)."""
    return (
        Order.objects.filter(run_id=run_portfolio.run_id, portfolio_id=run_portfolio.portfolio_id)
        .select_related("asset")
        .order_by("side", "asset__symbol", "pk")
    )


# --------------------------------------------------------------------------- blotter


def order_list(
    *,
    membership: Membership,
    run_id: int | None = None,
    status: str | None = None,
    side: str | None = None,
    asset: str | None = None,
    portfolio_id: int | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> QuerySet[Order]:
    """The orders blotter: every order of the runs the caller sees, of the portfolios the
    caller sees, newest run first. Dates filter on the day the run was started."""
    orders = Order.objects.select_related("asset", "portfolio", "run")
    if membership.role not in RUN_READERS:
        return orders.none()
    if membership.role not in FIRM_WIDE_ROLES:
        orders = orders.filter(portfolio__in=portfolio_list_visible(membership=membership))
    if run_id is not None:
        orders = orders.filter(run_id=run_id)
    if status:
        orders = orders.filter(status=status)
    if side:
        orders = orders.filter(side=side)
    if asset:
        orders = orders.filter(asset__symbol__iexact=asset)
    if portfolio_id is not None:
        orders = orders.filter(portfolio_id=portfolio_id)
    if date_from is not None:
        orders = orders.filter(run__created_at__date__gte=date_from)
    if date_to is not None:
        orders = orders.filter(run__created_at__date__lte=date_to)
    return orders.order_by("-run__created_at", "-run_id", "portfolio__number", "asset__symbol")


ORDER_CSV_COLUMNS = (
    "run",
    "run_started",
    "portfolio",
    "symbol",
    "side",
    "quantity",
    "price",
    "value",
    "estimated_cost",
    "status",
    "reason",
    "reason_text",
    "drift",
    "compliance",
    "fill_quantity",
    "fill_price",
    "filled_at",
)


def _line(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def orders_csv_lines(orders: QuerySet[Order], *, chunk_size: int = 2000) -> Iterator[str]:
    """The blotter as CSV lines (header first), read with a server-side cursor so that a
    large blotter streams in constant memory. Call it inside a transaction."""
    yield _line(ORDER_CSV_COLUMNS)
    for order in orders.iterator(chunk_size=chunk_size):
        failures = "; ".join(str(f.get("message", "")) for f in order.failures or [])
        yield _line(
            [
                order.run_id,
                order.run.created_at.isoformat(),
                order.portfolio.number,
                order.asset.symbol,
                order.side,
                order.quantity.normalize(),
                order.price.normalize(),
                order.value,
                order.estimated_cost,
                order.status,
                order.reason,
                reason_text(order.reason),
                order.drift,
                failures,
                None if order.fill_quantity is None else order.fill_quantity.normalize(),
                None if order.fill_price is None else order.fill_price.normalize(),
                order.filled_at.isoformat() if order.filled_at else None,
            ]
        )


# --------------------------------------------------------------------------- investors


def portfolio_trades(*, membership: Membership, portfolio_id: int) -> QuerySet[Order] | None:
    """The filled orders of a portfolio the caller sees (an investor: their own), newest
    first; None when the portfolio is not visible (answer 404 like a missing one)."""
    portfolio = portfolio_list_visible(membership=membership).filter(pk=portfolio_id).first()
    if portfolio is None:
        return None
    return (
        Order.objects.filter(portfolio=portfolio, status=OrderStatus.FILLED)
        .select_related("asset", "run")
        .order_by("-filled_at", "-pk")
    )


# --------------------------------------------------------------------------- drift


@dataclass(frozen=True)
class AllocationRow:
    """One asset of a portfolio: its value, weight now and weight in its target."""

    symbol: str
    name: str
    asset_class: str
    value: Decimal
    weight: Decimal
    target: Decimal

    @property
    def drift(self) -> Decimal:
        return self.weight - self.target


@dataclass
class DriftRow:
    portfolio_id: int
    number: str
    name: str
    household: str
    nav: Decimal
    drifts: list[Decimal | None]  # per class of BookDrift.classes; None: neither held nor target
    max_drift: Decimal

    @property
    def max_drift_points(self) -> Decimal:
        return self.max_drift * 100


@dataclass
class BookDrift:
    classes: list[tuple[str, str]]  # (code, label)
    rows: list[DriftRow] = field(default_factory=list)
    total: int = 0


@dataclass
class _Valued:
    values: dict[int, dict[int, Decimal]]  # portfolio -> asset -> value
    nav: dict[int, Decimal]
    assets: dict[int, tuple[str, str, str]]  # id -> (symbol, name, class)
    targets: dict[int, dict[str, Decimal]]  # strategy -> symbol -> weight


def _value(portfolios: list[Portfolio], as_of: dt.date) -> _Valued:
    pids = [p.pk for p in portfolios]
    held: dict[int, dict[int, Decimal]] = defaultdict(dict)
    for pid, aid, qty in Holding.objects.filter(portfolio_id__in=pids).values_list(
        "portfolio_id", "asset_id", "quantity"
    ):
        held[pid][aid] = qty
    targets = {
        sid: {symbol: Decimal(str(w)) for symbol, w in v.weights.items()}
        for sid, v in strategy_version_latest_map(
            strategy_ids=[p.strategy_id for p in portfolios if p.strategy_id]
        ).items()
    }
    symbols = {s for weights in targets.values() for s in weights}
    asset_ids = {aid for per in held.values() for aid in per}
    assets = {
        aid: (symbol, name, cls)
        for aid, symbol, name, cls in Asset.objects.filter(pk__in=sorted(asset_ids)).values_list(
            "pk", "symbol", "name", "asset_class"
        )
    }
    assets.update(
        {
            aid: (symbol, name, cls)
            for aid, symbol, name, cls in Asset.objects.filter(
                symbol__in=sorted(symbols)
            ).values_list("pk", "symbol", "name", "asset_class")
        }
    )
    prices = {a: p.close for a, p in price_latest_map(asset_ids=asset_ids, as_of=as_of).items()}
    values: dict[int, dict[int, Decimal]] = {}
    nav: dict[int, Decimal] = {}
    for p in portfolios:
        per = {aid: qty * prices.get(aid, ZERO) for aid, qty in held.get(p.pk, {}).items()}
        values[p.pk] = per
        nav[p.pk] = sum(per.values(), ZERO) + p.cash
    return _Valued(values, nav, assets, targets)


def _weight(value: Decimal, nav: Decimal) -> Decimal:
    return (value / nav).quantize(WEIGHT_QUANTUM) if nav > 0 else ZERO


SORTS = {
    "drift": lambda r: (-r.max_drift, r.number),
    "nav": lambda r: (-r.nav, r.number),
    "name": lambda r: (r.name.lower() or r.number.lower(), r.number),
    "number": lambda r: (r.number,),
}


def book_drift_by_class(
    *,
    membership: Membership,
    as_of: dt.date | None = None,
    sort: str = "drift",
    limit: int | None = 500,
) -> BookDrift:
    """The drift of every open portfolio the caller sees, per asset class, as
    :func:`book_drift_matrix` computes it for the API (the same numbers on the page and
    in the API, against the targets the engine trades to), with each portfolio's name
    and household. Sorted by ``sort`` (drift, nav, name, number), first ``limit`` rows;
    ``total`` counts them all."""
    if sort not in SORTS:
        raise ValueError(f"sort: one of {', '.join(SORTS)}")
    portfolios = {
        p.pk: p
        for p in portfolio_list_visible(membership=membership)
        .filter(status=PortfolioStatus.OPEN, strategy__isnull=False)
        .select_related("client__household")
    }
    # The same filters, not a list of ids: a book of 100,000 would be one long IN list.
    matrix = book_drift_matrix(membership=membership, open_only=True, as_of=as_of)
    labels = dict(AssetClass.choices)
    rows = []
    for row in matrix.rows:
        p = portfolios.get(row.portfolio_id)
        if p is None:  # opened between the two reads
            continue
        rows.append(
            DriftRow(
                portfolio_id=p.pk,
                number=p.number,
                name=p.name or str(p.client),
                household=p.client.household.name,
                nav=row.nav,
                drifts=[row.drift.get(c) for c in matrix.asset_classes],
                max_drift=row.max_abs_drift,
            )
        )
    rows.sort(key=SORTS[sort])
    return BookDrift(
        classes=[
            (c, str(labels.get(c, c.replace("_", " ").capitalize()))) for c in matrix.asset_classes
        ],
        rows=rows if limit is None else rows[:limit],
        total=len(rows),
    )


def portfolio_allocation(
    *, portfolio: Portfolio, as_of: dt.date | None = None
) -> tuple[list[AllocationRow], Decimal]:
    """Each asset held or targeted: value, weight now, target weight; and the NAV
    (cash included). Cash is a row of its own with a target of zero."""
    as_of = as_of or timezone.localdate()
    valued = _value([portfolio], as_of)
    nav = valued.nav[portfolio.pk]
    target = valued.targets.get(portfolio.strategy_id or 0, {})
    by_symbol = {symbol: aid for aid, (symbol, _, _) in valued.assets.items()}
    rows = []
    for symbol in sorted(set(target) | {valued.assets[a][0] for a in valued.values[portfolio.pk]}):
        aid = by_symbol.get(symbol)
        value = valued.values[portfolio.pk].get(aid, ZERO) if aid is not None else ZERO
        _, name, cls = valued.assets.get(aid or 0, (symbol, symbol, ""))
        rows.append(
            AllocationRow(
                symbol=symbol,
                name=name,
                asset_class=cls,
                value=value.quantize(Decimal("0.01")),
                weight=_weight(value, nav),
                target=target.get(symbol, ZERO),
            )
        )
    rows.append(
        AllocationRow(
            symbol="Cash",
            name="Cash",
            asset_class=AssetClass.CASH,
            value=portfolio.cash,
            weight=_weight(portfolio.cash, nav),
            target=ZERO,
        )
    )
    return rows, nav.quantize(Decimal("0.01"))
