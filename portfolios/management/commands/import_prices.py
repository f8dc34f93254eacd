"""``import_prices PATH...``: import price files (or folders of them), all or nothing."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portfolios.engine.prices_io import PriceFileError
from portfolios.models_market import ImportBatch
from portfolios.services_market import MarketDataError, PriceSource, prices_import

BAR_WIDTH = 30


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "unknown user"


def progress_bar(done: int, total: int, label: str) -> str:
    filled = BAR_WIDTH * done // max(total, 1)
    return f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {label[:40]:<40}"


class Command(BaseCommand):
    help = (
        "Import price files in any supported format (crypto daily, stocks daily, ETF "
        "monthly, wide daily). Folders are searched for *.csv. All or nothing: a malformed "
        "file is refused with its name and line, and nothing is written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", help="Files or folders.")
        parser.add_argument(
            "--replace", action="store_true", help="Overwrite stored closes that differ."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        files: list[Path] = []
        for name in options["paths"]:
            path = Path(name)
            if path.is_dir():
                files.extend(sorted(path.rglob("*.csv")))
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{name}: no such file or folder")
        if not files:
            raise CommandError("no .csv files found")
        show = not options["no_progress"]
        err = self.stderr

        def progress(label: str, done: int, total: int) -> None:
            if show:
                err.write(progress_bar(done, total, label), ending="")
                err.flush()

        sources = [PriceSource.from_path(f) for f in files]
        try:
            batch = prices_import(
                sources=sources,
                actor=None,
                actor_label=f"import_prices ({_os_user()})",
                source=ImportBatch.Source.COMMAND,
                replace=options["replace"],
                progress=progress,
            )
        except (PriceFileError, MarketDataError) as exc:
            if show:
                err.write("")
            raise CommandError(f"nothing imported: {exc}") from exc
        if show:
            err.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"import #{batch.pk}: {len(files)} files, {batch.rows_created} prices created, "
                f"{batch.rows_replaced} replaced, {batch.rows_unchanged} unchanged, "
                f"{batch.rows_held} held for review, {batch.rows_skipped} rows skipped"
            )
        )
        for info in batch.files:
            for skipped in info["skipped"]:
                self.stdout.write(f"  {info['name']}, line {skipped['line']}: {skipped['reason']}")
        sys.stdout.flush()
