"""Reads of the audit trail, the firm's rules, the review queue and "why this trade"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models, transaction

from accounts.models import Firm
from accounts.tenancy.context import firm_context
from compliance.audit_chain import GENESIS_HASH, event_hash
from compliance.models import AuditEvent


@dataclass(frozen=True)
class ChainCheck:
    firm_slug: str
    events_checked: int
    ok: bool
    broken_event_id: int | None = None
    broken_seq: int | None = None
    problem: str = ""


def audit_chain_verify(*, firm: Firm) -> ChainCheck:
    """Walk ``firm``'s chain in order; report the first event whose link or content is wrong."""
    with firm_context(firm), transaction.atomic():
        prev_hash = GENESIS_HASH
        expected_seq = 1
        checked = 0
        rows = AuditEvent.objects.order_by("seq").iterator(chunk_size=5000)
        for event in rows:
            problem = ""
            if event.seq != expected_seq:
                problem = f"sequence gap: expected #{expected_seq}, found #{event.seq}"
            elif event.prev_hash != prev_hash:
                problem = "previous-hash link does not match the event before it"
            else:
                fields = {
                    "firm_id": event.firm_id,
                    "seq": event.seq,
                    "created_at": event.created_at,
                    "actor_id": event.actor_id,
                    "actor_label": event.actor_label,
                    "action": event.action,
                    "object_type": event.object_type,
                    "object_id": event.object_id,
                    "payload": event.payload,
                    "reasons": event.reasons,
                    "request_id": event.request_id,
                    "run_id": event.run_id,
                }
                if event_hash(fields, event.prev_hash) != event.hash:
                    problem = "content does not match its hash (the event was altered)"
            if problem:
                return ChainCheck(firm.slug, checked, False, event.pk, event.seq, problem)
            prev_hash = event.hash
            expected_seq += 1
            checked += 1
        return ChainCheck(firm.slug, checked, True)


# --------------------------------------------------------------------------- rules


def rule_list() -> list[Any]:
    """The current firm's rules with their current version (inactive ones too)."""
    from compliance.models import ComplianceRule

    return list(ComplianceRule.objects.select_related("current_version").order_by("name", "pk"))


def rule_versions(*, rule_id: int) -> list[Any]:
    from compliance.models import ComplianceRuleVersion

    return list(ComplianceRuleVersion.objects.filter(rule_id=rule_id).order_by("-number"))


def rule_set_versions() -> list[Any]:
    from compliance.models import RuleSetVersion

    return list(RuleSetVersion.objects.order_by("-number"))


# --------------------------------------------------------------------------- review


def review_queue(*, firm: Firm) -> list[dict[str, Any]]:
    """Portfolios held by soft compliance failures, waiting for a second approver, with
    the failures of their held orders (oldest run first). Two queries."""
    from portfolios.models_rebalance import Order, OrderStatus, RunPortfolio, RunPortfolioStatus

    with firm_context(firm), transaction.atomic():
        held = list(
            RunPortfolio.objects.filter(status=RunPortfolioStatus.HELD)
            .select_related("run", "portfolio", "portfolio__client")
            .order_by("run__created_at", "run_id", "portfolio_id")
        )
        orders: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for row in (
            Order.objects.filter(
                run_id__in={rp.run_id for rp in held},
                portfolio_id__in={rp.portfolio_id for rp in held},
                status=OrderStatus.HELD,
            )
            .order_by("pk")
            .values(
                "pk",
                "run_id",
                "portfolio_id",
                "asset__symbol",
                "side",
                "quantity",
                "value",
                "failures",
            )
        ):
            orders.setdefault((row["run_id"], row["portfolio_id"]), []).append(
                {
                    "order_id": row["pk"],
                    "symbol": row["asset__symbol"],
                    "side": row["side"],
                    "quantity": row["quantity"],
                    "value": row["value"],
                    "failures": row["failures"],
                }
            )
        return [
            {
                "run_portfolio_id": rp.pk,
                "run_id": rp.run_id,
                "run_created_at": rp.run.created_at,
                "proposer": rp.run.created_label,
                "proposer_id": rp.run.created_by_id,
                "portfolio_id": rp.portfolio_id,
                "portfolio_number": rp.portfolio.number,
                "client_id": rp.portfolio.client_id,
                "client_name": str(rp.portfolio.client),
                "nav": rp.nav,
                "orders": orders.get((rp.run_id, rp.portfolio_id), []),
            }
            for rp in held
            if (rp.run_id, rp.portfolio_id) in orders
        ]


# --------------------------------------------------------------------------- explain


def order_explain(*, order_id: int, replay: bool = True) -> dict[str, Any]:
    """Everything that produced an order ("why this trade"), in the current firm.

    Raises ``Order.DoesNotExist`` for an unknown (or another firm's) order. With
    ``replay`` the order is also recomputed from its record (see
    :mod:`compliance.replay`), which gives the measured value and limit of every rule,
    passes included (only failures store them) and says whether it still matches.
    """
    from compliance.models import ComplianceOverride
    from compliance.rules import Outcome, outcomes_unpack
    from portfolios.models_rebalance import Order, OrderLot, RebalanceRun, RunPortfolio
    from portfolios.models_strategy import CustomisedVersion, StrategyVersion

    order = Order.objects.select_related("asset", "portfolio", "portfolio__client").get(pk=order_id)
    run = RebalanceRun.objects.get(pk=order.run_id)
    rp = RunPortfolio.objects.get(run=run, portfolio_id=order.portfolio_id)
    snapshot = run.policy_snapshot
    state = rp.state or {}
    assets = snapshot.get("assets", {})
    version = (
        StrategyVersion.objects.filter(pk=rp.strategy_version_id).first()
        if rp.strategy_version_id
        else None
    )
    custom = (
        CustomisedVersion.objects.filter(signature=rp.target_signature).first()
        if rp.target_signature
        else None
    )
    relevant = set(state.get("holdings", {})) | {str(order.asset_id)}
    if version is not None:
        symbols = set(version.weights) | set(custom.weights if custom else {})
        relevant |= {pk for pk, a in assets.items() if a[0] in symbols}
    prices = {
        assets[pk][0] if pk in assets else pk: {"price": p[0], "as_of": p[1]}
        for pk, p in snapshot.get("prices", {}).items()
        if pk in relevant
    }
    rules = snapshot.get("compliance", {}).get("rules", [])
    outcomes = outcomes_unpack(bytes(order.rule_outcomes)).tolist() if order.rule_outcomes else []
    failure_of = {f["rule_id"]: f for f in order.failures}
    replayed: dict[str, Any] | None = None
    measured_of: dict[int, dict[str, Any]] = {}
    if replay:
        from compliance.replay import ReplayError, order_replay

        try:
            result = order_replay(order_id=order.pk)
            replayed = {
                "matches": result.matches,
                "differences": result.differences,
                "notes": result.notes,
            }
            measured_of = {e["rule_id"]: e for e in result.evaluation}
        except ReplayError as exc:
            replayed = {"matches": False, "differences": [str(exc)], "notes": []}
    evaluations = []
    for c, rule in enumerate(rules):
        outcome = Outcome(outcomes[c]).name if c < len(outcomes) else None
        failure = failure_of.get(rule["id"])
        again = measured_of.get(rule["id"], {})
        evaluations.append(
            {
                "rule_id": rule["id"],
                "kind": rule["kind"],
                "severity": "hard" if rule["severity"] == 2 else "soft",
                "params": rule["params"],
                "strategy_ids": rule["strategy_ids"],
                "client_ids": rule["client_ids"],
                "outcome": outcome,
                "measured": failure["measured"] if failure else again.get("measured"),
                "limit": failure["limit"] if failure else again.get("limit"),
                "message": failure["message"] if failure else "",
            }
        )
    lots = [
        {
            "lot_id": lot.lot_id,
            "acquired_on": lot.lot.acquired_on,
            "unit_cost": lot.lot.unit_cost,
            "quantity": lot.quantity,
            "realised_gain": lot.realised_gain,
            "short_term": lot.short_term,
        }
        for lot in OrderLot.objects.filter(order=order).select_related("lot").order_by("pk")
    ]
    overrides = [
        {
            "decision": o.decision,
            "reason": o.reason,
            "actor": o.actor.get_username(),
            "role": o.actor_role,
            "at": o.created_at,
            "failures": o.failures,
        }
        for o in ComplianceOverride.objects.filter(run_portfolio=rp).select_related("actor")
    ]
    events = [
        {
            "id": e.pk,
            "seq": e.seq,
            "at": e.created_at,
            "actor": e.actor_label,
            "action": e.action,
            "payload": e.payload,
            "reasons": e.reasons,
        }
        for e in AuditEvent.objects.filter(run_id=str(run.pk))
        .filter(
            models.Q(object_type="rebalance_run")
            | models.Q(object_type="portfolio", object_id=str(order.portfolio_id))
        )
        .order_by("seq")
    ]
    policy_id = state.get("policy") or rp.policy_id_used
    return {
        "order": {
            "id": order.pk,
            "symbol": order.asset.symbol,
            "asset_id": order.asset_id,
            "side": order.side,
            "quantity": order.quantity,
            "price": order.price,
            "value": order.value,
            "estimated_cost": order.estimated_cost,
            "reason": order.reason,
            "status": order.status,
            "drift": order.drift,
            "band": order.band,
            "compliance_outcome": order.compliance_outcome,
            "fill_quantity": order.fill_quantity,
            "fill_price": order.fill_price,
            "filled_at": order.filled_at,
        },
        "portfolio": {
            "id": order.portfolio_id,
            "number": order.portfolio.number,
            "client_id": order.portfolio.client_id,
            "client": str(order.portfolio.client),
            "status_in_run": rp.status,
            "trigger": rp.trigger,
            "nav": rp.nav,
            "cash_before": rp.cash_before,
            "cash_flow": rp.cash_flow,
            "cash_after": rp.cash_after,
            "max_drift": rp.max_drift,
            "turnover": rp.turnover,
            "state": state,
        },
        "run": {
            "id": run.pk,
            "trigger": run.trigger,
            "status": run.status,
            "preview": run.preview,
            "prices_as_of": run.prices_as_of,
            "created_by": run.created_label,
            "created_at": run.created_at,
            "decided_by": run.decided_by.get_username() if run.decided_by else None,
            "decided_at": run.decided_at,
            "decision_note": run.decision_note,
            "rule_set_version": snapshot.get("compliance", {}).get("version"),
        },
        "prices": prices,
        "target": {
            "strategy_version_id": rp.strategy_version_id,
            "strategy_id": version.strategy_id if version else None,
            "number": version.number if version else None,
            "method": version.method if version else None,
            "inputs": version.inputs if version else None,
            "weights": version.weights if version else None,
            "fingerprint": version.fingerprint if version else None,
            "prices_as_of": version.prices_as_of if version else None,
            "customisation_signature": rp.target_signature,
            "customisation": custom.customisation if custom else None,
            "customised_weights": custom.weights if custom else None,
        },
        "policy": {"id": policy_id, **snapshot.get("policies", {}).get(str(policy_id), {})},
        "band_crossed": {"band": order.band, "drift": order.drift, "trigger": rp.trigger},
        "lots": lots,
        "rules": evaluations,
        "approval": {
            "approved_by": rp.approved_by.get_username() if rp.approved_by else None,
            "approved_at": rp.approved_at,
        },
        "overrides": overrides,
        "audit_events": events,
        "replay": replayed,
    }
