"""``bench_rebalance --in-place`` on a tiny book: every figure present and consistent with
what the runs wrote (forked workers, so the rows are committed: transactional test)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from accounts.models import Firm
from accounts.tenancy.context import firm_context
from compliance.models import AuditEvent
from portfolios.models import Order, OrderLot, OrderStatus, RebalanceRun, RunPortfolio

N, K = 60, 4
REQUIRED = {
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
    "parent_peak_rss_mb",
    "typical_triggered_share",
    "typical_orders",
    "worst_seconds_2_workers",
    "workers_speedup",
    "floor_read_seconds",
    "floor_write_seconds",
    "rows_written",
    "phases",
    "setup_seconds",
    "chunk_size",
    "targets",
}


def _bench(*args: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "bench_rebalance", "--in-place", "--no-progress", "--json", *args, stdout=out, stderr=err
    )
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_tiny_book_in_place() -> None:
    f = _bench(
        "--portfolios", str(N), "--positions", str(K), "--chunk-size", "20", "--naive-sample", "10"
    )
    assert set(f) >= REQUIRED
    assert (f["portfolios"], f["positions"], f["chunk_size"], f["workers"]) == (N, K, 20, 2)

    # About a tenth of the book drifts out of its bands on the typical day; all of it trades
    # in the worst case, the same orders whatever the number of workers.
    assert 0 < f["typical_triggered_share"] < 1
    assert 0 < f["typical_orders"] < f["worst_orders"]
    assert 0 < f["typical_scan_seconds"] < f["typical_seconds"]
    assert f["worst_orders"] >= N
    assert f["worst_orders_2_workers"] == f["worst_orders"]

    # Rows written: the worst run's orders (skipped ones too), run rows, lot picks, and one
    # audit event per trading portfolio plus the run's start and end.
    detail = f["rows_written_detail"]
    assert f["rows_written"] == sum(detail.values())
    assert detail["orders"] >= f["worst_orders"]
    assert detail["run_portfolios"] == N
    assert detail["order_lots"] > 0
    assert detail["audit_events"] == N + 2

    assert f["floor_read_rows"] == N * K
    assert f["floor_read_seconds"] > 0
    assert f["floor_write_seconds"] > 0
    assert f["floor_seconds"] == pytest.approx(
        f["floor_read_seconds"] + f["floor_write_seconds"], abs=1e-5
    )
    assert f["ratio_to_floor"] == pytest.approx(f["worst_seconds"] / f["floor_seconds"], rel=1e-3)
    assert f["per_portfolio_ms"] == pytest.approx(1000 * f["worst_seconds"] / N, rel=1e-3)
    assert f["speedup_vs_naive"] == pytest.approx(
        f["naive_per_portfolio_ms"] / f["per_portfolio_ms"], rel=1e-3
    )
    assert f["workers_speedup"] == pytest.approx(
        f["worst_seconds"] / f["worst_seconds_2_workers"], rel=1e-3
    )
    assert f["naive_sample"] == 10
    assert f["naive_orders"] > 0
    assert f["peak_rss_mb"] > 0
    assert f["parent_peak_rss_mb"] > 0
    # What the workers were handed at the fork, counted in their resident set too.
    assert 0 < f["worker_rss_at_fork_mb"] <= f["peak_rss_mb"]
    assert {"load", "engine", "rules", "write"} <= set(f["phases"])
    assert 0 < f["worst_start_seconds"] < f["worst_seconds"]
    assert f["worst_outside_phases_seconds"] == pytest.approx(
        f["worst_seconds"] - sum(f["phases"].values()), abs=1e-5
    )
    # Three chunks of 20, one per "fifth": each chunk's time holds its phases and is
    # part of the run's.
    chunk_ms = f["worst_chunk_ms_by_fifth"]
    assert len(chunk_ms) == 3
    assert all(ms > 0 for ms in chunk_ms)
    assert sum(f["phases"].values()) <= sum(chunk_ms) / 1000 + 1e-3
    assert sum(chunk_ms) / 1000 < f["worst_seconds"]
    for key in ("ratio_to_floor", "speedup_vs_naive", "per_portfolio_ms", "typical_seconds"):
        assert f["targets"][key]["value"] == f[key]
        assert isinstance(f["targets"][key]["met"], bool)

    # What the runs wrote, read back.
    firm = Firm.objects.get(slug=f["firm"])
    runs = f["runs"]
    with firm_context(firm), transaction.atomic():
        two = RunPortfolio.objects.filter(run_id=runs["worst_2_workers"])
        assert two.count() == N
        assert two.values("portfolio_id").distinct().count() == N
        worst = RebalanceRun.objects.get(pk=runs["worst"])
        assert worst.portfolios_done == N
        assert worst.chunks_done == worst.chunks_total == 3
        assert worst.orders_count == f["worst_orders"]
        orders = Order.objects.filter(run=worst)
        assert orders.count() == detail["orders"]
        assert orders.exclude(status=OrderStatus.SKIPPED).count() == f["worst_orders"]
        assert orders.values("portfolio_id").distinct().count() == N
        assert OrderLot.objects.filter(order__run=worst).count() == detail["order_lots"]
        assert AuditEvent.objects.filter(run_id=str(worst.pk)).count() == N + 2
        typical = RebalanceRun.objects.get(pk=runs["typical"])
        # The typical day is the daily drift scan: a run of only the portfolios it found
        # outside their bands, every one of which the run then triggers.
        assert typical.trigger == "drift_scan"
        assert not typical.preview
        assert typical.portfolios_triggered == round(f["typical_triggered_share"] * N)
        assert typical.portfolios_total == typical.portfolios_triggered
        assert RunPortfolio.objects.filter(run=typical).count() == typical.portfolios_total
        typical_more = RebalanceRun.objects.get(pk=runs["typical_2_workers"])
        assert typical_more.portfolios_total == typical.portfolios_total
        assert typical_more.orders_count == f["typical_orders_2_workers"] == f["typical_orders"]
        # The floor's writes were rolled back: only the five runs of the bench remain.
        assert RebalanceRun.objects.count() == 5


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--portfolios", "0"], "--portfolios"),
        (["--positions", "1"], "--positions"),
        (["--positions", "101"], "--positions"),
        (["--chunk-size", "0"], "--chunk-size"),
        (["--workers", "1"], "--workers"),
        (["--naive-sample", "-1"], "--naive-sample"),
    ],
)
def test_bad_options_name_the_option(args: list[str], option: str) -> None:
    with pytest.raises(CommandError, match=option):
        _bench(*args)
