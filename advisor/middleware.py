"""Request id and firm context for every request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from accounts.selectors import membership_list_for_user
from accounts.tenancy import context
from compliance.audit_context import request_id_context

SESSION_FIRM_KEY = "active_firm"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Give each request an id (or keep a well-formed incoming ``X-Request-ID``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        with request_id_context(request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class FirmMiddleware:
    """Set the current firm from the session's explicit choice, validated against memberships.

    A user with one membership has it chosen for them (there is nothing to guess); a
    user with several picks one in the firm switcher. The API resolves the firm again
    after its own authentication (``X-Firm`` header). Whatever happens, the firm is
    cleared when the response leaves.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        context.clear()
        request.firm = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        request.memberships = []  # type: ignore[attr-defined]
        try:
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                context.set_current_user_id(user.pk)
                memberships = membership_list_for_user(user=user)
                request.memberships = memberships  # type: ignore[attr-defined]
                chosen = request.session.get(SESSION_FIRM_KEY)
                membership = next((m for m in memberships if m.firm.slug == chosen), None)
                if membership is None and len(memberships) == 1:
                    membership = memberships[0]
                    request.session[SESSION_FIRM_KEY] = membership.firm.slug
                elif membership is None and chosen:
                    request.session.pop(SESSION_FIRM_KEY, None)
                if membership is not None:
                    request.firm = membership.firm  # type: ignore[attr-defined]
                    request.membership = membership  # type: ignore[attr-defined]
                    context.set_current_firm(membership.firm)
            return self.get_response(request)
        finally:
            context.clear()
