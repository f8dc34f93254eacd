"""Base classes of every API view: authentication, firm resolution, one error format.

Firm resolution happens right after DRF has authenticated the caller (session or
token) and before permissions are checked, in this order:

1. the ``X-Firm: <slug>`` header, when sent: it must name a firm the caller holds an
   active membership in, otherwise 403 ``firm_not_allowed`` (the same answer whether
   that firm exists or not);
2. the firm chosen in the session (the web firm switcher), for session callers;
3. the caller's only membership.

A caller with several memberships and no choice gets 400 ``firm_required`` from a
firm-scoped view. The resolved firm becomes the current firm of the tenancy context
(so every firm-owned query is scoped to it, in the ORM and in PostgreSQL), and
``request.firm`` / ``request.membership`` are set for role checks. FirmMiddleware
clears the context when the response leaves.
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.models import Firm, Membership, User
from accounts.selectors import (
    FirmSelectionRequired,
    NoMembership,
    membership_list_for_user,
    membership_resolve,
)
from accounts.tenancy import context
from advisor.api.permissions import IsFirmMember, request_membership
from advisor.api.schema import ApiAutoSchema
from advisor.middleware import SESSION_FIRM_KEY

FIRM_HEADER = "X-Firm"


def _set_on_request(request: Request, name: str, value: Any) -> None:
    # The DRF request and the Django request it wraps, so that either reads the same.
    setattr(request, name, value)
    setattr(request._request, name, value)


def resolve_membership(request: Request, *, required: bool) -> Membership | None:
    """The caller's membership in the firm this request acts in (see the module doc).

    Raises ``FirmNotAllowed`` for an ``X-Firm`` the caller does not belong to, and,
    when ``required``, ``FirmSelectionRequired`` / ``NoMembership`` when no firm can
    be chosen. Returns None for anonymous callers.
    """
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        return None
    memberships = membership_list_for_user(user=user)
    header = request.headers.get(FIRM_HEADER, "").strip()
    if header:
        return membership_resolve(memberships=memberships, slug=header)
    if isinstance(request.successful_authenticator, SessionAuthentication):
        chosen = request.session.get(SESSION_FIRM_KEY)
        for membership in memberships:
            if membership.firm.slug == chosen:
                return membership
    try:
        return membership_resolve(memberships=memberships, slug=None)
    except (FirmSelectionRequired, NoMembership):
        if required:
            raise
        return None


class ApiView(APIView):
    """Base of authenticated API views that do not need a firm (``/me/``, ``/memberships/``).

    An ``X-Firm`` header is still honoured (and refused when it names a firm the
    caller is not in), so that ``/me/`` shows the firm a client is acting in.
    """

    #: True: a firm must be resolved (400 ``firm_required`` otherwise).
    firm_required = False
    # Token first: an unauthenticated caller gets 401 with ``WWW-Authenticate: Token``.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]
    schema = ApiAutoSchema()

    def perform_authentication(self, request: Request) -> None:
        super().perform_authentication(request)
        # Start from nothing: FirmMiddleware chose a firm for the *session* user, and the
        # caller DRF authenticated (a token) may be someone else.
        context.set_current_firm(None)
        _set_on_request(request, "firm", None)
        _set_on_request(request, "membership", None)
        user = request.user
        authenticated = isinstance(user, User) and user.is_authenticated
        context.set_current_user_id(user.pk if authenticated else None)
        membership = resolve_membership(request, required=self.firm_required)
        if membership is not None:
            _set_on_request(request, "firm", membership.firm)
            _set_on_request(request, "membership", membership)
            context.set_current_firm(membership.firm)

    @property
    def membership(self) -> Membership | None:
        return request_membership(self.request)

    @property
    def firm(self) -> Firm | None:
        membership = self.membership
        return None if membership is None else membership.firm


class FirmScopedAPIView(ApiView):
    """Base of views that act in one firm: the firm is resolved or the request is refused."""

    firm_required = True
    permission_classes = [IsAuthenticated, IsFirmMember]

    @property
    def current_membership(self) -> Membership:
        membership = self.membership
        if membership is None:  # permission classes refuse this before any handler runs
            raise context.NoFirmSelected()
        return membership


class FirmScopedGenericAPIView(FirmScopedAPIView, GenericAPIView):  # type: ignore[type-arg]
    """Generic (list/detail) views over firm-owned models; querysets are firm-scoped."""


class PublicApiView(APIView):
    """Views that take no authentication (obtaining a token)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]
    schema = ApiAutoSchema()
