"""Reads of market data. Strategies and rebalancing use only ``ok`` prices."""

from __future__ import annotations

import datetime as dt

import pandas as pd  # type: ignore[import-untyped]
from django.db.models import QuerySet

from portfolios.models_market import (
    Asset,
    ImportBatch,
    MarketCapObservation,
    Price,
    PriceFrequency,
    PriceStatus,
)


def asset_list() -> QuerySet[Asset]:
    return Asset.objects.order_by("symbol")


def asset_get(*, symbol: str) -> Asset | None:
    return Asset.objects.filter(symbol=symbol.upper()).first()


def price_list(
    *,
    asset: Asset,
    start: dt.date | None = None,
    end: dt.date | None = None,
    frequency: str | None = None,
    status: str | None = None,
) -> QuerySet[Price]:
    """Every stored price of ``asset`` (any status unless asked), oldest first."""
    prices = Price.objects.filter(asset=asset)
    if start is not None:
        prices = prices.filter(date__gte=start)
    if end is not None:
        prices = prices.filter(date__lte=end)
    if frequency:
        prices = prices.filter(frequency=frequency)
    if status:
        prices = prices.filter(status=status)
    return prices.order_by("frequency", "date")


def price_usable_queryset() -> QuerySet[Price]:
    """The prices strategies, backtests and rebalancing may use: status ``ok`` only.

    A price held for review (or rejected) is invisible here until it is released.
    """
    return Price.objects.filter(status=PriceStatus.OK)


def price_held_list() -> QuerySet[Price]:
    return Price.objects.filter(status=PriceStatus.HELD).select_related("asset").order_by("date")


def price_matrix(
    *,
    symbols: list[str],
    start: dt.date | None = None,
    end: dt.date | None = None,
    frequency: str = PriceFrequency.DAILY,
) -> pd.DataFrame:
    """Usable closes as floats, dates x symbols (columns in the order asked).

    A date on which some asset has no usable price holds NaN for it; the caller
    decides (forward fill, drop). Unknown symbols raise ``KeyError`` naming them.
    """
    wanted = [s.upper() for s in symbols]
    known = set(Asset.objects.filter(symbol__in=wanted).values_list("symbol", flat=True))
    missing = [s for s in wanted if s not in known]
    if missing:
        raise KeyError(f"unknown asset(s): {', '.join(missing)}")
    prices = price_usable_queryset().filter(asset__symbol__in=wanted, frequency=frequency)
    if start is not None:
        prices = prices.filter(date__gte=start)
    if end is not None:
        prices = prices.filter(date__lte=end)
    rows = list(prices.values_list("date", "asset__symbol", "close"))
    if not rows:
        return pd.DataFrame(columns=wanted, dtype=float)
    frame = pd.DataFrame(rows, columns=["date", "symbol", "close"])
    frame["close"] = frame["close"].astype(float)
    matrix = frame.pivot(index="date", columns="symbol", values="close")
    matrix.index = pd.DatetimeIndex(matrix.index)
    return matrix.reindex(columns=wanted).sort_index()


def market_cap_latest(*, symbols: list[str], as_of: dt.date | None = None) -> dict[str, float]:
    """The latest market cap of each symbol on or before ``as_of`` (missing: left out)."""
    observations = MarketCapObservation.objects.filter(asset__symbol__in=symbols)
    if as_of is not None:
        observations = observations.filter(date__lte=as_of)
    latest: dict[str, float] = {}
    for symbol, value in observations.order_by("asset__symbol", "date").values_list(
        "asset__symbol", "value"
    ):
        latest[symbol] = float(value)
    return latest


def market_cap_units(*, symbols: list[str]) -> dict[str, float]:
    """Units outstanding implied by each symbol's latest market cap observation: its
    value over the usable close on or before that date (left out when there is none).

    Backtests hold these constant and value them at each decision date's prices, so
    an index is picked by market caps as of that date, not by later ones.
    """
    latest: dict[str, tuple[float, dt.date]] = {}
    for symbol, cap, on in (
        MarketCapObservation.objects.filter(asset__symbol__in=symbols)
        .order_by("asset__symbol", "date")
        .values_list("asset__symbol", "value", "date")
    ):
        latest[symbol] = (float(cap), on)
    units: dict[str, float] = {}
    for symbol, (value, observed_on) in latest.items():
        close = (
            price_usable_queryset()
            .filter(asset__symbol=symbol, date__lte=observed_on)
            .order_by("-date")
            .values_list("close", flat=True)
            .first()
        )
        if close:
            units[symbol] = value / float(close)
    return units


def import_batch_list() -> QuerySet[ImportBatch]:
    return ImportBatch.objects.order_by("-created_at", "-id")
