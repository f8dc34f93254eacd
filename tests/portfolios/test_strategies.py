"""Strategies and model versions: immutable, reused for identical inputs, nothing written
on bad input; customised versions shared per signature."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connections, transaction
from django.db.utils import InternalError, ProgrammingError

from accounts.models import Role
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from portfolios.engine.customise import Customisation
from portfolios.models_market import Asset, AssetClass, Price, PriceFrequency
from portfolios.models_strategy import (
    CustomisedVersion,
    Strategy,
    StrategyStatus,
    StrategyVersion,
    VersionTrigger,
)
from portfolios.services_market import MARKET_FIXTURES, assets_seed, prices_import
from portfolios.services_strategy import (
    StrategyInputError,
    customised_version_get_or_compute,
    strategy_create,
    strategy_update,
    strategy_version_compute,
)
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db

ETFS = ["VTI", "VXUS", "BND", "BNDX", "VTIP"]


@pytest.fixture
def etf_prices() -> None:
    assets_seed()
    prices_import(paths=sorted((MARKET_FIXTURES / "etf_monthly").glob("*.csv")), actor=None)


def _balanced(world: FirmWorld, **overrides: object) -> Strategy:
    kwargs: dict[str, object] = {
        "actor": world.user(Role.ADVISOR),
        "name": "Balanced",
        "method": "efficient_risk",
        "universe": ETFS,
        "parameters": {"target_volatility": 0.09, "lookback": 60},
        "price_frequency": PriceFrequency.MONTHLY,
        "risk_level_min": 4,
        "risk_level_max": 6,
    }
    kwargs.update(overrides)
    return strategy_create(**kwargs)  # type: ignore[arg-type]


def _counts() -> tuple[int, int, int]:
    return (
        StrategyVersion.objects.count(),
        CustomisedVersion.objects.count(),
        AuditEvent.objects.count(),
    )


def test_compute_stores_an_audited_version_with_decimal_weights(
    etf_prices: None, firm_a: FirmWorld
) -> None:
    with firm_context(firm_a.firm):
        strategy = _balanced(firm_a)
        version, created = strategy_version_compute(
            strategy=strategy, trigger=VersionTrigger.USER, actor=firm_a.user(Role.ADVISOR)
        )
        assert created
        assert version.number == 1
        assert list(version.weights) == ETFS
        assert sum(Decimal(w) for w in version.weights.values()) == Decimal(1)
        assert all(len(w.split(".")[1]) == 10 for w in version.weights.values())
        assert version.volatility <= Decimal("0.0900000001")
        assert version.prices_as_of == dt.date(2021, 5, 31)
        assert len(version.fingerprint) == 64
        assert version.trigger == "user"
        assert version.trigger_label == firm_a.user(Role.ADVISOR).username
        event = AuditEvent.objects.get(action="strategy.version_computed")
        assert event.payload["fingerprint"] == version.fingerprint
        assert event.payload["inputs"]["target_volatility"] == repr(0.09)
        assert event.payload["weights"] == version.weights
