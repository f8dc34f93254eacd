"""A real worker killed with SIGKILL in the middle of a run: the run still finishes with
exactly one set of orders per portfolio, none missing.

Runs when ``CELERY_TEST_BROKER_URL`` names a broker (CI: this machine's RabbitMQ).
The chunk tasks are ``acks_late`` with a prefetch of one, so the chunk the worker
was computing goes back to the queue when its connection drops; its transaction
never committed. A chunk that committed but whose acknowledgement was lost is
re-delivered and finds its run rows already written: a no-op.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from decimal import Decimal

import pytest
from celery import Celery
from django.db import transaction
from django.utils import timezone

from accounts.models import Client, Household
from accounts.tenancy.context import firm_context
from compliance.models import AuditEvent
from portfolios.bulk import staged_copy
from portfolios.models import (
    Asset,
    Order,
    Portfolio,
    PortfolioType,
    RebalanceRun,
    RunPortfolio,
)
from portfolios.services_rebalance import rebalance_run_start
from tests.celery_worker import BROKER, RESULTS, worker_start
from tests.conftest import FirmWorld

from .rebalance_factories import AS_OF, asset_make, strategy_make

PORTFOLIOS = 3000
CHUNK = 150

pytestmark = [
    pytest.mark.skipif(not BROKER, reason="CELERY_TEST_BROKER_URL is not set"),
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
]


def _start_worker(queue: str) -> subprocess.Popen[str]:
    return worker_start(queue, capture=False, own_session=True)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def big_book(firm_a: FirmWorld) -> FirmWorld:
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    asset_make("CCC", "20")
    with transaction.atomic():
        strategy = strategy_make(firm_a.firm, "Thirds", {"AAA": "0.4", "BBB": "0.3", "CCC": "0.3"})
    firm = firm_a.firm
    with firm_context(firm), transaction.atomic():
        households = Household.objects.bulk_create(
            [Household(firm=firm, name=f"H{i}") for i in range(PORTFOLIOS // 3)]
        )
        clients = Client.objects.bulk_create(
            [
                Client(firm=firm, household=households[i % len(households)], first_name="K")
                for i in range(PORTFOLIOS)
            ]
        )
        portfolios = Portfolio.objects.bulk_create(
            [
                Portfolio(
                    firm=firm,
                    client=clients[i],
                    number=f"K{i:06d}",
                    account_type=PortfolioType.ROTH_IRA,
                    strategy=strategy,
                    cash=Decimal("100.00"),
                )
                for i in range(PORTFOLIOS)
            ]
        )
        ids = {a.symbol: a.pk for a in Asset.objects.all()}
        now = timezone.now()
        staged_copy(
            table="portfolios_holding",
            columns=["firm_id", "portfolio_id", "asset_id", "quantity", "updated_at"],
            rows=(
                (firm.pk, p.pk, ids[symbol], Decimal(q + i % 7), now)
                for i, p in enumerate(portfolios)
                for symbol, q in (("AAA", 5), ("BBB", 30), ("CCC", 10))
            ),
        )
    return firm_a


def test_a_killed_worker_leaves_one_set_of_orders_per_portfolio(big_book: FirmWorld) -> None:
    firm = big_book.firm
    with firm_context(firm):
        run = rebalance_run_start(
            trigger="manual", preview=True, as_of=AS_OF, chunk_size=CHUNK, dispatch=False
        )
    chunks: list[list[int]] = run.chunks  # type: ignore[attr-defined]
    queue = f"rebalance-kill-{uuid.uuid4().hex[:8]}"
    client = Celery("rebalance-kill-client", broker=BROKER, backend=RESULTS, set_as_current=False)
    worker = _start_worker(queue)
    restarted: subprocess.Popen[str] | None = None
    try:
        for chunk in chunks:
            client.send_task(
                "portfolios.rebalance_chunk",
                kwargs={"firm_id": firm.pk, "run_id": run.pk, "portfolio_ids": chunk},
                queue=queue,
            )

        def chunks_done() -> int:
            with firm_context(firm), transaction.atomic():
                return RebalanceRun.objects.get(pk=run.pk).chunks_done

        deadline = time.monotonic() + 120
        while chunks_done() < 2:
            assert time.monotonic() < deadline, "the worker computed no chunk in 120 s"
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        killed_at = chunks_done()
        assert killed_at < len(chunks), "the run finished before the kill: use more portfolios"

        restarted = _start_worker(queue)
        deadline = time.monotonic() + 240
        while chunks_done() < len(chunks):
            assert time.monotonic() < deadline, f"stuck at {chunks_done()}/{len(chunks)} chunks"
            time.sleep(0.2)
    finally:
        _stop(worker)
        if restarted is not None:
            _stop(restarted)
        client.close()

    with firm_context(firm), transaction.atomic():
        run.refresh_from_db()
        assert run.status == "preview"
        assert run.portfolios_done == PORTFOLIOS
        rows = RunPortfolio.objects.filter(run=run)
        assert rows.count() == PORTFOLIOS
        assert rows.values("portfolio_id").distinct().count() == PORTFOLIOS
        orders = Order.objects.filter(run=run)
        assert orders.count() == orders.values("portfolio_id", "asset_id").distinct().count()
        assert orders.values("portfolio_id").distinct().count() == PORTFOLIOS
        assert run.orders_count == orders.exclude(status="skipped").count()
        proposed = AuditEvent.objects.filter(
            run_id=str(run.pk), action="rebalance.portfolio_proposed"
        )
        assert proposed.count() == PORTFOLIOS
        assert proposed.values("object_id").distinct().count() == PORTFOLIOS
