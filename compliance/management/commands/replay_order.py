"""``replay_order ID [--firm SLUG] [--json]``: recompute an order from its record.

The order's portfolio state as the run read it, the run's snapshot (prices, assets,
policies, rule set) and its immutable target version go through the same engine and
rule evaluation as the batch path (see :mod:`compliance.replay`). Reports whether
side, quantity, reason, price, status and compliance outcome match.

Exit status: 0 when the replay matches, 1 on a mismatch (each difference named), 2
when the order is unknown or has no record to replay.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.models import Firm
from accounts.tenancy.context import firm_context
from compliance.replay import ReplayError, order_replay
from portfolios.models_rebalance import Order


class Command(BaseCommand):
    help = "Recompute an order from its record and report whether it matches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("order_id", type=int)
        parser.add_argument("--firm", metavar="SLUG", help="The order's firm (default: search).")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        order_id = options["order_id"]
        firms = Firm.objects.order_by("pk")
        if options["firm"]:
            firms = firms.filter(slug=options["firm"])
        owner = None
        for firm in firms:
            with firm_context(firm), transaction.atomic():
                if Order.objects.filter(pk=order_id).exists():
                    owner = firm
                    break
        if owner is None:
            raise CommandError(f"order {order_id}: no such order", returncode=2)
        with firm_context(owner), transaction.atomic():
            try:
                result = order_replay(order_id=order_id)
            except ReplayError as exc:
                raise CommandError(f"order {order_id}: {exc}", returncode=2) from None
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2, default=str))
        else:
            r = result.replayed
            self.stdout.write(
                f"order {order_id} ({owner.slug}): recorded {result.recorded['side']} "
                f"{result.recorded['quantity']} ({result.recorded['reason']}, outcome "
                f"{result.recorded['compliance_outcome']}); replayed "
                + (
                    f"{r['side']} {r['quantity']} ({r['reason']}, outcome "
                    f"{r['compliance_outcome']})"
                    if r.get("found")
                    else "no order"
                )
            )
            for note in result.notes:
                self.stdout.write(f"note: {note}")
            if result.matches:
                self.stdout.write(self.style.SUCCESS("MATCH"))
            for diff in result.differences:
                self.stdout.write(self.style.ERROR(f"MISMATCH {diff}"))
        if not result.matches:
            raise SystemExit(1)
