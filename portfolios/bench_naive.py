"""The naive baseline of ``bench_rebalance``: a rebalance written the way a first
version would be, one portfolio at a time.

Per portfolio, in its own committed transaction: ORM reads of the portfolio, its
client, strategy, latest version, policy, holdings (with their assets), tax lots,
pending cash flows, the household's recent ledger and the latest ``Price`` objects;
a one-portfolio :class:`engine.BookState` through the same engine
(``portfolios.engine.rebalance.rebalance``) and the same compliance rules
(``compliance.rules.evaluate`` on the firm's current rule set); then
``RunPortfolio(...).save()``, one ``Order(...).save()`` per order, one
``OrderLot(...).save()`` per lot pick and one ``audit_record(...)``.

The rules' client facts (risk profiles, KYC, household concentration) are left at
"unknown", as the batch path leaves them when the rule set reads none: the bench
firm has only the built-in rules (no short sale, no negative cash, restricted
list, wash sales), which read none of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
from django.db import transaction
from django.db.models import Q

from accounts.models import Client
from compliance import rules as compliance_rules
from compliance.services.audit import audit_record
from portfolios import services_rebalance
from portfolios.engine import rebalance as engine
from portfolios.models import Portfolio, PortfolioType
from portfolios.models_holdings import (
    CashFlow,
    CashFlowKind,
    CashFlowStatus,
    Holding,
    LedgerEntry,
    LedgerKind,
    TaxLot,
)
from portfolios.models_market import Asset, AssetClass, Price, PriceStatus
from portfolios.models_rebalance import (
    Order,
    OrderLot,
    OrderSide,
    OrderStatus,
    RebalancePolicy,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
)
from portfolios.models_strategy import Strategy, StrategyVersion

CENT = Decimal("0.01")
RULES_NOTE = (
    "evaluated with compliance.rules.evaluate on the firm's current rule set "
    "(built-in rules only; client facts left unknown, as none of them reads any)"
)


def naive_rebalance(*, run: RebalanceRun, portfolio_ids: Sequence[int], force: bool) -> int:
    """Rebalance ``portfolio_ids`` one by one into ``run``; returns the orders written."""
    orders = 0
    for pid in portfolio_ids:
        with transaction.atomic():
            orders += _one(run=run, pid=pid, force=force)
    return orders


def _share(value: float) -> Decimal:
    return Decimal(f"{value:.8f}")


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def _one(*, run: RebalanceRun, pid: int, force: bool) -> int:
    as_of = run.prices_as_of
    portfolio = Portfolio.objects.get(pk=pid)
    client = Client.objects.get(pk=portfolio.client_id)
    assert portfolio.strategy_id is not None, "bench portfolios follow a strategy"
    strategy = Strategy.objects.get(pk=portfolio.strategy_id)
    policy = (
        portfolio.rebalance_policy
        or strategy.rebalance_policy
        or RebalancePolicy.objects.get(is_firm_default=True)
    )
    version = StrategyVersion.objects.filter(strategy=strategy).order_by("-number").first()
    assert version is not None, "bench strategies have a version"
    holdings = list(Holding.objects.filter(portfolio=portfolio).select_related("asset"))
    taxable = portfolio.account_type == PortfolioType.TAXABLE
    lots = (
        list(TaxLot.objects.filter(portfolio=portfolio, quantity__gt=0).order_by("pk"))
        if taxable
        else []
    )
    flows = list(CashFlow.objects.filter(portfolio=portfolio, status=CashFlowStatus.PENDING))
    flow = sum(
        (f.amount if f.kind == CashFlowKind.DEPOSIT else -f.amount for f in flows), Decimal(0)
    )
    by_id = {h.asset.pk: h.asset for h in holdings}
    for asset in Asset.objects.filter(symbol__in=list(version.weights)):
        by_id.setdefault(asset.pk, asset)
    assets = [by_id[a] for a in sorted(by_id)]
    col = {a.pk: j for j, a in enumerate(assets)}
    latest = {
        p.asset_id: p
        for p in Price.objects.filter(asset__in=assets, status=PriceStatus.OK, date__lte=as_of)
        .order_by("asset_id", "-date", "frequency")
        .distinct("asset_id")
    }
    snapshot = services_rebalance.policy_snapshot(policy)
    policy_in = services_rebalance.engine_policy(snapshot)
    steps = [
        a.quantity_step
        if a.fractional and (snapshot["fractional"] or a.asset_class == AssetClass.CRYPTO)
        else Decimal(1)
        for a in assets
    ]
    since = as_of - dt.timedelta(days=int(snapshot["wash_sale_days"]))
    a_count = len(assets)
    loss_sale = np.zeros((1, a_count), dtype=bool)
    purchase = np.zeros((1, a_count), dtype=bool)
    for entry in LedgerEntry.objects.filter(
        Q(kind=LedgerKind.BUY) | Q(kind=LedgerKind.SELL, realised_gain__lt=0),
        household_id=client.household_id,
        trade_date__gte=since,
        trade_date__lte=as_of,
    ):
        if entry.asset_id in col:
            matrix = purchase if entry.kind == LedgerKind.BUY else loss_sale
            matrix[0, col[entry.asset_id]] = True
    holding_row = np.zeros((1, a_count))
    for h in holdings:
        holding_row[0, col[h.asset.pk]] = float(h.quantity)
    target = np.zeros((1, a_count))
    for symbol, weight in version.weights.items():
        target[0, next(j for j, a in enumerate(assets) if a.symbol == symbol)] = float(weight)
    prices = np.array([float(latest[a.pk].close) for a in assets])
    book = engine.BookState(
        prices=prices,
        quantity_step=np.array([float(s) for s in steps]),
        holdings=holding_row,
        cash=np.array([float(portfolio.cash)]),
        cash_flow=np.array([float(flow)]),
        target_index=np.zeros(1, dtype=np.int64),
        targets=target,
        force=np.array([force]),
        taxable=np.array([taxable]),
        household=np.array([client.household_id], dtype=np.int64),
        lot_portfolio=np.zeros(len(lots), dtype=np.int64),
        lot_asset=np.array([col[lot.asset_id] for lot in lots], dtype=np.int64),
        lot_quantity=np.array([float(lot.quantity) for lot in lots]),
        lot_unit_cost=np.array([float(lot.unit_cost) for lot in lots]),
        lot_acquired=np.array([lot.acquired_on.toordinal() for lot in lots], dtype=np.int64),
        as_of=as_of.toordinal(),
        recent_loss_sale=loss_sale,
        recent_purchase=purchase,
    )
    proposal = engine.rebalance(book, policy_in)

    _, rules = services_rebalance.RULE_SET_PROVIDERS[-1]()
    classes = sorted({a.asset_class for a in assets})
    sectors = sorted({a.sector for a in assets if a.sector})
    minus_one = np.full(1, -1, dtype=np.int64)
    rules_book = compliance_rules.Book(
        asset_class=np.array([classes.index(a.asset_class) for a in assets], dtype=np.int64),
        class_names=tuple(classes),
        sector=np.array(
            [sectors.index(a.sector) if a.sector else -1 for a in assets], dtype=np.int64
        ),
        sector_names=tuple(sectors),
        symbols=tuple(a.symbol for a in assets),
        prices=prices,
        holdings=holding_row,
        cash=book.cash,
        cash_flow=book.cash_flow,
        portfolio_client=np.array([client.pk], dtype=np.int64),
        portfolio_household=book.household,
        portfolio_strategy=np.array([strategy.pk], dtype=np.int64),
        strategy_risk_level=minus_one,
        profile_band_low=minus_one,
        profile_band_high=minus_one,
        profile_risk_level=minus_one,
        profile_expires=minus_one,
        open_flags=np.zeros(1, dtype=np.int64),
        kyc_complete=np.ones(1, dtype=bool),
        client_restricted=np.zeros((1, a_count), dtype=bool),
        recent_loss_sale=loss_sale,
        recent_purchase=purchase,
        as_of=as_of.toordinal(),
    )
    live, orders_in = services_rebalance.proposal_live_orders(proposal)
    evaluation = compliance_rules.evaluate(rules_book, orders_in, rules)
    outcome = int(evaluation.portfolio_outcome[0])
    status = services_rebalance._status_for(
        outcome, portfolio.discretionary, bool(len(live)) or flow != 0
    )
    trigger = engine.Trigger(int(proposal.trigger[0])).name
    RunPortfolio(
        run=run,
        portfolio=portfolio,
        status=status,
        trigger=trigger,
        policy_id_used=policy.pk,
        strategy_version=version,
        nav=_money(proposal.nav[0]),
        cash_before=portfolio.cash,
        cash_flow=flow,
        cash_after=_money(proposal.cash_after[0]),
        max_drift=_share(proposal.max_drift[0]),
        turnover=_share(proposal.turnover[0]),
        compliance_outcome=outcome,
        state={
            "holdings": {str(h.asset.pk): str(h.quantity) for h in holdings},
            "cash": str(portfolio.cash),
            "lots": [[lot.pk, str(lot.quantity), str(lot.unit_cost)] for lot in lots],
        },
    ).save()
    eval_row = np.full(proposal.n_orders, -1, dtype=np.int64)
    eval_row[live] = np.arange(len(live))
    order_status = services_rebalance.ORDER_STATUS_OF.get(status, OrderStatus.PROPOSED)
    for o in range(proposal.n_orders):
        j = int(proposal.order_asset[o])
        quantity = services_rebalance._quantity(proposal.order_quantity[o], steps[j])
        price = latest[assets[j].pk].close
        e = int(eval_row[o])
        band = float(proposal.order_band[o])
        order = Order(
            run=run,
            portfolio=portfolio,
            asset=assets[j],
            side=OrderSide.BUY if proposal.order_side[o] > 0 else OrderSide.SELL,
            quantity=quantity,
            price=price,
            value=(quantity * price).quantize(CENT, ROUND_HALF_EVEN),
            estimated_cost=_money(proposal.order_cost[o]),
            reason=engine.Reason(int(proposal.order_reason[o])).name,
            drift=_share(proposal.order_drift[o]),
            band=_share(band) if np.isfinite(band) else None,
            status=OrderStatus.SKIPPED if e < 0 else order_status,
            compliance_outcome=0 if e < 0 else int(evaluation.order_outcome[e]),
            rule_outcomes=b"" if e < 0 else evaluation.outcomes_packed(e),
            failures=[]
            if e < 0
            else [
                {"rule_id": f.rule_id, "kind": f.kind, "message": f.message}
                for f in evaluation.failures(e)
            ],
        )
        order.save()
        for m in np.flatnonzero(proposal.lot_order == o).tolist():
            OrderLot(
                order=order,
                lot=lots[int(proposal.lot_index[m])],
                quantity=services_rebalance._quantity(proposal.lot_sold_quantity[m], steps[j]),
                realised_gain=_money(proposal.lot_realised_gain[m]),
                short_term=bool(proposal.lot_short_term[m]),
            ).save()
    if status != RunPortfolioStatus.NO_TRADE:
        audit_record(
            action="rebalance.portfolio_proposed",
            actor_label="bench_naive",
            object_type="portfolio",
            object_id=pid,
            run_id=str(run.pk),
            payload={"status": status, "trigger": trigger, "orders": len(live)},
            reasons=sorted({engine.Reason(int(r)).name for r in proposal.order_reason.tolist()}),
        )
    return len(live)
