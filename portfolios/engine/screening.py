"""Screening an index universe before selection, with the reason for every exclusion.

Pure pandas/numpy, no Django. Measures, all on data up to ``as_of`` (inclusive)
so a backtest can screen without looking ahead:

``min_history``      calendar days from the asset's first price to ``as_of``;
``min_traded_value`` mean of close x volume over the last ``volume_window`` rows
                     with both a price and a volume (in the price currency);
``stablecoin``       the asset's class is a stablecoin class (or it is listed in
                     ``stablecoins``); excluded unless ``include_stablecoins``;
``max_volatility``   annualised standard deviation of the last ``risk_window``
                     returns (``frequency`` periods a year);
``max_drawdown``     largest peak-to-trough fall (a fraction, 0.8 = -80%) over the
                     last ``risk_window + 1`` prices;
``no_prices``        the asset has no price at all up to ``as_of``.

Every rule an asset fails is recorded (not only the first), in the order above.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.types import InvalidParameter

STABLECOIN_CLASSES = frozenset({"stablecoin"})


@dataclass(frozen=True)
class ScreeningRules:
    min_history_days: int | None = None
    min_avg_traded_value: float | None = None
    volume_window: int = 30
    include_stablecoins: bool = False
    max_volatility: float | None = None
    max_drawdown: float | None = None
    risk_window: int = 365
    frequency: int = 365

    def __post_init__(self) -> None:
        if self.volume_window < 1 or self.risk_window < 2 or self.frequency < 1:
            raise InvalidParameter(
                "volume_window must be >= 1, risk_window >= 2 and frequency >= 1"
            )
        for name in ("min_history_days", "min_avg_traded_value", "max_volatility", "max_drawdown"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(float(v)) or float(v) < 0):
                raise InvalidParameter(f"screening limit {name}={v} must be a number >= 0")


@dataclass(frozen=True)
class Exclusion:
    """One failed rule: the asset, the rule, what was measured and the limit."""

    symbol: str
    rule: str
    measured: float | None
    limit: float | None
    reason: str


@dataclass(frozen=True)
class ScreeningResult:
    kept: tuple[str, ...]
    excluded: tuple[Exclusion, ...]

    def reasons(self, symbol: str) -> tuple[Exclusion, ...]:
        return tuple(e for e in self.excluded if e.symbol == symbol)

    @property
    def excluded_symbols(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.symbol for e in self.excluded))


def screen(
    universe: Iterable[str],
    prices: pd.DataFrame,
    rules: ScreeningRules,
    *,
    volumes: pd.DataFrame | None = None,
    asset_classes: Mapping[str, str] | None = None,
    stablecoins: Iterable[str] = (),
    stablecoin_classes: frozenset[str] = STABLECOIN_CLASSES,
    as_of: pd.Timestamp | str | None = None,
) -> ScreeningResult:
    """Screen ``universe``; kept symbols keep the universe's order."""
    symbols = list(dict.fromkeys(universe))
    classes = dict(asset_classes or {})
    stable = set(stablecoins)
    end = pd.Timestamp(prices.index.max() if as_of is None else as_of)
    px = prices.sort_index().loc[:end]
    vol_frame = None
    if rules.min_avg_traded_value is not None:
        if volumes is None:
            raise InvalidParameter("a minimum traded value needs the volumes")
        vol_frame = volumes.sort_index().loc[:end]
    excluded: list[Exclusion] = []
    for sym in symbols:
        excluded.extend(
            _screen_one(sym, px, vol_frame, rules, end, classes, stable, stablecoin_classes)
        )
    out = {e.symbol for e in excluded}
    return ScreeningResult(kept=tuple(s for s in symbols if s not in out), excluded=tuple(excluded))


def _screen_one(
    sym: str,
    px: pd.DataFrame,
    volumes: pd.DataFrame | None,
    rules: ScreeningRules,
    end: pd.Timestamp,
    classes: Mapping[str, str],
    stable: set[str],
    stablecoin_classes: frozenset[str],
) -> list[Exclusion]:
    found: list[Exclusion] = []
    series = px[sym].dropna() if sym in px.columns else pd.Series(dtype=np.float64)
    if series.empty:
        return [Exclusion(sym, "no_prices", None, None, f"{sym}: no price up to {end.date()}")]
    if rules.min_history_days is not None:
        days = float((end - pd.Timestamp(series.index[0])).days)
        if days < rules.min_history_days:
            found.append(
                Exclusion(
                    sym,
                    "min_history",
                    days,
                    float(rules.min_history_days),
                    f"{sym}: {days:.0f} days of price history < {rules.min_history_days}",
                )
            )
    if rules.min_avg_traded_value is not None and volumes is not None:
        limit = float(rules.min_avg_traded_value)
        if sym not in volumes.columns:
            found.append(
                Exclusion(sym, "min_traded_value", None, limit, f"{sym}: no traded volume data")
            )
        else:
            both = pd.concat([px[sym], volumes[sym]], axis=1).dropna()
            traded = both.iloc[-rules.volume_window :]
            value = float((traded.iloc[:, 0] * traded.iloc[:, 1]).mean()) if len(traded) else 0.0
            if value < limit:
                found.append(
                    Exclusion(
                        sym,
                        "min_traded_value",
                        value,
                        limit,
                        f"{sym}: average traded value {value:,.0f} < {limit:,.0f}",
                    )
                )
    if not rules.include_stablecoins and (sym in stable or classes.get(sym) in stablecoin_classes):
        found.append(Exclusion(sym, "stablecoin", None, None, f"{sym}: stablecoin"))
    if rules.max_volatility is not None or rules.max_drawdown is not None:
        recent = series.iloc[-(rules.risk_window + 1) :].to_numpy(dtype=np.float64)
        if rules.max_volatility is not None and recent.size >= 3:
            rets = recent[1:] / recent[:-1] - 1
            vol = float(np.std(rets, ddof=1) * math.sqrt(rules.frequency))
            if vol > rules.max_volatility:
                found.append(
                    Exclusion(
                        sym,
                        "max_volatility",
                        vol,
                        float(rules.max_volatility),
                        f"{sym}: volatility {vol:.1%} > {rules.max_volatility:.1%}",
                    )
                )
        if rules.max_drawdown is not None and recent.size >= 2:
            dd = float(np.max(1 - recent / np.maximum.accumulate(recent)))
            if dd > rules.max_drawdown:
                found.append(
                    Exclusion(
                        sym,
                        "max_drawdown",
                        dd,
                        float(rules.max_drawdown),
                        f"{sym}: maximum drawdown {dd:.1%} > {rules.max_drawdown:.1%}",
                    )
                )
    return found
