"""``bench_rebalance --portfolios N --positions K [--json]``.

Builds a synthetic firm of N portfolios holding K assets each, computes one batch
rebalance of it chunk by chunk (the same code the Celery tasks run), and prints
the time per account beside floors measured in the same run on the same rows:
reading every holding row, and writing as many rows as the run wrote through
the same staged COPY. Everything happens in one transaction that is rolled back,
so the database is left as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Client, Firm, Household
from accounts.tenancy.context import firm_context
from compliance.rules import bench as rules_bench
from portfolios.bulk import staged_copy
from portfolios.engine import rebalance_bench
from portfolios.management.commands.import_prices import progress_bar
from portfolios.models import Portfolio, PortfolioType
from portfolios.models_market import Asset, AssetClass, Price
from portfolios.models_rebalance import Order, RunPortfolio
from portfolios.models_strategy import Strategy, StrategyStatus, StrategyVersion
from portfolios.services_rebalance import rebalance_chunk_compute, rebalance_run_start

AS_OF = dt.date(2025, 1, 31)
STRATEGIES = 10


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = (
        "Time a batch rebalance of N synthetic portfolios beside floors measured in the same run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--portfolios", type=int, default=10_000)
        parser.add_argument("--positions", type=int, default=20)
        parser.add_argument("--chunk-size", type=int, default=2000)
        parser.add_argument("--taxable-share", type=float, default=0.5)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        n, k = options["portfolios"], options["positions"]
        if n < 1:
            raise CommandError("--portfolios: at least 1")
        if not 2 <= k <= 100:
            raise CommandError("--positions: between 2 and 100")
        figures: dict[str, Any] = {}
        try:
            with transaction.atomic():
                firm = Firm.objects.create(name="Benchmark firm", slug=f"bench-{time.time_ns()}")
                with firm_context(firm):
                    self._bench(firm, n, k, options, figures)
                raise _Rollback
        except _Rollback:
            pass
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            self.stdout.write(
                f"{n} portfolios x {k} positions: {figures['rebalance_seconds']:.2f} s "
                f"({figures['ms_per_portfolio']:.3f} ms per portfolio); floor "
                f"{figures['floor_seconds']:.2f} s (read {figures['floor_read_seconds']:.2f} s, "
                f"write {figures['floor_write_seconds']:.2f} s), ratio {figures['ratio']:.1f}"
            )

    def _bench(
        self, firm: Firm, n: int, k: int, options: dict[str, Any], figures: dict[str, Any]
    ) -> None:
        rng = np.random.default_rng(options["seed"])
        assets = []
        for j in range(k):
            asset, _ = Asset.objects.get_or_create(
                symbol=f"BNCH{j:03d}",
                defaults={
                    "name": f"Benchmark {j}",
                    "asset_class": AssetClass.US_EQUITY if j % 2 else AssetClass.US_BONDS,
                    "fractional": True,
                    "quantity_step": Decimal("0.000001"),
                },
            )
            Price.objects.update_or_create(
                asset=asset,
                date=AS_OF,
                frequency="daily",
                defaults={"close": Decimal(str(round(float(rng.uniform(20, 400)), 2)))},
            )
            assets.append(asset)
        strategies = []
        for s in range(STRATEGIES):
            raw = rng.dirichlet(np.ones(k))
            weights = {a.symbol: f"{w:.10f}" for a, w in zip(assets, raw, strict=True)}
            total = sum(Decimal(w) for w in weights.values())
            first = assets[0].symbol
            weights[first] = str(Decimal(weights[first]) + Decimal(1) - total)
            strategy = Strategy.objects.create(
                name=f"Bench {s}",
                method="fixed",
                universe=[a.symbol for a in assets],
                status=StrategyStatus.ACTIVE,
            )
            StrategyVersion.objects.create(
                strategy=strategy,
                number=1,
                method="fixed",
                inputs={"universe": [a.symbol for a in assets]},
                weights=weights,
                fingerprint=f"bench-{s}",
                prices_as_of=AS_OF,
                prices_digest="bench",
                expected_return=Decimal("0.05"),
                volatility=Decimal("0.1"),
                sharpe_ratio=Decimal("0.5"),
                risk_free_rate=Decimal("0"),
                trigger="system",
                trigger_label="bench",
            )
            strategies.append(strategy)
        setup = time.perf_counter()
        households = Household.objects.bulk_create(
            [Household(firm=firm, name=f"H{i}") for i in range(max(n // 2, 1))], batch_size=5000
        )
        clients = Client.objects.bulk_create(
            [
                Client(
                    firm=firm,
                    household=households[i % len(households)],
                    first_name="B",
                    last_name=str(i),
                )
                for i in range(n)
            ],
            batch_size=5000,
        )
        taxable = rng.random(n) < options["taxable_share"]
        portfolios = Portfolio.objects.bulk_create(
            [
                Portfolio(
                    firm=firm,
                    client=clients[i],
                    number=f"B{i:08d}",
                    account_type=PortfolioType.TAXABLE if taxable[i] else PortfolioType.ROTH_IRA,
                    strategy=strategies[i % STRATEGIES],
                    cash=Decimal(str(round(float(rng.uniform(0, 2000)), 2))),
                )
                for i in range(n)
            ],
            batch_size=5000,
        )
        quantities = rng.uniform(1, 200, size=(n, k))
        now = timezone.now()
        holding_rows = (
            (firm.pk, p.pk, a.pk, Decimal(f"{quantities[i, j]:.6f}"), now)
            for i, p in enumerate(portfolios)
            for j, a in enumerate(assets)
        )
        t0 = time.perf_counter()
        staged_copy(
            table="portfolios_holding",
            columns=["firm_id", "portfolio_id", "asset_id", "quantity", "updated_at"],
            rows=holding_rows,
        )
        figures["floor_write_rows_per_second"] = n * k / (time.perf_counter() - t0)
        lot_rows = (
            (
                firm.pk,
                p.pk,
                a.pk,
                AS_OF - dt.timedelta(days=int(100 + (i * 7 + j) % 900)),
                Decimal(f"{quantities[i, j]:.6f}"),
                Decimal(f"{quantities[i, j]:.6f}"),
                Decimal("50"),
            )
            for i, p in enumerate(portfolios)
            if taxable[i]
            for j, a in enumerate(assets)
        )
        staged_copy(
            table="portfolios_taxlot",
            columns=[
                "firm_id",
                "portfolio_id",
                "asset_id",
                "acquired_on",
                "quantity",
                "original_quantity",
                "unit_cost",
            ],
            rows=lot_rows,
        )
        figures["setup_seconds"] = time.perf_counter() - setup

        # Floors, on the same rows: read every holding; write as many rows as the run.
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT portfolio_id, asset_id, quantity FROM portfolios_holding "
                "WHERE firm_id = %s",
                [firm.pk],
            )
            read_rows = len(cursor.fetchall())
        figures["floor_read_seconds"] = time.perf_counter() - t0

        show = not options["no_progress"]
        started = time.perf_counter()
        run = rebalance_run_start(
            trigger="manual",
            actor_label="bench_rebalance",
            preview=True,
            as_of=AS_OF,
            chunk_size=options["chunk_size"],
            dispatch=False,
        )
        done = 0
        for chunk in run.chunks:  # type: ignore[attr-defined]
            with transaction.atomic():
                rebalance_chunk_compute(run_id=run.pk, portfolio_ids=chunk)
            done += len(chunk)
            if show:
                self.stderr.write(progress_bar(done, n, "portfolios"), ending="")
        if show:
            self.stderr.write("")
        rebalance_seconds = time.perf_counter() - started
        run.refresh_from_db()
        written = (
            RunPortfolio.objects.filter(run=run).count() + Order.objects.filter(run=run).count()
        )
        t0 = time.perf_counter()
        staged_copy(
            table="portfolios_holding",
            columns=["firm_id", "portfolio_id", "asset_id", "quantity", "updated_at"],
            rows=(
                (firm.pk, portfolios[i % n].pk, assets[0].pk, Decimal(1), now)
                for i in range(written)
            ),
            on_conflict="ON CONFLICT DO NOTHING",
        )
        figures["floor_write_seconds"] = time.perf_counter() - t0
        engine = rebalance_bench.bench(n, k, seed=options["seed"], repeat=1)
        rules = rules_bench.bench(n, k, seed=options["seed"])
        floor = figures["floor_read_seconds"] + figures["floor_write_seconds"]
        figures.update(
            {
                "portfolios": n,
                "positions": k,
                "holding_rows_read": read_rows,
                "rows_written": written,
                "orders": run.orders_count,
                "triggered": run.portfolios_triggered,
                "chunks": run.chunks_total,
                "rebalance_seconds": rebalance_seconds,
                "ms_per_portfolio": 1000 * rebalance_seconds / n,
                "phases": run.timings,
                "floor_seconds": floor,
                "ratio": rebalance_seconds / floor if floor else None,
                "engine_only": engine,
                "rules_only": rules,
                "vendor_claim_ms_per_account": 2.5,
            }
        )
