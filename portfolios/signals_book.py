"""Hooks fired by the portfolio-state services, for the code that reacts to them.

:data:`ON_CASH_FLOW` receives ``(firm_id, portfolio_id)`` after the transaction that
requested a deposit or withdrawal has committed (never before, never on rollback).
The rebalancing code registers the starter of a cash-flow rebalance here; a
registered callable must be quick (enqueue a task) and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable

ON_CASH_FLOW: list[Callable[[int, int], None]] = []


def cash_flow_requested(firm_id: int, portfolio_id: int) -> None:
    """Call every registered hook with the firm and the portfolio (in order)."""
    for hook in list(ON_CASH_FLOW):
        hook(firm_id, portfolio_id)
