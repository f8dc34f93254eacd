"""``bench_strategies [--json]``: time per method, and customisation reuse.

Wraps :mod:`portfolios.engine.optimise.bench`: seconds of ``optimise`` per method on
synthetic universes of 20, 100 and 500 assets (one-factor model, seeded), and beside
them on the real universes of the stored prices (the ETF family, the large-cap stocks,
the crypto coins, when loaded), each with the estimators' floor measured in the same
run; then N portfolios over D distinct (version, customisation) signatures, customised
weights computed per portfolio (without reuse) and once per signature (with reuse),
beside the floor of signing the N pairs; with ``--db``, the same through the stored
customised versions, in a transaction rolled back at the end. Writes nothing.
"""

from __future__ import annotations

import json
import platform
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portfolios.engine.optimise import bench, estimators, optimise
from portfolios.engine.types import (
    CovarianceEstimator,
    Method,
    OptimiseRequest,
    ReturnEstimator,
)
from portfolios.models_market import PriceFrequency
from portfolios.selectors_market import price_matrix

REAL_UNIVERSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "etf_family (monthly)": (PriceFrequency.MONTHLY, ("VTI", "VXUS", "BND", "BNDX", "VTIP")),
    "large_caps (daily)": (
        PriceFrequency.DAILY,
        ("AAPL", "MSFT", "AMZN", "GOOGL", "META", "BRK-B", "JPM", "JNJ", "V", "TSLA"),
    ),
    "crypto (daily)": (
        PriceFrequency.DAILY,
        ("BTC", "ETH", "XRP", "SOL", "BNB", "DOGE", "ADA", "DOT", "LTC", "AVAX", "LINK", "MATIC"),
    ),
}


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def bench_real(methods: list[Method], repeat: int) -> list[dict[str, Any]]:
    """Seconds per method on the stored prices of each real universe that is loaded."""
    rows: list[dict[str, Any]] = []
    for name, (frequency, symbols) in REAL_UNIVERSES.items():
        try:
            prices = price_matrix(symbols=list(symbols), frequency=frequency)
        except KeyError:
            continue  # not loaded
        prices = prices.dropna()
        lookback = min(len(prices) - 1, 60 if frequency == PriceFrequency.MONTHLY else 252)
        if lookback < 12:
            continue
        cols = list(prices.columns)

        def floor(prices: Any = prices, cols: list[str] = cols, lookback: int = lookback) -> None:
            window = estimators.price_window(prices, cols, lookback)
            estimators.expected_return(window, ReturnEstimator.MEAN_HISTORICAL, frequency=252)
            estimators.covariance(window, CovarianceEstimator.LEDOIT_WOLF, frequency=252)

        floor_s = bench._seconds(floor, repeat)
        for method in methods:
            request = bench.synthetic_request(method, prices, lookback)
            row: dict[str, Any] = {"universe": name, "assets": len(cols), "method": method.value}
            try:

                def run(request: OptimiseRequest = request) -> None:
                    optimise(request)

                secs = bench._seconds(run, repeat)
            except ValueError as exc:  # a method the real data cannot satisfy
                row["error"] = str(exc)
            else:
                row.update(
                    seconds=round(secs, 6),
                    estimators_floor_seconds=round(floor_s, 6),
                    ratio_to_floor=round(secs / floor_s, 2) if floor_s > 0 else None,
                )
            rows.append(row)
    return rows


def bench_db_reuse(portfolios: int, distinct: int) -> dict[str, Any]:
    """Customised versions through the database, in a transaction that is rolled back.

    A scratch firm with one 20-asset version; N portfolios over D distinct
    customisations. Without reuse: customised weights computed for every portfolio.
    With reuse: :func:`customised_versions_get_or_compute_many` (one lookup, D
    computations, one bulk insert and audit append), then again once every row exists
    (the steady state of a rebalance run). Floor: signing the N pairs.
    """
    import datetime as dt
    import uuid
    from decimal import Decimal

    from django.db import transaction

    from accounts.models import Firm
    from accounts.tenancy.context import firm_context
    from portfolios.engine import customise
    from portfolios.models_strategy import Strategy, StrategyVersion
    from portfolios.services_strategy import (
        customised_signature,
        customised_versions_get_or_compute_many,
    )

    class _Rollback(Exception):
        pass

    symbols = [f"S{i:04d}" for i in range(20)]
    classes = {s: ("us_equity" if i < 12 else "us_bonds") for i, s in enumerate(symbols)}
    weights = dict.fromkeys(symbols, "0.0500000000")
    menu = [
        customise.Customisation(
            excluded_assets=frozenset({symbols[k % 20]}),
            asset_bounds={symbols[(k + 1) % 20]: (0.0, 0.02 + (k % 7) / 100)},
            class_tilts={"us_equity": round(((k % 11) - 5) / 100, 2)},
        )
        for k in range(distinct)
    ]
    out: dict[str, Any] = {"portfolios": portfolios, "distinct_signatures": distinct}
    try:
        with transaction.atomic():
            firm = Firm.objects.create(name="bench", slug=f"bench-{uuid.uuid4().hex[:12]}")
            with firm_context(firm):
                strategy = Strategy.objects.create(name="bench", method="fixed", universe=symbols)
                version = StrategyVersion.objects.create(
                    strategy=strategy,
                    number=1,
                    method="fixed",
                    inputs={"universe": symbols, "asset_classes": classes},
                    weights=weights,
                    fingerprint="0" * 64,
                    prices_as_of=dt.date(2024, 1, 1),
                    prices_digest="0" * 64,
                    expected_return=Decimal(0),
                    volatility=Decimal(0),
                    sharpe_ratio=Decimal(0),
                    risk_free_rate=Decimal(0),
                    trigger="system",
                    trigger_label="bench",
                )
                pairs = [(version, menu[i % distinct]) for i in range(portfolios)]
                floats = {s: float(w) for s, w in weights.items()}
                start = time.perf_counter()
                for _, cust in pairs:
                    customise.customise_weights(floats, cust, asset_classes=classes)
                out["seconds_without_reuse"] = round(time.perf_counter() - start, 6)
                start = time.perf_counter()
                customised_versions_get_or_compute_many(pairs=pairs, actor_label="bench")
                out["seconds_with_reuse_first_run"] = round(time.perf_counter() - start, 6)
                start = time.perf_counter()
                customised_versions_get_or_compute_many(pairs=pairs, actor_label="bench")
                out["seconds_with_reuse_rows_stored"] = round(time.perf_counter() - start, 6)
                start = time.perf_counter()
                for v, cust in pairs:
                    customised_signature(v, cust)
                out["signing_floor_seconds"] = round(time.perf_counter() - start, 6)
            raise _Rollback
    except _Rollback:
        pass
    return out


class Command(BaseCommand):
    help = "Time each strategy method and the reuse of customised versions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
        parser.add_argument("--sizes", default="20,100,500", help="Synthetic universe sizes.")
        parser.add_argument("--portfolios", type=int, default=10_000)
        parser.add_argument("--distinct", type=int, default=200)
        parser.add_argument("--repeat", type=int, default=1, help="Best of N runs per figure.")
        parser.add_argument(
            "--methods", default="", help="Comma-separated methods (default: every one)."
        )
        parser.add_argument("--no-real", action="store_true", help="Skip the stored universes.")
        parser.add_argument(
            "--db",
            action="store_true",
            help="Also time customised versions through the database (rolled back).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        methods = (
            [Method(m) for m in options["methods"].split(",") if m]
            if options["methods"]
            else list(Method)
        )
        started = time.perf_counter()
        result: dict[str, Any] = {
            "machine": {"python": platform.python_version(), "processor": platform.machine()},
            "methods": bench.bench_methods(
                _sizes(options["sizes"]), methods, repeat=options["repeat"]
            ),
            "real_universes": [] if options["no_real"] else bench_real(methods, options["repeat"]),
            "customisation_reuse": bench.bench_customisation_reuse(
                options["portfolios"], options["distinct"]
            ),
        }
        if options["db"]:
            result["customisation_reuse_db"] = bench_db_reuse(
                options["portfolios"], options["distinct"]
            )
        result["total_seconds"] = round(time.perf_counter() - started, 3)
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write("method               assets   seconds   floor     x floor")
        for row in [*result["methods"], *result["real_universes"]]:
            if "error" in row:
                self.stdout.write(f"{row['method']:<20} {row['assets']:>6}   {row['error']}")
                continue
            label = row.get("universe", "synthetic")
            self.stdout.write(
                f"{row['method']:<20} {row['assets']:>6}   {row['seconds']:<9.4f} "
                f"{row['estimators_floor_seconds']:<9.4f} {row['ratio_to_floor']}  {label}"
            )
        reuse = result["customisation_reuse"]
        self.stdout.write(
            f"{reuse['portfolios']} portfolios, {reuse['distinct_signatures']} signatures: "
            f"{reuse['seconds_without_reuse']:.3f} s without reuse, "
            f"{reuse['seconds_with_reuse']:.3f} s with reuse (x{reuse['speedup']}), "
            f"signing floor {reuse['signing_floor_seconds']:.3f} s"
        )
        db = result.get("customisation_reuse_db")
        if db:
            self.stdout.write(
                f"through the database: {db['seconds_without_reuse']:.3f} s without reuse, "
                f"{db['seconds_with_reuse_first_run']:.3f} s first run, "
                f"{db['seconds_with_reuse_rows_stored']:.3f} s with every row stored, "
                f"signing floor {db['signing_floor_seconds']:.3f} s"
            )
