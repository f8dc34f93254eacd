"""Rounding on the way out, and capped redistribution.

Weights are computed in floats. On the way out they are rounded ONCE, here:
each weight becomes an integer number of units of 1e-8 (``UNIT``), and the
integer units sum to exactly 100,000,000 (largest-remainder method: floor every
weight, then hand the missing units to the largest remainders, never past an
asset's upper bound nor below its lower bound; a bound that is not a multiple of
1e-8 and cannot be met in whole units, like three assets capped at 1/3, is
passed by at most one unit). The float weights are those
integers divided by 1e8, so they sum to 1 within float error (< 1e-12) and any
two runs on the same inputs give bit-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from portfolios.engine.types import InfeasibleStrategy

DECIMALS = 8
UNITS = 10**DECIMALS
UNIT = 1.0 / UNITS
# Tolerance for comparisons on float weights and limits.
TOL = 1e-9

FloatArray = NDArray[np.float64]


def round_weights(
    weights: FloatArray,
    lower: FloatArray | None = None,
    upper: FloatArray | None = None,
) -> FloatArray:
    """Round ``weights`` (summing to 1 within ~1e-6) to multiples of 1e-8 summing to 1.

    Negative noise from solvers (above -1e-6) is cleared first; the weights are
    then normalised, floored to units, and the missing units go to the largest
    remainders that stay within ``[lower, upper]`` (rounded to units).
    """
    w = np.asarray(weights, dtype=np.float64).copy()
    n = w.size
    if n == 0:
        raise InfeasibleStrategy("no asset left to hold: the universe is empty")
    if not np.all(np.isfinite(w)):
        raise InfeasibleStrategy("the optimiser returned non-finite weights")
    w[(w < 0) & (w > -1e-6)] = 0.0
    total = float(w.sum())
    if abs(total - 1.0) > 1e-4:
        raise InfeasibleStrategy(f"weights sum to {total:.6f}, not 1")
    w = w / total
    lo_units = (
        np.zeros(n, dtype=np.int64)
        if lower is None
        else np.ceil(np.asarray(lower) * UNITS - 1e-3).astype(np.int64)
    )
    hi_units = (
        np.full(n, UNITS, dtype=np.int64)
        if upper is None
        else np.floor(np.asarray(upper) * UNITS + 1e-3).astype(np.int64)
    )
    # A bound that is not a multiple of 1e-8 is met exactly when the units allow it;
    # when they cannot (three assets capped at 1/3), it may be passed by one unit.
    if int(hi_units.sum()) < UNITS and upper is not None:
        hi_units = np.ceil(np.asarray(upper) * UNITS - 1e-3).astype(np.int64)
    if int(lo_units.sum()) > UNITS and lower is not None:
        lo_units = np.floor(np.asarray(lower) * UNITS + 1e-3).astype(np.int64)
    scaled = w * UNITS
    units = np.floor(scaled + 1e-7).astype(np.int64)
    units = np.clip(units, lo_units, hi_units)
    missing = int(UNITS - int(units.sum()))
    remainder = scaled - units
    if missing > 0:
        order = np.argsort(-remainder, kind="stable")
        missing = _hand_out(units, order, missing, hi_units, +1)
    elif missing < 0:
        order = np.argsort(remainder, kind="stable")
        missing = -_hand_out(units, order, -missing, lo_units, -1)
    if missing != 0:
        raise InfeasibleStrategy("weights cannot be rounded to 1e-8 within their bounds")
    out: FloatArray = units.astype(np.float64) / UNITS
    return out


def _hand_out(
    units: NDArray[np.int64],
    order: NDArray[np.intp],
    count: int,
    limit: NDArray[np.int64],
    sign: int,
) -> int:
    """Move ``count`` units one at a time (round robin by ``order``) within ``limit``."""
    while count > 0:
        moved = False
        for i in order:
            if count == 0:
                break
            if (sign > 0 and units[i] < limit[i]) or (sign < 0 and units[i] > limit[i]):
                units[i] += sign
                count -= 1
                moved = True
        if not moved:
            break
    return count


def cap_and_redistribute(raw: Sequence[float] | FloatArray, cap: float) -> FloatArray:
    """Normalise ``raw`` (non-negative scores, e.g. market caps) and cap each weight.

    Iteratively: every weight above ``cap`` is set to ``cap`` and the excess is
    shared among the uncapped assets in proportion to their weights, until no
    weight exceeds the cap. Raises InfeasibleStrategy when ``cap * n < 1``.
    Unrounded: callers round once with :func:`round_weights`.
    """
    x: FloatArray = np.asarray(raw, dtype=np.float64)
    n = x.size
    if n == 0:
        raise InfeasibleStrategy("no asset left to hold: the universe is empty")
    if np.any(~np.isfinite(x)) or np.any(x < 0):
        raise InfeasibleStrategy("scores to cap must be finite and non-negative")
    if not 0 < cap <= 1:
        raise InfeasibleStrategy(f"per-asset cap {cap} must be in (0, 1]")
    if cap * n < 1 - TOL:
        raise InfeasibleStrategy(
            f"per-asset cap {cap:g} x {n} assets = {cap * n:g} < 1: weights cannot sum to one"
        )
    if x.sum() <= 0:
        x = np.ones(n)
    w: FloatArray = x / x.sum()
    capped = np.zeros(n, dtype=bool)
    for _ in range(n + 1):
        over = (w > cap + 1e-15) & ~capped
        if not over.any():
            break
        capped |= over
        w[capped] = cap
        free = ~capped
        if not free.any():
            break
        remaining = 1.0 - cap * capped.sum()
        base = x[free]
        if base.sum() <= 0:
            w[free] = remaining / free.sum()
        else:
            w[free] = remaining * (base / base.sum())
    return w


def fsum(values: Sequence[float] | FloatArray) -> float:
    return math.fsum(float(v) for v in values)
