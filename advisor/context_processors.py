"""Template context every page shares: the firm, the membership, the role-aware navigation.

Nothing here queries a firm-owned table: pages such as 404 are rendered after the
request's transaction has ended, where row-level security would see no firm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from accounts.models import Role


@dataclass(frozen=True)
class NavItem:
    """A navigation entry; with no ``url`` (its page does not exist yet) it shows as disabled."""

    key: str
    label: str
    url: str | None
    section: str = "Workspace"
    active: bool = False

    @property
    def coming_soon(self) -> bool:
        return self.url is None


# (key, label, URL name). A URL name that does not resolve yet is shown as "coming soon";
# the entry lights up as soon as the page is routed under that name.
ROLE_NAVIGATION: dict[str, tuple[tuple[str, str, str], ...]] = {
    Role.FIRM_ADMIN: (
        ("members", "Members", "accounts:member_list"),
        ("firm_settings", "Firm settings", "accounts:firm_settings"),
        ("client_book", "Client book", "accounts:client_list"),
        ("questionnaires", "Questionnaires", "accounts:questionnaire_list"),
        ("strategy_mapping", "Strategy mapping", "accounts:strategy_mapping"),
        ("strategies", "Strategies", "portfolios:strategy_list"),
        ("audit_trail", "Audit trail", "compliance:audit_list"),
    ),
    Role.ADVISOR: (
        ("clients", "Clients", "accounts:client_list"),
        ("strategies", "Strategies", "portfolios:strategy_list"),
        ("rebalancing", "Rebalancing", "portfolios:rebalance_run_list"),
    ),
    Role.COMPLIANCE: (
        ("audit_trail", "Audit trail", "compliance:audit_list"),
        ("review_queue", "Review queue", "compliance:review_queue"),
        ("compliance_rules", "Compliance rules", "compliance:rule_list"),
        ("exception_reports", "Exception reports", "compliance:exception_report"),
        ("strategy_approvals", "Strategy approvals", "accounts:approval_list"),
        ("strategies", "Strategies", "portfolios:strategy_list"),
    ),
    Role.INVESTOR: (
        ("my_portfolio", "My portfolio", "portfolios:my_portfolio"),
        ("risk_profile", "Risk profile", "accounts:risk_profile"),
    ),
}


def _url(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def navigation(request: HttpRequest, role: str | None) -> list[NavItem]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    path = request.path
    items: list[NavItem] = []
    home = reverse("home")
    items.append(NavItem("home", "Home", home, active=path == home))
    for key, label, name in ROLE_NAVIGATION.get(role or "", ()):
        url = _url(name)
        items.append(NavItem(key, label, url, active=url is not None and path.startswith(url)))
    if user.is_superuser:
        admin = reverse("admin:index")
        items.append(NavItem("django_admin", "Django admin", admin, section="Platform"))
    return items


def firm(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    role = membership.role if membership else None
    return {
        "current_firm": getattr(request, "firm", None),
        "current_membership": membership,
        "current_role": role,
        "current_role_label": Role(role).label if role else "",
        "memberships": getattr(request, "memberships", []),
        "nav_items": navigation(request, role),
    }
