"""Firms (the tenants), users and their memberships."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower

from accounts.tenancy.models import AllFirmsManager, FirmScopedManager


def default_firm_settings() -> dict[str, Any]:
    return {"risk_profile_valid_months": 12}


class Firm(models.Model):
    """An advisory firm: the tenant. Platform-level, so readable without a firm context."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    settings = models.JSONField(default=default_firm_settings, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person who signs in. Platform-level; what they may see comes from memberships."""

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
        ]


class Role(models.TextChoices):
    FIRM_ADMIN = "firm_admin", "Firm admin"
    ADVISOR = "advisor", "Advisor"
    COMPLIANCE = "compliance", "Compliance officer"
    INVESTOR = "investor", "Investor"


STAFF_ROLES = frozenset({Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE})


class Membership(models.Model):
    """A user's role in one firm. A user may belong to several firms.

    Firm-owned and protected by row-level security; the policy also lets a signed-in
    user read their own memberships in every firm, which is how the firm switcher
    lists them.
    """

    firm = models.ForeignKey(Firm, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=20, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["Membership"]()
    # A user's own memberships across firms (login, firm switcher). See tenancy tests.
    objects_all_firms = AllFirmsManager["Membership"]()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["firm", "user"], name="membership_firm_user_unique"),
        ]
        indexes = [models.Index(fields=["firm", "role"], name="membership_firm_role_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.firm_id}:{self.role}"
