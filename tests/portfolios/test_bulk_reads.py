"""Bulk reads of a chunk: ids as one array parameter, columns as numpy arrays,
ids drawn from a sequence; all under the firm's row-level security."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection, transaction
from django.db.models import FloatField, Value
from django.db.models.functions import Cast

from accounts.tenancy.context import firm_context
from portfolios.bulk import arrays_fetch, ids_allocate
from portfolios.chunking import in_ids
from portfolios.models import Holding, Portfolio

from .rebalance_factories import asset_make, portfolio_make, strategy_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def books(firm_a, firm_b):
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    out = {}
    for world, holdings in ((firm_a, ("1.5", "2")), (firm_b, ("7", "9"))):
        strategy = strategy_make(world.firm, "Half half", {"AAA": "0.5", "BBB": "0.5"})
        with firm_context(world.firm):
            out[world.firm.slug] = [
                portfolio_make(
                    world.firm,
                    strategy=strategy,
                    holdings={"AAA": holdings[0], "BBB": holdings[1]},
                )
                for _ in range(3)
            ]
    return firm_a, firm_b, out


def _holdings(ids):
    return (
        Holding.objects.filter(in_ids("portfolio_id", ids))
        .annotate(q=Cast("quantity", FloatField()))
        .order_by("portfolio_id", "asset_id")
        .values_list("portfolio_id", "asset_id", "q")
    )


def test_in_ids_is_one_array_parameter_and_finds_the_same_rows(books):
    world, _, portfolios = books
    ids = [p.pk for p in portfolios[world.firm.slug]]
    with firm_context(world.firm), transaction.atomic():
        queryset = Portfolio.objects.filter(in_ids("pk", ids[:2]))
        sql, params = queryset.query.sql_with_params()
        assert "= ANY(%s::bigint[])" in sql
        assert f"{{{ids[0]},{ids[1]}}}" in params
        assert sorted(queryset.values_list("pk", flat=True)) == ids[:2]
        assert not Portfolio.objects.filter(in_ids("pk", [])).exists()


def test_arrays_fetch_reads_columns_as_arrays(books):
    world, _, portfolios = books
    ids = [p.pk for p in portfolios[world.firm.slug]]
    with firm_context(world.firm), transaction.atomic():
        pid, aid, quantity = arrays_fetch(_holdings(ids), kinds="iif")
        expected = list(_holdings(ids))
    assert (pid.dtype, aid.dtype, quantity.dtype) == (np.int64, np.int64, np.float64)
    assert list(zip(pid.tolist(), aid.tolist(), quantity.tolist(), strict=True)) == expected
    assert quantity.tolist() == [1.5, 2.0] * 3


def test_arrays_fetch_sees_only_the_current_firm(books):
    # Asking for the other firm's portfolio ids by name returns nothing: row-level
    # security applies to the aggregated read as to any query.
    world, other, portfolios = books
    theirs = [p.pk for p in portfolios[other.firm.slug]]
    with firm_context(world.firm), transaction.atomic():
        pid, aid, quantity = arrays_fetch(_holdings(theirs), kinds="iif")
    assert pid.size == aid.size == quantity.size == 0


def test_arrays_fetch_of_nothing_and_bad_kinds(books):
    world, _, _ = books
    with firm_context(world.firm), transaction.atomic():
        empty = arrays_fetch(_holdings([]), kinds="iif")
        assert [a.size for a in empty] == [0, 0, 0]
        with pytest.raises(ValueError, match="kinds"):
            arrays_fetch(_holdings([1]), kinds="ix")


def test_arrays_fetch_refuses_a_null(books):
    world, _, portfolios = books
    ids = [p.pk for p in portfolios[world.firm.slug]]
    with firm_context(world.firm), transaction.atomic():
        queryset = (
            Holding.objects.filter(in_ids("portfolio_id", ids))
            .annotate(q=Value(None, output_field=FloatField()))
            .values_list("portfolio_id", "q")
        )
        with pytest.raises(ValueError, match="NULL"):
            arrays_fetch(queryset, kinds="if")


def test_ids_allocate_draws_distinct_ids_from_the_table_sequence(books):
    world, _, _ = books
    with firm_context(world.firm), transaction.atomic():
        drawn = ids_allocate(table="portfolios_order", count=500)
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_value FROM portfolios_order_id_seq")
            (last,) = cursor.fetchone()
            after = ids_allocate(table="portfolios_order", count=3)
    assert drawn.dtype == np.int64
    ids = drawn.tolist()
    assert len(set(ids)) == 500
    assert ids == sorted(ids)
    assert ids[-1] == last
    assert after.tolist() == [last + 1, last + 2, last + 3]  # nothing drawn twice
    assert len(ids_allocate(table="portfolios_order", count=0)) == 0
