"""``rebalance --firm SLUG [--portfolio ID ...] [--preview] [--approve] [--json]``."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.models import Firm
from accounts.tenancy.context import firm_context
from portfolios.management.commands.import_prices import progress_bar
from portfolios.models_rebalance import RebalanceRun, RunPortfolio, RunStatus
from portfolios.services_execution import rebalance_run_approve
from portfolios.services_rebalance import RebalanceError, rebalance_run_start
from portfolios.tasks import rebalance_chunk_task

POLL_SECONDS = 0.5
LABEL = "rebalance command"


def run_summary(run: RebalanceRun) -> dict[str, Any]:
    return {
        "run": run.pk,
        "status": run.status,
        "preview": run.preview,
        "prices_as_of": run.prices_as_of.isoformat(),
        "portfolios": run.portfolios_total,
        "triggered": run.portfolios_triggered,
        "skipped": run.portfolios_skipped,
        "skipped_portfolios": [
            {"portfolio": pid, "reason": reason}
            for pid, reason in RunPortfolio.objects.filter(run=run, status="skipped")
            .order_by("portfolio_id")
            .values_list("portfolio_id", "skip_reason")[:100]
        ],
        "orders": run.orders_count,
        "blocked": run.orders_blocked,
        "held": run.orders_held,
        "buy_value": str(run.buy_value),
        "sell_value": str(run.sell_value),
        "chunks": run.chunks_total,
        "timings": run.timings,
        "error": run.error,
    }


class Command(BaseCommand):
    help = (
        "Rebalance a firm's book (or some portfolios): compute a run in chunks with a "
        "progress bar. --preview computes only; --approve also approves and executes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--firm", help="Firm slug.")
        who.add_argument("--all-firms", action="store_true", help="Each active firm in turn.")
        parser.add_argument("--portfolio", type=int, nargs="*", help="Portfolio ids.")
        parser.add_argument("--preview", action="store_true")
        parser.add_argument("--approve", action="store_true", help="Approve and execute.")
        parser.add_argument("--force", action="store_true", help="Trade inside bands too.")
        parser.add_argument("--as-of", type=dt.date.fromisoformat, help="Prices as of.")
        parser.add_argument("--chunk-size", type=int, default=2000)
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["preview"] and options["approve"]:
            raise CommandError("--approve: a preview is never executed")
        if options["all_firms"]:
            if options["portfolio"]:
                raise CommandError("--portfolio: give one --firm with portfolio ids")
            firms = list(Firm.objects.filter(is_active=True).order_by("slug"))
        else:
            firm = Firm.objects.filter(slug=options["firm"]).first()
            if firm is None:
                raise CommandError(f"--firm: no firm {options['firm']!r}")
            firms = [firm]
        summaries = [self._one(firm, options) for firm in firms]
        if options["json"]:
            out = summaries if options["all_firms"] else summaries[0]
            self.stdout.write(json.dumps(out, indent=2))
        failed = [s for s in summaries if s["status"] == RunStatus.FAILED]
        if failed:
            raise CommandError(f"run {failed[0]['run']} failed: {failed[0]['error']}")

    def _one(self, firm: Firm, options: dict[str, Any]) -> dict[str, Any]:
        show = not options["no_progress"]
        with firm_context(firm):
            try:
                run = rebalance_run_start(
                    trigger="manual",
                    actor_label=LABEL,
                    preview=options["preview"],
                    portfolio_ids=options["portfolio"],
                    as_of=options["as_of"],
                    force=True if options["force"] else None,
                    chunk_size=options["chunk_size"],
                    dispatch=False,
                )
            except RebalanceError as exc:
                raise CommandError(str(exc)) from exc
            self._compute(firm, run, run.chunks, show)  # type: ignore[attr-defined]
            with transaction.atomic():
                run.refresh_from_db()
            if options["approve"] and run.status == RunStatus.AWAITING_APPROVAL:
                rebalance_run_approve(run=run, actor=None, note=LABEL)
                with transaction.atomic():
                    run.refresh_from_db()
            with transaction.atomic():
                summary = run_summary(run)
        summary["firm"] = firm.slug
        if not options["json"]:
            self.stdout.write(
                f"{firm.slug}: run {run.pk} {run.status}: {run.portfolios_total} portfolios, "
                f"{run.portfolios_triggered} triggered, {run.portfolios_skipped} skipped, "
                f"{run.orders_count} orders "
                f"({run.orders_blocked} blocked, {run.orders_held} held), "
                f"buys {run.buy_value}, sells {run.sell_value}"
            )
        return summary

    def _compute(self, firm: Firm, run: RebalanceRun, chunks: list[list[int]], show: bool) -> None:
        total = run.portfolios_total
        if settings.CELERY_TASK_ALWAYS_EAGER:
            done = 0
            for chunk in chunks:
                rebalance_chunk_task.apply(
                    kwargs={"firm_id": firm.pk, "run_id": run.pk, "portfolio_ids": chunk}
                )
                done += len(chunk)
                self._bar(show, done, total, run)
        else:  # real workers: enqueue, then follow the run's progress in the database
            for chunk in chunks:
                rebalance_chunk_task.delay(firm_id=firm.pk, run_id=run.pk, portfolio_ids=chunk)
            while True:
                with transaction.atomic():
                    run.refresh_from_db()
                self._bar(show, run.portfolios_done, total, run)
                if run.status not in (RunStatus.QUEUED, RunStatus.COMPUTING):
                    break
                time.sleep(POLL_SECONDS)
        if show:
            self.stderr.write("")

    def _bar(self, show: bool, done: int, total: int, run: RebalanceRun) -> None:
        if show:
            self.stderr.write(progress_bar(done, total, f"run {run.pk}"), ending="")
            self.stderr.flush()
