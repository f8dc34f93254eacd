"""Overrides: a second person releases (or rejects) a portfolio held by soft failures.

Rules of the four-eyes check, enforced here (not only in the views):

* only **compliance officers and firm admins** may release or reject a held
  portfolio. Advisors may not, even one other than the proposer: the second
  approver of a soft failure is a control function, not a colleague of the person
  whose trade it is. Investors never;
* the releaser is **not the run's proposer** (``RebalanceRun.created_by``; a run
  started by the system has no proposer, so any compliance officer or admin may
  release it);
* a **written reason** is required;
* a **hard** failure (the portfolio is BLOCKED) cannot be released by anyone: only a
  compliance officer changing the rule (a new rule version), and a new run, helps.

After a release the portfolio continues like any proposal: a discretionary one
executes at once if its run was already approved (else with the run's approval); a
non-discretionary one awaits its own approval. Each decision stores a
:class:`ComplianceOverride` with the failures it released, and is audited.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Firm, Role, User
from accounts.tenancy.context import firm_context
from compliance.models import ComplianceOverride, OverrideDecision
from compliance.services.audit import audit_record
from compliance.services.rule_management import RulePermissionError, actor_role
from portfolios.models import Portfolio
from portfolios.models_rebalance import (
    Order,
    OrderStatus,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
    RunStatus,
)

RELEASERS: frozenset[str] = frozenset({Role.COMPLIANCE, Role.FIRM_ADMIN})
RUN_APPROVED = (RunStatus.APPROVED, RunStatus.EXECUTING, RunStatus.DONE)
RUN_DECIDABLE = (RunStatus.AWAITING_APPROVAL, *RUN_APPROVED)


class OverrideError(Exception):
    """The override is refused; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check(
    *, actor: User | None, run_portfolio: RunPortfolio, reason: str, releasing: bool
) -> tuple[RunPortfolio, RebalanceRun, str, str]:
    if actor is None:
        raise RulePermissionError("a held portfolio is decided by a signed-in person")
    role = actor_role(actor=actor)
    if role not in RELEASERS:
        raise RulePermissionError(
            "only compliance officers and firm admins may decide on a portfolio held by "
            f"soft compliance failures (your role: {role or 'none'})"
        )
    reason = (reason or "").strip()
    if not reason:
        raise OverrideError("reason", "write why the failures are released or rejected")
    locked = RunPortfolio.objects.select_for_update().get(pk=run_portfolio.pk)
    run = RebalanceRun.objects.get(pk=locked.run_id)
    if locked.status == RunPortfolioStatus.BLOCKED:
        raise OverrideError(
            "status",
            "a hard compliance failure cannot be released: only changing the rule (a new "
            "rule version by a compliance officer) and a new run can let these trades through",
        )
    if locked.status != RunPortfolioStatus.HELD:
        raise OverrideError(
            "status", f"this portfolio is {locked.get_status_display().lower()}, not held"
        )
    if run.preview:
        raise OverrideError("run", "a preview is never executed; start a run to trade")
    if run.status not in RUN_DECIDABLE:
        raise OverrideError("run", f"the run is {run.get_status_display().lower()}")
    if releasing and run.created_by_id is not None and run.created_by_id == actor.pk:
        raise RulePermissionError(
            "the run's proposer cannot release its soft failures: a second person must"
        )
    return locked, run, role, reason


def _held_failures(run_portfolio: RunPortfolio) -> list[dict[str, Any]]:
    return [
        {
            "order_id": oid,
            "asset_id": aid,
            "side": side,
            "quantity": str(qty),
            "outcome": outcome,
            "failures": failures,
        }
        for oid, aid, side, qty, outcome, failures in Order.objects.filter(
            run_id=run_portfolio.run_id,
            portfolio_id=run_portfolio.portfolio_id,
            status=OrderStatus.HELD,
        )
        .order_by("pk")
        .values_list("pk", "asset_id", "side", "quantity", "compliance_outcome", "failures")
    ]


def held_portfolio_release(
    *, firm: Firm, actor: User | None, run_portfolio: RunPortfolio, reason: str
) -> RunPortfolio:
    """Release a portfolio held by soft failures (see the module docstring)."""
    from portfolios.services_execution import _after_commit_execute

    with firm_context(firm), transaction.atomic():
        locked, run, role, reason = _check(
            actor=actor, run_portfolio=run_portfolio, reason=reason, releasing=True
        )
        failures = _held_failures(locked)
        if any(f["outcome"] >= 2 for f in failures):  # defensive: HELD means soft only
            raise OverrideError("status", "an order of this portfolio failed a hard rule")
        discretionary = Portfolio.objects.filter(pk=locked.portfolio_id).values_list(
            "discretionary", flat=True
        )[0]
        now = timezone.now()
        execute = discretionary and run.status in RUN_APPROVED
        if execute:
            status, order_status = RunPortfolioStatus.APPROVED, OrderStatus.APPROVED
        elif discretionary:
            status, order_status = RunPortfolioStatus.PROPOSED, OrderStatus.PROPOSED
        else:
            status, order_status = RunPortfolioStatus.AWAITING_CLIENT, OrderStatus.PROPOSED
        RunPortfolio.objects.filter(pk=locked.pk).update(
            status=status,
            approved_by=actor if execute else None,
            approved_at=now if execute else None,
        )
        Order.objects.filter(
            run=run, portfolio_id=locked.portfolio_id, status=OrderStatus.HELD
        ).update(status=order_status)
        override = ComplianceOverride.objects.create(
            run_portfolio=locked,
            run=run,
            portfolio_id=locked.portfolio_id,
            decision=OverrideDecision.RELEASED,
            reason=reason,
            failures=failures,
            actor=actor,
            actor_role=role,
        )
        audit_record(
            action="compliance.override_released",
            actor=actor,
            object_type="portfolio",
            object_id=locked.portfolio_id,
            run_id=str(run.pk),
            payload={
                "run_portfolio": locked.pk,
                "override": override.pk,
                "role": role,
                "status": status,
                "orders": [f["order_id"] for f in failures],
                "rules": sorted({x["rule_id"] for f in failures for x in f["failures"]}),
            },
            reasons=[reason],
        )
        if execute:
            _after_commit_execute(run, [locked.portfolio_id])
    with firm_context(firm), transaction.atomic():
        run_portfolio.refresh_from_db()
    return run_portfolio


def held_portfolio_reject(
    *, firm: Firm, actor: User | None, run_portfolio: RunPortfolio, reason: str
) -> RunPortfolio:
    """Reject a portfolio held by soft failures: nothing of it executes. Same roles and
    reason as a release; the proposer may reject (declining a trade needs no second
    person)."""
    with firm_context(firm), transaction.atomic():
        locked, run, role, reason = _check(
            actor=actor, run_portfolio=run_portfolio, reason=reason, releasing=False
        )
        failures = _held_failures(locked)
        RunPortfolio.objects.filter(pk=locked.pk).update(status=RunPortfolioStatus.REJECTED)
        Order.objects.filter(
            run=run, portfolio_id=locked.portfolio_id, status=OrderStatus.HELD
        ).update(status=OrderStatus.REJECTED)
        override = ComplianceOverride.objects.create(
            run_portfolio=locked,
            run=run,
            portfolio_id=locked.portfolio_id,
            decision=OverrideDecision.REJECTED,
            reason=reason,
            failures=failures,
            actor=actor,
            actor_role=role,
        )
        audit_record(
            action="compliance.override_rejected",
            actor=actor,
            object_type="portfolio",
            object_id=locked.portfolio_id,
            run_id=str(run.pk),
            payload={
                "run_portfolio": locked.pk,
                "override": override.pk,
                "role": role,
                "orders": [f["order_id"] for f in failures],
            },
            reasons=[reason],
        )
    with firm_context(firm), transaction.atomic():
        run_portfolio.refresh_from_db()
    return run_portfolio
