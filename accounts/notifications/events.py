"""The event types: who they are for, whether they are regulatory (cannot be switched off).

Pure: no Django import.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    code: str
    label: str
    audience: str  # "investor" or "staff"
    regulatory: bool = False
    internal: bool = False  # not a choice of the user (the digest itself)


#: Regulatory events: trade confirmations (a rebalance executed, a deposit or withdrawal
#: processed) and audit chain verification failures. They always reach the inbox and
#: email, immediately; a preference that would drop them is refused.
EVENT_TYPES: dict[str, EventType] = {
    e.code: e
    for e in [
        EventType("risk_profile_completed", "Risk profile completed", "investor"),
        EventType("risk_profile_expiring", "Risk profile expiring soon", "investor"),
        EventType("risk_profile_expired", "Risk profile expired", "investor"),
        EventType("strategy_assigned", "Strategy assigned or changed", "investor"),
        EventType("rebalance_executed", "Rebalance executed", "investor", regulatory=True),
        EventType("cash_flow_processed", "Deposit or withdrawal processed", "investor", True),
        EventType("approvals_waiting", "Rebalance approvals waiting", "staff"),
        EventType("orders_blocked", "Orders blocked by compliance", "staff"),
        EventType("profile_flags_open", "Questionnaire flags to resolve", "staff"),
        EventType("audit_chain_broken", "Audit chain verification failed", "staff", True),
        EventType("digest", "Daily digest", "any", internal=True),
    ]
}

DIGEST = "digest"
CHANNELS = ("in_app", "email")
DEFAULT_CHANNELS = ("in_app", "email")


class PreferenceRefused(ValueError):
    """A preference that is not allowed; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def preference_check(event_type: str, channels: list[str], mode: str) -> None:
    """Raise :class:`PreferenceRefused` for an unknown event type or channel, or for a
    regulatory event switched off or delayed."""
    spec = EVENT_TYPES.get(event_type)
    if spec is None or spec.internal:
        raise PreferenceRefused("event_type", f"Unknown event type {event_type!r}.")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise PreferenceRefused("channels", f"Unknown channel(s): {', '.join(unknown)}.")
    if mode not in ("immediate", "digest"):
        raise PreferenceRefused("mode", "Mode must be 'immediate' or 'digest'.")
    if spec.regulatory:
        missing = [c for c in DEFAULT_CHANNELS if c not in channels]
        if missing:
            raise PreferenceRefused(
                "channels",
                f"'{spec.label}' is a regulatory notice and cannot be switched off "
                f"({', '.join(missing)} is required).",
            )
        if mode != "immediate":
            raise PreferenceRefused(
                "mode", f"'{spec.label}' is a regulatory notice and is always sent immediately."
            )
