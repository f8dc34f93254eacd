"""Reads of portfolio state: prices as of now, holdings against targets, the book's
drift matrix, ledgers and cash flows, effective rebalancing policies.

Values and weights:

* a holding is valued at its asset's latest ``ok`` price (any frequency; daily first
  on the same date), :func:`price_latest_map`;
* a portfolio's value (NAV) is its settled cash plus its holdings' values;
* weights are shares of the NAV; cash is a row of its own (asset class ``cash``);
* targets come from the strategy's latest version (highest number), scaled by
  ``1 - cash_target`` of the portfolio's effective policy; the cash target is
  ``cash_target``; so targets add up to 1 like the weights;
* drift is ``weight - target`` (weight units; 0.05 is 5 percentage points).

Everything reads the current firm; :func:`book_drift_matrix` runs a fixed number of
queries whatever the size of the book (no query per portfolio).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce

from accounts.book_selectors import portfolio_list_visible
from accounts.models import Membership
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.models_holdings import CashFlow, CashFlowKind, CashFlowStatus, Holding, LedgerEntry
from portfolios.models_market import Asset, Price, PriceStatus
from portfolios.models_rebalance import Order, RebalancePolicy
from portfolios.models_strategy import StrategyVersion

CASH = "cash"
MONEY = Decimal("0.01")
WEIGHT = Decimal("1e-8")
ZERO = Decimal(0)


# --- prices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatestPrice:
    date: dt.date
    close: Decimal


def price_latest_map(
    *, asset_ids: Iterable[int], as_of: dt.date | None = None
) -> dict[int, LatestPrice]:
    """The latest usable (``ok``) close of each asset (on or before ``as_of`` when given),
    in one query; assets without one are left out. A daily and a monthly close of the
    same date: the daily one."""
    ids = sorted(set(asset_ids))
    if not ids:
        return {}
    prices = Price.objects.filter(asset_id__in=ids, status=PriceStatus.OK)
    if as_of is not None:
        prices = prices.filter(date__lte=as_of)
    rows = (
        prices.order_by("asset_id", "-date", "frequency")
        .distinct("asset_id")
        .values_list("asset_id", "date", "close")
    )
    return {asset_id: LatestPrice(date, close) for asset_id, date, close in rows}


def strategy_version_latest_map(*, strategy_ids: Iterable[int]) -> dict[int, StrategyVersion]:
    """The latest version (highest number) of each strategy, in one query."""
    ids = sorted(set(strategy_ids))
    if not ids:
        return {}
    versions = (
        StrategyVersion.objects.filter(strategy_id__in=ids)
        .order_by("strategy_id", "-number")
        .distinct("strategy_id")
    )
    return {v.strategy_id: v for v in versions}


# --- policies ------------------------------------------------------------------------------


def rebalance_policy_list() -> QuerySet[RebalancePolicy]:
    return RebalancePolicy.objects.order_by("-is_firm_default", "name", "id")


def rebalance_policy_get(*, policy_id: int) -> RebalancePolicy | None:
    return RebalancePolicy.objects.filter(pk=policy_id).first()


def rebalance_policy_default_find() -> RebalancePolicy | None:
    """The firm's default policy, if one exists (reads only; see
    :func:`portfolios.services_book.rebalance_policy_default_get`)."""
    return RebalancePolicy.objects.filter(is_firm_default=True).first()


def rebalance_policy_default_or_unsaved() -> RebalancePolicy:
    """The firm's default policy, or (when none was created yet) an unsaved policy with
    the model's defaults, which is what the default will be created with."""
    return rebalance_policy_default_find() or RebalancePolicy(name="Firm default")


def rebalance_policy_effective_read(*, portfolio: Portfolio) -> RebalancePolicy:
    """The portfolio's own policy, else its strategy's, else the firm default (unsaved
    when none exists yet). Reads only."""
    policy_id = rebalance_policy_effective_ids(portfolio_ids=[portfolio.pk]).get(portfolio.pk)
    if policy_id is not None:
        found = rebalance_policy_get(policy_id=policy_id)
        if found is not None:
            return found
    return rebalance_policy_default_or_unsaved()


def rebalance_policy_effective_ids(*, portfolio_ids: Iterable[int]) -> dict[int, int | None]:
    """Portfolio id -> the id of its own policy, else its strategy's, else None (the
    firm default applies), in one query."""
    rows = (
        Portfolio.objects.filter(pk__in=list(portfolio_ids))
        .annotate(effective=Coalesce("rebalance_policy_id", "strategy__rebalance_policy_id"))
        .values_list("pk", "effective")
    )
    return dict(rows)


# --- cash flows ----------------------------------------------------------------------------


def cash_flow_list(*, portfolio: Portfolio, status: str | None = None) -> QuerySet[CashFlow]:
    flows = CashFlow.objects.filter(portfolio=portfolio)
    if status:
        flows = flows.filter(status=status)
    return flows.order_by("-requested_at", "-id")


def cash_flow_pending_withdrawals(*, portfolio: Portfolio) -> Decimal:
    total = ZERO
    for amount in CashFlow.objects.filter(
        portfolio=portfolio, kind=CashFlowKind.WITHDRAWAL, status=CashFlowStatus.PENDING
    ).values_list("amount", flat=True):
        total += amount
    return total


# --- one portfolio -------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldingRow:
    asset_id: int | None  # None: the cash row
    symbol: str
    name: str
    asset_class: str
    quantity: Decimal
    price: Decimal | None
    price_date: dt.date | None
    value: Decimal | None  # None when the asset has no usable price
    weight: Decimal | None
    target_weight: Decimal
    drift: Decimal | None


@dataclass(frozen=True)
class PortfolioHoldings:
    portfolio_id: int
    cash: Decimal
    invested: Decimal
    nav: Decimal
    strategy_id: int | None
    strategy_version: int | None
    cash_target: Decimal
    rows: list[HoldingRow] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)  # symbols held without a usable price


def _q(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum)


def portfolio_value(*, portfolio: Portfolio) -> Decimal:
    """Settled cash plus holdings at their latest usable prices (unpriced ones count 0)."""
    holdings = list(Holding.objects.filter(portfolio=portfolio).values_list("asset_id", "quantity"))
    prices = price_latest_map(asset_ids=[a for a, _ in holdings])
    invested = sum(
        (q * prices[a].close for a, q in holdings if a in prices),
        start=ZERO,
    )
    return _q(portfolio.cash + invested, MONEY)


def portfolio_holdings(*, portfolio: Portfolio) -> PortfolioHoldings:
    """Holdings of ``portfolio`` with value, weight, target weight and drift; the
    strategy's assets not held appear with quantity 0; cash is the last row."""
    holdings = dict(Holding.objects.filter(portfolio=portfolio).values_list("asset_id", "quantity"))
    version = (
        strategy_version_latest_map(strategy_ids=[portfolio.strategy_id]).get(portfolio.strategy_id)
        if portfolio.strategy_id
        else None
    )
    policy = rebalance_policy_effective_read(portfolio=portfolio)
    cash_target = policy.cash_target
    target_by_symbol = version.weights_decimal() if version is not None else {}
    assets = {
        a.pk: a
        for a in Asset.objects.filter(
            Q(pk__in=list(holdings)) | Q(symbol__in=list(target_by_symbol))
        )
    }
    prices = price_latest_map(asset_ids=assets)
    invested = sum((q * prices[a].close for a, q in holdings.items() if a in prices), start=ZERO)
    nav = portfolio.cash + invested
    scale = 1 - cash_target
    by_symbol = {a.symbol: a for a in assets.values()}
    order = list(target_by_symbol) + sorted(
        assets[a].symbol for a in holdings if assets[a].symbol not in target_by_symbol
    )
    rows = []
    unpriced = []
    for symbol in order:
        asset = by_symbol.get(symbol)
        if asset is None:  # a target symbol unknown to the platform: nothing to show
            continue
        quantity = holdings.get(asset.pk, ZERO)
        price = prices.get(asset.pk)
        target = _q(target_by_symbol.get(symbol, ZERO) * scale, WEIGHT)
        value = weight = drift = None
        if price is not None:
            value = _q(quantity * price.close, MONEY)
            weight = _q(quantity * price.close / nav, WEIGHT) if nav else ZERO
            drift = weight - target
        elif quantity:
            unpriced.append(symbol)
        rows.append(
            HoldingRow(
                asset.pk,
                symbol,
                asset.name,
                asset.asset_class,
                quantity,
                None if price is None else price.close,
                None if price is None else price.date,
                value,
                weight,
                target,
                drift,
            )
        )
    cash_weight = _q(portfolio.cash / nav, WEIGHT) if nav else ZERO
    target_cash = cash_target if version is not None else ZERO
    rows.append(
        HoldingRow(
            None,
            "CASH",
            "Cash",
            CASH,
            portfolio.cash,
            Decimal(1),
            None,
            portfolio.cash,
            cash_weight,
            target_cash,
            cash_weight - target_cash,
        )
    )
    return PortfolioHoldings(
        portfolio_id=portfolio.pk,
        cash=portfolio.cash,
        invested=_q(invested, MONEY),
        nav=_q(nav, MONEY),
        strategy_id=portfolio.strategy_id,
        strategy_version=None if version is None else version.number,
        cash_target=target_cash,
        rows=rows,
        unpriced=unpriced,
    )


def portfolio_ledger(*, portfolio: Portfolio, kind: str | None = None) -> QuerySet[LedgerEntry]:
    """The portfolio's ledger, newest first (``kind``: one of LedgerKind)."""
    entries = LedgerEntry.objects.filter(portfolio=portfolio).select_related("asset")
    if kind:
        entries = entries.filter(kind=kind)
    return entries.order_by("-trade_date", "-id")


def portfolio_trades(*, portfolio: Portfolio) -> QuerySet[LedgerEntry]:
    """Executed trades (buys and sells of the ledger), newest first."""
    return portfolio_ledger(portfolio=portfolio).filter(kind__in=["buy", "sell"])


def portfolio_orders(*, portfolio: Portfolio) -> QuerySet[Order]:
    """Orders rebalancing runs proposed for the portfolio, newest run first."""
    return (
        Order.objects.filter(portfolio=portfolio)
        .select_related("asset")
        .order_by("-run_id", "asset__symbol")
    )


def portfolio_get_visible(*, membership: Membership, portfolio_id: int) -> Portfolio | None:
    return portfolio_list_visible(membership=membership).filter(pk=portfolio_id).first()


# --- the book's drift matrix ---------------------------------------------------------------


@dataclass(frozen=True)
class DriftRow:
    portfolio_id: int
    number: str
    household_id: int
    strategy_id: int | None
    nav: Decimal
    drift: dict[str, Decimal]  # asset class -> weight - target (classes of the matrix)
    max_abs_drift: Decimal


@dataclass(frozen=True)
class DriftMatrix:
    asset_classes: list[str]
    rows: list[DriftRow]


def book_drift_matrix(
    *,
    membership: Membership,
    portfolio_ids: Iterable[int] | None = None,
    open_only: bool = False,
    as_of: dt.date | None = None,
) -> DriftMatrix:
    """Drift per asset class of every portfolio the caller sees (portfolios x classes):
    weight of the class in the NAV minus its target, the target as the rebalancing
    engine sets it (the strategy's weights scaled by one less the policy's cash target,
    and the cash target itself). Prices are the latest usable close (on or before
    ``as_of`` when given). Portfolios without a strategy (or whose strategy has no
    version) are left out, and closed ones with ``open_only``. Seven queries in all."""
    visible = portfolio_list_visible(membership=membership).filter(strategy__isnull=False)
    if open_only:
        visible = visible.filter(status=PortfolioStatus.OPEN)
    if portfolio_ids is not None:
        visible = visible.filter(pk__in=list(portfolio_ids))
    portfolios = list(
        visible.annotate(
            effective_policy=Coalesce("rebalance_policy_id", "strategy__rebalance_policy_id")
        ).values_list("pk", "number", "client__household_id", "strategy_id", "cash",
                      "effective_policy")
    )  # fmt: skip
    if not portfolios:
        return DriftMatrix([], [])
    held: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
    for portfolio_id, asset_id, quantity in Holding.objects.filter(
        portfolio_id__in=visible.values("pk")
    ).values_list("portfolio_id", "asset_id", "quantity"):
        held[portfolio_id].append((asset_id, quantity))
    versions = strategy_version_latest_map(strategy_ids=[p[3] for p in portfolios])
    symbols = {s for v in versions.values() for s in v.weights}
    asset_ids = {a for rows in held.values() for a, _ in rows}
    assets = {
        a: (symbol, cls)
        for a, symbol, cls in Asset.objects.filter(
            Q(pk__in=asset_ids) | Q(symbol__in=symbols)
        ).values_list("pk", "symbol", "asset_class")
    }
    class_of_symbol = dict(assets.values())
    prices = price_latest_map(asset_ids=assets, as_of=as_of)
    policy_ids = {p[5] for p in portfolios if p[5] is not None}
    cash_targets = dict(
        RebalancePolicy.objects.filter(pk__in=policy_ids).values_list("pk", "cash_target")
    )
    default_cash = rebalance_policy_default_or_unsaved().cash_target
    # Class targets per version, computed once per version.
    version_targets: dict[int, dict[str, Decimal]] = {}
    for strategy_id, version in versions.items():
        by_class: dict[str, Decimal] = defaultdict(Decimal)
        for symbol, weight in version.weights.items():
            by_class[class_of_symbol.get(symbol, "unknown")] += Decimal(weight)
        version_targets[strategy_id] = dict(by_class)
    classes: set[str] = set()
    rows = []
    for pk, number, household_id, strategy_id, cash, policy_id in portfolios:
        if strategy_id not in version_targets:
            continue
        cash_target = cash_targets.get(policy_id, default_cash) if policy_id else default_cash
        values: dict[str, Decimal] = defaultdict(Decimal)
        for asset_id, quantity in held.get(pk, []):
            price = prices.get(asset_id)
            if price is not None:
                values[assets[asset_id][1]] += quantity * price.close
        nav = cash + sum(values.values(), start=ZERO)
        targets = {cls: w * (1 - cash_target) for cls, w in version_targets[strategy_id].items()}
        targets[CASH] = targets.get(CASH, ZERO) + cash_target
        values[CASH] += cash
        drift = {}
        for cls in set(targets) | set(values):
            weight = values.get(cls, ZERO) / nav if nav else ZERO
            drift[cls] = _q(weight - targets.get(cls, ZERO), WEIGHT)
        classes |= set(drift)
        rows.append(
            DriftRow(
                pk,
                number,
                household_id,
                strategy_id,
                _q(nav, MONEY),
                drift,
                max((abs(d) for d in drift.values()), default=ZERO),
            )
        )
    ordered = sorted(classes - {CASH}) + ([CASH] if CASH in classes else [])
    for row in rows:
        for cls in ordered:
            row.drift.setdefault(cls, ZERO)
    return DriftMatrix(ordered, rows)
