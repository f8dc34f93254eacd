"""The optimisation entry point: ``optimise(request) -> OptimiseResult``.

Order of work, so that bad input fails early with a message naming its cause:
1. the universe minus exclusions (empty: InfeasibleStrategy); method parameters;
2. bounds and asset-class limits resolved and checked for feasibility
   (``constraints.check_feasible``) before any solver runs;
3. the price window (unknown asset, too little history);
4. expected returns and covariance (PyPortfolioOpt estimators);
5. the method; PyPortfolioOpt/cvxpy failures are translated into
   InfeasibleStrategy. Methods that are not solvers themselves (fixed, equal,
   market cap, inverse volatility, risk parity, HRP, dynamic) produce raw
   weights which, if they break a bound or class limit, are moved to the nearest
   weights (least squares) that satisfy them;
6. weights rounded once (multiples of 1e-8 summing to 1, ``rounding``); the
   in-sample expected return, volatility and Sharpe ratio computed on the
   rounded weights and rounded to 10 decimals.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from pypfopt import BlackLittermanModel, EfficientFrontier, HRPOpt, black_litterman
from pypfopt.exceptions import OptimizationError

from portfolios.engine.optimise import constraints as cons
from portfolios.engine.optimise import dynamic, estimators
from portfolios.engine.optimise.index import select_top_n
from portfolios.engine.optimise.rounding import FloatArray, cap_and_redistribute, round_weights
from portfolios.engine.types import (
    InfeasibleStrategy,
    InvalidParameter,
    Method,
    OptimiseRequest,
    OptimiseResult,
    UnknownAsset,
    View,
)

STAT_DECIMALS = 10
DEFAULT_RISK_AVERSION = 2.5
FINGERPRINT_VERSION = 1


def optimise(request: OptimiseRequest) -> OptimiseResult:
    """Compute one strategy's weights and statistics (see the module docstring)."""
    r = request
    _check_common(r)
    if len(set(r.universe)) != len(r.universe):
        dup = next(s for s in r.universe if r.universe.count(s) > 1)
        raise InvalidParameter(f"asset {dup!r} appears twice in the universe")
    if not r.universe:
        raise InvalidParameter("the universe is empty: name at least one asset")
    symbols = [s for s in r.universe if s not in r.exclusions]
    if not symbols:
        raise InfeasibleStrategy("no asset left to hold: every asset of the universe is excluded")
    details: dict[str, Any] = {}

    held = symbols
    extra_cap: float | None = None
    if r.method is Method.INDEX:
        if r.top_n is None:
            raise InvalidParameter("index strategies need top_n (2 to 100)")
        held = list(select_top_n(r.market_caps, r.top_n, universe=symbols))
        extra_cap = r.max_weight
        details["members"] = tuple(held)
        if extra_cap is not None and extra_cap * len(held) < 1 - cons.TOL:
            raise InfeasibleStrategy(
                f"per-asset cap {extra_cap:g} x {len(held)} index members = "
                f"{extra_cap * len(held):g} < 1: weights cannot sum to one"
            )
    elif r.method is Method.MARKET_CAP:
        extra_cap = r.max_weight
        if extra_cap is not None and extra_cap * len(held) < 1 - cons.TOL:
            raise InfeasibleStrategy(
                f"per-asset cap {extra_cap:g} x {len(held)} assets = "
                f"{extra_cap * len(held):g} < 1: weights cannot sum to one"
            )
        for sym in symbols:
            if sym not in r.market_caps:
                raise UnknownAsset(f"unknown asset {sym!r}: no market capitalisation for it")

    c = cons.build_constraints(
        held,
        weight_bounds=r.weight_bounds,
        asset_bounds={k: v for k, v in r.asset_bounds.items() if k in held or k not in symbols},
        asset_classes=r.asset_classes,
        class_min=r.class_min,
        class_max=r.class_max,
        ignore=frozenset(r.exclusions) | frozenset(symbols),
        extra_cap=extra_cap,
    )
    cons.check_feasible(c)

    window = estimators.price_window(r.prices, held, r.lookback)
    mu = estimators.expected_return(
        window,
        r.return_estimator,
        frequency=r.frequency,
        risk_free_rate=r.risk_free_rate,
        ema_span=r.ema_span,
    )
    cov = estimators.covariance(window, r.covariance_estimator, frequency=r.frequency)

    raw = _weights(r, c, window, mu, cov, details)
    if r.method not in _SOLVER_METHODS:
        raw = cons.project(raw, c)
    final = round_weights(np.clip(raw, c.lower, c.upper), c.lower, c.upper)
    broken = cons.violations(final, c, tol=1e-7)
    if broken:  # pragma: no cover - guards the solvers' tolerance
        raise InfeasibleStrategy("the optimiser's weights break a constraint: " + broken[0])

    ret = float(final @ mu)
    vol = float(math.sqrt(max(float(final @ cov @ final), 0.0)))
    sharpe = (ret - r.risk_free_rate) / vol if vol > 1e-12 else 0.0
    weights = dict.fromkeys(symbols, 0.0)
    weights.update(zip(held, (float(x) for x in final), strict=True))
    prices_digest = estimators.digest(window)
    prices_as_of = estimators.as_of(window)
    return OptimiseResult(
        method=r.method,
        weights=weights,
        expected_return=round(ret, STAT_DECIMALS),
        volatility=round(vol, STAT_DECIMALS),
        sharpe_ratio=round(sharpe, STAT_DECIMALS),
        risk_free_rate=r.risk_free_rate,
        prices_as_of=prices_as_of,
        fingerprint=fingerprint(r, prices_as_of=prices_as_of, prices_digest=prices_digest),
        prices_digest=prices_digest,
        details=details,
    )


_SOLVER_METHODS = frozenset(
    {
        Method.MAX_SHARPE,
        Method.MIN_VARIANCE,
        Method.EFFICIENT_RISK,
        Method.EFFICIENT_RETURN,
        Method.BLACK_LITTERMAN,
    }
)


def _check_common(r: OptimiseRequest) -> None:
    if r.frequency < 1:
        raise InvalidParameter(f"frequency {r.frequency} must be a positive number of periods")
    if not math.isfinite(r.risk_free_rate):
        raise InvalidParameter("risk-free rate must be a finite number")
    if r.lookback < 2:
        raise InvalidParameter(f"lookback {r.lookback} must be at least 2 returns")


def _weights(
    r: OptimiseRequest,
    c: cons.Constraints,
    window: pd.DataFrame,
    mu: FloatArray,
    cov: FloatArray,
    details: dict[str, Any],
) -> FloatArray:
    n = len(c.symbols)
    m = r.method
    if m is Method.FIXED:
        return _fixed(r, c)
    if m is Method.EQUAL_WEIGHT:
        return np.full(n, 1.0 / n)
    if m in (Method.MARKET_CAP, Method.INDEX):
        caps = [float(r.market_caps[s]) for s in c.symbols]
        for sym, v in zip(c.symbols, caps, strict=True):
            if not math.isfinite(v) or v < 0:
                raise InvalidParameter(f"market capitalisation of {sym!r} must be a number >= 0")
        # The cap (and the global maximum weight) keep market-cap proportions among
        # the uncapped assets; other bounds are met by the projection afterwards.
        cap = 1.0 if r.max_weight is None else float(r.max_weight)
        cap = min(cap, float(c.upper.max()))
        return cap_and_redistribute(caps, cap)
    if m is Method.INVERSE_VOLATILITY:
        inv = 1.0 / np.sqrt(np.maximum(np.diag(cov), 1e-18))
        return np.asarray(inv / inv.sum(), dtype=np.float64)
    if m is Method.RISK_PARITY:
        return equal_risk_contribution(cov)
    if m is Method.HRP:
        return _hrp(r, c, window, cov)
    if m is Method.DYNAMIC:
        return _dynamic(r, c, window, details)
    if m is Method.BLACK_LITTERMAN:
        return _black_litterman(r, c, cov, details)
    return _efficient(r, c, mu, cov, details)


def _fixed(r: OptimiseRequest, c: cons.Constraints) -> FloatArray:
    if not r.fixed_weights:
        raise InvalidParameter("fixed-weight strategies need fixed_weights")
    for sym, v in r.fixed_weights.items():
        if sym not in r.universe:
            raise UnknownAsset(f"fixed weight given for unknown asset {sym!r} (not in universe)")
        if not math.isfinite(float(v)) or float(v) < 0:
            raise InvalidParameter(f"fixed weight of {sym!r} must be a number >= 0")
    total = math.fsum(float(v) for v in r.fixed_weights.values())
    if abs(total - 1) > 1e-6:
        raise InvalidParameter(f"fixed weights sum to {total:.8g}, not 1")
    w = np.array([float(r.fixed_weights.get(s, 0.0)) for s in c.symbols])
    if w.sum() <= 0:
        raise InfeasibleStrategy("every asset with a fixed weight is excluded")
    return np.asarray(w / w.sum(), dtype=np.float64)


def equal_risk_contribution(
    cov: FloatArray, tol: float = 1e-12, max_iter: int = 10_000
) -> FloatArray:
    """Long-only equal-risk-contribution weights (cyclical coordinate descent).

    Solves min 0.5 y'Σy - (1/n) Σ log y_i, y > 0 (strictly convex, unique
    solution) one coordinate at a time in closed form (Griveau-Billion, Richard
    and Roncalli 2013); w = y / sum(y). Each asset's contribution w_i (Σw)_i is
    then equal.
    """
    sigma = np.asarray(cov, dtype=np.float64)
    n = sigma.shape[0]
    diag = np.diag(sigma)
    if np.any(diag <= 0):
        raise InfeasibleStrategy("risk parity needs every asset to have a positive variance")
    b = 1.0 / n
    y = 1.0 / np.sqrt(diag)
    y = y / np.sqrt(y @ sigma @ y)
    for _ in range(max_iter):
        prev = y.copy()
        for i in range(n):
            rest = float(sigma[i] @ y - sigma[i, i] * y[i])
            y[i] = (-rest + math.sqrt(rest * rest + 4 * sigma[i, i] * b)) / (2 * sigma[i, i])
        if float(np.max(np.abs(y - prev))) < tol * float(np.max(np.abs(y))):
            break
    return np.asarray(y / y.sum(), dtype=np.float64)


def _hrp(
    r: OptimiseRequest, c: cons.Constraints, window: pd.DataFrame, cov: FloatArray
) -> FloatArray:
    if len(c.symbols) < 2:
        return np.ones(1)
    rets = estimators.returns_of(window)
    cov_df = pd.DataFrame(cov, index=list(c.symbols), columns=list(c.symbols))
    try:
        hrp = HRPOpt(returns=rets, cov_matrix=cov_df)
        out = hrp.optimize(linkage_method=r.hrp_linkage)
    except ValueError as exc:
        raise InvalidParameter(f"hierarchical risk parity: {exc}") from exc
    return np.array([float(out[s]) for s in c.symbols])


def _dynamic(
    r: OptimiseRequest, c: cons.Constraints, window: pd.DataFrame, details: dict[str, Any]
) -> FloatArray:
    if r.target_volatility is None:
        raise InvalidParameter("dynamic allocation needs target_volatility")
    for name, sleeve in (("risky", r.risky_sleeve), ("defensive", r.defensive_sleeve)):
        if not sleeve:
            raise InvalidParameter(f"dynamic allocation needs a {name} sleeve (asset -> weight)")
        for sym in sleeve:
            if sym not in c.symbols:
                raise UnknownAsset(
                    f"asset {sym!r} of the {name} sleeve is not in the universe (or is excluded)"
                )
    if r.vol_lookback > r.lookback:
        raise InvalidParameter(
            f"volatility lookback {r.vol_lookback} exceeds the lookback window {r.lookback}"
        )
    rr = dynamic.sleeve_returns(window, r.risky_sleeve, "risky").to_numpy()[-r.vol_lookback :]
    dr = dynamic.sleeve_returns(window, r.defensive_sleeve, "defensive").to_numpy()[
        -r.vol_lookback :
    ]
    share = dynamic.risky_share(rr, dr, r.target_volatility, r.frequency)
    details["risky_share"] = round(share, STAT_DECIMALS)
    rt = math.fsum(float(v) for v in r.risky_sleeve.values())
    dt = math.fsum(float(v) for v in r.defensive_sleeve.values())
    w = np.zeros(len(c.symbols))
    for i, sym in enumerate(c.symbols):
        w[i] = (
            share * float(r.risky_sleeve.get(sym, 0.0)) / rt
            + (1 - share) * float(r.defensive_sleeve.get(sym, 0.0)) / dt
        )
    return w


def _frontier(
    mu: FloatArray | pd.Series, cov: FloatArray | pd.DataFrame, c: cons.Constraints
) -> EfficientFrontier:
    bounds = list(zip(c.lower.tolist(), c.upper.tolist(), strict=True))
    mu_s = pd.Series(np.asarray(mu, dtype=np.float64), index=list(c.symbols))
    cov_df = pd.DataFrame(np.asarray(cov, dtype=np.float64), index=mu_s.index, columns=mu_s.index)
    ef = EfficientFrontier(mu_s, cov_df, weight_bounds=bounds, solver=cons.SOLVER)
    if c.has_class_limits:
        mapper, lower, upper = c.sector_args()
        lower = {k: v for k, v in lower.items() if k in mapper.values()}
        upper = {k: v for k, v in upper.items() if k in mapper.values()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ef.add_sector_constraints(mapper, lower, upper)
    return ef


def _solve(ef: EfficientFrontier, what: str, call: Any) -> FloatArray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = call()
    except (OptimizationError, ValueError) as exc:
        raise InfeasibleStrategy(f"{what}: no solution under the constraints ({exc})") from exc
    return np.array([float(out[s]) for s in ef.tickers])


def _efficient(
    r: OptimiseRequest,
    c: cons.Constraints,
    mu: FloatArray,
    cov: FloatArray,
    details: dict[str, Any],
) -> FloatArray:
    m = r.method
    if m is Method.MIN_VARIANCE:
        ef = _frontier(mu, cov, c)
        return _solve(ef, "minimum variance", ef.min_volatility)
    if m is Method.MAX_SHARPE:
        best = int(np.argmax(mu))
        if mu[best] <= r.risk_free_rate:
            raise InfeasibleStrategy(
                "maximum Sharpe needs an asset whose expected return exceeds the risk-free rate "
                f"{r.risk_free_rate:g}; the highest is {mu[best]:.4g} ({c.symbols[best]})"
            )
        if cons.max_return(mu, c) <= r.risk_free_rate + 1e-9:
            raise InfeasibleStrategy(
                "maximum Sharpe: no weights within the bounds and class limits have an expected "
                f"return above the risk-free rate {r.risk_free_rate:g}"
            )
        ef = _frontier(mu, cov, c)
        return _solve(ef, "maximum Sharpe", lambda: ef.max_sharpe(risk_free_rate=r.risk_free_rate))
    if m is Method.EFFICIENT_RISK:
        target = r.target_volatility
        if target is None or not target > 0:
            raise InvalidParameter("efficient risk needs a positive target_volatility")
        floor, w_min = cons.min_volatility(cov, c)
        details["min_volatility"] = round(floor, STAT_DECIMALS)
        if target < floor - 1e-9:
            raise InfeasibleStrategy(
                f"target volatility {target:.4g} is below the minimum achievable volatility "
                f"{floor:.4g} under the bounds and class limits"
            )
        if target <= floor * (1 + 1e-6):
            return w_min
        ef = _frontier(mu, cov, c)
        return _solve(ef, "efficient risk", lambda: ef.efficient_risk(float(target)))
    if m is Method.EFFICIENT_RETURN:
        target = r.target_return
        if target is None or not math.isfinite(target):
            raise InvalidParameter("efficient return needs a target_return")
        ceiling = cons.max_return(mu, c)
        details["max_return"] = round(ceiling, STAT_DECIMALS)
        if target > ceiling + 1e-9:
            raise InfeasibleStrategy(
                f"target return {target:.4g} is above the maximum achievable return "
                f"{ceiling:.4g} under the bounds and class limits"
            )
        ef = _frontier(mu, cov, c)
        goal = min(float(target), ceiling - 1e-9 * max(1.0, abs(ceiling)))
        return _solve(ef, "efficient return", lambda: ef.efficient_return(goal))
    raise InvalidParameter(f"unknown method {m!r}")  # pragma: no cover


def _black_litterman(
    r: OptimiseRequest, c: cons.Constraints, cov: FloatArray, details: dict[str, Any]
) -> FloatArray:
    symbols = list(c.symbols)
    for sym in symbols:
        if sym not in r.market_caps:
            raise UnknownAsset(f"unknown asset {sym!r}: no market capitalisation for its prior")
    delta = DEFAULT_RISK_AVERSION if r.risk_aversion is None else float(r.risk_aversion)
    if not delta > 0:
        raise InvalidParameter(f"risk aversion {delta} must be positive")
    if not 0 < r.tau <= 1:
        raise InvalidParameter(f"tau {r.tau} must be in (0, 1]")
    cov_df = pd.DataFrame(cov, index=symbols, columns=symbols)
    caps = pd.Series({s: float(r.market_caps[s]) for s in symbols})
    if not np.all(np.isfinite(caps.to_numpy())) or (caps < 0).any() or caps.sum() <= 0:
        raise InvalidParameter(
            "Black-Litterman's prior needs market capitalisations >= 0 with a positive total"
        )
    pi = black_litterman.market_implied_prior_returns(caps, delta, cov_df, r.risk_free_rate)
    if r.views:
        p, q, conf = _view_matrices(r.views, symbols)
        try:
            bl = BlackLittermanModel(
                cov_df,
                pi=pi,
                P=p,
                Q=q,
                omega="idzorek",
                view_confidences=conf,
                tau=r.tau,
                risk_aversion=delta,
            )
            post = bl.bl_returns()
            post_cov = bl.bl_cov()
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise InvalidParameter(f"Black-Litterman views: {exc}") from exc
    else:
        post = pi
        post_cov = cov_df * (1 + r.tau)
    details["prior_returns"] = {s: round(float(pi[s]), STAT_DECIMALS) for s in symbols}
    details["posterior_returns"] = {s: round(float(post[s]), STAT_DECIMALS) for s in symbols}
    ef = _frontier(np.asarray(post, dtype=np.float64), np.asarray(post_cov, dtype=np.float64), c)
    return _solve(ef, "Black-Litterman", lambda: ef.max_quadratic_utility(risk_aversion=delta))


def _view_matrices(
    views: tuple[View, ...], symbols: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = {s: i for i, s in enumerate(symbols)}
    p = np.zeros((len(views), len(symbols)))
    q = np.zeros(len(views))
    conf = np.zeros(len(views))
    for k, v in enumerate(views):
        for sym in (v.asset, v.relative_to):
            if sym is not None and sym not in pos:
                raise UnknownAsset(f"view on unknown or excluded asset {sym!r}")
        if v.relative_to == v.asset:
            raise InvalidParameter(f"relative view of {v.asset!r} against itself")
        if not 0 < v.confidence <= 1:
            raise InvalidParameter(
                f"view on {v.asset!r}: confidence {v.confidence} must be in (0, 1]"
            )
        if not math.isfinite(v.value):
            raise InvalidParameter(f"view on {v.asset!r}: value must be a finite number")
        p[k, pos[v.asset]] = 1.0
        if v.relative_to is not None:
            p[k, pos[v.relative_to]] = -1.0
        q[k] = v.value
        conf[k] = min(v.confidence, 1 - 1e-6)
    return p, q.reshape(-1, 1), conf


# -- fingerprint -------------------------------------------------------------


def _canon(value: Any) -> Any:
    """A JSON-able canonical form: floats as repr, mappings sorted, sets sorted."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return repr(f + 0.0)  # -0.0 -> 0.0
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, frozenset | set):
        return sorted(_canon(v) for v in value)
    if isinstance(value, tuple | list):
        return [_canon(v) for v in value]
    if isinstance(value, View):
        return _canon(
            {
                "asset": value.asset,
                "value": value.value,
                "confidence": value.confidence,
                "relative_to": value.relative_to,
            }
        )
    return str(value)


def request_parameters(r: OptimiseRequest) -> dict[str, Any]:
    """Every parameter of the request except the prices, in canonical form."""
    return {
        "method": r.method.value,
        "universe": list(r.universe),
        "lookback": r.lookback,
        "frequency": r.frequency,
        "return_estimator": r.return_estimator.value,
        "covariance_estimator": r.covariance_estimator.value,
        "risk_free_rate": _canon(r.risk_free_rate),
        "weight_bounds": _canon(r.weight_bounds),
        "asset_bounds": _canon(r.asset_bounds),
        "asset_classes": _canon(r.asset_classes),
        "class_min": _canon(r.class_min),
        "class_max": _canon(r.class_max),
        "exclusions": sorted(r.exclusions),
        "fixed_weights": _canon(r.fixed_weights),
        "market_caps": _canon(r.market_caps),
        "max_weight": _canon(r.max_weight),
        "top_n": r.top_n,
        "target_volatility": _canon(r.target_volatility),
        "target_return": _canon(r.target_return),
        "views": _canon(r.views),
        "risk_aversion": _canon(r.risk_aversion),
        "tau": _canon(r.tau),
        "ema_span": r.ema_span,
        "hrp_linkage": r.hrp_linkage,
        "risky_sleeve": _canon(r.risky_sleeve),
        "defensive_sleeve": _canon(r.defensive_sleeve),
        "vol_lookback": r.vol_lookback,
    }


def fingerprint(r: OptimiseRequest, *, prices_as_of: str, prices_digest: str) -> str:
    """sha256 (hex) of the canonical JSON of the parameters, prices as of and prices digest.

    Two requests share a fingerprint exactly when they would compute the same
    model version: same parameters (order of mappings irrelevant) on the same
    price window.
    """
    payload = {
        "v": FINGERPRINT_VERSION,
        "prices_as_of": prices_as_of,
        "prices_digest": prices_digest,
        "parameters": request_parameters(r),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
