"""``seed_assets``: the asset list and approximate market caps from portfolios/fixtures/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portfolios.services_market import (
    ASSETS_FILE,
    MARKET_CAPS_FILE,
    MarketDataError,
    assets_seed,
    market_caps_seed,
)


class Command(BaseCommand):
    help = "Create or update the assets (assets.csv) and their approximate market caps."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--assets", default=str(ASSETS_FILE))
        parser.add_argument("--market-caps", default=str(MARKET_CAPS_FILE))

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = assets_seed(path=Path(options["assets"]))
            caps = market_caps_seed(path=Path(options["market_caps"]))
        except MarketDataError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"assets: {counts['created']} created, {counts['updated']} updated; "
                f"market caps: {caps} created"
            )
        )
