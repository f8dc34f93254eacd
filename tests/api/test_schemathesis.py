"""Property-based requests generated from the served OpenAPI schema: never a server error.

The schema is fetched from /api/schema/ and every operation is exercised in-process
through the WSGI application, as a real signed-in user (token header), so requests run
in the test's thread and database transaction. Bounded to 25 examples per operation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Role
from tests.api.conftest import token_for
from tests.conftest import FirmWorld

MAX_EXAMPLES = 25
FIRM_HEADER = "X-Firm"


def _operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every documented operation, for one test id each.

    The test itself loads the schema as served; this list only names the tests.
    """
    generated = SchemaGenerator().get_schema(request=None, public=True)
    paths = json.loads(json.dumps(generated["paths"], default=str))
    return [
        (method.upper(), path)
        for path, item in sorted(paths.items())
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


OPERATIONS = _operations()


@pytest.fixture
def wsgi_app(db: None) -> Iterator[Any]:
    """The real WSGI application, minus what only Django's test client knows to switch off.

    Django closes "old" database connections when a request starts and finishes; inside
    the test's transaction that would close the test's own connection. Django's test
    client disconnects the same handlers for the same reason.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app: Any) -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)


def test_every_operation_is_fuzzed() -> None:
    assert ("PATCH", "/api/v1/firm/") in OPERATIONS
    assert len(OPERATIONS) >= 7


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_error(api_schema: Any, firm_a: FirmWorld, method: str, path: str) -> None:
    operation = api_schema[path][method]
    user = firm_a.user(Role.FIRM_ADMIN)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if case.headers and FIRM_HEADER in case.headers:
            # A random slug only ever gets firm_not_allowed; act in the user's firm.
            case.headers[FIRM_HEADER] = firm_a.firm.slug
        # A fresh token each time: the revoke operation deletes it.
        headers = {"Authorization": f"Token {token_for(user)}"}
        case.call_and_validate(
            headers=headers,
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        )

    run()
