"""Investment portfolios (custodial accounts). Assets, strategies, holdings and
rebalancing arrive with later issues."""

from __future__ import annotations

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
    """A client's custodial investment account. The strategy it follows arrives with the
    strategies issue."""

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

    objects = FirmScopedManager["Portfolio"]()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["firm", "number"], name="portfolio_number_unique"),
            models.CheckConstraint(
                condition=models.Q(base_currency="USD"), name="portfolio_base_currency_usd"
            ),
        ]
        indexes = [models.Index(fields=["firm", "client"], name="portfolio_firm_client_idx")]

    def __str__(self) -> str:
        return self.number


from portfolios.models_market import *  # noqa: E402, F403
from portfolios.models_strategy import *  # noqa: E402, F403
