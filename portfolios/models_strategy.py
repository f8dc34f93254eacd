"""Strategies, their immutable model versions and per-client customised versions.

Firm-owned (row-level security on every table). A :class:`Strategy` is what an
advisor edits: a method of :mod:`portfolios.engine.optimise`, its parameters and a
universe of assets. Each computation stores a :class:`StrategyVersion`: the rounded
weights, the fingerprint of the inputs, the statistics and who or what triggered
it. Versions never change once written: a database trigger refuses UPDATE and
DELETE on them (and on customised versions) for every role, the owner included.
A :class:`CustomisedVersion` caches the weights of one (version, customisation)
signature (:func:`portfolios.engine.customise.signature`), computed once and shared
by every portfolio with that signature.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from accounts.tenancy.models import FirmOwnedModel, FirmScopedManager
from portfolios.engine.customise import Customisation
from portfolios.engine.types import Method
from portfolios.models_market import PriceFrequency

__all__ = [
    "ClientRestriction",
    "CustomisedVersion",
    "Strategy",
    "StrategyStatus",
    "StrategyVersion",
    "VersionTrigger",
]

WEIGHT_PLACES = 10
WEIGHT_QUANTUM = Decimal(1).scaleb(-WEIGHT_PLACES)


class StrategyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class VersionTrigger(models.TextChoices):
    USER = "user", "User"
    SCHEDULE = "schedule", "Schedule"
    SYSTEM = "system", "System"


METHOD_CHOICES = [(m.value, m.value.replace("_", " ").capitalize()) for m in Method]


class Strategy(FirmOwnedModel):
    """A firm's model portfolio definition: method, parameters and universe."""

    objects = FirmScopedManager["Strategy"]()

    name = models.CharField(max_length=200)
    method = models.CharField(max_length=32, choices=METHOD_CHOICES)
    universe = ArrayField(
        models.CharField(max_length=20),
        help_text="Asset symbols, in order (platform assets).",
    )
    parameters = models.JSONField(
        default=dict,
        blank=True,
        help_text="Fields of the engine's OptimiseRequest besides method, universe and prices.",
    )
    price_frequency = models.CharField(
        max_length=8, choices=PriceFrequency.choices, default=PriceFrequency.DAILY
    )
    screening = models.JSONField(
        default=dict,
        blank=True,
        help_text="Index strategies: screening rules applied before selection "
        "(fields of the engine's ScreeningRules).",
    )
    status = models.CharField(
        max_length=16, choices=StrategyStatus.choices, default=StrategyStatus.DRAFT
    )
    risk_level_min = models.PositiveSmallIntegerField(default=1)
    risk_level_max = models.PositiveSmallIntegerField(default=10)
    explanation = models.TextField(blank=True, help_text="Plain language, for clients.")
    rebalance_policy = models.ForeignKey(
        "portfolios.RebalancePolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Overrides the firm's default rebalancing policy.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["firm", "name"], name="strategy_firm_name_unique"),
            models.CheckConstraint(
                condition=models.Q(risk_level_min__gte=1)
                & models.Q(risk_level_max__lte=10)
                & models.Q(risk_level_min__lte=models.F("risk_level_max")),
                name="strategy_risk_band_valid",
            ),
        ]
        indexes = [models.Index(fields=["firm", "status"], name="strategy_firm_status_idx")]

    def __str__(self) -> str:
        return self.name


class StrategyVersion(FirmOwnedModel):
    """One computation of a strategy. Immutable: the database refuses UPDATE and DELETE."""

    objects = FirmScopedManager["StrategyVersion"]()

    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    method = models.CharField(max_length=32, choices=METHOD_CHOICES)
    inputs = models.JSONField(
        help_text="The request's parameters in canonical form (universe, bounds, ...)."
    )
    weights = models.JSONField(
        help_text="Symbol -> weight as a decimal string with 10 places; sums to exactly 1."
    )
    fingerprint = models.CharField(max_length=64)
    prices_as_of = models.DateField()
    prices_digest = models.CharField(max_length=64)
    expected_return = models.DecimalField(max_digits=20, decimal_places=10)
    volatility = models.DecimalField(max_digits=20, decimal_places=10)
    sharpe_ratio = models.DecimalField(max_digits=20, decimal_places=10)
    risk_free_rate = models.DecimalField(max_digits=20, decimal_places=10)
    details = models.JSONField(default=dict, blank=True)
    trigger = models.CharField(max_length=16, choices=VersionTrigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    trigger_label = models.CharField(max_length=150, help_text="Username or job name.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["strategy", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "strategy", "number"], name="strategyversion_number_unique"
            ),
            models.UniqueConstraint(
                fields=["firm", "strategy", "fingerprint"],
                name="strategyversion_fingerprint_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(number__gte=1), name="strategyversion_number_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy_id} v{self.number}"

    def weights_ordered(self) -> dict[str, str]:
        """The weights (decimal strings) in universe order: jsonb keeps no key order."""
        order = [s for s in self.inputs.get("universe", []) if s in self.weights]
        seen = set(order)
        order += sorted(s for s in self.weights if s not in seen)
        return {symbol: self.weights[symbol] for symbol in order}

    def weights_decimal(self) -> dict[str, Decimal]:
        return {symbol: Decimal(w) for symbol, w in self.weights_ordered().items()}


class CustomisedVersion(FirmOwnedModel):
    """Customised weights of one (version, customisation) signature. Immutable."""

    objects = FirmScopedManager["CustomisedVersion"]()

    version = models.ForeignKey(
        StrategyVersion, on_delete=models.PROTECT, related_name="customised"
    )
    signature = models.CharField(max_length=64)
    customisation = models.JSONField(help_text="The customisation in canonical form.")
    weights = models.JSONField(help_text="Symbol -> weight as a decimal string, sums to 1.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "signature"], name="customisedversion_signature_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version_id} {self.signature[:12]}"


class ClientRestriction(FirmOwnedModel):
    """A client's restrictions on the strategies they follow (one row per client).

    Excluded assets and tags, per-asset bounds ``{symbol: [lo, hi]}`` and asset-class
    tilts ``{class: tilt}``: the engine's :class:`~portfolios.engine.customise.Customisation`
    (``as_customisation``). Written only by ``client_restriction_set`` / ``_clear``,
    which validate every field and audit the change.
    """

    objects = FirmScopedManager["ClientRestriction"]()

    # One row per client: the unique constraint (firm first) makes it one-to-one.
    client = models.ForeignKey("accounts.Client", on_delete=models.PROTECT, related_name="+")
    excluded_assets = ArrayField(models.CharField(max_length=20), default=list, blank=True)
    excluded_tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    asset_bounds = models.JSONField(default=dict, blank=True)
    class_tilts = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "client"], name="clientrestriction_firm_client_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"restrictions of client {self.client_id}"

    def as_data(self) -> dict[str, Any]:
        return {
            "excluded_assets": list(self.excluded_assets),
            "excluded_tags": list(self.excluded_tags),
            "asset_bounds": {k: list(v) for k, v in dict(self.asset_bounds).items()},
            "class_tilts": dict(self.class_tilts),
        }

    def as_customisation(self) -> Customisation:
        return Customisation(
            excluded_assets=frozenset(self.excluded_assets),
            excluded_tags=frozenset(self.excluded_tags),
            asset_bounds={
                k: (float(v[0]), float(v[1])) for k, v in dict(self.asset_bounds).items()
            },
            class_tilts={k: float(v) for k, v in dict(self.class_tilts).items()},
        )
