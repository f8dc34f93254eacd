"""Rule kinds and the validation of their parameters (pure, no Django).

``rule_params_validate(kind, params)`` returns the normalised parameters (every
default filled in, numbers as ``float``/``int``, symbols upper-cased and sorted)
or raises :class:`RuleParamError` naming the parameter at fault. Parameters may
come from JSON: numbers are accepted as ``int``, ``float``, ``Decimal`` or a
numeric string; booleans must be real booleans.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from compliance.rules.types import RuleParamError, Severity

RESTRICTED_LIST = "restricted_list"
CONCENTRATION_ASSET = "concentration_asset"
CONCENTRATION_CLASS = "concentration_class"
CONCENTRATION_SECTOR = "concentration_sector"
CASH_FLOOR = "cash_floor"
NO_SHORT_NO_NEGATIVE_CASH = "no_short_no_negative_cash"
RISK_FIT = "risk_fit"
RISK_PROFILE_CURRENT = "risk_profile_current"
QUESTIONNAIRE_FLAGS = "questionnaire_flags"
KYC_COMPLETE = "kyc_complete"
WASH_SALE = "wash_sale"
MAX_TURNOVER = "max_turnover"
MIN_TRADE_VALUE = "min_trade_value"
MAX_CRYPTO_SHARE = "max_crypto_share"

RULE_KINDS: tuple[str, ...] = (
    RESTRICTED_LIST,
    CONCENTRATION_ASSET,
    CONCENTRATION_CLASS,
    CONCENTRATION_SECTOR,
    CASH_FLOOR,
    NO_SHORT_NO_NEGATIVE_CASH,
    RISK_FIT,
    RISK_PROFILE_CURRENT,
    QUESTIONNAIRE_FLAGS,
    KYC_COMPLETE,
    WASH_SALE,
    MAX_TURNOVER,
    MIN_TRADE_VALUE,
    MAX_CRYPTO_SHARE,
)

#: The severity a new rule of each kind is offered with (a firm may choose the other).
DEFAULT_SEVERITY: Mapping[str, Severity] = {
    RESTRICTED_LIST: Severity.HARD,
    CONCENTRATION_ASSET: Severity.HARD,
    CONCENTRATION_CLASS: Severity.HARD,
    CONCENTRATION_SECTOR: Severity.SOFT,
    CASH_FLOOR: Severity.HARD,
    NO_SHORT_NO_NEGATIVE_CASH: Severity.HARD,
    RISK_FIT: Severity.SOFT,
    RISK_PROFILE_CURRENT: Severity.SOFT,
    QUESTIONNAIRE_FLAGS: Severity.SOFT,
    KYC_COMPLETE: Severity.HARD,
    WASH_SALE: Severity.HARD,
    MAX_TURNOVER: Severity.SOFT,
    MIN_TRADE_VALUE: Severity.SOFT,
    MAX_CRYPTO_SHARE: Severity.HARD,
}

#: Maximum turnover share: a full switch sells 100% and buys 100% of NAV.
MAX_TURNOVER_LIMIT = 2.0
CONCENTRATION_LEVELS = ("portfolio", "household")
RISK_LEVELS = range(1, 11)

_MISSING = object()


def _number(param: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise RuleParamError(param, f"must be a number, got {value!r}")
    if isinstance(value, int | float | Decimal):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(Decimal(value.strip()))
        except (InvalidOperation, ValueError):
            raise RuleParamError(param, f"must be a number, got {value!r}") from None
    else:
        raise RuleParamError(param, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(out):
        raise RuleParamError(param, f"must be a finite number, got {value!r}")
    return out


def _share(param: str, value: Any, high: float = 1.0) -> float:
    out = _number(param, value)
    if not 0.0 <= out <= high:
        raise RuleParamError(param, f"must be a share between 0 and {high:g}, got {value!r}")
    return out


def _integer(param: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or value is None:
        raise RuleParamError(param, f"must be a whole number, got {value!r}")
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        out = int(value.strip())
    elif isinstance(value, int):
        out = value
    elif isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        out = int(value)
    else:
        raise RuleParamError(param, f"must be a whole number, got {value!r}")
    if out < low or (high is not None and out > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise RuleParamError(param, f"must be {bound}, got {value!r}")
    return out


def _bool(param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RuleParamError(param, f"must be true or false, got {value!r}")
    return value


def _level(param: str, value: Any) -> str:
    if value not in CONCENTRATION_LEVELS:
        raise RuleParamError(
            param, f"must be one of {', '.join(CONCENTRATION_LEVELS)}, got {value!r}"
        )
    return str(value)


def _symbols(param: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
        raise RuleParamError(param, f"must be a list of symbols, got {value!r}")
    out = set()
    for s in value:
        if not isinstance(s, str) or not s.strip():
            raise RuleParamError(param, f"every symbol must be a non-empty string, got {s!r}")
        out.add(s.strip().upper())
    return tuple(sorted(out))


def _optional_name(param: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RuleParamError(param, f"must be a non-empty name or null, got {value!r}")
    return value.strip()


def _by_risk_level(param: str, value: Any) -> dict[int, float]:
    if not isinstance(value, Mapping) or not value:
        raise RuleParamError(
            param, f"must be a non-empty mapping risk level -> share, got {value!r}"
        )
    out: dict[int, float] = {}
    for key, share in value.items():
        level = _integer(f"{param}.{key}", key, RISK_LEVELS.start, RISK_LEVELS.stop - 1)
        if level in out:
            raise RuleParamError(f"{param}.{key}", f"risk level {level} is listed twice")
        out[level] = _share(f"{param}.{key}", share)
    ordered = dict(sorted(out.items()))
    levels = list(ordered)
    for lower, higher in itertools.pairwise(levels):
        if ordered[higher] < ordered[lower]:
            raise RuleParamError(
                f"{param}.{higher}",
                f"allows less crypto ({ordered[higher]:g}) than the lower risk level "
                f"{lower} ({ordered[lower]:g})",
            )
    return ordered


# kind -> {param: (parser, default or _MISSING)}
_Spec = dict[str, tuple[Callable[[str, Any], Any], Any]]
_SPECS: dict[str, _Spec] = {
    RESTRICTED_LIST: {
        "symbols": (_symbols, ()),
        "use_client_restrictions": (_bool, True),
    },
    CONCENTRATION_ASSET: {
        "max_share": (_share, _MISSING),
        "level": (_level, "portfolio"),
    },
    CONCENTRATION_CLASS: {
        "max_share": (_share, _MISSING),
        "asset_class": (_optional_name, None),
        "level": (_level, "portfolio"),
    },
    CONCENTRATION_SECTOR: {
        "max_share": (_share, _MISSING),
        "level": (_level, "portfolio"),
    },
    CASH_FLOOR: {"min_share": (_share, _MISSING)},
    NO_SHORT_NO_NEGATIVE_CASH: {},
    RISK_FIT: {"tolerance": (lambda p, v: _integer(p, v, 0, 9), 0)},
    RISK_PROFILE_CURRENT: {"warn_days": (lambda p, v: _integer(p, v, 0, 3660), 0)},
    QUESTIONNAIRE_FLAGS: {"max_open": (lambda p, v: _integer(p, v, 0), 0)},
    KYC_COMPLETE: {},
    WASH_SALE: {"days": (lambda p, v: _integer(p, v, 1, 366), 30)},
    MAX_TURNOVER: {"max_share": (lambda p, v: _share(p, v, MAX_TURNOVER_LIMIT), _MISSING)},
    MIN_TRADE_VALUE: {"min_value": (_number, _MISSING)},
    MAX_CRYPTO_SHARE: {"by_risk_level": (_by_risk_level, _MISSING)},
}
assert set(_SPECS) == set(RULE_KINDS)


def rule_param_names(kind: str) -> tuple[str, ...]:
    """The parameter names a rule kind accepts (for forms)."""
    if kind not in _SPECS:
        raise RuleParamError("kind", f"unknown rule kind {kind!r}; expected one of {RULE_KINDS}")
    return tuple(_SPECS[kind])


def rule_params_validate(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised params of a rule of ``kind``, or raise ``RuleParamError`` naming the parameter.

    Refuses an unknown kind (param ``"kind"``), unknown or missing parameters,
    values out of range (a share outside [0, 1], a negative count) and
    contradictions (a restricted list that checks nothing).
    """
    if not isinstance(kind, str) or kind not in _SPECS:
        raise RuleParamError("kind", f"unknown rule kind {kind!r}; expected one of {RULE_KINDS}")
    if not isinstance(params, Mapping):
        raise RuleParamError("params", f"must be a mapping, got {type(params).__name__}")
    spec = _SPECS[kind]
    for name in params:
        if name not in spec:
            expected = ", ".join(spec) or "none"
            raise RuleParamError(
                str(name), f"unknown parameter for rule kind {kind!r} (expected: {expected})"
            )
    out: dict[str, Any] = {}
    for name, (parse, default) in spec.items():
        if name in params:
            out[name] = parse(name, params[name])
        elif default is _MISSING:
            raise RuleParamError(name, f"is required for rule kind {kind!r}")
        else:
            out[name] = default
    if kind == RESTRICTED_LIST and not out["symbols"] and not out["use_client_restrictions"]:
        raise RuleParamError(
            "symbols", "is empty and use_client_restrictions is false: the rule would check nothing"
        )
    if kind == MIN_TRADE_VALUE and out["min_value"] < 0:
        raise RuleParamError("min_value", f"must be >= 0, got {params['min_value']!r}")
    return out
