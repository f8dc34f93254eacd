"""The demo's strategies: each demo firm's model library, built from the fixture data.

A firm seeder of :mod:`accounts.demo` (runs once per firm, inside its context and
transaction, after the global market-data seeder). Everything goes through the
services, so the versions and audit events are the real thing. Idempotent: a
strategy is found by name, and computing it again on the same prices returns the
existing version (same fingerprint) and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accounts.demo import SEED_ACTOR, Created, DemoFirm
from accounts.models import Firm
from portfolios.models_market import Asset, PriceFrequency
from portfolios.models_strategy import StrategyStatus, VersionTrigger
from portfolios.selectors_strategy import strategy_get_by_name
from portfolios.services_strategy import (
    StrategyInputError,
    strategy_create,
    strategy_update,
    strategy_version_compute,
)

ETF_FAMILY = ("VTI", "VXUS", "BND", "BNDX", "VTIP")
LARGE_CAPS = ("AAPL", "MSFT", "AMZN", "GOOGL", "META", "BRK-B", "JPM", "JNJ", "V", "TSLA")
CRYPTO = (
    "BTC",
    "ETH",
    "XRP",
    "SOL",
    "BNB",
    "DOGE",
    "ADA",
    "DOT",
    "LTC",
    "AVAX",
    "LINK",
    "MATIC",
)


@dataclass(frozen=True)
class DemoStrategy:
    name: str
    method: str
    universe: tuple[str, ...]
    frequency: str
    risk_levels: tuple[int, int]
    parameters: dict[str, Any] = field(default_factory=dict)
    explanation: str = ""


DEMO_STRATEGIES: tuple[DemoStrategy, ...] = (
    DemoStrategy(
        "ETF Conservative",
        "min_variance",
        ETF_FAMILY,
        PriceFrequency.MONTHLY,
        (1, 3),
        {"lookback": 60, "weight_bounds": [0.0, 0.6]},
        "Mostly bond funds, chosen so that the value moves as little as possible; "
        "no single fund above 60%.",
    ),
    DemoStrategy(
        "ETF Balanced",
        "efficient_risk",
        ETF_FAMILY,
        PriceFrequency.MONTHLY,
        (4, 6),
        {"lookback": 60, "target_volatility": 0.09, "weight_bounds": [0.0, 0.6]},
        "A mix of stock and bond funds with the best expected return for ups and downs "
        "of about 9% a year.",
    ),
    DemoStrategy(
        "ETF Growth",
        "efficient_risk",
        ETF_FAMILY,
        PriceFrequency.MONTHLY,
        (7, 9),
        {"lookback": 60, "target_volatility": 0.13, "weight_bounds": [0.0, 0.7]},
        "Mostly stock funds, for investors who can ride out ups and downs of about 13% a year.",
    ),
    DemoStrategy(
        "US Large-Cap Equity",
        "market_cap",
        LARGE_CAPS,
        PriceFrequency.DAILY,
        (8, 10),
        {"max_weight": 0.15},
    ),
    DemoStrategy(
        "Crypto Top 10 Index",
        "index",
        CRYPTO,
        PriceFrequency.DAILY,
        (10, 10),
        {"top_n": 10, "max_weight": 0.25, "lookback": 365},
    ),
)


def strategy_seeder(firm: Firm, spec: DemoFirm) -> Created:
    """Create the firm's demo strategies and their first versions (idempotent)."""
    created = Created()
    known = set(Asset.objects.values_list("symbol", flat=True))
    for demo in DEMO_STRATEGIES:
        if not set(demo.universe) <= known:
            continue  # market data not loaded: nothing to build from
        strategy = strategy_get_by_name(name=demo.name)
        if strategy is None:
            strategy = strategy_create(
                actor=None,
                actor_label=SEED_ACTOR,
                name=demo.name,
                method=demo.method,
                universe=demo.universe,
                parameters=demo.parameters,
                price_frequency=demo.frequency,
                risk_level_min=demo.risk_levels[0],
                risk_level_max=demo.risk_levels[1],
                explanation=demo.explanation,
            )
            created.add("strategies")
        try:
            _, new = strategy_version_compute(
                strategy=strategy, trigger=VersionTrigger.SYSTEM, actor_label=SEED_ACTOR
            )
        except StrategyInputError:
            continue  # e.g. prices missing for this universe: left as a draft
        if new:
            created.add("model versions")
        if strategy.status == StrategyStatus.DRAFT:
            strategy_update(
                strategy=strategy,
                actor=None,
                actor_label=SEED_ACTOR,
                status=StrategyStatus.ACTIVE,
            )
            created.add("strategies activated")
    return created
