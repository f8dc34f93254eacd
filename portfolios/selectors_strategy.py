"""Reads of strategies, model versions and customised versions (current firm only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd  # type: ignore[import-untyped]
from django.db.models import Count, Max, QuerySet

from portfolios.chunking import in_ids
from portfolios.engine.customise import Customisation
from portfolios.models_strategy import (
    ClientRestriction,
    CustomisedVersion,
    Strategy,
    StrategyStatus,
    StrategyVersion,
)
from portfolios.selectors_market import price_usable_queryset


def strategy_list(*, status: str | None = None, method: str | None = None) -> QuerySet[Strategy]:
    """The firm's strategies with their version count and latest version number."""
    strategies = Strategy.objects.select_related("created_by").annotate(
        version_count=Count("versions"), latest_version=Max("versions__number")
    )
    if status:
        strategies = strategies.filter(status=status)
    if method:
        strategies = strategies.filter(method=method)
    return strategies.order_by("name", "id")


def strategy_get(*, strategy_id: int) -> Strategy | None:
    return strategy_list().filter(pk=strategy_id).first()


def strategy_get_by_name(*, name: str) -> Strategy | None:
    return Strategy.objects.filter(name=name).first()


def strategy_version_list(*, strategy: Strategy) -> QuerySet[StrategyVersion]:
    return (
        StrategyVersion.objects.filter(strategy=strategy)
        .select_related("triggered_by")
        .order_by("-number")
    )


def strategy_version_get(*, strategy: Strategy, number: int) -> StrategyVersion | None:
    return strategy_version_list(strategy=strategy).filter(number=number).first()


def strategy_version_current(*, strategy: Strategy) -> StrategyVersion | None:
    """The version portfolios following ``strategy`` rebalance towards: the latest."""
    return strategy_version_list(strategy=strategy).first()


def customised_version_get(*, signature: str) -> CustomisedVersion | None:
    return CustomisedVersion.objects.filter(signature=signature).first()


def customised_version_list(*, version: StrategyVersion) -> QuerySet[CustomisedVersion]:
    return CustomisedVersion.objects.filter(version=version).order_by("id")


def volume_matrix(
    *, symbols: list[str], frequency: str, end: dt.date | None = None
) -> pd.DataFrame:
    """Traded volumes of usable prices, dates x symbols (NaN where none was reported)."""
    prices = price_usable_queryset().filter(
        asset__symbol__in=symbols, frequency=frequency, volume__isnull=False
    )
    if end is not None:
        prices = prices.filter(date__lte=end)
    rows = list(prices.values_list("date", "asset__symbol", "volume"))
    if not rows:
        return pd.DataFrame(columns=symbols, dtype=float)
    frame = pd.DataFrame(rows, columns=["date", "symbol", "volume"])
    frame["volume"] = frame["volume"].astype(float)
    matrix = frame.pivot(index="date", columns="symbol", values="volume")
    matrix.index = pd.DatetimeIndex(matrix.index)
    return matrix.reindex(columns=symbols).sort_index()


def strategy_list_for_risk_level(*, risk_level: int) -> list[Strategy]:
    """Active strategies whose risk band covers ``risk_level``, best fit first.

    Best fit: the band's middle closest to the level, then the narrower band, then the
    name. The profile mapping (onboarding) picks from these.
    """
    candidates = list(
        strategy_list(status=StrategyStatus.ACTIVE).filter(
            risk_level_min__lte=risk_level, risk_level_max__gte=risk_level
        )
    )
    return sorted(
        candidates,
        key=lambda s: (
            abs(2 * risk_level - s.risk_level_min - s.risk_level_max),
            s.risk_level_max - s.risk_level_min,
            s.name,
        ),
    )


def client_restriction_get(*, client_id: int) -> ClientRestriction | None:
    """The client's stored restrictions (current firm), or None."""
    return ClientRestriction.objects.filter(client_id=client_id).first()


def customisations_for_clients(*, client_ids: Iterable[int]) -> dict[int, Customisation]:
    """Client id -> engine customisation, in one query (current firm).

    Clients without restrictions, or whose restrictions are all empty, are absent:
    they follow the strategy's own weights.
    """
    ids = sorted({int(i) for i in client_ids})
    if not ids:
        return {}
    out: dict[int, Customisation] = {}
    for row in ClientRestriction.objects.filter(in_ids("client_id", ids)).only(
        "client_id", "excluded_assets", "excluded_tags", "asset_bounds", "class_tilts"
    ):
        customisation = row.as_customisation()
        if not customisation.is_empty:
            out[row.client_id] = customisation
    return out
