"""``bench_strategies --json`` at a tiny size: the shape of what it prints (no timings)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from portfolios.services_market import MARKET_FIXTURES, assets_seed, prices_import

pytestmark = pytest.mark.django_db


def test_bench_prints_methods_real_universes_and_reuse_with_their_floors() -> None:
    assets_seed()
    prices_import(paths=sorted((MARKET_FIXTURES / "etf_monthly").glob("*.csv")), actor=None)
    out = StringIO()
    call_command(
        "bench_strategies",
        "--json",
        "--sizes",
        "20",
        "--portfolios",
        "60",
        "--distinct",
        "6",
        "--methods",
        "equal_weight,min_variance",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert [(r["assets"], r["method"]) for r in result["methods"]] == [
        (20, "equal_weight"),
        (20, "min_variance"),
    ]
    for row in result["methods"]:
        assert {"seconds", "estimators_floor_seconds", "ratio_to_floor"} <= set(row)
    real = result["real_universes"]
    assert [(r["universe"], r["method"]) for r in real] == [
        ("etf_family (monthly)", "equal_weight"),
        ("etf_family (monthly)", "min_variance"),
    ]
    assert all(r["assets"] == 5 and "seconds" in r for r in real)
    reuse = result["customisation_reuse"]
    assert reuse["portfolios"] == 60
    assert reuse["distinct_signatures"] == 6
    assert {"seconds_without_reuse", "seconds_with_reuse", "signing_floor_seconds"} <= set(reuse)


def test_bench_text_output() -> None:
    out = StringIO()
    call_command(
        "bench_strategies",
        "--sizes",
        "20",
        "--portfolios",
        "20",
        "--distinct",
        "2",
        "--methods",
        "equal_weight",
        "--no-real",
        stdout=out,
    )
    text = out.getvalue()
    assert "equal_weight" in text
    assert "20 portfolios, 2 signatures" in text


def test_bench_through_the_database_leaves_nothing_behind() -> None:
    from accounts.models import Firm

    firms = Firm.objects.count()
    out = StringIO()
    call_command(
        "bench_strategies",
        "--json",
        "--sizes",
        "20",
        "--methods",
        "equal_weight",
        "--no-real",
        "--db",
        "--portfolios",
        "200",
        "--distinct",
        "8",
        stdout=out,
    )
    db = json.loads(out.getvalue())["customisation_reuse_db"]
    assert db["portfolios"] == 200
    assert db["distinct_signatures"] == 8
    assert {
        "seconds_without_reuse",
        "seconds_with_reuse_first_run",
        "seconds_with_reuse_rows_stored",
        "signing_floor_seconds",
    } <= set(db)
    assert Firm.objects.count() == firms
