"""``manage.py backtest``: strategies on the fixture prices, metrics as JSON, values as CSV."""

from __future__ import annotations

import csv
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Role
from portfolios.services_market import MARKET_FIXTURES, assets_seed, prices_import
from tests.api.conftest import token_for
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db


@pytest.fixture
def etf_prices() -> None:
    assets_seed()
    prices_import(paths=sorted((MARKET_FIXTURES / "etf_monthly").glob("*.csv")), actor=None)


def run(*args: str) -> str:
    out = StringIO()
    call_command("backtest", *args, stdout=out)
    return out.getvalue()


def test_classic_etf_model_backtest_prints_json_and_writes_csv(
    etf_prices: None, tmp_path: Path
) -> None:
    target = tmp_path / "values.csv"
    output = run(
        "fixed",
        "--symbols=VTI,VXUS,BND,BNDX,VTIP",
        "--weights=VTI=0.36,VXUS=0.24,BND=0.28,BNDX=0.12,VTIP=0",
        "--frequency=monthly",
        "--start=2016-12-31",
        "--end=2021-05-31",
        "--rebalance=quarterly+abs:0.05",
        "--benchmark=VTI",
        "--costs-bps=10",
        "--fixed-cost=1",
        f"--csv={target}",
        "--json",
    )
    summary = json.loads(output)
    assert summary["start"] == "2016-12-31"
    assert summary["end"] == "2021-05-31"
    metrics = summary["metrics"]
    for key in ("cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar"):
        assert isinstance(metrics[key], float), key
    assert 0 < metrics["cagr"] < summary["benchmark"]["cagr"]  # 60/40 lags all-stock VTI
    assert metrics["volatility"] < summary["benchmark"]["volatility"]
    assert summary["costs_paid"] > 0
    assert summary["rebalances"] >= 1 + 4 * 4
    rows = list(csv.DictReader(target.open()))
    assert [rows[0]["date"], rows[-1]["date"]] == ["2016-12-31", "2021-05-31"]
    assert len(rows) == 54
    assert set(rows[0]) == {"date", "value", "drawdown", "benchmark"}


def test_optimised_strategy_walks_forward(etf_prices: None, tmp_path: Path) -> None:
    output = run(
        "min_variance",
        "--symbols=VTI,VXUS,BND",
        "--frequency=monthly",
        "--lookback=36",
        "--start=2018-12-31",
        "--end=2021-05-31",
        "--rebalance=monthly",
        "--reoptimise=quarterly",
        f"--csv={tmp_path / 'mv.csv'}",
    )
    assert "min_variance 2018-12-31 .. 2021-05-31: CAGR" in output
    assert "value series written to" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols=VTI,NOPE"], "unknown asset(s): NOPE"),
        (["--symbols=VTI,BND", "--start=2008-01-31"], "too little price history before 2008-01-31"),
        (["--symbols=VTI,BND", "--rebalance=weekly"], "unknown rebalancing policy part 'weekly'"),
    ],
)
def test_bad_input_is_named(
    etf_prices: None, args: list[str], message: str, tmp_path: Path
) -> None:
    base = {
        "--symbols": "VTI,BND",
        "--start": "2016-12-31",
        "--end": "2021-05-31",
        "--frequency": "monthly",
        "--csv": str(tmp_path / "x.csv"),
    }
    for arg in args:
        name, _, value = arg.partition("=")
        base[name] = value
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run("equal_weight", *[f"{k}={v}" for k, v in base.items()])


def test_backtest_through_the_api(etf_prices: None, firm_a: FirmWorld) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(firm_a.user(Role.INVESTOR))}")
    url = reverse("api:backtest-run")
    body = {
        "strategy": "fixed",
        "symbols": ["VTI", "BND"],
        "weights": {"VTI": 0.6, "BND": 0.4},
        "frequency": "monthly",
        "start": "2016-12-31",
        "end": "2021-05-31",
        "rebalance": "quarterly",
        "benchmark": "VTI",
    }
    response = client.post(url, body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["metrics"]["cagr"] > 0
    assert data["benchmark"]["cagr"] > 0
    assert len(data["series"]) == 54
    assert data["series"][0] == {
        "date": "2016-12-31",
        "value": pytest.approx(10_000 - 5),  # 5 bps on the initial purchase
        "drawdown": 0.0,
        "benchmark": 10_000.0,
    }
    assert data["rebalance_events"][0]["reason"] == "initial investment"
    bad = client.post(url, {**body, "symbols": ["VTI", "NOPE"]}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["strategy"] == ["unknown asset(s): NOPE"]
    policy = client.post(url, {**body, "rebalance": "weekly"}, format="json")
    assert policy.status_code == 400
    assert "rebalance" in policy.json()["error"]["fields"]
    sums = client.post(url, {**body, "weights": {"VTI": 0.9, "BND": 0.4}}, format="json")
    assert sums.status_code == 400
    assert sums.json()["error"]["fields"]["strategy"] == ["fixed weights sum to 1.3, not 1"]


def test_backtest_of_a_firms_stored_strategy(etf_prices: None, firm_a: FirmWorld, tmp_path) -> None:
    from accounts.tenancy import firm_context
    from portfolios.services_strategy import strategy_create

    with firm_context(firm_a.firm):
        strategy = strategy_create(
            actor=None,
            name="Classic 60/40",
            method="fixed",
            universe=["VTI", "BND"],
            parameters={"fixed_weights": {"VTI": 0.6, "BND": 0.4}, "lookback": 24},
            price_frequency="monthly",
        )
    common = [
        "--start=2016-12-31",
        "--end=2021-05-31",
        "--rebalance=yearly",
        f"--csv={tmp_path / 's.csv'}",
        "--json",
    ]
    by_name = json.loads(run("Classic 60/40", f"--firm={firm_a.firm.slug}", *common))
    by_id = json.loads(run(str(strategy.pk), f"--firm={firm_a.firm.slug}", *common))
    assert by_name["strategy"] == "Classic 60/40"
    assert by_name["method"] == "fixed"
    assert by_name["metrics"] == by_id["metrics"]
    assert by_name["rebalances"] == 1 + 5  # the initial purchase, then 2017 to 2021
    with pytest.raises(CommandError, match="has no strategy 'Nope'"):
        run("Nope", f"--firm={firm_a.firm.slug}", *common)
    with pytest.raises(CommandError, match="'Classic 60/40' is not a method"):
        run("Classic 60/40", *common)


def test_backtest_of_a_stored_strategy_through_the_api(
    etf_prices: None, firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    from accounts.tenancy import firm_context
    from portfolios.services_strategy import strategy_create

    with firm_context(firm_a.firm):
        strategy = strategy_create(
            actor=None,
            name="Balanced",
            method="equal_weight",
            universe=["VTI", "BND"],
            price_frequency="monthly",
        )
    body = {"strategy_id": strategy.pk, "start": "2016-12-31", "end": "2021-05-31"}
    url = reverse("api:backtest-run")

    def client_of(world: FirmWorld) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(world.user(Role.ADVISOR))}")
        return client

    own = client_of(firm_a).post(url, body, format="json")
    assert own.status_code == 200, own.content
    assert own.json()["series"][-1]["date"] == "2021-05-31"
    foreign = client_of(firm_b).post(url, body, format="json")
    missing = client_of(firm_b).post(url, {**body, "strategy_id": 9 * 10**15}, format="json")
    assert foreign.status_code == 404
    assert foreign.json() == missing.json()
    both = client_of(firm_a).post(url, {**body, "strategy": "fixed"}, format="json")
    assert both.status_code == 400
    assert "strategy" in both.json()["error"]["fields"]
