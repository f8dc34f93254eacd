"""Exact decimal quantities and values for a batch of orders, without Decimal objects.

The engine works in floats; on the way out each order's quantity becomes an exact
multiple of its asset's step and its value the exact product of quantity and price,
rounded once to cents (half to even). Decimal does that one order at a time, which
dominated the cost of writing a large run. Here a decimal is an integer and a number
of decimal places (``123456, 6`` is 0.123456), so a whole chunk is done with integer
array arithmetic and rendered as text PostgreSQL's numeric input reads (``123456e-6``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
# Products below this fit in int64 with room for the rounding step.
_INT64_SAFE = 2**62


def decimal_parts(value: Decimal) -> tuple[int, int]:
    """``value`` as (integer, places) with the fewest places: ``value == integer *
    10**-places``, places >= 0. Fewest, because the database hands numerics back at
    their column's scale (``402.8800000000``), and ten needless places on both price
    and quantity push their product past int64 and off the array path."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite decimal: {value}")
    integer = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if exponent >= 0:
        return integer * 10**exponent, 0
    places = -exponent
    while places and integer % 10 == 0:
        integer //= 10
        places -= 1
    return integer, places


def step_units(quantity: NDArray[np.float64], step: NDArray[np.float64]) -> IntArray:
    """How many whole steps each float quantity is (the engine returns exact multiples
    up to float error)."""
    units: IntArray = np.rint(quantity / step).astype(np.int64)
    return units


def decimal_text(integers: Sequence[int], places: Sequence[int]) -> list[str]:
    """Each ``integer * 10**-places`` as text for numeric input (``"123456e-6"``)."""
    return [f"{n}e-{p}" if p else str(n) for n, p in zip(integers, places, strict=True)]


def values_in_cents(
    quantity: IntArray,
    quantity_places: IntArray,
    price: IntArray,
    price_places: IntArray,
) -> list[int]:
    """quantity x price, each given as integers and decimal places, rounded half to
    even to whole cents, per order. Exact: integer arithmetic throughout. Order
    quantities and prices are never negative, and this relies on it."""
    places = quantity_places + price_places
    n = len(quantity)
    if n == 0:
        return []
    if int(quantity.min()) < 0 or int(price.min()) < 0:
        raise ValueError("quantities and prices must not be negative")
    # Products are scaled up by 10**(2 - places) when there are fewer than 2 places.
    biggest = int(quantity.max()) * int(price.max()) * 10 ** max(0, 2 - int(places.min()))
    if biggest < _INT64_SAFE and int(places.max()) < 19:
        product = quantity * price
        shift = places - 2
        up = np.maximum(-shift, 0)
        down = np.maximum(shift, 0)
        scaled = product * 10**up
        divisor = 10**down
        whole, rest = np.divmod(scaled, divisor)
        twice = 2 * rest
        round_up = (twice > divisor) | ((twice == divisor) & (whole % 2 == 1))
        cents: list[int] = (whole + round_up).tolist()
        return cents
    out = []
    for q, qp, p, pp in zip(
        quantity.tolist(),
        quantity_places.tolist(),
        price.tolist(),
        price_places.tolist(),
        strict=True,
    ):
        product, shift = q * p, qp + pp - 2
        if shift <= 0:
            out.append(product * 10**-shift)
            continue
        whole, rest = divmod(product, 10**shift)
        twice = 2 * rest
        if twice > 10**shift or (twice == 10**shift and whole % 2 == 1):
            whole += 1
        out.append(whole)
    return out
