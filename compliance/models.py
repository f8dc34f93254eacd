"""The append-only, hash-chained audit trail."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.tenancy.models import FirmOwnedModel, FirmScopedManager


class AuditEvent(FirmOwnedModel):
    """One decision or state change, with its reasons.

    Each firm's events form a chain: ``hash`` covers the event's content and the
    previous event's hash, so an edit anywhere breaks every later link. The database
    refuses UPDATE, DELETE and TRUNCATE (triggers) and grants the application role
    INSERT and SELECT only.
    """

    seq = models.BigIntegerField(help_text="Position in the firm's chain, from 1.")
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150, help_text="Username or system job name.")
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict)
    reasons = models.JSONField(default=list)
    request_id = models.CharField(max_length=64, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["firm", "seq"], name="auditevent_firm_seq_unique"),
        ]
        indexes = [
            models.Index(fields=["firm", "created_at"], name="audit_firm_time_idx"),
            models.Index(fields=["firm", "action", "created_at"], name="audit_firm_action_idx"),
            models.Index(fields=["firm", "object_type", "object_id"], name="audit_firm_object_idx"),
            models.Index(fields=["firm", "actor"], name="audit_firm_actor_idx"),
            models.Index(fields=["firm", "run_id"], name="audit_firm_run_idx"),
        ]
        ordering = ["firm", "seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type}:{self.object_id}"


class ChainVerification(FirmOwnedModel):
    """One check of a firm's audit hash chain (the nightly task, or "verify now")."""

    objects = FirmScopedManager["ChainVerification"]()

    checked_at = models.DateTimeField()
    ok = models.BooleanField()
    events_checked = models.BigIntegerField(help_text="Intact events, in order, from #1.")
    first_broken_seq = models.BigIntegerField(null=True, blank=True)
    first_broken_event_id = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    triggered_by = models.CharField(
        max_length=150, help_text="Who asked: a username, or the nightly job's name."
    )

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["firm", "-checked_at"], name="chaincheck_firm_time_idx")]

    def __str__(self) -> str:
        state = "intact" if self.ok else f"broken at #{self.first_broken_seq}"
        return f"chain {state} ({self.checked_at:%Y-%m-%d %H:%M})"


from compliance.models_rules import (  # noqa: E402  (models of the app live in two modules)
    ComplianceOverride,
    ComplianceRule,
    ComplianceRuleVersion,
    ImmutableRowError,
    OverrideDecision,
    RuleSetVersion,
)

__all__ = [
    "AuditEvent",
    "ChainVerification",
    "ComplianceOverride",
    "ComplianceRule",
    "ComplianceRuleVersion",
    "ImmutableRowError",
    "OverrideDecision",
    "RuleSetVersion",
]
