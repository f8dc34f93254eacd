"""The pure rebalancing engine: drift, triggers, trades, tax lots (no Django).

One call, :func:`rebalance`, takes a whole book (P portfolios x A assets) as
arrays in a frozen :class:`BookState` and a :class:`Policy`, and returns a
:class:`Proposal` of arrays: per portfolio figures, per (portfolio, asset)
weights and drift, the orders (proposed and skipped, each with its reason) and
the tax lots every sell consumes. Everything is vectorised over portfolios and
assets; there is no Python loop over portfolios, orders or lots.

How a portfolio is rebalanced
-----------------------------
* NAV = sum(holdings * prices) + cash; NAV after flow = NAV + cash_flow.
  Target value of an asset = targets[target_index] * (1 - cash_target) * NAV
  after flow.
* An asset is out of band when |drift| exceeds ``abs_band`` or ``rel_band *
  target_weight`` (whichever bands are on); its band is the smaller limit.
* A portfolio is triggered by ``force`` (calendar or advisor), any asset out of
  band, a pending cash flow, or a cash share below ``cash_floor``. Its
  :class:`Trigger` is the first of FORCED, BAND, CASH_FLOW, CASH_FLOOR that
  holds; ``trigger_mask`` keeps every one that held (bit ``1 << code``).
* Cash flow only: a deposit is invested by buying underweight assets in
  proportion to their shortfall (a withdrawal raised by selling overweight
  assets in proportion to their excess) when that leaves every asset inside
  its band; otherwise the portfolio is fully rebalanced.
* Full rebalance: to target, or with ``to_band_edge`` the assets out of band
  move to their nearest band edge, and the cash left over (or missing)
  against ``cash_target`` is spread over the assets in proportion to their gap
  to target, first over the assets that trade anyway. A forced (calendar)
  rebalance always goes to target.
* Quantities are whole multiples of ``quantity_step``, rounded down; a sell
  never exceeds the holding. Trades below ``min_trade_value`` or whose cost
  exceeds ``max_cost_ratio`` of their value are skipped. When the buys and
  their costs exceed the cash available, they are scaled down and rounded
  again. When the sells do not cover a withdrawal (or the cash floor), more is
  sold, rounded up: first from lots the tax rules allow, then, as a last
  resort, from any lot (a withdrawal must be paid). ``cash_after`` is never
  negative unless a withdrawal exceeds what the portfolio can raise
  (``cash_shortfall`` says how much is missing).
* Taxable portfolios sell their lots highest unit cost first (or first in,
  first out), skipping lots with a short-term gain (``avoid_short_term_gains``)
  and lots at a loss of an asset bought in the household within the wash-sale
  window; the sell is reduced to what the allowed lots cover and the reduction
  is a skipped row of its own.
* Wash sales: no buy of an asset sold at a loss in the household within the
  window (``recent_loss_sale``), nor of an asset some portfolio of the same
  household sells at a loss in this very run. Cash not spent stays in cash.

Orders are sorted by portfolio, then asset, then the main row before its
reduction row; the same inputs always give the same outputs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Int8Array = NDArray[np.int8]
BoolArray = NDArray[np.bool_]

EPS = 1e-9  # float noise allowance when flooring quantities (in steps)
BAND_EPS = 1e-12  # drift must exceed its band by more than this to count
SHORT_TERM_DAYS = 365
BUY = 1
SELL = -1
_BAND_OFF = 2.0  # a band of 2 weight units can never be crossed


class RebalanceInputError(ValueError):
    """Bad input to the rebalancing engine; the message names the field at fault."""


class Trigger(enum.IntEnum):
    """Why a portfolio is rebalanced (the first that holds, in this order)."""

    NONE = 0
    CALENDAR = 1
    FORCED = 1  # alias: the calendar rebalance is due or an advisor asked for it
    BAND = 2
    CASH_FLOW = 3
    CASH_FLOOR = 4

    def describe(self) -> str:
        """A plain-language sentence for clients and advisors."""
        return _TRIGGER_TEXT[self]


_TRIGGER_TEXT = {
    Trigger.NONE: "Nothing needed rebalancing.",
    Trigger.CALENDAR: "A scheduled rebalance was due, or your advisor asked for one.",
    Trigger.BAND: "An investment drifted outside its tolerance band around its target.",
    Trigger.CASH_FLOW: "Money was added to or withdrawn from the portfolio.",
    Trigger.CASH_FLOOR: "The cash balance fell below its minimum.",
}


class Reason(enum.IntEnum):
    """Why an order was proposed (below 10) or skipped (10 and above)."""

    BAND_REBALANCE = 1
    REBALANCE_TO_TARGET = 2
    DEPOSIT_INVESTED = 3
    WITHDRAWAL_RAISED = 4
    CASH_FLOOR_RESTORED = 5
    CALENDAR = 6
    SKIPPED_BELOW_MINIMUM = 10
    SKIPPED_NOT_WORTH_COST = 11
    BLOCKED_WASH_SALE = 12
    REDUCED_SHORT_TERM_GAIN = 13
    SKIPPED_INSUFFICIENT_CASH = 14

    @property
    def skipped(self) -> bool:
        return self >= 10

    def describe(self) -> str:
        """A plain-language sentence for clients and advisors."""
        return _REASON_TEXT[self]


_REASON_TEXT = {
    Reason.BAND_REBALANCE: "This investment had drifted outside its tolerance band.",
    Reason.REBALANCE_TO_TARGET: (
        "This investment was brought back to its target while the portfolio was rebalanced."
    ),
    Reason.DEPOSIT_INVESTED: "Your deposit was invested.",
    Reason.WITHDRAWAL_RAISED: "This was sold to pay your withdrawal.",
    Reason.CASH_FLOOR_RESTORED: "This was sold to restore the portfolio's minimum cash.",
    Reason.CALENDAR: "The scheduled rebalance brought this investment back to its target.",
    Reason.SKIPPED_BELOW_MINIMUM: "Not traded: the trade was smaller than the minimum trade.",
    Reason.SKIPPED_NOT_WORTH_COST: "Not traded: its cost would have been too high for its size.",
    Reason.BLOCKED_WASH_SALE: (
        "Not traded: it would have broken the wash-sale rule (a loss sale and a purchase "
        "of the same investment within the window)."
    ),
    Reason.REDUCED_SHORT_TERM_GAIN: (
        "Sold less: selling these lots would have realised a short-term gain."
    ),
    Reason.SKIPPED_INSUFFICIENT_CASH: "Not bought: there was not enough cash after the sells.",
}


class OrderStatus(enum.IntEnum):
    PROPOSED = 0
    SKIPPED = 1

    def describe(self) -> str:
        return "proposed" if self is OrderStatus.PROPOSED else "skipped, kept to show why"


@dataclass(frozen=True)
class Policy:
    """How a book is rebalanced (see the module docstring).

    Bands are in weight units (0.05 = 5 points) or a share of the target weight;
    money in the book's currency; ``cost_bps`` in basis points of trade value.
    ``cash_target`` is what a rebalance aims to leave in cash; ``cash_floor`` is
    both a trigger and the minimum the engine guarantees (sells are topped up
    to reach it). ``wash_sale_days`` is the window the caller uses to reduce the
    ledger to ``recent_loss_sale`` / ``recent_purchase``; the engine itself only
    reads those flags.
    """

    abs_band: float | None = 0.05
    rel_band: float | None = 0.25
    to_band_edge: bool = False
    cash_target: float = 0.01
    cash_floor: float = 0.0
    min_trade_value: float = 0.0
    cost_bps: float = 0.0
    cost_fixed: float = 0.0
    max_cost_ratio: float = 0.02
    buy_only_on_deposit: bool = True
    sell_only_on_withdrawal: bool = True
    highest_cost_first: bool = True
    avoid_short_term_gains: bool = False
    wash_sale_days: int = 30

    def __post_init__(self) -> None:
        def finite(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if v is None:
                return
            if not np.isfinite(v) or not lo <= v <= hi:
                raise RebalanceInputError(f"policy.{name} = {v!r} must lie in [{lo}, {hi}]")

        finite("abs_band", 0.0, 1.0)
        finite("rel_band", 0.0, 1e6)
        finite("cash_target", 0.0, 0.999999)
        finite("cash_floor", 0.0, 1.0)
        finite("min_trade_value", 0.0, 1e300)
        finite("cost_bps", 0.0, 9999.0)
        finite("cost_fixed", 0.0, 1e300)
        finite("max_cost_ratio", 0.0, 1e300)
        if self.wash_sale_days < 0:
            raise RebalanceInputError(f"policy.wash_sale_days = {self.wash_sale_days} must be >= 0")


@dataclass(frozen=True)
class BookState:
    """P portfolios x A assets (every array float64 unless said); see the module docstring."""

    prices: FloatArray
    quantity_step: FloatArray
    holdings: FloatArray
    cash: FloatArray
    cash_flow: FloatArray
    target_index: IntArray
    targets: FloatArray
    force: BoolArray
    taxable: BoolArray
    household: IntArray
    lot_portfolio: IntArray
    lot_asset: IntArray
    lot_quantity: FloatArray
    lot_unit_cost: FloatArray
    lot_acquired: IntArray
    as_of: int
    recent_loss_sale: BoolArray
    recent_purchase: BoolArray


@dataclass(frozen=True, eq=False)
class Proposal:
    # per portfolio (P,)
    nav: FloatArray
    nav_after_flow: FloatArray
    triggered: BoolArray
    trigger: Int8Array  # Trigger codes
    trigger_mask: Int8Array  # bit 1 << Trigger code for every trigger that held
    max_drift: FloatArray
    cash_after: FloatArray
    cash_shortfall: FloatArray  # withdrawal (or cash floor) the sells could not raise
    turnover: FloatArray
    flow_only: BoolArray  # the cash flow was handled with buys (sells) only
    # per portfolio and asset (P, A)
    current_weight: FloatArray
    target_weight: FloatArray
    drift: FloatArray
    band: FloatArray  # the band limit that applies (2.0 when every band is off)
    out_of_band: BoolArray
    # orders (N,)
    order_portfolio: IntArray
    order_asset: IntArray
    order_side: Int8Array
    order_quantity: FloatArray
    order_value: FloatArray
    order_cost: FloatArray
    order_reason: Int8Array
    order_drift: FloatArray
    order_band: FloatArray
    order_status: Int8Array
    order_intent: Int8Array  # the proposed reason the order had before any skip
    order_wanted_quantity: FloatArray  # before tax, cash and skip reductions
    # lot picks of proposed sells of taxable portfolios (M,)
    lot_order: IntArray
    lot_index: IntArray
    lot_sold_quantity: FloatArray
    lot_realised_gain: FloatArray
    lot_short_term: BoolArray

    @property
    def n_orders(self) -> int:
        return int(self.order_portfolio.shape[0])

    def orders_as_dicts(self) -> list[dict[str, Any]]:
        """Orders as plain dicts (for tests and small books only)."""
        names = [f.name for f in fields(self) if f.name.startswith("order_")]
        cols = [getattr(self, n).tolist() for n in names]
        return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]


# --------------------------------------------------------------------------- input


def _arr(state: BookState, name: str, dtype: Any, shape: tuple[int, ...]) -> Any:
    try:
        a = np.asarray(getattr(state, name), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise RebalanceInputError(f"{name}: cannot be read as {np.dtype(dtype)}: {exc}") from exc
    if a.shape != shape:
        raise RebalanceInputError(f"{name}: shape {a.shape}, expected {shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise RebalanceInputError(f"{name}: contains NaN or infinity")
    return a


@dataclass(frozen=True)
class _In:
    prices: FloatArray
    step: FloatArray
    holdings: FloatArray
    cash: FloatArray
    flow: FloatArray
    tidx: IntArray
    targets: FloatArray
    force: BoolArray
    taxable: BoolArray
    household: IntArray
    lot_p: IntArray
    lot_a: IntArray
    lot_q: FloatArray
    lot_cost: FloatArray
    lot_acq: IntArray
    loss_sale: BoolArray
    purchase: BoolArray


def _validated(s: BookState) -> _In:
    prices = np.asarray(s.prices, dtype=np.float64)
    if prices.ndim != 1 or prices.shape[0] == 0:
        raise RebalanceInputError(f"prices: shape {prices.shape}, expected (A,) with A >= 1")
    n_a = prices.shape[0]
    holdings = np.asarray(s.holdings, dtype=np.float64)
    if holdings.ndim != 2 or holdings.shape[1] != n_a:
        raise RebalanceInputError(f"holdings: shape {holdings.shape}, expected (P, {n_a})")
    n_p = holdings.shape[0]
    targets = np.asarray(s.targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[1] != n_a or targets.shape[0] == 0:
        raise RebalanceInputError(f"targets: shape {targets.shape}, expected (T, {n_a})")
    n_l = np.asarray(s.lot_portfolio).shape[0] if np.ndim(s.lot_portfolio) == 1 else -1
    if n_l < 0:
        raise RebalanceInputError("lot_portfolio: expected a 1-d array")
    i = _In(
        prices=_arr(s, "prices", np.float64, (n_a,)),
        step=_arr(s, "quantity_step", np.float64, (n_a,)),
        holdings=_arr(s, "holdings", np.float64, (n_p, n_a)),
        cash=_arr(s, "cash", np.float64, (n_p,)),
        flow=_arr(s, "cash_flow", np.float64, (n_p,)),
        tidx=_arr(s, "target_index", np.int64, (n_p,)),
        targets=_arr(s, "targets", np.float64, targets.shape),
        force=_arr(s, "force", np.bool_, (n_p,)),
        taxable=_arr(s, "taxable", np.bool_, (n_p,)),
        household=_arr(s, "household", np.int64, (n_p,)),
        lot_p=_arr(s, "lot_portfolio", np.int64, (n_l,)),
        lot_a=_arr(s, "lot_asset", np.int64, (n_l,)),
        lot_q=_arr(s, "lot_quantity", np.float64, (n_l,)),
        lot_cost=_arr(s, "lot_unit_cost", np.float64, (n_l,)),
        lot_acq=_arr(s, "lot_acquired", np.int64, (n_l,)),
        loss_sale=_arr(s, "recent_loss_sale", np.bool_, (n_p, n_a)),
        purchase=_arr(s, "recent_purchase", np.bool_, (n_p, n_a)),
    )
    if (i.prices <= 0).any():
        raise RebalanceInputError(f"prices: must be > 0 (asset {int(np.argmin(i.prices))})")
    if (i.step <= 0).any():
        raise RebalanceInputError(f"quantity_step: must be > 0 (asset {int(np.argmin(i.step))})")
    if (i.holdings < 0).any():
        p = int(np.argwhere(i.holdings < 0)[0, 0])
        raise RebalanceInputError(f"holdings: must be >= 0 (portfolio {p})")
    if (i.cash < 0).any():
        raise RebalanceInputError(f"cash: must be >= 0 (portfolio {int(np.argmin(i.cash))})")
    if ((i.tidx < 0) | (i.tidx >= i.targets.shape[0])).any():
        raise RebalanceInputError(f"target_index: must index targets (0..{i.targets.shape[0] - 1})")
    if (i.targets < 0).any() or not np.allclose(i.targets.sum(axis=1), 1.0, atol=1e-6):
        raise RebalanceInputError("targets: every row must be >= 0 and sum to 1")
    nav = (i.holdings * i.prices).sum(axis=1) + i.cash
    bad = nav + i.flow < -1e-9 * np.maximum(nav, 1.0)
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise RebalanceInputError(f"cash_flow: withdrawal exceeds the NAV of portfolio {p}")
    if n_l:
        if ((i.lot_p < 0) | (i.lot_p >= n_p)).any():
            raise RebalanceInputError(f"lot_portfolio: must index portfolios (0..{n_p - 1})")
        if ((i.lot_a < 0) | (i.lot_a >= n_a)).any():
            raise RebalanceInputError(f"lot_asset: must index assets (0..{n_a - 1})")
        if (i.lot_q < 0).any():
            raise RebalanceInputError("lot_quantity: must be >= 0")
        tax_lot = i.taxable[i.lot_p]
        g = i.lot_p[tax_lot] * n_a + i.lot_a[tax_lot]
        lot_sum = np.bincount(g, weights=i.lot_q[tax_lot], minlength=n_p * n_a).reshape(n_p, n_a)
        held = np.where(i.taxable[:, None], i.holdings, lot_sum)
        off = np.abs(lot_sum - held) > 0.5 * i.step + 1e-9 * held
        if off.any():
            p, a = (int(x) for x in np.argwhere(off)[0])
            raise RebalanceInputError(
                f"lot_quantity: lots of portfolio {p}, asset {a} sum to {lot_sum[p, a]:g}, "
                f"holdings are {held[p, a]:g}"
            )
    return i


# --------------------------------------------------------------------------- helpers


def _floor_units(x: FloatArray) -> IntArray:
    """Whole steps in ``x`` (in steps), rounded down with a little slack for float noise."""
    return np.floor(np.maximum(x, 0.0) * (1 + 1e-12) + EPS).astype(np.int64)


def _ceil_units(x: FloatArray) -> IntArray:
    return np.ceil(np.maximum(x, 0.0) * (1 - 1e-12) - EPS).astype(np.int64)


def _spread(
    resid: FloatArray, d0: FloatArray, target: FloatArray, eligible: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """Move ``resid`` (per portfolio, + buy / - sell) into the eligible assets.

    In proportion to their gap to target (shortfall for buys, excess for sells),
    never past the target. Returns the new values and what could not be placed.
    """
    up = np.where(eligible, np.maximum(target - d0, 0.0), 0.0)
    down = np.where(eligible, np.maximum(d0 - target, 0.0), 0.0)
    cap = np.where((resid > 0)[:, None], up, down)
    tot = cap.sum(axis=1)
    frac = np.minimum(1.0, np.divide(np.abs(resid), tot, out=np.zeros_like(tot), where=tot > 0))
    sign = np.sign(resid)
    moved = cap * frac[:, None]
    return d0 + sign[:, None] * moved, resid - sign * moved.sum(axis=1)


def _row_sum(x: FloatArray) -> FloatArray:
    return np.asarray(x.sum(axis=1), dtype=np.float64)


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True, eq=False)
class Drift:
    """Where each portfolio stands against its bands, and what triggers it (P, or P x A)."""

    nav: FloatArray
    nav_after_flow: FloatArray
    target_weight: FloatArray
    current_weight: FloatArray
    drift: FloatArray
    band: FloatArray
    out_of_band: BoolArray
    triggered: BoolArray
    trigger: Int8Array
    trigger_mask: Int8Array


def _drift(
    *,
    value: FloatArray,
    cash: FloatArray,
    flow: FloatArray,
    tw: FloatArray,
    force: BoolArray,
    policy: Policy,
) -> Drift:
    n_p, n_a = value.shape
    nav = _row_sum(value) + cash
    nav_after = np.maximum(nav + flow, 0.0)
    current = np.divide(value, nav[:, None], out=np.zeros_like(value), where=nav[:, None] > 0)
    drift = current - tw
    band = np.full((n_p, n_a), _BAND_OFF)
    if policy.abs_band is not None:
        band = np.minimum(band, policy.abs_band)
    if policy.rel_band is not None:
        band = np.minimum(band, policy.rel_band * tw)
    out_band = np.abs(drift) > band + BAND_EPS
    cash_share = np.divide(cash, nav, out=np.zeros_like(nav), where=nav > 0)
    t_band = out_band.any(axis=1)
    t_flow = flow != 0
    t_floor = (nav > 0) & (cash_share < policy.cash_floor - BAND_EPS)
    triggered = force | t_band | t_flow | t_floor
    trigger = np.select(
        [force, t_band, t_flow, t_floor],
        [Trigger.FORCED, Trigger.BAND, Trigger.CASH_FLOW, Trigger.CASH_FLOOR],
        Trigger.NONE,
    ).astype(np.int8)
    mask = (
        force * (1 << Trigger.FORCED)
        + t_band * (1 << Trigger.BAND)
        + t_flow * (1 << Trigger.CASH_FLOW)
        + t_floor * (1 << Trigger.CASH_FLOOR)
    ).astype(np.int8)
    return Drift(
        nav=nav,
        nav_after_flow=nav_after,
        target_weight=tw,
        current_weight=current,
        drift=drift,
        band=band,
        out_of_band=out_band,
        triggered=triggered,
        trigger=trigger,
        trigger_mask=mask,
    )


def drift_triggers(
    *,
    prices: FloatArray,
    holdings: FloatArray,
    cash: FloatArray,
    cash_flow: FloatArray,
    target_index: IntArray,
    targets: FloatArray,
    policy: Policy,
) -> Drift:
    """Only the first step of :func:`rebalance`: drift against the bands and the triggers
    of unforced portfolios, without trades or lots (the daily drift scan)."""
    holdings = np.asarray(holdings, dtype=np.float64)
    prices = np.asarray(prices, dtype=np.float64)
    if holdings.ndim != 2 or prices.shape != (holdings.shape[1],):
        raise RebalanceInputError(
            f"holdings: shape {holdings.shape} does not match prices {prices.shape}"
        )
    tidx = np.asarray(target_index, dtype=np.int64)
    return _drift(
        value=holdings * prices,
        cash=np.asarray(cash, dtype=np.float64),
        flow=np.asarray(cash_flow, dtype=np.float64),
        tw=np.asarray(targets, dtype=np.float64)[tidx] * (1.0 - policy.cash_target),
        force=np.zeros(holdings.shape[0], dtype=bool),
        policy=policy,
    )


def rebalance(state: BookState, policy: Policy) -> Proposal:
    """Drift, triggers, orders and lot picks of a whole book; see the module docstring."""
    i = _validated(state)
    n_p, n_a = i.holdings.shape
    px, step = i.prices, i.step
    unit_value = px * step  # value of one step
    bps = policy.cost_bps / 1e4
    fixed = policy.cost_fixed
    ct = policy.cash_target

    # -- weights, drift, bands, triggers
    value = i.holdings * px
    d = _drift(
        value=value,
        cash=i.cash,
        flow=i.flow,
        tw=i.targets[i.tidx] * (1.0 - ct),
        force=i.force,
        policy=policy,
    )
    nav, nav_after, tw, current, drift, band, out_band = (
        d.nav,
        d.nav_after_flow,
        d.target_weight,
        d.current_weight,
        d.drift,
        d.band,
        d.out_of_band,
    )
    triggered, trigger, mask = d.triggered, d.trigger, d.trigger_mask

    # -- desired values after the trades
    target_v = tw * nav_after[:, None]
    band_v = band * nav_after[:, None]
    cash_gap = i.cash + i.flow - ct * nav_after  # cash above its target after the flow
    all_assets = np.ones((n_p, n_a), dtype=bool)
    d_flow, _ = _spread(cash_gap, value, target_v, all_assets)
    w_flow = np.divide(
        d_flow, nav_after[:, None], out=np.zeros_like(d_flow), where=nav_after[:, None] > 0
    )
    inside = (np.abs(w_flow - tw) <= band + 1e-9).all(axis=1)
    eligible = (i.flow > 0) & policy.buy_only_on_deposit & (cash_gap >= 0)
    eligible |= (i.flow < 0) & policy.sell_only_on_withdrawal & (cash_gap <= 0)
    flow_only = triggered & ~i.force & eligible & inside

    if policy.to_band_edge:
        d_edge = np.clip(value, np.maximum(target_v - band_v, 0.0), target_v + band_v)
        moved = d_edge != value
        resid = nav_after - _row_sum(d_edge) - ct * nav_after
        d_edge, resid = _spread(resid, d_edge, target_v, moved)
        d_edge, _ = _spread(resid, d_edge, target_v, all_assets)
        d_full = np.where(i.force[:, None], target_v, d_edge)
    else:
        d_full = target_v
    desired = np.where(triggered[:, None], np.where(flow_only[:, None], d_flow, d_full), value)

    # -- wanted quantities, in steps
    hold_u = _floor_units(i.holdings / step)
    delta_u = (desired - value) / unit_value
    sell_want = np.minimum(_floor_units(-delta_u), hold_u)
    buy_want = _floor_units(delta_u)
    want = buy_want - sell_want  # signed steps

    # -- tax lots: what each taxable (portfolio, asset) may sell
    flat = n_p * n_a
    lot_tax = i.taxable[i.lot_p] if i.lot_p.size else np.zeros(0, dtype=bool)
    lot_ids = np.flatnonzero(lot_tax)
    lp, la = i.lot_p[lot_ids], i.lot_a[lot_ids]
    lg = lp * n_a + la
    lot_u = np.rint(i.lot_q[lot_ids] / step[la]).astype(np.int64)
    lot_gain_unit = px[la] - i.lot_cost[lot_ids]
    lot_short = (state.as_of - i.lot_acq[lot_ids]) < SHORT_TERM_DAYS
    st_block = policy.avoid_short_term_gains & lot_short & (lot_gain_unit > 0)
    wash_block = i.purchase.reshape(-1)[lg] & (lot_gain_unit < 0) & ~st_block
    disallowed = st_block | wash_block

    def per_cell(units: IntArray, sel: BoolArray) -> IntArray:
        s = np.bincount(lg[sel], weights=units[sel].astype(np.float64), minlength=flat)
        return np.rint(s).astype(np.int64).reshape(n_p, n_a)

    every = np.ones(lot_ids.size, dtype=bool)
    lots_total = per_cell(lot_u, every)
    tax = i.taxable[:, None]
    sellable = np.where(tax, np.minimum(hold_u, lots_total), hold_u)
    allowed = np.where(tax, np.minimum(per_cell(lot_u, ~disallowed), sellable), sellable)
    st_blocked = per_cell(lot_u, st_block)
    wash_blocked = per_cell(lot_u, wash_block)

    sell_u = np.minimum(sell_want, allowed)
    buy_u = buy_want.copy()

    # -- intent of every wanted trade
    is_buy_w = want > 0
    by_trigger = np.where(trigger == Trigger.FORCED, Reason.CALENDAR, Reason.REBALANCE_TO_TARGET)
    by_trigger = by_trigger[:, None]
    deposit = (i.flow > 0)[:, None]
    withdrawal = (i.flow < 0)[:, None]
    floor_trig = (trigger == Trigger.CASH_FLOOR)[:, None]
    full_reason = np.where(
        out_band,
        Reason.BAND_REBALANCE,
        np.where(
            deposit & is_buy_w & ~i.force[:, None],
            Reason.DEPOSIT_INVESTED,
            np.where(
                withdrawal & ~is_buy_w & ~i.force[:, None],
                Reason.WITHDRAWAL_RAISED,
                np.where(floor_trig & ~is_buy_w, Reason.CASH_FLOOR_RESTORED, by_trigger),
            ),
        ),
    )
    flow_reason = np.where(deposit, Reason.DEPOSIT_INVESTED, Reason.WITHDRAWAL_RAISED)
    intent = np.where(flow_only[:, None], flow_reason, full_reason).astype(np.int8)
    skip = np.zeros((n_p, n_a), dtype=np.int8)  # 0 = not skipped, else a Reason

    # -- wash sale history blocks buys
    skip = np.where((buy_u > 0) & i.loss_sale, Reason.BLOCKED_WASH_SALE, skip).astype(np.int8)

    def apply_size_skips(skip: Int8Array, units: IntArray) -> Int8Array:
        v = units * unit_value
        c = bps * v + fixed
        live = (units > 0) & (skip == 0)
        below = live & (v < policy.min_trade_value)
        costly = live & ~below & (c > policy.max_cost_ratio * v)
        out = np.where(below, Reason.SKIPPED_BELOW_MINIMUM, skip)
        return np.where(costly, Reason.SKIPPED_NOT_WORTH_COST, out).astype(np.int8)

    skip = apply_size_skips(skip, sell_u + buy_u)

    def live_sells() -> IntArray:
        return np.where(skip == 0, sell_u, 0)

    def live_buys() -> IntArray:
        return np.where(skip == 0, buy_u, 0)

    # -- cash: scale buys down to what the sells and the cash pay for
    required = np.where(triggered, policy.cash_floor * nav_after, 0.0)
    sv = live_sells() * unit_value
    base = i.cash + i.flow + _row_sum(sv * (1 - bps)) - fixed * (live_sells() > 0).sum(axis=1)
    bv = live_buys() * unit_value
    n_buys = (live_buys() > 0).sum(axis=1)
    need = _row_sum(bv * (1 + bps)) + fixed * n_buys
    budget = base - required
    short = need > budget + 1e-9 * np.maximum(need, 1.0)
    var = _row_sum(bv * (1 + bps))
    f = np.divide(
        np.maximum(budget - fixed * n_buys, 0.0), var, out=np.zeros_like(var), where=var > 0
    )
    f = np.where(short, np.minimum(f, 1.0), 1.0)
    scaled = np.floor(buy_u * f[:, None]).astype(np.int64)
    new_buy = np.where(skip == 0, np.minimum(scaled, buy_u), buy_u)
    no_cash = (skip == 0) & (buy_u > 0) & (new_buy == 0)
    skip = np.where(no_cash, Reason.SKIPPED_INSUFFICIENT_CASH, skip).astype(np.int8)
    buy_u = np.where(no_cash, buy_u, new_buy)
    skip = apply_size_skips(skip, np.where(skip == 0, buy_u, 0))

    # -- cash: sell more (rounded up) when the sells do not pay a withdrawal / the floor
    topup = np.zeros((n_p, n_a), dtype=np.int64)
    for limit in (allowed, sellable):
        sv = live_sells() * unit_value
        n_sells = ((live_sells() + topup) > 0).sum(axis=1)
        cash_now = (
            i.cash
            + i.flow
            + _row_sum((live_sells() + topup) * unit_value * (1 - bps))
            - fixed * n_sells
            - _row_sum(live_buys() * unit_value * (1 + bps))
            - fixed * (live_buys() > 0).sum(axis=1)
        )
        deficit = np.maximum(required - cash_now, 0.0)
        room = np.where(want > 0, 0, np.maximum(limit - live_sells() - topup, 0))
        room_v = room * unit_value
        gross = (deficit + fixed * (room > 0).sum(axis=1)) / (1 - bps)
        tot = _row_sum(room_v)
        frac = np.minimum(1.0, np.divide(gross, tot, out=np.zeros_like(tot), where=tot > 0))
        extra = np.minimum(_ceil_units(room_v * frac[:, None] / unit_value), room)
        topup += np.where((deficit > 0)[:, None], extra, 0)
    got_topup = topup > 0
    was_live_sell = live_sells() > 0
    sell_u = np.where(got_topup, live_sells() + topup, sell_u)
    topup_reason = np.where(withdrawal, Reason.WITHDRAWAL_RAISED, Reason.CASH_FLOOR_RESTORED)
    intent = np.where(got_topup & ~was_live_sell, topup_reason, intent).astype(np.int8)
    skip = np.where(got_topup, 0, skip).astype(np.int8)

    # -- lot picks of the proposed sells (taxable portfolios only)
    final_sell = live_sells().reshape(-1)
    if policy.highest_cost_first:
        order = np.lexsort((lot_ids, i.lot_acq[lot_ids], -i.lot_cost[lot_ids], disallowed, lg))
    else:
        order = np.lexsort((lot_ids, i.lot_acq[lot_ids], disallowed, lg))
    g_s = lg[order]
    u_s = lot_u[order]
    cum_before = np.cumsum(u_s) - u_s
    start = np.ones(g_s.size, dtype=bool)
    start[1:] = g_s[1:] != g_s[:-1]
    offset = np.maximum.accumulate(np.where(start, cum_before, 0)) if g_s.size else cum_before
    take = np.clip(final_sell[g_s] - (cum_before - offset), 0, u_s)
    picked = take > 0
    pick_pos = order[picked]
    pick_units = take[picked]
    pick_g = g_s[picked]
    pick_lot = lot_ids[pick_pos]
    pick_a = la[pick_pos]
    pick_qty = pick_units * step[pick_a]
    pick_gain = (px[pick_a] - i.lot_cost[pick_lot]) * pick_qty
    pick_short = lot_short[pick_pos]

    # -- wash sales within the run: no buy where the household sells at a loss
    loss_g = np.unique(pick_g[pick_gain < 0])
    loss_keys = np.unique(i.household[loss_g // n_a] * n_a + loss_g % n_a)
    cell_keys = i.household[:, None] * n_a + np.arange(n_a)[None, :]
    in_run = (live_buys() > 0) & np.isin(cell_keys, loss_keys)
    skip = np.where(in_run, Reason.BLOCKED_WASH_SALE, skip).astype(np.int8)

    # -- per-portfolio results
    ls, lb = live_sells(), live_buys()
    sv, bv = ls * unit_value, lb * unit_value
    n_trades = (ls > 0).sum(axis=1) + (lb > 0).sum(axis=1)
    costs = _row_sum((sv + bv) * bps) + fixed * n_trades
    cash_after = i.cash + i.flow + _row_sum(sv) - _row_sum(bv) - costs
    shortfall = np.maximum(-cash_after, 0.0)
    turnover = np.divide(_row_sum(sv + bv), nav, out=np.zeros_like(nav), where=nav > 0)

    # -- order rows: a main row per wanted trade, a reduction row per tax-reduced sell
    main_u = np.where(skip == 0, ls + lb, np.where(want > 0, want, sell_u))
    side = np.where(want > 0, BUY, SELL)
    main_cells = np.flatnonzero((main_u > 0).reshape(-1))
    reduced = np.where(tax & (want < 0), np.maximum(sell_want - np.maximum(allowed, ls), 0), 0)
    red_cells = np.flatnonzero(reduced.reshape(-1) > 0)
    red_reason = np.where(
        st_blocked >= wash_blocked, Reason.REDUCED_SHORT_TERM_GAIN, Reason.BLOCKED_WASH_SALE
    )
    cells = np.concatenate([main_cells, red_cells])
    kind = np.concatenate([np.zeros(main_cells.size, np.int64), np.ones(red_cells.size, np.int64)])
    o = np.lexsort((kind, cells))
    cells, kind = cells[o], kind[o]
    is_main = kind == 0
    oa = cells % n_a
    units = np.where(is_main, main_u.reshape(-1)[cells], reduced.reshape(-1)[cells])
    qty = units * step[oa]
    val = qty * px[oa]
    skip_f = skip.reshape(-1)[cells]
    reason = np.where(
        is_main,
        np.where(skip_f == 0, intent.reshape(-1)[cells], skip_f),
        red_reason.reshape(-1)[cells],
    ).astype(np.int8)
    status = np.where(is_main & (skip_f == 0), OrderStatus.PROPOSED, OrderStatus.SKIPPED)
    wanted = np.where(is_main, np.abs(want).reshape(-1)[cells], sell_want.reshape(-1)[cells])
    wanted = np.maximum(wanted, units)

    # lot picks point at the main (proposed sell) row of their cell
    row_of_cell = np.full(flat, -1, dtype=np.int64)
    row_of_cell[cells[is_main]] = np.flatnonzero(is_main)

    return Proposal(
        nav=nav,
        nav_after_flow=nav_after,
        triggered=triggered,
        trigger=trigger,
        trigger_mask=mask,
        max_drift=np.abs(drift).max(axis=1),
        cash_after=cash_after,
        cash_shortfall=shortfall,
        turnover=turnover,
        flow_only=flow_only,
        current_weight=current,
        target_weight=tw,
        drift=drift,
        band=band,
        out_of_band=out_band,
        order_portfolio=(cells // n_a).astype(np.int64),
        order_asset=oa.astype(np.int64),
        order_side=np.where(is_main, side.reshape(-1)[cells], SELL).astype(np.int8),
        order_quantity=qty,
        order_value=val,
        order_cost=np.where(qty > 0, bps * val + fixed, 0.0),
        order_reason=reason,
        order_drift=drift.reshape(-1)[cells],
        order_band=band.reshape(-1)[cells],
        order_status=status.astype(np.int8),
        order_intent=intent.reshape(-1)[cells],
        order_wanted_quantity=wanted * step[oa],
        lot_order=row_of_cell[pick_g],
        lot_index=pick_lot.astype(np.int64),
        lot_sold_quantity=pick_qty,
        lot_realised_gain=pick_gain,
        lot_short_term=pick_short,
    )
