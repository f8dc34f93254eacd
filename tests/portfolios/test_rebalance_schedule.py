"""Scheduled rebalancing: calendar periods, the drift scan, cash flows, the beat entry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.tenancy.context import firm_context
from portfolios import bench_book, services_schedule
from portfolios.models import CashFlow, CashFlowKind, Price, RebalancePolicy, RunPortfolio
from portfolios.services_rebalance import rebalance_run_start
from portfolios.services_schedule import drift_scan, period_start

from .rebalance_factories import AS_OF, asset_make, bench_book_seed, portfolio_make, strategy_make

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("calendar", "today", "start"),
    [
        ("monthly", dt.date(2025, 5, 17), dt.date(2025, 5, 1)),
        ("quarterly", dt.date(2025, 5, 17), dt.date(2025, 4, 1)),
        ("quarterly", dt.date(2025, 12, 31), dt.date(2025, 10, 1)),
        ("yearly", dt.date(2025, 5, 17), dt.date(2025, 1, 1)),
    ],
)
def test_period_start(calendar, today, start):
    assert period_start(calendar, today) == start


@pytest.fixture
def book(firm_a):
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    strategy = strategy_make(firm_a.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    with firm_context(firm_a.firm):
        drifted = portfolio_make(
            firm_a.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"}, cash="30"
        )
        inside = portfolio_make(
            firm_a.firm, strategy=strategy, holdings={"AAA": "18", "BBB": "24"}, cash="30"
        )
    return firm_a, drifted, inside


def test_drift_scan_finds_only_portfolios_outside_their_bands(book):
    world, drifted, _inside = book
    with firm_context(world.firm):
        assert drift_scan(as_of=AS_OF) == [drifted.pk]


def test_drift_scan_run_trades_only_the_drifted(book, django_capture_on_commit_callbacks):
    world, drifted, _ = book
    with firm_context(world.firm), django_capture_on_commit_callbacks(execute=True):
        run = services_schedule.rebalance_drift_scan_run(as_of=AS_OF)
    with firm_context(world.firm):
        assert run is not None
        assert run.trigger == "drift_scan"
        assert list(
            RunPortfolio.objects.filter(run=run).values_list("portfolio_id", flat=True)
        ) == [drifted.pk]


def test_calendar_runs_once_per_period(book, django_capture_on_commit_callbacks):
    world, drifted, inside = book
    with firm_context(world.firm):
        RebalancePolicy.objects.filter(is_firm_default=True).delete()
        RebalancePolicy.objects.create(
            firm=world.firm, name="Monthly", is_firm_default=True, calendar="monthly"
        )
        type(drifted).objects.filter(pk=inside.pk).update(last_rebalanced_on=timezone.localdate())
        with django_capture_on_commit_callbacks(execute=True):
            run = services_schedule.rebalance_calendar_due()
        assert run is not None
        assert run.scope == {"portfolios": [drifted.pk]}
        assert run.policy_snapshot["force"] is True


def test_a_threshold_only_policy_never_starts_calendar_runs(book):
    world, *_ = book
    with firm_context(world.firm):
        RebalancePolicy.objects.create(
            firm=world.firm, name="Bands", is_firm_default=True, trigger_mode="threshold"
        )
        assert services_schedule.rebalance_calendar_due() is None


def test_the_daily_beat_entry_exists():
    entry = settings.CELERY_BEAT_SCHEDULE["rebalance-daily"]
    assert entry["task"] == "portfolios.rebalance_scheduled_all_firms"
    from advisor.celery import app

    assert entry["task"] in app.tasks


def test_a_requested_deposit_starts_a_cash_flow_rebalance(book, django_capture_on_commit_callbacks):
    from decimal import Decimal

    from portfolios.models import RebalanceRun
    from portfolios.services_book import cash_flow_request

    world, drifted, _inside = book
    with django_capture_on_commit_callbacks(execute=True):
        cash_flow_request(
            firm=world.firm,
            actor=world.users["advisor"],
            portfolio=drifted,
            kind="deposit",
            amount=Decimal("2500.00"),
        )
    with firm_context(world.firm):
        run = RebalanceRun.objects.get(trigger="cash_flow")
        assert run.scope == {"portfolios": [drifted.pk]}
        rp = RunPortfolio.objects.get(run=run)
        assert rp.cash_flow == Decimal("2500.00")
        assert rp.status == "proposed"


def test_drift_scan_picks_what_a_full_run_finds_outside_its_bands(
    firm_a, django_capture_on_commit_callbacks
):
    # The scan reads only what drift needs (no lots, no ledger); a run of the whole book
    # at the same prices, lots and all, must find exactly the same portfolios triggered
    # by a band or the cash floor.
    firm = firm_a.firm
    bench_book_seed(firm, n=240, k=6, seed=3)
    with firm_context(firm):
        scanned = drift_scan(as_of=bench_book.D1)
        with django_capture_on_commit_callbacks(execute=True):
            run = rebalance_run_start(
                trigger="manual", preview=True, as_of=bench_book.D1, force=False
            )
        rows = RunPortfolio.objects.filter(run=run)
        assert rows.count() == 240
        outside = sorted(
            rows.filter(trigger__in=["BAND", "CASH_FLOOR"]).values_list("portfolio_id", flat=True)
        )
    assert 0 < len(scanned) < 240
    assert scanned == outside


def test_drift_scan_leaves_out_portfolios_a_run_would_skip(book):
    # Out of their bands too, but one holds an asset without a price and the other has
    # a withdrawal larger than itself: the run would skip both with a reason, so the
    # scan does not start a run for them every day.
    world, drifted, _ = book
    asset_make("ZZZ", "10")
    with firm_context(world.firm):
        Price.objects.filter(asset__symbol="ZZZ").delete()
        strategy = drifted.strategy
        portfolio_make(
            world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40", "ZZZ": "1"}
        )
        poor = portfolio_make(
            world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"}, cash="30"
        )
        CashFlow.objects.create(
            firm=world.firm, portfolio=poor, kind=CashFlowKind.WITHDRAWAL, amount=Decimal("9000")
        )
        assert drift_scan(as_of=AS_OF) == [drifted.pk]
