"""Exact quantities and values (portfolios.engine.exact) against Decimal, the reference.

Pure: no database. Each batch function is checked element by element against what
Decimal computes one order at a time, on the int64 fast path and on the big-integer
fallback.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portfolios.engine.exact import (
    decimal_parts,
    decimal_text,
    step_units,
    values_in_cents,
)

CENT = Decimal("0.01")
# Decimal's default context keeps 28 digits and would round the reference itself;
# this one is exact for every size drawn here.
EXACT = Context(prec=1000)


def scaled(n: int, places: int) -> Decimal:
    """``n * 10**-places``, exactly."""
    return Decimal(n).scaleb(-places, EXACT)


def reference_cents(q: int, qp: int, p: int, pp: int) -> int:
    """Decimal's answer: quantity x price rounded half to even to cents, in cents."""
    value = EXACT.multiply(scaled(q, qp), scaled(p, pp))
    return int(value.quantize(CENT, ROUND_HALF_EVEN, EXACT).scaleb(2, EXACT))


def cents_of(rows: list[tuple[int, int, int, int]]) -> list[int]:
    def column(k: int) -> np.ndarray:
        return np.array([r[k] for r in rows], dtype=np.int64)

    return values_in_cents(column(0), column(1), column(2), column(3))


def orders(
    quantity: st.SearchStrategy[int],
    quantity_places: st.SearchStrategy[int],
    price: st.SearchStrategy[int],
    price_places: st.SearchStrategy[int],
) -> st.SearchStrategy[list[tuple[int, int, int, int]]]:
    return st.lists(
        st.tuples(quantity, quantity_places, price, price_places), min_size=1, max_size=30
    )


# --- values_in_cents ---------------------------------------------------------------

# Below this the batch takes the int64 path (exact._INT64_SAFE); at or above it, the
# big-integer fallback.
INT64_SAFE = 2**62


def biggest_product(rows: list[tuple[int, int, int, int]]) -> int:
    return max(r[0] for r in rows) * max(r[2] for r in rows)


# Ordinary sizes: quantities of up to 10**9 at 2 to 10 places (the database keeps
# 10) and prices of up to 10**9 at up to 6 places: the products fit in int64. (Fewer
# than two places in all are the next tests'.)
ordinary = orders(
    st.integers(0, 10**9),
    st.integers(2, 10),
    st.integers(0, 10**9),
    st.integers(0, 6),
)


@settings(max_examples=300, deadline=None)
@given(rows=ordinary)
def test_values_in_cents_equal_decimal_on_ordinary_sizes(rows):
    assert biggest_product(rows) < 2**63  # in reach of int64 before scaling
    assert cents_of(rows) == [reference_cents(*r) for r in rows]


# Fewer than two places in all (decimal_parts of Decimal("100"), or the whole-unit
# step Decimal(1) times such a price): cents are a multiplication, not a division.
@settings(max_examples=300, deadline=None)
@given(rows=orders(st.integers(0, 10**6), st.integers(0, 2), st.integers(0, 10**6), st.just(0)))
def test_values_in_cents_equal_decimal_with_few_places(rows):
    assert cents_of(rows) == [reference_cents(*r) for r in rows]


# The same with products near the int64 path's limit when the places add up to fewer
# than two (the product is then scaled up by up to 100): these must not wrap around.
@settings(max_examples=300, deadline=None)
@example(rows=[(10**9, 0, 10**9, 0)])
@example(rows=[(10**9, 1, 10**9, 0)])
@given(rows=orders(st.integers(0, 2**31), st.integers(0, 1), st.integers(0, 2**31 - 1), st.just(0)))
def test_values_in_cents_equal_decimal_with_few_places_near_int64(rows):
    assert biggest_product(rows) < INT64_SAFE  # the int64 path
    assert cents_of(rows) == [reference_cents(*r) for r in rows]


# Too big for int64: 10**12 units at 10 places times 10**9 at 6 places and more.
big = orders(
    st.integers(10**12, 10**18),
    st.integers(0, 12),
    st.integers(10**9, 10**18),
    st.integers(0, 12),
)


@settings(max_examples=200, deadline=None)
@given(rows=big)
def test_values_in_cents_equal_decimal_past_int64(rows):
    assert biggest_product(rows) >= INT64_SAFE  # the big-integer fallback
    assert cents_of(rows) == [reference_cents(*r) for r in rows]


@settings(max_examples=200, deadline=None)
@given(small=ordinary, large=big)
def test_one_big_order_sends_the_whole_batch_to_the_exact_fallback(small, large):
    rows = small + large[:1]
    assert cents_of(rows) == [reference_cents(*r) for r in rows]


# Places past 18 (10**19 does not fit in int64) take the fallback whatever the sizes.
@settings(max_examples=200, deadline=None)
@given(
    rows=orders(
        st.integers(0, 10**6), st.integers(8, 14), st.integers(0, 10**6), st.integers(8, 14)
    )
)
def test_values_in_cents_equal_decimal_with_many_places(rows):
    assert cents_of(rows) == [reference_cents(*r) for r in rows]


def test_the_explicit_big_example():
    # 100 units at 10 places (10**12 / 10**10) times 1,000.000000 (10**9 at 6 places).
    rows = [(10**12, 10, 10**9, 6), (10**12 + 5, 10, 10**9 + 7, 6)]
    assert cents_of(rows) == [reference_cents(*r) for r in rows]
    assert cents_of(rows)[0] == 100 * 1000 * 100


@pytest.mark.parametrize(
    ("quantity", "price", "cents"),
    [
        # Exactly half a cent: to the even cent, down and up.
        ("0.125", "1", 12),
        ("0.135", "1", 14),
        ("0.145", "1", 14),
        ("0.155", "1", 16),
        ("0.005", "1", 0),
        ("0.015", "1", 2),
        ("1", "0.125", 12),
        ("1", "0.135", 14),
        ("0.5", "0.25", 12),  # 0.125
        ("0.5", "0.27", 14),  # 0.135
        ("2.5", "0.05", 12),  # 0.125
        # Just off the tie: the nearest cent.
        ("0.1250000001", "1", 13),
        ("0.1349999999", "1", 13),
        ("0.1249999999", "1", 12),
    ],
)
def test_half_cent_ties_round_to_even(quantity, price, cents):
    q, qp = decimal_parts(Decimal(quantity))
    p, pp = decimal_parts(Decimal(price))
    assert reference_cents(q, qp, p, pp) == cents
    assert cents_of([(q, qp, p, pp)]) == [cents]
    # The same tie on the big-integer path: one huge order in the batch sends every
    # order there.
    huge = (10**15, 0, 10**6, 0)
    assert cents_of([(q, qp, p, pp), huge]) == [cents, reference_cents(*huge)]


@pytest.mark.parametrize("places", [0, 1, 2, 3, 10])
def test_half_cent_ties_at_every_scale(places):
    # n + 0.5 cents for n even and odd, written at ``places`` extra places of price.
    for n in range(6):
        tenths_of_cent = (10 * n + 5) * 10**places
        q, qp, p, pp = 1, 0, tenths_of_cent, 3 + places
        expected = n if n % 2 == 0 else n + 1
        assert cents_of([(q, qp, p, pp)]) == [expected]
        assert cents_of([(q, qp, p, pp), (10**15, 0, 10**6, 0)])[0] == expected


def test_no_orders_no_values():
    empty = np.array([], dtype=np.int64)
    assert values_in_cents(empty, empty, empty, empty) == []


@pytest.mark.parametrize(
    "row",
    [
        (-1, 0, 100, 0),
        (1, 0, -100, 0),
        (-(10**15), 10, 10**9, 6),
        (10**15, 10, -(10**9), 6),
    ],
)
def test_negative_quantities_or_prices_are_refused(row):
    with pytest.raises(ValueError, match="negative"):
        cents_of([(5, 0, 5, 0), row])


# --- decimal_parts ------------------------------------------------------------------

finite = st.decimals(allow_nan=False, allow_infinity=False)


@given(value=finite)
def test_decimal_parts_round_trip_any_finite_decimal(value):
    n, p = decimal_parts(value)
    assert isinstance(n, int)
    assert p >= 0
    assert p == 0 or n % 10 != 0  # the fewest places
    assert scaled(n, p) == value


@given(integer=st.integers(-(10**30), 10**30), exponent=st.integers(-30, 30))
def test_decimal_parts_round_trip_every_exponent(integer, exponent):
    value = Decimal(integer).scaleb(exponent, EXACT)
    n, p = decimal_parts(value)
    assert p >= 0
    assert scaled(n, p) == value


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("1E+2", (100, 0)),
        ("1.5E+3", (1500, 0)),
        ("-2E+1", (-20, 0)),
        ("0E+5", (0, 0)),
        ("0", (0, 0)),
        ("-0", (0, 0)),
        ("0.000", (0, 0)),
        ("123.456000", (123456, 3)),
        ("0.000001", (1, 6)),
        ("100.0000000000", (100, 0)),
        ("402.8800000000", (40288, 2)),
        ("-1.25", (-125, 2)),
    ],
)
def test_decimal_parts_examples(text, parts):
    assert decimal_parts(Decimal(text)) == parts


@pytest.mark.parametrize("text", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_decimal_parts_refuses_what_is_not_finite(text):
    with pytest.raises(ValueError, match="finite"):
        decimal_parts(Decimal(text))


# --- decimal_text -------------------------------------------------------------------


@given(pairs=st.lists(st.tuples(st.integers(-(10**30), 10**30), st.integers(0, 30)), max_size=20))
def test_decimal_text_reads_back_as_the_value(pairs):
    integers = [n for n, _ in pairs]
    places = [p for _, p in pairs]
    texts = decimal_text(integers, places)
    assert len(texts) == len(pairs)
    for text, (n, p) in zip(texts, pairs, strict=True):
        assert Decimal(text) == scaled(n, p)


@given(value=finite)
def test_decimal_text_of_decimal_parts_is_the_decimal(value):
    n, p = decimal_parts(value)
    (text,) = decimal_text([n], [p])
    assert Decimal(text) == value


def test_decimal_text_examples():
    assert decimal_text([123456, 5, -7, 0], [6, 0, 2, 3]) == ["123456e-6", "5", "-7e-2", "0e-3"]


def test_decimal_text_needs_one_place_count_per_integer():
    with pytest.raises(ValueError, match="shorter"):
        decimal_text([1, 2], [0])


# --- step_units ---------------------------------------------------------------------

STEPS = ["0.000001", "0.00000001", "1", "0.5", "0.0001", "0.25", "0.1"]


@settings(max_examples=300)
@given(
    units=st.lists(st.integers(0, 10**12), min_size=1, max_size=30),
    steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=30),
)
def test_step_units_of_float_multiples_are_exact_counts(units, steps):
    n = min(len(units), len(steps))
    units, steps = units[:n], steps[:n]
    step = np.array([float(s) for s in steps])
    # Two ways the engine's floats come about: a float product, and the float nearest
    # the exact decimal multiple.
    product = np.array(units, dtype=np.float64) * step
    nearest = np.array([float(Decimal(k) * Decimal(s)) for k, s in zip(units, steps, strict=True)])
    for quantity in (product, nearest):
        got = step_units(quantity, step)
        assert got.dtype == np.int64
        assert got.tolist() == units


@pytest.mark.parametrize(
    ("quantity", "step", "units"),
    [
        (0.3, 0.1, 3),  # 0.30000000000000004 / 0.1 in floats
        (0.7, 0.1, 7),
        (1e-6 * 3, 1e-6, 3),
        (123.456789, 0.000001, 123456789),
        (0.1 + 0.2, 0.1, 3),
        (2.5, 0.5, 5),
        (12345678.12345678, 0.00000001, 1234567812345678),
        (0.0, 1.0, 0),
    ],
)
def test_step_units_examples(quantity, step, units):
    assert step_units(np.array([quantity]), np.array([step])).tolist() == [units]
