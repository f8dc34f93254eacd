"""Investment portfolios (custodial accounts): the strategy each follows, its cash,
and (in models_holdings / models_rebalance) holdings, lots, ledger and rebalancing."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from accounts.tenancy.models import FirmOwnedModel, FirmScopedManager


class PortfolioType(models.TextChoices):
    TAXABLE = "taxable", "Taxable"
    TRADITIONAL_IRA = "traditional_ira", "Traditional IRA"
    ROTH_IRA = "roth_ira", "Roth IRA"
    CRYPTO = "crypto", "Crypto"


class PortfolioStatus(models.TextChoices):
    OPEN = "open", "Open"
    FROZEN = "frozen", "Frozen"
    CLOSED = "closed", "Closed"


class Portfolio(FirmOwnedModel):
    """A client's custodial investment account. It follows a strategy and rebalances
    towards the strategy's current version, customised by the client's restrictions."""

    client = models.ForeignKey("accounts.Client", on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=40)
    name = models.CharField(max_length=200, blank=True)
    account_type = models.CharField(max_length=20, choices=PortfolioType.choices)
    discretionary = models.BooleanField(default=True)
    base_currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(
        max_length=20, choices=PortfolioStatus.choices, default=PortfolioStatus.OPEN
    )
    opened_at = models.DateTimeField(auto_now_add=True)
    strategy = models.ForeignKey(
        "portfolios.Strategy", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rebalance_policy = models.ForeignKey(
        "portfolios.RebalancePolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Overrides the strategy's and the firm's default policy.",
    )
    cash = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0.00"))
    last_rebalanced_on = models.DateField(null=True, blank=True)

    objects = FirmScopedManager["Portfolio"]()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["firm", "number"], name="portfolio_number_unique"),
            models.CheckConstraint(
                condition=models.Q(base_currency="USD"), name="portfolio_base_currency_usd"
            ),
            models.CheckConstraint(
                condition=models.Q(cash__gte=0), name="portfolio_cash_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["firm", "client"], name="portfolio_firm_client_idx"),
            models.Index(fields=["firm", "strategy"], name="portfolio_firm_strategy_idx"),
        ]

    def __str__(self) -> str:
        return self.number


from portfolios.models_holdings import *  # noqa: E402, F403
from portfolios.models_market import *  # noqa: E402, F403
from portfolios.models_rebalance import *  # noqa: E402, F403
from portfolios.models_strategy import *  # noqa: E402, F403
