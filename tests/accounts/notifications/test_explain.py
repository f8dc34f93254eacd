"""Canonical rebalance explanations, held to exact wording (pure: no database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from accounts.notifications.events import EVENT_TYPES, PreferenceRefused, preference_check
from accounts.notifications.explain import RebalanceFacts, TradeFact, rebalance_message

DAY = dt.date(2026, 3, 2)


def test_band_breach_sell_and_buy() -> None:
    subject, body = rebalance_message(
        RebalanceFacts(
            portfolio="P-1",
            trade_date=DAY,
            trades=[
                TradeFact(
                    "VTI",
                    "sell",
                    Decimal("12.5"),
                    Decimal("2500.00"),
                    "BAND_REBALANCE",
                    Decimal("0.062"),
                    Decimal("0.05"),
                ),
                TradeFact(
                    "BND",
                    "buy",
                    Decimal("30"),
                    Decimal("2400.00"),
                    "BAND_REBALANCE",
                    Decimal("-0.061"),
                    Decimal("0.05"),
                ),
            ],
        )
    )
    assert subject == "Your portfolio P-1 was rebalanced"
    assert body == (
        "We rebalanced your portfolio P-1 on 02 March 2026.\n"
        "\n"
        "Sold:\n"
        "- 12.5 VTI for $2,500.00\n"
        "\n"
        "Bought:\n"
        "- 30 BND for $2,400.00\n"
        "\n"
        "Why:\n"
        "- VTI had drifted 6.2 percentage points above its target (its band allows 5.0), "
        "so it was sold back towards it.\n"
        "- BND had drifted 6.1 percentage points below its target (its band allows 5.0), "
        "so it was bought back towards it.\n"
        "\n"
        "Compliance: every trade passed the firm's pre-trade checks."
    )


def test_deposit_invested() -> None:
    _, body = rebalance_message(
        RebalanceFacts(
            portfolio="P-2",
            trade_date=DAY,
            deposits=Decimal("1000.00"),
            trades=[TradeFact("VTI", "buy", Decimal("4"), Decimal("980.00"), "DEPOSIT_INVESTED")],
        )
    )
    assert body.split("\n\n")[1:] == [
        "Bought:\n- 4 VTI for $980.00",
        "Why:\n- Your deposit of $1,000.00 was invested ($980.00 in purchases).",
        "Compliance: every trade passed the firm's pre-trade checks.",
    ]


def test_withdrawal_raised() -> None:
    _, body = rebalance_message(
        RebalanceFacts(
            portfolio="P-3",
            trade_date=DAY,
            withdrawals=Decimal("500.00"),
            trades=[
                TradeFact("BND", "sell", Decimal("6.25"), Decimal("500.00"), "WITHDRAWAL_RAISED")
            ],
        )
    )
    assert "Why:\n- Your withdrawal of $500.00 was paid: $500.00 was raised by selling." in body
    assert "Sold:\n- 6.25 BND for $500.00" in body


def test_loss_harvested_and_second_approval() -> None:
    _, body = rebalance_message(
        RebalanceFacts(
            portfolio="P-4",
            trade_date=DAY,
            trades=[
                TradeFact(
                    "VXUS",
                    "sell",
                    Decimal("10"),
                    Decimal("550.00"),
                    "REBALANCE_TO_TARGET",
                    realised_gain=Decimal("-300.00"),
                    compliance=("Turnover 12% exceeds the 10% limit.",),
                )
            ],
        )
    )
    assert body.endswith(
        "Why:\n"
        "- VXUS was brought back to its target while the portfolio was rebalanced.\n"
        "- Selling VXUS realised a loss of $300.00, which can offset taxable gains "
        "(tax-loss harvesting).\n"
        "\n"
        "Compliance: these trades were reviewed and approved by a second person:\n"
        "- Turnover 12% exceeds the 10% limit."
    )


def test_regulatory_events_cannot_be_switched_off() -> None:
    regulatory = [code for code, e in EVENT_TYPES.items() if e.regulatory]
    assert "rebalance_executed" in regulatory
    assert "audit_chain_broken" in regulatory
    with pytest.raises(PreferenceRefused) as err:
        preference_check("rebalance_executed", ["in_app"], "immediate")
    assert err.value.field == "channels"
    with pytest.raises(PreferenceRefused) as err:
        preference_check("rebalance_executed", ["in_app", "email"], "digest")
    assert err.value.field == "mode"
    with pytest.raises(PreferenceRefused) as err:
        preference_check("nope", [], "immediate")
    assert err.value.field == "event_type"
    preference_check("strategy_assigned", [], "immediate")  # may be switched off
