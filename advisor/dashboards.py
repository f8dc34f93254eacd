"""Reads behind the home page of each role.

Every selector here reads the *current* firm through the default (fail-closed)
managers, so row-level security and the ORM filter both apply; it refuses to run
for any other firm than the one in the tenancy context. Results are materialised
(plain dataclasses and lists), so templates never query the database lazily,
after the request's transaction has ended.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import Firm, Membership, Role, User
from accounts.tenancy.context import TenancyError, current_firm_id
from compliance.models import AuditEvent, ChainVerification
from compliance.selectors import ChainCheck, audit_chain_verify
from portfolios.models_rebalance import Order, OrderStatus, RunPortfolio, RunPortfolioStatus

RECENT_EVENTS = 8
RECENT_BLOCKED = 8
BLOCKED_WINDOW_DAYS = 30
LATEST_EVENTS = 12

# How the home pages name audit actions; anything else is shown as recorded.
ACTION_LABELS: dict[str, str] = {
    "auth.login": "Signed in",
    "auth.logout": "Signed out",
    "auth.login_failed": "Failed sign-in attempt",
    "auth.firm_switched": "Switched firm",
    "membership.created": "Member added",
    "membership.changed": "Membership changed",
}


@dataclass(frozen=True)
class Figure:
    """One headline number of a dashboard (``key`` is stable for tests and styling)."""

    key: str
    label: str
    value: int
    note: str = ""


@dataclass(frozen=True)
class RoleCount:
    role: str
    label: str
    count: int


@dataclass(frozen=True)
class EventRow:
    seq: int
    created_at: dt.datetime
    actor_label: str
    action: str
    action_label: str
    object_ref: str


@dataclass(frozen=True)
class Profile:
    username: str
    full_name: str
    email: str
    firm_name: str
    role_label: str
    member_since: dt.datetime
    last_login: dt.datetime | None


@dataclass(frozen=True)
class BlockedOrderRow:
    order_id: int
    run_id: int
    portfolio_number: str
    symbol: str
    side: str
    value: Decimal
    why: str


@dataclass(frozen=True)
class ComplianceConsole:
    """The compliance home's console: the last recorded chain check, the review queue's
    size, the most recent blocked orders."""

    last_check: ChainVerification | None
    queue_size: int
    blocked_recent: tuple[BlockedOrderRow, ...]


@dataclass(frozen=True)
class HomeFigures:
    role: str
    figures: tuple[Figure, ...] = ()
    members_by_role: tuple[RoleCount, ...] = ()
    events: tuple[EventRow, ...] = ()
    profile: Profile | None = None
    console: ComplianceConsole | None = None

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)


def _require_current(firm: Firm) -> None:
    """Dashboards read the request's firm only: never switch firms behind the caller."""
    if current_firm_id() != firm.pk:
        raise TenancyError("dashboard selectors read the current firm only: use firm_context(firm)")


def _start_of_today() -> dt.datetime:
    today = timezone.localdate()
    return timezone.make_aware(dt.datetime.combine(today, dt.time.min))


def _rows(events: list[AuditEvent]) -> tuple[EventRow, ...]:
    return tuple(
        EventRow(
            seq=event.seq,
            created_at=event.created_at,
            actor_label=event.actor_label,
            action=event.action,
            action_label=ACTION_LABELS.get(event.action, event.action),
            object_ref=f"{event.object_type} {event.object_id}".strip(),
        )
        for event in events
    )


# --- members ---------------------------------------------------------------------------------


def members_by_role(*, firm: Firm) -> tuple[RoleCount, ...]:
    """Active members of the firm per role, every role listed (zero included), in role order."""
    _require_current(firm)
    counts = dict(
        Membership.objects.filter(is_active=True)
        .values_list("role")
        .annotate(n=Count("id"))
        .values_list("role", "n")
    )
    return tuple(RoleCount(role, str(label), counts.get(role, 0)) for role, label in Role.choices)


def client_count_for_advisor(*, firm: Firm, membership: Membership) -> int:
    """How many clients the advisor's book holds.

    The client book (households and clients, with advisor grants) arrives later;
    until then every active investor membership of the firm counts as a client of
    every advisor. Switch this one query when the book exists.
    """
    _require_current(firm)
    return Membership.objects.filter(role=Role.INVESTOR, is_active=True).count()


def profile_for_member(*, firm: Firm, membership: Membership) -> Profile:
    _require_current(firm)
    user = User.objects.get(pk=membership.user_id)
    return Profile(
        username=user.get_username(),
        full_name=user.get_full_name(),
        email=user.email,
        firm_name=firm.name,
        role_label=str(Role(membership.role).label),
        member_since=membership.created_at,
        last_login=user.last_login,
    )


# --- audit trail -----------------------------------------------------------------------------


def audit_event_count(*, firm: Firm, since: dt.datetime | None = None) -> int:
    _require_current(firm)
    events = AuditEvent.objects.all()
    if since is not None:
        events = events.filter(created_at__gte=since)
    return events.count()


def audit_events_latest(*, firm: Firm, limit: int = LATEST_EVENTS) -> tuple[EventRow, ...]:
    _require_current(firm)
    return _rows(list(AuditEvent.objects.order_by("-seq")[:limit]))


def _about_user(user_id: int) -> Q:
    """Events the user caused, and failed sign-ins against their account (no actor)."""
    return Q(actor_id=user_id) | Q(
        action="auth.login_failed", object_type="user", object_id=str(user_id)
    )


def audit_events_for_user(
    *, firm: Firm, user_id: int, limit: int = RECENT_EVENTS
) -> tuple[EventRow, ...]:
    _require_current(firm)
    return _rows(list(AuditEvent.objects.filter(_about_user(user_id)).order_by("-seq")[:limit]))


def audit_action_count_for_user(*, firm: Firm, user_id: int, action: str | None = None) -> int:
    _require_current(firm)
    events = AuditEvent.objects.filter(_about_user(user_id))
    if action is not None:
        events = events.filter(action=action)
    return events.count()


def audit_chain_status(*, firm: Firm) -> ChainCheck:
    """Walk the firm's whole hash chain (the compliance home loads it after the page)."""
    _require_current(firm)
    return audit_chain_verify(firm=firm)


# --- per role --------------------------------------------------------------------------------


def _firm_admin(firm: Firm, membership: Membership) -> HomeFigures:
    roles = members_by_role(firm=firm)
    figures = (
        Figure("members", "Active members", sum(r.count for r in roles)),
        *(Figure(f"members_{r.role}", r.label + "s", r.count) for r in roles),
        Figure("audit_events", "Audit events", audit_event_count(firm=firm)),
    )
    return HomeFigures(
        role=membership.role,
        figures=figures,
        members_by_role=roles,
        events=audit_events_latest(firm=firm, limit=RECENT_EVENTS),
    )


def _advisor(firm: Firm, membership: Membership) -> HomeFigures:
    figures = (
        Figure("clients", "Clients", client_count_for_advisor(firm=firm, membership=membership)),
        Figure(
            "my_actions",
            "Your recorded actions",
            audit_action_count_for_user(firm=firm, user_id=membership.user_id),
        ),
    )
    return HomeFigures(
        role=membership.role,
        figures=figures,
        events=audit_events_for_user(firm=firm, user_id=membership.user_id),
    )


def review_queue_size(*, firm: Firm) -> int:
    """Portfolios held by soft compliance failures, waiting for a second approver."""
    _require_current(firm)
    return RunPortfolio.objects.filter(status=RunPortfolioStatus.HELD).count()


def blocked_orders_recent(
    *, firm: Firm, limit: int = RECENT_BLOCKED
) -> tuple[BlockedOrderRow, ...]:
    """The latest orders blocked by hard compliance failures (newest run first)."""
    _require_current(firm)
    rows = (
        Order.objects.filter(status=OrderStatus.BLOCKED, compliance_outcome=2)
        .order_by("-run_id", "-pk")
        .values_list(
            "pk", "run_id", "portfolio__number", "asset__symbol", "side", "value", "failures"
        )[:limit]
    )
    return tuple(
        BlockedOrderRow(
            order_id=pk,
            run_id=run_id,
            portfolio_number=number,
            symbol=symbol,
            side=side,
            value=value,
            why="; ".join(str(f.get("message", "")) for f in failures if isinstance(f, dict)),
        )
        for pk, run_id, number, symbol, side, value, failures in rows
    )


def blocked_orders_count(*, firm: Firm, since: dt.datetime) -> int:
    _require_current(firm)
    return Order.objects.filter(status=OrderStatus.BLOCKED, run__created_at__gte=since).count()


def chain_check_latest(*, firm: Firm) -> ChainVerification | None:
    _require_current(firm)
    return ChainVerification.objects.order_by("-checked_at", "-pk").first()


def _compliance(firm: Firm, membership: Membership) -> HomeFigures:
    queue = review_queue_size(firm=firm)
    since = timezone.now() - dt.timedelta(days=BLOCKED_WINDOW_DAYS)
    figures = (
        Figure(
            "events_today",
            "Audit events today",
            audit_event_count(firm=firm, since=_start_of_today()),
            note="since 00:00 " + timezone.get_current_timezone_name(),
        ),
        Figure("events_total", "Audit events in total", audit_event_count(firm=firm)),
        Figure("review_queue", "Waiting for review", queue, note="held portfolios"),
        Figure(
            "blocked_orders",
            "Blocked orders",
            blocked_orders_count(firm=firm, since=since),
            note=f"last {BLOCKED_WINDOW_DAYS} days",
        ),
    )
    console = ComplianceConsole(
        last_check=chain_check_latest(firm=firm),
        queue_size=queue,
        blocked_recent=blocked_orders_recent(firm=firm),
    )
    return HomeFigures(
        role=membership.role,
        figures=figures,
        events=audit_events_latest(firm=firm),
        console=console,
    )


def _investor(firm: Firm, membership: Membership) -> HomeFigures:
    user_id = membership.user_id
    figures = (
        Figure(
            "sign_ins",
            "Sign-ins",
            audit_action_count_for_user(firm=firm, user_id=user_id, action="auth.login"),
        ),
        Figure(
            "failed_sign_ins",
            "Failed sign-in attempts",
            audit_action_count_for_user(firm=firm, user_id=user_id, action="auth.login_failed"),
        ),
    )
    return HomeFigures(
        role=membership.role,
        figures=figures,
        events=audit_events_for_user(firm=firm, user_id=user_id),
        profile=profile_for_member(firm=firm, membership=membership),
    )


_BY_ROLE = {
    Role.FIRM_ADMIN: _firm_admin,
    Role.ADVISOR: _advisor,
    Role.COMPLIANCE: _compliance,
    Role.INVESTOR: _investor,
}


def home_figures_for_role(*, firm: Firm, membership: Membership) -> HomeFigures:
    """Everything the home page of ``membership``'s role shows, read from the current firm."""
    _require_current(firm)
    if membership.firm_id != firm.pk:
        raise TenancyError("membership belongs to another firm")
    return _BY_ROLE[Role(membership.role)](firm, membership)
