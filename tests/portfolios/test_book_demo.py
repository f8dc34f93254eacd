"""The demo book: a small DEMO_PORTFOLIOS gives consistent, drifted portfolios."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.demo import DEMO_FIRMS, demo_seed
from accounts.models import Client, Firm, Membership, RiskProfile, Role
from accounts.tenancy import firm_context
from portfolios.demo_book import _prefix
from portfolios.models import Portfolio
from portfolios.models_holdings import CashFlow, Holding, LedgerEntry, TaxLot
from portfolios.models_strategy import Strategy
from portfolios.selectors_book import book_drift_matrix

pytestmark = pytest.mark.django_db


def test_demo_book_is_consistent_drifted_and_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PORTFOLIOS", "60")
    first = demo_seed()
    spec = DEMO_FIRMS[0]
    assert first.firms[spec.slug].counts["book portfolios"] == 60
    firm = Firm.objects.get(slug=spec.slug)
    today = timezone.localdate()
    with firm_context(firm), transaction.atomic():
        book = Portfolio.objects.filter(number__startswith=_prefix(spec))
        assert book.count() == 60
        book_ids = list(book.values_list("pk", flat=True))
        per_household: dict[int, int] = defaultdict(int)
        for client_household in book.values_list("client__household_id", flat=True):
            per_household[client_household] += 1
        assert set(per_household.values()) <= {1, 2, 3}
        assert not book.filter(cash__lt=0).exists()
        assert not book.filter(strategy__isnull=True).exists()
        # Each portfolio's strategy fits its client's risk level.
        levels = dict(RiskProfile.objects.values_list("client_id", "risk_level"))
        bands = {s.pk: (s.risk_level_min, s.risk_level_max) for s in Strategy.objects.all()}
        for client_id, strategy_id in book.values_list("client_id", "strategy_id"):
            low, high = bands[strategy_id]
            assert low <= levels[client_id] <= high
        # Holdings sum with the open lots of taxable portfolios.
        lots: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
        for p, a, q in TaxLot.objects.values_list("portfolio_id", "asset_id", "quantity"):
            lots[(p, a)] += q
        # Every taxable portfolio of the firm: the book's and the client book's own.
        taxable = set(
            book.model.objects.filter(account_type="taxable").values_list("pk", flat=True)
        )
        assert taxable
        holdings = {
            (p, a): q
            for p, a, q in Holding.objects.values_list("portfolio_id", "asset_id", "quantity")
        }
        for (p, a), q in holdings.items():
            if p in taxable:
                assert lots[(p, a)] == q, (p, a)
        assert {k for k, v in lots.items() if v} == {k for k in holdings if k[0] in taxable}
        # The ledger explains the cash: deposits less buys plus sales.
        cash_by_ledger: dict[int, Decimal] = defaultdict(Decimal)
        for p, amount in LedgerEntry.objects.values_list("portfolio_id", "amount"):
            cash_by_ledger[p] += amount
        for p, cash in book.values_list("pk", "cash"):
            assert cash_by_ledger[p] == cash
        # Several lots per asset, some recent, some at real historical prices.
        assert TaxLot.objects.count() > len([k for k in holdings if k[0] in taxable])
        assert LedgerEntry.objects.filter(
            kind="buy", trade_date__gte=today - dt.timedelta(days=30)
        ).exists()
        assert LedgerEntry.objects.filter(trade_date__lt=today - dt.timedelta(days=90)).exists()
        assert CashFlow.objects.filter(status="pending").exists()
        # Every client of the book has a profile.
        assert (
            not Client.objects.filter(email__startswith="book")
            .exclude(pk__in=RiskProfile.objects.values("client_id"))
            .exists()
        )

    # Drifted by the real price moves: some portfolios outside 5-point bands, some inside.
    with firm_context(firm), transaction.atomic():
        admin = Membership.objects.select_related("user", "firm").get(
            user__username=spec.username(Role.FIRM_ADMIN)
        )
        matrix = book_drift_matrix(membership=admin, portfolio_ids=book_ids)
    assert len(matrix.rows) == 60
    drifts = [row.max_abs_drift for row in matrix.rows]
    assert any(d > Decimal("0.05") for d in drifts)
    assert any(d < Decimal("0.05") for d in drifts)

    again = demo_seed()
    assert not any(again.firms.values()), again.firms
