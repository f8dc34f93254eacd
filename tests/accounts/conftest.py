"""The two firms of tests/conftest.py, built inside a transaction.

tests/conftest.py's ``make_firm_world`` writes memberships inside ``firm_context``
but outside ``transaction.atomic()``; in a transactional test (``transaction=True``)
the backend then refuses the write, because the firm could not reach the database.
Wrapping the same builder in a transaction makes the fixtures work in both kinds of
test.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.conftest import FirmWorld, make_firm_world


@pytest.fixture
def firm_a(db) -> FirmWorld:
    with transaction.atomic():
        return make_firm_world("alpha")


@pytest.fixture
def firm_b(db) -> FirmWorld:
    with transaction.atomic():
        return make_firm_world("beta")
