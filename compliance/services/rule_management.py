"""Managing a firm's compliance rules: every change is a new immutable version.

``compliance_rule_create`` / ``compliance_rule_update`` validate the parameters
with the pure engine's ``rule_params_validate`` (a contradictory or out-of-range
parameter is refused naming it), write a new :class:`ComplianceRuleVersion`, then a
new :class:`RuleSetVersion` of the firm listing every active rule's current
version, and audit the change with its before and after.

Who may manage rules: **compliance officers and firm admins**. Compliance owns the
rules; firm admins are allowed too because a firm must be able to set up its rules
before it has appointed a compliance officer, and an admin can already change every
membership (so could make themselves compliance anyway). Advisors, whose trades the
rules check, and investors may not (:class:`RulePermissionError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from accounts.models import Firm, Membership, Role, User
from accounts.tenancy.context import firm_context
from compliance.models import ComplianceRule, ComplianceRuleVersion, RuleSetVersion
from compliance.rules import RULE_KINDS, RuleParamError, Severity, rule_params_validate
from compliance.services.audit import audit_record

RULE_MANAGERS: frozenset[str] = frozenset({Role.COMPLIANCE, Role.FIRM_ADMIN})
SEVERITY_NAMES: dict[str, int] = {"hard": int(Severity.HARD), "soft": int(Severity.SOFT)}


class RulePermissionError(PermissionError):
    """The actor's role may not manage rules (or release held portfolios)."""


def actor_role(*, actor: User | None) -> str | None:
    """The actor's active role in the current firm, or None."""
    if actor is None:
        return None
    row = (
        Membership.objects.filter(user_id=actor.pk, is_active=True)
        .values_list("role", flat=True)
        .first()
    )
    return str(row) if row is not None else None


def _require_manager(actor: User | None) -> str:
    role = actor_role(actor=actor)
    if role not in RULE_MANAGERS:
        raise RulePermissionError(
            "only compliance officers and firm admins may manage compliance rules "
            f"(your role: {role or 'none'})"
        )
    return role


def _severity(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in SEVERITY_NAMES:
        return SEVERITY_NAMES[value.strip().lower()]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and int(value) in (1, 2):
        return int(value)
    raise RuleParamError("severity", f"must be 'hard' or 'soft', got {value!r}")


def _ids(param: str, values: Iterable[Any]) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise RuleParamError(param, f"must be a list of ids, got {values!r}")
    out: set[int] = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise RuleParamError(param, f"every id must be a positive whole number, got {v!r}")
        out.add(v)
    return sorted(out)


def _check_scope(strategy_ids: list[int], client_ids: list[int]) -> None:
    """Scope ids must name the firm's own strategies and clients."""
    from accounts.models import Client
    from portfolios.models_strategy import Strategy

    for param, model, ids in (
        ("strategy_ids", Strategy, strategy_ids),
        ("client_ids", Client, client_ids),
    ):
        if ids:
            found = set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
            missing = sorted(set(ids) - found)
            if missing:
                raise RuleParamError(param, f"no such {model.__name__.lower()}: {missing}")


def rule_version_data(version: ComplianceRuleVersion) -> dict[str, Any]:
    return {
        "version_id": version.pk,
        "number": version.number,
        "kind": version.kind,
        "severity": "hard" if version.severity == Severity.HARD else "soft",
        "params": version.params,
        "strategy_ids": list(version.strategy_ids),
        "client_ids": list(version.client_ids),
        "active": version.active,
    }


def _rule_set_write(*, actor: User | None) -> RuleSetVersion:
    """A new rule-set version of the firm listing every active rule's current version."""
    ids = list(
        ComplianceRule.objects.filter(active=True, current_version__isnull=False)
        .order_by("pk")
        .values_list("current_version_id", flat=True)
    )
    last = RuleSetVersion.objects.order_by("-number").values_list("number", flat=True).first()
    return RuleSetVersion.objects.create(
        number=(last or 0) + 1, rule_version_ids=ids, created_by=actor
    )


def compliance_rule_create(
    *,
    firm: Firm,
    actor: User | None,
    name: str,
    kind: str,
    severity: Any,
    params: Mapping[str, Any],
    strategy_ids: Iterable[int] = (),
    client_ids: Iterable[int] = (),
) -> ComplianceRule:
    """A new rule (version 1) and a new rule-set version of the firm, audited.
    Raises :class:`RuleParamError` naming the field at fault, :class:`RulePermissionError`
    when the actor may not manage rules."""
    with firm_context(firm), transaction.atomic():
        role = _require_manager(actor)
        name = (name or "").strip()
        if not name:
            raise RuleParamError("name", "a rule needs a name")
        if len(name) > 200:
            raise RuleParamError("name", "at most 200 characters")
        if kind not in RULE_KINDS:
            raise RuleParamError(
                "kind", f"unknown rule kind {kind!r}; expected one of {RULE_KINDS}"
            )
        level = _severity(severity)
        clean = rule_params_validate(kind, params)
        strategies, clients = _ids("strategy_ids", strategy_ids), _ids("client_ids", client_ids)
        _check_scope(strategies, clients)
        if ComplianceRule.objects.filter(name=name).exists():
            raise RuleParamError("name", f"the firm already has a rule named {name!r}")
        rule = ComplianceRule.objects.create(name=name, kind=kind, active=True)
        version = ComplianceRuleVersion.objects.create(
            rule=rule,
            number=1,
            kind=kind,
            severity=level,
            params=_jsonable(clean),
            strategy_ids=strategies,
            client_ids=clients,
            active=True,
            created_by=actor,
        )
        ComplianceRule.objects.filter(pk=rule.pk).update(current_version=version)
        rule.current_version = version
        rule_set = _rule_set_write(actor=actor)
        audit_record(
            action="compliance.rule_created",
            actor=actor,
            object_type="compliance_rule",
            object_id=rule.pk,
            payload={
                "name": name,
                "role": role,
                "before": None,
                "after": rule_version_data(version),
                "rule_set_version": rule_set.number,
            },
        )
    return rule


def compliance_rule_update(
    *,
    firm: Firm,
    actor: User | None,
    rule: ComplianceRule,
    severity: Any = None,
    params: Mapping[str, Any] | None = None,
    strategy_ids: Iterable[int] | None = None,
    client_ids: Iterable[int] | None = None,
    active: bool | None = None,
) -> ComplianceRule:
    """A new version of ``rule`` with the given fields changed (None: unchanged), and a
    new rule-set version of the firm, audited with before and after. A change that
    changes nothing is refused (``params``) rather than writing an identical version."""
    with firm_context(firm), transaction.atomic():
        role = _require_manager(actor)
        locked = ComplianceRule.objects.select_for_update().get(pk=rule.pk)
        current = ComplianceRuleVersion.objects.get(pk=locked.current_version_id)
        level = current.severity if severity is None else _severity(severity)
        clean = (
            dict(current.params)
            if params is None
            else _jsonable(rule_params_validate(locked.kind, params))
        )
        strategies = (
            list(current.strategy_ids)
            if strategy_ids is None
            else _ids("strategy_ids", strategy_ids)
        )
        clients = list(current.client_ids) if client_ids is None else _ids("client_ids", client_ids)
        _check_scope(strategies, clients)
        if active is not None and not isinstance(active, bool):
            raise RuleParamError("active", f"must be true or false, got {active!r}")
        is_active = current.active if active is None else active
        before = rule_version_data(current)
        unchanged = (
            level == current.severity
            and clean == current.params
            and strategies == list(current.strategy_ids)
            and clients == list(current.client_ids)
            and is_active == current.active
        )
        if unchanged:
            raise RuleParamError("params", "nothing changed: no new version written")
        version = ComplianceRuleVersion.objects.create(
            rule=locked,
            number=current.number + 1,
            kind=locked.kind,
            severity=level,
            params=clean,
            strategy_ids=strategies,
            client_ids=clients,
            active=is_active,
            created_by=actor,
        )
        ComplianceRule.objects.filter(pk=locked.pk).update(
            current_version=version, active=is_active
        )
        locked.refresh_from_db()
        rule_set = _rule_set_write(actor=actor)
        audit_record(
            action="compliance.rule_updated",
            actor=actor,
            object_type="compliance_rule",
            object_id=locked.pk,
            payload={
                "name": locked.name,
                "role": role,
                "before": before,
                "after": rule_version_data(version),
                "rule_set_version": rule_set.number,
            },
        )
    return locked


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised params as JSON (tuples as lists, int keys as strings)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, tuple):
            out[key] = list(value)
        elif isinstance(value, Mapping):
            out[key] = {str(k): v for k, v in value.items()}
        else:
            out[key] = value
    return out
