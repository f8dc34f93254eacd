"""Versioned firm rules, the firm's rule-set versions, and overrides of soft failures.

A :class:`ComplianceRule` is the stable identity of one rule of a firm (its name and
kind, and whether it is active). Everything that can change about it (severity,
parameters, scope) lives in immutable :class:`ComplianceRuleVersion` rows: an edit
is a new version. Every change also writes a new :class:`RuleSetVersion` of the
firm, listing the rule versions in force at that moment; a rebalance run fixes the
latest one when it starts (``RebalanceRun.policy_snapshot["compliance"]``), so an
order always names the exact rule set it was checked against.

The database refuses UPDATE and DELETE on versions and overrides (triggers in the
migration), like the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from accounts.tenancy.models import FirmOwnedModel, FirmScopedManager


class ImmutableRowError(RuntimeError):
    """A stored version or override is never changed: write a new one."""


class _Immutable(FirmOwnedModel):
    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ImmutableRowError(f"{type(self).__name__} rows are immutable")
        super().save(*args, **kwargs)


class ComplianceRule(FirmOwnedModel):
    """One rule of a firm: a name and a kind (one of ``compliance.rules.RULE_KINDS``)."""

    objects = FirmScopedManager["ComplianceRule"]()

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=40)
    active = models.BooleanField(default=True)
    current_version = models.ForeignKey(
        "compliance.ComplianceRuleVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        base_manager_name = "objects"
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["firm", "name"], name="compliancerule_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class ComplianceRuleVersion(_Immutable):
    """An immutable version of a rule: severity (1 soft, 2 hard), params and scope."""

    objects = FirmScopedManager["ComplianceRuleVersion"]()

    rule = models.ForeignKey(ComplianceRule, on_delete=models.PROTECT, related_name="+")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=40)
    severity = models.PositiveSmallIntegerField()
    params = models.JSONField(default=dict, help_text="Normalised by rule_params_validate.")
    strategy_ids = models.JSONField(default=list, blank=True, help_text="Empty: every strategy.")
    client_ids = models.JSONField(default=list, blank=True, help_text="Empty: every client.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        base_manager_name = "objects"
        ordering = ["rule_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "rule", "number"], name="compliancerulever_number_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(severity__in=[1, 2]), name="compliancerulever_severity"
            ),
        ]

    def __str__(self) -> str:
        return f"rule {self.rule_id} v{self.number}"


class RuleSetVersion(_Immutable):
    """The firm's rules in force after one change: the list of rule version ids."""

    objects = FirmScopedManager["RuleSetVersion"]()

    number = models.PositiveIntegerField()
    rule_version_ids = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        base_manager_name = "objects"
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["firm", "number"], name="rulesetversion_number_unique"),
        ]

    def __str__(self) -> str:
        return f"rule set v{self.number}"


class OverrideDecision(models.TextChoices):
    RELEASED = "released", "Released"
    REJECTED = "rejected", "Rejected"


class ComplianceOverride(_Immutable):
    """A second person's decision on a portfolio held by soft failures, with the
    failures it released (or rejected) and the written reason."""

    objects = FirmScopedManager["ComplianceOverride"]()

    run_portfolio = models.ForeignKey(
        "portfolios.RunPortfolio", on_delete=models.PROTECT, related_name="+"
    )
    run = models.ForeignKey("portfolios.RebalanceRun", on_delete=models.PROTECT, related_name="+")
    portfolio = models.ForeignKey(
        "portfolios.Portfolio", on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=12, choices=OverrideDecision.choices)
    reason = models.TextField()
    failures = models.JSONField(default=list, help_text="Per order: order id, asset, failures.")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    actor_role = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        base_manager_name = "objects"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "run_portfolio"], name="complianceoverride_once"
            ),
            models.CheckConstraint(
                condition=~models.Q(reason=""), name="complianceoverride_reason"
            ),
        ]
        indexes = [models.Index(fields=["firm", "run"], name="override_run_idx")]

    def __str__(self) -> str:
        return f"{self.decision} run portfolio {self.run_portfolio_id}"
