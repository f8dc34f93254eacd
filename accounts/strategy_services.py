"""From a risk profile to a strategy: the firm's mapping, advisor overrides with a
rationale, compliance approval of overrides outside the profile's band. Every decision is
audited with the inputs that led to it.

Until the strategies issue lands, a strategy is a placeholder :class:`ModelPortfolio`
(asset-class weights).
"""

from __future__ import annotations

from collections.abc import Mapping
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
from compliance.services import audit_record

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


def risk_mapping_set(
    *, actor: User | None, mapping: Mapping[int, ModelPortfolio]
) -> list[RiskLevelMapping]:
    """Set the model portfolio of each given risk level (others keep theirs)."""
    errors = {
        f"mapping.{level}": ["a risk level is 1-10"] for level in mapping if not 1 <= level <= 10
    }
    if errors:
        raise ValidationError(errors)
    changes: dict[str, list[Any]] = {}
    with transaction.atomic():
        current = {m.risk_level: m for m in RiskLevelMapping.objects.select_for_update()}
        for level, portfolio in sorted(mapping.items()):
            row = current.get(level)
            if row is None:
                RiskLevelMapping.objects.create(risk_level=level, model_portfolio=portfolio)
                changes[str(level)] = [None, portfolio.pk]
            elif row.model_portfolio_id != portfolio.pk:
                changes[str(level)] = [row.model_portfolio_id, portfolio.pk]
                row.model_portfolio = portfolio
                row.save(update_fields=["model_portfolio", "updated_at"])
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


def _inputs(profile: RiskProfile, portfolio: ModelPortfolio) -> dict[str, Any]:
    return {
        "profile_id": profile.pk,
        "risk_level": profile.risk_level,
        "tolerance_level": profile.tolerance_level,
        "capacity_level": profile.capacity_level,
        "horizon_level": profile.horizon_level,
        "binding": list(profile.binding),
        "model_portfolio_id": portfolio.pk,
        "model_portfolio": portfolio.name,
        "band": [portfolio.min_risk_level, portfolio.max_risk_level],
        "weights": dict(portfolio.weights),
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
            {"profile": [f"the firm maps no model portfolio to risk level {profile.risk_level}"]}
        )
    portfolio = ModelPortfolio.objects.get(pk=mapping.model_portfolio_id)
    with transaction.atomic():
        assignment = StrategyAssignment(
            client_id=profile.client_id,
            profile=profile,
            model_portfolio=portfolio,
            source=AssignmentSource.MAPPING,
            status=AssignmentStatus.ACTIVE,
            inputs=_inputs(profile, portfolio),
            assigned_by=actor,
        )
        superseded = _activate(assignment)
        assignment.save()
        audit_record(
            action="strategy.assigned",
            actor=actor,
            object_type="strategy_assignment",
            object_id=assignment.pk,
            payload={**assignment.inputs, "source": "mapping", "superseded": superseded},
            reasons=[f"risk level {profile.risk_level} maps to {portfolio.name}"],
        )
    return assignment


def strategy_override(
    *, profile: RiskProfile, model_portfolio: ModelPortfolio, actor: User | None, rationale: str
) -> StrategyAssignment:
    """An advisor's choice of model portfolio, with a mandatory rationale. Outside the
    profile's risk band it waits for the compliance officer's approval."""
    rationale = rationale.strip()
    if not rationale:
        raise ValidationError({"rationale": ["an override needs a rationale"]})
    _require_current(profile)
    outside = not model_portfolio.suits(profile.risk_level)
    with transaction.atomic():
        assignment = StrategyAssignment(
            client_id=profile.client_id,
            profile=profile,
            model_portfolio=model_portfolio,
            source=AssignmentSource.OVERRIDE,
            status=AssignmentStatus.PENDING_APPROVAL if outside else AssignmentStatus.ACTIVE,
            rationale=rationale,
            outside_band=outside,
            inputs=_inputs(profile, model_portfolio),
            assigned_by=actor,
        )
        superseded = [] if outside else _activate(assignment)
        assignment.save()
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
                + f" the band {model_portfolio.min_risk_level}-{model_portfolio.max_risk_level}"
                + f" of {model_portfolio.name}",
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
        audit_record(
            action="strategy.override_approved" if approve else "strategy.override_rejected",
            actor=actor,
            object_type="strategy_assignment",
            object_id=locked.pk,
            payload={**locked.inputs, "note": locked.decision_note, "superseded": superseded},
            reasons=[locked.rationale, locked.decision_note],
        )
    return locked
