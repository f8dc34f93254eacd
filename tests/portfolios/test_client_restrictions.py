"""Client restrictions: validated field by field, audited, firm-isolated, read in one
query as engine customisations, previewed against a strategy's current weights."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from portfolios.engine.customise import Customisation
from portfolios.models_market import Asset, PriceFrequency
from portfolios.models_strategy import ClientRestriction
from portfolios.selectors_strategy import customisations_for_clients
from portfolios.services_market import MARKET_FIXTURES, assets_seed, prices_import
from portfolios.services_restriction import (
    client_restriction_clear,
    client_restriction_preview,
    client_restriction_set,
)
from portfolios.services_strategy import strategy_create, strategy_version_compute
from tests.accounts.book import Book, make_book
from tests.conftest import PASSWORD, FirmWorld

pytestmark = pytest.mark.django_db

ETFS = ["VTI", "VXUS", "BND", "BNDX", "VTIP"]


@pytest.fixture
def book(firm_a: FirmWorld) -> Book:
    assets_seed()
    return make_book(firm_a)


def _set(world: FirmWorld, book: Book, data: dict[str, Any]) -> ClientRestriction:
    return client_restriction_set(
        firm=world.firm, actor=world.user(Role.ADVISOR), client=book.client, data=data
    )


def _a_tag() -> str:
    with transaction.atomic():
        tagged = Asset.objects.exclude(tags=[]).order_by("symbol").first()
    assert tagged is not None, "the seeded assets carry tags"
    return str(tagged.tags[0])


def test_set_stores_normalised_restrictions_and_audits_before_and_after(
    firm_a: FirmWorld, book: Book
) -> None:
    tag = _a_tag()
    row = _set(
        firm_a,
        book,
        {
            "excluded_assets": ["vti", "VTI"],
            "excluded_tags": [tag],
            "asset_bounds": {"bnd": [0, "0.3"]},
            "class_tilts": {"us_equity": 0.05, "us_bonds": 0},
            "note": " ethical ",
        },
    )
    assert row.excluded_assets == ["VTI"]
    assert row.asset_bounds == {"BND": [0.0, 0.3]}
    assert row.class_tilts == {"us_equity": 0.05}
    assert row.note == "ethical"
    assert row.updated_by == firm_a.user(Role.ADVISOR)
    _set(firm_a, book, {"excluded_assets": ["BND"]})
    with firm_context(firm_a.firm), transaction.atomic():
        events = list(AuditEvent.objects.filter(action="client.restrictions_set").order_by("seq"))
        assert [e.object_id for e in events] == [str(book.client.pk)] * 2
        assert events[0].payload["before"] is None
        assert events[1].payload["before"]["excluded_assets"] == ["VTI"]
        assert events[1].payload["after"]["excluded_assets"] == ["BND"]
        assert events[1].payload["after"]["excluded_tags"] == [], "a PUT replaces every field"
        assert ClientRestriction.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"excluded_assets": ["NOPE"]}, "excluded_assets", "unknown asset 'NOPE'"),
        ({"excluded_assets": "VTI"}, "excluded_assets", "list"),
        ({"excluded_tags": ["no-such-tag"]}, "excluded_tags", "unknown tag 'no-such-tag'"),
        ({"asset_bounds": {"NOPE": [0, 1]}}, "asset_bounds", "unknown asset 'NOPE'"),
        ({"asset_bounds": {"VTI": [0, 1.2]}}, "asset_bounds", "must lie in [0, 1]"),
        ({"asset_bounds": {"VTI": [-0.1, 0.5]}}, "asset_bounds", "must lie in [0, 1]"),
        ({"asset_bounds": {"VTI": [0.6, 0.5]}}, "asset_bounds", "minimum 0.6 is above"),
        ({"asset_bounds": {"VTI": [0.1]}}, "asset_bounds", "pair"),
        ({"asset_bounds": {"VTI": ["x", 1]}}, "asset_bounds", "must be a number"),
        ({"class_tilts": {"gold": 0.1}}, "class_tilts", "unknown asset class 'gold'"),
        ({"class_tilts": {"us_equity": 1.5}}, "class_tilts", "must lie in [-1, 1]"),
        ({"class_tilts": {"us_equity": float("nan")}}, "class_tilts", "finite"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"note": 5}, "note", "text"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    firm_a: FirmWorld, book: Book, data: dict[str, Any], field: str, words: str
) -> None:
    with firm_context(firm_a.firm), transaction.atomic():
        before = (ClientRestriction.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ValidationError) as refused:
        _set(firm_a, book, data)
    assert field in refused.value.message_dict
    assert words in " ".join(refused.value.message_dict[field])
    with firm_context(firm_a.firm), transaction.atomic():
        assert (ClientRestriction.objects.count(), AuditEvent.objects.count()) == before


def test_clear_removes_and_audits_once(firm_a: FirmWorld, book: Book) -> None:
    _set(firm_a, book, {"excluded_assets": ["VTI"]})
    admin = firm_a.user(Role.FIRM_ADMIN)
    assert client_restriction_clear(firm=firm_a.firm, actor=admin, client=book.client)
    assert not client_restriction_clear(firm=firm_a.firm, actor=admin, client=book.client)
    with firm_context(firm_a.firm), transaction.atomic():
        assert not ClientRestriction.objects.exists()
        (event,) = AuditEvent.objects.filter(action="client.restrictions_cleared")
        assert event.payload["before"]["excluded_assets"] == ["VTI"]


def test_customisations_for_clients_in_one_query(firm_a: FirmWorld, book: Book) -> None:
    _set(firm_a, book, {"excluded_assets": ["VTI"], "class_tilts": {"us_bonds": -0.1}})
    client_restriction_set(
        firm=firm_a.firm, actor=None, client=book.other_client, data={"note": "nothing yet"}
    )
    with firm_context(firm_a.firm), transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            found = customisations_for_clients(
                client_ids=[book.client.pk, book.other_client.pk, 10**9]
            )
        selects = [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]
        assert len(selects) == 1
    assert found == {
        book.client.pk: Customisation(
            excluded_assets=frozenset({"VTI"}), class_tilts={"us_bonds": -0.1}
        )
    }
    assert customisations_for_clients(client_ids=[]) == {}


def test_another_firm_sees_nothing(firm_a: FirmWorld, firm_b: FirmWorld, book: Book) -> None:
    _set(firm_a, book, {"excluded_assets": ["VTI"]})
    make_book(firm_b)
    with firm_context(firm_b.firm), transaction.atomic():
        assert not ClientRestriction.objects.exists()
        assert customisations_for_clients(client_ids=[book.client.pk]) == {}
    with pytest.raises(Exception, match="another firm"):
        client_restriction_set(firm=firm_b.firm, actor=None, client=book.client, data={})
    api = APIClient()
    api.login(username=firm_b.user(Role.FIRM_ADMIN).username, password=PASSWORD)
    url = f"/api/v1/clients/{book.client.pk}/restrictions/"
    assert api.get(url).status_code == 404
    assert api.put(url, {"excluded_assets": []}, format="json").status_code == 404
    assert api.delete(url).status_code == 404


def test_api_roles_read_write_and_preview(firm_a: FirmWorld, book: Book) -> None:
    prices_import(paths=sorted((MARKET_FIXTURES / "etf_monthly").glob("*.csv")), actor=None)
    with firm_context(firm_a.firm), transaction.atomic():
        strategy = strategy_create(
            actor=None,
            name="Five ETFs",
            method="equal_weight",
            universe=ETFS,
            parameters={"lookback": 24},
            price_frequency=PriceFrequency.MONTHLY,
        )
        strategy_version_compute(strategy=strategy)
    url = f"/api/v1/clients/{book.client.pk}/restrictions/"
    advisor, investor, other_advisor = APIClient(), APIClient(), APIClient()
    advisor.login(username=firm_a.user(Role.ADVISOR).username, password=PASSWORD)
    investor.login(username=firm_a.user(Role.INVESTOR).username, password=PASSWORD)
    other_advisor.login(username=book.other_advisor.username, password=PASSWORD)

    assert advisor.get(url).json()["excluded_assets"] == []
    bad = advisor.put(url, {"asset_bounds": {"VTI": [0.5, 0.2]}}, format="json")
    assert bad.status_code == 400
    assert "asset_bounds" in bad.content.decode()
    ok = advisor.put(url, {"excluded_assets": ["VTI"], "note": "no US stocks"}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["updated_by"] == firm_a.user(Role.ADVISOR).username

    assert investor.get(url).json()["excluded_assets"] == ["VTI"], "investors read their own"
    assert investor.put(url, {}, format="json").status_code == 403
    assert investor.delete(url).status_code == 403
    assert other_advisor.get(url).status_code == 404, "not their household"

    preview = investor.get(url + f"preview/?strategy={strategy.pk}")
    assert preview.status_code == 200, preview.content
    rows = {r["symbol"]: r for r in preview.json()["weights"]}
    assert Decimal(rows["VTI"]["customised_weight"]) == 0
    assert Decimal(rows["VTI"]["strategy_weight"]) == Decimal("0.2")
    assert sum(Decimal(r["customised_weight"]) for r in rows.values()) == 1
    assert Decimal(rows["BND"]["customised_weight"]) == Decimal("0.25")
    assert advisor.get(url + "preview/").status_code == 400
    assert advisor.get(url + "preview/?strategy=999999999").status_code == 404

    assert advisor.delete(url).status_code == 204
    with firm_context(firm_a.firm), transaction.atomic():
        plain = client_restriction_preview(client=book.client, strategy=strategy)
    assert not plain["restricted"]
    assert all(r["customised_weight"] == r["strategy_weight"] for r in plain["weights"])
