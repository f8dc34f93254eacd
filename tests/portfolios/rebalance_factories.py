"""Small books for rebalancing tests, built directly (no services, no audit)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

from accounts.models import Client, Firm, Household
from accounts.tenancy.context import firm_context
from portfolios.models import (
    Asset,
    AssetClass,
    Holding,
    Portfolio,
    PortfolioType,
    Price,
    Strategy,
    StrategyStatus,
    StrategyVersion,
    TaxLot,
)

AS_OF = dt.date(2025, 1, 31)


def asset_make(
    symbol: str,
    price: str,
    *,
    asset_class: str = AssetClass.US_EQUITY,
    fractional: bool = False,
    step: str = "1",
) -> Asset:
    asset, _ = Asset.objects.get_or_create(
        symbol=symbol,
        defaults={
            "name": symbol,
            "asset_class": asset_class,
            "fractional": fractional,
            "quantity_step": Decimal(step),
        },
    )
    Price.objects.update_or_create(
        asset=asset, date=AS_OF, frequency="daily", defaults={"close": Decimal(price)}
    )
    return asset


def strategy_make(firm: Firm, name: str, weights: Mapping[str, str]) -> Strategy:
    with firm_context(firm):
        strategy = Strategy.objects.create(
            firm=firm,
            name=name,
            method="fixed",
            universe=list(weights),
            status=StrategyStatus.ACTIVE,
        )
        StrategyVersion.objects.create(
            firm=firm,
            strategy=strategy,
            number=1,
            method="fixed",
            inputs={"universe": list(weights)},
            weights=dict(weights),
            fingerprint=f"fp-{name}",
            prices_as_of=AS_OF,
            prices_digest="d",
            expected_return=Decimal("0.05"),
            volatility=Decimal("0.1"),
            sharpe_ratio=Decimal("0.5"),
            risk_free_rate=Decimal("0"),
            trigger="manual",
            trigger_label="test",
        )
    return strategy


def household_make(firm: Firm, name: str = "Household") -> Household:
    with firm_context(firm):
        return Household.objects.create(firm=firm, name=name)


def portfolio_make(
    firm: Firm,
    *,
    strategy: Strategy,
    holdings: Mapping[str, str],
    cash: str = "0",
    household: Household | None = None,
    account_type: str = PortfolioType.TRADITIONAL_IRA,
    discretionary: bool = True,
    lots: Mapping[str, list[tuple[dt.date, str, str]]] | None = None,
    number: str | None = None,
) -> Portfolio:
    with firm_context(firm):
        household = household or Household.objects.create(firm=firm, name="H")
        client = Client.objects.create(
            firm=firm, household=household, first_name="Ada", last_name="Lovelace"
        )
        count = Portfolio.objects.count()
        portfolio = Portfolio.objects.create(
            firm=firm,
            client=client,
            number=number or f"P-{firm.slug}-{count + 1}",
            account_type=account_type,
            discretionary=discretionary,
            strategy=strategy,
            cash=Decimal(cash),
        )
        for symbol, quantity in holdings.items():
            asset = Asset.objects.get(symbol=symbol)
            Holding.objects.create(
                firm=firm, portfolio=portfolio, asset=asset, quantity=Decimal(quantity)
            )
        for symbol, rows in (lots or {}).items():
            asset = Asset.objects.get(symbol=symbol)
            for acquired, quantity, unit_cost in rows:
                TaxLot.objects.create(
                    firm=firm,
                    portfolio=portfolio,
                    asset=asset,
                    acquired_on=acquired,
                    quantity=Decimal(quantity),
                    original_quantity=Decimal(quantity),
                    unit_cost=Decimal(unit_cost),
                )
    return portfolio


def bench_book_seed(firm: Firm, *, n: int, k: int, seed: int, noise: float | None = None) -> None:
    """A synthetic book of ``n`` portfolios x ``k`` positions, as the benchmark seeds it
    (``portfolios.bench_book.calibrated_book_seed``), committed block by block."""
    from portfolios import bench_book

    with firm_context(firm):
        bench_book.calibrated_book_seed(firm=firm, n=n, k=k, seed=seed, noise=noise)
