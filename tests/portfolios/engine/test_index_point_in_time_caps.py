"""Index members are picked by market caps as of each decision date (units outstanding
times the prices seen so far), not by caps observed later."""

from __future__ import annotations

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.optimise.walkforward import caps_as_of, weights_function
from portfolios.engine.types import Method, OptimiseRequest

UNITS = {"RISER": 1.0, "STEADY": 1.0, "MID": 1.0, "SMALL": 0.1}


def _prices() -> pd.DataFrame:
    days = 200
    index = pd.date_range("2022-01-01", periods=days, freq="D")
    noise = np.random.default_rng(3).normal(0, 0.001, size=(days, 4))
    riser = np.linspace(50, 400, days)  # small at first, the largest later
    steady = np.full(days, 200.0)
    mid = np.full(days, 150.0)
    small = np.full(days, 100.0)
    base = np.column_stack([riser, steady, mid, small])
    return pd.DataFrame(base * np.exp(noise), index=index, columns=list(UNITS))


def _members(prices: pd.DataFrame) -> set[str]:
    request = OptimiseRequest(
        method=Method.INDEX,
        universe=tuple(UNITS),
        prices=pd.DataFrame(),
        lookback=20,
        frequency=252,
        top_n=2,
        # As observed at the end of the data: RISER the largest.
        market_caps={"RISER": 400.0, "STEADY": 200.0, "MID": 150.0, "SMALL": 10.0},
    )
    weights = weights_function(request, shares=UNITS)(prices)
    return {s for s, w in weights.items() if w > 0}


def test_caps_as_of_values_units_at_the_last_price_seen() -> None:
    prices = _prices()
    caps = caps_as_of(UNITS, prices.iloc[:50])
    assert caps["STEADY"] > caps["RISER"]
    assert abs(caps["SMALL"] - 0.1 * prices["SMALL"].iloc[49]) < 1e-9


def test_early_decisions_do_not_see_the_later_rise() -> None:
    prices = _prices()
    # Day 40: RISER is worth about 120, below STEADY (200) and MID (150); the caps
    # observed at the end (RISER 400) would have put it in the index already.
    assert _members(prices.iloc[:40]) == {"STEADY", "MID"}
    # Day 190: RISER is worth about 380, the largest.
    assert _members(prices.iloc[:190]) == {"RISER", "STEADY"}
    # A poisoned future leaves the early decision as it was.
    poisoned = prices.copy()
    poisoned.iloc[100:, 3] = 1e6
    assert _members(poisoned.iloc[:40]) == {"STEADY", "MID"}
    assert "SMALL" in _members(poisoned.iloc[:150])


def test_an_asset_without_a_price_yet_cannot_be_picked() -> None:
    prices = _prices()
    prices.iloc[:60, 0] = np.nan  # RISER lists on day 60
    assert caps_as_of(UNITS, prices.iloc[:30]).keys() == {"STEADY", "MID", "SMALL"}
