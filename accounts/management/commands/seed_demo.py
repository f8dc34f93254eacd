"""``seed_demo``: the demo firms, logins and data. Idempotent; see :mod:`accounts.demo`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.demo import DEMO_PASSWORD, demo_seed


class Command(BaseCommand):
    help = "Create the demo firms (alpine, bayside, cedar), their logins and the platform user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even with production settings (the demo password is public).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.SETTINGS_MODULE.endswith(".prod") and not options["allow_production"]:
            raise CommandError(
                f"refusing to seed demo logins (password {DEMO_PASSWORD!r}, a superuser "
                "among them) with production settings; pass --allow-production to insist"
            )
        result = demo_seed(progress=self.stdout.write)
        if result.created_anything:
            self.stdout.write(self.style.SUCCESS("demo seeded"))
        else:
            self.stdout.write(self.style.SUCCESS("demo already seeded: nothing created"))
