"""The demo's market data: assets, approximate market caps and the fixture prices."""

from __future__ import annotations

from accounts.demo import Created
from portfolios.services_market import market_demo_seed


def market_seeder() -> Created:
    """A global seeder of :mod:`accounts.demo` (idempotent: fixtures imported once)."""
    counts = market_demo_seed()
    return Created({name: amount for name, amount in counts.items() if amount})
