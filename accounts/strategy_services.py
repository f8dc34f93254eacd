"""From a risk profile to a strategy: the firm's mapping, advisor overrides with a
rationale, compliance approval of overrides outside the profile's band. Every decision is
audited with the inputs that led to it.

A mapping or an assignment points at exactly one target: a real
:class:`portfolios.models_strategy.Strategy` (band ``risk_level_min``-``risk_level_max``;
the audit names its current version number and fingerprint), or a placeholder
:class:`ModelPortfolio` (asset-class weights), which remains for firms without strategies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import (
    AssignmentSource,
    AssignmentStatus,
    ModelPortfolio,
    ProfileFlag,
    ProfileStatus,
    RiskLevelMapping,
    RiskProfile,
    StrategyAssignment,
    User,
)
from accounts.tenancy.context import current_firm_id
from compliance.services import audit_record
from portfolios.models_strategy import Strategy, StrategyStatus
from portfolios.selectors_strategy import strategy_list_for_risk_level, strategy_version_current

# What a risk level maps to, and what an advisor may override it with.
Target = ModelPortfolio | Strategy

#: Called inside the transaction when an assignment becomes a client's active one, with
#: the assignment and the ids it superseded (notifications write their outbox here).
ON_STRATEGY_ACTIVATED: list[Callable[[StrategyAssignment, list[int]], None]] = []

ASSET_CLASSES = ("cash", "us_bonds", "intl_bonds", "us_equity", "intl_equity")

# (name, min level, max level, weights, bad year): the placeholder model portfolios.
DEFAULT_MODEL_PORTFOLIOS: tuple[tuple[str, int, int, dict[str, str], str], ...] = (
    ("Capital preservation", 1, 1, {"cash": "0.60", "us_bonds": "0.40"}, "-0.02"),
    ("Conservative income", 2, 3, {"cash": "0.15", "us_bonds": "0.55", "intl_bonds": "0.10",
                                   "us_equity": "0.15", "intl_equity": "0.05"}, "-0.08"),
    ("Balanced", 4, 5, {"cash": "0.05", "us_bonds": "0.40", "intl_bonds": "0.10",
                        "us_equity": "0.30", "intl_equity": "0.15"}, "-0.15"),
    ("Growth", 6, 7, {"cash": "0.02", "us_bonds": "0.23", "intl_bonds": "0.05",
                      "us_equity": "0.45", "intl_equity": "0.25"}, "-0.24"),
    ("Aggressive growth", 8, 9, {"us_bonds": "0.10", "us_equity": "0.55",
                                 "intl_equity": "0.35"}, "-0.32"),
    ("All equity", 10, 10, {"us_equity": "0.60", "intl_equity": "0.40"}, "-0.40"),
)  # fmt: skip


def _check_weights(weights: Mapping[str, Any]) -> dict[str, str]:
    errors: list[str] = []
    clean: dict[str, str] = {}
    for asset_class, value in weights.items():
        if asset_class not in ASSET_CLASSES:
            errors.append(f"unknown asset class {asset_class!r}")
            continue
        try:
            weight = Decimal(str(value))
        except ArithmeticError:
            errors.append(f"{asset_class}: not a number")
            continue
        if not Decimal(0) <= weight <= Decimal(1):
            errors.append(f"{asset_class}: a weight is between 0 and 1")
        clean[asset_class] = format(weight, "f")
    if not errors and sum(Decimal(v) for v in clean.values()) != Decimal(1):
        errors.append("the weights must add up to 1")
    if errors:
        raise ValidationError({"weights": errors})
    return clean


def model_portfolio_create(
    *,
    actor: User | None,
    name: str,
    weights: Mapping[str, Any],
    min_risk_level: int,
    max_risk_level: int,
    bad_year_return: Decimal,
    description: str = "",
) -> ModelPortfolio:
    clean = _check_weights(weights)
    if not 1 <= min_risk_level <= max_risk_level <= 10:
        raise ValidationError({"min_risk_level": ["the band must lie within 1-10, min <= max"]})
    with transaction.atomic():
        portfolio = ModelPortfolio.objects.create(
            name=name,
            description=description,
            weights=clean,
            min_risk_level=min_risk_level,
            max_risk_level=max_risk_level,
            bad_year_return=bad_year_return,
        )
        audit_record(
            action="model_portfolio.created",
            actor=actor,
            object_type="model_portfolio",
            object_id=portfolio.pk,
            payload={
                "name": name,
                "weights": clean,
                "band": [min_risk_level, max_risk_level],
                "bad_year_return": bad_year_return,
            },
        )
    return portfolio


def target_key(target: Target | None) -> dict[str, Any] | None:
    """``{"type": "strategy" | "model_portfolio", "id": ...}`` for audits and responses."""
    if target is None:
        return None
    kind = "strategy" if isinstance(target, Strategy) else "model_portfolio"
    return {"type": kind, "id": target.pk}


def target_of(row: RiskLevelMapping | StrategyAssignment) -> Target:
    """The strategy or model portfolio a mapping row or an assignment points at."""
    if row.strategy_id is not None:
        return Strategy.objects.get(pk=row.strategy_id)
    assert row.model_portfolio_id is not None  # exactly one target (a DB constraint)
    return ModelPortfolio.objects.get(pk=row.model_portfolio_id)


def target_band(target: Target) -> tuple[int, int]:
    if isinstance(target, Strategy):
        return target.risk_level_min, target.risk_level_max
    return target.min_risk_level, target.max_risk_level


def target_suits(target: Target, risk_level: int) -> bool:
    low, high = target_band(target)
    return low <= risk_level <= high


def _target_fields(target: Target) -> dict[str, Any]:
    if isinstance(target, Strategy):
        return {"strategy": target, "model_portfolio": None}
    return {"strategy": None, "model_portfolio": target}


def _check_target(target: Target, field: str) -> None:
    """The target belongs to the current firm (a foreign one is refused like a missing
    one); a strategy must be active."""
    model = Strategy if isinstance(target, Strategy) else ModelPortfolio
    if target.firm_id != current_firm_id() or not model.objects.filter(pk=target.pk).exists():
        raise ValidationError(
            {field: [f"no such {'strategy' if model is Strategy else 'model portfolio'}"]}
        )
    if isinstance(target, Strategy) and target.status != StrategyStatus.ACTIVE:
        raise ValidationError({field: ["the strategy is not active"]})


def risk_mapping_set(
    *, actor: User | None, mapping: Mapping[int, Target]
) -> list[RiskLevelMapping]:
    """Set the strategy or model portfolio of each given risk level (others keep theirs)."""
    errors = {
        f"mapping.{level}": ["a risk level is 1-10"] for level in mapping if not 1 <= level <= 10
    }
    if errors:
        raise ValidationError(errors)
    for level, target in mapping.items():
        _check_target(target, f"mapping.{level}")
    changes: dict[str, list[Any]] = {}
    with transaction.atomic():
        current = {m.risk_level: m for m in RiskLevelMapping.objects.select_for_update()}
        for level, target in sorted(mapping.items()):
            row = current.get(level)
            if row is None:
                RiskLevelMapping.objects.create(risk_level=level, **_target_fields(target))
                changes[str(level)] = [None, target_key(target)]
                continue
            before = (
                {"type": "strategy", "id": row.strategy_id}
                if row.strategy_id is not None
                else {"type": "model_portfolio", "id": row.model_portfolio_id}
            )
            if before != target_key(target):
                changes[str(level)] = [before, target_key(target)]
                for name, value in _target_fields(target).items():
                    setattr(row, name, value)
                row.save(update_fields=["model_portfolio", "strategy", "updated_at"])
        if changes:
            audit_record(
                action="risk_mapping.changed",
                actor=actor,
                object_type="risk_mapping",
                payload={"changes": changes},
            )
    return list(RiskLevelMapping.objects.order_by("risk_level"))


def model_portfolios_install_default(*, actor: User | None = None) -> list[ModelPortfolio]:
    """The placeholder model portfolios and a mapping of every level, when the firm has none."""
    with transaction.atomic():
        existing = list(ModelPortfolio.objects.order_by("min_risk_level"))
        if existing:
            return existing
        created = [
            model_portfolio_create(
                actor=actor,
                name=name,
                weights=weights,
                min_risk_level=low,
                max_risk_level=high,
                bad_year_return=Decimal(bad),
            )
            for name, low, high, weights, bad in DEFAULT_MODEL_PORTFOLIOS
        ]
        mapping = {
            level: p for p in created for level in range(p.min_risk_level, p.max_risk_level + 1)
        }
        risk_mapping_set(actor=actor, mapping=mapping)
    return created


def risk_mapping_install_strategies(*, actor: User | None = None) -> list[RiskLevelMapping]:
    """Map every level 1-10 that an active strategy covers to the best-fitting one
    (:func:`strategy_list_for_risk_level`); levels no strategy covers keep theirs."""
    wanted: dict[int, Target] = {}
    for level in range(1, 11):
        candidates = strategy_list_for_risk_level(risk_level=level)
        if candidates:
            wanted[level] = candidates[0]
    if not wanted:
        return list(RiskLevelMapping.objects.order_by("risk_level"))
    return risk_mapping_set(actor=actor, mapping=wanted)


def _target_inputs(target: Target) -> dict[str, Any]:
    low, high = target_band(target)
    if isinstance(target, Strategy):
        version = strategy_version_current(strategy=target)
        return {
            "target_type": "strategy",
            "target_id": target.pk,
            "strategy_id": target.pk,
            "strategy": target.name,
            "band": [low, high],
            "version": version.number if version else None,
            "fingerprint": version.fingerprint if version else None,
            "weights": dict(version.weights) if version else {},
        }
    return {
        "target_type": "model_portfolio",
        "target_id": target.pk,
        "model_portfolio_id": target.pk,
        "model_portfolio": target.name,
        "band": [low, high],
        "weights": dict(target.weights),
    }


def _inputs(profile: RiskProfile, target: Target) -> dict[str, Any]:
    return {
        "profile_id": profile.pk,
        "risk_level": profile.risk_level,
        "tolerance_level": profile.tolerance_level,
        "capacity_level": profile.capacity_level,
        "horizon_level": profile.horizon_level,
        "binding": list(profile.binding),
        **_target_inputs(target),
    }


def _require_current(profile: RiskProfile) -> None:
    if profile.status != ProfileStatus.CURRENT:
        raise ValidationError({"profile": [f"the profile is {profile.status}, not current"]})


def _activate(assignment: StrategyAssignment) -> list[int]:
    """Make ``assignment`` the client's active one; returns the superseded ids."""
    previous = list(
        StrategyAssignment.objects.select_for_update()
        .filter(client_id=assignment.client_id, status=AssignmentStatus.ACTIVE)
        .exclude(pk=assignment.pk)
        .values_list("pk", flat=True)
    )
    StrategyAssignment.objects.filter(pk__in=previous).update(status=AssignmentStatus.SUPERSEDED)
    assignment.status = AssignmentStatus.ACTIVE
    return previous


def _portfolios_follow(
    assignment: StrategyAssignment, superseded: list[int], actor: User | None
) -> list[int]:
    """The client's portfolios that follow its assignment move with it (see
    :mod:`portfolios.services_book`)."""
    from portfolios.services_book import portfolios_follow_assignment

    for hook in ON_STRATEGY_ACTIVATED:
        hook(assignment, superseded)
    previous = StrategyAssignment.objects.filter(pk__in=superseded).values_list(
        "strategy_id", flat=True
    )
    return portfolios_follow_assignment(
        actor=actor,
        client_id=assignment.client_id,
        previous_strategy_ids=list(previous),
        strategy_id=assignment.strategy_id,
        assignment_id=assignment.pk,
    )


def strategy_assign_from_profile(*, profile: RiskProfile, actor: User | None) -> StrategyAssignment:
    """The firm's mapping for the profile's risk level. A profile with open consistency
    flags is not mapped automatically: an advisor resolves the flags first."""
    _require_current(profile)
    open_flags = list(
        ProfileFlag.objects.filter(profile=profile, resolved_at__isnull=True).values_list(
            "code", flat=True
        )
    )
    if open_flags:
        raise ValidationError(
            {
                "profile": [
                    "the profile has open consistency flags ("
                    + ", ".join(open_flags)
                    + "): an advisor must resolve them before it is mapped"
                ]
            }
        )
    mapping = RiskLevelMapping.objects.filter(risk_level=profile.risk_level).first()
    if mapping is None:
        raise ValidationError(
            {"profile": [f"the firm maps no strategy to risk level {profile.risk_level}"]}
        )
    target = target_of(mapping)
    with transaction.atomic():
        assignment = StrategyAssignment(
            client_id=profile.client_id,
            profile=profile,
            **_target_fields(target),
            source=AssignmentSource.MAPPING,
            status=AssignmentStatus.ACTIVE,
            inputs=_inputs(profile, target),
            assigned_by=actor,
        )
        superseded = _activate(assignment)
        assignment.save()
        _portfolios_follow(assignment, superseded, actor)
        audit_record(
            action="strategy.assigned",
            actor=actor,
            object_type="strategy_assignment",
            object_id=assignment.pk,
            payload={**assignment.inputs, "source": "mapping", "superseded": superseded},
            reasons=[f"risk level {profile.risk_level} maps to {target.name}"],
        )
    return assignment


def strategy_override(
    *,
    profile: RiskProfile,
    actor: User | None,
    rationale: str,
    model_portfolio: ModelPortfolio | None = None,
    strategy: Strategy | None = None,
) -> StrategyAssignment:
    """An advisor's choice of strategy or model portfolio (exactly one), with a mandatory
    rationale. Outside the target's risk band it waits for the compliance officer's
    approval."""
    if (strategy is None) == (model_portfolio is None):
        raise ValidationError({"strategy": ["choose a strategy or a model portfolio"]})
    target: Target = strategy if strategy is not None else model_portfolio  # type: ignore[assignment]
    rationale = rationale.strip()
    if not rationale:
        raise ValidationError({"rationale": ["an override needs a rationale"]})
    _require_current(profile)
    _check_target(target, "strategy" if strategy is not None else "model_portfolio")
    outside = not target_suits(target, profile.risk_level)
    low, high = target_band(target)
    with transaction.atomic():
        assignment = StrategyAssignment(
            client_id=profile.client_id,
            profile=profile,
            **_target_fields(target),
            source=AssignmentSource.OVERRIDE,
            status=AssignmentStatus.PENDING_APPROVAL if outside else AssignmentStatus.ACTIVE,
            rationale=rationale,
            outside_band=outside,
            inputs=_inputs(profile, target),
            assigned_by=actor,
        )
        superseded = [] if outside else _activate(assignment)
        assignment.save()
        if not outside:
            _portfolios_follow(assignment, superseded, actor)
        audit_record(
            action="strategy.override_requested" if outside else "strategy.overridden",
            actor=actor,
            object_type="strategy_assignment",
            object_id=assignment.pk,
            payload={
                **assignment.inputs,
                "source": "override",
                "outside_band": outside,
                "rationale": rationale,
                "superseded": superseded,
            },
            reasons=[
                rationale,
                f"risk level {profile.risk_level} is "
                + ("outside" if outside else "within")
                + f" the band {low}-{high} of {target.name}",
            ],
        )
    return assignment


def strategy_override_decide(
    *, assignment: StrategyAssignment, actor: User | None, approve: bool, note: str = ""
) -> StrategyAssignment:
    """The compliance officer approves or rejects an override outside the risk band."""
    with transaction.atomic():
        locked = StrategyAssignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.status != AssignmentStatus.PENDING_APPROVAL:
            raise ValidationError({"assignment": ["this override is not waiting for approval"]})
        if not approve and not note.strip():
            raise ValidationError({"note": ["a rejection needs a note"]})
        superseded: list[int] = []
        if approve:
            superseded = _activate(locked)
        else:
            locked.status = AssignmentStatus.REJECTED
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.decision_note = note.strip()
        locked.save()
        if approve:
            _portfolios_follow(locked, superseded, actor)
        audit_record(
            action="strategy.override_approved" if approve else "strategy.override_rejected",
            actor=actor,
            object_type="strategy_assignment",
            object_id=locked.pk,
            payload={**locked.inputs, "note": locked.decision_note, "superseded": superseded},
            reasons=[locked.rationale, locked.decision_note],
        )
    return locked
