"""The strategy page: weights as a server-rendered SVG chart, frontier, CSV and SVG downloads."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.tenancy import firm_context
from portfolios.services_market import MARKET_FIXTURES, assets_seed, prices_import
from portfolios.services_strategy import strategy_create, strategy_version_compute
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db

ETFS = ["VTI", "VXUS", "BND", "BNDX", "VTIP"]


@pytest.fixture
def strategy_pk(firm_a: FirmWorld) -> int:
    assets_seed()
    prices_import(paths=sorted((MARKET_FIXTURES / "etf_monthly").glob("*.csv")), actor=None)
    with firm_context(firm_a.firm):
        strategy = strategy_create(
            actor=firm_a.user(Role.ADVISOR),
            name="Balanced <ETF>",
            method="efficient_risk",
            universe=ETFS,
            parameters={"target_volatility": 0.09, "lookback": 60},
            price_frequency="monthly",
        )
        strategy_version_compute(strategy=strategy)
    return int(strategy.pk)


def test_page_shows_weights_chart_frontier_and_explanation(
    client, firm_a: FirmWorld, strategy_pk: int
) -> None:
    client.force_login(firm_a.user(Role.ADVISOR))
    response = client.get(reverse("portfolios:strategy_detail", args=[strategy_pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Balanced &lt;ETF&gt;" in page
    assert "<svg" in page
    assert page.count('data-symbol="') == len(ETFS)
    assert 'data-series="frontier"' in page
    assert 'data-series="chosen"' in page
    assert "The mix with the best expected return" in page
    listing = client.get(reverse("portfolios:strategy_list"))
    assert reverse("portfolios:strategy_detail", args=[strategy_pk]) in listing.content.decode()


def test_downloads(client, firm_a: FirmWorld, strategy_pk: int) -> None:
    client.force_login(firm_a.user(Role.COMPLIANCE))
    weights = client.get(reverse("portfolios:strategy_weights_csv", args=[strategy_pk]))
    assert weights.status_code == 200
    assert weights["Content-Type"].startswith("text/csv")
    assert "attachment" in weights["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(weights.content.decode())))
    assert [r["symbol"] for r in rows] == ETFS
    assert sum(Decimal(r["weight"]) for r in rows) == Decimal(1)
    svg = client.get(reverse("portfolios:strategy_weights_svg", args=[strategy_pk]))
    assert svg["Content-Type"] == "image/svg+xml"
    assert svg.content.startswith(b"<svg")
    frontier = client.get(reverse("portfolios:strategy_frontier_csv", args=[strategy_pk]))
    lines = frontier.content.decode().splitlines()
    assert lines[0] == "volatility,expected_return,sharpe_ratio,point"
    assert lines[-1].endswith(",chosen")
    frontier_svg = client.get(reverse("portfolios:strategy_frontier_svg", args=[strategy_pk]))
    assert b'data-series="chosen"' in frontier_svg.content


def test_investors_are_refused_and_other_firms_see_a_404(
    client, firm_a: FirmWorld, firm_b: FirmWorld, strategy_pk: int
) -> None:
    client.force_login(firm_a.user(Role.INVESTOR))
    assert client.get(reverse("portfolios:strategy_detail", args=[strategy_pk])).status_code == 403
    client.force_login(firm_b.user(Role.ADVISOR))
    foreign = client.get(reverse("portfolios:strategy_detail", args=[strategy_pk]))
    missing = client.get(reverse("portfolios:strategy_detail", args=[strategy_pk + 10**9]))
    assert foreign.status_code == missing.status_code == 404
    assert (
        client.get(reverse("portfolios:strategy_weights_csv", args=[strategy_pk])).status_code
        == 404
    )


def test_backtest_page_draws_value_drawdown_and_weights(
    client, firm_a: FirmWorld, strategy_pk: int
) -> None:
    client.force_login(firm_a.user(Role.ADVISOR))
    url = reverse("portfolios:strategy_backtest", args=[strategy_pk])
    response = client.get(url, {"rebalance": "quarterly", "costs_bps": "5"})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="backtest-error"' not in page, page
    assert 'data-series="value"' in page
    assert 'data-series="drawdown"' in page
    for symbol in ETFS:
        assert f'data-series="{symbol}"' in page
    csv_response = client.get(
        reverse("portfolios:strategy_backtest_csv", args=[strategy_pk]), {"rebalance": "yearly"}
    )
    assert csv_response.status_code == 200
    lines = csv_response.content.decode().splitlines()
    assert lines[0] == "date,value,drawdown," + ",".join(ETFS)
    assert len(lines) > 20
    svg = client.get(
        reverse("portfolios:strategy_backtest_svg", args=[strategy_pk, "drawdown"]),
        {"rebalance": "quarterly+abs:0.05"},
    )
    assert svg["Content-Type"] == "image/svg+xml"
    assert b'data-series="drawdown"' in svg.content
    assert "backtest-drawdown.svg" in svg["Content-Disposition"]
    link = reverse("portfolios:strategy_backtest_svg", args=[strategy_pk, "weights"])
    assert link + "?start=" in page
    bad = client.get(url, {"rebalance": "sometimes"})
    assert 'data-testid="backtest-error"' in bad.content.decode()
