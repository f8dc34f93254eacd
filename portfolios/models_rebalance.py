"""Rebalancing: policies, runs, each portfolio's part in a run, and orders.

Firm-owned (row-level security on every table). A :class:`RebalanceRun` is computed
in chunks of portfolios; each chunk writes one :class:`RunPortfolio` row per
portfolio and its :class:`Order` rows in one transaction, and the unique
(run, portfolio) constraint makes a retried or re-delivered chunk a no-op.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models

from accounts.tenancy.models import FirmOwnedModel, FirmScopedManager
from portfolios.models_holdings import (
    MONEY_DIGITS,
    MONEY_PLACES,
    QUANTITY_DIGITS,
    QUANTITY_PLACES,
)

__all__ = [
    "POLICY_RULE_FIELDS",
    "RUN_PORTFOLIO_WAITING",
    "Calendar",
    "LotMethod",
    "Order",
    "OrderLot",
    "OrderSide",
    "OrderStatus",
    "RebalancePolicy",
    "RebalanceRun",
    "RunPortfolio",
    "RunPortfolioStatus",
    "RunStatus",
    "RunTrigger",
    "TriggerMode",
]

SHARE: dict[str, Any] = {"max_digits": 9, "decimal_places": 6}


class Calendar(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    YEARLY = "yearly", "Yearly"


class TriggerMode(models.TextChoices):
    CALENDAR = "calendar", "Calendar"
    THRESHOLD = "threshold", "Threshold (drift bands)"
    BOTH = "both", "Calendar and threshold"


class LotMethod(models.TextChoices):
    HIFO = "hifo", "Highest cost first"
    FIFO = "fifo", "First in, first out"


#: The fields of a policy that decide how a portfolio is rebalanced (what a run snapshots).
POLICY_RULE_FIELDS = (
    "trigger_mode",
    "calendar",
    "abs_band",
    "rel_band",
    "to_band_edge",
    "cash_target",
    "cash_floor",
    "min_trade_value",
    "cost_bps",
    "cost_fixed",
    "max_cost_ratio",
    "fractional",
    "buy_only_on_deposit",
    "sell_only_on_withdrawal",
    "lot_method",
    "avoid_short_term_gains",
    "wash_sale_days",
)


class RebalancePolicy(FirmOwnedModel):
    """How and when to rebalance. The firm default applies unless a strategy or a
    portfolio names another (portfolio over strategy over firm)."""

    objects = FirmScopedManager["RebalancePolicy"]()

    name = models.CharField(max_length=200)
    is_firm_default = models.BooleanField(default=False)
    trigger_mode = models.CharField(
        max_length=16, choices=TriggerMode.choices, default=TriggerMode.BOTH
    )
    calendar = models.CharField(max_length=16, choices=Calendar.choices, default=Calendar.QUARTERLY)
    abs_band = models.DecimalField(
        **SHARE, null=True, blank=True, default=Decimal("0.05"), help_text="Weight units."
    )
    rel_band = models.DecimalField(
        **SHARE, null=True, blank=True, default=Decimal("0.25"), help_text="Share of target."
    )
    to_band_edge = models.BooleanField(default=False)
    cash_target = models.DecimalField(**SHARE, default=Decimal("0.01"))
    cash_floor = models.DecimalField(**SHARE, default=Decimal("0.002"))
    min_trade_value = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=Decimal("25.00")
    )
    cost_bps = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal("0"))
    cost_fixed = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=Decimal("0.00")
    )
    max_cost_ratio = models.DecimalField(**SHARE, default=Decimal("0.02"))
    fractional = models.BooleanField(
        default=True, help_text="Trade fractions where the asset allows them; else whole units."
    )
    buy_only_on_deposit = models.BooleanField(default=True)
    sell_only_on_withdrawal = models.BooleanField(default=True)
    lot_method = models.CharField(max_length=8, choices=LotMethod.choices, default=LotMethod.HIFO)
    avoid_short_term_gains = models.BooleanField(default=False)
    wash_sale_days = models.PositiveSmallIntegerField(default=30)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["firm", "name"], name="policy_firm_name_unique"),
            models.UniqueConstraint(
                fields=["firm"],
                condition=models.Q(is_firm_default=True),
                name="policy_one_firm_default",
            ),
            models.CheckConstraint(
                condition=models.Q(cash_floor__lte=models.F("cash_target"))
                & models.Q(cash_target__gte=0)
                & models.Q(cash_target__lt=1),
                name="policy_cash_range",
            ),
            models.CheckConstraint(
                condition=models.Q(abs_band__isnull=False)
                | models.Q(rel_band__isnull=False)
                | models.Q(trigger_mode="calendar"),
                name="policy_threshold_needs_a_band",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RunTrigger(models.TextChoices):
    MANUAL = "manual", "Advisor"
    CALENDAR = "calendar", "Calendar schedule"
    DRIFT_SCAN = "drift_scan", "Daily drift scan"
    CASH_FLOW = "cash_flow", "Deposit or withdrawal"
    STRATEGY_CHANGE = "strategy_change", "Strategy change"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    COMPUTING = "computing", "Computing"
    PREVIEW = "preview", "Preview"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    EXECUTING = "executing", "Executing"
    DONE = "done", "Done"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


class RebalanceRun(FirmOwnedModel):
    """One batch rebalance of a firm's book (or part of it)."""

    objects = FirmScopedManager["RebalanceRun"]()

    trigger = models.CharField(max_length=20, choices=RunTrigger.choices)
    preview = models.BooleanField(
        default=False, help_text="A preview computes and shows; it is never executed."
    )
    scope = models.JSONField(
        default=dict, blank=True, help_text="{'portfolios': [...], 'households': [...]} or {}."
    )
    policy_snapshot = models.JSONField(
        default=dict, help_text="Every policy used, by id, as it was when the run started."
    )
    prices_as_of = models.DateField()
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    portfolios_total = models.PositiveIntegerField(default=0)
    portfolios_done = models.PositiveIntegerField(default=0)
    portfolios_triggered = models.PositiveIntegerField(default=0)
    portfolios_skipped = models.PositiveIntegerField(
        default=0, help_text="Could not be rebalanced (no price, no version, ...): see reasons."
    )
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    orders_count = models.PositiveIntegerField(default=0)
    orders_blocked = models.PositiveIntegerField(default=0)
    orders_held = models.PositiveIntegerField(default=0, help_text="Soft compliance failures.")
    buy_value = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=Decimal("0")
    )
    sell_value = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=Decimal("0")
    )
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["firm", "status"], name="run_firm_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(portfolios_done__lte=models.F("portfolios_total")),
                name="run_progress_bounded",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.status}"

    @property
    def progress(self) -> float:
        if not self.portfolios_total:
            return 1.0 if self.computed_at else 0.0
        return self.portfolios_done / self.portfolios_total


class RunPortfolioStatus(models.TextChoices):
    NO_TRADE = "no_trade", "Inside its bands"
    SKIPPED = "skipped", "Skipped (see reason)"
    PROPOSED = "proposed", "Proposed"
    BLOCKED = "blocked", "Blocked by compliance"
    HELD = "held", "Needs a second approver"
    AWAITING_CLIENT = "awaiting_client", "Needs the client's approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXECUTED = "executed", "Executed"


#: Run rows that wait for a decision: an advisor's, a second approver's or the client's.
RUN_PORTFOLIO_WAITING = (
    RunPortfolioStatus.PROPOSED,
    RunPortfolioStatus.AWAITING_CLIENT,
    RunPortfolioStatus.HELD,
)


class JSONTextField(models.TextField):  # type: ignore[type-arg]
    """JSON kept as the text it was written as: for snapshots that are only ever read
    back whole, never queried inside. A batch writes one per portfolio, and
    PostgreSQL parsing each into ``jsonb`` cost more than the rest of the row and its
    indexes together (45 µs for a 1.7 kB state, against 2 µs as text)."""

    # What django-stubs reads as the field's Python types (set and get): any JSON value.
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        return None if value is None else json.loads(value)

    def to_python(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, sort_keys=True)

    def value_to_string(self, obj: models.Model) -> str:
        return str(self.get_prep_value(self.value_from_object(obj)))


def _statement_checked(
    to: Any, *, on_delete: Any, related_name: str
) -> models.ForeignKey[Any, Any]:
    """A reference without a per-row foreign key or an index of its own: a trigger
    checks it once per INSERT statement (migrations 0009 and 0012) and composite
    indexes that start with the firm serve its lookups. The ORM's CASCADE and PROTECT
    apply as usual."""
    return models.ForeignKey(
        to, on_delete=on_delete, related_name=related_name, db_constraint=False, db_index=False
    )


class RunPortfolio(FirmOwnedModel):
    """One portfolio's part in a run: its state, target, trigger, and the outcome."""

    objects = FirmScopedManager["RunPortfolio"]()

    # As for orders: references checked once per INSERT statement (migration 0012), not
    # by per-row foreign keys, whose deferred checks locked each portfolio row at commit
    # and cost more than writing the run row. The composite indexes serve the lookups.
    firm = _statement_checked("accounts.Firm", on_delete=models.PROTECT, related_name="+")
    run = _statement_checked(RebalanceRun, on_delete=models.CASCADE, related_name="portfolios")
    portfolio = _statement_checked(
        "portfolios.Portfolio", on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=RunPortfolioStatus.choices)
    trigger = models.CharField(max_length=20, help_text="Engine trigger code name.")
    policy_id_used = models.BigIntegerField(null=True, blank=True)
    strategy_version = models.ForeignKey(
        "portfolios.StrategyVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    target_signature = models.CharField(
        max_length=64, blank=True, help_text="Customised version signature, blank if none."
    )
    nav = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    cash_before = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    cash_flow = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    cash_after = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    max_drift = models.DecimalField(max_digits=12, decimal_places=8)
    turnover = models.DecimalField(max_digits=12, decimal_places=8)
    compliance_outcome = models.SmallIntegerField(default=0)
    skip_reason = models.TextField(blank=True)
    state = JSONTextField(
        default=dict,
        help_text="Inputs as of the run, for replay: holdings, lots, prices, target weights.",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "run", "portfolio"], name="runportfolio_run_portfolio_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["firm", "run", "status"], name="runportfolio_status_idx"),
            models.Index(fields=["firm", "portfolio"], name="runportfolio_portfolio_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} portfolio {self.portfolio_id}"


class OrderSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    SKIPPED = "skipped", "Skipped"
    BLOCKED = "blocked", "Blocked by compliance"
    HELD = "held", "Needs a second approver"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    FILLED = "filled", "Filled"


class Order(FirmOwnedModel):
    """A trade a run proposed (or skipped, with the reason), and its fill."""

    objects = FirmScopedManager["Order"]()

    # References are checked once per INSERT statement by a trigger (migration 0009),
    # not row by row: per-row foreign keys were most of the cost of writing a run's
    # orders. The trigger runs under row-level security, so it also refuses a
    # reference to another firm's run or portfolio.
    firm = _statement_checked("accounts.Firm", on_delete=models.PROTECT, related_name="+")
    run = _statement_checked(RebalanceRun, on_delete=models.CASCADE, related_name="orders")
    portfolio = _statement_checked(
        "portfolios.Portfolio", on_delete=models.PROTECT, related_name="+"
    )
    asset = _statement_checked("portfolios.Asset", on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    quantity = models.DecimalField(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES)
    price = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, help_text="As-of price."
    )
    value = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    estimated_cost = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    reason = models.CharField(max_length=40, help_text="Engine reason code name.")
    drift = models.DecimalField(max_digits=12, decimal_places=8)
    band = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    status = models.CharField(max_length=12, choices=OrderStatus.choices)
    compliance_outcome = models.SmallIntegerField(default=0)
    rule_outcomes = models.BinaryField(
        default=bytes,
        blank=True,
        help_text="One byte per rule of the run's rule set, in its order (0 pass, 1 soft "
        "fail, 2 hard fail, 3 not applicable); the run's snapshot lists the rule ids.",
    )
    failures = models.JSONField(
        default=list, blank=True, help_text="Measured value, limit and message of each failure."
    )
    fill_quantity = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, null=True, blank=True
    )
    fill_price = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, null=True, blank=True
    )
    fill_cost = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True
    )
    filled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "run", "portfolio", "asset"],
                name="order_run_portfolio_asset_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0), name="order_quantity_nonneg"
            ),
        ]
        # A run's orders are found through the unique index (firm, run, ...).
        indexes = [models.Index(fields=["firm", "portfolio"], name="order_portfolio_idx")]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} of {self.asset_id}"


class OrderLot(FirmOwnedModel):
    """A tax lot a sell order consumes: which lot, how much, the gain it realises."""

    objects = FirmScopedManager["OrderLot"]()

    # Checked per statement, like Order's references (migration 0009).
    firm = _statement_checked("accounts.Firm", on_delete=models.PROTECT, related_name="+")
    order = _statement_checked(Order, on_delete=models.CASCADE, related_name="lots")
    lot = models.ForeignKey(
        "portfolios.TaxLot", on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    quantity = models.DecimalField(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES)
    realised_gain = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    short_term = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["firm", "order", "lot"], name="orderlot_unique"),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} lot {self.lot_id}"
