"""The strategies API: roles, versions with weights and frontier, bad input, recommendation."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tenancy import firm_context
from portfolios.models_strategy import StrategyVersion
from portfolios.services_market import MARKET_FIXTURES, assets_seed, prices_import
from tests.api.conftest import token_for
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db

ETFS = ["VTI", "VXUS", "BND", "BNDX", "VTIP"]
BALANCED = {
    "name": "Balanced",
    "method": "efficient_risk",
    "universe": ETFS,
    "parameters": {"target_volatility": 0.09, "lookback": 60},
    "price_frequency": "monthly",
    "risk_level_min": 4,
    "risk_level_max": 6,
}


@pytest.fixture
def etf_prices() -> None:
    assets_seed()
    prices_import(paths=sorted((MARKET_FIXTURES / "etf_monthly").glob("*.csv")), actor=None)


@pytest.fixture
def client_as() -> Callable[..., APIClient]:
    def make(user: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
        return client

    return make


def _create(client: APIClient, **overrides: Any) -> Any:
    return client.post(reverse("api:strategy-list"), {**BALANCED, **overrides}, format="json")


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        (Role.FIRM_ADMIN, 200, 201),
        (Role.ADVISOR, 200, 201),
        (Role.COMPLIANCE, 200, 403),
        (Role.INVESTOR, 403, 403),
    ],
)
def test_permissions_per_role(
    etf_prices: None,
    firm_a: FirmWorld,
    client_as: Callable[..., APIClient],
    role: str,
    read: int,
    write: int,
) -> None:
    advisor = client_as(firm_a.user(Role.ADVISOR))
    created = _create(advisor, name="Existing")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    client = client_as(firm_a.user(role))
    assert client.get(reverse("api:strategy-list")).status_code == read
    assert client.get(reverse("api:strategy-detail", kwargs={"pk": pk})).status_code == read
    assert _create(client).status_code == write
    patched = client.patch(
        reverse("api:strategy-detail", kwargs={"pk": pk}), {"explanation": "x"}, format="json"
    )
    assert patched.status_code == (200 if write == 201 else 403)
    compute = client.post(reverse("api:strategy-version-list", kwargs={"pk": pk}), {})
    assert compute.status_code == write
    versions = client.get(reverse("api:strategy-version-list", kwargs={"pk": pk}))
    assert versions.status_code == read


def test_compute_reuse_and_version_detail(
    etf_prices: None, firm_a: FirmWorld, client_as: Callable[..., APIClient]
) -> None:
    client = client_as(firm_a.user(Role.ADVISOR))
    pk = _create(client).json()["id"]
    url = reverse("api:strategy-version-list", kwargs={"pk": pk})
    first = client.post(url, {}, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["number"] == 1
    assert body["trigger"] == "user"
    assert body["triggered_by"] == firm_a.user(Role.ADVISOR).username
    assert sum(Decimal(w) for w in body["weights"].values()) == Decimal(1)
    again = client.post(url, {}, format="json")
    assert again.status_code == 200
    assert again.json()["fingerprint"] == body["fingerprint"]
    listed = client.get(url).json()
    assert [v["number"] for v in listed["results"]] == [1]

    detail = client.get(reverse("api:strategy-version-detail", kwargs={"pk": pk, "number": 1}))
    assert detail.status_code == 200
    data = detail.json()
    assert data["weights"] == body["weights"]
    assert data["explanation"].startswith("The mix with the best expected return")
    assert data["frontier_error"] is None
    frontier = data["frontier"]
    assert len(frontier) >= 10
    vols = [p["volatility"] for p in frontier]
    assert vols == sorted(vols)
    assert vols[0] <= float(data["volatility"]) <= vols[-1] + 1e-9
    assert data["inputs"]["target_volatility"] == repr(0.09)
    skipped = client.get(
        reverse("api:strategy-version-detail", kwargs={"pk": pk, "number": 1}),
        {"frontier": "false"},
    )
    assert skipped.json()["frontier"] == []
    missing = client.get(reverse("api:strategy-version-detail", kwargs={"pk": pk, "number": 2}))
    assert missing.status_code == 404

    strategy = client.get(reverse("api:strategy-detail", kwargs={"pk": pk})).json()
    assert (strategy["version_count"], strategy["latest_version"]) == (1, 1)
    activated = client.patch(
        reverse("api:strategy-detail", kwargs={"pk": pk}), {"status": "active"}, format="json"
    )
    assert activated.json()["status"] == "active"


@pytest.mark.parametrize(
    ("body", "field", "named"),
    [
        ({"universe": [*ETFS, "NOPE"]}, "universe", "NOPE"),
        ({"parameters": {"target_vol": 0.1}}, "parameters", "target_vol"),
        ({"method": "magic"}, "method", "magic"),
        ({"bogus": 1}, "bogus", "Unknown field"),
    ],
)
def test_bad_definitions_answer_400_naming_the_problem(
    etf_prices: None,
    firm_a: FirmWorld,
    client_as: Callable[..., APIClient],
    body: dict[str, Any],
    field: str,
    named: str,
) -> None:
    response = _create(client_as(firm_a.user(Role.ADVISOR)), **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(named in m for m in error["fields"][field]), error


def test_infeasible_compute_answers_400_and_writes_no_version(
    etf_prices: None, firm_a: FirmWorld, client_as: Callable[..., APIClient]
) -> None:
    client = client_as(firm_a.user(Role.ADVISOR))
    pk = _create(client, parameters={"target_volatility": 0.001, "lookback": 60}).json()["id"]
    response = client.post(reverse("api:strategy-version-list", kwargs={"pk": pk}), {})
    assert response.status_code == 400
    assert "0.001" in " ".join(response.json()["error"]["fields"]["parameters"])
    with firm_context(firm_a.firm):
        assert not StrategyVersion.objects.exists()


def test_recommendation_with_backtested_alternatives(
    etf_prices: None, firm_a: FirmWorld, client_as: Callable[..., APIClient]
) -> None:
    client = client_as(firm_a.user(Role.ADVISOR))
    response = client.post(
        reverse("api:strategy-recommendation"),
        {"risk_level": 5, "symbols": ETFS, "price_frequency": "monthly"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["method"] in ("efficient_risk", "min_variance")
    assert body["target_volatility"] == 0.09
    assert sum(Decimal(w) for w in body["weights"].values()) == Decimal(1)
    methods = [a["method"] for a in body["alternatives"]]
    assert methods[0] == body["method"] or methods[0] == "efficient_risk"
    assert {"min_variance", "hrp", "risk_parity", "equal_weight", "dynamic"} <= set(methods)
    ran = [a for a in body["alternatives"] if "metrics" in a]
    assert len(ran) >= 4, body["alternatives"]
    assert all("cagr" in a["metrics"] for a in ran)
    investor = client_as(firm_a.user(Role.INVESTOR))
    refused = investor.post(
        reverse("api:strategy-recommendation"), {"risk_level": 5, "symbols": ETFS}, format="json"
    )
    assert refused.status_code == 403
