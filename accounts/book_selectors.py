"""Reads of the client book, limited to what the caller's role lets them see.

* firm admins and compliance officers: the whole firm;
* advisors: the households assigned to them (django-guardian grants), their clients
  and portfolios;
* investors: their own client record and portfolios.

Every function is firm-scoped (the current firm) and returns a queryset, so that the
API filters and paginates it; an object outside it answers 404 like a missing one.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from accounts.models import (
    Client,
    Household,
    HouseholdUserObjectPermission,
    Membership,
    Role,
    User,
)
from portfolios.models import Portfolio

FIRM_WIDE_ROLES = frozenset({Role.FIRM_ADMIN, Role.COMPLIANCE})


def household_list_visible(
    *, membership: Membership, perm: str = "view_household"
) -> QuerySet[Household]:
    households = Household.objects.all()
    if membership.role in FIRM_WIDE_ROLES:
        return households.order_by("name", "pk")
    user = membership.user
    if membership.role == Role.ADVISOR:
        return get_objects_for_user(
            user,
            f"accounts.{perm}",
            klass=households,
            accept_global_perms=False,
            with_superuser=False,
        ).order_by("name", "pk")
    if membership.role == Role.INVESTOR and perm == "view_household":
        own = Client.objects.filter(user=user).values("household_id")
        return households.filter(pk__in=own).order_by("name", "pk")
    return households.none()


def household_can_change(*, membership: Membership, household: Household) -> bool:
    if membership.role == Role.FIRM_ADMIN:
        return True
    if membership.role == Role.ADVISOR:
        return (
            household_list_visible(membership=membership, perm="change_household")
            .filter(pk=household.pk)
            .exists()
        )
    return False


def household_advisors(*, household: Household) -> QuerySet[User]:
    ids = HouseholdUserObjectPermission.objects.filter(
        content_object=household, permission__codename="view_household"
    ).values("user_id")
    return User.objects.filter(pk__in=ids).order_by("username")


def client_list_visible(*, membership: Membership) -> QuerySet[Client]:
    clients = Client.objects.select_related("household")
    if membership.role == Role.INVESTOR:
        return clients.filter(user=membership.user).order_by("last_name", "first_name", "pk")
    households = household_list_visible(membership=membership)
    if membership.role not in FIRM_WIDE_ROLES:
        clients = clients.filter(household__in=households.values("pk"))
    return clients.order_by("last_name", "first_name", "pk")


def client_search(
    *, membership: Membership, query: str = "", household_id: int | None = None
) -> QuerySet[Client]:
    clients = client_list_visible(membership=membership)
    if query:
        clients = clients.filter(
            Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
            | Q(household__name__icontains=query)
        )
    if household_id is not None:
        clients = clients.filter(household_id=household_id)
    return clients


def client_get_visible(*, membership: Membership, client_id: int) -> Client | None:
    return client_list_visible(membership=membership).filter(pk=client_id).first()


def client_can_change(*, membership: Membership, client: Client) -> bool:
    if membership.role == Role.FIRM_ADMIN:
        return True
    if membership.role == Role.ADVISOR:
        return (
            household_list_visible(membership=membership, perm="change_household")
            .filter(pk=client.household_id)
            .exists()
        )
    return False


def client_for_user(*, user: User) -> Client | None:
    """The investor's own client record in the current firm."""
    return Client.objects.filter(user=user).first()


def portfolio_list_visible(*, membership: Membership) -> QuerySet[Portfolio]:
    clients = client_list_visible(membership=membership)
    portfolios = Portfolio.objects.all()
    if membership.role not in FIRM_WIDE_ROLES:
        portfolios = portfolios.filter(Exists(clients.filter(pk=OuterRef("client_id"))))
    return portfolios.order_by("number", "pk")
