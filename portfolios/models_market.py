"""Market data: assets, market capitalisations, prices and the imports that wrote them.

Platform-wide reference data, not owned by a firm: plain models without a firm key
(no row-level security; every firm reads the same prices). Every authenticated user
may read them; only platform staff import prices or decide on held ones (see
``portfolios/api_market.py``).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db import models

__all__ = [
    "Asset",
    "AssetClass",
    "ImportBatch",
    "MarketCapObservation",
    "Price",
    "PriceFrequency",
    "PriceReview",
    "PriceStatus",
]


class AssetClass(models.TextChoices):
    US_EQUITY = "us_equity", "US equity"
    INTL_EQUITY = "intl_equity", "International equity"
    US_BONDS = "us_bonds", "US bonds"
    INTL_BONDS = "intl_bonds", "International bonds"
    INFLATION_PROTECTED = "inflation_protected", "Inflation-protected bonds"
    REAL_ESTATE = "real_estate", "Real estate"
    COMMODITIES = "commodities", "Commodities"
    CRYPTO = "crypto", "Crypto"
    STABLECOIN = "stablecoin", "Stablecoin"
    CASH = "cash", "Cash"


class PriceFrequency(models.TextChoices):
    DAILY = "daily", "Daily"
    MONTHLY = "monthly", "Monthly"


class PriceStatus(models.TextChoices):
    OK = "ok", "OK"
    HELD = "held_for_review", "Held for review"
    REJECTED = "rejected", "Rejected"


class Asset(models.Model):
    """Something a portfolio can hold."""

    symbol = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200, blank=True)
    asset_class = models.CharField(max_length=32, choices=AssetClass.choices)
    sector = models.CharField(max_length=100, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    fractional = models.BooleanField(
        default=False, help_text="Whether quantities other than whole units may be held."
    )
    quantity_step = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        default=Decimal(1),
        validators=[MinValueValidator(Decimal("0.0000000001"))],
        help_text="Smallest tradable increment of quantity (1 for whole shares).",
    )
    minimum_lot = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        default=Decimal(1),
        validators=[MinValueValidator(Decimal(0))],
        help_text="Smallest quantity of one order.",
    )
    tags = ArrayField(
        models.CharField(max_length=50),
        default=list,
        blank=True,
        help_text="Labels for screening and exclusions, e.g. 'esg:weapons', 'esg:fossil_fuels'.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity_step__gt=0), name="asset_quantity_step_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(minimum_lot__gte=0), name="asset_minimum_lot_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(fractional=True) | models.Q(quantity_step__gte=1),
                name="asset_whole_units_step",
            ),
        ]

    def __str__(self) -> str:
        return self.symbol


class ImportBatch(models.Model):
    """One price import: who, when, which files (with their SHA-256) and what it wrote."""

    class Source(models.TextChoices):
        COMMAND = "command", "Command line"
        API = "api", "API upload"
        SEED = "seed", "Demo seed"

    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=Source.choices)
    files = models.JSONField(
        default=list,
        help_text="Per file: name, format, sha256, rows, skipped rows and their reasons.",
    )
    rows_created = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_replaced = models.PositiveIntegerField(default=0)
    rows_held = models.PositiveIntegerField(default=0)
    rows_skipped = models.PositiveIntegerField(default=0)
    assets_created = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import #{self.pk} by {self.actor_label}"


class MarketCapObservation(models.Model):
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="market_caps")
    date = models.DateField()
    value = models.DecimalField(max_digits=24, decimal_places=2, help_text="In the currency.")
    currency = models.CharField(max_length=3, default="USD")
    source = models.CharField(max_length=200, blank=True)
    approximate = models.BooleanField(default=False)

    class Meta:
        ordering = ["asset", "date"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "date"], name="marketcap_asset_date_unique"),
            models.CheckConstraint(condition=models.Q(value__gt=0), name="marketcap_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.date} {self.value}"


class Price(models.Model):
    """A closing price (adjusted for splits and distributions).

    Monthly prices are dated the last calendar day of their month. A price whose move
    from the previous close is beyond the outlier rule is ``held_for_review`` with the
    reason; strategies and rebalancing read only ``ok`` prices
    (:func:`portfolios.selectors_market.price_usable_queryset`).
    """

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="prices")
    date = models.DateField()
    frequency = models.CharField(
        max_length=8, choices=PriceFrequency.choices, default=PriceFrequency.DAILY
    )
    close = models.DecimalField(max_digits=28, decimal_places=10)
    volume = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=PriceStatus.choices, default=PriceStatus.OK)
    status_reason = models.TextField(blank=True)
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="prices"
    )

    class Meta:
        ordering = ["asset", "frequency", "date"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "date", "frequency"], name="price_asset_date_frequency_unique"
            ),
            models.CheckConstraint(condition=models.Q(close__gt=0), name="price_close_positive"),
            models.CheckConstraint(
                condition=models.Q(volume__isnull=True) | models.Q(volume__gte=0),
                name="price_volume_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(status="ok") | ~models.Q(status_reason=""),
                name="price_held_has_reason",
            ),
        ]
        indexes = [
            models.Index(
                fields=["status", "asset", "frequency", "date"],
                name="price_status_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.date} {self.close}"


class PriceReview(models.Model):
    """A decision on a held price: released (used from now on) or rejected. Kept forever."""

    class Decision(models.TextChoices):
        RELEASED = "released", "Released"
        REJECTED = "rejected", "Rejected"

    price = models.ForeignKey(Price, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    note = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.decision} price {self.price_id}"
