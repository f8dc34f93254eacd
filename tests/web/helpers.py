"""Reading the web shell's pages in tests: figures, navigation, headings."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from accounts.models import Firm
from accounts.tenancy import firm_context
from compliance.models import AuditEvent

_FIGURE = re.compile(r'data-figure="(?P<key>\w+)" data-value="(?P<value>-?\d+)"')
_NAV = re.compile(r'data-nav="(?P<key>\w+)"')
_H1 = re.compile(r"<h1>(?P<text>.*?)</h1>", re.S)

# Each role's own navigation entries, data-nav key -> label (Home is everyone's).
ROLE_NAV: dict[str, dict[str, str]] = {
    "firm_admin": {
        "members": "Members",
        "firm_settings": "Firm settings",
        "client_book": "Client book",
        "questionnaires": "Questionnaires",
        "strategy_mapping": "Strategy mapping",
        "strategies": "Strategies",
        "audit_trail": "Audit trail",
    },
    "advisor": {"clients": "Clients", "strategies": "Strategies", "rebalancing": "Rebalancing"},
    "compliance": {
        "audit_trail": "Audit trail",
        "review_queue": "Review queue",
        "compliance_rules": "Compliance rules",
        "exception_reports": "Exception reports",
        "strategy_approvals": "Strategy approvals",
        "strategies": "Strategies",
    },
    "investor": {"my_portfolio": "My portfolio", "risk_profile": "Risk profile"},
}
ROLE_HEADING = {
    "firm_admin": "Firm administration",
    "advisor": "Advisor dashboard",
    "compliance": "Compliance overview",
    "investor": "My account",
}


def html(response: Any) -> str:
    return str(response.content.decode())


def figures(response: Any) -> dict[str, int]:
    return {m["key"]: int(m["value"]) for m in _FIGURE.finditer(html(response))}


def nav_keys(response: Any) -> set[str]:
    return {m["key"] for m in _NAV.finditer(html(response))}


def heading(response: Any) -> str:
    match = _H1.search(html(response))
    return match["text"].strip() if match else ""


def event_count(firm: Firm, **filters: Any) -> int:
    with firm_context(firm), transaction.atomic():
        return AuditEvent.objects.filter(**filters).count()
