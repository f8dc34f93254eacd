"""Walk-forward backtests of a weights function under a rebalancing policy. No Django.

Inputs are a price matrix (a ``DataFrame``: a sorted ``DatetimeIndex`` of dates x one
column per asset, positive closes), a *weights function*, a
:class:`RebalancePolicy`, :class:`TransactionCosts` and a :class:`BacktestConfig`;
the output is a :class:`BacktestResult` (value series, metrics, trades, costs).

Conventions (each is what the hand-checked test reproduces):

* **Walk-forward, no look-ahead.** On each re-optimisation date ``d`` (the first date,
  then the first date of each new month / quarter / year, per
  ``BacktestConfig.reoptimise``) the weights function is called with
  ``prices.loc[:d]`` (a copy: history before ``start`` included for look-backs, nothing
  after ``d``). Trades happen at the close of ``d``, the last price it saw.
* **Missing prices** (NaN) are allowed for an asset that is neither held nor given a
  weight (not listed yet, as in a crypto index over the coins' whole history); a held
  or weighted asset without a price is refused, naming it and the date.
* **Trades.** A rebalance on date ``d`` with portfolio value ``V`` (holdings at ``d``'s
  closes plus cash) trades every asset to ``target_i * V``. The cost is
  ``bps / 10_000 * sum(|traded_i|) + fixed * (number of assets traded)`` and is paid
  out of the new positions pro rata, so that after the rebalance the weights are
  exactly the target and the value is exactly ``V - cost``. The first date invests
  the initial value (all cash) the same way; its cost is part of ``costs_paid``.
* **Triggers.** ``calendar``: the first date of a new month / quarter / year (with
  month-end data, every monthly date is one). ``absolute_band``: some asset's weight
  is more than that many weight points (0.05 = 5 pp) off its target.
  ``relative_band``: more than that share of its target off (0.25 = 25 % of the
  target weight). With a calendar and bands: ``combine="either"`` rebalances on a
  calendar date *or* a band breach; ``"bands_on_calendar"`` only on calendar dates
  where a band is breached. A re-optimisation that changes the target rebalances at
  once (``rebalance_on_reoptimise``).
* **Metrics** of a value series ``V_0..V_n`` (after each day's trades) on dates
  ``t_0..t_n``, from the starting amount ``V_start`` (the initial value, before the
  first purchase's costs; for a benchmark its first value): years
  ``= (t_n - t_0).days / 365.25``; total return ``V_n / V_start - 1``; CAGR
  ``(V_n / V_start) ** (1 / years) - 1``; period returns ``r_k = V_k / V_(k-1) - 1``;
  periods per year ``= n / years`` unless given; volatility
  ``std(r, ddof=1) * sqrt(ppy)``; Sharpe ``mean(r - rf) / std(r, ddof=1) * sqrt(ppy)``
  with ``rf`` the per-period risk-free rate ``(1 + rate) ** (1 / ppy) - 1``; Sortino
  ``mean(r - rf) / sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(ppy)``; maximum drawdown
  ``max(1 - V_k / max(V_0..V_k))`` (a positive fraction); Calmar ``CAGR / max drawdown``.
  Turnover of a rebalance is ``sum(|traded_i|) / (2 V)``; ``turnover`` sums them over
  the rebalances after the initial purchase, ``annual_turnover`` divides by years.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

CALENDARS = ("none", "monthly", "quarterly", "yearly")
REOPTIMISE = ("once", "monthly", "quarterly", "yearly")
COMBINE = ("either", "bands_on_calendar")
_TRADE_EPSILON = 1e-9  # currency units: smaller trades are not trades

#: What a weights function returns: a mapping or a pandas Series of asset -> weight
#: (assets left out weigh 0), or a sequence of weights in the price columns' order.
WeightsInput: TypeAlias = Any
WeightsFunction: TypeAlias = Callable[[Any], WeightsInput]  # called with a DataFrame


class BacktestError(ValueError):
    """Bad input to a backtest: the message names what is wrong."""


@dataclass(frozen=True)
class RebalancePolicy:
    calendar: str = "none"
    absolute_band: float | None = None
    relative_band: float | None = None
    combine: str = "either"

    def __post_init__(self) -> None:
        if self.calendar not in CALENDARS:
            raise BacktestError(f"calendar must be one of {', '.join(CALENDARS)}")
        if self.combine not in COMBINE:
            raise BacktestError(f"combine must be one of {', '.join(COMBINE)}")
        for name in ("absolute_band", "relative_band"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise BacktestError(f"{name} must be between 0 and 1 (a fraction), got {value}")
        if self.calendar == "none" and not self.has_bands:
            raise BacktestError("a rebalancing policy needs a calendar, a band, or both")

    @property
    def has_bands(self) -> bool:
        return self.absolute_band is not None or self.relative_band is not None

    @classmethod
    def parse(cls, text: str) -> RebalancePolicy:
        """``monthly``, ``quarterly``, ``yearly``, ``abs:0.05``, ``rel:0.25`` joined by
        ``+`` (``quarterly+abs:0.05``: either); ``on-calendar`` makes bands apply only on
        calendar dates (``quarterly+abs:0.05+on-calendar``)."""
        calendar, absolute, relative, combine = "none", None, None, "either"
        for part in (p.strip() for p in text.split("+") if p.strip()):
            key, _, value = part.partition(":")
            try:
                if key in CALENDARS:
                    calendar = key
                elif key == "abs":
                    absolute = float(value)
                elif key == "rel":
                    relative = float(value)
                elif key == "on-calendar":
                    combine = "bands_on_calendar"
                else:
                    raise BacktestError(f"unknown rebalancing policy part {part!r}")
            except ValueError as exc:
                if isinstance(exc, BacktestError):
                    raise
                raise BacktestError(f"{part!r}: {value!r} is not a number") from None
        return cls(calendar, absolute, relative, combine)

    def breach(self, weights: np.ndarray, target: np.ndarray, names: list[str]) -> str | None:
        """Why the current weights are outside the bands, or None."""
        gap = np.abs(weights - target)
        if self.absolute_band is not None:
            worst = int(np.argmax(gap))
            if gap[worst] > self.absolute_band + 1e-12:
                return (
                    f"absolute band: {names[worst]} at {weights[worst]:.4f} vs target "
                    f"{target[worst]:.4f} (band {self.absolute_band:g})"
                )
        if self.relative_band is not None:
            limit = self.relative_band * target
            over = gap - limit
            worst = int(np.argmax(over))
            if over[worst] > 1e-12:
                return (
                    f"relative band: {names[worst]} at {weights[worst]:.4f} vs target "
                    f"{target[worst]:.4f} (band {self.relative_band:g} of target)"
                )
        return None


@dataclass(frozen=True)
class TransactionCosts:
    bps: float = 0.0
    fixed: float = 0.0  # per asset traded

    def __post_init__(self) -> None:
        if self.bps < 0 or self.fixed < 0:
            raise BacktestError("transaction costs cannot be negative")

    def of(self, traded: np.ndarray) -> float:
        count = int(np.count_nonzero(np.abs(traded) > _TRADE_EPSILON))
        return float(self.bps / 10_000 * np.abs(traded).sum() + self.fixed * count)


@dataclass(frozen=True)
class BacktestConfig:
    initial_value: float = 10_000.0
    start: pd.Timestamp | str | None = None
    end: pd.Timestamp | str | None = None
    reoptimise: str = "monthly"
    rebalance_on_reoptimise: bool = True
    risk_free_rate: float = 0.0  # annual
    periods_per_year: float | None = None  # None: observed (observations / years)

    def __post_init__(self) -> None:
        if not self.initial_value > 0:
            raise BacktestError("initial value must be positive")
        if self.reoptimise not in REOPTIMISE:
            raise BacktestError(f"reoptimise must be one of {', '.join(REOPTIMISE)}")


@dataclass(frozen=True)
class Metrics:
    start_value: float
    end_value: float
    total_return: float
    years: float
    periods_per_year: float
    cagr: float
    volatility: float
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    calmar: float | None

    def as_dict(self) -> dict[str, float | None]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Rebalance:
    date: pd.Timestamp
    reason: str
    value_before: float
    target: dict[str, float]
    weights_before: dict[str, float]
    traded: dict[str, float]  # currency, + bought / - sold
    cost: float
    turnover: float


@dataclass(frozen=True)
class Decision:
    """A call of the weights function: the date, the last date it saw, the weights."""

    date: pd.Timestamp
    data_until: pd.Timestamp
    weights: dict[str, float]


@dataclass(frozen=True)
class BacktestResult:
    values: pd.Series
    drawdown: pd.Series
    weights: pd.DataFrame  # end-of-day weights
    decisions: list[Decision]
    rebalances: list[Rebalance]
    metrics: Metrics
    turnover: float
    annual_turnover: float
    costs_paid: float
    benchmark_values: pd.Series | None = None
    benchmark_metrics: Metrics | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "start": self.values.index[0].date().isoformat(),
            "end": self.values.index[-1].date().isoformat(),
            "metrics": self.metrics.as_dict(),
            "turnover": self.turnover,
            "annual_turnover": self.annual_turnover,
            "costs_paid": self.costs_paid,
            "rebalances": len(self.rebalances),
            "benchmark": None
            if self.benchmark_metrics is None
            else self.benchmark_metrics.as_dict(),
        }


def _period(day: pd.Timestamp, calendar: str) -> tuple[int, int]:
    if calendar == "monthly":
        return (day.year, day.month)
    if calendar == "quarterly":
        return (day.year, (day.month - 1) // 3)
    if calendar == "yearly":
        return (day.year, 0)
    return (0, 0)


def _new_period(previous: pd.Timestamp, day: pd.Timestamp, calendar: str) -> bool:
    if calendar in ("none", "once"):
        return False
    return _period(previous, calendar) != _period(day, calendar)


def _check_prices(prices: pd.DataFrame) -> None:
    if not isinstance(prices, pd.DataFrame) or prices.empty:
        raise BacktestError("prices must be a non-empty DataFrame (dates x assets)")
    if not isinstance(prices.index, pd.DatetimeIndex):
        raise BacktestError("prices must be indexed by date (a DatetimeIndex)")
    if not prices.index.is_monotonic_increasing or prices.index.has_duplicates:
        raise BacktestError("price dates must be increasing and unique")
    if prices.columns.has_duplicates:
        raise BacktestError("an asset appears twice among the price columns")


def _weights(raw: WeightsInput, names: list[str], day: pd.Timestamp) -> np.ndarray:
    when = day.date().isoformat()
    if isinstance(raw, Mapping | pd.Series):
        mapping = dict(raw.items())
        unknown = sorted(str(k) for k in mapping if k not in names)
        if unknown:
            raise BacktestError(f"weights on {when} name unknown asset(s): {', '.join(unknown)}")
        vector = np.array([float(mapping.get(n, 0.0)) for n in names])
    else:
        vector = np.asarray(raw, dtype=float)
        if vector.shape != (len(names),):
            raise BacktestError(f"weights on {when}: {vector.size} values for {len(names)} assets")
    if not np.all(np.isfinite(vector)):
        raise BacktestError(f"weights on {when} are not all finite numbers")
    if np.any(vector < -1e-12):
        raise BacktestError(f"weights on {when} are negative (long-only backtest)")
    total = vector.sum()
    if abs(total - 1) > 1e-6:
        raise BacktestError(f"weights on {when} sum to {total:.6f}, not 1")
    clipped: np.ndarray = np.clip(vector, 0, None)
    normalised: np.ndarray = clipped / float(clipped.sum())
    return normalised


def _require_prices(
    needed: np.ndarray, priced: np.ndarray, names: list[str], day: pd.Timestamp, why: str
) -> None:
    missing = np.flatnonzero(needed & ~priced)
    if len(missing):
        raise BacktestError(
            f"no price for {names[int(missing[0])]} on {day.date().isoformat()}, but {why}"
        )


def metrics_of(
    values: pd.Series,
    *,
    start_value: float | None = None,
    risk_free_rate: float = 0.0,
    periods_per_year: float | None = None,
) -> Metrics:
    """The metrics of a value series (see the module doc for every formula)."""
    if len(values) < 2:
        raise BacktestError("metrics need at least two values")
    series = values.astype(float)
    first = float(series.iloc[0]) if start_value is None else float(start_value)
    last = float(series.iloc[-1])
    days = (series.index[-1] - series.index[0]).days
    if days <= 0:
        raise BacktestError("metrics need values on at least two different dates")
    years = days / 365.25
    returns = series.pct_change().iloc[1:].to_numpy()
    ppy = float(periods_per_year) if periods_per_year else len(returns) / years
    total = last / first - 1
    cagr = (last / first) ** (1 / years) - 1
    std = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    rf = (1 + risk_free_rate) ** (1 / ppy) - 1
    excess = returns - rf
    mean_excess = float(excess.mean())
    sharpe = mean_excess / std * math.sqrt(ppy) if std > 0 else None
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    sortino = mean_excess / downside * math.sqrt(ppy) if downside > 0 else None
    running_max = np.maximum.accumulate(series.to_numpy())
    max_drawdown = float(np.max(1 - series.to_numpy() / running_max))
    calmar = cagr / max_drawdown if max_drawdown > 0 else None
    return Metrics(
        start_value=first,
        end_value=last,
        total_return=total,
        years=years,
        periods_per_year=ppy,
        cagr=cagr,
        volatility=std * math.sqrt(ppy),
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=max_drawdown,
        calmar=calmar,
    )


def backtest_run(
    prices: pd.DataFrame,
    weights_function: WeightsFunction,
    *,
    policy: RebalancePolicy,
    costs: TransactionCosts | None = None,
    config: BacktestConfig | None = None,
    benchmark: pd.Series | None = None,
) -> BacktestResult:
    """Run the backtest (see the module doc). ``benchmark``: prices of a benchmark."""
    costs = costs or TransactionCosts()
    config = config or BacktestConfig()
    _check_prices(prices)
    prices = prices.astype(float)
    window = prices.loc[config.start : config.end]
    if len(window) < 2:
        raise BacktestError("the backtest window holds fewer than two price dates")
    if (window <= 0).to_numpy().any():
        raise BacktestError("prices must be positive")
    names = [str(c) for c in prices.columns]
    closes = window.to_numpy()
    dates = window.index

    units = np.zeros(len(names))
    cash = float(config.initial_value)
    target: np.ndarray | None = None
    values = np.empty(len(dates))
    weights_rows = np.empty((len(dates), len(names)))
    decisions: list[Decision] = []
    rebalances: list[Rebalance] = []
    costs_paid = 0.0
    for i, day in enumerate(dates):
        price = closes[i]
        priced = ~np.isnan(price)
        _require_prices(units != 0, priced, names, day, "it is held")
        holdings = np.where(units != 0, units * np.where(priced, price, 0.0), 0.0)
        value = float(holdings.sum() + cash)
        reason: str | None = None
        reoptimise = i == 0 or _new_period(dates[i - 1], day, config.reoptimise)
        if reoptimise:
            seen = prices.loc[:day].copy()
            new_target = _weights(weights_function(seen), names, day)
            _require_prices(new_target > 0, priced, names, day, "the weights give it a weight")
            decisions.append(
                Decision(day, seen.index[-1], dict(zip(names, new_target, strict=True)))
            )
            changed = target is None or not np.allclose(new_target, target, atol=1e-12)
            target = new_target
            if i == 0:
                reason = "initial investment"
            elif changed and config.rebalance_on_reoptimise:
                reason = "re-optimised: new target weights"
        assert target is not None
        current = holdings / value
        if reason is None:
            calendar_day = _new_period(dates[i - 1], day, policy.calendar)
            band = policy.breach(current, target, names) if policy.has_bands else None
            if policy.calendar != "none" and policy.has_bands:
                if policy.combine == "either":
                    reason = f"calendar ({policy.calendar})" if calendar_day else band
                elif calendar_day and band:
                    reason = f"calendar ({policy.calendar}) and {band}"
            elif policy.calendar != "none":
                reason = f"calendar ({policy.calendar})" if calendar_day else None
            else:
                reason = band
        if reason is not None:
            traded = target * value - holdings
            if i == 0:
                traded = target * value  # all from cash
            cost = costs.of(traded)
            after = value - cost
            if after <= 0:
                raise BacktestError(
                    f"transaction costs of {cost:.2f} on {day.date()} exceed the value {value:.2f}"
                )
            turnover = float(np.abs(traded).sum() / (2 * value))
            rebalances.append(
                Rebalance(
                    date=day,
                    reason=reason,
                    value_before=value,
                    target=dict(zip(names, target.tolist(), strict=True)),
                    weights_before=dict(zip(names, current.tolist(), strict=True)),
                    traded=dict(zip(names, traded.tolist(), strict=True)),
                    cost=cost,
                    turnover=turnover,
                )
            )
            costs_paid += cost
            units = np.divide(target * after, price, out=np.zeros(len(names)), where=target > 0)
            cash = 0.0
            value = after
            holdings = np.where(units != 0, units * np.where(priced, price, 0.0), 0.0)
        values[i] = value
        weights_rows[i] = holdings / value

    value_series = pd.Series(values, index=dates, name="value")
    metrics = metrics_of(
        value_series,
        start_value=config.initial_value,
        risk_free_rate=config.risk_free_rate,
        periods_per_year=config.periods_per_year,
    )
    turnover = sum(r.turnover for r in rebalances[1:])
    bench_values: pd.Series | None = None
    bench_metrics: Metrics | None = None
    if benchmark is not None:
        aligned = benchmark.astype(float).reindex(dates)
        if aligned.isna().any():
            first_gap = aligned.index[aligned.isna().to_numpy()][0].date().isoformat()
            raise BacktestError(f"the benchmark has no price on {first_gap}")
        bench_values = aligned / aligned.iloc[0] * config.initial_value
        bench_values.name = "benchmark"
        bench_metrics = metrics_of(
            bench_values,
            risk_free_rate=config.risk_free_rate,
            periods_per_year=config.periods_per_year,
        )
    running_max = value_series.cummax()
    return BacktestResult(
        values=value_series,
        drawdown=value_series / running_max - 1,
        weights=pd.DataFrame(weights_rows, index=dates, columns=names),
        decisions=decisions,
        rebalances=rebalances,
        metrics=metrics,
        turnover=turnover,
        annual_turnover=turnover / metrics.years,
        costs_paid=costs_paid,
        benchmark_values=bench_values,
        benchmark_metrics=bench_metrics,
    )


def fixed_weights(weights: Mapping[str, float]) -> WeightsFunction:
    """A weights function that always answers ``weights`` (a model portfolio)."""
    frozen = dict(weights)

    def function(history: pd.DataFrame) -> dict[str, float]:
        return frozen

    return function


def equal_weights(history: pd.DataFrame) -> np.ndarray:
    """Equal weights over every column."""
    return np.full(history.shape[1], 1 / history.shape[1])
