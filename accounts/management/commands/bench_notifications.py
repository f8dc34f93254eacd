"""``bench_notifications --portfolios N [--json]``.

Measures what a batch rebalance of N portfolios adds for its notifications: creating N
"rebalance executed" notifications with their email deliveries in bulk (the outbox, as
the execution hook writes it), then sending them in chunks of ``SEND_CHUNK`` through the
delivery service (the in-memory email backend: the cost is ours, not an SMTP server's).
Beside them, a floor measured in the same run: staged COPY of as many rows as the outbox
wrote. A synthetic firm of N investors is built first; everything happens in one
transaction that is rolled back, so the database is left as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

from django.core import mail
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import Firm, Membership, Role, User
from accounts.notifications import explain
from accounts.notifications.delivery import deliveries_send
from accounts.notifications.services import (
    NOTIFICATION_COLUMNS,
    SEND_CHUNK,
    Outgoing,
    notifications_emit,
)
from accounts.tenancy.context import firm_context
from portfolios.bulk import staged_copy


class _Rollback(Exception):
    pass


def _message(i: int) -> tuple[str, str]:
    """A realistic rebalance message (two trades, a deposit), from the explanation code."""
    return explain.rebalance_message(
        explain.RebalanceFacts(
            portfolio=f"B{i:08d}",
            trade_date=dt.date(2025, 1, 31),
            trades=[
                explain.TradeFact(
                    symbol="VTI",
                    side="sell",
                    quantity=Decimal("3"),
                    amount=Decimal("812.40"),
                    reason="BAND_REBALANCE",
                    drift=Decimal("0.062"),
                    band=Decimal("0.05"),
                ),
                explain.TradeFact(
                    symbol="BND",
                    side="buy",
                    quantity=Decimal("11"),
                    amount=Decimal("795.30"),
                    reason="BAND_REBALANCE",
                    drift=Decimal("-0.058"),
                    band=Decimal("0.05"),
                ),
            ],
            deposits=Decimal("500.00") if i % 3 == 0 else Decimal(0),
        )
    )


class Command(BaseCommand):
    help = (
        "Time creating and sending N rebalance notifications beside a staged-COPY floor "
        "measured in the same run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--portfolios", type=int, default=10_000)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        n = options["portfolios"]
        if n < 1:
            raise CommandError("--portfolios: at least 1")
        figures: dict[str, Any] = {"portfolios": n, "send_chunk": SEND_CHUNK}
        backend = "django.core.mail.backends.locmem.EmailBackend"
        try:
            with (
                override_settings(EMAIL_BACKEND=backend, NOTIFICATIONS_AUTO_SEND=False),
                transaction.atomic(),
            ):
                firm = Firm.objects.create(name="Benchmark firm", slug=f"bench-n-{time.time_ns()}")
                with firm_context(firm):
                    self._bench(firm, n, figures)
                raise _Rollback
        except _Rollback:
            pass
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
            return
        self.stdout.write(
            f"{n} rebalance notifications: create {figures['create_seconds']:.2f} s "
            f"({figures['rows_written']} rows), send {figures['send_seconds']:.2f} s "
            f"({figures['sent']} emails in {figures['send_tasks']} chunks of {SEND_CHUNK}); "
            f"floor (staged COPY of {figures['rows_written']} rows) "
            f"{figures['floor_seconds']:.2f} s; create/floor "
            f"{figures['create_ratio']:.1f}, (create+send)/floor {figures['total_ratio']:.1f}"
        )

    def _bench(self, firm: Firm, n: int, figures: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        slug = firm.slug
        users = User.objects.bulk_create(
            [
                User(username=f"{slug}-{i}", email=f"investor{i}@{slug}.test", password="!")  # noqa: S106 -- unusable
                for i in range(n)
            ],
            batch_size=5000,
        )
        Membership.objects.bulk_create(
            [Membership(firm=firm, user=u, role=Role.INVESTOR) for u in users], batch_size=5000
        )
        messages = [_message(i) for i in range(n)]
        figures["setup_seconds"] = time.perf_counter() - t0

        items = [
            Outgoing(
                event_type="rebalance_executed",
                event_key=f"rebalance:bench:{i}",
                recipient_id=u.pk,
                subject=messages[i][0],
                body=messages[i][1],
                link="/notifications/",
                data={"portfolio": i},
            )
            for i, u in enumerate(users)
        ]
        t0 = time.perf_counter()
        result = notifications_emit(items=items)
        figures["create_seconds"] = time.perf_counter() - t0
        figures["rows_written"] = result.notifications + result.deliveries

        mail.outbox = []
        t0 = time.perf_counter()
        ids = result.queued
        tasks = sent = 0
        for start in range(0, len(ids), SEND_CHUNK):
            # What one notifications_send task does with its chunk.
            report = deliveries_send(delivery_ids=ids[start : start + SEND_CHUNK], limit=SEND_CHUNK)
            sent += report.sent
            tasks += 1
        figures["send_seconds"] = time.perf_counter() - t0
        figures["sent"] = sent
        figures["send_tasks"] = tasks
        figures["emails_in_outbox"] = len(mail.outbox)
        mail.outbox = []

        # Floor: staged COPY of as many rows (notification rows with the same bodies).
        now = timezone.now()
        t0 = time.perf_counter()
        staged_copy(
            table="accounts_notification",
            columns=NOTIFICATION_COLUMNS,
            rows=(
                (
                    firm.pk,
                    "rebalance_executed",
                    f"floor:{j}",
                    users[j % n].pk,
                    messages[j % n][0],
                    messages[j % n][1],
                    "/notifications/",
                    "{}",
                    True,
                    True,
                    now,
                )
                for j in range(figures["rows_written"])
            ),
        )
        figures["floor_seconds"] = time.perf_counter() - t0
        floor = figures["floor_seconds"] or 1e-9
        figures["create_ratio"] = figures["create_seconds"] / floor
        figures["total_ratio"] = (figures["create_seconds"] + figures["send_seconds"]) / floor
        figures["send_ms_per_email"] = 1000 * figures["send_seconds"] / max(sent, 1)
