"""Market data in the admin, and audit events when a firm member's request changes it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from accounts.models import Role, User
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify
from portfolios.models_market import ImportBatch, Price, PriceReview, PriceStatus
from portfolios.services_market import PriceSource, assets_seed, price_review, prices_import
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db

HEADER = "Date,Close,High,Low,Open,Volume\n"


def _spiky() -> bytes:
    closes = [100 * (1.01 if i % 2 else 0.99) for i in range(40)] + [300.0, 100.0]
    start = dt.date(2024, 1, 1)
    rows = "".join(f"{start + dt.timedelta(days=i)},{c},1,1,1,5\n" for i, c in enumerate(closes))
    return (HEADER + rows).encode()


def test_changes_made_in_a_firm_context_are_audited_in_that_firm(firm_a: FirmWorld) -> None:
    assets_seed()
    actor = firm_a.user(Role.FIRM_ADMIN)
    with firm_context(firm_a.firm):
        batch = prices_import(sources=[PriceSource("BTC.csv", _spiky())], actor=actor)
        held = Price.objects.get(status=PriceStatus.HELD)
        price_review(price=held, decision="rejected", note="bad tick", actor=actor)
        events = list(AuditEvent.objects.order_by("seq").values_list("action", "object_id"))
        assert events == [
            ("market.prices_imported", str(batch.pk)),
            ("market.price_rejected", str(held.pk)),
        ]
        payload = AuditEvent.objects.get(action="market.prices_imported").payload
        assert payload["held"] == 1
        assert payload["files"][0]["sha256"] == batch.files[0]["sha256"]
    assert audit_chain_verify(firm=firm_a.firm).ok


def test_the_admin_lists_market_data_and_reviews_held_prices(client) -> None:
    assets_seed()
    prices_import(sources=[PriceSource("BTC.csv", _spiky())], actor=None)
    operator = User.objects.create_superuser(username="op", password="pw-12345-long", email="")
    client.force_login(operator)
    for model in ("asset", "price", "importbatch", "pricereview", "marketcapobservation"):
        response = client.get(reverse(f"admin:portfolios_{model}_changelist"))
        assert response.status_code == 200, model
    held = Price.objects.get(status=PriceStatus.HELD)
    response = client.post(
        reverse("admin:portfolios_price_changelist"),
        {"action": "release_prices", "_selected_action": [str(held.pk)]},
    )
    assert response.status_code == 302
    held.refresh_from_db()
    assert held.status == PriceStatus.OK
    review = PriceReview.objects.get()
    assert (review.decision, review.actor_label) == ("released", "op")
    assert ImportBatch.objects.count() == 1
