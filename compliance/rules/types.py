"""Plain types of the pre-trade rule engine: rules, the chunk's book and its orders.

No Django here (see DESIGN.md): numpy arrays and frozen dataclasses in and out.
The Django batch path builds a :class:`Book` and :class:`Orders` for a chunk of
portfolios and hands them, with the firm's rules, to
:func:`compliance.rules.engine.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class Severity(IntEnum):
    """What a failed rule does: HARD blocks the order, SOFT needs a second approver."""

    HARD = 2
    SOFT = 1


class Outcome(IntEnum):
    """The outcome of one rule for one order (stored as int8)."""

    PASS = 0
    SOFT_FAIL = 1
    HARD_FAIL = 2
    NOT_APPLICABLE = 3


class RuleError(ValueError):
    """Base class of the rule engine's errors on bad input."""


class RuleParamError(RuleError):
    """A rule parameter is missing, unknown, out of range or contradicts another.

    ``param`` names the parameter at fault (``"kind"`` for an unknown rule kind),
    so a form can attach the message to its field.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


class RuleInputError(RuleError):
    """The book or the orders handed to ``evaluate`` are malformed; ``field`` names the array."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Rule:
    """One stored rule version, as the engine sees it.

    ``strategy_ids`` / ``client_ids`` limit the rule to portfolios following one of
    those strategies / belonging to one of those clients (empty = all; both given =
    both must match). Out of scope the outcome is ``NOT_APPLICABLE``.
    """

    id: int  # the stored rule version's id; carried into results
    kind: str  # one of RULE_KINDS
    severity: Severity
    params: Mapping[str, Any]
    strategy_ids: frozenset[int] = frozenset()  # empty = all
    client_ids: frozenset[int] = frozenset()  # empty = all


@dataclass(frozen=True)
class Book:
    """The chunk's P portfolios over A assets, before trading.

    The post-trade state is computed by the engine from this and the orders.
    Codes: ``-1`` means "none / unknown" in every int64 code array.
    """

    asset_class: IntArray  # (A,) int64 code into class_names
    class_names: tuple[str, ...]
    sector: IntArray  # (A,) int64 code into sector_names (-1 = none)
    sector_names: tuple[str, ...]
    symbols: tuple[str, ...]  # (A,)
    prices: FloatArray  # (A,)
    holdings: FloatArray  # (P, A) quantities before trading
    cash: FloatArray  # (P,) before trading
    cash_flow: FloatArray  # (P,) pending (deposit > 0, withdrawal < 0; leaves after trading)
    portfolio_client: IntArray  # (P,) int64 client id
    portfolio_household: IntArray  # (P,) int64 household id
    portfolio_strategy: IntArray  # (P,) int64 strategy id (-1 none)
    strategy_risk_level: IntArray  # (P,) risk level of the portfolio's strategy (1..10, -1)
    profile_band_low: IntArray  # (P,) client's risk profile band (-1 = no profile)
    profile_band_high: IntArray  # (P,)
    profile_risk_level: IntArray  # (P,) (-1 = none)
    profile_expires: IntArray  # (P,) day ordinal of profile expiry (-1 = no profile)
    open_flags: IntArray  # (P,) unresolved questionnaire flags of the client
    kyc_complete: BoolArray  # (P,)
    client_restricted: BoolArray  # (P, A) assets restricted for this portfolio's client
    recent_loss_sale: BoolArray  # (P, A) sold at a loss within the window in the household
    recent_purchase: BoolArray  # (P, A) bought within the window in the household
    # (P, A) value held by the rest of the household (other portfolios); None = nothing
    household_holdings_value: FloatArray | None = None
    as_of: int = 0  # day ordinal


@dataclass(frozen=True)
class Orders:
    """N proposed orders of the chunk (one row per order)."""

    portfolio: IntArray  # (N,) index into the Book's portfolios
    asset: IntArray  # (N,) index into the Book's assets
    side: NDArray[np.int8]  # (N,) +1 buy / -1 sell
    quantity: FloatArray  # (N,) > 0
    value: FloatArray  # (N,) > 0 (quantity * price)
    cost: FloatArray  # (N,) estimated cost (commission, spread), reduces cash
    realised_loss: BoolArray  # (N,) a sell that realises a loss


@dataclass(frozen=True)
class Failure:
    """One failed rule for one order, in plain English."""

    rule_id: int
    kind: str
    outcome: Outcome
    measured: float
    limit: float
    message: str
