"""Builders of small books for the rebalancing engine tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from portfolios.engine.rebalance import BookState

AS_OF = 739000  # a day ordinal (2024-04-...)


def book(
    prices: Sequence[float],
    holdings: Sequence[Sequence[float]],
    cash: Sequence[float],
    targets: Sequence[Sequence[float]],
    *,
    target_index: Sequence[int] | None = None,
    step: Sequence[float] | float = 1e-6,
    cash_flow: Sequence[float] | None = None,
    force: Sequence[bool] | None = None,
    taxable: Sequence[bool] | None = None,
    household: Sequence[int] | None = None,
    lots: Sequence[tuple[int, int, float, float, int]] = (),  # (p, a, qty, unit cost, days held)
    recent_loss_sale: Sequence[tuple[int, int]] = (),
    recent_purchase: Sequence[tuple[int, int]] = (),
    as_of: int = AS_OF,
) -> BookState:
    h = np.asarray(holdings, dtype=np.float64)
    n_p, n_a = h.shape
    steps = np.broadcast_to(np.asarray(step, dtype=np.float64), (n_a,)).copy()
    loss = np.zeros((n_p, n_a), dtype=bool)
    for p, a in recent_loss_sale:
        loss[p, a] = True
    bought = np.zeros((n_p, n_a), dtype=bool)
    for p, a in recent_purchase:
        bought[p, a] = True
    lot = np.asarray(lots, dtype=np.float64).reshape(-1, 5)
    return BookState(
        prices=np.asarray(prices, dtype=np.float64),
        quantity_step=steps,
        holdings=h,
        cash=np.asarray(cash, dtype=np.float64),
        cash_flow=np.asarray(cash_flow if cash_flow is not None else [0.0] * n_p, np.float64),
        target_index=np.asarray(target_index if target_index is not None else [0] * n_p, np.int64),
        targets=np.asarray(targets, dtype=np.float64),
        force=np.asarray(force if force is not None else [False] * n_p, dtype=bool),
        taxable=np.asarray(taxable if taxable is not None else [False] * n_p, dtype=bool),
        household=np.asarray(household if household is not None else range(n_p), np.int64),
        lot_portfolio=lot[:, 0].astype(np.int64),
        lot_asset=lot[:, 1].astype(np.int64),
        lot_quantity=lot[:, 2].copy(),
        lot_unit_cost=lot[:, 3].copy(),
        lot_acquired=(as_of - lot[:, 4]).astype(np.int64),
        as_of=as_of,
        recent_loss_sale=loss,
        recent_purchase=bought,
    )


def orders(proposal, *, status: int | None = None) -> list[tuple[int, int, int, float, int]]:
    """(portfolio, asset, side, quantity, reason) rows, optionally of one status."""
    rows = []
    for r in proposal.orders_as_dicts():
        if status is None or r["order_status"] == status:
            rows.append(
                (
                    r["order_portfolio"],
                    r["order_asset"],
                    r["order_side"],
                    round(r["order_quantity"], 9),
                    r["order_reason"],
                )
            )
    return rows
