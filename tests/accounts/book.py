"""Building a client book in tests, through the services."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.book_services import (
    client_create,
    household_advisor_assign,
    household_create,
    portfolio_open,
)
from accounts.models import Client, Household, Membership, Role, User
from accounts.tenancy import firm_context
from portfolios.models import Portfolio
from tests.conftest import PASSWORD, FirmWorld


@dataclass
class Book:
    world: FirmWorld
    other_advisor: User
    other_investor: User
    mine: Household  # assigned to world's advisor; the world's investor is a client in it
    theirs: Household  # assigned to other_advisor
    client: Client  # the world's investor
    other_client: Client  # other_investor, in theirs
    portfolio: Portfolio
    other_portfolio: Portfolio


def make_book(world: FirmWorld) -> Book:
    slug = world.firm.slug
    with firm_context(world.firm), transaction.atomic():
        other_advisor = User.objects.create_user(
            username=f"advisor2.{slug}", password=PASSWORD, email=f"advisor2@{slug}.test"
        )
        other_investor = User.objects.create_user(
            username=f"investor2.{slug}", password=PASSWORD, email=f"investor2@{slug}.test"
        )
        Membership.objects.create(user=other_advisor, role=Role.ADVISOR)
        Membership.objects.create(user=other_investor, role=Role.INVESTOR)
        admin = world.user(Role.FIRM_ADMIN)
        mine = household_create(actor=admin, name=f"Mine household {slug}")
        theirs = household_create(actor=admin, name=f"Theirs household {slug}")
        household_advisor_assign(household=mine, advisor=world.user(Role.ADVISOR), actor=admin)
        household_advisor_assign(household=theirs, advisor=other_advisor, actor=admin)
        client = client_create(
            household=mine, actor=admin, first_name="Ines", last_name=f"Vestor {slug}"
        )
        client.user = world.user(Role.INVESTOR)
        client.save(update_fields=["user"])
        other_client = client_create(
            household=theirs, actor=admin, first_name="Otto", last_name=f"Other {slug}"
        )
        other_client.user = other_investor
        other_client.save(update_fields=["user"])
        portfolio = portfolio_open(
            client=client, actor=admin, number=f"{slug.upper()}-001", account_type="taxable"
        )
        other_portfolio = portfolio_open(
            client=other_client, actor=admin, number=f"{slug.upper()}-002", account_type="roth_ira"
        )
    return Book(
        world,
        other_advisor,
        other_investor,
        mine,
        theirs,
        client,
        other_client,
        portfolio,
        other_portfolio,
    )
