"""Role permissions for firm-scoped API views.

The firm and the caller's membership in it are resolved before permissions are
checked (see :mod:`advisor.api.views`), so these read ``request.membership``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from accounts.models import Membership, Role

ALL_ROLES: frozenset[str] = frozenset(Role.values)


def request_membership(request: Request) -> Membership | None:
    membership = getattr(request, "membership", None)
    return membership if isinstance(membership, Membership) else None


class IsFirmMember(BasePermission):
    """The caller holds an active membership in the resolved firm."""

    message = "This endpoint needs a firm: you hold no membership in one."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request_membership(request) is not None


class HasRole(IsFirmMember):
    """The caller's role in the current firm is one of ``roles``.

    ``read_roles`` (when given) are the roles allowed the safe methods (GET, HEAD,
    OPTIONS); ``roles`` then apply to the others. Build one with :meth:`of`::

        permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=ALL_ROLES)]
    """

    roles: frozenset[str] = frozenset()
    read_roles: frozenset[str] | None = None

    @classmethod
    def of(cls, *roles: str, read: Iterable[str] | None = None) -> type[HasRole]:
        attrs: dict[str, Any] = {
            "roles": frozenset(str(r) for r in roles),
            "read_roles": None if read is None else frozenset(str(r) for r in read),
        }
        return type(f"HasRole_{'_'.join(sorted(attrs['roles']))}", (cls,), attrs)

    def allowed_roles(self, request: Request) -> frozenset[str]:
        if request.method in SAFE_METHODS and self.read_roles is not None:
            return self.read_roles
        return self.roles

    def has_permission(self, request: Request, view: Any) -> bool:
        membership = request_membership(request)
        if membership is None:
            self.message = IsFirmMember.message
            return False
        allowed = self.allowed_roles(request)
        if membership.role in allowed:
            return True
        self.message = (
            "Your role in this firm does not allow this: it needs "
            + " or ".join(sorted(allowed))
            + "."
        )
        return False
