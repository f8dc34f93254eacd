"""Notifications: the in-app inbox, the outbox of deliveries (email, webhook), each user's
preferences and the firm's webhook endpoints. Firm-owned, row-level security on every table.

A :class:`Notification` is one event told to one user; it is also that user's in-app
inbox item. A :class:`Delivery` is one send of one event to one target (a user's email,
a firm's webhook endpoint) through one channel; ``(firm, event_key, target, channel)`` is
unique, so a retried hook or task never creates a second send.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.tenancy.models import FirmOwnedModel, FirmScopedManager

__all__ = [
    "Channel",
    "Delivery",
    "DeliveryStatus",
    "DigestMode",
    "Notification",
    "NotificationPreference",
    "WebhookEndpoint",
]


class Channel(models.TextChoices):
    IN_APP = "in_app", "In the app"
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class DigestMode(models.TextChoices):
    IMMEDIATE = "immediate", "Immediately"
    DIGEST = "digest", "In a daily digest"


class Notification(FirmOwnedModel):
    """One event told to one user: their inbox item (unless ``in_inbox`` is off)."""

    objects = FirmScopedManager["Notification"]()

    event_type = models.CharField(max_length=40)
    event_key = models.CharField(max_length=120, help_text="Identifies the event, firm-wide.")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    subject = models.CharField(max_length=200)
    body = models.TextField()
    link = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    regulatory = models.BooleanField(default=False)
    in_inbox = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "event_key", "recipient"], name="notification_event_recipient"
            )
        ]
        indexes = [
            models.Index(
                fields=["firm", "recipient", "archived_at", "read_at"],
                name="notification_inbox_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.recipient_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    HELD_FOR_DIGEST = "digest", "Held for the daily digest"
    SENDING = "sending", "Being sent"
    SENT = "sent", "Sent"
    DIGESTED = "digested", "Sent in a digest"
    FAILED = "failed", "Failed"


class WebhookEndpoint(FirmOwnedModel):
    """A firm's URL that receives its events, signed with HMAC-SHA256 under ``secret``."""

    objects = FirmScopedManager["WebhookEndpoint"]()

    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=80)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty: every event.")
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class Delivery(FirmOwnedModel):
    """One send through one channel; the outbox row the delivery tasks work through."""

    objects = FirmScopedManager["Delivery"]()

    event_key = models.CharField(max_length=120)
    target = models.CharField(max_length=40, help_text="user:<id> or endpoint:<id>.")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    payload = models.JSONField(default=dict, blank=True, help_text="Webhook body.")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claim_token = models.CharField(max_length=36, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    note = models.TextField(blank=True, help_text="E.g. the firm's template failed.")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "event_key", "target", "channel"], name="delivery_once"
            )
        ]
        indexes = [
            models.Index(fields=["firm", "status", "next_attempt_at"], name="delivery_due_idx"),
        ]

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of this delivery: receivers drop repeats of it."""
        return f"{self.firm_id}:{self.event_key}:{self.target}:{self.channel}"


class NotificationPreference(FirmOwnedModel):
    """A user's choice for one event type: channels, and immediately or in a digest."""

    objects = FirmScopedManager["NotificationPreference"]()

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=40)
    channels = models.JSONField(default=list)
    mode = models.CharField(max_length=10, choices=DigestMode.choices, default=DigestMode.IMMEDIATE)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "user", "event_type"], name="notification_pref_unique"
            )
        ]
