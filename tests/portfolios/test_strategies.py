"""Strategies and model versions: immutable, reused for identical inputs, nothing written
on bad input; customised versions shared per signature."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

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


def _version(world: FirmWorld, **overrides: object) -> StrategyVersion:
    with firm_context(world.firm):
        version, _ = strategy_version_compute(strategy=_balanced(world, **overrides))
    return version


@pytest.mark.parametrize(
    "change",
    [
        lambda v: StrategyVersion.objects.filter(pk=v.pk).update(number=7),
        lambda v: StrategyVersion.objects.filter(pk=v.pk).update(weights={"VTI": "1"}),
        lambda v: StrategyVersion.objects.filter(pk=v.pk).delete(),
        lambda v: v.save(),
    ],
    ids=["update-number", "update-weights", "delete", "orm-save"],
)
def test_versions_are_immutable_in_the_database(
    etf_prices: None, firm_a: FirmWorld, change: object
) -> None:
    version = _version(firm_a)
    assert (
        connections["default"].settings_dict["USER"] != connections["owner"].settings_dict["USER"]
    ), "runs as the application role"
    # The application role lacks UPDATE and DELETE (advisor/grants.py); the trigger
    # behind it is tested as the owner in test_strategy_version_grants.py.
    refused = pytest.raises((ProgrammingError, InternalError), match="permission denied")
    with firm_context(firm_a.firm):
        with refused, transaction.atomic():
            change(version)  # type: ignore[operator]
        fresh = StrategyVersion.objects.get(pk=version.pk)
        assert (fresh.number, fresh.weights) == (1, version.weights)


def test_customised_versions_are_immutable_too(etf_prices: None, firm_a: FirmWorld) -> None:
    version = _version(firm_a)
    with firm_context(firm_a.firm):
        row, _ = customised_version_get_or_compute(
            version=version, customisation=Customisation(excluded_assets=frozenset({"VTI"}))
        )
        errors = (ProgrammingError, InternalError)
        with pytest.raises(errors, match="permission denied"), transaction.atomic():
            CustomisedVersion.objects.filter(pk=row.pk).update(weights={})
        with pytest.raises(errors, match="permission denied"), transaction.atomic():
            CustomisedVersion.objects.filter(pk=row.pk).delete()


def test_identical_inputs_reuse_the_version_and_write_nothing(
    etf_prices: None, firm_a: FirmWorld
) -> None:
    with firm_context(firm_a.firm):
        strategy = _balanced(firm_a)
        first, created = strategy_version_compute(strategy=strategy)
        before = _counts()
        again, created_again = strategy_version_compute(
            strategy=strategy, trigger=VersionTrigger.SCHEDULE
        )
        assert created
        assert not created_again
        assert again.pk == first.pk
        assert _counts() == before


def test_changed_prices_make_a_new_version(etf_prices: None, firm_a: FirmWorld) -> None:
    with firm_context(firm_a.firm):
        strategy = _balanced(firm_a)
        first, _ = strategy_version_compute(strategy=strategy)
        # a new month of prices: a new price window, a new fingerprint, version 2
        for symbol in ETFS:
            last = Price.objects.filter(asset__symbol=symbol).order_by("-date").first()
            assert last is not None
            Price.objects.create(
                asset=last.asset,
                date=dt.date(2021, 6, 30),
                frequency=PriceFrequency.MONTHLY,
                close=last.close * Decimal("1.01"),
            )
        second, created = strategy_version_compute(strategy=strategy, trigger="schedule")
        assert created
        assert second.number == 2
        assert second.prices_as_of == dt.date(2021, 6, 30)
        assert second.fingerprint != first.fingerprint
        assert second.trigger == "schedule"
        # computing as of the old date finds version 1 again
        old, created_old = strategy_version_compute(strategy=strategy, as_of=dt.date(2021, 5, 31))
        assert (old.pk, created_old) == (first.pk, False)


def test_a_price_held_for_review_is_not_used(etf_prices: None, firm_a: FirmWorld) -> None:
    with firm_context(firm_a.firm):
        strategy = _balanced(firm_a)
        first, _ = strategy_version_compute(strategy=strategy)
        vti = Asset.objects.get(symbol="VTI")
        Price.objects.create(
            asset=vti,
            date=dt.date(2021, 6, 30),
            frequency=PriceFrequency.MONTHLY,
            close=Decimal("999"),
            status="held_for_review",
            status_reason="move of +300% is 20 standard deviations",
        )
        again, created = strategy_version_compute(strategy=strategy)
        assert (again.pk, created) == (first.pk, False)


@pytest.mark.parametrize(
    ("overrides", "field", "named"),
    [
        ({"parameters": {"target_volatility": 0.001, "lookback": 60}}, "parameters", "0.001"),
        ({"parameters": {"lookback": 120}}, "parameters", "BNDX"),
        (
            {"parameters": {"weight_bounds": [0.0, 0.1], "target_volatility": 0.09}},
            "parameters",
            "sum to one",
        ),
    ],
    ids=["target-below-minimum-volatility", "too-little-history", "bounds-cannot-sum-to-one"],
)
def test_bad_input_names_the_problem_and_writes_no_version(
    etf_prices: None, firm_a: FirmWorld, overrides: dict[str, object], field: str, named: str
) -> None:
    with firm_context(firm_a.firm):
        strategy = _balanced(firm_a, **overrides)
        before = _counts()
        with pytest.raises(StrategyInputError) as caught:
            strategy_version_compute(strategy=strategy)
        messages = caught.value.message_dict[field]
        assert any(named in m for m in messages), messages
        assert _counts() == before


def test_unknown_asset_is_refused_by_name(etf_prices: None, firm_a: FirmWorld) -> None:
    with firm_context(firm_a.firm):
        before = _counts()
        with pytest.raises(StrategyInputError, match="NOPE"):
            _balanced(firm_a, universe=[*ETFS, "nope"])
        assert not Strategy.objects.exists()
        # an asset the platform knows but holds no usable price for
        Asset.objects.create(symbol="NOPRICE", asset_class=AssetClass.US_EQUITY)
        strategy = _balanced(firm_a, universe=[*ETFS, "NOPRICE"])
        with pytest.raises(StrategyInputError, match="NOPRICE"):
            strategy_version_compute(strategy=strategy)
        assert _counts()[:2] == before[:2]


def test_unknown_parameter_and_bad_values_are_refused(etf_prices: None, firm_a: FirmWorld) -> None:
    with firm_context(firm_a.firm):
        with pytest.raises(StrategyInputError, match="target_vol"):
            _balanced(firm_a, parameters={"target_vol": 0.1})
        with pytest.raises(StrategyInputError, match="covariance_estimator"):
            _balanced(firm_a, parameters={"covariance_estimator": "magic"})
        with pytest.raises(StrategyInputError, match="GLD"):
            _balanced(firm_a, parameters={"exclusions": ["GLD"]})
        with pytest.raises(StrategyInputError, match="risk band"):
            _balanced(firm_a, risk_level_min=7, risk_level_max=3)


def test_customised_versions_are_shared_per_signature(etf_prices: None, firm_a: FirmWorld) -> None:
    version = _version(firm_a)
    with firm_context(firm_a.firm):
        one = Customisation(
            excluded_assets=frozenset({"VXUS", "BNDX"}), asset_bounds={"VTI": (0.0, 0.3)}
        )
        same = Customisation(
            excluded_assets=frozenset({"BNDX", "VXUS"}), asset_bounds={"VTI": (0.0, 0.30)}
        )
        first, created = customised_version_get_or_compute(version=version, customisation=one)
        events = AuditEvent.objects.count()
        second, created_again = customised_version_get_or_compute(
            version=version, customisation=same
        )
        assert created
        assert not created_again
        assert first.pk == second.pk
        assert AuditEvent.objects.count() == events
        assert first.weights["VXUS"] == first.weights["BNDX"] == "0.0000000000"
        assert Decimal(first.weights["VTI"]) <= Decimal("0.3")
        assert sum(Decimal(w) for w in first.weights.values()) == Decimal(1)
        none_row, _ = customised_version_get_or_compute(version=version, customisation=None)
        empty_row, _ = customised_version_get_or_compute(
            version=version, customisation=Customisation()
        )
        assert none_row.pk == empty_row.pk
        assert none_row.weights == version.weights
        assert CustomisedVersion.objects.count() == 2


def test_bad_customisation_names_the_problem(etf_prices: None, firm_a: FirmWorld) -> None:
    version = _version(firm_a)
    with firm_context(firm_a.firm):
        with pytest.raises(StrategyInputError, match="excludes every asset"):
            customised_version_get_or_compute(
                version=version, customisation=Customisation(excluded_assets=frozenset(ETFS))
            )
        assert not CustomisedVersion.objects.exists()


def test_update_is_audited_and_activation_needs_a_version(
    etf_prices: None, firm_a: FirmWorld
) -> None:
    advisor = firm_a.user(Role.ADVISOR)
    with firm_context(firm_a.firm):
        strategy = _balanced(firm_a)
        with pytest.raises(StrategyInputError, match="compute a version"):
            strategy_update(strategy=strategy, actor=advisor, status=StrategyStatus.ACTIVE)
        strategy_version_compute(strategy=strategy)
        updated = strategy_update(
            strategy=strategy, actor=advisor, status=StrategyStatus.ACTIVE, name="Balanced 60/40"
        )
        assert (updated.status, updated.name) == ("active", "Balanced 60/40")
        event = AuditEvent.objects.filter(action="strategy.updated").get()
        assert event.payload["before"] == {"name": "Balanced", "status": "draft"}
        assert event.payload["after"] == {"name": "Balanced 60/40", "status": "active"}
        retired = strategy_update(strategy=updated, actor=advisor, status=StrategyStatus.RETIRED)
        with pytest.raises(StrategyInputError, match="retired"):
            strategy_version_compute(strategy=retired)


def test_same_definition_in_two_firms_gives_separate_versions(
    etf_prices: None, firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    a = _version(firm_a)
    b = _version(firm_b)
    assert a.fingerprint == b.fingerprint
    assert a.pk != b.pk
    with firm_context(firm_a.firm):
        assert list(StrategyVersion.objects.values_list("pk", flat=True)) == [a.pk]
    with firm_context(firm_b.firm), pytest.raises(IntegrityError), transaction.atomic():
        # the unique (firm, strategy, fingerprint) holds in the database too
        StrategyVersion.objects.create(
            strategy_id=b.strategy_id,
            number=2,
            method=b.method,
            inputs=b.inputs,
            weights=b.weights,
            fingerprint=b.fingerprint,
            prices_as_of=b.prices_as_of,
            prices_digest=b.prices_digest,
            expected_return=b.expected_return,
            volatility=b.volatility,
            sharpe_ratio=b.sharpe_ratio,
            risk_free_rate=b.risk_free_rate,
            trigger="system",
            trigger_label="test",
        )


def test_scheduled_recompute_task_makes_new_versions_and_names_failures(
    etf_prices: None, firm_a: FirmWorld
) -> None:
    from portfolios.tasks import strategy_versions_recompute_task

    advisor = firm_a.user(Role.ADVISOR)
    with firm_context(firm_a.firm):
        good = _balanced(firm_a)
        strategy_version_compute(strategy=good)
        strategy_update(strategy=good, actor=advisor, status=StrategyStatus.ACTIVE)
        bad = _balanced(firm_a, name="Short history")
        strategy_version_compute(strategy=bad)
        strategy_update(strategy=bad, actor=advisor, status=StrategyStatus.ACTIVE)
        strategy_update(
            strategy=bad, actor=advisor, parameters={"target_volatility": 0.09, "lookback": 120}
        )
        _balanced(firm_a, name="Draft, not recomputed")
    unchanged = strategy_versions_recompute_task(firm_id=firm_a.firm.pk)
    assert unchanged["created"] == []
    assert unchanged["unchanged"] == ["Balanced"]
    assert "BNDX" in unchanged["failed"]["Short history"][0]
    with firm_context(firm_a.firm):
        for symbol in ETFS:
            last = Price.objects.filter(asset__symbol=symbol).order_by("-date").first()
            assert last is not None
            Price.objects.create(
                asset=last.asset,
                date=dt.date(2021, 6, 30),
                frequency=PriceFrequency.MONTHLY,
                close=last.close,
            )
    result = strategy_versions_recompute_task(firm_id=firm_a.firm.pk)
    assert result["created"] == [{"strategy": "Balanced", "number": 2}]
    with firm_context(firm_a.firm):
        newest = StrategyVersion.objects.get(strategy=good, number=2)
        assert (newest.trigger, newest.trigger_label) == ("schedule", "schedule")
        assert not StrategyVersion.objects.filter(strategy__name="Draft, not recomputed").exists()


def test_batch_customisation_computes_once_per_signature_in_a_few_queries(
    etf_prices: None, firm_a: FirmWorld, django_assert_max_num_queries: Any
) -> None:
    from portfolios.services_strategy import customised_versions_get_or_compute_many

    one = _version(firm_a)
    two = _version(firm_a, name="Growth", parameters={"target_volatility": 0.12, "lookback": 60})
    menu: list[Customisation | None] = [
        None,
        Customisation(excluded_assets=frozenset({"VXUS"})),
        Customisation(asset_bounds={"VTI": (0.0, 0.25)}),
        Customisation(class_tilts={"us_bonds": 0.05}),
        Customisation(excluded_tags=frozenset({"esg:none"})),
    ]
    pairs = [((one, two)[i % 2], menu[i % len(menu)]) for i in range(1000)]
    with firm_context(firm_a.firm):
        with django_assert_max_num_queries(12):
            rows = customised_versions_get_or_compute_many(pairs=pairs)
        assert len(rows) == 1000
        assert CustomisedVersion.objects.count() == 10
        assert (
            AuditEvent.objects.filter(action="strategy.customised_version_computed").count() == 10
        )
        assert len({r.pk for r in rows}) == 10
        # the single-pair service finds the very same rows
        for (version, cust), row in zip(pairs[:10], rows[:10], strict=True):
            same, created = customised_version_get_or_compute(version=version, customisation=cust)
            assert (same.pk, created) == (row.pk, False)
        with django_assert_max_num_queries(3):
            again = customised_versions_get_or_compute_many(pairs=pairs)
        assert [r.pk for r in again] == [r.pk for r in rows]
        assert CustomisedVersion.objects.count() == 10


def test_strategy_tables_are_protected_by_row_level_security(
    etf_prices: None, firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    version = _version(firm_a)
    with firm_context(firm_a.firm):
        customised_version_get_or_compute(version=version, customisation=None)
    tables = ("portfolios_strategy", "portfolios_strategyversion", "portfolios_customisedversion")
    with connections["default"].cursor() as cursor:  # the catalogs are readable by all
        cursor.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = ANY(%s) ORDER BY relname",
            [list(tables)],
        )
        assert [row[1:] for row in cursor.fetchall()] == [(True, True)] * 3
    for table in tables:
        # as the application role: the rows are there for firm alpha, invisible to beta
        for world, expected in ((firm_b, 0), (firm_a, 1)):
            with (
                firm_context(world.firm),
                transaction.atomic(),
                connections["default"].cursor() as cursor,
            ):
                cursor.execute(f"SELECT count(*) FROM {table}")
                assert cursor.fetchone() == (expected,), (table, world.firm.slug)


def test_index_universe_is_screened_with_reasons_recorded(firm_a: FirmWorld) -> None:
    assets_seed()
    prices_import(paths=sorted((MARKET_FIXTURES / "crypto_daily").glob("*.csv")), actor=None)
    from portfolios.services_market import market_caps_seed

    market_caps_seed()
    coins = ["BTC", "ETH", "XRP", "SOL", "BNB", "DOGE", "USDT", "USDC"]
    with firm_context(firm_a.firm):
        strategy = strategy_create(
            actor=firm_a.user(Role.ADVISOR),
            name="Crypto top 4",
            method="index",
            universe=coins,
            parameters={"top_n": 4, "max_weight": 0.4, "lookback": 365},
            price_frequency=PriceFrequency.DAILY,
            screening={"max_volatility": 0.9},
        )
        version, _ = strategy_version_compute(strategy=strategy)
        reasons = {(e["symbol"], e["rule"]) for e in version.details["screening"]}
        assert {("USDT", "stablecoin"), ("USDC", "stablecoin")} <= reasons
        assert all(e["reason"].startswith(e["symbol"]) for e in version.details["screening"])
        too_volatile = {s for s, rule in reasons if rule == "max_volatility"}
        held = [s for s, w in version.weights.items() if Decimal(w) > 0]
        assert len(held) == 4
        assert not set(held) & (too_volatile | {"USDT", "USDC"})
        assert set(version.details["members"]) == set(held)
        event = AuditEvent.objects.get(action="strategy.version_computed")
        audited = {(e["symbol"], e["rule"], e["reason"]) for e in event.payload["screening"]}
        assert audited == {
            (e["symbol"], e["rule"], e["reason"]) for e in version.details["screening"]
        }
        with pytest.raises(StrategyInputError, match="unknown screening rule"):
            strategy_update(strategy=strategy, actor=None, screening={"max_vol": 1})
