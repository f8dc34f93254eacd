"""``bulk.write_behind``: staged inserts run by a background thread on the caller's
connection, in the caller's transaction, in the order given; an error there reaches
the caller, and a failure of the caller stops the writer. Nothing is half-written."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from django.db import IntegrityError, ProgrammingError, transaction
from django.utils import timezone

from accounts.tenancy.context import firm_context
from advisor.celery import _host_workers_record
from portfolios import bulk
from portfolios.bulk import write_behind
from portfolios.models import Holding, Portfolio

from .rebalance_factories import asset_make, portfolio_make, strategy_make

pytestmark = pytest.mark.django_db

COLUMNS = ("firm_id", "portfolio_id", "asset_id", "quantity", "updated_at")


@pytest.fixture
def world(firm_a, firm_b):
    aaa, bbb = asset_make("AAA", "100"), asset_make("BBB", "50")
    strategy = strategy_make(firm_a.firm, "Half half", {"AAA": "0.5", "BBB": "0.5"})
    with firm_context(firm_a.firm):
        portfolios = [
            portfolio_make(firm_a.firm, strategy=strategy, holdings={}) for _ in range(40)
        ]
    return firm_a.firm, firm_b.firm, portfolios, (aaa, bbb)


def lines(firm_id, portfolios, asset, quantity="1.5"):
    now = timezone.now().isoformat()
    return [f"{firm_id}\t{p.pk}\t{asset.pk}\t{quantity}\t{now}\n" for p in portfolios]


def held(firm, asset):
    with firm_context(firm), transaction.atomic():
        return sorted(Holding.objects.filter(asset=asset).values_list("portfolio_id", flat=True))


def no_writer_left():
    return not any(t.name == "write-behind" for t in threading.enumerate())


def test_inserts_land_in_order_in_the_callers_transaction(world):
    firm, _, portfolios, (aaa, bbb) = world
    switch_interval = sys.getswitchinterval()
    with firm_context(firm), transaction.atomic():
        with write_behind() as writer:
            assert sys.getswitchinterval() < switch_interval
            writer.insert(
                table="portfolios_holding", columns=COLUMNS, lines=lines(firm.pk, portfolios, aaa)
            )
            # The caller's own query meanwhile waits its turn on the connection.
            assert Portfolio.objects.filter(pk=portfolios[0].pk).exists()
            writer.insert(
                table="portfolios_holding", columns=COLUMNS, lines=lines(firm.pk, portfolios, bbb)
            )
            writer.insert(table="portfolios_holding", columns=COLUMNS, lines=[])
        ids = list(
            Holding.objects.filter(asset__in=[aaa, bbb])
            .order_by("pk")
            .values_list("asset_id", flat=True)
        )
    assert ids == [aaa.pk] * 40 + [bbb.pk] * 40
    assert no_writer_left()
    assert sys.getswitchinterval() == switch_interval


def insert(writer, firm_id, portfolios, asset):
    writer.insert(
        table="portfolios_holding", columns=COLUMNS, lines=lines(firm_id, portfolios, asset)
    )


def test_the_callers_rollback_takes_the_written_rows_with_it(world):
    firm, _, portfolios, (aaa, _) = world

    def run():
        with firm_context(firm), transaction.atomic():
            with write_behind() as writer:
                insert(writer, firm.pk, portfolios, aaa)
            raise RuntimeError("after the writer")

    with pytest.raises(RuntimeError, match="after"):
        run()
    assert held(firm, aaa) == []


def test_an_error_in_the_writer_reaches_the_caller_and_skips_the_rest(world):
    firm, _, portfolios, (aaa, bbb) = world

    def run():
        with firm_context(firm), transaction.atomic(), write_behind() as writer:
            insert(writer, firm.pk, portfolios, aaa)
            # The same (portfolio, asset) again: the unique constraint refuses it.
            insert(writer, firm.pk, portfolios[:1], aaa)
            insert(writer, firm.pk, portfolios, bbb)

    with pytest.raises(IntegrityError):
        run()
    assert held(firm, aaa) == []
    assert held(firm, bbb) == []
    assert no_writer_left()


def test_another_firms_rows_are_refused_by_row_level_security(world):
    firm, other, portfolios, (aaa, _) = world

    def run():
        with firm_context(firm), transaction.atomic(), write_behind() as writer:
            insert(writer, other.pk, portfolios, aaa)

    with pytest.raises(ProgrammingError, match="row-level security"):
        run()
    assert held(firm, aaa) == []
    assert held(other, aaa) == []


def test_a_failing_caller_stops_the_writer(world):
    firm, _, portfolios, (aaa, bbb) = world

    def run():
        with firm_context(firm), transaction.atomic(), write_behind() as writer:
            insert(writer, firm.pk, portfolios, aaa)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run()
    assert no_writer_left()
    assert held(firm, aaa) == []
    assert held(firm, bbb) == []


def test_inline_each_insert_runs_when_queued_in_the_callers_thread(world):
    firm, _, portfolios, (aaa, _) = world
    with firm_context(firm), transaction.atomic():
        with write_behind(background=False) as writer:
            assert no_writer_left()
            insert(writer, firm.pk, portfolios, aaa)
            assert Holding.objects.filter(asset=aaa).count() == 40
        assert Holding.objects.filter(asset=aaa).count() == 40


def test_inline_errors_surface_at_once(world):
    firm, _, portfolios, (aaa, _) = world

    def run():
        with firm_context(firm), transaction.atomic(), write_behind(background=False) as writer:
            insert(writer, firm.pk, portfolios, aaa)
            insert(writer, firm.pk, portfolios[:1], aaa)

    with pytest.raises(IntegrityError):
        run()
    assert held(firm, aaa) == []


@pytest.fixture
def host(monkeypatch, settings):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(bulk, "_host_workers", 1)
    settings.REBALANCE_WRITE_BEHIND = None
    return settings


def test_writing_behind_needs_a_core_beyond_the_workers(host):
    assert bulk.spare_cores()  # one worker on two cores
    bulk.host_workers_set(2)
    assert not bulk.spare_cores()
    bulk.host_workers_set(0)  # counted as one
    assert bulk.spare_cores()
    host.REBALANCE_WRITE_BEHIND = False
    assert not bulk.spare_cores()
    bulk.host_workers_set(4)
    host.REBALANCE_WRITE_BEHIND = True
    assert bulk.spare_cores()


def test_a_celery_worker_records_its_concurrency(host):
    _host_workers_record(options={"concurrency": 3})
    assert bulk._host_workers == 3
    _host_workers_record(options={})  # Celery's default: a process per core
    assert bulk._host_workers == 2
    assert not bulk.spare_cores()
