"""Reads of strategies, model versions and customised versions (current firm only)."""

from __future__ import annotations

from django.db.models import Count, Max, QuerySet

from portfolios.models_strategy import CustomisedVersion, Strategy, StrategyVersion


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
