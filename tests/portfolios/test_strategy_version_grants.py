"""Strategy versions, second layer: the application role holds no UPDATE, DELETE or
TRUNCATE on the version tables (advisor/grants.py), and behind the REVOKE the trigger
refuses changes to everyone, the owner included."""

from __future__ import annotations

import psycopg.errors
import pytest
from django.db import DatabaseError, connection, connections, transaction

from accounts.models import Role
from accounts.tenancy import firm_context
from advisor.grants import VERSION_TABLES, application_role, grant_statements
from portfolios.engine.customise import Customisation
from portfolios.models_market import PriceFrequency
from portfolios.models_strategy import CustomisedVersion, StrategyVersion
from portfolios.services_market import MARKET_FIXTURES, assets_seed, prices_import
from portfolios.services_strategy import (
    customised_version_get_or_compute,
    strategy_create,
    strategy_version_compute,
)
from tests.conftest import FirmWorld

BOTH = ["default", "owner"]


def _rows(world: FirmWorld) -> dict[str, int]:
    assets_seed()
    prices_import(paths=sorted((MARKET_FIXTURES / "etf_monthly").glob("*.csv")), actor=None)
    with firm_context(world.firm), transaction.atomic():
        strategy = strategy_create(
            actor=world.user(Role.ADVISOR),
            name="Balanced",
            method="equal_weight",
            universe=["VTI", "BND"],
            parameters={"lookback": 24},
            price_frequency=PriceFrequency.MONTHLY,
        )
        version, _ = strategy_version_compute(strategy=strategy)
        custom, _ = customised_version_get_or_compute(
            version=version, customisation=Customisation(excluded_assets=frozenset({"BND"}))
        )
    return {"portfolios_strategyversion": version.pk, "portfolios_customisedversion": custom.pk}


def test_grant_statements_revoke_changes_on_the_version_tables() -> None:
    statements = grant_statements("app", {*VERSION_TABLES, "other"})
    for table in VERSION_TABLES:
        assert f'REVOKE UPDATE, DELETE, TRUNCATE ON "{table}" FROM "app"' in statements
    assert not any('"other"' in s for s in statements)


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_application_role_cannot_update_delete_or_truncate_a_version(firm_a: FirmWorld) -> None:
    ids = _rows(firm_a)
    assert connection.settings_dict["USER"] == application_role()
    assert application_role() != connections["owner"].settings_dict["USER"]

    def attempt(table: str, pk: int, sql: str) -> None:
        with firm_context(firm_a.firm), transaction.atomic(), connection.cursor() as cursor:
            # The row is visible to this role; it still may not change.
            cursor.execute(f"SELECT count(*) FROM {table} WHERE id = %s", [pk])
            assert cursor.fetchone() == (1,)
            cursor.execute(sql, [pk] if "%s" in sql else [])

    for table, pk in ids.items():
        for verb, sql in [
            ("UPDATE", f"UPDATE {table} SET created_at = created_at WHERE id = %s"),
            ("DELETE", f"DELETE FROM {table} WHERE id = %s"),
            ("TRUNCATE", f"TRUNCATE {table} CASCADE"),
        ]:
            with pytest.raises(DatabaseError, match="permission denied") as refused:
                attempt(table, pk, sql)
            cause = refused.value.__cause__
            assert isinstance(cause, psycopg.errors.InsufficientPrivilege), (table, verb)
    with firm_context(firm_a.firm), transaction.atomic():
        assert StrategyVersion.objects.filter(pk=ids["portfolios_strategyversion"]).exists()
        assert CustomisedVersion.objects.filter(pk=ids["portfolios_customisedversion"]).exists()


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_the_owner_has_the_privilege_and_the_trigger_still_refuses(firm_a: FirmWorld) -> None:
    ids = _rows(firm_a)
    owner = connections["owner"]

    def attempt(table: str, pk: int) -> None:
        with transaction.atomic(using="owner"), owner.cursor() as cursor:
            cursor.execute("SELECT set_config('app.firm_id', %s, true)", [str(firm_a.firm.pk)])
            cursor.execute(f"UPDATE {table} SET created_at = created_at WHERE id = %s", [pk])

    for table, pk in ids.items():
        with pytest.raises(DatabaseError, match="immutable"):
            attempt(table, pk)
