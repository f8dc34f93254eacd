"""A portfolio's state: holdings, tax lots, pending cash flows and the ledger.

Firm-owned (row-level security on every table). Quantities and money are
``Decimal``: quantities with 10 places (crypto trades in steps of 1e-8), cash and
amounts in cents. The portfolio's settled cash is a column of ``Portfolio``; the
ledger records every movement that produced it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.tenancy.models import FirmOwnedModel, FirmScopedManager

__all__ = [
    "CashFlow",
    "CashFlowKind",
    "CashFlowStatus",
    "Holding",
    "LedgerEntry",
    "LedgerKind",
    "TaxLot",
]

QUANTITY_DIGITS = 28
QUANTITY_PLACES = 10
MONEY_DIGITS = 20
MONEY_PLACES = 2


class Holding(FirmOwnedModel):
    """The quantity of one asset held in one portfolio (rows with zero are deleted)."""

    objects = FirmScopedManager["Holding"]()

    portfolio = models.ForeignKey(
        "portfolios.Portfolio", on_delete=models.CASCADE, related_name="holdings"
    )
    asset = models.ForeignKey("portfolios.Asset", on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "portfolio", "asset"], name="holding_portfolio_asset_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0), name="holding_quantity_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.portfolio_id}:{self.asset_id} {self.quantity}"


class TaxLot(FirmOwnedModel):
    """One purchase of a taxable portfolio still (partly) held: quantity and cost basis."""

    objects = FirmScopedManager["TaxLot"]()

    portfolio = models.ForeignKey(
        "portfolios.Portfolio", on_delete=models.CASCADE, related_name="lots"
    )
    asset = models.ForeignKey("portfolios.Asset", on_delete=models.PROTECT, related_name="+")
    acquired_on = models.DateField()
    quantity = models.DecimalField(
        max_digits=QUANTITY_DIGITS,
        decimal_places=QUANTITY_PLACES,
        help_text="Quantity still held; 0 once the lot is sold (kept for the record).",
    )
    original_quantity = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES
    )
    unit_cost = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, help_text="Per unit."
    )
    closed_on = models.DateField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["firm", "portfolio", "asset"], name="taxlot_portfolio_asset_idx")
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0)
                & models.Q(quantity__lte=models.F("original_quantity")),
                name="taxlot_quantity_range",
            ),
            models.CheckConstraint(
                condition=models.Q(unit_cost__gte=0), name="taxlot_unit_cost_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"lot {self.pk} {self.quantity} @ {self.unit_cost}"


class CashFlowKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"


class CashFlowStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    CANCELLED = "cancelled", "Cancelled"


class CashFlow(FirmOwnedModel):
    """A deposit or withdrawal a rebalance must honour: invest it, or raise it."""

    objects = FirmScopedManager["CashFlow"]()

    portfolio = models.ForeignKey(
        "portfolios.Portfolio", on_delete=models.CASCADE, related_name="cash_flows"
    )
    kind = models.CharField(max_length=16, choices=CashFlowKind.choices)
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    status = models.CharField(
        max_length=16, choices=CashFlowStatus.choices, default=CashFlowStatus.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    run = models.ForeignKey(
        "portfolios.RebalanceRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The rebalance that invested or raised it.",
    )

    class Meta:
        indexes = [
            models.Index(fields=["firm", "portfolio", "status"], name="cashflow_portfolio_idx")
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gt=0), name="cashflow_amount_positive"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"

    @property
    def signed_amount(self) -> object:
        return self.amount if self.kind == CashFlowKind.DEPOSIT else -self.amount


class LedgerKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"
    FEE = "fee", "Fee"


class LedgerEntry(FirmOwnedModel):
    """One movement of a portfolio: append-only record of deposits, withdrawals, fills, fees.

    ``amount`` is the signed effect on cash (a buy is negative). Sells carry the realised
    gain or loss; wash-sale checks read buys and loss sales of the last 30 days here.
    """

    objects = FirmScopedManager["LedgerEntry"]()

    portfolio = models.ForeignKey(
        "portfolios.Portfolio", on_delete=models.CASCADE, related_name="ledger"
    )
    household = models.ForeignKey(
        "accounts.Household",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Denormalised from the client: wash sales are per household.",
    )
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    trade_date = models.DateField()
    asset = models.ForeignKey(
        "portfolios.Asset", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    quantity = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, null=True, blank=True
    )
    price = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, null=True, blank=True
    )
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    realised_gain = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True
    )
    run = models.ForeignKey(
        "portfolios.RebalanceRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    order = models.ForeignKey(
        "portfolios.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["firm", "portfolio", "trade_date"], name="ledger_portfolio_idx"),
            models.Index(
                fields=["firm", "household", "asset", "trade_date"], name="ledger_household_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"
