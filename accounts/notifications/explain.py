"""Plain-language messages, generated from the facts of each event (never written per case).

Pure: no Django import. The rebalance message is built from the orders' engine reason
codes, their drift and band, the cash flows the run processed, the gains and losses the
sells realised and the compliance failures recorded on the orders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal


def money(amount: Decimal) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def units(quantity: Decimal) -> str:
    text = f"{quantity.normalize():f}"
    return text


def points(weight: Decimal) -> str:
    """A weight difference (0.062) as percentage points ("6.2")."""
    return f"{abs(weight) * 100:.1f}"


@dataclass(frozen=True)
class TradeFact:
    symbol: str
    side: str  # "buy" or "sell"
    quantity: Decimal
    amount: Decimal  # value traded, positive
    reason: str  # engine reason code name, e.g. "BAND_REBALANCE"
    drift: Decimal = Decimal(0)  # weight minus target, before the trade
    band: Decimal | None = None
    realised_gain: Decimal | None = None
    compliance: Sequence[str] = ()  # messages of the rules it failed softly (approved)


@dataclass(frozen=True)
class RebalanceFacts:
    portfolio: str
    trade_date: dt.date
    trades: Sequence[TradeFact]
    deposits: Decimal = Decimal(0)
    withdrawals: Decimal = Decimal(0)
    approved_by_second: bool = False
    extra: Sequence[str] = field(default_factory=tuple)


def _why(t: TradeFact) -> str | None:
    if t.reason == "BAND_REBALANCE":
        where = "above" if t.drift > 0 else "below"
        band = f" (its band allows {points(t.band)})" if t.band is not None else ""
        return (
            f"{t.symbol} had drifted {points(t.drift)} percentage points {where} its target"
            f"{band}, so it was {'sold' if t.side == 'sell' else 'bought'} back towards it."
        )
    if t.reason == "REBALANCE_TO_TARGET":
        return f"{t.symbol} was brought back to its target while the portfolio was rebalanced."
    if t.reason == "CALENDAR":
        return f"The scheduled rebalance brought {t.symbol} back to its target."
    if t.reason == "CASH_FLOOR_RESTORED":
        return f"{t.symbol} was sold to restore the portfolio's minimum cash."
    return None  # deposits and withdrawals are told once, below


def rebalance_message(facts: RebalanceFacts) -> tuple[str, str]:
    """(subject, body) of the "your portfolio was rebalanced" message."""
    subject = f"Your portfolio {facts.portfolio} was rebalanced"
    lines = [f"We rebalanced your portfolio {facts.portfolio} on {facts.trade_date:%d %B %Y}."]
    sells = [t for t in facts.trades if t.side == "sell"]
    buys = [t for t in facts.trades if t.side == "buy"]
    for title, group in (("Sold", sells), ("Bought", buys)):
        if group:
            lines += ["", f"{title}:"]
            lines += [f"- {units(t.quantity)} {t.symbol} for {money(t.amount)}" for t in group]
    why: list[str] = []
    if facts.deposits > 0:
        invested = sum((t.amount for t in buys if t.reason == "DEPOSIT_INVESTED"), Decimal(0))
        text = f"Your deposit of {money(facts.deposits)} was invested"
        why.append(text + (f" ({money(invested)} in purchases)." if invested else "."))
    if facts.withdrawals > 0:
        raised = sum((t.amount for t in sells if t.reason == "WITHDRAWAL_RAISED"), Decimal(0))
        text = f"Your withdrawal of {money(facts.withdrawals)} was paid"
        why.append(text + (f": {money(raised)} was raised by selling." if raised else "."))
    for t in facts.trades:
        sentence = _why(t)
        if sentence and sentence not in why:
            why.append(sentence)
    for t in sells:
        if t.realised_gain is not None and t.realised_gain < 0:
            why.append(
                f"Selling {t.symbol} realised a loss of {money(-t.realised_gain)}, which can "
                "offset taxable gains (tax-loss harvesting)."
            )
    if why:
        lines += ["", "Why:"] + [f"- {w}" for w in why]
    checks = sorted({m for t in facts.trades for m in t.compliance})
    lines.append("")
    if checks:
        lines.append("Compliance: these trades were reviewed and approved by a second person:")
        lines += [f"- {m}" for m in checks]
    else:
        lines.append("Compliance: every trade passed the firm's pre-trade checks.")
    lines += list(facts.extra)
    return subject, "\n".join(lines)


def cash_flow_message(*, kind: str, amount: Decimal, portfolio: str) -> tuple[str, str]:
    word = "deposit" if kind == "deposit" else "withdrawal"
    subject = f"Your {word} of {money(amount)} was processed"
    if kind == "deposit":
        body = f"Your deposit of {money(amount)} into {portfolio} was received and invested."
    else:
        body = f"Your withdrawal of {money(amount)} from {portfolio} was paid out."
    return subject, body


def risk_profile_completed_message(*, risk_level: int, valid_until: dt.date) -> tuple[str, str]:
    return (
        "Your risk profile is complete",
        f"Thank you for answering the questionnaire. Your risk level is {risk_level} of 10. "
        f"Your profile is valid until {valid_until:%d %B %Y}.",
    )


def risk_profile_expiring_message(*, valid_until: dt.date, days: int) -> tuple[str, str]:
    return (
        "Your risk profile expires soon",
        f"Your risk profile expires on {valid_until:%d %B %Y}, in {days} days. Please answer "
        "the questionnaire again so that your portfolio keeps matching your situation.",
    )


def risk_profile_expired_message(*, valid_until: dt.date) -> tuple[str, str]:
    return (
        "Your risk profile has expired",
        f"Your risk profile expired on {valid_until:%d %B %Y}. Please answer the questionnaire "
        "again; until then your advisor cannot change your strategy.",
    )


def strategy_assigned_message(*, strategy: str, previous: str | None) -> tuple[str, str]:
    if previous and previous != strategy:
        return (
            "Your investment strategy changed",
            f"Your portfolio now follows {strategy} (it followed {previous}).",
        )
    return ("Your investment strategy", f"Your portfolio now follows {strategy}.")


def approvals_waiting_message(
    *, run_id: int, proposed: int, awaiting_client: int, held: int
) -> tuple[str, str]:
    parts = []
    if proposed:
        parts.append(f"{proposed} proposal(s) to approve")
    if awaiting_client:
        parts.append(f"{awaiting_client} waiting for the client's approval")
    if held:
        parts.append(f"{held} held for a second approver")
    return (
        f"Rebalance run {run_id}: approvals waiting",
        f"Rebalance run {run_id} is computed: " + ", ".join(parts) + ".",
    )


def orders_blocked_message(*, run_id: int, blocked: int, reasons: Sequence[str]) -> tuple[str, str]:
    lines = [f"Compliance blocked {blocked} order(s) of rebalance run {run_id}."]
    if reasons:
        lines += ["", "Reasons:"] + [f"- {r}" for r in reasons]
    return f"Rebalance run {run_id}: {blocked} order(s) blocked", "\n".join(lines)


def profile_flags_message(*, client: str, flags: Sequence[str]) -> tuple[str, str]:
    lines = [f"{client}'s questionnaire answers raised flags to resolve:"]
    lines += [f"- {f}" for f in flags]
    return f"Questionnaire flags to resolve for {client}", "\n".join(lines)


def chain_broken_message(
    *, firm: str, detail: str, slug: str = "", seq: int | None = None, intact: int | None = None
) -> tuple[str, str]:
    at = f" at event #{seq}" if seq is not None else ""
    lines = [
        f"Verification of {firm}'s audit trail failed{at}: {detail}.",
    ]
    if intact is not None:
        lines.append(f"The {intact} event(s) before it are intact.")
    lines += [
        "The application cannot alter audit events; a break means the table was changed "
        "outside it (by a database owner or an administrator). Preserve the database as it "
        "is and investigate before relying on the trail.",
    ]
    if slug:
        lines.append(f"Re-run the check with: python manage.py verify_audit --firm {slug}")
    return f"[{firm}] Audit trail integrity check failed{at}", "\n\n".join(lines)


def digest_message(*, day: dt.date, items: Sequence[tuple[str, str]]) -> tuple[str, str]:
    lines = [f"Your notifications of {day:%d %B %Y} ({len(items)}):"]
    for subject, body in items:
        lines += ["", f"== {subject}", body]
    return f"Your daily digest: {len(items)} notification(s)", "\n".join(lines)
