"""Helpers shared by the web views and the REST API of every app."""

from __future__ import annotations

from typing import Any

from accounts.models import User


def signed_in_user(request: Any) -> User:
    """The request's user, behind ``login_required`` or an authenticated API view
    (a Django ``HttpRequest`` or a DRF ``Request``; both carry ``user``)."""
    user = request.user
    assert isinstance(user, User), "behind login_required: the user is signed in"
    return user
