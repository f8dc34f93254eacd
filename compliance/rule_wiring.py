"""How the batch rebalance meets the firm's rules: the rule-set provider and the book enricher.

Registered in ``ComplianceConfig.ready()``:

* :func:`rule_set_current` (``RULE_SET_PROVIDERS``): the firm's latest
  :class:`RuleSetVersion` as engine rules (each rule's id is its stored *version* id),
  plus the built-in safety rules (no short / no negative cash, restricted assets,
  wash sales) of every kind the firm has no active rule of. A firm's own rule of one
  of those kinds replaces the built-in one (to add symbols, change the wash-sale
  window or make it soft), but deactivating it brings the built-in back: those
  protections cannot be switched off. A firm that has configured nothing gets the
  built-ins (rule-set version ``None``).
* :func:`book_enrich` (``BOOK_ENRICHERS``): fills the client-dependent arrays of the
  rules' book with a constant number of queries per chunk (memoised on the chunk, so
  the policy groups of one chunk share them), and only those the run's rules read:

  - ``strategy_risk_level``: the strategy's band ``risk_level_min..risk_level_max``
    as one number, the band's level **nearest the client's profile level** (the
    client's level clipped into the band). With the client's band
    ``profile_band_low = profile_band_high = profile.risk_level`` this makes
    ``risk_fit`` fail exactly when the client's level lies outside the strategy's
    band (beyond ``tolerance``), the same test the platform uses to match
    strategies to profiles (``portfolios.selectors_strategy``); the measured value
    is the strategy's edge nearest the client. Without a profile it is
    ``risk_level_max`` (and risk fit reports "no profile").
  - the client's current risk profile (status current or stale; a stale one counts
    as expired whatever its date), its risk level and expiry (``valid_until``);
  - ``open_flags``: unresolved ``ProfileFlag`` rows of that profile;
  - ``kyc_complete``: ``Client.kyc_status == verified``;
  - ``household_holdings_value`` (only when a rule checks concentration at the
    household level): the value, at the run's prices, of what the household's
    *other* open portfolios hold, as read (their own proposed trades in the same
    run are not added; assets the run has no price for are left out).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db.models import Count, Sum
from django.utils import timezone

from compliance import rules as compliance_rules
from compliance.models import ComplianceRuleVersion, RuleSetVersion
from compliance.rules import params as kinds
from portfolios.chunking import in_ids

if TYPE_CHECKING:
    from portfolios.services_rebalance import ChunkState

PROFILE_KINDS = frozenset({kinds.RISK_FIT, kinds.RISK_PROFILE_CURRENT, kinds.MAX_CRYPTO_SHARE})
FLAG_KINDS = frozenset({kinds.QUESTIONNAIRE_FLAGS})
KYC_KINDS = frozenset({kinds.KYC_COMPLETE})
CONCENTRATION_KINDS = frozenset(
    {kinds.CONCENTRATION_ASSET, kinds.CONCENTRATION_CLASS, kinds.CONCENTRATION_SECTOR}
)


def engine_rule(version: ComplianceRuleVersion) -> compliance_rules.Rule:
    """A stored rule version as the pure engine's rule (id = the version's id)."""
    params = dict(version.params)
    if version.kind == kinds.MAX_CRYPTO_SHARE:
        params["by_risk_level"] = {int(k): v for k, v in params["by_risk_level"].items()}
    return compliance_rules.Rule(
        id=version.pk,
        kind=version.kind,
        severity=compliance_rules.Severity(version.severity),
        params=MappingProxyType(params),
        strategy_ids=frozenset(version.strategy_ids),
        client_ids=frozenset(version.client_ids),
    )


def rules_of_rule_set(rule_set: RuleSetVersion | None) -> list[compliance_rules.Rule]:
    """The engine rules of a stored rule-set version (the built-ins for None)."""
    if rule_set is None:
        return list(compliance_rules.BUILTIN_RULES)
    versions = {
        v.pk: v
        for v in ComplianceRuleVersion.objects.filter(pk__in=list(rule_set.rule_version_ids))
    }
    rules = [engine_rule(versions[vid]) for vid in rule_set.rule_version_ids if vid in versions]
    own = {r.kind for r in rules}
    return rules + [r for r in compliance_rules.BUILTIN_RULES if r.kind not in own]


def rule_set_current() -> tuple[int | None, Sequence[compliance_rules.Rule]]:
    """The current firm's latest rule-set version (id, rules); see the module docstring."""
    rule_set = RuleSetVersion.objects.order_by("-number").first()
    return (rule_set.pk if rule_set else None), rules_of_rule_set(rule_set)


# --------------------------------------------------------------------------- book


def _needs(state: ChunkState) -> set[str]:
    rules = state.compliance.get("rules", [])
    out: set[str] = set()
    for r in rules:
        kind = r["kind"]
        if kind in PROFILE_KINDS:
            out.add("profile")
        if kind in FLAG_KINDS:
            out |= {"profile", "flags"}
        if kind in KYC_KINDS:
            out.add("kyc")
        if kind in CONCENTRATION_KINDS and r["params"].get("level") == "household":
            out.add("household")
    return out


def client_facts(
    *,
    client_ids: np.ndarray,
    strategy_ids: np.ndarray,
    as_of: dt.date,
    needs: set[str],
) -> dict[str, np.ndarray]:
    """Per portfolio (arrays over ``client_ids``): strategy level, profile band, level,
    expiry, open flags and KYC. Four queries at most, whatever the number of rows."""
    from accounts.models import Client, KycStatus, ProfileFlag, ProfileStatus, RiskProfile
    from portfolios.models_strategy import Strategy

    n = len(client_ids)
    clients = sorted(set(client_ids.tolist()))
    level = np.full(n, -1, dtype=np.int64)
    expires = np.full(n, -1, dtype=np.int64)
    flags = np.zeros(n, dtype=np.int64)
    kyc = np.ones(n, dtype=bool)
    if "profile" in needs:
        profiles = list(
            RiskProfile.objects.filter(
                in_ids("client_id", clients),
                status__in=[ProfileStatus.CURRENT, ProfileStatus.STALE],
            )
            .order_by("client_id", "-created_at", "-pk")
            .distinct("client_id")
            .values_list("client_id", "pk", "risk_level", "valid_until", "status")
        )
        level_of = {c: lv for c, _, lv, _, _ in profiles}
        stale_day = as_of.toordinal() - 1
        expiry_of = {
            c: min(until.toordinal(), stale_day)
            if status == ProfileStatus.STALE
            else until.toordinal()
            for c, _, _, until, status in profiles
        }
        level = np.array([level_of.get(c, -1) for c in client_ids.tolist()], dtype=np.int64)
        expires = np.array([expiry_of.get(c, -1) for c in client_ids.tolist()], dtype=np.int64)
        if "flags" in needs and profiles:
            open_of_profile = dict(
                ProfileFlag.objects.filter(
                    in_ids("profile_id", [pk for _, pk, _, _, _ in profiles]),
                    resolved_at__isnull=True,
                )
                .values("profile_id")
                .annotate(n=Count("pk"))
                .values_list("profile_id", "n")
            )
            open_of_client = {c: open_of_profile.get(pk, 0) for c, pk, _, _, _ in profiles}
            flags = np.array(
                [open_of_client.get(c, 0) for c in client_ids.tolist()], dtype=np.int64
            )
    if "kyc" in needs:
        verified = set(
            Client.objects.filter(in_ids("pk", clients), kyc_status=KycStatus.VERIFIED).values_list(
                "pk", flat=True
            )
        )
        kyc = np.array([c in verified for c in client_ids.tolist()], dtype=bool)
    band = {
        pk: (lo, hi)
        for pk, lo, hi in Strategy.objects.filter(
            pk__in=sorted(set(strategy_ids.tolist()))
        ).values_list("pk", "risk_level_min", "risk_level_max")
    }
    lo = np.array([band.get(s, (-1, -1))[0] for s in strategy_ids.tolist()], dtype=np.int64)
    hi = np.array([band.get(s, (-1, -1))[1] for s in strategy_ids.tolist()], dtype=np.int64)
    strategy_level = np.where(level > 0, np.clip(level, lo, hi), hi)
    strategy_level = np.where(hi > 0, strategy_level, -1).astype(np.int64)
    return {
        "strategy_risk_level": strategy_level,
        "profile_band_low": level.copy(),
        "profile_band_high": level.copy(),
        "profile_risk_level": level,
        "profile_expires": expires,
        "open_flags": flags,
        "kyc_complete": kyc,
    }


def household_other_value(state: ChunkState) -> np.ndarray:
    """(P, A) value at the run's prices held by the other open portfolios of each
    portfolio's household (one query)."""
    from portfolios.models import PortfolioStatus
    from portfolios.models_holdings import Holding

    households = sorted(set(state.household_ids.tolist()))
    col = {int(a): j for j, a in enumerate(state.asset_ids.tolist())}
    index = {h: i for i, h in enumerate(households)}
    totals = np.zeros((len(households), len(col)))
    for household, asset, quantity in (
        Holding.objects.filter(
            in_ids("portfolio__client__household_id", households),
            portfolio__status=PortfolioStatus.OPEN,
        )
        .values("portfolio__client__household_id", "asset_id")
        .annotate(q=Sum("quantity"))
        .values_list("portfolio__client__household_id", "asset_id", "q")
    ):
        if asset in col:
            totals[index[household], col[asset]] = float(quantity)
    rows = np.array([index[h] for h in state.household_ids.tolist()], dtype=np.int64)
    others = np.maximum(totals[rows] - state.holdings, 0.0) if len(rows) else totals[:0]
    prices = np.array([float(p) for p in state.prices])
    return np.asarray(others * prices, dtype=np.float64)


def book_enrich(state: ChunkState, rows: np.ndarray, fields: dict[str, Any]) -> None:
    """Fill the client-dependent arrays of the rules' book (see the module docstring)."""
    cache = state.cache.get("compliance")
    if cache is None:
        needs = _needs(state)
        cache = client_facts(
            client_ids=state.client_ids,
            strategy_ids=state.strategy_ids,
            as_of=state.as_of or timezone.localdate(),
            needs=needs,
        )
        if "household" in needs:
            cache["household_holdings_value"] = household_other_value(state)
        state.cache["compliance"] = cache
    for name, values in cache.items():
        fields[name] = values[rows]
