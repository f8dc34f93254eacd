"""State changes of the client book: households, advisor assignment, clients, invitations,
portfolios. Each writes its audit event in the same transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import (
    Client,
    Employment,
    Firm,
    Household,
    Invitation,
    KycStatus,
    Membership,
    Role,
    TaxStatus,
    User,
)
from accounts.services import membership_create
from accounts.tenancy.context import firm_context, require_firm
from compliance.services import audit_changes_save, audit_record
from portfolios.models import Portfolio, PortfolioStatus, PortfolioType

HOUSEHOLD_PERMS = ("view_household", "change_household")
INVITATION_VALID_DAYS = 7

CLIENT_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "phone",
    "tax_residence",
    "tax_status",
    "employment",
    "kyc_status",
    "kyc_date",
)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


# --- households and advisors -------------------------------------------------------------


def household_create(*, actor: User | None, name: str, notes: str = "") -> Household:
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["must not be blank"]})
    with transaction.atomic():
        household = Household.objects.create(name=name, notes=notes)
        audit_record(
            action="household.created",
            actor=actor,
            object_type="household",
            object_id=household.pk,
            payload={"name": name},
        )
    return household


def household_update(
    *, household: Household, actor: User | None, name: str | None = None, notes: str | None = None
) -> Household:
    changes: dict[str, list[Any]] = {}
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError({"name": ["must not be blank"]})
        if name != household.name:
            changes["name"] = [household.name, name]
            household.name = name
    if notes is not None and notes != household.notes:
        changes["notes"] = [household.notes, notes]
        household.notes = notes
    audit_changes_save(
        obj=household,
        changes=changes,
        action="household.changed",
        actor=actor,
        object_type="household",
    )
    return household


def _advisor_membership(user: User) -> Membership:
    membership = Membership.objects.filter(user=user, is_active=True).first()
    if membership is None or membership.role != Role.ADVISOR:
        raise ValidationError({"advisor": ["is not an active advisor of this firm"]})
    return membership


def household_advisor_assign(*, household: Household, advisor: User, actor: User | None) -> None:
    """Give an advisor of the firm view and change rights on the household (guardian)."""
    _advisor_membership(advisor)
    with transaction.atomic():
        for perm in HOUSEHOLD_PERMS:
            assign_perm(perm, advisor, household)
        audit_record(
            action="household.advisor_assigned",
            actor=actor,
            object_type="household",
            object_id=household.pk,
            payload={"advisor_id": advisor.pk, "advisor": advisor.username},
        )


def household_advisor_unassign(*, household: Household, advisor: User, actor: User | None) -> None:
    with transaction.atomic():
        for perm in HOUSEHOLD_PERMS:
            remove_perm(perm, advisor, household)
        audit_record(
            action="household.advisor_unassigned",
            actor=actor,
            object_type="household",
            object_id=household.pk,
            payload={"advisor_id": advisor.pk, "advisor": advisor.username},
        )


# --- clients -----------------------------------------------------------------------------


def _check_client_fields(fields: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    choices = {
        "tax_status": TaxStatus.values,
        "employment": Employment.values,
        "kyc_status": KycStatus.values,
    }
    for name, value in fields.items():
        if name not in CLIENT_FIELDS:
            errors[name] = ["unknown client field"]
        elif name in choices and value not in choices[name]:
            errors[name] = [f"{value!r} is not one of {', '.join(choices[name])}"]
        elif name in ("first_name", "last_name") and not str(value).strip():
            errors[name] = ["must not be blank"]
    if errors:
        raise ValidationError(errors)


def client_create(*, household: Household, actor: User | None, **fields: Any) -> Client:
    _check_client_fields(fields)
    if fields.get("kyc_status") == KycStatus.VERIFIED and not fields.get("kyc_date"):
        fields["kyc_date"] = timezone.localdate()
    with transaction.atomic():
        client = Client.objects.create(household=household, **fields)
        audit_record(
            action="client.created",
            actor=actor,
            object_type="client",
            object_id=client.pk,
            payload={
                "household_id": household.pk,
                **{k: _jsonable(v) for k, v in fields.items()},
            },
        )
    return client


def client_update(*, client: Client, actor: User | None, **fields: Any) -> Client:
    _check_client_fields(fields)
    changes: dict[str, list[Any]] = {}
    for name, value in fields.items():
        old = getattr(client, name)
        if old != value:
            changes[name] = [_jsonable(old), _jsonable(value)]
            setattr(client, name, value)
    verified = client.kyc_status == KycStatus.VERIFIED
    if "kyc_status" in changes and verified and "kyc_date" not in fields:
        client.kyc_date = timezone.localdate()
        changes["kyc_date"] = [None, _jsonable(client.kyc_date)]
    audit_changes_save(
        obj=client, changes=changes, action="client.changed", actor=actor, object_type="client"
    )
    return client


def client_link_user(*, client: Client, user: User, actor: User | None) -> Client:
    """Give the client their login: an investor member of the firm (the demo, imports)."""
    membership = Membership.objects.filter(user=user, is_active=True).first()
    if membership is None or membership.role != Role.INVESTOR:
        raise ValidationError({"user": ["is not an active investor of this firm"]})
    if Client.objects.filter(user=user).exclude(pk=client.pk).exists():
        raise ValidationError({"user": ["already has a client record"]})
    if client.user_id == user.pk:
        return client
    with transaction.atomic():
        client.user = user
        client.save(update_fields=["user"])
        audit_record(
            action="client.login_linked",
            actor=actor,
            object_type="client",
            object_id=client.pk,
            payload={"user_id": user.pk, "username": user.username},
        )
    return client


# --- invitations -------------------------------------------------------------------------


class InvitationInvalid(ValidationError):
    """Unknown, used or expired invitation: the message names which."""


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(
    *,
    client: Client,
    actor: User | None,
    email: str | None = None,
    accept_url: str = "",
    valid_days: int = INVITATION_VALID_DAYS,
) -> tuple[Invitation, str]:
    """Invite the client by e-mail; returns the invitation and its (never stored) token.

    ``accept_url`` is the sign-up link with ``{token}`` to fill in. The e-mail goes through
    Django's e-mail backend after the transaction commits.
    """
    if client.user_id is not None:
        raise ValidationError({"client": ["already has a login"]})
    address = (email or client.email).strip()
    if not address:
        raise ValidationError({"email": ["the client has no e-mail address: give one"]})
    token = secrets.token_urlsafe(32)
    firm = require_firm()
    with transaction.atomic():
        invitation = Invitation.objects.create(
            client=client,
            email=address,
            token_hash=_token_hash(token),
            expires_at=timezone.now() + dt.timedelta(days=valid_days),
            invited_by=actor,
        )
        audit_record(
            action="invitation.created",
            actor=actor,
            object_type="invitation",
            object_id=invitation.pk,
            payload={"client_id": client.pk, "email": address, "valid_days": valid_days},
        )
        link = accept_url.replace("{token}", token) if accept_url else token
        transaction.on_commit(
            lambda: send_mail(
                subject=f"{firm.name} invites you to your investor account",
                message=(
                    f"Hello {client.first_name},\n\n{firm.name} has opened an investor account "
                    f"for you. Set your password and start your risk questionnaire here:\n\n"
                    f"{link}\n\nThe link works once and expires in {valid_days} days."
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[address],
            )
        )
    return invitation, token


def invitation_get(*, token: str) -> Invitation:
    """The current firm's usable invitation for ``token``; InvitationInvalid naming why not."""
    invitation = Invitation.objects.filter(token_hash=_token_hash(token)).first()
    if invitation is None:
        raise InvitationInvalid({"token": ["this invitation does not exist"]})
    if invitation.used_at is not None:
        raise InvitationInvalid({"token": ["this invitation has already been used"]})
    if invitation.expires_at <= timezone.now():
        raise InvitationInvalid({"token": ["this invitation has expired"]})
    return invitation


def invitation_accept(*, firm: Firm, token: str, username: str, password: str) -> User:
    """Sign up through an invitation: a new investor login linked to the client."""
    with firm_context(firm), transaction.atomic():
        invitation = invitation_get(token=token)
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.used_at is not None:
            raise InvitationInvalid({"token": ["this invitation has already been used"]})
        username = username.strip()
        if not username:
            raise ValidationError({"username": ["must not be blank"]})
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError({"username": ["this username is taken"]})
        client = Client.objects.get(pk=invitation.client_id)
        if client.user_id is not None:
            raise InvitationInvalid({"token": ["this client already has a login"]})
        user = User(
            username=username,
            email=invitation.email,
            first_name=client.first_name,
            last_name=client.last_name,
        )
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from exc
        user.set_password(password)
        user.save()
        membership_create(firm=firm, user=user, role=Role.INVESTOR, actor=user)
        client.user = user
        client.save(update_fields=["user"])
        invitation.used_at = timezone.now()
        invitation.save(update_fields=["used_at"])
        audit_record(
            action="invitation.accepted",
            actor=user,
            object_type="invitation",
            object_id=invitation.pk,
            payload={"client_id": client.pk, "user_id": user.pk},
        )
    return user


# --- portfolios ----------------------------------------------------------------------------


def portfolio_open(
    *,
    client: Client,
    actor: User | None,
    number: str,
    account_type: str,
    discretionary: bool = True,
    name: str = "",
) -> Portfolio:
    errors: dict[str, list[str]] = {}
    number = number.strip()
    if not number:
        errors["number"] = ["must not be blank"]
    elif Portfolio.objects.filter(number=number).exists():
        errors["number"] = ["a portfolio with this number exists"]
    if account_type not in PortfolioType.values:
        allowed = ", ".join(PortfolioType.values)
        errors["account_type"] = [f"{account_type!r} is not one of {allowed}"]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        portfolio = Portfolio.objects.create(
            client=client,
            number=number,
            account_type=account_type,
            discretionary=discretionary,
            name=name,
        )
        audit_record(
            action="portfolio.opened",
            actor=actor,
            object_type="portfolio",
            object_id=portfolio.pk,
            payload={
                "client_id": client.pk,
                "number": number,
                "account_type": account_type,
                "discretionary": discretionary,
                "base_currency": portfolio.base_currency,
            },
        )
    return portfolio


def portfolio_update(
    *,
    portfolio: Portfolio,
    actor: User | None,
    status: str | None = None,
    discretionary: bool | None = None,
    name: str | None = None,
) -> Portfolio:
    changes: dict[str, list[Any]] = {}
    if status is not None and status != portfolio.status:
        if status not in PortfolioStatus.values:
            allowed = ", ".join(PortfolioStatus.values)
            raise ValidationError({"status": [f"{status!r} is not one of {allowed}"]})
        if portfolio.status == PortfolioStatus.CLOSED:
            raise ValidationError({"status": ["a closed portfolio cannot be reopened"]})
        changes["status"] = [portfolio.status, status]
        portfolio.status = status
    if discretionary is not None and discretionary != portfolio.discretionary:
        changes["discretionary"] = [portfolio.discretionary, discretionary]
        portfolio.discretionary = discretionary
    if name is not None and name != portfolio.name:
        changes["name"] = [portfolio.name, name]
        portfolio.name = name
    audit_changes_save(
        obj=portfolio,
        changes=changes,
        action="portfolio.changed",
        actor=actor,
        object_type="portfolio",
    )
    return portfolio
