"""Feasibility is decided before any solver runs: the checks agree with an LP."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.engine.optimise.constraints import (
    build_constraints,
    check_feasible,
    cvxpy_constraints,
    project,
    violations,
)
from portfolios.engine.types import InfeasibleStrategy

SYMBOLS = ("A", "B", "C", "D", "E", "F")
CLASSES = ("x", "y", "z")

limit = st.floats(min_value=0.0, max_value=1.0).map(lambda v: round(v, 2))


@st.composite
def constraint_sets(draw):
    n = draw(st.integers(2, len(SYMBOLS)))
    symbols = SYMBOLS[:n]
    bounds = {}
    for s in symbols:
        if draw(st.booleans()):
            lo, hi = sorted((draw(limit), draw(limit)))
            bounds[s] = (lo, hi)
    classes = {s: draw(st.sampled_from((*CLASSES, None))) for s in symbols}
    classes = {s: c for s, c in classes.items() if c is not None}
    cmin = {c: draw(limit) * 0.6 for c in CLASSES if draw(st.booleans())}
    cmax = {c: draw(limit) for c in CLASSES if draw(st.booleans())}
    glo, ghi = sorted((draw(limit) * 0.5, draw(limit)))
    return build_constraints(
        symbols,
        weight_bounds=(glo, ghi),
        asset_bounds=bounds,
        asset_classes=classes,
        class_min=cmin,
        class_max=cmax,
    )


def lp_feasible(c) -> bool:
    for cls, v in c.class_min.items():  # a minimum on a class nobody belongs to
        if v > 0 and not c.members(cls).any():
            return False
    w = cp.Variable(len(c.symbols))
    prob = cp.Problem(cp.Minimize(0), cvxpy_constraints(w, c))
    prob.solve(solver="CLARABEL")
    return prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


@settings(max_examples=150, deadline=None)
@given(constraint_sets())
def test_feasibility_check_agrees_with_a_linear_programme(c):
    try:
        check_feasible(c)
        ours = True
    except InfeasibleStrategy:
        ours = False
    if ours:
        assert lp_feasible(c)
        # and the projection of equal weights lands inside every constraint
        w = project(np.full(len(c.symbols), 1 / len(c.symbols)), c)
        assert violations(w, c, tol=1e-6) == []
    else:
        # an infeasible verdict may only come from a real contradiction
        # (the LP agrees, allowing for our 1e-9 tolerance at the boundary)
        assert not lp_feasible(c) or _on_the_boundary(c)


def _on_the_boundary(c) -> bool:
    lo, hi = float(c.lower.sum()), float(c.upper.sum())
    return abs(lo - 1) < 1e-6 or abs(hi - 1) < 1e-6


def test_messages_name_the_constraint():
    c = build_constraints(
        ("A", "B"), asset_classes={"A": "x", "B": "y"}, class_max={"x": 0.3, "y": 0.3}
    )
    with pytest.raises(InfeasibleStrategy, match=r"allow at most 0\.6 in total"):
        check_feasible(c)
    c = build_constraints(("A", "B"), asset_classes={"A": "x"}, class_min={"x": 0.5, "z": 0.1})
    with pytest.raises(InfeasibleStrategy, match="'z'"):
        check_feasible(c)
