"""Importing prices: every fixture loads; malformed files are refused whole, with file and line."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from portfolios.engine.prices_io import PriceFileError, parse_price_file
from portfolios.models_market import (
    Asset,
    ImportBatch,
    MarketCapObservation,
    Price,
    PriceReview,
    PriceStatus,
)
from portfolios.selectors_market import market_cap_latest, price_matrix, price_usable_queryset
from portfolios.services_market import (
    MARKET_FIXTURES,
    MarketDataError,
    PriceSource,
    assets_seed,
    market_caps_seed,
    market_demo_seed,
    market_fixture_paths,
    price_review,
    prices_import,
)

pytestmark = pytest.mark.django_db

FIXTURE_FILES = market_fixture_paths()


@pytest.fixture
def assets() -> None:
    assets_seed()


def counts() -> dict[str, int]:
    return {
        "prices": Price.objects.count(),
        "batches": ImportBatch.objects.count(),
        "assets": Asset.objects.count(),
    }


def test_fixtures_are_small_and_cover_every_format() -> None:
    total = sum(p.stat().st_size for p in MARKET_FIXTURES.rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024
    formats = {parse_price_file(p.name, p.read_bytes()).format for p in FIXTURE_FILES}
    assert formats == {"crypto_daily", "stocks_daily", "etf_monthly", "wide_daily"}
    assert (MARKET_FIXTURES / "README.md").read_text().count("Yahoo Finance") >= 1


@pytest.mark.parametrize(
    "path", FIXTURE_FILES, ids=[p.relative_to(MARKET_FIXTURES).as_posix() for p in FIXTURE_FILES]
)
def test_every_fixture_file_loads(path: Path, assets: None) -> None:
    parsed = parse_price_file(path.name, path.read_bytes())
    batch = prices_import(paths=[path], actor=None)
    assert batch.rows_created == parsed.row_count > 0
    symbols = [s.symbol for s in parsed.series]
    stored = Price.objects.filter(asset__symbol__in=symbols)
    assert stored.count() == parsed.row_count
    assert batch.files[0]["sha256"] == parsed.content_hash
    # Again: nothing new, nothing changed.
    again = prices_import(paths=[path], actor=None)
    assert (again.rows_created, again.rows_unchanged) == (0, parsed.row_count)


def test_whole_fixture_set_in_one_import_and_demo_seed_is_idempotent() -> None:
    first = market_demo_seed()
    assert first["assets"] == 45
    assert first["prices"] == Price.objects.count() > 20_000
    assert MarketCapObservation.objects.filter(approximate=True).count() == 45
    assert market_demo_seed() == {"assets": 0, "market caps": 0}
    assert ImportBatch.objects.count() == 1


def test_formats_are_read_as_documented(assets: None) -> None:
    prices_import(paths=[MARKET_FIXTURES / "etf_monthly" / "VTI.csv"], actor=None)
    prices_import(paths=[MARKET_FIXTURES / "stocks_daily" / "AAPL.csv"], actor=None)
    vti = list(Price.objects.filter(asset__symbol="VTI").order_by("date"))
    # Month-start rows are stored at month end; the partial June 2021 is left out.
    assert vti[0].date == dt.date(2001, 7, 31)
    assert vti[-1].date == dt.date(2021, 5, 31)
    assert vti[-1].frequency == "monthly"
    assert vti[-1].close == Decimal("218.089996")  # Adj Close of 2021-05-01
    batch = ImportBatch.objects.order_by("id")[0]
    assert [s["line"] for s in batch.files[0]["skipped"]] == [241, 242]
    assert batch.rows_skipped == 2
    aapl = Price.objects.get(asset__symbol="AAPL", date=dt.date(2025, 2, 11))
    assert aapl.close == Decimal("233.3948059082")
    assert aapl.volume == 36221873


HEADER_CRYPTO = "Date,Close,High,Low,Open,Volume\n"
GOOD_ROWS = [
    "2024-01-01,100.5,101,99,100,1000\n",
    "2024-01-02,101.5,102,100,100.5,1100\n",
    "2024-01-03,102.0,103,101,101.5,1200\n",
]

MALFORMED = {
    "bad_date": (
        HEADER_CRYPTO + GOOD_ROWS[0] + "2024-13-02,101.5,102,100,100.5,1100\n",
        3,
        "bad date",
    ),
    "missing_column": (
        "Date,High,Low,Open,Volume\n" + "2024-01-01,101,99,100,1000\n",
        1,
        "missing column 'Close'",
    ),
    "short_row": (
        HEADER_CRYPTO + GOOD_ROWS[0] + "2024-01-02,101.5,102\n",
        3,
        "3 columns where the header has 6",
    ),
    "negative_price": (
        HEADER_CRYPTO + GOOD_ROWS[0] + GOOD_ROWS[1] + "2024-01-03,-2,103,101,101.5,1200\n",
        4,
        "not a positive price",
    ),
    "zero_price": (HEADER_CRYPTO + "2024-01-01,0,101,99,100,1000\n", 2, "not a positive price"),
    "non_numeric_price": (
        HEADER_CRYPTO + GOOD_ROWS[0] + "2024-01-02,abc,102,100,100.5,1100\n",
        3,
        "is not a number",
    ),
    "duplicate_date": (
        HEADER_CRYPTO + GOOD_ROWS[0] + GOOD_ROWS[1] + GOOD_ROWS[0],
        4,
        "duplicate date 2024-01-01 (first on line 2)",
    ),
    "stock_date_without_offset": (
        "Date,Open,High,Low,Close,Volume,Dividends,Stock Splits\n"
        "2024-01-02 00:00:00-05:00,1,1,1,10,5,0,0\n2024-01-03,1,1,1,10,5,0,0\n",
        3,
        "bad date",
    ),
    "monthly_mid_month": (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2021-01-01,1,1,1,1,1,1\n2021-02-15,1,1,1,1,1,1\n2021-03-01,1,1,1,1,1,1\n",
        3,
        "monthly row dated 2021-02-15",
    ),
    "wide_non_numeric": (
        "Date,AMD,BAC\n2020-01-02,1.5,2\n2020-01-03,x,2\n",
        3,
        "AMD 'x' is not a number",
    ),
    "negative_volume": (HEADER_CRYPTO + "2024-01-01,100.5,101,99,100,-5\n", 2, "not a volume"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_are_refused_with_file_and_line(case: str, assets: None) -> None:
    text, line, message = MALFORMED[case]
    name = "AMD.csv"  # an asset that exists, so only the content can be wrong
    good = PriceSource("BTC.csv", (HEADER_CRYPTO + "".join(GOOD_ROWS)).encode())
    before = counts()
    with pytest.raises(PriceFileError) as refused:
        prices_import(sources=[good, PriceSource(name, text.encode())], actor=None)
    assert (refused.value.file, refused.value.line) == (name, line)
    assert str(refused.value).startswith(f"{name}, line {line}: ")
    assert message in str(refused.value)
    assert counts() == before  # all or nothing: the good file was not imported either


def test_the_command_refuses_a_malformed_file_and_writes_nothing(
    assets: None, tmp_path: Path
) -> None:
    good = tmp_path / "BTC.csv"
    good.write_text(HEADER_CRYPTO + "".join(GOOD_ROWS))
    bad = tmp_path / "ETH.csv"
    bad.write_text(HEADER_CRYPTO + GOOD_ROWS[0] + "2024-01-02,-1,1,1,1,1\n")
    before = counts()
    with pytest.raises(CommandError, match=r"ETH\.csv, line 3: Close -1 is not a positive price"):
        call_command("import_prices", str(good), str(bad), stdout=StringIO(), stderr=StringIO())
    assert counts() == before
    out, err = StringIO(), StringIO()
    call_command("import_prices", str(tmp_path / "BTC.csv"), stdout=out, stderr=err)
    assert "3 prices created" in out.getvalue()
    assert "[" in err.getvalue()
    assert "1/1" in err.getvalue()


def test_unknown_asset_and_conflicting_close_are_refused(assets: None) -> None:
    unknown = PriceSource("NOPE.csv", (HEADER_CRYPTO + GOOD_ROWS[0]).encode())
    with pytest.raises(MarketDataError, match=r"NOPE\.csv, line 2: unknown asset 'NOPE'"):
        prices_import(sources=[unknown], actor=None)
    prices_import(
        sources=[PriceSource("BTC.csv", (HEADER_CRYPTO + GOOD_ROWS[0]).encode())], actor=None
    )
    changed = PriceSource("BTC.csv", (HEADER_CRYPTO + "2024-01-01,99,1,1,1,1\n").encode())
    before = counts()
    with pytest.raises(
        MarketDataError, match=r"BTC\.csv, line 2: BTC 2024-01-01: close 99 differs"
    ):
        prices_import(sources=[changed], actor=None)
    assert counts() == before
    batch = prices_import(sources=[changed], actor=None, replace=True)
    assert batch.rows_replaced == 1
    assert Price.objects.get(asset__symbol="BTC").close == Decimal(99)


def test_the_same_price_in_two_files_of_one_import_is_refused(assets: None) -> None:
    one = PriceSource("BTC.csv", (HEADER_CRYPTO + GOOD_ROWS[0]).encode())
    two = PriceSource("btc.csv", (HEADER_CRYPTO + GOOD_ROWS[1] + GOOD_ROWS[0]).encode())
    with pytest.raises(
        PriceFileError, match=r"btc\.csv, line 3: BTC 2024-01-01 is also in BTC\.csv, line 2"
    ):
        prices_import(sources=[one, two], actor=None)


def _series(closes: list[float]) -> bytes:
    start = dt.date(2024, 1, 1)
    lines = [HEADER_CRYPTO] + [
        f"{start + dt.timedelta(days=i)},{c},{c},{c},{c},10\n" for i, c in enumerate(closes)
    ]
    return "".join(lines).encode()


def _wiggle(n: int) -> list[float]:
    return [100 * (1.01 if i % 2 else 0.99) for i in range(n)]


def test_an_outlier_is_held_for_review_and_not_used(assets: None) -> None:
    closes = [*_wiggle(40), 300.0, *_wiggle(5)]  # a spike, then back to normal
    batch = prices_import(sources=[PriceSource("BTC.csv", _series(closes))], actor=None)
    assert batch.rows_held == 1
    held = Price.objects.get(status=PriceStatus.HELD)
    assert held.date == dt.date(2024, 2, 10)
    assert "standard deviations" in held.status_reason
    assert not price_usable_queryset().filter(pk=held.pk).exists()
    matrix = price_matrix(symbols=["BTC"])
    assert len(matrix) == len(closes) - 1
    assert held.date not in {stamp.date() for stamp in matrix.index}


def test_a_held_price_is_released_or_rejected_with_a_record(assets: None, settings) -> None:
    settings.MARKET_OUTLIER_SIGMAS = 3
    closes = [*_wiggle(40), 300.0, 300.0 * 1.01]  # a lasting level change: only the jump held
    prices_import(sources=[PriceSource("BTC.csv", _series(closes))], actor=None)
    held = Price.objects.get(status=PriceStatus.HELD)
    released = price_review(price=held, decision="released", note="checked: real", actor=None)
    assert released.status == PriceStatus.OK
    assert price_usable_queryset().filter(pk=held.pk).exists()
    with pytest.raises(MarketDataError, match="not held for review"):
        price_review(price=held, decision="rejected", note="again", actor=None)
    assert list(PriceReview.objects.values_list("decision", "note")) == [
        ("released", "checked: real")
    ]


def test_outlier_threshold_is_a_setting(assets: None, settings) -> None:
    settings.MARKET_OUTLIER_SIGMAS = 1000
    closes = [*_wiggle(40), 300.0, *_wiggle(5)]
    batch = prices_import(sources=[PriceSource("BTC.csv", _series(closes))], actor=None)
    assert batch.rows_held == 0


def test_market_caps_are_approximate_inputs_with_dates(assets: None) -> None:
    assert market_caps_seed() == 45
    latest = market_cap_latest(symbols=["BTC", "ETH", "USDT"])
    assert latest["BTC"] > latest["ETH"] > 0
    observation = MarketCapObservation.objects.get(asset__symbol="BTC")
    assert observation.approximate
    assert observation.date == dt.date(2025, 2, 11)


def test_asset_metadata(assets: None) -> None:
    btc = Asset.objects.get(symbol="BTC")
    assert btc.fractional
    assert btc.quantity_step == Decimal("0.00000001")
    assert Asset.objects.get(symbol="USDT").asset_class == "stablecoin"
    assert Asset.objects.get(symbol="AMD").quantity_step == 1
    assert "esg:fossil_fuels" in Asset.objects.get(symbol="XOM").tags
    assert assets_seed() == {"created": 0, "updated": 0}


def test_a_single_asset_file_wins_over_a_wide_column_of_the_same_import(assets: None) -> None:
    wide = PriceSource("wide.csv", b"Date,AAPL,AMD\n2024-01-02,1.5,2\n2024-01-03,1.6,2.1\n")
    single = PriceSource(
        "AAPL.csv",
        b"Date,Open,High,Low,Close,Volume,Dividends,Stock Splits\n"
        b"2024-01-02 00:00:00-05:00,1,1,1,185.5,10,0,0\n",
    )
    batch = prices_import(sources=[wide, single], actor=None)
    assert batch.rows_created == 3
    assert list(Price.objects.filter(asset__symbol="AAPL").values_list("close", flat=True)) == [
        Decimal("185.5")
    ]
    (skipped,) = batch.files[0]["skipped"]
    assert skipped["reason"].startswith("column AAPL left out (2 prices): AAPL.csv")


def test_seed_assets_command_and_bad_market_cap_input(tmp_path: Path) -> None:
    out = StringIO()
    call_command("seed_assets", stdout=out)
    assert "assets: 45 created, 0 updated; market caps: 45 created" in out.getvalue()
    caps = tmp_path / "caps.csv"
    caps.write_text(
        "# approximate\nsymbol,date,market_cap_usd,source\n"
        "BTC,2025-01-01,1,x\nNOPE,2025-01-01,1,x\n"
    )
    with pytest.raises(MarketDataError, match=r"caps\.csv, line 4: unknown asset 'NOPE'"):
        market_caps_seed(path=caps)
    assert not MarketCapObservation.objects.filter(date=dt.date(2025, 1, 1)).exists()
    caps.write_text("symbol,date,market_cap_usd,source\nBTC,2025-13-01,1,x\n")
    with pytest.raises(MarketDataError, match=r"caps\.csv, line 2: bad date"):
        market_caps_seed(path=caps)
    listing = tmp_path / "assets.csv"
    listing.write_text(
        "symbol,name,asset_class,sector,currency,fractional,quantity_step,minimum_lot,tags\n"
        "ZZZ,Zed,meme,,USD,false,0.5,1,\n"
    )
    with pytest.raises(MarketDataError, match=r"assets\.csv, line 2: asset class 'meme'"):
        assets_seed(path=listing)


def test_bench_import_prints_its_figures_beside_the_floor_and_keeps_nothing() -> None:
    out = StringIO()
    call_command("bench_import", "--json", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["rows"] > 20_000
    assert figures["floor_copy_seconds"] > 0
    assert figures["import_over_floor"] > 0
    assert not Price.objects.exists()
    assert not Asset.objects.exists()
