"""Batch rebalance runs end to end on the database: start, chunks, approval, execution."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from accounts.tenancy.context import firm_context
from compliance.models import AuditEvent
from portfolios import services_execution, services_rebalance
from portfolios.models import (
    CashFlow,
    CashFlowKind,
    Holding,
    LedgerEntry,
    Order,
    OrderStatus,
    Portfolio,
    PortfolioType,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
    RunStatus,
    TaxLot,
)
from portfolios.services_execution import rebalance_run_reject
from portfolios.services_rebalance import RebalanceError, rebalance_chunk_compute

from .rebalance_factories import AS_OF, asset_make, portfolio_make, strategy_make

pytestmark = pytest.mark.django_db


_capture: Any = None


@pytest.fixture(autouse=True)
def _committed(django_capture_on_commit_callbacks: Any) -> Iterator[None]:
    """Run after-commit work (the Celery fan-out, eager here) when each service returns,
    as it would after the request's commit."""
    global _capture
    _capture = django_capture_on_commit_callbacks
    yield
    _capture = None


def rebalance_run_start(**kwargs: Any) -> RebalanceRun:
    with _capture(execute=True):
        return services_rebalance.rebalance_run_start(**kwargs)


def rebalance_run_approve(**kwargs: Any) -> int:
    with _capture(execute=True):
        return services_execution.rebalance_run_approve(**kwargs)


def run_portfolio_decide(**kwargs: Any) -> RunPortfolio:
    with _capture(execute=True):
        return services_execution.run_portfolio_decide(**kwargs)


@pytest.fixture
def book(firm_a):
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    strategy = strategy_make(firm_a.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    return firm_a, strategy


def _holdings(portfolio: Portfolio) -> dict[str, Decimal]:
    return {
        h.asset.symbol: h.quantity
        for h in Holding.objects.filter(portfolio=portfolio).select_related("asset")
    }


def test_preview_writes_only_the_run_and_its_proposals(book):
    world, strategy = book
    with firm_context(world.firm):
        p = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        before = _holdings(p)
        run = rebalance_run_start(
            trigger="manual", actor=world.users["advisor"], preview=True, as_of=AS_OF
        )
        run.refresh_from_db()
        assert run.status == RunStatus.PREVIEW
        assert run.portfolios_done == 1
        assert run.chunks_done == 1
        rp = RunPortfolio.objects.get(run=run)
        assert rp.trigger == "BAND"
        # 1,000 of AAA against 1,800 wanted (60% of 3,000 less 1% cash): a buy of AAA.
        orders = {o.asset.symbol: o for o in Order.objects.filter(run=run).select_related("asset")}
        assert orders["AAA"].side == "buy"
        assert orders["BBB"].side == "sell"
        assert orders["AAA"].reason == "BAND_REBALANCE"
        assert orders["AAA"].quantity == orders["AAA"].quantity.to_integral_value()
        assert _holdings(p) == before
        p.refresh_from_db()
        assert p.cash == Decimal("0")
        with pytest.raises(RebalanceError):
            rebalance_run_approve(run=run, actor=world.users["advisor"])


def test_approved_run_executes_and_books_everything(book):
    world, strategy = book
    with firm_context(world.firm):
        p = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        run = rebalance_run_start(trigger="manual", actor=world.users["advisor"], as_of=AS_OF)
        run.refresh_from_db()
        assert run.status == RunStatus.AWAITING_APPROVAL
        assert rebalance_run_approve(run=run, actor=world.users["advisor"]) == 1
        run.refresh_from_db()
        assert run.status == RunStatus.DONE
        held = _holdings(p)
        p.refresh_from_db()
        value = held["AAA"] * 100 + held["BBB"] * 50 + p.cash
        assert p.cash >= 0
        # Within one share of each target after costs and whole-share rounding.
        assert abs(held["AAA"] * 100 / value - Decimal("0.594")) < Decimal("0.04")
        orders = Order.objects.filter(run=run)
        assert {o.status for o in orders} == {OrderStatus.FILLED}
        fills = LedgerEntry.objects.filter(run=run, kind__in=["buy", "sell"])
        assert fills.count() == orders.count()
        assert RunPortfolio.objects.get(run=run).status == RunPortfolioStatus.EXECUTED
        assert p.last_rebalanced_on is not None
        actions = set(
            AuditEvent.objects.filter(run_id=str(run.pk)).values_list("action", flat=True)
        )
        assert {
            "rebalance.run_started",
            "rebalance.run_computed",
            "rebalance.portfolio_proposed",
            "rebalance.run_approved",
            "rebalance.portfolio_executed",
            "rebalance.run_executed",
        } <= actions


def test_a_retried_chunk_is_a_no_op(book):
    world, strategy = book
    with firm_context(world.firm):
        p = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        run = rebalance_run_start(trigger="manual", preview=True, as_of=AS_OF)
        orders = Order.objects.filter(run=run).count()
        assert rebalance_chunk_compute(run_id=run.pk, portfolio_ids=[p.pk]) == {"skipped": True}
        assert Order.objects.filter(run=run).count() == orders
        run.refresh_from_db()
        assert run.chunks_done == 1


def test_chunks_split_the_book_and_counts_add_up(book):
    world, strategy = book
    with firm_context(world.firm):
        for _ in range(5):
            portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        portfolio_make(
            world.firm, strategy=strategy, holdings={"AAA": "18", "BBB": "24"}, cash="30"
        )
        run = rebalance_run_start(trigger="manual", preview=True, as_of=AS_OF, chunk_size=2)
        run.refresh_from_db()
        assert run.chunks_total == 3
        assert run.chunks_done == 3
        assert run.portfolios_total == run.portfolios_done == 6
        assert run.portfolios_triggered == 5  # the last one is inside its bands
        assert RunPortfolio.objects.filter(run=run, status="no_trade").count() == 1
        assert run.orders_count == Order.objects.filter(run=run).exclude(status="skipped").count()


def test_a_deposit_is_invested_with_buys_only_and_booked(book):
    world, strategy = book
    with firm_context(world.firm):
        p = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "18", "BBB": "24"})
        CashFlow.objects.create(
            firm=world.firm, portfolio=p, kind=CashFlowKind.DEPOSIT, amount=Decimal("1000.00")
        )
        run = rebalance_run_start(trigger="cash_flow", portfolio_ids=[p.pk], as_of=AS_OF)
        orders = list(Order.objects.filter(run=run).exclude(status="skipped"))
        assert orders
        assert {o.side for o in orders} == {"buy"}
        assert {o.reason for o in orders} == {"DEPOSIT_INVESTED"}
        rebalance_run_approve(run=run, actor=world.users["advisor"])
        p.refresh_from_db()
        spent = sum((o.value for o in Order.objects.filter(run=run, status="filled")), Decimal(0))
        assert p.cash > 0
        assert p.cash < Decimal("1000.00") - spent + Decimal("1")
        flow = CashFlow.objects.get(portfolio=p)
        assert flow.status == "processed"
        assert flow.run_id == run.pk
        assert LedgerEntry.objects.filter(portfolio=p, kind="deposit").get().amount == Decimal(
            "1000.00"
        )


def test_non_discretionary_portfolios_wait_for_their_own_approval(book):
    world, strategy = book
    with firm_context(world.firm):
        p = portfolio_make(
            world.firm,
            strategy=strategy,
            holdings={"AAA": "10", "BBB": "40"},
            discretionary=False,
        )
        run = rebalance_run_start(trigger="manual", as_of=AS_OF)
        rp = RunPortfolio.objects.get(run=run)
        assert rp.status == RunPortfolioStatus.AWAITING_CLIENT
        assert rebalance_run_approve(run=run, actor=world.users["advisor"]) == 0
        assert _holdings(p) == {"AAA": Decimal("10"), "BBB": Decimal("40")}
        run_portfolio_decide(run_portfolio=rp, actor=world.users["advisor"], approve=True)
        rp.refresh_from_db()
        assert rp.status == RunPortfolioStatus.EXECUTED
        assert _holdings(p) != {"AAA": Decimal("10"), "BBB": Decimal("40")}


def test_a_proposal_whose_portfolio_changed_is_not_traded(book):
    world, strategy = book
    with firm_context(world.firm):
        p = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        run = rebalance_run_start(trigger="manual", as_of=AS_OF)
        Holding.objects.filter(portfolio=p, asset__symbol="AAA").update(quantity=Decimal("11"))
        rebalance_run_approve(run=run, actor=world.users["advisor"])
        assert RunPortfolio.objects.get(run=run).status == RunPortfolioStatus.REJECTED
        assert _holdings(p)["AAA"] == Decimal("11")
        assert AuditEvent.objects.filter(action="rebalance.portfolio_stale").exists()


def test_rejecting_a_run_needs_a_reason_and_trades_nothing(book):
    world, strategy = book
    with firm_context(world.firm):
        portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        run = rebalance_run_start(trigger="manual", as_of=AS_OF)
        with pytest.raises(RebalanceError) as err:
            rebalance_run_reject(run=run, actor=world.users["advisor"], note=" ")
        assert err.value.field == "note"
        rebalance_run_reject(run=run, actor=world.users["advisor"], note="markets closed")
        assert set(Order.objects.filter(run=run).values_list("status", flat=True)) <= {
            "rejected",
            "skipped",
        }
        assert not LedgerEntry.objects.filter(run=run).exists()


def test_taxable_sells_consume_the_highest_cost_lots(book):
    world, strategy = book
    with firm_context(world.firm):
        p = portfolio_make(
            world.firm,
            strategy=strategy,
            holdings={"AAA": "30", "BBB": "10"},
            account_type=PortfolioType.TAXABLE,
            lots={
                "AAA": [
                    (AS_OF.replace(year=2020), "10", "40"),
                    (AS_OF.replace(year=2021), "10", "120"),
                    (AS_OF.replace(year=2022), "10", "90"),
                ],
                "BBB": [(AS_OF.replace(year=2020), "10", "45")],
            },
        )
        run = rebalance_run_start(trigger="manual", as_of=AS_OF)
        sell = Order.objects.get(run=run, asset__symbol="AAA")
        assert sell.side == "sell"
        rebalance_run_approve(run=run, actor=world.users["advisor"])
        remaining = {
            lot.unit_cost: lot.quantity
            for lot in TaxLot.objects.filter(portfolio=p, asset__symbol="AAA")
        }
        # The 120 lot goes first; the 40 lot is untouched.
        assert remaining[Decimal("40")] == Decimal("10")
        assert remaining[Decimal("120")] < Decimal("10")
        gain = LedgerEntry.objects.get(run=run, kind="sell").realised_gain
        assert gain is not None
        assert gain < 0
        buy_lots = TaxLot.objects.filter(portfolio=p, asset__symbol="BBB").count()
        assert buy_lots == 2  # the buy opened a new lot


def test_a_run_sees_only_its_own_firm(book, firm_b):
    world, strategy = book
    asset_make("AAA", "100")
    other = strategy_make(firm_b.firm, "Theirs", {"AAA": "1"})
    with firm_context(firm_b.firm):
        theirs = portfolio_make(firm_b.firm, strategy=other, holdings={"AAA": "1"}, cash="500")
    with firm_context(world.firm):
        portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        run = rebalance_run_start(trigger="manual", preview=True, as_of=AS_OF)
        assert run.portfolios_total == 1
        assert not RunPortfolio.objects.filter(portfolio_id=theirs.pk).exists()
        with pytest.raises(RebalanceError):
            rebalance_run_start(trigger="manual", portfolio_ids=[theirs.pk], as_of=AS_OF)


def test_a_failing_chunk_fails_the_run_and_writes_no_orders(book, monkeypatch):
    world, strategy = book

    def boom(*args, **kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(services_rebalance, "_run_engine", boom)
    with firm_context(world.firm):
        portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        run = rebalance_run_start(trigger="manual", as_of=AS_OF)
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED
        assert "engine exploded" in run.error
        assert not Order.objects.filter(run=run).exists()
        assert not RunPortfolio.objects.filter(run=run).exists()
        assert RebalanceRun.objects.get(pk=run.pk).chunks_done == 0


def test_portfolios_that_cannot_be_rebalanced_are_skipped_with_reasons(book):
    world, strategy = book
    asset_make("ZZZ", "10")
    with firm_context(world.firm):
        from portfolios.models import Asset, Price, Strategy

        Price.objects.filter(asset__symbol="ZZZ").delete()
        good = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        unpriced = portfolio_make(
            world.firm, strategy=strategy, holdings={"AAA": "10", "ZZZ": "5"}, cash="10"
        )
        bare = Strategy.objects.create(
            firm=world.firm, name="No version", method="fixed", universe=["AAA"]
        )
        versionless = portfolio_make(world.firm, strategy=bare, holdings={"AAA": "1"})
        poor = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "1"}, cash="5")
        CashFlow.objects.create(
            firm=world.firm, portfolio=poor, kind=CashFlowKind.WITHDRAWAL, amount=Decimal("500")
        )
        # Two portfolios whose target holds the unpriced asset, while they do not.
        targets_zzz = strategy_make(world.firm, "With ZZZ", {"AAA": "0.5", "ZZZ": "0.5"})
        aiming = [
            portfolio_make(world.firm, strategy=targets_zzz, holdings={"AAA": "3"}, cash="9")
            for _ in range(2)
        ]
        assert Asset.objects.filter(symbol="ZZZ").exists()
        run = rebalance_run_start(trigger="manual", preview=True, as_of=AS_OF)
        run.refresh_from_db()
        assert run.status == RunStatus.PREVIEW
        assert run.portfolios_skipped == 5
        reasons = dict(
            RunPortfolio.objects.filter(run=run, status="skipped").values_list(
                "portfolio_id", "skip_reason"
            )
        )
        assert reasons[unpriced.pk] == "no usable price for ZZZ (held)"
        assert reasons[versionless.pk] == "its strategy has no model version"
        assert reasons[poor.pk] == "withdrawal of 500.00 exceeds the portfolio's value of 105.00"
        for portfolio in aiming:
            assert reasons[portfolio.pk] == "no usable price for ZZZ (target)"
        assert RunPortfolio.objects.get(run=run, portfolio=good).status == "proposed"
        assert (
            AuditEvent.objects.filter(
                action="rebalance.portfolio_skipped", run_id=str(run.pk)
            ).count()
            == 5
        )


def test_a_client_with_an_exclusion_rebalances_to_the_customised_target(book):
    from portfolios.models import CustomisedVersion
    from portfolios.services_restriction import client_restriction_set

    world, strategy = book
    with firm_context(world.firm):
        p = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        twin = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        for portfolio in (p, twin):
            client_restriction_set(
                firm=world.firm,
                actor=world.users["advisor"],
                client=portfolio.client,
                data={"excluded_assets": ["BBB"]},
            )
        plain = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        run = rebalance_run_start(trigger="manual", preview=True, as_of=AS_OF)
        rows = {rp.portfolio_id: rp for rp in RunPortfolio.objects.filter(run=run)}
        # The two restricted clients share one customised version; the third follows the strategy.
        assert rows[p.pk].target_signature
        assert rows[p.pk].target_signature == rows[twin.pk].target_signature
        assert rows[plain.pk].target_signature == ""
        assert CustomisedVersion.objects.count() == 1
        orders = {o.asset.symbol: o for o in Order.objects.filter(run=run, portfolio=p)}
        assert orders["BBB"].side == "sell"
        assert orders["BBB"].quantity == Decimal("40")  # all of it: its target is zero
        assert orders["AAA"].side == "buy"
