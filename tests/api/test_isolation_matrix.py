"""Firm isolation of every API route, for every role, in both directions.

Routes come from the URL configuration (tests/api/routes.py), so a new route is in the
matrix without anyone adding it. For each route, each role of the acting firm, and
each direction (alpha acting against beta, beta against alpha):

* reads: another firm's object answers exactly like a missing one (same status, same
  body); other routes return nothing of the other firm;
* X-Firm naming the other firm is refused exactly like a firm that does not exist,
  and leaks nothing;
* writes change nothing of the other firm (its state is compared before and after,
  read as that firm).

"Nothing of the other firm" means none of its ids (of any table: every sequence has its
own id range, see ``disjoint_id_ranges``), slugs, names, usernames, e-mails or tokens,
anywhere in the body.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import Firm, Membership, Role, User
from accounts.tenancy import firm_context
from accounts.tenancy.registry import firm_owned_models
from tests.api.conftest import ID_RANGE, auth_headers
from tests.api.routes import (
    Route,
    api_routes,
    missing_kwargs,
    object_kwargs,
    object_spec,
    payload,
)
from tests.conftest import FirmWorld

ROUTES = api_routes()
ROLES = list(Role.values)
DIRECTIONS = ["alpha_acts_on_beta", "beta_acts_on_alpha"]
NO_SUCH_FIRM = "no-such-firm"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("disjoint_id_ranges")]


def _cases(routes: list[Route]) -> list[Any]:
    return [
        pytest.param(route, role, direction, id=f"{route.name}-{role}-{direction}")
        for route in routes
        for role in ROLES
        for direction in DIRECTIONS
    ]


def _worlds(direction: str, firm_a: FirmWorld, firm_b: FirmWorld) -> tuple[FirmWorld, FirmWorld]:
    return (firm_a, firm_b) if direction == "alpha_acts_on_beta" else (firm_b, firm_a)


def _members(world: FirmWorld) -> list[User]:
    with firm_context(world.firm):
        ids = Membership.objects.values_list("user_id", flat=True)
        return list(User.objects.filter(pk__in=ids).order_by("pk"))


def firm_state(world: FirmWorld) -> dict[str, Any]:
    """Everything of the firm, read as the firm: its row, its users, their tokens, and
    every row of every firm-owned table."""
    users = _members(world)
    user_ids = [u.pk for u in users]
    state: dict[str, Any] = {
        "firm": Firm.objects.filter(pk=world.firm.pk).values().get(),
        "users": list(User.objects.filter(pk__in=user_ids).order_by("pk").values()),
        "tokens": sorted(Token.objects.filter(user_id__in=user_ids).values_list("key", "user")),
    }
    with firm_context(world.firm), transaction.atomic():
        for model in firm_owned_models():
            rows = model._default_manager.filter(firm_id=world.firm.pk).order_by("pk").values()
            state[model._meta.label] = list(rows)
    return state


def fingerprint(world: FirmWorld) -> tuple[set[str], set[int]]:
    """What would betray that a response carries something of ``world``'s firm."""
    users = _members(world)
    strings = {world.firm.slug, world.firm.name}
    strings |= {u.username for u in users} | {u.email for u in users if u.email}
    strings |= set(Token.objects.filter(user__in=users).values_list("key", flat=True))
    ints = {world.firm.pk} | {u.pk for u in users}
    with firm_context(world.firm), transaction.atomic():
        for model in firm_owned_models():
            ints |= set(
                model._default_manager.filter(firm_id=world.firm.pk).values_list("pk", flat=True)
            )
    return strings, ints


def _numbers(value: Any) -> set[int]:
    if isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value}
    if isinstance(value, str):
        return {int(run) for run in re.findall(r"\d+", value)}
    if isinstance(value, dict):
        return set().union(*(_numbers(k) | _numbers(v) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_numbers(v) for v in value))
    return set()


def assert_no_leak(response: Any, world: FirmWorld, what: str) -> None:
    strings, ints = fingerprint(world)
    if getattr(response, "streaming", False):  # a CSV export: read it all
        text = b"".join(response.streaming_content).decode()
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        # hashes are hex: their digit runs are not ids
        body: Any = [c for c in cells if not re.fullmatch(r"[0-9a-f]{64}", c)]
    else:
        text = response.content.decode()
        body = None
    for secret in strings:
        assert secret not in text, f"{what}: response carries {secret!r} of {world.firm.slug}"
    if body is None:
        body = json.loads(text) if text else None
    leaked = _numbers(body) & ints
    assert not leaked, f"{what}: response carries ids {sorted(leaked)} of {world.firm.slug}"


def call(
    route: Route, method: str, user: User, kwargs: dict[str, Any] | None = None, **headers: str
) -> Any:
    url = reverse(route.name, kwargs=kwargs or None)
    client = APIClient()
    request_headers = headers if route.public else auth_headers(user, **headers)
    if method == "get":
        return client.get(url, {"page_size": 500}, headers=request_headers)
    body = payload(route, method, user)
    return getattr(client, method)(url, body, format="json", headers=request_headers)


def test_the_matrix_sees_every_route() -> None:
    names = {route.name for route in ROUTES}
    assert {"api:me", "api:firm", "api:firm-member-list", "api:firm-member-detail"} <= names
    assert all(route.methods for route in ROUTES), "a route answering no method"


@pytest.mark.parametrize(
    ("route", "role", "direction"), _cases([r for r in ROUTES if "get" in r.methods])
)
def test_reads_return_nothing_of_the_other_firm(
    route: Route, role: str, direction: str, firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    actor_world, other = _worlds(direction, firm_a, firm_b)
    actor = actor_world.user(role)
    if not route.params:
        response = call(route, "get", actor)
        assert response.status_code < 500
        assert_no_leak(response, other, f"GET {route.template} as {role}")
        return

    own = call(route, "get", actor, object_kwargs(route, actor_world))
    foreign = call(route, "get", actor, object_kwargs(route, other))
    missing = call(route, "get", actor, missing_kwargs(route))
    assert own.status_code != 404, f"OBJECTS[{route.name!r}] built no object of the actor's firm"
    if object_spec(route).platform_wide:
        # Shared reference data: the same object and the same answer for every firm.
        assert own.status_code == 200, own.content
        assert (foreign.status_code, foreign.json()) == (own.status_code, own.json())
        assert missing.status_code == 404, missing.content
        assert_no_leak(own, other, f"GET {route.template} (platform-wide object) as {role}")
        return
    assert foreign.status_code in (403, 404), foreign.content
    assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
    assert_no_leak(foreign, other, f"GET {route.template} (other firm's id) as {role}")
    assert_no_leak(own, other, f"GET {route.template} (own object) as {role}")


@pytest.mark.parametrize(("route", "role", "direction"), _cases(ROUTES))
def test_x_firm_of_the_other_firm_is_refused(
    route: Route, role: str, direction: str, firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    actor_world, other = _worlds(direction, firm_a, firm_b)
    actor = actor_world.user(role)
    kwargs = object_kwargs(route, actor_world) if route.params else None
    before = firm_state(other)
    for method in route.methods:
        named = call(route, method, actor, kwargs, X_Firm=other.firm.slug)
        unknown = call(route, method, actor, kwargs, X_Firm=NO_SUCH_FIRM)
        what = f"{method.upper()} {route.template} as {role} with X-Firm: {other.firm.slug}"
        assert_no_leak(named, other, what)
        if route.public:
            continue  # no authentication, so no firm either: the header means nothing
        assert named.status_code == 403, (what, named.content)
        assert named.json()["error"]["code"] == "firm_not_allowed", what
        assert named.json() == unknown.json(), "an existing firm must read like a missing one"
    assert firm_state(other) == before


@pytest.mark.parametrize(
    ("route", "role", "direction"), _cases([r for r in ROUTES if r.unsafe_methods])
)
def test_writes_change_nothing_of_the_other_firm(
    route: Route, role: str, direction: str, firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    actor_world, other = _worlds(direction, firm_a, firm_b)
    actor = actor_world.user(role)
    # Built before the snapshot: a factory may create the other firm's object.
    other_kwargs = object_kwargs(route, other) if route.params else None
    before = firm_state(other)
    for method in route.unsafe_methods:
        what = f"{method.upper()} {route.template} as {role}"
        if route.params and object_spec(route).platform_wide:
            # Platform-wide data: no firm role may change it (platform staff only).
            response = call(route, method, actor, other_kwargs)
            assert response.status_code == 403, (what, response.content)
            assert_no_leak(response, other, what)
        elif route.params:
            foreign = call(route, method, actor, other_kwargs)
            missing = call(route, method, actor, missing_kwargs(route))
            assert foreign.status_code in (403, 404, 405), (what, foreign.content)
            assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
            assert_no_leak(foreign, other, what)
        else:
            response = call(route, method, actor)
            assert response.status_code < 500, (what, response.content)
            assert_no_leak(response, other, what)
    assert firm_state(other) == before


def test_ids_of_different_tables_never_coincide(firm_a: FirmWorld) -> None:
    """The id check above is only sound if a user id can never equal a firm id, etc."""
    user = firm_a.user(Role.ADVISOR)
    with firm_context(firm_a.firm):
        membership = Membership.objects.get(user=user)
    ranges = {firm_a.firm.pk // ID_RANGE, user.pk // ID_RANGE, membership.pk // ID_RANGE}
    assert len(ranges) == 3
    assert 0 not in ranges


def test_a_route_with_parameters_and_no_object_factory_fails_loudly() -> None:
    route = Route("api:made-up", "api/v1/made-up/<int:pk>/", (("pk", None),), object, ("get",))
    with pytest.raises(AssertionError, match=r"teach the isolation matrix .*OBJECTS"):
        object_spec(route)
