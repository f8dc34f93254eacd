"""``bench_rebalance --portfolios N --positions K [--workers W] [--json]``.

Seeds a throwaway firm of N portfolios holding K positions on 20 strategies
(``portfolios.bench_book``) and times batch rebalances of it end to end through the
real code path (``rebalance_run_start``, then ``rebalance_chunk_compute`` per chunk:
database reads, engine, rules, orders, lots, audit events, run summary), the chunks
computed by forked worker processes taking them from a shared queue:

* the **typical** day: the daily drift scan at D1 prices (``rebalance_drift_scan_run``:
  drift and triggers of the whole book, then a run of the portfolios outside their
  bands, about 10% of them; 1 worker);
* the **worst** case: an advisor's forced run at D2 prices, every portfolio trading,
  once with 1 worker and once, as a new run, with ``--workers`` workers.

Beside them, in the same run and on the same rows, the **floor**: reading every
holding row under row-level security (``COPY ... TO STDOUT``) and writing as many
rows as the worst run wrote through staged COPY into the orders table (rolled
back); and a **naive baseline**: a sample of portfolios rebalanced one at a time
with ORM reads and ``save()`` calls (``portfolios.bench_naive``).

Two processes only share committed rows and audit events cannot be deleted, so by
default everything happens in a scratch database (``bench_<pid>``) created and
migrated through the owner role, as the test suite does, and dropped at the end
whatever happens. ``--in-place`` uses the current database instead (tests) and
leaves the firm there.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import json
import math
import multiprocessing as mp
import multiprocessing.queues
import os
import queue
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError, connection, connections, transaction

from accounts.models import Firm
from accounts.tenancy.context import firm_context
from compliance.models import AuditEvent
from portfolios import bench_book, bench_naive
from portfolios.bulk import host_workers_set, staged_copy
from portfolios.management.commands.import_prices import progress_bar
from portfolios.models import Portfolio
from portfolios.models_rebalance import (
    Order,
    OrderLot,
    OrderStatus,
    RebalanceRun,
    RunPortfolio,
    RunStatus,
    RunTrigger,
)
from portfolios.services_rebalance import (
    ORDER_COLUMNS,
    rebalance_chunk_compute,
    rebalance_run_start,
)
from portfolios.services_schedule import rebalance_drift_scan_run

POLL_SECONDS = 0.25
DROP_ATTEMPTS = 10
SEEDED_TABLES = (
    "accounts_household",
    "accounts_client",
    "portfolios_portfolio",
    "portfolios_holding",
    "portfolios_taxlot",
    "portfolios_asset",
    "portfolios_price",
    "portfolios_strategy",
    "portfolios_strategyversion",
)
# The run's own order columns, ids left to the sequence.
FLOOR_ORDER_COLUMNS = [c for c in ORDER_COLUMNS if c != "id"]
#: (key, comparison, limit): the issue's targets, set at 100,000 portfolios x 20 positions.
TARGETS = (
    ("ratio_to_floor", "<=", 3.0),
    ("speedup_vs_naive", ">=", 50.0),
    ("per_portfolio_ms", "<", 0.5),
    ("typical_seconds", "<", 10.0),
    ("workers_speedup", ">=", 1.5),
)
REQUIRED_KEYS = (
    "portfolios",
    "positions",
    "typical_seconds",
    "worst_seconds",
    "worst_orders",
    "floor_seconds",
    "ratio_to_floor",
    "per_portfolio_ms",
    "naive_per_portfolio_ms",
    "speedup_vs_naive",
    "peak_rss_mb",
)


class _Rollback(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Timed:
    run: RebalanceRun
    seconds: float
    start_seconds: float  # rebalance_run_start alone
    worker_rss_kb: list[tuple[int, int]]  # (peak, at fork) per worker
    chunk_seconds: list[float]  # each chunk's compute, in the chunks' order


# --------------------------------------------------------------------------- scratch database


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A database of its own, created and migrated through the owner role like the test
    database (tests/conftest.py), ``default`` pointed at it; dropped on the way out."""
    owner, app = connections["owner"], connections["default"]
    old_name = owner.settings_dict["NAME"]
    old_app_name = app.settings_dict["NAME"]
    old_test = dict(owner.settings_dict.get("TEST") or {})
    name = f"bench_{os.getpid()}"
    connections.close_all()
    owner.settings_dict["TEST"] = {**old_test, "NAME": name}
    try:
        owner.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
        app.settings_dict["NAME"] = name
        yield name
    finally:
        connections.close_all()
        # A worker's session may take a moment to end after the worker (interrupted runs).
        for attempt in range(DROP_ATTEMPTS):
            if owner.settings_dict["NAME"] != name:
                break
            try:
                owner.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)
            except OperationalError:
                if attempt == DROP_ATTEMPTS - 1:
                    raise
                time.sleep(1)
        owner.settings_dict["NAME"] = old_name
        owner.settings_dict["TEST"] = old_test
        app.settings_dict["NAME"] = old_app_name


# --------------------------------------------------------------------------- workers


def _worker(
    firm: Firm,
    run_id: int,
    chunks: list[np.ndarray],
    tasks: mp.queues.Queue[int | None],
    results: mp.queues.Queue[tuple[str, Any]],
    workers: int,
) -> None:
    """A forked worker: computes the chunks it takes from ``tasks`` until it reads None,
    each in its own transaction, then reports its peak resident set (KB) and each
    chunk's time. Like a Celery worker of concurrency ``workers``, it knows how many
    share the host."""
    # What the fork handed over (the parent's pages, shared until written): it counts in
    # the worker's resident set, and grows with whatever the parent holds at the time.
    at_fork_kb = _resident_kb()
    host_workers_set(workers)
    # As a production worker runs: Django's debug log of every query (dev settings)
    # grows with each chunk, 0.18 MB a chunk, and would be measured as the run's.
    settings.DEBUG = False
    seconds: dict[int, float] = {}
    try:
        with firm_context(firm):
            while (index := tasks.get()) is not None:
                started = time.perf_counter()
                with transaction.atomic():
                    rebalance_chunk_compute(run_id=run_id, portfolio_ids=chunks[index].tolist())
                seconds[index] = time.perf_counter() - started
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results.put(("ok", (peak_kb, at_fork_kb, seconds)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
    finally:
        connections.close_all()


def compute_in_workers(
    *,
    firm: Firm,
    run_id: int,
    chunks: list[np.ndarray],
    workers: int,
    progress: Callable[[], None] | None = None,
) -> tuple[list[tuple[int, int]], list[float]]:
    """Compute a run's chunks in ``workers`` forked processes: each one's peak resident
    set and its resident set when it started, as forked (KB); each chunk's time."""
    connections.close_all()  # a forked child must open its own connection
    _release_freed_memory()
    context = mp.get_context("fork")
    tasks: mp.queues.Queue[int | None] = context.Queue()
    results: mp.queues.Queue[tuple[str, Any]] = context.Queue()
    processes = [
        context.Process(
            target=_worker,
            args=(firm, run_id, chunks, tasks, results, workers),
            name=f"bench-worker-{w}",
        )
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    # Queued after the forks, so that no child inherits the queue's feeder thread state.
    for index in range(len(chunks)):
        tasks.put(index)
    for _ in processes:
        tasks.put(None)
    reports: list[tuple[str, Any]] = []
    try:
        while len(reports) < workers:
            try:
                reports.append(results.get(timeout=POLL_SECONDS))
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise CommandError(
                        f"worker {dead[0].name} died with exit code {dead[0].exitcode}"
                    ) from None
            if progress is not None:
                progress()
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
        tasks.close()
        results.close()
    errors = [detail for status, detail in reports if status == "error"]
    if errors:
        raise CommandError(f"a bench worker failed:\n{errors[0]}")
    seconds = {index: s for _, (_, _, per) in reports for index, s in per.items()}
    return (
        [(int(peak), int(at_fork)) for _, (peak, at_fork, _) in reports],
        [seconds[index] for index in range(len(chunks))],
    )


def _release_freed_memory() -> None:
    """Return what this process has freed to the operating system before forking.

    A forked worker's resident set counts every page of its parent, and this parent
    seeded the book and scanned it: at 1,000,000 portfolios its workers started at
    405 MB and peaked 11 MB above. A Celery worker forks from a master that did no
    such work; so should the benchmark's, to measure the workers' own memory."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _resident_kb() -> int:
    """This process's resident set now (KB), 0 where /proc is not there."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------- command


class Command(BaseCommand):
    help = (
        "Time batch rebalances of N synthetic portfolios (a typical day and the worst case, "
        "1 and several workers) beside a floor and a naive baseline measured in the same run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--portfolios", type=int, default=10_000)
        parser.add_argument("--positions", type=int, default=20, help="2 to 100.")
        parser.add_argument("--chunk-size", type=int, default=2000)
        parser.add_argument(
            "--workers",
            type=int,
            default=2,
            help="Worker processes of the second worst-case run (the first has 1).",
        )
        parser.add_argument(
            "--naive-sample",
            type=int,
            default=1000,
            help="Portfolios of the naive baseline (at most N; 0 skips it).",
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--in-place",
            action="store_true",
            help="Use the current database (tests) instead of a scratch database.",
        )
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        n, k = options["portfolios"], options["positions"]
        if n < 1:
            raise CommandError("--portfolios: at least 1")
        if not 2 <= k <= 100:
            raise CommandError("--positions: between 2 and 100")
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size: at least 1")
        if not 2 <= options["workers"] <= 64:
            raise CommandError("--workers: between 2 and 64 (compared with a 1-worker run)")
        if options["naive_sample"] < 0:
            raise CommandError("--naive-sample: 0 or more")
        figures: dict[str, Any] = {"portfolios": n, "positions": k}
        if options["in_place"]:
            figures["database"] = "in place"
            self._bench(options, figures)
        else:
            started = time.perf_counter()
            # SIGTERM unwinds like Ctrl-C, so that the scratch database is dropped then too.
            previous = signal.signal(signal.SIGTERM, _interrupt)
            try:
                with scratch_database() as name:
                    figures["database"] = f"scratch {name} (dropped)"
                    figures["scratch_database_seconds"] = round(time.perf_counter() - started, 3)
                    self._bench(options, figures)
            finally:
                signal.signal(signal.SIGTERM, previous)
        figures["parent_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
        figures["targets"] = _targets(figures)
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            self.stdout.write(_summary(figures))

    # -- progress

    def _progress(self, show: bool, label: str, total: int) -> Callable[[int], None] | None:
        if not show:
            return None

        def draw(done: int) -> None:
            self.stderr.write(progress_bar(done, total, label), ending="")
            self.stderr.flush()

        return draw

    def _end_progress(self, show: bool) -> None:
        if show:
            self.stderr.write("")

    # -- the benchmark

    def _bench(self, options: dict[str, Any], figures: dict[str, Any]) -> None:
        n, k, seed = options["portfolios"], options["positions"], options["seed"]
        show = not options["no_progress"]
        chunk_size, workers = options["chunk_size"], options["workers"]

        started = time.perf_counter()
        firm = Firm.objects.create(name="Benchmark firm", slug=f"bench-{time.time_ns()}")
        with firm_context(firm):
            seeded = bench_book.calibrated_book_seed(
                firm=firm, n=n, k=k, seed=seed, progress=self._progress(show, "seeding", n)
            )
            self._end_progress(show)
        market, counts = seeded.market, seeded.counts
        noise, predicted, sample = seeded.noise, seeded.predicted_share, seeded.calibration_sample
        # Settled, as a book is by the time of its daily scan (autovacuum has been by):
        # visibility map and hint bits set, statistics current. Without the VACUUM the
        # first reads after the seed, the floor's and the typical day's, set the hint
        # bits of millions of freshly written rows and pay for it.
        with connections["owner"].cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) " + ", ".join(SEEDED_TABLES))
        figures.update(
            {
                "firm": firm.slug,
                "strategies": bench_book.STRATEGIES,
                "taxable_portfolios": (n + 1) // 2,
                "tax_lots": counts["tax_lots"],
                "chunk_size": chunk_size,
                "workers": workers,
                "seed": seed,
                "setup_seconds": round(time.perf_counter() - started, 3),
                "noise_scale": round(noise, 6),
                "calibration_sample": sample,
                "calibrated_triggered_share": round(predicted, 4),
            }
        )

        read_seconds, read_rows = self._floor_read(firm)
        if read_rows != n * k:
            raise CommandError(f"floor read {read_rows} holding rows, expected {n * k}")

        def daily_scan() -> RebalanceRun | None:
            return rebalance_drift_scan_run(
                as_of=bench_book.D1,
                actor_label="bench_rebalance",
                chunk_size=chunk_size,
                dispatch=False,
            )

        typical = self._timed(firm, "typical day", start=daily_scan, workers=1, show=show)
        # The same day again (the first run awaits approval, so the same portfolios are
        # out of their bands), its run's chunks shared by the workers.
        typical_more = self._timed(
            firm, f"typical day, {workers} workers", start=daily_scan, workers=workers, show=show
        )

        def forced() -> RebalanceRun:
            return rebalance_run_start(
                trigger=RunTrigger.MANUAL,
                actor_label="bench_rebalance",
                as_of=bench_book.D2,
                force=True,
                chunk_size=chunk_size,
                dispatch=False,
            )

        worst = self._timed(firm, "worst case, 1 worker", start=forced, workers=1, show=show)
        written = self._rows_written(firm, worst.run.pk)
        worst_more = self._timed(
            firm, f"worst case, {workers} workers", start=forced, workers=workers, show=show
        )
        with firm_context(firm), transaction.atomic():
            rows_more = RunPortfolio.objects.filter(run=worst_more.run)
            more_run_rows = rows_more.count()
            more_distinct = rows_more.values("portfolio_id").distinct().count()
            portfolio_ids = list(Portfolio.objects.order_by("pk").values_list("pk", flat=True))
        if more_run_rows != n or more_distinct != n:
            raise CommandError(
                f"the {workers}-worker run wrote {more_run_rows} run rows for {more_distinct} "
                f"portfolios, expected one for each of {n}"
            )
        rows_written = sum(written.values())
        write_seconds = self._floor_write(firm, rows_written, portfolio_ids, market.asset_ids)
        naive = self._naive(firm, portfolio_ids, min(options["naive_sample"], n), worst.run)

        floor = read_seconds + write_seconds
        per_portfolio_ms = 1000 * worst.seconds / n
        naive_ms = naive.get("naive_per_portfolio_ms")
        timed = (typical, typical_more, worst, worst_more)
        peak_kb = max(peak for t in timed for peak, _ in t.worker_rss_kb)
        at_fork_kb = max(at_fork for t in timed for _, at_fork in t.worker_rss_kb)
        figures.update(
            {
                "typical_seconds": round(typical.seconds, 6),
                "typical_workers": 1,
                # The scan of the whole book and the start of its run (one process).
                "typical_scan_seconds": round(typical.start_seconds, 6),
                "typical_seconds_2_workers": round(typical_more.seconds, 6),
                "typical_orders_2_workers": typical_more.run.orders_count,
                "typical_triggered_share": round(typical.run.portfolios_triggered / n, 4),
                "typical_orders": typical.run.orders_count,
                "worst_seconds": round(worst.seconds, 6),
                "worst_orders": worst.run.orders_count,
                "worst_seconds_2_workers": round(worst_more.seconds, 6),
                "worst_orders_2_workers": worst_more.run.orders_count,
                "worst_2_workers_run_portfolios": more_run_rows,
                "workers_speedup": round(worst.seconds / worst_more.seconds, 4),
                "per_portfolio_ms": round(per_portfolio_ms, 6),
                "rows_written": rows_written,
                "rows_written_detail": written,
                "floor_read_seconds": round(read_seconds, 6),
                "floor_read_rows": read_rows,
                "floor_read_method": "COPY (SELECT ...) TO STDOUT, every byte read",
                "floor_write_seconds": round(write_seconds, 6),
                "floor_write_method": "staged_copy into portfolios_order, rolled back",
                "floor_seconds": round(floor, 6),
                "ratio_to_floor": round(worst.seconds / floor, 4) if floor else None,
                **naive,
                "speedup_vs_naive": round(naive_ms / per_portfolio_ms, 4)
                if naive_ms and per_portfolio_ms
                else None,
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "worker_rss_at_fork_mb": round(at_fork_kb / 1024, 1),
                "worker_peak_rss_mb": {
                    "typical": round(max(p for p, _ in typical.worker_rss_kb) / 1024, 1),
                    "worst": round(max(p for p, _ in worst.worker_rss_kb) / 1024, 1),
                    "worst_2_workers": round(max(p for p, _ in worst_more.worker_rss_kb) / 1024, 1),
                },
                "phases": worst.run.timings,
                # Whether a chunk costs more as the tables grow: the 1-worker worst run's
                # chunks in order, their mean time per fifth of the run.
                "worst_chunk_ms_by_fifth": [
                    round(1000 * float(part.mean()), 1)
                    for part in np.array_split(np.array(worst.chunk_seconds), 5)
                    if len(part)
                ],
                # The worst run's time outside its chunks' phases: starting the run, forking
                # the worker, each chunk's bookkeeping and the run's summary.
                "worst_start_seconds": round(worst.start_seconds, 6),
                "worst_outside_phases_seconds": round(
                    worst.seconds - sum(worst.run.timings.values()), 6
                ),
                "runs": {
                    "typical": typical.run.pk,
                    "typical_2_workers": typical_more.run.pk,
                    "worst": worst.run.pk,
                    "worst_2_workers": worst_more.run.pk,
                    "naive": naive.get("naive_run"),
                },
            }
        )

    def _timed(
        self,
        firm: Firm,
        label: str,
        *,
        start: Callable[[], RebalanceRun | None],
        workers: int,
        show: bool,
    ) -> Timed:
        """One run, end to end: ``start`` it (``dispatch=False``), compute its chunks in
        workers, until the last chunk has written the run's summary."""
        started = time.perf_counter()
        with firm_context(firm):
            run = start()
        if run is None:
            raise CommandError(f"{label}: no run started (nothing to rebalance)")
        start_seconds = time.perf_counter() - started
        chunks = [np.asarray(c, dtype=np.int64) for c in run.chunks]  # type: ignore[attr-defined]
        del run.chunks  # type: ignore[attr-defined]
        draw = self._progress(show, label, run.portfolios_total)

        def poll() -> None:
            if draw is not None:
                with firm_context(firm), transaction.atomic():
                    done = RebalanceRun.objects.filter(pk=run.pk).values_list(
                        "portfolios_done", flat=True
                    )
                    draw(done.get())

        rss, chunk_seconds = compute_in_workers(
            firm=firm,
            run_id=run.pk,
            chunks=chunks,
            workers=workers,
            progress=poll if draw is not None else None,
        )
        seconds = time.perf_counter() - started
        poll()
        self._end_progress(show)
        with firm_context(firm), transaction.atomic():
            run.refresh_from_db()
        if run.chunks_done != run.chunks_total or run.status == RunStatus.COMPUTING:
            raise CommandError(
                f"{label}: run {run.pk} computed {run.chunks_done} of {run.chunks_total} chunks"
            )
        return Timed(
            run=run,
            seconds=seconds,
            start_seconds=start_seconds,
            worker_rss_kb=rss,
            chunk_seconds=chunk_seconds,
        )

    @staticmethod
    def _rows_written(firm: Firm, run_id: int) -> dict[str, int]:
        with firm_context(firm), transaction.atomic():
            return {
                "orders": Order.objects.filter(run_id=run_id).count(),
                "run_portfolios": RunPortfolio.objects.filter(run_id=run_id).count(),
                "order_lots": OrderLot.objects.filter(order__run_id=run_id).count(),
                "audit_events": AuditEvent.objects.filter(run_id=str(run_id)).count(),
            }

    @staticmethod
    def _floor_read(firm: Firm) -> tuple[float, int]:
        """Every holding row of the firm (portfolio, asset, quantity) through the application
        connection under row-level security, with the fastest plain way: COPY TO STDOUT."""
        rows = 0
        started = time.perf_counter()
        with firm_context(firm), transaction.atomic():
            connection.ensure_tenant_applied()  # type: ignore[attr-defined]
            with connection.connection.cursor() as cursor:
                sql = (
                    "COPY (SELECT portfolio_id, asset_id, quantity FROM portfolios_holding "
                    f"WHERE firm_id = {int(firm.pk)}) TO STDOUT"
                )
                with cursor.copy(sql) as copy:
                    for block in copy:
                        rows += bytes(block).count(b"\n")
        return time.perf_counter() - started, rows

    @staticmethod
    def _floor_write(
        firm: Firm, rows: int, portfolio_ids: list[int], asset_ids: list[int]
    ) -> float:
        """``rows`` constant order rows through staged COPY into ``portfolios_order`` (the
        widest table the run writes, with its indexes and row-level security), for dummy
        runs (as many as the unique (run, portfolio, asset) needs); rolled back."""
        per_run = len(portfolio_ids) * len(asset_ids)
        seconds = 0.0
        try:
            with firm_context(firm), transaction.atomic():
                runs = [
                    RebalanceRun.objects.create(
                        trigger=RunTrigger.MANUAL,
                        preview=True,
                        prices_as_of=bench_book.D2,
                        status=RunStatus.PREVIEW,
                        created_label="bench_rebalance floor",
                    ).pk
                    for _ in range(max(1, math.ceil(rows / per_run)))
                ]
                quantity, price, value = Decimal("1.5"), Decimal("100.25"), Decimal("150.38")

                def order_rows() -> Iterator[tuple[Any, ...]]:
                    left = rows
                    for run_id in runs:
                        for pid in portfolio_ids:
                            for aid in asset_ids:
                                if left == 0:
                                    return
                                left -= 1
                                yield (
                                    firm.pk,
                                    run_id,
                                    pid,
                                    aid,
                                    "buy",
                                    quantity,
                                    price,
                                    value,
                                    "0.05",
                                    "REBALANCE_TO_TARGET",
                                    "0.01000000",
                                    "0.01250000",
                                    OrderStatus.PROPOSED,
                                    0,
                                    b"\x00\x00\x00",
                                    "[]",
                                )

                started = time.perf_counter()
                staged_copy(
                    table="portfolios_order", columns=FLOOR_ORDER_COLUMNS, rows=order_rows()
                )
                seconds = time.perf_counter() - started
                raise _Rollback
        except _Rollback:
            pass
        return seconds

    @staticmethod
    def _naive(
        firm: Firm, portfolio_ids: list[int], size: int, worst: RebalanceRun
    ) -> dict[str, Any]:
        if size == 0:
            return {"naive_sample": 0, "naive_per_portfolio_ms": None}
        step = len(portfolio_ids) / size
        sample = [portfolio_ids[int(i * step)] for i in range(size)]
        with firm_context(firm):
            run = rebalance_run_start(
                trigger=RunTrigger.MANUAL,
                actor_label="bench_naive",
                preview=True,
                portfolio_ids=sample,
                as_of=bench_book.D2,
                force=True,
                dispatch=False,
            )
            started = time.perf_counter()
            orders = bench_naive.naive_rebalance(run=run, portfolio_ids=sample, force=True)
            seconds = time.perf_counter() - started
            with transaction.atomic():
                batch_orders = (
                    Order.objects.filter(run=worst, portfolio_id__in=sample)
                    .exclude(status=OrderStatus.SKIPPED)
                    .count()
                )
        return {
            "naive_sample": size,
            "naive_seconds": round(seconds, 6),
            "naive_per_portfolio_ms": round(1000 * seconds / size, 6),
            "naive_orders": orders,
            "worst_orders_of_naive_sample": batch_orders,
            "naive_rules": bench_naive.RULES_NOTE,
            "naive_run": run.pk,
        }


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _targets(figures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "set_at": {"portfolios": 100_000, "positions": 20},
        "measured_at": {"portfolios": figures["portfolios"], "positions": figures["positions"]},
    }
    for key, op, limit in TARGETS:
        value = figures.get(key)
        met = None
        if value is not None:
            met = {"<=": value <= limit, ">=": value >= limit, "<": value < limit}[op]
        out[key] = {"target": f"{op} {limit:g}", "value": value, "met": met}
    out["not_measured_here"] = [
        "time grows at most linearly from 100,000 to 1,000,000 portfolios (two runs)",
        "peak memory at 1,000,000 portfolios within 1.5x of the 100,000 run (two runs)",
    ]
    return out


def _summary(f: dict[str, Any]) -> str:
    met = [k for k, v in f["targets"].items() if isinstance(v, dict) and v.get("met") is False]
    return "\n".join(
        [
            f"{f['portfolios']} portfolios x {f['positions']} positions ({f['database']}), "
            f"set up in {f['setup_seconds']:.1f} s",
            f"typical day: {f['typical_seconds']:.2f} s with 1 worker "
            f"(scan {f['typical_scan_seconds']:.2f} s), "
            f"{f['typical_seconds_2_workers']:.2f} s with {f['workers']}; "
            f"{100 * f['typical_triggered_share']:.1f}% triggered, {f['typical_orders']} orders",
            f"worst case: {f['worst_seconds']:.2f} s with 1 worker "
            f"({f['per_portfolio_ms']:.3f} ms per portfolio, {f['worst_orders']} orders), "
            f"{f['worst_seconds_2_workers']:.2f} s with {f['workers']} "
            f"(x{f['workers_speedup']:.2f})",
            f"floor: {f['floor_seconds']:.2f} s (read {f['floor_read_seconds']:.2f} s, write "
            f"{f['rows_written']} rows {f['floor_write_seconds']:.2f} s), "
            f"ratio {f['ratio_to_floor']}",
            f"naive: {f['naive_per_portfolio_ms']} ms per portfolio, "
            f"speedup {f['speedup_vs_naive']}",
            f"peak worker RSS {f['peak_rss_mb']} MB (parent {f['parent_peak_rss_mb']} MB)",
            "targets missed: " + (", ".join(met) if met else "none"),
        ]
    )
