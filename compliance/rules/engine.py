"""Pre-trade evaluation of a chunk's orders against a rule set, vectorised (pure, no Django).

``evaluate(book, orders, rules)`` checks every order of the chunk against every
rule in one pass per rule: numpy over all orders and portfolios at once, no
Python loop over orders or portfolios. The post-trade state of each portfolio
(quantities, cash, NAV) is computed once from the book and *all* of the
portfolio's proposed orders, because a portfolio's orders execute together or
not at all:

* post-trade quantity = holdings + bought - sold;
* post-trade cash = cash + cash_flow + sells - buys - costs (a withdrawal,
  ``cash_flow < 0``, leaves after trading, so it is in the post-trade state);
* post-trade NAV = sum(post quantity x price) + post-trade cash.

Every (order, rule) cell gets an :class:`Outcome`, the value measured and the
limit it was held to (NaN where not applicable), and a small reason code that
``Evaluation.failures(i)`` turns into plain English. ``NOT_APPLICABLE`` means
the portfolio is outside the rule's scope, or the order is outside the rule's
subject (an asset of another class for a class rule, an asset without sector
for a sector rule, a non-crypto asset for the crypto rule). Orders a rule
checks and lets through (a sell of a restricted asset, a sell that reduces a
concentration) ``PASS``.

What each kind measures (``measured``) and holds it to (``limit``):

=========================  ============================================  =================
kind                       measured                                      limit
=========================  ============================================  =================
restricted_list            1 if the asset is restricted, else 0          0 (buys only)
concentration_asset        post-trade asset value / NAV (portfolio or    max_share
                           household)
concentration_class        post-trade class value / NAV                  max_share
concentration_sector       post-trade sector value / NAV                 max_share
cash_floor                 post-trade cash / NAV                         min_share
no_short_no_negative_cash  post-trade quantity of the asset (or the      0
                           post-trade cash where that is what fails)
risk_fit                   the strategy's risk level (NaN if unknown)    the band edge
                                                                         crossed (+-
                                                                         tolerance)
risk_profile_current       days until the profile expires (NaN: none)    warn_days
questionnaire_flags        open flags                                    max_open
kyc_complete               1 if complete, else 0                         1
wash_sale                  1 if a wash sale, else 0                      0
max_turnover               sum of order values / pre-trade NAV           max_share
min_trade_value            the order's value                             min_value
max_crypto_share           post-trade crypto value / NAV                 the client's
                                                                         level's share
=========================  ============================================  =================

``wash_sale``'s ``days`` is the window the caller used to fill the book's
``recent_loss_sale`` / ``recent_purchase`` (the engine has no trade history); it
is carried into the messages.

Shares are compared with a 1e-9 tolerance (a position exactly at its limit
passes); quantities with 1e-9 units; cash with 1e-9 of the portfolio's gross
money movement (below a cent for any realistic portfolio). Where NAV is zero or
negative a positive value's share is ``inf`` (and fails any share limit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from compliance.rules import params as k
from compliance.rules.params import rule_params_validate
from compliance.rules.types import (
    Book,
    BoolArray,
    Failure,
    FloatArray,
    IntArray,
    Orders,
    Outcome,
    Rule,
    RuleInputError,
    RuleParamError,
    Severity,
)

SHARE_TOLERANCE = 1e-9
QUANTITY_TOLERANCE = 1e-9
CASH_TOLERANCE = 1e-9  # relative to the portfolio's gross money movement (at least 1)
CRYPTO_CLASS = "crypto"

# Reason codes (stored beside outcomes; 0 = nothing particular).
R_FIRM_LIST, R_CLIENT_RESTRICTION = 1, 2
R_SHORT, R_NEGATIVE_CASH = 1, 2
R_UNKNOWN_LEVEL, R_NO_PROFILE, R_BELOW_BAND, R_ABOVE_BAND = 1, 2, 3, 4
R_PROFILE_MISSING, R_PROFILE_EXPIRED, R_PROFILE_EXPIRING = 1, 2, 3
R_WASH_RECENT_LOSS_SALE, R_WASH_RECENT_PURCHASE, R_WASH_IN_RUN = 1, 2, 3


@dataclass(frozen=True)
class _Check:
    fail: BoolArray  # (N,) the rule fails the order (only where applicable)
    measured: FloatArray  # (N,)
    limit: FloatArray | float  # (N,) or one limit for all orders
    applicable: BoolArray | None = None  # None = every order
    reason: NDArray[np.int8] | None = None


class _State:
    """Coerced inputs and the lazily computed post-trade state of the chunk."""

    def __init__(self, book: Book, orders: Orders) -> None:
        self.book = book
        self.symbols = book.symbols
        a = len(book.symbols)
        self.prices: FloatArray = _arr("book.prices", book.prices, np.float64, (a,))
        holdings: FloatArray = np.asarray(book.holdings, dtype=np.float64)
        if holdings.ndim != 2 or holdings.shape[1] != a:
            raise RuleInputError(
                "book.holdings", f"has shape {holdings.shape}; expected (P, A) with A={a}"
            )
        p = holdings.shape[0]
        self.P, self.A = p, a
        self.holdings: FloatArray = holdings
        _finite("book.holdings", holdings)
        _finite("book.prices", self.prices)
        if (self.prices < 0).any():
            raise RuleInputError("book.prices", "must be >= 0")
        self.asset_class = _codes("book.asset_class", book.asset_class, (a,), len(book.class_names))
        self.sector = _codes("book.sector", book.sector, (a,), len(book.sector_names), none_ok=True)
        self.cash: FloatArray = _finite("book.cash", _arr("book.cash", book.cash, np.float64, (p,)))
        self.cash_flow: FloatArray = _finite(
            "book.cash_flow", _arr("book.cash_flow", book.cash_flow, np.float64, (p,))
        )
        ints: dict[str, IntArray] = {
            name: _arr(f"book.{name}", getattr(book, name), np.int64, (p,))
            for name in (
                "portfolio_client",
                "portfolio_household",
                "portfolio_strategy",
                "strategy_risk_level",
                "profile_band_low",
                "profile_band_high",
                "profile_risk_level",
                "profile_expires",
                "open_flags",
            )
        }
        self.client = ints["portfolio_client"]
        self.household = ints["portfolio_household"]
        self.strategy = ints["portfolio_strategy"]
        self.strategy_risk_level = ints["strategy_risk_level"]
        self.band_low = ints["profile_band_low"]
        self.band_high = ints["profile_band_high"]
        self.profile_risk_level = ints["profile_risk_level"]
        self.profile_expires = ints["profile_expires"]
        self.open_flags = ints["open_flags"]
        self.kyc: BoolArray = _arr("book.kyc_complete", book.kyc_complete, np.bool_, (p,))
        self.client_restricted: BoolArray = _arr(
            "book.client_restricted", book.client_restricted, np.bool_, (p, a)
        )
        self.recent_loss_sale: BoolArray = _arr(
            "book.recent_loss_sale", book.recent_loss_sale, np.bool_, (p, a)
        )
        self.recent_purchase: BoolArray = _arr(
            "book.recent_purchase", book.recent_purchase, np.bool_, (p, a)
        )
        self.household_value: FloatArray | None = None
        if book.household_holdings_value is not None:
            self.household_value = _finite(
                "book.household_holdings_value",
                _arr(
                    "book.household_holdings_value",
                    book.household_holdings_value,
                    np.float64,
                    (p, a),
                ),
            )
        self.as_of = int(book.as_of)

        op = np.asarray(orders.portfolio)
        n = op.shape[0] if op.ndim == 1 else -1
        if n < 0:
            raise RuleInputError("orders.portfolio", f"must be one-dimensional, got {op.shape}")
        self.N = n
        self.op = _codes("orders.portfolio", op, (n,), p)
        self.oa = _codes("orders.asset", orders.asset, (n,), a)
        side = _arr("orders.side", orders.side, np.int8, (n,))
        if not np.isin(side, (-1, 1)).all():
            raise RuleInputError("orders.side", "must be +1 (buy) or -1 (sell)")
        self.side: NDArray[np.int8] = side
        self.quantity: FloatArray = _finite(
            "orders.quantity", _arr("orders.quantity", orders.quantity, np.float64, (n,))
        )
        if (self.quantity <= 0).any():
            raise RuleInputError("orders.quantity", "must be > 0")
        self.value: FloatArray = _finite(
            "orders.value", _arr("orders.value", orders.value, np.float64, (n,))
        )
        if (self.value < 0).any():
            raise RuleInputError("orders.value", "must be >= 0")
        self.cost: FloatArray = _finite(
            "orders.cost", _arr("orders.cost", orders.cost, np.float64, (n,))
        )
        self.realised_loss: BoolArray = _arr(
            "orders.realised_loss", orders.realised_loss, np.bool_, (n,)
        )
        self.is_buy: BoolArray = side > 0
        self.is_sell: BoolArray = ~self.is_buy

    # --- the post-trade state -------------------------------------------------
    @cached_property
    def flat(self) -> IntArray:
        """(N,) index of each order's (portfolio, asset) cell in a flattened (P, A) array."""
        return self.op * self.A + self.oa

    @cached_property
    def delta_qty(self) -> FloatArray:
        signed = np.where(self.is_buy, self.quantity, -self.quantity)
        out = _bincount(self.flat, weights=signed, minlength=self.P * self.A)
        return out.reshape(self.P, self.A)

    @cached_property
    def post_qty(self) -> FloatArray:
        return self.holdings + self.delta_qty

    @cached_property
    def post_qty_order(self) -> FloatArray:
        return self.post_qty.reshape(-1)[self.flat]

    @cached_property
    def post_value(self) -> FloatArray:
        return self.post_qty * self.prices

    @cached_property
    def post_cash(self) -> FloatArray:
        signed = np.where(self.is_buy, -self.value, self.value) - self.cost
        return self.cash + self.cash_flow + _bincount(self.op, weights=signed, minlength=self.P)

    @cached_property
    def cash_tolerance(self) -> FloatArray:
        gross = _bincount(self.op, weights=self.value + np.abs(self.cost), minlength=self.P)
        scale = np.abs(self.cash) + np.abs(self.cash_flow) + gross
        return CASH_TOLERANCE * np.maximum(scale, 1.0)

    @cached_property
    def post_nav(self) -> FloatArray:
        return cast(FloatArray, self.post_value.sum(axis=1)) + self.post_cash

    @cached_property
    def pre_nav(self) -> FloatArray:
        return self.holdings @ self.prices + self.cash

    @cached_property
    def household_total(self) -> FloatArray:
        if self.household_value is None:
            return np.zeros(self.P)
        return cast(FloatArray, self.household_value.sum(axis=1))

    @cached_property
    def household_index(self) -> IntArray:
        """(P,) dense household index; a portfolio without household (-1) is its own."""
        key = np.where(self.household >= 0, self.household, -1 - np.arange(self.P))
        return np.unique(key, return_inverse=True)[1].astype(np.int64)

    def group_value(self, onehot: FloatArray, household: bool) -> FloatArray:
        """(P, G) post-trade value per group (class, sector), with the household's if asked."""
        out = self.post_value @ onehot
        if household and self.household_value is not None:
            out = out + self.household_value @ onehot
        return out


# --- input coercion -------------------------------------------------------------


def _arr(name: str, value: Any, dtype: Any, shape: tuple[int, ...]) -> NDArray[Any]:
    if value is None:
        raise RuleInputError(name, "is missing")
    try:
        out = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise RuleInputError(name, f"cannot be read as {np.dtype(dtype).name}: {exc}") from None
    if out.shape != shape:
        raise RuleInputError(name, f"has shape {out.shape}; expected {shape}")
    return out


def _finite(name: str, value: NDArray[Any]) -> NDArray[Any]:
    if not np.isfinite(value).all():
        raise RuleInputError(name, "contains NaN or infinite values")
    return value


def _codes(
    name: str, value: Any, shape: tuple[int, ...], size: int, *, none_ok: bool = False
) -> IntArray:
    out: IntArray = _arr(name, value, np.int64, shape)
    low = -1 if none_ok else 0
    if out.size and (out.min() < low or out.max() >= size):
        raise RuleInputError(name, f"codes must lie in [{low}, {size - 1}]")
    return out


def _bincount(index: IntArray, weights: NDArray[Any], minlength: int) -> FloatArray:
    """Weighted bincount (always float64)."""
    return cast(FloatArray, np.bincount(index, weights=weights, minlength=minlength))


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den where den > 0; +-inf (or 0 for 0) where the denominator is not positive."""
    fallback = np.where(num > 0, np.inf, np.where(num < 0, -np.inf, 0.0))
    return np.divide(num, den, out=fallback, where=den > 0)


# --- the checks, one per rule kind ----------------------------------------------


def _restricted_list(s: _State, p: Mapping[str, Any]) -> _Check:
    listed = set(p["symbols"])
    firm_mask = np.fromiter((sym.upper() in listed for sym in s.symbols), bool, s.A)
    firm_hit = firm_mask[s.oa]
    client_hit = (
        s.client_restricted[s.op, s.oa] if p["use_client_restrictions"] else np.zeros(s.N, bool)
    )
    hit = firm_hit | client_hit
    reason = np.where(firm_hit, R_FIRM_LIST, np.where(client_hit, R_CLIENT_RESTRICTION, 0))
    return _Check(hit & s.is_buy, hit.astype(np.float64), 0.0, reason=reason.astype(np.int8))


def _onehot(codes: IntArray, n_groups: int) -> FloatArray:
    out = np.zeros((codes.shape[0], n_groups))
    valid = codes >= 0
    out[np.flatnonzero(valid), codes[valid]] = 1.0
    return out


def _concentration_check(
    s: _State, share: FloatArray, max_share: float, applicable: BoolArray | None
) -> _Check:
    breach = share > max_share + SHARE_TOLERANCE
    return _Check(breach & s.is_buy, share, max_share, applicable)


def _concentration_asset(s: _State, p: Mapping[str, Any]) -> _Check:
    value = s.post_qty_order * s.prices[s.oa]
    nav = s.post_nav[s.op]
    if p["level"] == "household" and s.household_value is not None:
        value = value + s.household_value[s.op, s.oa]
        nav = nav + s.household_total[s.op]
    return _concentration_check(s, _ratio(value, nav), p["max_share"], None)


def _group_share(
    s: _State, codes: IntArray, n_groups: int, household: bool
) -> tuple[FloatArray, BoolArray]:
    """(N,) post-trade share of each order's group (class/sector) and where the order has one."""
    if n_groups == 0:
        return np.full(s.N, np.nan), np.zeros(s.N, bool)
    onehot = _onehot(codes, n_groups)
    value = s.group_value(onehot, household)  # (P, G)
    nav = s.post_nav + (s.household_total if household else 0.0)
    group = codes[s.oa]
    has = group >= 0
    order_value = value[s.op, np.maximum(group, 0)]
    return np.where(has, _ratio(order_value, nav[s.op]), np.nan), has


def _concentration_class(s: _State, p: Mapping[str, Any]) -> _Check:
    codes = s.asset_class
    if p["asset_class"] is not None:
        names = [n.casefold() for n in s.book.class_names]
        wanted = p["asset_class"].casefold()
        code = names.index(wanted) if wanted in names else -2
        codes = np.where(codes == code, codes, -1)
    household = p["level"] == "household"
    share, has = _group_share(s, codes, len(s.book.class_names), household)
    return _concentration_check(s, share, p["max_share"], has)


def _concentration_sector(s: _State, p: Mapping[str, Any]) -> _Check:
    household = p["level"] == "household"
    share, has = _group_share(s, s.sector, len(s.book.sector_names), household)
    return _concentration_check(s, share, p["max_share"], has)


def _cash_floor(s: _State, p: Mapping[str, Any]) -> _Check:
    share = _ratio(s.post_cash, s.post_nav)[s.op]
    return _Check(share < p["min_share"] - SHARE_TOLERANCE, share, p["min_share"])


def _no_short_no_negative_cash(s: _State, p: Mapping[str, Any]) -> _Check:
    short = s.post_qty_order < -QUANTITY_TOLERANCE
    cash = s.post_cash[s.op]
    negative_cash = (s.post_cash < -s.cash_tolerance)[s.op]
    reason = np.where(short, R_SHORT, np.where(negative_cash, R_NEGATIVE_CASH, 0)).astype(np.int8)
    measured = np.where(reason == R_NEGATIVE_CASH, cash, s.post_qty_order)
    return _Check(short | negative_cash, measured, 0.0, reason=reason)


def _risk_fit(s: _State, p: Mapping[str, Any]) -> _Check:
    tol = p["tolerance"]
    level = s.strategy_risk_level[s.op]
    no_profile = (s.band_low[s.op] < 0) | (s.band_high[s.op] < 0)
    low = s.band_low[s.op] - tol
    high = s.band_high[s.op] + tol
    unknown = level < 0
    below = ~unknown & ~no_profile & (level < low)
    above = ~unknown & ~no_profile & (level > high)
    reason = np.select(
        [unknown, no_profile, below, above],
        [R_UNKNOWN_LEVEL, R_NO_PROFILE, R_BELOW_BAND, R_ABOVE_BAND],
        0,
    ).astype(np.int8)
    limit = np.where(no_profile, np.nan, np.where(level < low, low, high)).astype(np.float64)
    measured = np.where(unknown, np.nan, level).astype(np.float64)
    return _Check((reason > 0) & s.is_buy, measured, limit, reason=reason)


def _risk_profile_current(s: _State, p: Mapping[str, Any]) -> _Check:
    expires = s.profile_expires[s.op]
    missing = expires < 0
    days_left = (expires - s.as_of).astype(np.float64)
    expired = ~missing & (days_left < 0)
    expiring = ~missing & ~expired & (days_left < p["warn_days"])
    reason = np.select(
        [missing, expired, expiring], [R_PROFILE_MISSING, R_PROFILE_EXPIRED, R_PROFILE_EXPIRING], 0
    ).astype(np.int8)
    measured = np.where(missing, np.nan, days_left)
    return _Check((reason > 0) & s.is_buy, measured, float(p["warn_days"]), reason=reason)


def _questionnaire_flags(s: _State, p: Mapping[str, Any]) -> _Check:
    flags = s.open_flags[s.op]
    return _Check((flags > p["max_open"]) & s.is_buy, flags.astype(np.float64), p["max_open"])


def _kyc_complete(s: _State, p: Mapping[str, Any]) -> _Check:
    ok = s.kyc[s.op]
    return _Check(~ok, ok.astype(np.float64), 1.0)


def _wash_sale(s: _State, p: Mapping[str, Any]) -> _Check:
    loss_sell = s.is_sell & s.realised_loss
    buy_after_loss = s.is_buy & s.recent_loss_sale[s.op, s.oa]
    sell_after_buy = loss_sell & s.recent_purchase[s.op, s.oa]
    # in-run: a buy of an asset another order of the same household sells at a loss
    n_households = int(s.household_index.max()) + 1 if s.P else 0
    key = s.household_index[s.op] * s.A + s.oa
    sold_at_loss = np.zeros(n_households * s.A, bool)
    sold_at_loss[key[loss_sell]] = True
    in_run = s.is_buy & sold_at_loss[key]
    reason = np.select(
        [buy_after_loss, sell_after_buy, in_run],
        [R_WASH_RECENT_LOSS_SALE, R_WASH_RECENT_PURCHASE, R_WASH_IN_RUN],
        0,
    ).astype(np.int8)
    fail = reason > 0
    return _Check(fail, fail.astype(np.float64), 0.0, reason=reason)


def _max_turnover(s: _State, p: Mapping[str, Any]) -> _Check:
    traded = _bincount(s.op, weights=s.value, minlength=s.P)
    turnover = _ratio(traded, s.pre_nav)[s.op]
    return _Check(turnover > p["max_share"] + SHARE_TOLERANCE, turnover, p["max_share"])


def _min_trade_value(s: _State, p: Mapping[str, Any]) -> _Check:
    low = p["min_value"]
    return _Check(s.value < low * (1 - SHARE_TOLERANCE), s.value, low)


def crypto_limit_table(by_risk_level: Mapping[int, float]) -> FloatArray:
    """(11,) limit per profile risk level 0..10: the nearest lower listed level's, 0 below all."""
    table = np.zeros(11)
    current = 0.0
    for level in range(1, 11):
        current = by_risk_level.get(level, current)
        table[level] = current
    return table


def _max_crypto_share(s: _State, p: Mapping[str, Any]) -> _Check:
    names = [n.casefold() for n in s.book.class_names]
    is_crypto = (
        s.asset_class == names.index(CRYPTO_CLASS) if CRYPTO_CLASS in names else np.zeros(s.A, bool)
    )
    crypto_value = s.post_value[:, is_crypto].sum(axis=1)
    share = _ratio(crypto_value, s.post_nav)[s.op]
    level = s.profile_risk_level[s.op]
    table = crypto_limit_table(p["by_risk_level"])
    limit = np.where((level >= 1) & (level <= 10), table[np.clip(level, 0, 10)], 0.0)
    applicable = is_crypto[s.oa]
    fail = s.is_buy & (share > limit + SHARE_TOLERANCE)
    return _Check(fail, share, limit, applicable)


_CHECKS: dict[str, Callable[[_State, Mapping[str, Any]], _Check]] = {
    k.RESTRICTED_LIST: _restricted_list,
    k.CONCENTRATION_ASSET: _concentration_asset,
    k.CONCENTRATION_CLASS: _concentration_class,
    k.CONCENTRATION_SECTOR: _concentration_sector,
    k.CASH_FLOOR: _cash_floor,
    k.NO_SHORT_NO_NEGATIVE_CASH: _no_short_no_negative_cash,
    k.RISK_FIT: _risk_fit,
    k.RISK_PROFILE_CURRENT: _risk_profile_current,
    k.QUESTIONNAIRE_FLAGS: _questionnaire_flags,
    k.KYC_COMPLETE: _kyc_complete,
    k.WASH_SALE: _wash_sale,
    k.MAX_TURNOVER: _max_turnover,
    k.MIN_TRADE_VALUE: _min_trade_value,
    k.MAX_CRYPTO_SHARE: _max_crypto_share,
}
assert set(_CHECKS) == set(k.RULE_KINDS)


# --- the result -------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """Outcomes of N orders against R rules (columns in the order of ``rules``).

    ``outcomes``/``reasons`` (N, R) int8, ``measured``/``limit`` (N, R) float64 (NaN
    where not applicable), ``order_outcome`` (N,) int8 worst over the rules,
    ``portfolio_outcome`` (P,) int8 worst over the portfolio's orders (a portfolio
    without orders passes). Store ``outcomes[i]`` as is (``outcomes_packed(i)``:
    R bytes; ``outcomes_unpack`` reads it back).
    """

    rule_ids: tuple[int, ...]
    outcomes: NDArray[np.int8]
    measured: FloatArray
    limit: FloatArray
    reasons: NDArray[np.int8]
    order_outcome: NDArray[np.int8]
    portfolio_outcome: NDArray[np.int8]
    rules: tuple[Rule, ...] = field(repr=False)
    rule_params: tuple[Mapping[str, Any], ...] = field(repr=False)
    book: Book = field(repr=False, compare=False)
    orders: Orders = field(repr=False, compare=False)

    def failures(self, i: int) -> list[Failure]:
        """The rules order ``i`` fails (soft and hard), each with a plain-English message."""
        row = self.outcomes[i]
        out = []
        for j in np.flatnonzero((row == Outcome.SOFT_FAIL) | (row == Outcome.HARD_FAIL)):
            rule = self.rules[j]
            measured = float(self.measured[i, j])
            limit = float(self.limit[i, j])
            out.append(
                Failure(
                    rule_id=rule.id,
                    kind=rule.kind,
                    outcome=Outcome(int(row[j])),
                    measured=measured,
                    limit=limit,
                    message=_message(self, i, int(j), measured, limit),
                )
            )
        return out

    def outcomes_packed(self, i: int) -> bytes:
        """Order ``i``'s outcomes as R bytes (one int8 per rule, in ``rule_ids`` order)."""
        return bytes(self.outcomes[i].tobytes())

    def summary(self) -> dict[int, dict[str, int]]:
        """Per rule id: how many orders passed, soft/hard failed, were not applicable."""
        counts = np.stack([(self.outcomes == o).sum(axis=0) for o in Outcome])
        return {
            rid: {o.name: int(counts[o.value, j]) for o in Outcome}
            for j, rid in enumerate(self.rule_ids)
        }


def outcomes_unpack(data: bytes) -> NDArray[np.int8]:
    """Inverse of ``Evaluation.outcomes_packed``."""
    return np.frombuffer(data, dtype=np.int8).copy()


def _normalise_rule(rule: Rule) -> tuple[Rule, dict[str, Any]]:
    try:
        params = rule_params_validate(rule.kind, rule.params)
    except RuleParamError as exc:
        raise RuleParamError(exc.param, f"{exc.message} (rule id {rule.id})") from None
    try:
        severity = Severity(rule.severity)
    except ValueError:
        raise RuleParamError(
            "severity", f"must be HARD (2) or SOFT (1), got {rule.severity!r} (rule id {rule.id})"
        ) from None
    return rule, params | {"_severity": severity}


def _scope(s: _State, rule: Rule) -> BoolArray | None:
    """(P,) portfolios in the rule's scope, or None for all."""
    if not rule.strategy_ids and not rule.client_ids:
        return None
    ok = np.ones(s.P, bool)
    if rule.strategy_ids:
        ok &= np.isin(s.strategy, np.fromiter(rule.strategy_ids, np.int64))
    if rule.client_ids:
        ok &= np.isin(s.client, np.fromiter(rule.client_ids, np.int64))
    return ok


def evaluate(book: Book, orders: Orders, rules: Sequence[Rule]) -> Evaluation:
    """Check every order of the chunk against every rule; see the module docstring."""
    normalised = [_normalise_rule(r) for r in rules]
    s = _State(book, orders)
    n, r = s.N, len(normalised)
    outcomes = np.full((n, r), Outcome.NOT_APPLICABLE, dtype=np.int8)
    measured = np.full((n, r), np.nan)
    limit = np.full((n, r), np.nan)
    reasons = np.zeros((n, r), dtype=np.int8)
    for j, (rule, params) in enumerate(normalised):
        check = _CHECKS[rule.kind](s, params)
        applicable = check.applicable
        scope = _scope(s, rule)
        if scope is not None:
            in_scope = scope[s.op]
            applicable = in_scope if applicable is None else applicable & in_scope
        fail_code = np.int8(params["_severity"])
        col = np.where(check.fail, fail_code, np.int8(Outcome.PASS))
        if applicable is None:
            outcomes[:, j] = col
            measured[:, j] = check.measured
            limit[:, j] = check.limit
            if check.reason is not None:
                reasons[:, j] = check.reason
        else:
            outcomes[:, j] = np.where(applicable, col, np.int8(Outcome.NOT_APPLICABLE))
            measured[:, j] = np.where(applicable, check.measured, np.nan)
            limit[:, j] = np.where(applicable, check.limit, np.nan)
            if check.reason is not None:
                reasons[:, j] = np.where(applicable, check.reason, 0)
    if r:
        order_outcome = np.where(outcomes == Outcome.NOT_APPLICABLE, 0, outcomes).max(axis=1)
    else:
        order_outcome = np.zeros(n, dtype=np.int8)
    order_outcome = order_outcome.astype(np.int8)
    hard = _bincount(s.op, weights=order_outcome == Outcome.HARD_FAIL, minlength=s.P) > 0
    soft = _bincount(s.op, weights=order_outcome == Outcome.SOFT_FAIL, minlength=s.P) > 0
    portfolio_outcome = np.where(
        hard, Outcome.HARD_FAIL, np.where(soft, Outcome.SOFT_FAIL, Outcome.PASS)
    ).astype(np.int8)
    return Evaluation(
        rule_ids=tuple(rule.id for rule, _ in normalised),
        outcomes=outcomes,
        measured=measured,
        limit=limit,
        reasons=reasons,
        order_outcome=order_outcome,
        portfolio_outcome=portfolio_outcome,
        rules=tuple(rule for rule, _ in normalised),
        rule_params=tuple(params for _, params in normalised),
        book=book,
        orders=orders,
    )


# --- messages -----------------------------------------------------------------------


def _pct_pair(measured: float, limit: float) -> tuple[str, str]:
    """Both shares as percentages, with enough decimals to tell them apart."""
    if not np.isfinite(measured):
        return ("more than 100%" if measured > 0 else "less than 0%"), f"{limit:.1%}"
    for digits in (1, 2, 3, 4):
        a, b = f"{measured:.{digits}%}", f"{limit:.{digits}%}"
        if a != b:
            return a, b
    return a, b


def _message(ev: Evaluation, i: int, j: int, measured: float, limit: float) -> str:
    rule = ev.rules[j]
    params = ev.rule_params[j]
    reason = int(ev.reasons[i, j])
    book = ev.book
    p = int(ev.orders.portfolio[i])
    asset = int(ev.orders.asset[i])
    symbol = book.symbols[asset]
    m, lim = _pct_pair(measured, limit)
    kind = rule.kind
    where = "household" if params.get("level") == "household" else "portfolio"
    if kind == k.RESTRICTED_LIST:
        whose = (
            "on the firm's restricted list"
            if reason == R_FIRM_LIST
            else "restricted for this client"
        )
        return f"{symbol} is {whose}; buying it is not allowed"
    if kind == k.CONCENTRATION_ASSET:
        return f"{symbol} would be {m} of the {where}; the limit is {lim}"
    if kind == k.CONCENTRATION_CLASS:
        name = book.class_names[int(book.asset_class[asset])]
        return f"The {name} class would be {m} of the {where}; the limit is {lim}"
    if kind == k.CONCENTRATION_SECTOR:
        name = book.sector_names[int(book.sector[asset])]
        return f"The {name} sector would be {m} of the {where}; the limit is {lim}"
    if kind == k.CASH_FLOOR:
        return f"Cash would be {m} of the portfolio after trading; the floor is {lim}"
    if kind == k.NO_SHORT_NO_NEGATIVE_CASH:
        if reason == R_SHORT:
            return (
                f"{symbol} would be short by {-measured:,.6g} units after trading; "
                "short positions are not allowed"
            )
        return f"Cash would be {measured:,.2f} after trading; it may not go negative"
    if kind == k.RISK_FIT:
        level = int(book.strategy_risk_level[p])
        if reason == R_UNKNOWN_LEVEL:
            return "The strategy has no risk level, so its fit with the client's profile is unknown"
        if reason == R_NO_PROFILE:
            return (
                f"The client has no risk profile to check the strategy's risk level {level} against"
            )
        low, high = int(book.profile_band_low[p]), int(book.profile_band_high[p])
        tol = params["tolerance"]
        extra = f" (tolerance {tol})" if tol else ""
        return (
            f"The strategy's risk level {level} is outside the client's risk band "
            f"{low}-{high}{extra}"
        )
    if kind == k.RISK_PROFILE_CURRENT:
        if reason == R_PROFILE_MISSING:
            return "The client has no risk profile"
        if reason == R_PROFILE_EXPIRED:
            return f"The client's risk profile expired {int(-measured)} day(s) ago"
        return (
            f"The client's risk profile expires in {int(measured)} day(s); "
            f"it must be renewed {int(limit)} day(s) ahead"
        )
    if kind == k.QUESTIONNAIRE_FLAGS:
        return (
            f"The client has {int(measured)} unresolved questionnaire flag(s); "
            f"at most {int(limit)} allowed"
        )
    if kind == k.KYC_COMPLETE:
        return "The client's KYC is not complete"
    if kind == k.WASH_SALE:
        days = params["days"]
        if reason == R_WASH_RECENT_LOSS_SALE:
            return (
                f"Buying {symbol} would be a wash sale: it was sold at a loss in the household "
                f"within the last {days} days"
            )
        if reason == R_WASH_RECENT_PURCHASE:
            return (
                f"Selling {symbol} at a loss would be a wash sale: it was bought in the "
                f"household within the last {days} days"
            )
        return (
            f"Buying {symbol} would be a wash sale: another order of the household sells it "
            "at a loss in this run"
        )
    if kind == k.MAX_TURNOVER:
        return f"Turnover would be {m} of the portfolio; the limit is {lim}"
    if kind == k.MIN_TRADE_VALUE:
        return f"The order's value {measured:,.2f} is below the minimum trade value {limit:,.2f}"
    if kind == k.MAX_CRYPTO_SHARE:
        level = int(book.profile_risk_level[p])
        who = f"risk level {level}" if level >= 1 else "a client without a risk level"
        return f"Crypto would be {m} of the portfolio; the limit for {who} is {lim}"
    return f"Rule {rule.id} ({kind}) failed"  # pragma: no cover - every kind is handled above
