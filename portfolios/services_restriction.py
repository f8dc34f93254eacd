"""A client's restrictions on their strategies: stored, validated, audited.

:func:`client_restriction_set` replaces a client's restrictions (excluded assets and
tags, per-asset bounds, asset-class tilts, a note) after checking every field against
the platform's assets, tags and classes; :func:`client_restriction_clear` removes
them. Both write their audit event in the same transaction. The rebalancer reads the
restrictions as engine customisations through
:func:`portfolios.selectors_strategy.customisations_for_clients`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Client, Firm, User
from accounts.tenancy.context import TenancyError, firm_context
from compliance.services import audit_record
from portfolios.models_market import Asset, AssetClass
from portfolios.models_strategy import ClientRestriction, Strategy
from portfolios.selectors_strategy import client_restriction_get, strategy_version_current
from portfolios.services_strategy import customised_version_get_or_compute

RESTRICTION_FIELDS = ("excluded_assets", "excluded_tags", "asset_bounds", "class_tilts", "note")
MAX_NOTE = 2000


def _error(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _number(field: str, label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _error(field, f"{label} must be a number")
    try:
        out = float(value)
    except ValueError:
        raise _error(field, f"{label} must be a number") from None
    if not math.isfinite(out):
        raise _error(field, f"{label} must be a finite number")
    return out


def _strings(field: str, value: Any, *, upper: bool = False) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _error(field, "must be a list of strings")
    out: list[str] = []
    for item in value:
        item = item.strip().upper() if upper else item.strip()
        if not item:
            raise _error(field, "must not contain blank entries")
        if item not in out:
            out.append(item)
    return out


def _known_symbols(symbols: set[str]) -> set[str]:
    return set(Asset.objects.filter(symbol__in=sorted(symbols)).values_list("symbol", flat=True))


def _known_tags() -> set[str]:
    tags: set[str] = set()
    for row in Asset.objects.exclude(tags=[]).values_list("tags", flat=True):
        tags.update(row)
    return tags


def client_restriction_validate(data: Mapping[str, Any]) -> dict[str, Any]:
    """The restrictions in stored form, every field checked; a ValidationError names the
    field (and the symbol, tag or class) at fault."""
    if not isinstance(data, Mapping):
        raise _error("restrictions", "must be an object")
    unknown = sorted(set(data) - set(RESTRICTION_FIELDS))
    if unknown:
        raise _error(unknown[0], f"unknown field: one of {', '.join(RESTRICTION_FIELDS)}")

    assets = _strings("excluded_assets", data.get("excluded_assets"), upper=True)
    tags = _strings("excluded_tags", data.get("excluded_tags"))

    raw_bounds = data.get("asset_bounds") or {}
    if not isinstance(raw_bounds, Mapping):
        raise _error("asset_bounds", "must be an object {symbol: [minimum, maximum]}")
    bounds: dict[str, list[float]] = {}
    for key, pair in raw_bounds.items():
        symbol = str(key).strip().upper()
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise _error("asset_bounds", f"{symbol}: must be a pair [minimum, maximum]")
        lo = _number("asset_bounds", f"{symbol} minimum", pair[0])
        hi = _number("asset_bounds", f"{symbol} maximum", pair[1])
        if not (0 <= lo <= 1 and 0 <= hi <= 1):
            raise _error("asset_bounds", f"{symbol}: bounds [{lo:g}, {hi:g}] must lie in [0, 1]")
        if lo > hi:
            raise _error("asset_bounds", f"{symbol}: minimum {lo:g} is above maximum {hi:g}")
        if symbol in assets and lo > 0:
            raise _error("asset_bounds", f"{symbol}: a minimum weight for an excluded asset")
        bounds[symbol] = [lo, hi]

    raw_tilts = data.get("class_tilts") or {}
    if not isinstance(raw_tilts, Mapping):
        raise _error("class_tilts", "must be an object {asset class: tilt}")
    tilts: dict[str, float] = {}
    for key, value in raw_tilts.items():
        cls = str(key).strip()
        if cls not in AssetClass.values:
            raise _error(
                "class_tilts",
                f"unknown asset class {cls!r}: one of {', '.join(AssetClass.values)}",
            )
        tilt = _number("class_tilts", f"tilt of {cls}", value)
        if not -1 <= tilt <= 1:
            raise _error("class_tilts", f"tilt of {cls} ({tilt:g}) must lie in [-1, 1]")
        if tilt != 0:
            tilts[cls] = tilt

    note = data.get("note") or ""
    if not isinstance(note, str):
        raise _error("note", "must be text")
    if len(note) > MAX_NOTE:
        raise _error("note", f"at most {MAX_NOTE} characters")

    named = set(assets) | set(bounds)
    known = _known_symbols(named)
    for field, symbols in (("excluded_assets", assets), ("asset_bounds", list(bounds))):
        missing = [s for s in symbols if s not in known]
        if missing:
            raise _error(field, f"unknown asset {missing[0]!r}: no such asset on the platform")
    if tags:
        all_tags = _known_tags()
        missing = [t for t in tags if t not in all_tags]
        if missing:
            raise _error("excluded_tags", f"unknown tag {missing[0]!r}: no asset carries this tag")
    return {
        "excluded_assets": assets,
        "excluded_tags": tags,
        "asset_bounds": bounds,
        "class_tilts": tilts,
        "note": note.strip(),
    }


def _check_firm(firm: Firm, client: Client) -> None:
    if client.firm_id != firm.pk:
        raise TenancyError("the client belongs to another firm")


def client_restriction_set(
    *, firm: Firm, actor: User | None, client: Client, data: Mapping[str, Any]
) -> ClientRestriction:
    """Replace the client's restrictions with ``data``; audited ``client.restrictions_set``
    with the previous and the new values. Nothing is written when validation fails."""
    _check_firm(firm, client)
    with firm_context(firm), transaction.atomic():
        clean = client_restriction_validate(data)
        row = ClientRestriction.objects.select_for_update().filter(client=client).first()
        before = None if row is None else {**row.as_data(), "note": row.note}
        if row is None:
            row = ClientRestriction(client=client)
        for name, value in clean.items():
            setattr(row, name, value)
        row.updated_by = actor
        row.save()
        audit_record(
            action="client.restrictions_set",
            actor=actor,
            object_type="client",
            object_id=client.pk,
            payload={"restriction_id": row.pk, "before": before, "after": clean},
        )
    return row


def client_restriction_clear(*, firm: Firm, actor: User | None, client: Client) -> bool:
    """Remove the client's restrictions (audited ``client.restrictions_cleared``); False
    when there were none, and then nothing is written."""
    _check_firm(firm, client)
    with firm_context(firm), transaction.atomic():
        row = ClientRestriction.objects.select_for_update().filter(client=client).first()
        if row is None:
            return False
        before = {**row.as_data(), "note": row.note}
        pk = row.pk
        row.delete()
        audit_record(
            action="client.restrictions_cleared",
            actor=actor,
            object_type="client",
            object_id=client.pk,
            payload={"restriction_id": pk, "before": before},
        )
    return True


def client_restriction_preview(
    *, client: Client, strategy: Strategy, actor: User | None = None
) -> dict[str, Any]:
    """The strategy's current weights beside the client's customised weights.

    Runs in the current firm. The customised weights come from
    ``customised_version_get_or_compute``: computed once per signature and shared
    (the first preview of a new signature stores, and audits, that shared row).
    A strategy without a computed version, or restrictions that cannot be applied to
    it, raise a ValidationError naming the problem.
    """
    version = strategy_version_current(strategy=strategy)
    if version is None:
        raise _error("strategy", f"strategy {strategy.name!r} has no computed version yet")
    row = client_restriction_get(client_id=client.pk)
    customisation = row.as_customisation() if row is not None else None
    custom, _ = customised_version_get_or_compute(
        version=version, customisation=customisation, actor=actor
    )
    base = version.weights_ordered()
    weights = [
        {
            "symbol": symbol,
            "strategy_weight": base[symbol],
            "customised_weight": custom.weights.get(symbol, "0"),
            "change": str(Decimal(custom.weights.get(symbol, "0")) - Decimal(base[symbol])),
        }
        for symbol in base
    ]
    return {
        "client": client.pk,
        "strategy": strategy.pk,
        "strategy_name": strategy.name,
        "version": version.number,
        "prices_as_of": version.prices_as_of,
        "restricted": customisation is not None and not customisation.is_empty,
        "signature": custom.signature,
        "customisation": custom.customisation,
        "weights": weights,
    }


__all__ = [
    "RESTRICTION_FIELDS",
    "client_restriction_clear",
    "client_restriction_preview",
    "client_restriction_set",
    "client_restriction_validate",
]
