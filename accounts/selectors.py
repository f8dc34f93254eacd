"""Reads about firms, users and memberships."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from accounts.models import Firm, Membership, User
from accounts.tenancy.context import TenancyError, user_context


class FirmSelectionRequired(TenancyError):
    """The user belongs to several firms and named none."""

    def __init__(self) -> None:
        super().__init__("you belong to several firms: choose one (X-Firm header or firm switcher)")


class FirmNotAllowed(TenancyError):
    """The named firm does not exist or the user holds no active membership in it."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"no active membership in firm {slug!r}")


class NoMembership(TenancyError):
    def __init__(self) -> None:
        super().__init__("your user holds no active membership in any firm")


def membership_list_for_user(*, user: User) -> list[Membership]:
    """The user's active memberships in every active firm, firm loaded, by firm name.

    The one legitimate crossing of firms: row-level security lets a user read their own
    memberships (``app.user_id``), and nothing else of other firms.
    """
    if not user.is_authenticated:
        return []
    with user_context(user.pk), transaction.atomic():
        return list(
            Membership.objects_all_firms.filter(user=user, is_active=True, firm__is_active=True)
            .select_related("firm")
            .order_by("firm__name")
        )


def membership_resolve(*, memberships: list[Membership], slug: str | None) -> Membership:
    """The membership of the named firm; with no name, the only one. Never a guess."""
    if slug:
        for membership in memberships:
            if membership.firm.slug == slug:
                return membership
        raise FirmNotAllowed(slug)
    if not memberships:
        raise NoMembership()
    if len(memberships) > 1:
        raise FirmSelectionRequired()
    return memberships[0]


def firm_get_by_slug(*, slug: str) -> Firm | None:
    return Firm.objects.filter(slug=slug, is_active=True).first()


def membership_list_for_firm() -> QuerySet[Membership]:
    """Every membership of the current firm (active or not), user loaded, by username.

    A queryset, so that the API filters and paginates it; firm-scoped (raises without a firm).
    """
    return Membership.objects.select_related("user").order_by("user__username", "pk")


def membership_get_for_firm(*, membership_id: int) -> Membership | None:
    """A membership of the current firm by id; None for a missing id and another firm's alike."""
    return membership_list_for_firm().filter(pk=membership_id).first()
