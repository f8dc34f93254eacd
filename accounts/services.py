"""State changes of users and memberships; each writes its audit event."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import Firm, Membership, Role, User
from accounts.tenancy.context import TenancyError, firm_context, require_firm, user_context
from compliance.services import audit_changes_save, audit_record


def membership_create(
    *, firm: Firm, user: User, role: str, actor: User | None = None
) -> Membership:
    if role not in Role.values:
        raise ValueError(f"role: {role!r} is not one of {', '.join(Role.values)}")
    with firm_context(firm), transaction.atomic():
        membership = Membership.objects.create(user=user, role=role)
        audit_record(
            action="membership.created",
            actor=actor,
            object_type="membership",
            object_id=membership.pk,
            payload={"user": user.username, "user_id": user.pk, "role": role},
        )
    return membership


def membership_update(
    *,
    membership: Membership,
    actor: User | None,
    role: str | None = None,
    is_active: bool | None = None,
) -> Membership:
    firm = require_firm()
    if membership.firm_id != firm.pk:
        raise TenancyError("membership belongs to another firm")
    changes: dict[str, Any] = {}
    if role is not None and role != membership.role:
        if role not in Role.values:
            raise ValueError(f"role: {role!r} is not one of {', '.join(Role.values)}")
        changes["role"] = [membership.role, role]
        membership.role = role
    if is_active is not None and is_active != membership.is_active:
        changes["is_active"] = [membership.is_active, is_active]
        membership.is_active = is_active
    audit_changes_save(
        obj=membership,
        changes=changes,
        action="membership.changed",
        actor=actor,
        object_type="membership",
        payload={"user_id": membership.user_id},
    )
    return membership


def user_auth_event_record(*, user: User | None, action: str, payload: dict[str, Any]) -> int:
    """Record a login, logout or failed login in every firm the user belongs to.

    A failed login names no firm, so each of the user's firms sees it. An attempt for
    an unknown username belongs to no firm and is left to the security log.
    """
    if user is None or user.pk is None:
        return 0
    with user_context(user.pk), transaction.atomic():
        firms = list(
            Firm.objects.filter(
                pk__in=Membership.objects_all_firms.filter(user=user).values("firm_id")
            )
        )
        for firm in firms:
            with firm_context(firm):
                audit_record(
                    action=action,
                    actor=user if action != "auth.login_failed" else None,
                    actor_label=user.get_username(),
                    object_type="user",
                    object_id=user.pk,
                    payload=payload,
                )
    return len(firms)


def firm_update(
    *,
    firm: Firm,
    actor: User | None,
    name: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Firm:
    """Rename a firm and/or change its settings; audited as ``firm.updated`` with before/after.

    ``settings`` is merged into the firm's settings (keys not given keep their value).
    Nothing changed, nothing written. ``firm`` is refreshed in place and returned.
    """
    if name is not None:
        name = name.strip()
        if not name:
            raise ValueError("name: must not be blank")
    with firm_context(firm), transaction.atomic():
        locked = Firm.objects.select_for_update().get(pk=firm.pk)
        old_settings: dict[str, Any] = dict(locked.settings or {})
        new_name = locked.name if name is None else name
        new_settings = {**old_settings, **(settings or {})}
        before = {"name": locked.name, "settings": old_settings}
        after = {"name": new_name, "settings": new_settings}
        if after != before:
            locked.name = new_name
            locked.settings = new_settings
            locked.save(update_fields=["name", "settings"])
            audit_record(
                action="firm.updated",
                actor=actor,
                object_type="firm",
                object_id=firm.pk,
                payload={"before": before, "after": after},
            )
    firm.name = locked.name
    firm.settings = locked.settings
    return firm


def user_token_issue(*, user: User, client: dict[str, str] | None = None) -> str:
    """The user's API token (created when they have none); audited as ``auth.token_issued``."""
    from rest_framework.authtoken.models import Token

    with transaction.atomic():
        token, created = Token.objects.get_or_create(user=user)
        user_auth_event_record(
            user=user, action="auth.token_issued", payload={"created": created, **(client or {})}
        )
    return str(token.key)


def user_token_revoke(*, user: User, client: dict[str, str] | None = None) -> bool:
    """Delete the user's API token; audited as ``auth.token_revoked``. False if they had none."""
    from rest_framework.authtoken.models import Token

    with transaction.atomic():
        deleted, _ = Token.objects.filter(user=user).delete()
        if deleted:
            user_auth_event_record(user=user, action="auth.token_revoked", payload=client or {})
    return bool(deleted)
