"""COPY text rendering of a run's rows: field escaping and engine floats as decimals."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolios.bulk import copy_escape
from portfolios.services_rebalance import _decimal_texts, _money, _share

_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def copy_unescape(field: str) -> str:
    """What PostgreSQL's COPY text format reads back from one field."""
    out, i = [], 0
    while i < len(field):
        pair = field[i : i + 2]
        if pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            i += 2
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


@given(st.text(alphabet=st.sampled_from(["a", "é", "\\", "\t", "\n", "\r", '"', " "])))
def test_an_escaped_field_reads_back_as_written_and_stays_one_field(text: str):
    field = copy_escape(text)
    assert not {"\t", "\n", "\r"} & set(field)
    assert copy_unescape(field) == text


def test_a_field_with_nothing_to_escape_is_returned_as_is():
    text = '{"holdings":{"1":"51.49"},"cash": "788.92"}'
    assert copy_escape(text) is text


@given(
    st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), max_size=20),
    st.sampled_from([2, 8]),
)
def test_engine_floats_are_rounded_once_to_their_places(values: list[float], places: int):
    texts = _decimal_texts(np.array(values, dtype=np.float64), places)
    assert len(texts) == len(values)
    unit = Decimal(1).scaleb(-places)
    for value, text in zip(values, texts, strict=True):
        decimal = Decimal(text)
        exponent = decimal.as_tuple().exponent
        assert isinstance(exponent, int)
        assert exponent >= -places  # on the column's scale
        # Within half a unit of the float, up to the float's own rounding of x * 10**p.
        assert abs(decimal - Decimal(value)) <= unit / 2 + Decimal(abs(value)) * Decimal("1e-15")


def test_ties_round_half_to_even_and_scalars_agree():
    assert _decimal_texts([0.125, 0.135, -2.5e-9, 1e-9], 2) == ["12e-2", "14e-2", "0e-2", "0e-2"]
    assert Decimal(_money(1234.565)) == Decimal("1234.56")  # 1234.565 is 1234.56499... as a float
    assert Decimal(_share(0.012345678)) == Decimal("0.01234568")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_value_that_is_not_finite_is_refused(bad: float):
    with pytest.raises(ValueError, match="not a finite amount"):
        _decimal_texts([1.0, bad], 2)
