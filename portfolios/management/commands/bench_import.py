"""``bench_import [PATH...] [--json]``: the price import's speed beside its floor.

Imports the files (default: the fixtures) in a transaction that is rolled back, and
measures in the same run the floor: a plain ``COPY`` of the same rows into a temporary
copy of the price table, with no parsing, checks or outlier scan. The ratio survives a
noisy machine; the absolute figures do not. Nothing is kept.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from portfolios.models_market import Asset, PriceStatus
from portfolios.services_market import (
    MARKET_FIXTURES,
    PriceSource,
    _copy_line,
    _parse_all,
    assets_seed,
    prices_import,
)


class Command(BaseCommand):
    help = "Time a price import (rolled back) beside a plain COPY of the same rows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="*", help="Files or folders (default: fixtures).")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        files: list[Path] = []
        for name in options["paths"] or [str(MARKET_FIXTURES)]:
            path = Path(name)
            files.extend(sorted(path.rglob("*.csv")) if path.is_dir() else [path])
        missing = [str(f) for f in files if not f.is_file()]
        if missing or not files:
            raise CommandError(f"no such file: {', '.join(missing) or 'no .csv files'}")
        sources = [PriceSource.from_path(f) for f in files]
        figures: dict[str, Any] = {"files": len(files)}
        with transaction.atomic():
            assets_seed()
            started = time.perf_counter()
            parsed = _parse_all(sources, None)  # as the import reads them
            figures["parse_seconds"] = time.perf_counter() - started

            started = time.perf_counter()
            batch = prices_import(sources=sources, actor=None, actor_label="bench_import")
            figures["import_seconds"] = time.perf_counter() - started
            figures["rows"] = batch.rows_created + batch.rows_unchanged

            ids = dict(Asset.objects.values_list("symbol", "id"))
            lines = [
                _copy_line(ids[s.symbol], row, s.frequency, PriceStatus.OK, "", batch.pk)
                for f in parsed
                for s in f.series
                if s.symbol in ids
                for row in s.rows
            ]
            with connection.cursor() as cursor:
                cursor.execute(
                    "CREATE TEMP TABLE bench_price (LIKE portfolios_price INCLUDING ALL) "
                    "ON COMMIT DROP"
                )
                started = time.perf_counter()
                columns = (
                    "asset_id, date, frequency, close, volume, status, status_reason, batch_id"
                )
                with cursor.cursor.copy(f"COPY bench_price ({columns}) FROM STDIN") as copy:
                    copy.write("".join(lines))
                figures["floor_copy_seconds"] = time.perf_counter() - started
            transaction.set_rollback(True)
        rows = max(figures["rows"], 1)
        figures["import_rows_per_second"] = rows / figures["import_seconds"]
        figures["floor_rows_per_second"] = len(lines) / max(figures["floor_copy_seconds"], 1e-9)
        figures["import_over_floor"] = figures["import_seconds"] / max(
            figures["floor_copy_seconds"], 1e-9
        )
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
            return
        self.stdout.write(
            f"{figures['rows']} prices from {len(files)} files: import "
            f"{figures['import_seconds']:.2f} s ({figures['import_rows_per_second']:,.0f} rows/s, "
            f"parsing {figures['parse_seconds']:.2f} s of it); floor, a plain COPY of the same "
            f"rows: {figures['floor_copy_seconds']:.2f} s "
            f"({figures['floor_rows_per_second']:,.0f} rows/s); ratio "
            f"{figures['import_over_floor']:.1f}x"
        )
