"""The drift scan reads its chunks on several connections at once
(``bulk.map_on_connections``): each thread in the caller's firm, on a connection of its
own that it closes, results in order, the first error raised; inside a transaction
everything runs in the caller's thread, which alone sees the uncommitted rows."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from accounts.tenancy.context import current_firm_id, firm_context
from portfolios import bench_book
from portfolios.bulk import map_on_connections
from portfolios.models import Portfolio
from portfolios.services_rebalance import RebalanceError
from portfolios.services_schedule import drift_scan

from .rebalance_factories import bench_book_seed, portfolio_make, strategy_make

BOTH = ["default", "owner"]


def app_sessions() -> int:
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user "
            "OR usename IN (SELECT rolname FROM pg_roles WHERE NOT rolsuper)"
        )
        return int(cursor.fetchone()[0])


def visible(item: int) -> tuple[int, int, int | None, int, int]:
    """What a thread sees: its item, backend, firm, thread and the portfolios in reach."""
    time.sleep(0.05)  # long enough that every thread takes some items
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
        count = Portfolio.objects.count()
    return item, backend, current_firm_id(), threading.get_ident(), count


@pytest.fixture
def two_books(firm_a, firm_b):
    books = {}
    for world, size in ((firm_a, 3), (firm_b, 5)):
        with firm_context(world.firm), transaction.atomic():
            strategy = strategy_make(world.firm, "Plain", {})
            for _ in range(size):
                portfolio_make(world.firm, strategy=strategy, holdings={})
        books[world.firm.pk] = size
    return firm_a.firm, books


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_threads_read_on_their_own_connections_in_the_callers_firm(two_books):
    firm, books = two_books
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (own_backend,) = cursor.fetchone()
    sessions = app_sessions()
    with firm_context(firm):
        results = map_on_connections(visible, list(range(8)), threads=2)
    assert [r[0] for r in results] == list(range(8))  # in the items' order
    assert {r[2] for r in results} == {firm.pk}
    assert {r[4] for r in results} == {books[firm.pk]}  # row-level security: firm A's only
    backends = {r[1] for r in results}
    assert len(backends) == 2
    assert own_backend not in backends
    assert threading.get_ident() not in {r[3] for r in results}
    assert app_sessions() == sessions  # each thread closed its connection


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_the_first_error_is_raised_once_every_thread_has_stopped(two_books):
    firm, _ = two_books
    threads_before = threading.active_count()
    done: list[int] = []

    def work(item: int) -> int:
        if item == 2:
            raise ValueError("chunk 2 is bad")
        time.sleep(0.02)
        done.append(item)
        return item

    with firm_context(firm), pytest.raises(ValueError, match="chunk 2 is bad"):
        map_on_connections(work, list(range(20)), threads=2)
    assert threading.active_count() == threads_before
    assert len(done) < 19  # the other thread stopped taking items


def test_inside_a_transaction_the_callers_thread_reads_its_uncommitted_rows(two_books):
    firm, books = two_books
    strategy = strategy_make(firm, "Uncommitted", {})
    with firm_context(firm), transaction.atomic():
        portfolio_make(firm, strategy=strategy, holdings={})
        results = map_on_connections(visible, [0, 1, 2], threads=2)
    assert {r[3] for r in results} == {threading.get_ident()}
    assert {r[4] for r in results} == {books[firm.pk] + 1}


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_threaded_drift_scan_finds_what_the_sequential_one_finds(firm_a):
    firm = firm_a.firm
    bench_book_seed(firm, n=300, k=5, seed=11)
    with firm_context(firm):
        sequential = drift_scan(as_of=bench_book.D1, chunk_size=40, threads=1)
        threaded = drift_scan(as_of=bench_book.D1, chunk_size=40, threads=3)
        one_chunk = drift_scan(as_of=bench_book.D1, chunk_size=1000, threads=3)
    assert 0 < len(sequential) < 300
    assert threaded == sequential == one_chunk
    assert threaded == sorted(threaded)


def test_drift_scan_refuses_an_empty_chunk_size(firm_a):
    with firm_context(firm_a.firm), pytest.raises(RebalanceError, match="chunk_size") as refused:
        drift_scan(chunk_size=0)
    assert refused.value.field == "chunk_size"
