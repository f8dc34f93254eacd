"""The market-data API: reads for every signed-in user, imports and reviews for platform staff."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Role, User
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from portfolios.models_market import ImportBatch, Price, PriceStatus
from portfolios.services_market import MARKET_FIXTURES, assets_seed, market_caps_seed
from tests.api.conftest import token_for
from tests.conftest import FirmWorld
from tests.portfolios.test_market_import import MALFORMED

pytestmark = pytest.mark.django_db

IMPORT_URL = reverse("api:market-price-import")
HEADER = "Date,Close,High,Low,Open,Volume\n"


@pytest.fixture
def staff(db) -> User:
    assets_seed()
    return User.objects.create_user(username="operator", password="x-123456789", is_staff=True)


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def upload(*files: tuple[str, bytes], **extra: str) -> dict[str, object]:
    return {"files": [SimpleUploadedFile(name, data, "text/csv") for name, data in files], **extra}


def test_staff_uploads_every_format(staff: User) -> None:
    files = [
        ("BTC.csv", (MARKET_FIXTURES / "crypto_daily" / "BTC.csv").read_bytes()),
        ("AAPL.csv", (MARKET_FIXTURES / "stocks_daily" / "AAPL.csv").read_bytes()),
        ("VTI.csv", (MARKET_FIXTURES / "etf_monthly" / "VTI.csv").read_bytes()),
        ("sp500_daily.csv", (MARKET_FIXTURES / "sp500_daily.csv").read_bytes()),
    ]
    response = client_for(staff).post(IMPORT_URL, upload(*files), format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert [f["format"] for f in body["files"]] == [
        "crypto_daily",
        "stocks_daily",
        "etf_monthly",
        "wide_daily",
    ]
    assert body["rows_created"] == Price.objects.count() > 10_000
    assert ImportBatch.objects.get().source == "api"


def test_a_malformed_upload_answers_400_naming_file_and_line(staff: User) -> None:
    good = ("BTC.csv", (HEADER + "2024-01-01,1,1,1,1,1\n").encode())
    bad = ("ETH.csv", (HEADER + "2024-01-01,1,1,1,1,1\n2024-01-01,2,2,2,2,2\n").encode())
    before = Price.objects.count()
    response = client_for(staff).post(IMPORT_URL, upload(good, bad), format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"]["files"] == [
        "ETH.csv, line 3: duplicate date 2024-01-01 (first on line 2)"
    ]
    assert "ETH.csv, line 3" in error["message"] or "files" in error["message"]
    assert Price.objects.count() == before
    assert not ImportBatch.objects.exists()


def test_upload_without_files_or_with_unknown_fields_is_refused(staff: User) -> None:
    client = client_for(staff)
    assert client.post(IMPORT_URL, {}, format="multipart").status_code == 400
    response = client.post(
        IMPORT_URL,
        upload(("BTC.csv", (HEADER + "2024-01-01,1,1,1,1,1\n").encode()), nope="1"),
        format="multipart",
    )
    assert response.status_code == 400
    assert "nope" in response.json()["error"]["fields"]


@pytest.mark.parametrize("role", list(Role.values))
def test_firm_roles_may_read_but_not_import(role: str, firm_a: FirmWorld, staff: User) -> None:
    client = client_for(firm_a.user(role))
    response = client.post(
        IMPORT_URL,
        upload(("BTC.csv", (HEADER + "2024-01-01,1,1,1,1,1\n").encode())),
        format="multipart",
    )
    assert response.status_code == 403
    assert not Price.objects.exists()
    listing = client.get(reverse("api:market-asset-list"), {"page_size": 500})
    assert listing.status_code == 200
    assets = {a["symbol"]: a for a in listing.json()["results"]}
    assert assets["BTC"]["market_cap"] is None  # not seeded here
    market_caps_seed()
    listing = client.get(reverse("api:market-asset-list"), {"page_size": 500})
    btc = next(a for a in listing.json()["results"] if a["symbol"] == "BTC")
    assert btc["market_cap"]["date"] == "2025-02-11"
    assert btc["market_cap"]["approximate"] is True


def test_prices_of_an_asset_with_date_filters(staff: User, firm_a: FirmWorld) -> None:
    rows = "".join(f"2024-01-{day:02d},{100 + day},1,1,1,5\n" for day in range(1, 11))
    client_for(staff).post(
        IMPORT_URL, upload(("SOL.csv", (HEADER + rows).encode())), format="multipart"
    )
    client = client_for(firm_a.user(Role.INVESTOR))
    url = reverse("api:market-asset-prices", kwargs={"symbol": "SOL"})
    response = client.get(url, {"start": "2024-01-03", "end": "2024-01-05"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["date"] for r in results] == ["2024-01-03", "2024-01-04", "2024-01-05"]
    assert results[0]["close"] == "103.0000000000"
    assert results[0]["status"] == "ok"
    lower = client.get(reverse("api:market-asset-prices", kwargs={"symbol": "sol"}))
    assert lower.json()["count"] == 10
    bad = client.get(url, {"start": "2024-13-01"})
    assert bad.status_code == 400
    assert "start" in bad.json()["error"]["fields"]
    backwards = client.get(url, {"start": "2024-01-05", "end": "2024-01-01"})
    assert backwards.status_code == 400
    missing = client.get(reverse("api:market-asset-prices", kwargs={"symbol": "NOPE"}))
    assert missing.status_code == 404


def test_staff_releases_a_held_price_and_a_firm_context_audits_it(
    staff: User, firm_a: FirmWorld
) -> None:
    closes = [100 * (1.01 if i % 2 else 0.99) for i in range(40)] + [300.0, 100.0]
    start = dt.date(2024, 1, 1)
    rows = "".join(f"{start + dt.timedelta(days=i)},{c},1,1,1,5\n" for i, c in enumerate(closes))
    client = client_for(staff)
    client.post(IMPORT_URL, upload(("ETH.csv", (HEADER + rows).encode())), format="multipart")
    held = Price.objects.get(status=PriceStatus.HELD)
    listing = client_for(firm_a.user(Role.ADVISOR)).get(reverse("api:market-price-held"))
    assert [p["id"] for p in listing.json()["results"]] == [held.pk]
    url = reverse("api:market-price-review", kwargs={"pk": held.pk})
    refused = client_for(firm_a.user(Role.FIRM_ADMIN)).post(
        url, {"decision": "released", "note": "fine"}, format="json"
    )
    assert refused.status_code == 403
    no_note = client.post(url, {"decision": "released"}, format="json")
    assert no_note.status_code == 400
    done = client.post(url, {"decision": "rejected", "note": "bad tick"}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "rejected"
    again = client.post(url, {"decision": "released", "note": "x"}, format="json")
    assert again.status_code == 400
    # Staff without a firm: the review is recorded in PriceReview (no firm chain to write).
    with firm_context(firm_a.firm):
        assert not AuditEvent.objects.filter(action__startswith="market.").exists()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_every_malformed_variant_answers_400_with_file_and_line(staff: User, case: str) -> None:
    text, line, message = MALFORMED[case]
    before = Price.objects.count()
    response = client_for(staff).post(
        IMPORT_URL, upload(("AMD.csv", text.encode())), format="multipart"
    )
    assert response.status_code == 400
    (error,) = response.json()["error"]["fields"]["files"]
    assert error.startswith(f"AMD.csv, line {line}: ")
    assert message in error
    assert Price.objects.count() == before


def test_an_oversized_upload_is_refused_naming_the_file(staff: User, monkeypatch) -> None:
    from portfolios import api_market

    monkeypatch.setattr(api_market, "MAX_UPLOAD_BYTES", 10)
    response = client_for(staff).post(
        IMPORT_URL,
        upload(("BTC.csv", (HEADER + "2024-01-01,1,1,1,1,1\n").encode())),
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["files"][0].startswith("BTC.csv: ")
