"""Firms (the tenants), users and their memberships; the client book; questionnaires and
risk profiles."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from guardian.managers import UserObjectPermissionManager
from guardian.models import UserObjectPermissionBase

from accounts.tenancy.models import AllFirmsManager, FirmOwnedModel, FirmScopedManager


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


# --- the client book -------------------------------------------------------------------


class Household(FirmOwnedModel):
    """A family or other group of clients managed together; advisors are assigned to it."""

    name = models.CharField(max_length=200)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["Household"]()

    class Meta:
        base_manager_name = "objects"
        indexes = [models.Index(fields=["firm", "name"], name="household_firm_name_idx")]

    def __str__(self) -> str:
        return self.name


class HouseholdPermissionManager(FirmScopedManager, UserObjectPermissionManager):  # type: ignore[type-arg]
    """guardian's manager (``assign_perm`` and friends), scoped to the current firm."""


class HouseholdUserObjectPermission(FirmOwnedModel, UserObjectPermissionBase):
    """An advisor's grant on one household (django-guardian direct foreign key).

    Carries the firm, so grants are isolated by row-level security like everything else
    (guardian's generic tables have no firm).
    """

    # With a reverse relation: that is how guardian finds this direct-FK model.
    content_object = models.ForeignKey(Household, on_delete=models.CASCADE)

    objects = HouseholdPermissionManager()  # type: ignore[misc]

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "user", "permission", "content_object"],
                name="household_perm_unique",
            )
        ]
        indexes = [
            models.Index(fields=["firm", "user", "permission"], name="household_perm_user_idx")
        ]


class KycStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Rejected"


class TaxStatus(models.TextChoices):
    RESIDENT = "resident", "Tax resident"
    NON_RESIDENT = "non_resident", "Non-resident"
    EXEMPT = "exempt", "Tax-exempt"


class Employment(models.TextChoices):
    EMPLOYED = "employed", "Employed"
    SELF_EMPLOYED = "self_employed", "Self-employed"
    RETIRED = "retired", "Retired"
    STUDENT = "student", "Student"
    UNEMPLOYED = "unemployed", "Not employed"


class Client(FirmOwnedModel):
    """A person in a household; ``user`` is their login once they accepted an invitation."""

    household = models.ForeignKey(Household, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    first_name = models.CharField(max_length=150)
    last_name = models.CharField(max_length=150)
    date_of_birth = models.DateField(null=True, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    tax_residence = models.CharField(max_length=2, default="US", help_text="ISO 3166 country")
    tax_status = models.CharField(
        max_length=20, choices=TaxStatus.choices, default=TaxStatus.RESIDENT
    )
    employment = models.CharField(
        max_length=20, choices=Employment.choices, default=Employment.EMPLOYED
    )
    kyc_status = models.CharField(
        max_length=20, choices=KycStatus.choices, default=KycStatus.PENDING
    )
    kyc_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["Client"]()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "user"],
                condition=models.Q(user__isnull=False),
                name="client_firm_user_unique",
            )
        ]
        indexes = [
            models.Index(fields=["firm", "household"], name="client_firm_household_idx"),
            models.Index(fields=["firm", "last_name", "first_name"], name="client_firm_name_idx"),
        ]

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def __str__(self) -> str:
        return self.full_name


class Invitation(FirmOwnedModel):
    """A single-use, expiring sign-up link sent to a client. Only a hash of the token is kept."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    email = models.EmailField()
    token_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    invited_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["Invitation"]()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["firm", "token_hash"], name="invitation_token_unique")
        ]
        indexes = [models.Index(fields=["firm", "client"], name="invitation_firm_client_idx")]


# --- questionnaires and risk profiles --------------------------------------------------


class Dimension(models.TextChoices):
    TOLERANCE = "tolerance", "Risk tolerance"
    CAPACITY = "capacity", "Risk capacity"
    HORIZON = "horizon", "Time horizon and liquidity"
    GOALS = "goals", "Goals"
    EXPERIENCE = "experience", "Investing experience"


class QuestionnaireStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    SUPERSEDED = "superseded", "Superseded"


class Questionnaire(FirmOwnedModel):
    """One version of a firm's questionnaire. Published versions are immutable (the
    database refuses changes to them, their questions and options)."""

    key = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    status = models.CharField(
        max_length=20, choices=QuestionnaireStatus.choices, default=QuestionnaireStatus.DRAFT
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["Questionnaire"]()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "key", "version"], name="questionnaire_version_unique"
            ),
            models.UniqueConstraint(
                fields=["firm", "key"],
                condition=models.Q(status="published"),
                name="questionnaire_one_published",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_editable(self) -> bool:
        return self.status == QuestionnaireStatus.DRAFT


class Question(FirmOwnedModel):
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    code = models.SlugField(max_length=60)
    dimension = models.CharField(max_length=20, choices=Dimension.choices)
    text = models.CharField(max_length=500)
    help_text = models.CharField(max_length=500, blank=True)

    objects = FirmScopedManager["Question"]()

    class Meta:
        base_manager_name = "objects"
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "questionnaire", "code"], name="question_code_unique"
            )
        ]

    def __str__(self) -> str:
        return self.code


class AnswerOption(FirmOwnedModel):
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    code = models.SlugField(max_length=60)
    text = models.CharField(max_length=300)
    score = models.IntegerField()
    tags = models.JSONField(default=list, blank=True)
    horizon_years = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)

    objects = FirmScopedManager["AnswerOption"]()

    class Meta:
        base_manager_name = "objects"
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "question", "code"], name="answer_option_code_unique"
            )
        ]

    def __str__(self) -> str:
        return self.code


class ResponseStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    SUBMITTED = "submitted", "Submitted"


class QuestionnaireResponse(FirmOwnedModel):
    """A client's answers to one questionnaire version: saved as they go, then submitted."""

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.PROTECT, related_name="+")
    answers = models.JSONField(default=dict, blank=True)  # question code -> option code
    status = models.CharField(
        max_length=20, choices=ResponseStatus.choices, default=ResponseStatus.IN_PROGRESS
    )
    started_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    objects = FirmScopedManager["QuestionnaireResponse"]()

    class Meta:
        base_manager_name = "objects"
        indexes = [models.Index(fields=["firm", "client", "status"], name="response_client_idx")]


class ProfileStatus(models.TextChoices):
    CURRENT = "current", "Current"
    SUPERSEDED = "superseded", "Superseded"
    STALE = "stale", "Stale (expired)"


class RiskProfile(FirmOwnedModel):
    """The scored profile of one submitted response. Tolerance, capacity and horizon
    stay apart; the risk level is the most conservative of what they allow."""

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    response = models.OneToOneField(
        QuestionnaireResponse, on_delete=models.PROTECT, related_name="+"
    )
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.PROTECT, related_name="+")
    tolerance_score = models.DecimalField(max_digits=5, decimal_places=2)
    capacity_score = models.DecimalField(max_digits=5, decimal_places=2)
    horizon_years = models.DecimalField(max_digits=5, decimal_places=2)
    tolerance_level = models.PositiveSmallIntegerField()
    capacity_level = models.PositiveSmallIntegerField()
    horizon_level = models.PositiveSmallIntegerField()
    risk_level = models.PositiveSmallIntegerField()
    binding = models.JSONField(default=list)
    explanation = models.TextField()
    status = models.CharField(
        max_length=20, choices=ProfileStatus.choices, default=ProfileStatus.CURRENT
    )
    valid_until = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["RiskProfile"]()

    class Meta:
        base_manager_name = "objects"
        indexes = [
            models.Index(fields=["firm", "client", "status"], name="profile_client_idx"),
            models.Index(fields=["firm", "status", "valid_until"], name="profile_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(risk_level__gte=1, risk_level__lte=10),
                name="profile_risk_level_range",
            )
        ]


class ProfileFlag(FirmOwnedModel):
    """A consistency flag on a profile; blocks automatic mapping until resolved with a note."""

    profile = models.ForeignKey(RiskProfile, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=60)
    message = models.CharField(max_length=500)
    questions = models.JSONField(default=list)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["ProfileFlag"]()

    class Meta:
        base_manager_name = "objects"
        indexes = [models.Index(fields=["firm", "profile"], name="flag_profile_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(resolved_at__isnull=True) | ~models.Q(resolution_note=""),
                name="flag_resolution_needs_note",
            )
        ]

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


# --- profile to strategy -------------------------------------------------------------------


class ModelPortfolio(FirmOwnedModel):
    """Placeholder strategy until the strategies issue lands: asset-class target weights
    (fractions summing to 1) and the band of risk levels it suits."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    weights = models.JSONField(help_text="asset class -> weight as a decimal string")
    min_risk_level = models.PositiveSmallIntegerField()
    max_risk_level = models.PositiveSmallIntegerField()
    # What a bad year could look like, as a fraction (e.g. "-0.25"): plain-language result.
    bad_year_return = models.DecimalField(max_digits=5, decimal_places=4)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["ModelPortfolio"]()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["firm", "name"], name="model_portfolio_name_unique"),
            models.CheckConstraint(
                condition=models.Q(min_risk_level__gte=1, max_risk_level__lte=10)
                & models.Q(min_risk_level__lte=models.F("max_risk_level")),
                name="model_portfolio_band_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def suits(self, risk_level: int) -> bool:
        return self.min_risk_level <= risk_level <= self.max_risk_level


# A mapping or an assignment points at exactly one of a strategy and a model portfolio.
ONE_TARGET = models.Q(strategy__isnull=False, model_portfolio__isnull=True) | models.Q(
    strategy__isnull=True, model_portfolio__isnull=False
)


class RiskLevelMapping(FirmOwnedModel):
    """The firm's mapping from a risk level to the strategy (or, for a firm without
    strategies, the placeholder model portfolio) it gets automatically."""

    risk_level = models.PositiveSmallIntegerField()
    # Exactly one target: a real strategy, or the placeholder model portfolio.
    model_portfolio = models.ForeignKey(
        ModelPortfolio, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    strategy = models.ForeignKey(
        "portfolios.Strategy", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = FirmScopedManager["RiskLevelMapping"]()

    class Meta:
        base_manager_name = "objects"
        ordering = ["risk_level"]
        constraints = [
            models.UniqueConstraint(fields=["firm", "risk_level"], name="mapping_level_unique"),
            models.CheckConstraint(
                condition=models.Q(risk_level__gte=1, risk_level__lte=10),
                name="mapping_level_range",
            ),
            models.CheckConstraint(condition=ONE_TARGET, name="mapping_exactly_one_target"),
        ]


class AssignmentSource(models.TextChoices):
    MAPPING = "mapping", "Mapped from the risk level"
    OVERRIDE = "override", "Advisor override"


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PENDING_APPROVAL = "pending_approval", "Waiting for compliance approval"
    REJECTED = "rejected", "Rejected by compliance"
    SUPERSEDED = "superseded", "Superseded"


class StrategyAssignment(FirmOwnedModel):
    """Which strategy (or placeholder model portfolio) a client follows, why, and who
    approved it."""

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    profile = models.ForeignKey(RiskProfile, on_delete=models.PROTECT, related_name="+")
    # Exactly one target: a real strategy, or the placeholder model portfolio.
    model_portfolio = models.ForeignKey(
        ModelPortfolio, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    strategy = models.ForeignKey(
        "portfolios.Strategy", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=20, choices=AssignmentSource.choices)
    status = models.CharField(max_length=20, choices=AssignmentStatus.choices)
    rationale = models.TextField(blank=True)
    outside_band = models.BooleanField(default=False)
    inputs = models.JSONField(default=dict)
    assigned_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FirmScopedManager["StrategyAssignment"]()

    class Meta:
        base_manager_name = "objects"
        indexes = [
            models.Index(fields=["firm", "client", "status"], name="assignment_client_idx"),
            models.Index(fields=["firm", "status"], name="assignment_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(source="override") | ~models.Q(rationale=""),
                name="assignment_override_needs_rationale",
            ),
            models.CheckConstraint(condition=ONE_TARGET, name="assignment_exactly_one_target"),
            models.UniqueConstraint(
                fields=["firm", "client"],
                condition=models.Q(status="active"),
                name="assignment_one_active_per_client",
            ),
        ]


from accounts.models_notifications import *  # noqa: E402, F403
