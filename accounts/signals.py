"""Logins, logouts and failed logins go to the audit trail."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.services import user_auth_event_record

security_log = logging.getLogger("advisor.security")


def _client(request: HttpRequest | None) -> dict[str, str]:
    if request is None:
        return {}
    return {
        "ip": str(request.META.get("REMOTE_ADDR", "")),
        "user_agent": str(request.META.get("HTTP_USER_AGENT", ""))[:200],
    }


@receiver(user_logged_in)
def on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    user_auth_event_record(user=user, action="auth.login", payload=_client(request))


@receiver(user_logged_out)
def on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        user_auth_event_record(user=user, action="auth.logout", payload=_client(request))


@receiver(user_login_failed)
def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))
    user = get_user_model().objects.filter(username__iexact=username).first()
    recorded = user_auth_event_record(
        user=user, action="auth.login_failed", payload={"username": username, **_client(request)}
    )
    if not recorded:
        security_log.warning("failed login for %r (no firm to audit it in)", username)
