"""Strategies and their model versions: every state change, audited.

* :func:`strategy_create` / :func:`strategy_update`: the definition (method,
  parameters validated into the engine's ``OptimiseRequest``, universe, status,
  risk band, client explanation);
* :func:`strategy_version_compute`: the engine's ``optimise`` on usable (``ok``)
  prices, rounded once, stored as an immutable :class:`StrategyVersion`; the same
  inputs (same fingerprint) return the existing version and write nothing;
* :func:`customised_version_get_or_compute`: a client's customisation applied to a
  version, computed once per signature and shared;
* :func:`strategy_recommend`: risk level to recommended method and parameters, with
  the backtested trade-off of the alternatives (writes nothing).

Bad input (unknown asset, too little history, infeasible constraints, a parameter
out of range) raises :class:`StrategyInputError`, a Django ``ValidationError``
naming the problem (the API answers 400); nothing is written then.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import User
from accounts.tenancy.context import TenancyError, require_firm
from compliance.services import AuditEntry, audit_record, audit_record_many
from portfolios.engine import customise, screening
from portfolios.engine.optimise import explain, optimise
from portfolios.engine.optimise.core import request_parameters
from portfolios.engine.optimise.recommend import backtest_alternatives, recommend_and_optimise
from portfolios.engine.types import (
    CovarianceEstimator,
    Method,
    OptimiseRequest,
    OptimiseResult,
    ReturnEstimator,
    StrategyError,
    View,
)
from portfolios.models_market import Asset, AssetClass, PriceFrequency
from portfolios.models_strategy import (
    WEIGHT_QUANTUM,
    CustomisedVersion,
    Strategy,
    StrategyStatus,
    StrategyVersion,
    VersionTrigger,
)
from portfolios.selectors_market import market_cap_latest, price_matrix
from portfolios.selectors_strategy import volume_matrix
from portfolios.services_backtest import periods_per_year

MAX_UNIVERSE = 500
UNIT = 10**8  # the engine's weights are integer multiples of 1e-8
STAT_QUANTUM = Decimal("1e-10")
CAP_METHODS = frozenset({Method.MARKET_CAP, Method.INDEX, Method.BLACK_LITTERMAN})


class StrategyInputError(ValidationError):
    """Bad strategy input, named in the message; nothing was written."""


def _error(field: str, message: str) -> StrategyInputError:
    return StrategyInputError({field: [message]})


# --- parameters --------------------------------------------------------------------


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _error("parameters", f"parameter {name!r} must be a number")
    try:
        out = float(value)
    except ValueError:
        raise _error("parameters", f"parameter {name!r} must be a number") from None
    if not math.isfinite(out):
        raise _error("parameters", f"parameter {name!r} must be a finite number")
    return out


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error("parameters", f"parameter {name!r} must be an integer")
    return value


def _pair(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _error("parameters", f"parameter {name!r} must be a pair [minimum, maximum]")
    return (_number(name, value[0]), _number(name, value[1]))


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _error("parameters", f"parameter {name!r} must be an object")
    return {str(k): v for k, v in value.items()}


def _floats(name: str, value: Any) -> dict[str, float]:
    return {k: _number(f"{name}.{k}", v) for k, v in _mapping(name, value).items()}


def _symbols(name: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _error("parameters", f"parameter {name!r} must be a list of symbols")
    return [v.strip().upper() for v in value]


def _views(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list | tuple):
        raise _error("parameters", "parameter 'views' must be a list")
    out = []
    for i, item in enumerate(value):
        view = _mapping(f"views[{i}]", item)
        unknown = set(view) - {"asset", "value", "confidence", "relative_to"}
        if unknown or not isinstance(view.get("asset"), str):
            raise _error(
                "parameters",
                f"views[{i}] needs asset and value (and optionally confidence, relative_to)",
            )
        relative = view.get("relative_to")
        if relative is not None and not isinstance(relative, str):
            raise _error("parameters", f"views[{i}].relative_to must be a symbol")
        out.append(
            {
                "asset": view["asset"].upper(),
                "value": _number(f"views[{i}].value", view.get("value")),
                "confidence": _number(f"views[{i}].confidence", view.get("confidence", 0.5)),
                "relative_to": relative.upper() if relative else None,
            }
        )
    return out


HRP_LINKAGES = ("single", "complete", "average", "weighted", "centroid", "median", "ward")


def _choice(name: str, value: Any, choices: Iterable[str]) -> str:
    allowed = tuple(choices)
    if value not in allowed:
        raise _error("parameters", f"parameter {name!r} must be one of {', '.join(allowed)}")
    return str(value)


def _classes(name: str, value: dict[str, float]) -> dict[str, float]:
    for cls in value:
        if cls not in AssetClass.values:
            raise _error(
                "parameters",
                f"{name}: unknown asset class {cls!r}: one of {', '.join(AssetClass.values)}",
            )
    return value


_CONVERT: dict[str, Any] = {
    "lookback": _integer,
    "ema_span": _integer,
    "vol_lookback": _integer,
    "top_n": _integer,
    "risk_free_rate": _number,
    "max_weight": _number,
    "target_volatility": _number,
    "target_return": _number,
    "risk_aversion": _number,
    "tau": _number,
    "return_estimator": lambda n, v: _choice(n, v, [e.value for e in ReturnEstimator]),
    "covariance_estimator": lambda n, v: _choice(n, v, [e.value for e in CovarianceEstimator]),
    "hrp_linkage": lambda n, v: _choice(n, v, HRP_LINKAGES),
    "weight_bounds": _pair,
    "asset_bounds": lambda n, v: {
        k.upper(): _pair(f"{n}.{k}", b) for k, b in _mapping(n, v).items()
    },
    "class_min": lambda n, v: _classes(n, _floats(n, v)),
    "class_max": lambda n, v: _classes(n, _floats(n, v)),
    "fixed_weights": lambda n, v: {k.upper(): w for k, w in _floats(n, v).items()},
    "risky_sleeve": lambda n, v: {k.upper(): w for k, w in _floats(n, v).items()},
    "defensive_sleeve": lambda n, v: {k.upper(): w for k, w in _floats(n, v).items()},
    "exclusions": _symbols,
    "views": lambda n, v: _views(v),
}
PARAMETER_NAMES = tuple(sorted(_CONVERT))


def parameters_normalise(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-able parameters with every value checked and converted (symbols upper-case)."""
    if not isinstance(parameters, Mapping):
        raise _error("parameters", "parameters must be an object")
    unknown = sorted(set(parameters) - set(_CONVERT))
    if unknown:
        raise _error(
            "parameters",
            f"unknown parameter {unknown[0]!r}: one of {', '.join(PARAMETER_NAMES)}",
        )
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        if value is None:
            continue
        converted = _CONVERT[name](name, value)
        out[name] = list(converted) if isinstance(converted, tuple) else converted
    if "asset_bounds" in out:
        out["asset_bounds"] = {k: list(v) for k, v in out["asset_bounds"].items()}
    return out


def request_kwargs(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised (stored) parameters as OptimiseRequest keyword arguments."""
    kwargs: dict[str, Any] = dict(parameters)
    if "weight_bounds" in kwargs:
        kwargs["weight_bounds"] = tuple(kwargs["weight_bounds"])
    if "asset_bounds" in kwargs:
        kwargs["asset_bounds"] = {k: tuple(v) for k, v in kwargs["asset_bounds"].items()}
    if "exclusions" in kwargs:
        kwargs["exclusions"] = frozenset(kwargs["exclusions"])
    if "views" in kwargs:
        kwargs["views"] = tuple(View(**v) for v in kwargs["views"])
    return kwargs


SCREENING_FIELDS: dict[str, str] = {
    "min_history_days": "int",
    "min_avg_traded_value": "number",
    "volume_window": "int",
    "include_stablecoins": "bool",
    "max_volatility": "number",
    "max_drawdown": "number",
    "risk_window": "int",
}


def screening_normalise(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Screening rules of an index strategy, checked against the engine's ScreeningRules."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise _error("screening", "screening must be an object")
    out: dict[str, Any] = {}
    for name, value in data.items():
        kind = SCREENING_FIELDS.get(str(name))
        if kind is None:
            raise _error(
                "screening",
                f"unknown screening rule {name!r}: one of {', '.join(SCREENING_FIELDS)}",
            )
        if value is None:
            continue
        if kind == "bool":
            if not isinstance(value, bool):
                raise _error("screening", f"screening rule {name!r} must be true or false")
            out[name] = value
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _error("screening", f"screening rule {name!r} must be an integer")
            out[name] = value
        else:
            out[name] = _number(name, value)
    try:
        screening.ScreeningRules(**out)
    except StrategyError as exc:
        raise _error("screening", str(exc)) from None
    return out


def _universe_normalise(universe: Iterable[str]) -> list[str]:
    symbols = [str(s).strip().upper() for s in universe]
    if not symbols:
        raise _error("universe", "the universe is empty: name at least one asset")
    if len(symbols) > MAX_UNIVERSE:
        raise _error("universe", f"at most {MAX_UNIVERSE} assets")
    seen: set[str] = set()
    for symbol in symbols:
        if symbol in seen:
            raise _error("universe", f"asset {symbol!r} appears twice in the universe")
        seen.add(symbol)
    known = set(Asset.objects.filter(symbol__in=symbols).values_list("symbol", flat=True))
    missing = [s for s in symbols if s not in known]
    if missing:
        raise _error("universe", f"unknown asset {missing[0]!r}: no such asset on the platform")
    return symbols


def strategy_definition_validate(
    *, method: str, universe: Iterable[str], parameters: Mapping[str, Any]
) -> tuple[str, list[str], dict[str, Any]]:
    """(method, universe, parameters) checked against the engine's request; normalised."""
    try:
        method_value = Method(method).value
    except ValueError:
        raise _error(
            "method", f"unknown method {method!r}: one of {', '.join(m.value for m in Method)}"
        ) from None
    symbols = _universe_normalise(universe)
    params = parameters_normalise(parameters)
    named: set[str] = set(params.get("exclusions", ())) | set(params.get("asset_bounds", {}))
    for key in ("fixed_weights", "risky_sleeve", "defensive_sleeve"):
        named |= set(params.get(key, {}))
    for view in params.get("views", ()):
        named |= {view["asset"]} | ({view["relative_to"]} if view["relative_to"] else set())
    outside = sorted(named - set(symbols))
    if outside:
        raise _error(
            "parameters", f"asset {outside[0]!r} is named in parameters but not in the universe"
        )
    try:
        OptimiseRequest(
            method=Method(method_value),
            universe=tuple(symbols),
            prices=pd.DataFrame(),
            **request_kwargs(params),
        )
    except StrategyError as exc:
        raise _error("parameters", str(exc)) from None
    except TypeError as exc:  # pragma: no cover - guarded by parameters_normalise
        raise _error("parameters", str(exc)) from None
    return method_value, symbols, params


# --- strategies --------------------------------------------------------------------

_EDITABLE = (
    "name",
    "method",
    "universe",
    "parameters",
    "price_frequency",
    "screening",
    "status",
    "risk_level_min",
    "risk_level_max",
    "explanation",
)


def _snapshot(strategy: Strategy) -> dict[str, Any]:
    return {name: getattr(strategy, name) for name in _EDITABLE}


def _check_band(low: int, high: int) -> None:
    if not 1 <= low <= high <= 10:
        raise _error(
            "risk_level_max", f"risk band {low}..{high} must satisfy 1 <= min <= max <= 10"
        )


def strategy_create(
    *,
    actor: User | None,
    name: str,
    method: str,
    universe: Iterable[str],
    parameters: Mapping[str, Any] | None = None,
    price_frequency: str = PriceFrequency.DAILY,
    status: str = StrategyStatus.DRAFT,
    risk_level_min: int = 1,
    risk_level_max: int = 10,
    explanation: str = "",
    screening: Mapping[str, Any] | None = None,
    actor_label: str = "",
) -> Strategy:
    """A new strategy (draft unless told); audited as ``strategy.created``."""
    method_value, symbols, params = strategy_definition_validate(
        method=method, universe=universe, parameters=parameters or {}
    )
    rules = screening_normalise(screening)
    _check_band(risk_level_min, risk_level_max)
    if price_frequency not in PriceFrequency.values:
        raise _error("price_frequency", f"one of {', '.join(PriceFrequency.values)}")
    if status not in StrategyStatus.values:
        raise _error("status", f"one of {', '.join(StrategyStatus.values)}")
    if status == StrategyStatus.ACTIVE:
        raise _error("status", "a new strategy cannot be active: compute a version first")
    if Strategy.objects.filter(name=name).exists():
        raise _error("name", f"a strategy named {name!r} already exists")
    with transaction.atomic():
        strategy = Strategy.objects.create(
            name=name,
            method=method_value,
            universe=symbols,
            parameters=params,
            price_frequency=price_frequency,
            screening=rules,
            status=status,
            risk_level_min=risk_level_min,
            risk_level_max=risk_level_max,
            explanation=explanation or explain(method_value),
            created_by=actor,
        )
        audit_record(
            action="strategy.created",
            actor=actor,
            actor_label=actor_label,
            object_type="strategy",
            object_id=strategy.pk,
            payload=_snapshot(strategy),
        )
    return strategy


def strategy_update(
    *, strategy: Strategy, actor: User | None, actor_label: str = "", **changes: Any
) -> Strategy:
    """Change a strategy's definition or status; audited with the values before and after.

    Versions already computed never change; new computations use the new definition.
    """
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise _error(sorted(unknown)[0], "not an editable field of a strategy")
    with transaction.atomic():
        locked = Strategy.objects.select_for_update().get(pk=strategy.pk)
        before = _snapshot(locked)
        merged = {**before, **{k: v for k, v in changes.items() if v is not None}}
        if {"method", "universe", "parameters"} & set(changes):
            merged["method"], merged["universe"], merged["parameters"] = (
                strategy_definition_validate(
                    method=merged["method"],
                    universe=merged["universe"],
                    parameters=merged["parameters"],
                )
            )
            if (
                "explanation" not in changes
                and merged["method"] != before["method"]
                and before["explanation"] == explain(before["method"])
            ):
                merged["explanation"] = explain(merged["method"])
        if "screening" in changes:
            merged["screening"] = screening_normalise(merged["screening"])
        _check_band(merged["risk_level_min"], merged["risk_level_max"])
        if merged["price_frequency"] not in PriceFrequency.values:
            raise _error("price_frequency", f"one of {', '.join(PriceFrequency.values)}")
        if merged["status"] not in StrategyStatus.values:
            raise _error("status", f"one of {', '.join(StrategyStatus.values)}")
        if merged["name"] != before["name"] and (
            Strategy.objects.filter(name=merged["name"]).exclude(pk=locked.pk).exists()
        ):
            raise _error("name", f"a strategy named {merged['name']!r} already exists")
        if (
            merged["status"] == StrategyStatus.ACTIVE
            and before["status"] != StrategyStatus.ACTIVE
            and not StrategyVersion.objects.filter(strategy=locked).exists()
        ):
            raise _error("status", "compute a version before activating the strategy")
        changed = {k: v for k, v in merged.items() if v != before[k]}
        if not changed:
            return locked
        for key, value in changed.items():
            setattr(locked, key, value)
        locked.save()
        audit_record(
            action="strategy.updated",
            actor=actor,
            actor_label=actor_label,
            object_type="strategy",
            object_id=locked.pk,
            payload={
                "before": {k: before[k] for k in changed},
                "after": changed,
            },
        )
    return locked


# --- versions ----------------------------------------------------------------------


def strategy_request_build(
    *, strategy: Strategy, as_of: dt.date | None = None, **overrides: Any
) -> OptimiseRequest:
    """The engine request of ``strategy`` on usable prices up to ``as_of`` (default: all)."""
    return strategy_request_and_screening(strategy=strategy, as_of=as_of, **overrides)[0]


def _exclusion_record(e: screening.Exclusion) -> dict[str, Any]:
    def finite(x: float | None) -> float | None:
        return x if x is None or math.isfinite(x) else None

    return {
        "symbol": e.symbol,
        "rule": e.rule,
        "measured": finite(e.measured),
        "limit": finite(e.limit),
        "reason": e.reason,
    }


def strategy_request_and_screening(
    *, strategy: Strategy, as_of: dt.date | None = None, **overrides: Any
) -> tuple[OptimiseRequest, list[dict[str, Any]]]:
    """The engine request and, for an index, the screening's exclusions with reasons.

    An index universe is screened (``strategy.screening``: history, traded value,
    stablecoins unless asked for, volatility and drawdown ceilings) on the prices up
    to the last date used; the screened-out assets join the exclusions.
    """
    symbols = list(strategy.universe)
    try:
        matrix = price_matrix(symbols=symbols, end=as_of, frequency=strategy.price_frequency)
    except KeyError as exc:
        raise _error("universe", str(exc.args[0])) from None
    matrix = matrix.dropna(how="all").ffill()  # a held day carries the last usable close
    if matrix.empty:
        raise _error(
            "universe",
            f"no usable {strategy.price_frequency} prices for {', '.join(symbols)}"
            + (f" on or before {as_of}" if as_of else ""),
        )
    for symbol in symbols:
        if matrix[symbol].isna().all():
            raise _error(
                "universe",
                f"too little price history: {symbol!r} has no usable "
                f"{strategy.price_frequency} price" + (f" on or before {as_of}" if as_of else ""),
            )
    frequency = periods_per_year(symbols=symbols, frequency=strategy.price_frequency)
    kwargs = request_kwargs(strategy.parameters)
    kwargs.setdefault("lookback", 36 if frequency == 12 else 252)
    method = Method(strategy.method)
    if method in CAP_METHODS:
        last = matrix.index[-1].date()
        kwargs["market_caps"] = market_cap_latest(symbols=symbols, as_of=last)
    kwargs["asset_classes"] = dict(
        Asset.objects.filter(symbol__in=symbols).values_list("symbol", "asset_class")
    )
    screened: list[dict[str, Any]] = []
    if method is Method.INDEX:
        try:
            rules = screening.ScreeningRules(
                **{"frequency": frequency, **dict(strategy.screening or {})}
            )
            volumes = None
            if rules.min_avg_traded_value is not None:
                volumes = volume_matrix(
                    symbols=symbols,
                    frequency=strategy.price_frequency,
                    end=matrix.index[-1].date(),
                )
            result = screening.screen(
                symbols,
                matrix,
                rules,
                volumes=volumes,
                asset_classes=kwargs["asset_classes"],
                as_of=matrix.index[-1],
            )
        except (StrategyError, TypeError) as exc:
            raise _error("screening", str(exc)) from None
        screened = [_exclusion_record(e) for e in result.excluded]
        if result.excluded_symbols:
            kwargs["exclusions"] = frozenset(kwargs.get("exclusions", ())) | set(
                result.excluded_symbols
            )
    kwargs.update(overrides)
    try:
        request = OptimiseRequest(
            method=method,
            universe=tuple(symbols),
            prices=matrix,
            frequency=frequency,
            **kwargs,
        )
    except StrategyError as exc:
        raise _error("parameters", str(exc)) from None
    return request, screened


def weights_to_decimal_strings(weights: Mapping[str, float]) -> dict[str, str]:
    """The engine's weights (multiples of 1e-8) as decimal strings summing to exactly 1."""
    units = {s: round(float(w) * UNIT) for s, w in weights.items()}
    residual = UNIT - sum(units.values())
    if residual and units:
        # never more than a unit or two of float noise; the largest weight absorbs it
        largest = max(units, key=lambda s: (units[s], s))
        units[largest] += residual
    return {s: format((Decimal(u) / UNIT).quantize(WEIGHT_QUANTUM), "f") for s, u in units.items()}


def _stat(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(STAT_QUANTUM)


def strategy_optimise(*, strategy: Strategy, as_of: dt.date | None = None) -> OptimiseResult:
    """Run the engine on the strategy's current definition (writes nothing)."""
    request = strategy_request_build(strategy=strategy, as_of=as_of)
    try:
        return optimise(request)
    except StrategyError as exc:
        raise _error("parameters", str(exc)) from None


def strategy_version_compute(
    *,
    strategy: Strategy,
    as_of: dt.date | None = None,
    trigger: str = VersionTrigger.USER,
    actor: User | None = None,
    actor_label: str = "",
) -> tuple[StrategyVersion, bool]:
    """Compute and store a model version; (version, created).

    Inputs identical to an existing version's (same fingerprint: parameters, prices as
    of and the price window's digest) return that version and write nothing. Bad input
    raises :class:`StrategyInputError` and writes nothing.
    """
    if trigger not in VersionTrigger.values:
        raise _error(
            "trigger", f"trigger {trigger!r} must be one of {', '.join(VersionTrigger.values)}"
        )
    if strategy.status == StrategyStatus.RETIRED:
        raise _error("status", "the strategy is retired: no new version")
    request, screened = strategy_request_and_screening(strategy=strategy, as_of=as_of)
    try:
        result = optimise(request)
    except StrategyError as exc:
        raise _error("parameters", str(exc)) from None
    details = result.to_record()["details"]
    if screened:
        details["screening"] = screened
    label = actor_label or (actor.get_username() if actor else str(trigger))
    with transaction.atomic():
        locked = Strategy.objects.select_for_update().get(pk=strategy.pk)
        existing = StrategyVersion.objects.filter(
            strategy=locked, fingerprint=result.fingerprint
        ).first()
        if existing is not None:
            return existing, False
        last = StrategyVersion.objects.filter(strategy=locked).aggregate(n=Max("number"))["n"]
        weights = weights_to_decimal_strings(result.weights)
        version = StrategyVersion.objects.create(
            strategy=locked,
            number=(last or 0) + 1,
            method=result.method.value,
            inputs=request_parameters(request),
            weights=weights,
            fingerprint=result.fingerprint,
            prices_as_of=dt.date.fromisoformat(result.prices_as_of[:10]),
            prices_digest=result.prices_digest,
            expected_return=_stat(result.expected_return),
            volatility=_stat(result.volatility),
            sharpe_ratio=_stat(result.sharpe_ratio),
            risk_free_rate=_stat(result.risk_free_rate),
            details=details,
            trigger=trigger,
            triggered_by=actor,
            trigger_label=label,
        )
        audit_record(
            action="strategy.version_computed",
            actor=actor,
            actor_label=label,
            object_type="strategy_version",
            object_id=version.pk,
            payload={
                "strategy": locked.pk,
                "strategy_name": locked.name,
                "number": version.number,
                "trigger": trigger,
                "as_of": as_of.isoformat() if as_of else None,
                "fingerprint": version.fingerprint,
                "prices_as_of": result.prices_as_of,
                "prices_digest": result.prices_digest,
                "inputs": version.inputs,
                "weights": weights,
                "expected_return": str(version.expected_return),
                "volatility": str(version.volatility),
                "sharpe_ratio": str(version.sharpe_ratio),
                "screening": screened,
            },
        )
    return version, True


# --- customised versions -----------------------------------------------------------


def customisation_from_data(data: Mapping[str, Any] | None) -> customise.Customisation:
    """A Customisation from JSON (excluded_assets, excluded_tags, asset_bounds, class_tilts)."""
    data = dict(data or {})
    unknown = set(data) - {"excluded_assets", "excluded_tags", "asset_bounds", "class_tilts"}
    if unknown:
        raise _error("customisation", f"unknown key {sorted(unknown)[0]!r}")
    try:
        return customise.Customisation(
            excluded_assets=frozenset(s.upper() for s in data.get("excluded_assets", ())),
            excluded_tags=frozenset(data.get("excluded_tags", ())),
            asset_bounds={
                k.upper(): (float(v[0]), float(v[1]))
                for k, v in dict(data.get("asset_bounds", {})).items()
            },
            class_tilts={k: float(v) for k, v in dict(data.get("class_tilts", {})).items()},
        )
    except StrategyError as exc:
        raise _error("customisation", str(exc)) from None
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        raise _error("customisation", f"malformed customisation ({exc})") from None


def _tags_of(symbols: Iterable[str]) -> dict[str, list[str]]:
    return {
        symbol: sorted(tags)
        for symbol, tags in Asset.objects.filter(symbol__in=list(symbols)).values_list(
            "symbol", "tags"
        )
    }


def customised_signature(
    version: StrategyVersion,
    customisation: customise.Customisation | None,
    *,
    asset_tags: Mapping[str, Iterable[str]] | None = None,
) -> str:
    """The engine's signature of (version, customisation).

    Excluded tags are resolved against the assets' tags, so the tags in force are
    folded into the version part of the signature (a re-tagged asset signs anew).
    """
    key = f"strategy-version:{version.pk}"
    if customisation is not None and customisation.excluded_tags:
        tags = asset_tags if asset_tags is not None else _tags_of(version.weights)
        text = json.dumps({k: sorted(v) for k, v in tags.items()}, sort_keys=True)
        key += ":tags:" + hashlib.sha256(text.encode()).hexdigest()
    return customise.signature(key, customisation)


def customised_version_get_or_compute(
    *,
    version: StrategyVersion,
    customisation: customise.Customisation | None,
    actor: User | None = None,
    actor_label: str = "",
) -> tuple[CustomisedVersion, bool]:
    """The customised weights of ``version`` for ``customisation``; (row, created).

    One row per distinct signature, shared by every portfolio with that signature.
    """
    tags = _tags_of(version.weights) if customisation and customisation.excluded_tags else {}
    sig = customised_signature(version, customisation, asset_tags=tags)
    existing = CustomisedVersion.objects.filter(signature=sig).first()
    if existing is not None:
        return existing, False
    classes = dict(version.inputs.get("asset_classes") or {})
    try:
        weights = customise.customise_weights(
            {s: float(Decimal(w)) for s, w in version.weights.items()},
            customisation,
            asset_classes=classes,
            asset_tags=tags,
        )
    except StrategyError as exc:
        raise _error("customisation", str(exc)) from None
    cust = customisation or customise.EMPTY
    try:
        with transaction.atomic():
            row = CustomisedVersion.objects.create(
                version=version,
                signature=sig,
                customisation=cust.canonical(),
                weights=weights_to_decimal_strings(weights),
            )
            audit_record(
                action="strategy.customised_version_computed",
                actor=actor,
                actor_label=actor_label or (actor.get_username() if actor else "system"),
                object_type="customised_version",
                object_id=row.pk,
                payload={
                    "version": version.pk,
                    "signature": sig,
                    "customisation": row.customisation,
                    "weights": row.weights,
                },
            )
    except IntegrityError:  # computed concurrently by another worker: share theirs
        return CustomisedVersion.objects.get(signature=sig), False
    return row, True


def customised_versions_get_or_compute_many(
    *,
    pairs: Sequence[tuple[StrategyVersion, customise.Customisation | None]],
    actor: User | None = None,
    actor_label: str = "",
) -> list[CustomisedVersion]:
    """The customised version of each (version, customisation) pair, in order.

    For a batch (a rebalance run's portfolios): one query for the signatures already
    stored, one computation per distinct new signature, one bulk insert and one audit
    append; pairs that share a signature share one row. A customisation that cannot
    be applied raises :class:`StrategyInputError` naming the version and the problem,
    and nothing is written.
    """
    if not pairs:
        return []
    tagged = any(c is not None and c.excluded_tags for _, c in pairs)
    tags: dict[str, list[str]] = {}
    if tagged:
        symbols = {s for v, _ in pairs for s in v.weights}
        tags = _tags_of(symbols)
    sigs = [
        customised_signature(
            v,
            c,
            asset_tags={s: tags[s] for s in v.weights if s in tags}
            if c is not None and c.excluded_tags
            else None,
        )
        for v, c in pairs
    ]
    found = {
        row.signature: row for row in CustomisedVersion.objects.filter(signature__in=set(sigs))
    }
    todo: dict[str, tuple[StrategyVersion, customise.Customisation]] = {}
    for sig, (version, cust) in zip(sigs, pairs, strict=True):
        if sig not in found and sig not in todo:
            todo[sig] = (version, cust or customise.EMPTY)
    firm = require_firm()  # bulk_create bypasses save(), which stamps the firm
    if any(v.firm_id != firm.pk for v, _ in pairs):
        raise TenancyError("customised versions are computed in the version's own firm only")
    rows: list[CustomisedVersion] = []
    for sig, (version, cust) in todo.items():
        try:
            weights = customise.customise_weights(
                {s: float(Decimal(w)) for s, w in version.weights.items()},
                cust,
                asset_classes=dict(version.inputs.get("asset_classes") or {}),
                asset_tags=tags,
            )
        except StrategyError as exc:
            raise _error("customisation", f"strategy version {version.number}: {exc}") from None
        rows.append(
            CustomisedVersion(
                firm_id=firm.pk,
                version=version,
                signature=sig,
                customisation=cust.canonical(),
                weights=weights_to_decimal_strings(weights),
            )
        )
    if rows:
        with transaction.atomic():
            CustomisedVersion.objects.bulk_create(rows, ignore_conflicts=True)
            stored = CustomisedVersion.objects.filter(signature__in=list(todo))
            found.update({row.signature: row for row in stored})
            label = actor_label or (actor.get_username() if actor else "system")
            audit_record_many(
                entries=[
                    AuditEntry(
                        action="strategy.customised_version_computed",
                        actor=actor,
                        actor_label=label,
                        object_type="customised_version",
                        object_id=found[row.signature].pk,
                        payload={
                            "version": row.version_id,
                            "signature": row.signature,
                            "customisation": row.customisation,
                            "weights": row.weights,
                        },
                    )
                    for row in rows
                ]
            )
    return [found[sig] for sig in sigs]


# --- recommendation ----------------------------------------------------------------


def strategy_recommend(
    *,
    risk_level: int,
    symbols: Iterable[str],
    price_frequency: str = PriceFrequency.MONTHLY,
    backtest_start: dt.date | None = None,
    backtest_end: dt.date | None = None,
    costs_bps: float = 5.0,
    weight_bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Recommended method and parameters for ``risk_level`` on ``symbols``, computed on
    usable prices, and the backtested trade-off of the alternatives. Writes nothing."""
    universe = _universe_normalise(symbols)
    probe = Strategy(
        name="recommendation",
        method=Method.EFFICIENT_RISK.value,
        universe=universe,
        parameters={},
        price_frequency=price_frequency,
    )
    base = strategy_request_build(strategy=probe)
    frequency = base.frequency
    prices = base.prices.dropna()
    available = len(prices.dropna())
    lookback = min(5 * frequency, max(2, available - 1))
    inputs: dict[str, Any] = {
        "universe": base.universe,
        "prices": prices,
        "frequency": frequency,
        "asset_classes": dict(base.asset_classes),
    }
    if weight_bounds is not None:
        inputs["weight_bounds"] = weight_bounds
    try:
        rec, result = recommend_and_optimise(risk_level, lookback=lookback, **inputs)
    except StrategyError as exc:
        raise _error("symbols", str(exc)) from None
    start = backtest_start
    if start is None:
        # halfway through the common history: the first half is the alternatives' lookback
        full = prices.dropna()
        position = min(len(full) - 1, max(0, len(full) // 2))
        start = full.index[position].date()
    try:
        alternatives = backtest_alternatives(
            risk_level,
            start=pd.Timestamp(start),
            end=pd.Timestamp(backtest_end) if backtest_end else None,
            bps=costs_bps,
            lookback=min(lookback, max(2, len(prices.loc[: pd.Timestamp(start)].dropna()) - 1)),
            **inputs,
        )
    except ValueError as exc:
        alternatives = [{"method": rec.method.value, "recommended": True, "error": str(exc)}]
    parameters = {
        k: (v.value if isinstance(v, Method) or hasattr(v, "value") else v)
        for k, v in rec.parameters.items()
    }
    parameters["lookback"] = lookback
    if isinstance(parameters.get("weight_bounds"), tuple):
        parameters["weight_bounds"] = list(parameters["weight_bounds"])
    return {
        "risk_level": rec.risk_level,
        "method": rec.method.value,
        "target_volatility": rec.target_volatility,
        "parameters": parameters,
        "explanation": rec.explanation,
        "weights": weights_to_decimal_strings(result.weights),
        "expected_return": result.expected_return,
        "volatility": result.volatility,
        "sharpe_ratio": result.sharpe_ratio,
        "prices_as_of": result.prices_as_of,
        "backtest_start": start.isoformat(),
        "alternatives": alternatives,
    }


def version_frontier_request(version: StrategyVersion) -> OptimiseRequest:
    """The request that reproduces ``version``'s price window, for frontier charts."""
    strategy = version.strategy
    request = strategy_request_build(strategy=strategy, as_of=version.prices_as_of)
    inputs = version.inputs
    return dataclasses.replace(
        request,
        lookback=int(inputs.get("lookback", request.lookback)),
    )


__all__ = [
    "PARAMETER_NAMES",
    "StrategyInputError",
    "customisation_from_data",
    "customised_signature",
    "customised_version_get_or_compute",
    "customised_versions_get_or_compute_many",
    "parameters_normalise",
    "strategy_create",
    "strategy_definition_validate",
    "strategy_optimise",
    "strategy_recommend",
    "strategy_request_build",
    "strategy_update",
    "strategy_version_compute",
    "version_frontier_request",
    "weights_to_decimal_strings",
]


def strategy_versions_recompute(
    *, trigger: str = VersionTrigger.SCHEDULE, as_of: dt.date | None = None
) -> dict[str, Any]:
    """Recompute every active strategy of the current firm (the schedule's job).

    Each strategy in its own savepoint: one that fails (say, a price held for review
    leaves too little history) is reported by name and the others go on. A strategy
    whose inputs have not changed keeps its version (same fingerprint, nothing
    written); changed prices make a new version, audited like any other.
    """
    created: list[dict[str, Any]] = []
    unchanged: list[str] = []
    failed: dict[str, list[str]] = {}
    for strategy in Strategy.objects.filter(status=StrategyStatus.ACTIVE).order_by("name", "id"):
        try:
            with transaction.atomic():
                version, new = strategy_version_compute(
                    strategy=strategy, as_of=as_of, trigger=trigger, actor_label=str(trigger)
                )
        except StrategyInputError as exc:
            failed[strategy.name] = [str(m) for m in exc.messages]
            continue
        if new:
            created.append({"strategy": strategy.name, "number": version.number})
        else:
            unchanged.append(strategy.name)
    return {"created": created, "unchanged": unchanged, "failed": failed}
