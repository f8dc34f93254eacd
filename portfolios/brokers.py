"""Where approved orders go: a broker (custodian) adapter.

The execution service hands a batch of :class:`Ticket` to the firm's adapter and
books whatever :class:`Fill` comes back (holdings, lots, cash and ledger, in bulk).
The built-in :class:`SimulatedBroker` fills every ticket at once at the as-of price
moved against the trade by a slippage model.

Plugging in a real custodian (Schwab, Fidelity, Pershing, Alpaca, a crypto
exchange) means writing a class with the same ``submit`` method that:

1. sends the tickets (block orders per asset are the custodian's business; keep
   ``ticket.order_id`` as the client order id so a retry is recognised and never
   trades twice);
2. returns the fills it already has, and leaves the rest to a later
   ``fills_for`` poll or webhook, which calls the same booking service;
3. raises :class:`BrokerRejected` for tickets the custodian refused, with its reason,
   so they are recorded and the portfolio is left unchanged.

Select it with the ``PORTFOLIO_BROKER`` setting (a dotted path).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

CENT = Decimal("0.01")
PRICE_QUANTUM = Decimal("0.0000000001")


class BrokerRejected(Exception):
    def __init__(self, order_id: int, reason: str) -> None:
        super().__init__(f"order {order_id}: {reason}")
        self.order_id = order_id
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Ticket:
    order_id: int
    symbol: str
    side: str  # "buy" | "sell"
    quantity: Decimal
    reference_price: Decimal


@dataclasses.dataclass(frozen=True)
class Fill:
    order_id: int
    quantity: Decimal
    price: Decimal
    cost: Decimal  # commission and fees, in cash


class BrokerAdapter(Protocol):
    def submit(self, tickets: Sequence[Ticket]) -> list[Fill]: ...


@dataclasses.dataclass(frozen=True)
class SimulatedBroker:
    """Fills in full at the reference price moved against the trade by ``slippage_bps``,
    and charges ``commission_bps`` of the value plus ``commission_fixed`` per ticket."""

    slippage_bps: Decimal = Decimal("2")
    commission_bps: Decimal = Decimal("0")
    commission_fixed: Decimal = Decimal("0")

    def submit(self, tickets: Sequence[Ticket]) -> list[Fill]:
        fills = []
        for t in tickets:
            direction = 1 if t.side == "buy" else -1
            move = Decimal(1) + direction * self.slippage_bps / Decimal(10_000)
            price = (t.reference_price * move).quantize(PRICE_QUANTUM, ROUND_HALF_EVEN)
            value = t.quantity * price
            cost = (value * self.commission_bps / Decimal(10_000) + self.commission_fixed).quantize(
                CENT, ROUND_HALF_EVEN
            )
            fills.append(Fill(order_id=t.order_id, quantity=t.quantity, price=price, cost=cost))
        return fills


def broker_get() -> BrokerAdapter:
    path = getattr(settings, "PORTFOLIO_BROKER", "")
    if path:
        return import_string(path)()  # type: ignore[no-any-return]
    return SimulatedBroker()
