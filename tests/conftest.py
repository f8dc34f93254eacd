"""Test database set-up through the owner role, and shared fixtures.

Django would create the test database through ``default``, the application role,
which may not create databases nor own tables. Here the owner creates it and runs
the migrations; ``default`` then points at the same database as the application
role, so every test runs under row-level security exactly as production does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import connections, transaction

from accounts.models import Firm, Membership, Role, User
from accounts.tenancy import context

PASSWORD = "test-pass-12345"


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None, django_db_blocker) -> Iterator[None]:
    with django_db_blocker.unblock():
        owner = connections["owner"]
        app = connections["default"]
        old_name = owner.settings_dict["NAME"]
        app.close()
        test_name = owner.creation.create_test_db(
            verbosity=0, autoclobber=True, keepdb=False, serialize=False
        )
        app.settings_dict["NAME"] = test_name
    yield
    with django_db_blocker.unblock():
        for alias in connections:
            connections[alias].close()
        owner.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)


@pytest.fixture(autouse=True)
def _no_firm_leaks() -> Iterator[None]:
    context.clear()
    yield
    context.clear()


@dataclass
class FirmWorld:
    firm: Firm
    users: dict[str, User]

    def user(self, role: str) -> User:
        return self.users[role]


def make_firm_world(slug: str) -> FirmWorld:
    """A firm with one user per role, built directly (no audit events)."""
    firm = Firm.objects.create(name=f"Firm {slug}", slug=slug)
    users: dict[str, User] = {}
    # In a transaction, so that the firm reaches the database in transactional tests too.
    with transaction.atomic(), context.firm_context(firm):
        for role in Role.values:
            user = User.objects.create_user(
                username=f"{role}.{slug}", password=PASSWORD, email=f"{role}@{slug}.test"
            )
            Membership.objects.create(user=user, role=role)
            users[role] = user
    return FirmWorld(firm=firm, users=users)


@pytest.fixture
def firm_a(db) -> FirmWorld:
    return make_firm_world("alpha")


@pytest.fixture
def firm_b(db) -> FirmWorld:
    return make_firm_world("beta")
