"""Plain types shared by the strategy engine: requests, results and errors.

No Django here (see DESIGN.md): frozen dataclasses and enums in and out. Floats
are used inside; results are rounded once on the way out (see
``portfolios.engine.optimise.rounding``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd  # type: ignore[import-untyped]


class StrategyError(ValueError):
    """Base class of every error the strategy engine raises on bad input.

    The message always names the constraint, the parameter or the asset at fault,
    so it can be shown to an advisor as is.
    """


class InfeasibleStrategy(StrategyError):
    """The constraints cannot all hold (bounds, class limits, targets)."""


class InsufficientHistory(StrategyError):
    """Too few prices for the lookback window, for the named asset."""


class UnknownAsset(StrategyError):
    """An asset named in the request has no prices (or no market cap)."""


class InvalidParameter(StrategyError):
    """A parameter is out of its range or missing for the method."""


class Method(enum.StrEnum):
    FIXED = "fixed"
    EQUAL_WEIGHT = "equal_weight"
    MARKET_CAP = "market_cap"
    MAX_SHARPE = "max_sharpe"
    MIN_VARIANCE = "min_variance"
    EFFICIENT_RISK = "efficient_risk"
    EFFICIENT_RETURN = "efficient_return"
    HRP = "hrp"
    BLACK_LITTERMAN = "black_litterman"
    INVERSE_VOLATILITY = "inverse_volatility"
    RISK_PARITY = "risk_parity"  # equal risk contribution
    INDEX = "index"
    DYNAMIC = "dynamic"


class ReturnEstimator(enum.StrEnum):
    MEAN_HISTORICAL = "mean_historical"
    EMA = "ema"
    CAPM = "capm"


class CovarianceEstimator(enum.StrEnum):
    SAMPLE = "sample"
    LEDOIT_WOLF = "ledoit_wolf"


class Schedule(enum.StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class View:
    """A Black-Litterman view.

    Absolute: ``asset`` returns ``value`` a year (``relative_to`` is None).
    Relative: ``asset`` outperforms ``relative_to`` by ``value`` a year.
    ``confidence`` in (0, 1]: Idzorek's percentage confidence.
    """

    asset: str
    value: float
    confidence: float = 0.5
    relative_to: str | None = None


@dataclass(frozen=True, eq=False)
class OptimiseRequest:
    """Everything one strategy computation depends on.

    prices: dates x symbols closing prices (adjusted), oldest first. Only the
      last ``lookback + 1`` rows up to the last date are used (``lookback``
      returns); a symbol with a gap in that window has too little history.
    frequency: periods per year of ``prices`` (252 trading days, 365 for crypto,
      12 for monthly); every return and volatility is annualised with it.
    weight_bounds: global (min, max) per asset; ``asset_bounds`` override per symbol.
    asset_classes: symbol -> class; ``class_min`` / ``class_max``: class -> share.
    exclusions: symbols dropped from the universe before anything else.

    Requests compare by identity (they hold a DataFrame); two requests compute
    the same model version when their results' fingerprints are equal.
    """

    method: Method
    universe: tuple[str, ...]
    prices: pd.DataFrame
    lookback: int = 252
    frequency: int = 252
    return_estimator: ReturnEstimator = ReturnEstimator.MEAN_HISTORICAL
    covariance_estimator: CovarianceEstimator = CovarianceEstimator.LEDOIT_WOLF
    risk_free_rate: float = 0.0
    weight_bounds: tuple[float, float] = (0.0, 1.0)
    asset_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    asset_classes: Mapping[str, str] = field(default_factory=dict)
    class_min: Mapping[str, float] = field(default_factory=dict)
    class_max: Mapping[str, float] = field(default_factory=dict)
    exclusions: frozenset[str] = frozenset()
    # method parameters
    fixed_weights: Mapping[str, float] = field(default_factory=dict)
    market_caps: Mapping[str, float] = field(default_factory=dict)
    max_weight: float | None = None  # per-asset cap of market-cap and index methods
    top_n: int | None = None  # index
    target_volatility: float | None = None  # efficient risk, dynamic
    target_return: float | None = None  # efficient return
    views: tuple[View, ...] = ()  # Black-Litterman
    risk_aversion: float | None = None  # Black-Litterman (None: 2.5)
    tau: float = 0.05  # Black-Litterman
    ema_span: int = 60  # EMA estimator
    hrp_linkage: str = "single"
    risky_sleeve: Mapping[str, float] = field(default_factory=dict)  # dynamic
    defensive_sleeve: Mapping[str, float] = field(default_factory=dict)  # dynamic
    vol_lookback: int = 63  # dynamic: realised-vol window (returns)

    def __post_init__(self) -> None:
        for name in (
            "asset_bounds",
            "asset_classes",
            "class_min",
            "class_max",
            "fixed_weights",
            "market_caps",
            "risky_sleeve",
            "defensive_sleeve",
        ):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "universe", tuple(self.universe))
        object.__setattr__(self, "exclusions", frozenset(self.exclusions))
        object.__setattr__(self, "views", tuple(self.views))
        for name, kind in (
            ("method", Method),
            ("return_estimator", ReturnEstimator),
            ("covariance_estimator", CovarianceEstimator),
        ):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                choices = ", ".join(k.value for k in kind)
                raise InvalidParameter(f"unknown {name} {value!r}: one of {choices}") from None


@dataclass(frozen=True)
class OptimiseResult:
    """One computed model version.

    weights: symbol -> weight, every symbol of the (non-excluded) universe, in
      universe order; integer multiples of 1e-8 summing to 1 (see ``rounding``).
    expected_return, volatility, sharpe_ratio: annualised, in-sample, from the
      request's estimators and risk-free rate, computed on the rounded weights.
    prices_as_of: ISO date of the last price row used.
    fingerprint: sha256 hex of the canonical inputs (prices as of + parameters).
    prices_digest: sha256 hex of the price window actually used (audit aid).
    details: method-specific extras (selected index members, risky share, ...).
    """

    method: Method
    weights: Mapping[str, float]
    expected_return: float
    volatility: float
    sharpe_ratio: float
    risk_free_rate: float
    prices_as_of: str
    fingerprint: str
    prices_digest: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _frozen(self.weights))
        object.__setattr__(self, "details", _frozen(self.details))

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict of the result, for storing as an immutable model version."""
        return {
            "method": self.method.value,
            "weights": dict(self.weights),
            "expected_return": self.expected_return,
            "volatility": self.volatility,
            "sharpe_ratio": self.sharpe_ratio,
            "risk_free_rate": self.risk_free_rate,
            "prices_as_of": self.prices_as_of,
            "fingerprint": self.fingerprint,
            "prices_digest": self.prices_digest,
            "details": _jsonable(dict(self.details)),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list | frozenset | set):
        return [_jsonable(v) for v in value]
    return value
