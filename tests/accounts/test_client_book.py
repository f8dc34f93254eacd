"""Households, clients, portfolios: who sees what, guardian grants, audit, invitations."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.book_selectors import (
    client_can_change,
    client_list_visible,
    household_advisors,
    household_can_change,
    household_list_visible,
    portfolio_list_visible,
)
from accounts.book_services import (
    InvitationInvalid,
    client_update,
    household_advisor_assign,
    household_advisor_unassign,
    invitation_accept,
    invitation_create,
    portfolio_update,
)
from accounts.models import (
    Client,
    HouseholdUserObjectPermission,
    Invitation,
    Membership,
    Role,
    User,
)
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from tests.accounts.book import Book, make_book

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(firm_a) -> Book:
    return make_book(firm_a)


def _membership(book: Book, user: User) -> Membership:
    return Membership.objects.get(user=user)


def _visible(book: Book, user: User) -> tuple[set[str], set[str], set[str]]:
    with firm_context(book.world.firm), transaction.atomic():
        membership = _membership(book, user)
        return (
            set(household_list_visible(membership=membership).values_list("name", flat=True)),
            set(client_list_visible(membership=membership).values_list("first_name", flat=True)),
            set(portfolio_list_visible(membership=membership).values_list("number", flat=True)),
        )


def test_each_role_sees_its_part_of_the_book(book: Book):
    slug = book.world.firm.slug
    everything = (
        {book.mine.name, book.theirs.name},
        {"Ines", "Otto"},
        {f"{slug.upper()}-001", f"{slug.upper()}-002"},
    )
    mine = ({book.mine.name}, {"Ines"}, {f"{slug.upper()}-001"})
    theirs = ({book.theirs.name}, {"Otto"}, {f"{slug.upper()}-002"})
    assert _visible(book, book.world.user(Role.FIRM_ADMIN)) == everything
    assert _visible(book, book.world.user(Role.COMPLIANCE)) == everything
    assert _visible(book, book.world.user(Role.ADVISOR)) == mine
    assert _visible(book, book.other_advisor) == theirs
    assert _visible(book, book.world.user(Role.INVESTOR)) == mine
    assert _visible(book, book.other_investor) == theirs


def test_change_rights(book: Book):
    with firm_context(book.world.firm), transaction.atomic():
        advisor = _membership(book, book.world.user(Role.ADVISOR))
        compliance = _membership(book, book.world.user(Role.COMPLIANCE))
        admin = _membership(book, book.world.user(Role.FIRM_ADMIN))
        investor = _membership(book, book.world.user(Role.INVESTOR))
        assert household_can_change(membership=advisor, household=book.mine)
        assert not household_can_change(membership=advisor, household=book.theirs)
        assert household_can_change(membership=admin, household=book.theirs)
        assert not household_can_change(membership=compliance, household=book.mine)
        assert not client_can_change(membership=investor, client=book.client)
        assert client_can_change(membership=advisor, client=book.client)
        assert not client_can_change(membership=advisor, client=book.other_client)


def test_grants_carry_the_firm_and_are_audited(book: Book, firm_b):
    other = make_book(firm_b)
    with firm_context(book.world.firm), transaction.atomic():
        grants = list(HouseholdUserObjectPermission.objects.values_list("firm_id", flat=True))
        assert set(grants) == {book.world.firm.pk}
        assert len(grants) == 4  # view + change, two households
        assert list(household_advisors(household=book.mine)) == [book.world.user(Role.ADVISOR)]
        actions = list(AuditEvent.objects.values_list("action", flat=True))
        assert actions.count("household.advisor_assigned") == 2
        assert "household.created" in actions
        assert "client.created" in actions
        assert "portfolio.opened" in actions
    with firm_context(other.world.firm), transaction.atomic():
        assert HouseholdUserObjectPermission.objects.count() == 4


def test_unassigning_removes_the_view(book: Book):
    advisor = book.world.user(Role.ADVISOR)
    with firm_context(book.world.firm), transaction.atomic():
        household_advisor_unassign(household=book.mine, advisor=advisor, actor=None)
    assert _visible(book, advisor) == (set(), set(), set())


def test_only_advisors_of_the_firm_can_be_assigned(book: Book):
    with (
        firm_context(book.world.firm),
        transaction.atomic(),
        pytest.raises(ValidationError, match="not an active advisor"),
    ):
        household_advisor_assign(
            household=book.mine, advisor=book.world.user(Role.INVESTOR), actor=None
        )


def test_client_update_audits_the_changes_and_stamps_kyc(book: Book):
    with firm_context(book.world.firm), transaction.atomic():
        client_update(client=book.client, actor=None, kyc_status="verified", phone="555-0100")
        client = Client.objects.get(pk=book.client.pk)
        assert client.kyc_date == timezone.localdate()
        event = AuditEvent.objects.filter(action="client.changed").get()
        assert set(event.payload["changes"]) == {"kyc_status", "phone", "kyc_date"}
        with pytest.raises(ValidationError, match="is not one of"):
            client_update(client=client, actor=None, kyc_status="maybe")


def test_a_closed_portfolio_stays_closed(book: Book):
    with firm_context(book.world.firm), transaction.atomic():
        portfolio_update(portfolio=book.portfolio, actor=None, status="closed")
        with pytest.raises(ValidationError, match="cannot be reopened"):
            portfolio_update(portfolio=book.portfolio, actor=None, status="open")


def _invite(book: Book, **kwargs):
    with firm_context(book.world.firm), transaction.atomic():
        client = Client.objects.create(
            household=book.mine, first_name="Nina", last_name="New", email="nina@example.test"
        )
        return (
            client,
            *invitation_create(
                client=client, actor=book.world.user(Role.ADVISOR), accept_url="x/{token}", **kwargs
            ),
        )


def test_an_invitation_is_mailed_used_once_and_creates_an_investor(
    book: Book, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client, invitation, token = _invite(book)
    (message,) = mail.outbox
    assert message.to == ["nina@example.test"]
    assert f"x/{token}" in message.body
    with firm_context(book.world.firm):
        assert Invitation.objects.get(pk=invitation.pk).token_hash != token  # only a hash kept

    user = invitation_accept(
        firm=book.world.firm, token=token, username="nina", password="a-long-passphrase-9"
    )
    assert user.check_password("a-long-passphrase-9")
    with firm_context(book.world.firm), transaction.atomic():
        assert Membership.objects.get(user=user).role == Role.INVESTOR
        assert Client.objects.get(pk=client.pk).user == user
        assert AuditEvent.objects.filter(action="invitation.accepted").count() == 1

    with pytest.raises(InvitationInvalid, match="already been used"):
        invitation_accept(firm=book.world.firm, token=token, username="nina2", password="x" * 20)


def test_expired_and_unknown_invitations_are_refused_and_save_nothing(book: Book, firm_b):
    _client, invitation, token = _invite(book)
    with firm_context(book.world.firm), transaction.atomic():
        Invitation.objects.filter(pk=invitation.pk).update(
            expires_at=timezone.now() - dt.timedelta(minutes=1)
        )
    users = User.objects.count()
    with pytest.raises(InvitationInvalid, match="expired"):
        invitation_accept(firm=book.world.firm, token=token, username="late", password="x" * 20)
    with pytest.raises(InvitationInvalid, match="does not exist"):
        invitation_accept(firm=book.world.firm, token="nope", username="who", password="x" * 20)
    with pytest.raises(InvitationInvalid, match="does not exist"):  # another firm's token
        invitation_accept(firm=firm_b.firm, token=token, username="who", password="x" * 20)
    assert User.objects.count() == users


def test_a_weak_password_or_taken_username_saves_nothing(book: Book):
    _client, invitation, token = _invite(book)
    with pytest.raises(ValidationError, match="password"):
        invitation_accept(firm=book.world.firm, token=token, username="nina", password="123")
    with pytest.raises(ValidationError, match="taken"):
        invitation_accept(
            firm=book.world.firm,
            token=token,
            username=book.other_advisor.username.upper(),
            password="a-long-passphrase-9",
        )
    with firm_context(book.world.firm):
        assert Invitation.objects.get(pk=invitation.pk).used_at is None
