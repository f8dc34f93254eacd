"""Per-client customisation of a strategy, computed once per distinct signature.

A client's restrictions (:class:`Customisation`: excluded assets, excluded tags,
per-asset bounds, asset-class tilts) turn a strategy version's weights into
customised weights. Applied in this order:

1. exclusions: every excluded asset, and every asset carrying an excluded tag,
   drops to zero; the others are scaled up proportionally;
2. class tilts: a tilt ``t`` on a class moves that class's total to
   ``total + t`` (clipped to [0, 1]), scaling its assets proportionally (equally
   when the class held nothing); the untilted classes absorb the difference in
   proportion to their weights;
3. per-asset bounds: weights are clipped to their bounds and the excess or
   shortfall is spread proportionally over the assets with room left;
4. rounding once (multiples of 1e-8 summing to 1, see ``optimise.rounding``).

The signature of (strategy version, customisation) is the sha256 of their
canonical JSON: an empty customisation and ``None`` sign alike, order of
assets/tags/keys never matters, floats are compared by value. Tags are resolved
at application time from the asset data passed in; a caller whose asset tags
can change should fold their version into ``strategy_version``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from portfolios.engine.optimise.rounding import FloatArray, round_weights
from portfolios.engine.types import (
    InfeasibleStrategy,
    InvalidParameter,
    OptimiseRequest,
    UnknownAsset,
)

T = TypeVar("T")
SIGNATURE_VERSION = 1


@dataclass(frozen=True)
class Customisation:
    excluded_assets: frozenset[str] = frozenset()
    excluded_tags: frozenset[str] = frozenset()
    asset_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    class_tilts: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "excluded_assets", frozenset(self.excluded_assets))
        object.__setattr__(self, "excluded_tags", frozenset(self.excluded_tags))
        bounds: dict[str, tuple[float, float]] = {}
        for sym, (lo, hi) in dict(self.asset_bounds).items():
            lo_f, hi_f = float(lo), float(hi)
            if not (math.isfinite(lo_f) and math.isfinite(hi_f)) or lo_f < 0 or hi_f > 1:
                raise InvalidParameter(f"bounds of {sym!r} ({lo}, {hi}) must lie within [0, 1]")
            if lo_f > hi_f:
                raise InfeasibleStrategy(f"bounds of {sym!r}: minimum {lo_f:g} > maximum {hi_f:g}")
            bounds[str(sym)] = (lo_f, hi_f)
        tilts: dict[str, float] = {}
        for cls, t in dict(self.class_tilts).items():
            t_f = float(t)
            if not math.isfinite(t_f) or abs(t_f) > 1:
                raise InvalidParameter(f"tilt of class {cls!r} ({t}) must be in [-1, 1]")
            if t_f != 0:
                tilts[str(cls)] = t_f
        object.__setattr__(self, "asset_bounds", MappingProxyType(bounds))
        object.__setattr__(self, "class_tilts", MappingProxyType(tilts))

    def __hash__(self) -> int:
        return hash(json.dumps(self.canonical(), sort_keys=True))

    @property
    def is_empty(self) -> bool:
        return not (
            self.excluded_assets or self.excluded_tags or self.asset_bounds or self.class_tilts
        )

    def canonical(self) -> dict[str, Any]:
        return {
            "excluded_assets": sorted(self.excluded_assets),
            "excluded_tags": sorted(self.excluded_tags),
            "asset_bounds": {
                k: [repr(lo + 0.0), repr(hi + 0.0)]
                for k, (lo, hi) in sorted(self.asset_bounds.items())
            },
            "class_tilts": {k: repr(v + 0.0) for k, v in sorted(self.class_tilts.items())},
        }


EMPTY = Customisation()


def signature(strategy_version: str, customisation: Customisation | None) -> str:
    """sha256 hex of the canonical (strategy version, customisation) pair."""
    cust = customisation or EMPTY
    payload = {
        "v": SIGNATURE_VERSION,
        "strategy_version": str(strategy_version),
        "customisation": cust.canonical(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def excluded_symbols(
    symbols: Iterable[str],
    customisation: Customisation,
    asset_tags: Mapping[str, Iterable[str]] | None = None,
) -> frozenset[str]:
    """The symbols the customisation excludes, directly or through a tag."""
    tags = asset_tags or {}
    out = set()
    for sym in symbols:
        if sym in customisation.excluded_assets or (
            customisation.excluded_tags & set(tags.get(sym, ()))
        ):
            out.add(sym)
    return frozenset(out)


def customise_weights(
    weights: Mapping[str, float],
    customisation: Customisation | None,
    *,
    asset_classes: Mapping[str, str] | None = None,
    asset_tags: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, float]:
    """The customised weights (same keys, excluded assets at 0), rounded once."""
    cust = customisation or EMPTY
    symbols = list(weights)
    if not symbols:
        raise InfeasibleStrategy("the strategy holds no asset")
    w = np.array([float(weights[s]) for s in symbols], dtype=np.float64)
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InvalidParameter("strategy weights must be finite, >= 0 and sum to a positive total")
    w = w / w.sum()
    if cust.is_empty:
        return dict(zip(symbols, (float(x) for x in round_weights(w)), strict=True))

    # 1. exclusions
    out = excluded_symbols(symbols, cust, asset_tags)
    allowed = np.array([s not in out for s in symbols], dtype=bool)
    if not allowed.any():
        raise InfeasibleStrategy("the customisation excludes every asset of the strategy")
    w[~allowed] = 0.0
    if w.sum() <= 0:
        raise InfeasibleStrategy("the customisation excludes every asset the strategy holds")
    w = w / w.sum()

    # 2. class tilts
    if cust.class_tilts:
        w = _tilt(w, symbols, allowed, cust.class_tilts, dict(asset_classes or {}))

    # 3. per-asset bounds
    lower = np.zeros(len(symbols))
    upper = np.where(allowed, 1.0, 0.0)
    for sym, (lo, hi) in cust.asset_bounds.items():
        if sym not in weights:
            if lo > 0:
                raise UnknownAsset(
                    f"minimum weight {lo:g} for {sym!r}, which the strategy does not hold"
                )
            continue
        i = symbols.index(sym)
        if not allowed[i]:
            if lo > 0:
                raise InfeasibleStrategy(f"minimum weight {lo:g} for excluded asset {sym!r}")
            continue
        lower[i], upper[i] = lo, hi
    w = bounded_redistribute(w, lower, upper)
    return dict(zip(symbols, (float(x) for x in round_weights(w, lower, upper)), strict=True))


def _tilt(
    w: FloatArray,
    symbols: list[str],
    allowed: NDArray[np.bool_],
    tilts: Mapping[str, float],
    classes: Mapping[str, str],
) -> FloatArray:
    cls_of = np.array([classes.get(s, "") for s in symbols], dtype=object)
    tilted = np.zeros(len(symbols), dtype=bool)
    new = w.copy()
    for cls, t in tilts.items():
        members = (cls_of == cls) & allowed
        if not members.any():
            raise InfeasibleStrategy(
                f"tilt {t:+g} on asset class {cls!r}, which the strategy does not hold"
            )
        total = float(w[members].sum())
        goal = min(max(total + t, 0.0), 1.0)
        if total > 0:
            new[members] = w[members] * (goal / total)
        else:
            new[members] = goal / members.sum()
        tilted |= members
    rest = allowed & ~tilted
    remaining = 1.0 - float(new[tilted].sum())
    rest_total = float(w[rest].sum())
    if remaining < -1e-12:
        raise InfeasibleStrategy(f"class tilts add up to {1 - remaining:.6g} > 1 of the portfolio")
    if rest_total > 0:
        new[rest] = w[rest] * (remaining / rest_total)
    elif remaining > 1e-12:
        if not rest.any():
            raise InfeasibleStrategy("class tilts leave weight that no other asset class can take")
        new[rest] = remaining / rest.sum()
    out: FloatArray = new / new.sum()
    return out


def bounded_redistribute(w: FloatArray, lower: FloatArray, upper: FloatArray) -> FloatArray:
    """Clip ``w`` (summing to 1) to [lower, upper] and spread the difference proportionally.

    The excess (or shortfall) goes to the assets that still have room, in
    proportion to their weights (equally among them when they all weigh 0),
    repeated until nothing is out of bounds; at most n rounds.
    """
    lo_sum, hi_sum = float(lower.sum()), float(upper.sum())
    if lo_sum > 1 + 1e-9:
        raise InfeasibleStrategy(f"customised minimum weights sum to {lo_sum:.6g} > 1")
    if hi_sum < 1 - 1e-9:
        raise InfeasibleStrategy(f"customised maximum weights sum to {hi_sum:.6g} < 1")
    x: FloatArray = np.clip(w, lower, upper)
    for _ in range(len(x) + 1):
        residual = 1.0 - float(x.sum())
        if abs(residual) < 1e-13:
            break
        room = (x < upper - 1e-15) if residual > 0 else (x > lower + 1e-15)
        if not room.any():  # pragma: no cover - excluded by the sum checks above
            raise InfeasibleStrategy("no asset has room left within its bounds")
        base = x[room]
        share = base / base.sum() if base.sum() > 0 else np.full(base.size, 1 / base.size)
        x[room] = np.clip(base + residual * share, lower[room], upper[room])
    return x


def customise_request(
    request: OptimiseRequest,
    customisation: Customisation | None,
    *,
    asset_tags: Mapping[str, Iterable[str]] | None = None,
) -> OptimiseRequest:
    """The strategy's request with the client's exclusions and bounds folded in.

    Exclusions add to the strategy's; a client's bounds intersect the strategy's
    (the larger minimum, the smaller maximum). Class tilts are not part of an
    optimisation: apply them to the result with :func:`customise_weights`.
    """
    cust = customisation or EMPTY
    out = excluded_symbols(request.universe, cust, asset_tags)
    bounds = dict(request.asset_bounds)
    glo, ghi = request.weight_bounds
    for sym, (lo, hi) in cust.asset_bounds.items():
        if sym not in request.universe:
            raise UnknownAsset(f"bounds given for unknown asset {sym!r} (not in universe)")
        slo, shi = bounds.get(sym, (glo, ghi))
        bounds[sym] = (max(float(slo), lo), min(float(shi), hi))
    return replace(request, exclusions=frozenset(request.exclusions) | out, asset_bounds=bounds)


@dataclass(frozen=True)
class SharedResults(Generic[T]):
    """Results of N (strategy version, customisation) pairs, computed once per signature.

    ``signatures[i]`` is pair i's signature; ``by_signature`` its result;
    ``computed`` how many computations ran (the number of distinct signatures).
    Portfolios sharing a signature share the very same result object: treat it
    as read-only.
    """

    signatures: tuple[str, ...]
    by_signature: Mapping[str, T]

    @property
    def computed(self) -> int:
        return len(self.by_signature)

    def __getitem__(self, i: int) -> T:
        return self.by_signature[self.signatures[i]]

    def __len__(self) -> int:
        return len(self.signatures)

    def results(self) -> list[T]:
        return [self.by_signature[s] for s in self.signatures]


def compute_shared(
    pairs: Sequence[tuple[Hashable, Customisation | None]],
    compute: Callable[[Hashable, Customisation], T],
) -> SharedResults[T]:
    """Compute ``compute(strategy_version, customisation)`` once per distinct signature.

    The rebalancer passes one pair per portfolio; portfolios sharing a strategy
    version and an equal customisation share one result object.
    """
    sigs: list[str] = []
    firsts: dict[str, tuple[Hashable, Customisation]] = {}
    for version, cust in pairs:
        sig = signature(str(version), cust)
        sigs.append(sig)
        if sig not in firsts:
            firsts[sig] = (version, cust or EMPTY)
    results = {sig: compute(version, cust) for sig, (version, cust) in firsts.items()}
    return SharedResults(signatures=tuple(sigs), by_signature=MappingProxyType(results))
