from typing import Any

from django.http import HttpRequest


def firm(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    return {
        "current_firm": getattr(request, "firm", None),
        "current_membership": membership,
        "current_role": membership.role if membership else None,
        "memberships": getattr(request, "memberships", []),
    }
