"""The reference checks of orders and lot picks (migration 0009).

Orders and order lots have no per-row foreign keys: statement-level triggers refuse
an INSERT naming a run, portfolio, asset, order or lot that is missing or another
firm's, an UPDATE of a reference, and a DELETE of a parent still referenced. Each
refusal is SQLSTATE 23503 (foreign_key_violation) and writes nothing. The ORM's
CASCADE (run -> orders -> lot picks) and PROTECT still apply before the triggers.
Assets are shared by every firm, so no firm's check could see the others' orders:
they are never deleted at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg.errors
import pytest
from django.db import DatabaseError, IntegrityError, ProgrammingError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.tenancy.context import firm_context
from portfolios import services_rebalance
from portfolios.bulk import staged_copy
from portfolios.models import (
    Asset,
    Order,
    OrderLot,
    OrderStatus,
    Portfolio,
    PortfolioType,
    Price,
    RebalanceRun,
    RunPortfolio,
    TaxLot,
)
from tests.conftest import FirmWorld

from .rebalance_factories import AS_OF, asset_make, portfolio_make, strategy_make

pytestmark = pytest.mark.django_db

MISSING = 2**40  # an id no row has
FK_VIOLATION = "23503"
# What a refusal raises: Django's IntegrityError through the ORM; through staged_copy,
# whose raw psycopg cursor bypasses Django's error wrapping, psycopg's own
# ForeignKeyViolation (see test_staged_copy_refusals_are_django_integrity_errors).
REFUSED = (IntegrityError, psycopg.errors.ForeignKeyViolation)

LOTS = {
    "AAA": [
        (AS_OF.replace(year=2020), "10", "40"),
        (AS_OF.replace(year=2021), "10", "120"),
        (AS_OF.replace(year=2022), "10", "90"),
    ],
    "BBB": [(AS_OF.replace(year=2020), "10", "45")],
}


@dataclass
class Side:
    """One firm's run with orders and lot picks."""

    world: FirmWorld
    portfolio: Portfolio
    run: RebalanceRun
    order: Order  # a sell with lot picks
    pick: OrderLot
    unpicked_lot: TaxLot  # a lot of the firm that ``order`` does not pick


@dataclass
class World:
    a: Side
    b: Side
    spare: Asset  # priced, in no order


def side_make(world: FirmWorld, capture: Any) -> Side:
    firm = world.firm
    strategy = strategy_make(firm, f"Sixty forty {firm.slug}", {"AAA": "0.6", "BBB": "0.4"})
    portfolio = portfolio_make(
        firm,
        strategy=strategy,
        holdings={"AAA": "30", "BBB": "10"},
        account_type=PortfolioType.TAXABLE,
        lots=LOTS,
    )
    with firm_context(firm):
        with capture(execute=True):
            run = services_rebalance.rebalance_run_start(trigger="manual", as_of=AS_OF)
        picks = OrderLot.objects.filter(order__run=run).select_related("order").order_by("pk")
        pick = picks[0]
        picked = {p.lot_id for p in picks}
        unpicked = TaxLot.objects.exclude(pk__in=picked).filter(portfolio=portfolio).first()
        assert unpicked is not None
    return Side(world, portfolio, run, pick.order, pick, unpicked)


@pytest.fixture
def w(firm_a, firm_b, django_capture_on_commit_callbacks) -> World:
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    spare = asset_make("CCC", "10")
    a = side_make(firm_a, django_capture_on_commit_callbacks)
    b = side_make(firm_b, django_capture_on_commit_callbacks)
    return World(a, b, spare)


@pytest.fixture
def in_a(w: World) -> Iterator[World]:
    """Firm a's context for the whole test."""
    with firm_context(w.a.world.firm):
        yield w


def fk_refusal(exc: BaseException) -> str:
    """The SQLSTATE 23503 message of a refusal, from the Django error or psycopg's own."""
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    assert isinstance(cause, psycopg.errors.ForeignKeyViolation), repr(exc)
    assert cause.sqlstate == FK_VIOLATION
    return str(cause)


def counts() -> tuple[int, int]:
    return Order.objects.count(), OrderLot.objects.count()


# --- inserting orders ------------------------------------------------------------------


def order_fields(**refs: int) -> dict[str, Any]:
    return {
        "side": "buy",
        "quantity": Decimal("1"),
        "price": Decimal("10"),
        "value": Decimal("10.00"),
        "estimated_cost": Decimal("0.00"),
        "reason": "TEST",
        "drift": Decimal("0"),
        "status": OrderStatus.PROPOSED,
        **refs,
    }


def good_order_refs(w: World) -> dict[str, int]:
    """A new order's references that are all fine: firm a's run and portfolio, the spare
    asset (no order of the run has it yet)."""
    return {"run_id": w.a.run.pk, "portfolio_id": w.a.portfolio.pk, "asset_id": w.spare.pk}


BAD_ORDER_REFS: dict[str, Callable[[World], dict[str, int]]] = {
    "missing portfolio": lambda w: {"portfolio_id": MISSING},
    "missing run": lambda w: {"run_id": MISSING},
    "missing asset": lambda w: {"asset_id": MISSING},
    "other firm's portfolio": lambda w: {"portfolio_id": w.b.portfolio.pk},
    "other firm's run": lambda w: {"run_id": w.b.run.pk},
}

ORDER_COPY_COLUMNS = (
    "firm_id",
    "run_id",
    "portfolio_id",
    "asset_id",
    "side",
    "quantity",
    "price",
    "value",
    "estimated_cost",
    "reason",
    "drift",
    "status",
    "compliance_outcome",
    "rule_outcomes",
    "failures",
)


def orders_create(rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        Order.objects.create(**row)


def orders_bulk_create(rows: Sequence[dict[str, Any]]) -> None:
    Order.objects.bulk_create([Order(**row) for row in rows])


def orders_staged_copy(rows: Sequence[dict[str, Any]]) -> None:
    defaults = {"compliance_outcome": 0, "rule_outcomes": b"", "failures": "[]"}
    staged_copy(
        table="portfolios_order",
        columns=ORDER_COPY_COLUMNS,
        rows=[[{**defaults, **row}[c] for c in ORDER_COPY_COLUMNS] for row in rows],
    )


ORDER_WRITERS: dict[str, Callable[[Sequence[dict[str, Any]]], None]] = {
    "create": orders_create,
    "bulk_create": orders_bulk_create,
    "staged_copy": orders_staged_copy,
}


def order_rows(w: World, bad: str | None) -> list[dict[str, Any]]:
    """One good order, and after it the bad one (the whole statement must go)."""
    good = order_fields(firm_id=w.a.world.firm.pk, **good_order_refs(w))
    if bad is None:
        return [good]
    # The bad one is the good one with one reference broken (so never a duplicate).
    other = {"asset_id": w.spare.pk, "portfolio_id": w.a.portfolio.pk, "run_id": w.a.run.pk}
    bad_refs = other | BAD_ORDER_REFS[bad](w)
    return [good, order_fields(firm_id=w.a.world.firm.pk, **bad_refs)]


@pytest.mark.parametrize("writer", list(ORDER_WRITERS))
def test_an_order_with_good_references_is_written(in_a, writer):
    before = counts()
    with transaction.atomic():
        ORDER_WRITERS[writer](order_rows(in_a, None))
    assert counts() == (before[0] + 1, before[1])
    assert Order.objects.filter(**good_order_refs(in_a)).exists()


@pytest.mark.parametrize("bad", list(BAD_ORDER_REFS))
@pytest.mark.parametrize("writer", list(ORDER_WRITERS))
def test_an_order_with_a_bad_reference_is_refused_and_nothing_is_written(in_a, writer, bad):
    rows = order_rows(in_a, bad)
    if writer == "create":
        rows = rows[1:]  # one statement per row: only the bad one
    before = counts()
    with pytest.raises(REFUSED) as refused, transaction.atomic():
        ORDER_WRITERS[writer](rows)
    assert "does not exist in firm" in fk_refusal(refused.value)
    assert counts() == before
    assert not Order.objects.filter(asset_id=in_a.spare.pk).exists()


def test_staged_copy_refusals_are_django_integrity_errors(in_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        orders_staged_copy(order_rows(in_a, "missing portfolio"))


# --- inserting lot picks -----------------------------------------------------------------


def pick_fields(**refs: int) -> dict[str, Any]:
    return {
        "quantity": Decimal("1"),
        "realised_gain": Decimal("-5.00"),
        "short_term": False,
        **refs,
    }


BAD_PICK_REFS: dict[str, Callable[[World], dict[str, int]]] = {
    "missing lot": lambda w: {"lot_id": MISSING},
    "missing order": lambda w: {"order_id": MISSING},
    "other firm's lot": lambda w: {"lot_id": w.b.pick.lot_id},
    "other firm's order": lambda w: {"order_id": w.b.order.pk},
}

PICK_COPY_COLUMNS = ("firm_id", "order_id", "lot_id", "quantity", "realised_gain", "short_term")


def picks_create(rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        OrderLot.objects.create(**row)


def picks_bulk_create(rows: Sequence[dict[str, Any]]) -> None:
    OrderLot.objects.bulk_create([OrderLot(**row) for row in rows])


def picks_staged_copy(rows: Sequence[dict[str, Any]]) -> None:
    staged_copy(
        table="portfolios_orderlot",
        columns=PICK_COPY_COLUMNS,
        rows=[[row[c] for c in PICK_COPY_COLUMNS] for row in rows],
    )


PICK_WRITERS: dict[str, Callable[[Sequence[dict[str, Any]]], None]] = {
    "create": picks_create,
    "bulk_create": picks_bulk_create,
    "staged_copy": picks_staged_copy,
}


def pick_rows(w: World, bad: str | None) -> list[dict[str, Any]]:
    firm_id = w.a.world.firm.pk
    good = pick_fields(firm_id=firm_id, order_id=w.a.order.pk, lot_id=w.a.unpicked_lot.pk)
    if bad is None:
        return [good]
    # Against the order's own pick, so the bad row never collides with the good one.
    refs = {"order_id": w.a.order.pk, "lot_id": w.a.pick.lot_id} | BAD_PICK_REFS[bad](w)
    return [good, pick_fields(firm_id=firm_id, **refs)]


@pytest.mark.parametrize("writer", list(PICK_WRITERS))
def test_a_lot_pick_with_good_references_is_written(in_a, writer):
    before = counts()
    with transaction.atomic():
        PICK_WRITERS[writer](pick_rows(in_a, None))
    assert counts() == (before[0], before[1] + 1)


@pytest.mark.parametrize("bad", list(BAD_PICK_REFS))
@pytest.mark.parametrize("writer", list(PICK_WRITERS))
def test_a_lot_pick_with_a_bad_reference_is_refused_and_nothing_is_written(in_a, writer, bad):
    rows = pick_rows(in_a, bad)
    if writer == "create":
        rows = rows[1:]
    before = counts()
    with pytest.raises(REFUSED) as refused, transaction.atomic():
        PICK_WRITERS[writer](rows)
    assert "does not exist in firm" in fk_refusal(refused.value)
    assert counts() == before
    assert not OrderLot.objects.filter(lot=in_a.a.unpicked_lot).exists()


# --- updating --------------------------------------------------------------------------


def another_run(w: World) -> RebalanceRun:
    return RebalanceRun.objects.create(
        firm=w.a.world.firm, trigger="manual", prices_as_of=AS_OF, created_label="test"
    )


def another_portfolio(w: World) -> Portfolio:
    strategy = w.a.portfolio.strategy
    assert strategy is not None
    return portfolio_make(w.a.world.firm, strategy=strategy, holdings={})


ORDER_REF_CHANGES: dict[str, Callable[[World], dict[str, int]]] = {
    "run to another of the firm's": lambda w: {"run_id": another_run(w).pk},
    "run to a missing one": lambda w: {"run_id": MISSING},
    "portfolio to another of the firm's": lambda w: {"portfolio_id": another_portfolio(w).pk},
    "portfolio to the other firm's": lambda w: {"portfolio_id": w.b.portfolio.pk},
    "asset to another": lambda w: {"asset_id": w.spare.pk},
    "asset to a missing one": lambda w: {"asset_id": MISSING},
}


@pytest.mark.parametrize("change", list(ORDER_REF_CHANGES))
def test_an_orders_references_cannot_change(in_a, change):
    order = in_a.a.order
    values = ORDER_REF_CHANGES[change](in_a)
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        Order.objects.filter(pk=order.pk).update(**values)
    assert "cannot change" in fk_refusal(refused.value)
    stored = Order.objects.get(pk=order.pk)
    assert (stored.run_id, stored.portfolio_id, stored.asset_id) == (
        order.run_id,
        order.portfolio_id,
        order.asset_id,
    )


def test_an_orders_status_and_fill_can_change(in_a):
    order = in_a.a.order
    now = timezone.now()
    with transaction.atomic():
        assert Order.objects.filter(pk=order.pk).update(status=OrderStatus.APPROVED) == 1
        assert (
            Order.objects.filter(pk=order.pk).update(
                status=OrderStatus.FILLED,
                fill_quantity=Decimal("2.5"),
                fill_price=Decimal("99.5"),
                fill_cost=Decimal("1.25"),
                filled_at=now,
            )
            == 1
        )
    stored = Order.objects.get(pk=order.pk)
    assert stored.status == OrderStatus.FILLED
    assert (stored.fill_quantity, stored.fill_price, stored.fill_cost, stored.filled_at) == (
        Decimal("2.5"),
        Decimal("99.5"),
        Decimal("1.25"),
        now,
    )
    # A full save sets the references too, to the values they have: allowed.
    stored.status = OrderStatus.REJECTED
    with transaction.atomic():
        stored.save()
        # So is naming a reference with the value it already has.
        assert Order.objects.filter(pk=order.pk).update(run_id=order.run_id) == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.REJECTED


def another_order(w: World) -> Order:
    order = Order.objects.filter(run=w.a.run).exclude(pk=w.a.order.pk).first()
    assert order is not None
    return order


PICK_REF_CHANGES: dict[str, Callable[[World], dict[str, int]]] = {
    "lot to another of the firm's": lambda w: {"lot_id": w.a.unpicked_lot.pk},
    "lot to the other firm's": lambda w: {"lot_id": w.b.pick.lot_id},
    "order to another of the firm's": lambda w: {"order_id": another_order(w).pk},
    "order to a missing one": lambda w: {"order_id": MISSING},
}


@pytest.mark.parametrize("change", list(PICK_REF_CHANGES))
def test_a_lot_picks_references_cannot_change(in_a, change):
    pick = in_a.a.pick
    values = PICK_REF_CHANGES[change](in_a)
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        OrderLot.objects.filter(pk=pick.pk).update(**values)
    assert "cannot change" in fk_refusal(refused.value)
    stored = OrderLot.objects.get(pk=pick.pk)
    assert (stored.order_id, stored.lot_id) == (pick.order_id, pick.lot_id)


def test_a_lot_picks_quantity_can_change(in_a):
    pick = in_a.a.pick
    with transaction.atomic():
        updated = OrderLot.objects.filter(pk=pick.pk).update(
            quantity=Decimal("3"), realised_gain=Decimal("-1.00"), short_term=True
        )
    assert updated == 1
    stored = OrderLot.objects.get(pk=pick.pk)
    assert (stored.quantity, stored.realised_gain, stored.short_term) == (
        Decimal("3"),
        Decimal("-1.00"),
        True,
    )


# --- deleting parents with raw SQL -------------------------------------------------------


def raw_delete(table: str, pk: int) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])
        return int(cursor.rowcount)


def row_exists(table: str, pk: int) -> bool:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE id = %s", [pk])
        row = cursor.fetchone()
    return bool(row and row[0])


REFERENCED_PARENTS = {
    "portfolio": ("portfolios_portfolio", lambda w: w.a.portfolio.pk, "orders"),
    "run": ("portfolios_rebalancerun", lambda w: w.a.run.pk, "orders"),
    "asset": ("portfolios_asset", lambda w: w.a.order.asset_id, "orders"),
    "tax lot": ("portfolios_taxlot", lambda w: w.a.pick.lot_id, "order lots"),
    "order": ("portfolios_order", lambda w: w.a.order.pk, "order lots"),
}


@pytest.mark.parametrize("parent", list(REFERENCED_PARENTS))
def test_deleting_a_referenced_parent_with_sql_is_refused(in_a, parent):
    table, pk_of, children = REFERENCED_PARENTS[parent]
    pk = pk_of(in_a)
    before = counts()
    with pytest.raises(IntegrityError) as refused:
        raw_delete(table, pk)
    expected = (
        "assets are never deleted"
        if parent == "asset"
        else f"{table}: {children} still reference it"
    )
    assert expected in fk_refusal(refused.value)
    assert row_exists(table, pk)
    assert counts() == before


def test_a_referenced_asset_is_not_deleted_with_sql_whatever_the_error(in_a):
    pk = in_a.a.order.asset_id
    with pytest.raises(DatabaseError):
        raw_delete("portfolios_asset", pk)
    assert row_exists("portfolios_asset", pk)


def test_even_an_unreferenced_asset_is_never_deleted(in_a):
    # Assets are shared by every firm; a firm's check could not see the others' orders.
    lone = Asset.objects.create(symbol="LONE", name="lone", asset_class="us_equity")
    with pytest.raises(IntegrityError) as refused:
        raw_delete("portfolios_asset", lone.pk)
    assert "assets are never deleted" in fk_refusal(refused.value)
    assert row_exists("portfolios_asset", lone.pk)


def test_deleting_unreferenced_parents_with_sql_is_allowed(in_a):
    # The triggers look at the rows deleted, not at the table.
    run = another_run(in_a)
    assert raw_delete("portfolios_rebalancerun", run.pk) == 1
    lot = in_a.a.unpicked_lot
    assert not OrderLot.objects.filter(lot=lot).exists()
    assert raw_delete("portfolios_taxlot", lot.pk) == 1
    order = another_order(in_a)
    assert not OrderLot.objects.filter(order=order).exists()
    assert raw_delete("portfolios_order", order.pk) == 1


# --- the ORM's CASCADE and PROTECT -------------------------------------------------------


def test_deleting_a_run_with_the_orm_cascades_to_its_orders_and_lot_picks(in_a):
    run = in_a.a.run
    orders = Order.objects.filter(run=run).count()
    picks = OrderLot.objects.filter(order__run=run).count()
    run_portfolios = RunPortfolio.objects.filter(run=run).count()
    assert orders >= 2
    assert picks >= 1
    others = (
        Order.objects.exclude(run=run).count(),
        OrderLot.objects.exclude(order__run=run).count(),
    )
    with transaction.atomic():
        deleted, by_model = run.delete()
    assert by_model == {
        "portfolios.RebalanceRun": 1,
        "portfolios.RunPortfolio": run_portfolios,
        "portfolios.Order": orders,
        "portfolios.OrderLot": picks,
    }
    assert deleted == 1 + run_portfolios + orders + picks
    assert not RebalanceRun.objects.filter(pk=in_a.a.run.pk).exists()
    assert not Order.objects.filter(run_id=in_a.a.run.pk).exists()
    assert not OrderLot.objects.filter(pk=in_a.a.pick.pk).exists()
    # The portfolio and the lots it picked stay; nothing else went.
    assert Portfolio.objects.filter(pk=in_a.a.portfolio.pk).exists()
    assert TaxLot.objects.filter(pk=in_a.a.pick.lot_id).exists()
    assert (Order.objects.count(), OrderLot.objects.count()) == others


def test_deleting_a_portfolio_with_orders_with_the_orm_is_protected(in_a):
    portfolio = in_a.a.portfolio
    before = counts()
    with pytest.raises(ProtectedError) as protected, transaction.atomic():
        portfolio.delete()
    blocked = protected.value.protected_objects
    orders = set(Order.objects.filter(portfolio=portfolio))
    assert orders
    assert orders <= set(blocked)
    assert Portfolio.objects.filter(pk=portfolio.pk).exists()
    assert counts() == before


def test_deleting_a_picked_lot_or_an_ordered_asset_with_the_orm_is_protected(in_a):
    lot = TaxLot.objects.get(pk=in_a.a.pick.lot_id)
    with pytest.raises(ProtectedError) as protected, transaction.atomic():
        lot.delete()
    assert in_a.a.pick in set(protected.value.protected_objects)
    asset = Asset.objects.get(pk=in_a.a.order.asset_id)
    with pytest.raises(ProtectedError) as protected, transaction.atomic():
        asset.delete()
    assert in_a.a.order in set(protected.value.protected_objects)
    assert TaxLot.objects.filter(pk=lot.pk).exists()
    assert Asset.objects.filter(pk=asset.pk).exists()


# --- an asset only another firm's orders use ---------------------------------------------


@pytest.fixture
def only_a_orders(in_a: World) -> tuple[World, Asset]:
    """An asset that nothing but one of firm a's orders references (no holding, lot or
    price), such as a proposed buy of a new asset that was rejected."""
    asset = Asset.objects.create(symbol="ONLYA", name="only a", asset_class="us_equity")
    Order.objects.create(
        **order_fields(run_id=in_a.a.run.pk, portfolio_id=in_a.a.portfolio.pk, asset_id=asset.pk)
    )
    assert not Price.objects.filter(asset=asset).exists()
    return in_a, asset


def asset_and_its_order_stay(w: World, asset: Asset) -> None:
    assert row_exists("portfolios_asset", asset.pk)
    with firm_context(w.a.world.firm):
        assert Order.objects.filter(asset_id=asset.pk).exists()


def test_deleting_an_asset_another_firms_orders_use_is_refused_with_sql(only_a_orders):
    w, asset = only_a_orders
    with firm_context(w.b.world.firm), pytest.raises(IntegrityError) as refused:
        raw_delete("portfolios_asset", asset.pk)
    assert "assets are never deleted" in fk_refusal(refused.value)
    asset_and_its_order_stay(w, asset)


def test_deleting_an_asset_another_firms_orders_use_is_refused_with_the_orm(only_a_orders):
    w, asset = only_a_orders
    with (
        firm_context(w.b.world.firm),
        pytest.raises((ProtectedError, IntegrityError)),
        transaction.atomic(),
    ):
        asset.delete()
    asset_and_its_order_stay(w, asset)


def test_deleting_an_asset_orders_use_with_no_firm_selected_is_refused(only_a_orders):
    w, asset = only_a_orders
    with firm_context(None), pytest.raises(IntegrityError) as refused:
        raw_delete("portfolios_asset", asset.pk)
    assert "assets are never deleted" in fk_refusal(refused.value)
    asset_and_its_order_stay(w, asset)


# --- run rows (migration 0012) -----------------------------------------------------------


def run_row_fields(w: World, **refs: int | None) -> dict[str, Any]:
    """A run row of firm a for a fresh run (nothing of it exists yet), with ``refs``."""
    version = RunPortfolio.objects.get(run=w.a.run, portfolio=w.a.portfolio).strategy_version_id
    fields: dict[str, Any] = {
        "firm_id": w.a.world.firm.pk,
        "run_id": another_run(w).pk,
        "portfolio_id": w.a.portfolio.pk,
        "strategy_version_id": version,
        "status": "proposed",
        "trigger": "MANUAL",
        "nav": Decimal("100.00"),
        "cash_before": Decimal("0.00"),
        "cash_flow": Decimal("0.00"),
        "cash_after": Decimal("0.00"),
        "max_drift": Decimal("0"),
        "turnover": Decimal("0"),
    }
    return fields | refs


def other_version(w: World) -> int:
    with firm_context(w.b.world.firm), transaction.atomic():
        version = (
            RunPortfolio.objects.filter(run=w.b.run)
            .values_list("strategy_version_id", flat=True)
            .first()
        )
    assert version is not None
    return int(version)


BAD_RUN_ROW_REFS: dict[str, Callable[[World], dict[str, int]]] = {
    "missing run": lambda w: {"run_id": MISSING},
    "missing portfolio": lambda w: {"portfolio_id": MISSING},
    "missing strategy version": lambda w: {"strategy_version_id": MISSING},
    "other firm's run": lambda w: {"run_id": w.b.run.pk},
    "other firm's portfolio": lambda w: {"portfolio_id": w.b.portfolio.pk},
    "other firm's strategy version": lambda w: {"strategy_version_id": other_version(w)},
}
RUN_ROW_COPY_COLUMNS = (
    "firm_id",
    "run_id",
    "portfolio_id",
    "strategy_version_id",
    "status",
    "trigger",
    "nav",
    "cash_before",
    "cash_flow",
    "cash_after",
    "max_drift",
    "turnover",
)


def run_rows_create(rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        RunPortfolio.objects.create(**row)


def run_rows_staged_copy(rows: Sequence[dict[str, Any]]) -> None:
    defaults = {"compliance_outcome": 0, "state": "{}", "target_signature": "", "skip_reason": ""}
    columns = (*RUN_ROW_COPY_COLUMNS, *defaults)
    staged_copy(
        table="portfolios_runportfolio",
        columns=columns,
        rows=[[{**defaults, **row}[c] for c in columns] for row in rows],
    )


RUN_ROW_WRITERS: dict[str, Callable[[Sequence[dict[str, Any]]], None]] = {
    "create": run_rows_create,
    "staged_copy": run_rows_staged_copy,
}


@pytest.mark.parametrize("writer", list(RUN_ROW_WRITERS))
def test_a_run_row_with_good_references_is_written(in_a, writer):
    before = RunPortfolio.objects.count()
    with transaction.atomic():
        fields = run_row_fields(in_a)
        RUN_ROW_WRITERS[writer]([fields])
    assert RunPortfolio.objects.count() == before + 1
    assert RunPortfolio.objects.filter(run_id=fields["run_id"]).exists()


@pytest.mark.parametrize("bad", list(BAD_RUN_ROW_REFS))
@pytest.mark.parametrize("writer", list(RUN_ROW_WRITERS))
def test_a_run_row_with_a_bad_reference_is_refused_and_nothing_is_written(in_a, writer, bad):
    with transaction.atomic():
        rows = [run_row_fields(in_a, **BAD_RUN_ROW_REFS[bad](in_a))]
    before = RunPortfolio.objects.count()
    with pytest.raises(REFUSED) as refused, transaction.atomic():
        RUN_ROW_WRITERS[writer](rows)
    assert "portfolios_runportfolio:" in fk_refusal(refused.value)
    assert "does not exist in firm" in fk_refusal(refused.value)
    assert RunPortfolio.objects.count() == before


RUN_ROW_REF_CHANGES: dict[str, Callable[[World], dict[str, int]]] = {
    "run to another of the firm's": lambda w: {"run_id": another_run(w).pk},
    "portfolio to another of the firm's": lambda w: {"portfolio_id": another_portfolio(w).pk},
    "portfolio to the other firm's": lambda w: {"portfolio_id": w.b.portfolio.pk},
    "strategy version to a missing one": lambda w: {"strategy_version_id": MISSING},
}


@pytest.mark.parametrize("change", list(RUN_ROW_REF_CHANGES))
def test_a_run_rows_references_cannot_change(in_a, change):
    row = RunPortfolio.objects.get(run=in_a.a.run, portfolio=in_a.a.portfolio)
    with transaction.atomic():
        values = RUN_ROW_REF_CHANGES[change](in_a)
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        RunPortfolio.objects.filter(pk=row.pk).update(**values)
    assert "cannot change" in fk_refusal(refused.value)
    stored = RunPortfolio.objects.get(pk=row.pk)
    assert (stored.run_id, stored.portfolio_id, stored.strategy_version_id) == (
        row.run_id,
        row.portfolio_id,
        row.strategy_version_id,
    )


def test_a_run_rows_approval_can_change(in_a):
    row = RunPortfolio.objects.get(run=in_a.a.run, portfolio=in_a.a.portfolio)
    approver = in_a.a.world.users["advisor"]
    with transaction.atomic():
        assert (
            RunPortfolio.objects.filter(pk=row.pk).update(
                status="approved", approved_by=approver, approved_at=timezone.now()
            )
            == 1
        )
    assert RunPortfolio.objects.get(pk=row.pk).approved_by_id == approver.pk


def run_row_only_parent(w: World, parent: str) -> tuple[str, int]:
    """A parent row referenced by a run row only (no order), to delete with raw SQL."""
    portfolio = another_portfolio(w)
    fields = run_row_fields(w, portfolio_id=portfolio.pk)
    RunPortfolio.objects.create(**fields)
    return {
        "run": ("portfolios_rebalancerun", fields["run_id"]),
        "portfolio": ("portfolios_portfolio", portfolio.pk),
        "strategy version": ("portfolios_strategyversion", fields["strategy_version_id"]),
    }[parent]


def test_strategy_versions_are_never_deleted_by_the_application(in_a):
    # Immutable history: the application role has no DELETE on them at all (the
    # migration's delete check stands behind that for the owner role).
    with transaction.atomic():
        table, pk = run_row_only_parent(in_a, "strategy version")
    with pytest.raises(ProgrammingError, match="permission denied"):
        raw_delete(table, pk)
    assert row_exists(table, pk)


@pytest.mark.parametrize("parent", ["run", "portfolio"])
def test_deleting_a_parent_of_a_run_row_with_sql_is_refused(in_a, parent):
    with transaction.atomic():
        table, pk = run_row_only_parent(in_a, parent)
    rows = RunPortfolio.objects.count()
    with pytest.raises(IntegrityError) as refused:
        raw_delete(table, pk)
    assert f"{table}: run portfolios still reference it" in fk_refusal(refused.value)
    assert row_exists(table, pk)
    assert RunPortfolio.objects.count() == rows


def test_deleting_a_run_with_only_run_rows_with_the_orm_cascades(in_a):
    with transaction.atomic():
        _, run_id = run_row_only_parent(in_a, "run")
        deleted, by_model = RebalanceRun.objects.get(pk=run_id).delete()
    assert deleted == 2
    assert by_model == {"portfolios.RebalanceRun": 1, "portfolios.RunPortfolio": 1}
    assert not RunPortfolio.objects.filter(run_id=run_id).exists()
