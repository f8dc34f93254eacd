"""Weight bounds and asset-class limits: resolution, feasibility, projection.

Feasibility is decided before any solver runs. With per-asset boxes
``lower <= w <= upper`` and limits on disjoint asset classes, the problem
``sum(w) == 1`` is feasible exactly when (a) every box and every class interval
is non-empty and (b) the smallest total the limits allow is at most 1 and the
largest is at least 1; the checks below test exactly that and name the first
constraint that fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cvxpy
import numpy as np

from portfolios.engine.optimise.rounding import TOL, FloatArray
from portfolios.engine.types import InfeasibleStrategy, InvalidParameter, UnknownAsset

# cvxpy's partial type hints miss most of its API: use it untyped.
cp: Any = cvxpy
# Clarabel (an interior-point solver, in the lock file through cvxpy) for every
# problem, here and in PyPortfolioOpt: accurate to ~1e-8 and deterministic.
SOLVER = "CLARABEL"

__all__ = ["SOLVER", "TOL", "Constraints", "build_constraints", "check_feasible", "project"]


@dataclass(frozen=True)
class Constraints:
    symbols: tuple[str, ...]
    lower: FloatArray
    upper: FloatArray
    classes: tuple[str | None, ...]
    class_min: Mapping[str, float]
    class_max: Mapping[str, float]

    def members(self, cls: str) -> FloatArray:
        return np.array([c == cls for c in self.classes], dtype=bool)

    @property
    def has_class_limits(self) -> bool:
        return bool(self.class_min) or bool(self.class_max)

    def sector_args(self) -> tuple[dict[str, str], dict[str, float], dict[str, float]]:
        """Arguments of PyPortfolioOpt's ``add_sector_constraints``."""
        mapper = {s: c for s, c in zip(self.symbols, self.classes, strict=True) if c is not None}
        return mapper, dict(self.class_min), dict(self.class_max)


def _check_bound(name: str, lo: float, hi: float) -> None:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InvalidParameter(f"weight bounds of {name} must be finite numbers")
    if lo < 0 or hi > 1:
        raise InvalidParameter(
            f"weight bounds of {name} ({lo:g}, {hi:g}) must lie within [0, 1] (long only)"
        )
    if lo > hi + TOL:
        raise InfeasibleStrategy(f"weight bounds of {name}: minimum {lo:g} > maximum {hi:g}")


def build_constraints(
    symbols: Sequence[str],
    *,
    weight_bounds: tuple[float, float] = (0.0, 1.0),
    asset_bounds: Mapping[str, tuple[float, float]] | None = None,
    asset_classes: Mapping[str, str] | None = None,
    class_min: Mapping[str, float] | None = None,
    class_max: Mapping[str, float] | None = None,
    ignore: frozenset[str] = frozenset(),
    extra_cap: float | None = None,
) -> Constraints:
    """Resolve the per-asset bounds and class limits over ``symbols``.

    ``asset_bounds`` override the global ``weight_bounds`` per symbol; a bound on
    a symbol outside ``symbols`` is an UnknownAsset unless it is in ``ignore``
    (excluded assets). ``extra_cap`` (a method's per-asset cap) tightens every
    upper bound.
    """
    glo, ghi = (float(weight_bounds[0]), float(weight_bounds[1]))
    _check_bound("every asset (global)", glo, ghi)
    asset_bounds = dict(asset_bounds or {})
    index = set(symbols)
    for sym in asset_bounds:
        if sym not in index and sym not in ignore:
            raise UnknownAsset(f"weight bounds given for unknown asset {sym!r} (not in universe)")
    lower = np.full(len(symbols), glo)
    upper = np.full(len(symbols), ghi)
    for i, sym in enumerate(symbols):
        if sym in asset_bounds:
            lo, hi = (float(asset_bounds[sym][0]), float(asset_bounds[sym][1]))
            _check_bound(repr(sym), lo, hi)
            lower[i], upper[i] = lo, hi
    if extra_cap is not None:
        if not 0 < extra_cap <= 1:
            raise InvalidParameter(f"per-asset cap {extra_cap:g} must be in (0, 1]")
        upper = np.minimum(upper, extra_cap)
        bad = np.flatnonzero(lower > upper + TOL)
        if bad.size:
            sym = symbols[int(bad[0])]
            raise InfeasibleStrategy(
                f"weight bounds of {sym!r}: minimum {lower[bad[0]]:g} > per-asset cap {extra_cap:g}"
            )
    classes_map = dict(asset_classes or {})
    cmin = {str(k): float(v) for k, v in (class_min or {}).items()}
    cmax = {str(k): float(v) for k, v in (class_max or {}).items()}
    for label, limits in (("minimum", cmin), ("maximum", cmax)):
        for cls, v in limits.items():
            if not np.isfinite(v) or v < 0 or v > 1:
                raise InvalidParameter(f"asset-class {label} of {cls!r} ({v:g}) must be in [0, 1]")
    return Constraints(
        symbols=tuple(symbols),
        lower=lower,
        upper=upper,
        classes=tuple(classes_map.get(s) for s in symbols),
        class_min=cmin,
        class_max=cmax,
    )


def check_feasible(c: Constraints) -> None:
    """Raise InfeasibleStrategy naming the first constraint that cannot hold."""
    n = len(c.symbols)
    if n == 0:
        raise InfeasibleStrategy("no asset left to hold: every asset of the universe is excluded")
    lo_sum = float(c.lower.sum())
    hi_sum = float(c.upper.sum())
    if lo_sum > 1 + TOL:
        raise InfeasibleStrategy(
            f"weight bounds: the minimum weights sum to {lo_sum:.6g} > 1, so they cannot sum to one"
        )
    if hi_sum < 1 - TOL:
        raise InfeasibleStrategy(
            f"weight bounds: the maximum weights of the {n} assets sum to {hi_sum:.6g} < 1, "
            "so they cannot sum to one"
        )
    min_total = sum(c.class_min.values())
    if min_total > 1 + TOL:
        raise InfeasibleStrategy(f"asset-class minimums sum to {min_total:.6g} > 1")
    classes = sorted({x for x in c.classes if x is not None} | set(c.class_min) | set(c.class_max))
    need = 0.0
    room = 0.0
    for cls in classes:
        m = c.members(cls)
        cls_lo = float(c.lower[m].sum())
        cls_hi = float(c.upper[m].sum())
        cmin = c.class_min.get(cls, 0.0)
        cmax = c.class_max.get(cls, 1.0)
        if cmin > cmax + TOL:
            raise InfeasibleStrategy(f"asset class {cls!r}: minimum {cmin:g} > maximum {cmax:g}")
        if cmin > cls_hi + TOL:
            if not m.any():
                raise InfeasibleStrategy(
                    f"asset class {cls!r}: minimum {cmin:g} but no asset of that class is held"
                )
            raise InfeasibleStrategy(
                f"asset class {cls!r}: minimum {cmin:g} exceeds the sum of its assets' "
                f"maximum weights {cls_hi:.6g}"
            )
        if cmax < cls_lo - TOL:
            raise InfeasibleStrategy(
                f"asset class {cls!r}: maximum {cmax:g} is below the sum of its assets' "
                f"minimum weights {cls_lo:.6g}"
            )
        need += max(cmin, cls_lo)
        room += min(cmax, cls_hi)
    free = np.array([x is None for x in c.classes], dtype=bool)
    need += float(c.lower[free].sum())
    room += float(c.upper[free].sum())
    if need > 1 + TOL:
        raise InfeasibleStrategy(
            f"asset-class minimums and weight bounds require at least {need:.6g} in total > 1"
        )
    if room < 1 - TOL:
        raise InfeasibleStrategy(
            f"asset-class maximums and weight bounds allow at most {room:.6g} in total < 1"
        )


def violations(w: FloatArray, c: Constraints, tol: float = 1e-7) -> list[str]:
    """Human-readable list of the constraints ``w`` breaks (empty when none)."""
    out: list[str] = []
    if abs(float(w.sum()) - 1) > tol:
        out.append(f"weights sum to {float(w.sum()):.10g}")
    for i, sym in enumerate(c.symbols):
        if w[i] < c.lower[i] - tol or w[i] > c.upper[i] + tol:
            out.append(f"{sym} weight {w[i]:.6g} outside [{c.lower[i]:g}, {c.upper[i]:g}]")
    for cls, v in c.class_min.items():
        tot = float(w[c.members(cls)].sum())
        if tot < v - tol:
            out.append(f"class {cls} total {tot:.6g} < minimum {v:g}")
    for cls, v in c.class_max.items():
        tot = float(w[c.members(cls)].sum())
        if tot > v + tol:
            out.append(f"class {cls} total {tot:.6g} > maximum {v:g}")
    return out


def cvxpy_constraints(w: Any, c: Constraints) -> list[Any]:
    cons: list[Any] = [cp.sum(w) == 1, w >= c.lower, w <= c.upper]
    for cls, v in c.class_min.items():
        m = c.members(cls)
        if m.any():
            cons.append(cp.sum(w[np.flatnonzero(m)]) >= v)
    for cls, v in c.class_max.items():
        m = c.members(cls)
        if m.any():
            cons.append(cp.sum(w[np.flatnonzero(m)]) <= v)
    return cons


def _solve(problem: Any, what: str) -> None:
    try:
        problem.solve(solver=SOLVER)
    except cp.error.SolverError as exc:  # pragma: no cover - solver-specific
        raise InfeasibleStrategy(f"{what}: the solver failed ({exc})") from exc
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise InfeasibleStrategy(f"{what}: no solution under the constraints ({problem.status})")


def project(w0: FloatArray, c: Constraints) -> FloatArray:
    """The weights nearest to ``w0`` (least squares) that satisfy ``c``.

    Returns ``w0`` itself when it already satisfies every constraint.
    """
    if not violations(w0, c, tol=1e-10):
        return w0
    w = cp.Variable(len(c.symbols))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(w - w0)), cvxpy_constraints(w, c))
    _solve(problem, "moving the weights within bounds and class limits")
    out = np.asarray(w.value, dtype=np.float64)
    return np.clip(out, c.lower, c.upper)


def max_return(mu: FloatArray, c: Constraints) -> float:
    """The highest expected return any weights satisfying ``c`` reach (an LP)."""
    w = cp.Variable(len(c.symbols))
    problem = cp.Problem(cp.Maximize(mu @ w), cvxpy_constraints(w, c))
    _solve(problem, "maximum achievable return")
    return float(problem.value)


def min_volatility(cov: FloatArray, c: Constraints) -> tuple[float, FloatArray]:
    """The lowest volatility any weights satisfying ``c`` reach, and those weights."""
    w = cp.Variable(len(c.symbols))
    sym = (cov + cov.T) / 2
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(sym))), cvxpy_constraints(w, c))
    _solve(problem, "minimum achievable volatility")
    weights = np.asarray(w.value, dtype=np.float64)
    return float(np.sqrt(max(float(weights @ sym @ weights), 0.0))), weights
