"""Fixtures of the API tests: clients that authenticate as a user, and disjoint ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User

# 10**7 ids per table: 214 sequences fit below 2**31 (some sequences are 32-bit).
ID_RANGE = 10**7


@pytest.fixture(scope="session")
def disjoint_id_ranges(django_db_setup: None, django_db_blocker: Any) -> None:
    """Move every sequence of the test database into its own range of ids.

    Each table's ids then start at a different multiple of ID_RANGE, so an id of one kind
    (a firm, a user, a membership, ...) never equals an id of another kind. The isolation
    tests rely on it to look for another firm's ids anywhere in a response. Sequences
    belong to the owner role; ``setval`` is not transactional, nothing to undo.
    """
    with django_db_blocker.unblock():
        owner = connections["owner"]
        with owner.cursor() as cursor:
            cursor.execute(
                "SELECT schemaname, sequencename, COALESCE(last_value, 0) FROM pg_sequences "
                "WHERE schemaname = 'public' ORDER BY sequencename"
            )
            for index, (schema, name, last_value) in enumerate(cursor.fetchall(), start=1):
                start = index * ID_RANGE
                if last_value < start:
                    cursor.execute("SELECT setval(%s, %s)", [f'"{schema}"."{name}"', start])
        owner.close()


def token_for(user: User) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)


def auth_headers(user: User, **extra: str) -> dict[str, str]:
    """Headers of a request authenticated with ``user``'s token (created when missing)."""
    return {"Authorization": f"Token {token_for(user)}", **extra}


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def client_as() -> Callable[..., APIClient]:
    """``client_as(user)``: an API client sending that user's token on every request."""

    def make(user: User, **headers: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", **headers)
        return client

    return make
