"""Bad input, missing firm context, and the one error format."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.test import APIClient

from accounts.models import Firm, Membership, Role, User
from accounts.selectors import FirmNotAllowed, FirmSelectionRequired, NoMembership
from accounts.tenancy import NoFirmSelected, TenancyError, firm_context
from advisor.api.errors import exception_handler
from compliance.models import AuditEvent
from tests.api.conftest import auth_headers
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db

FIRM_URL = reverse("api:firm")


def firm_snapshot(world: FirmWorld) -> tuple[dict[str, Any], int]:
    with firm_context(world.firm):
        events = AuditEvent.objects.count()
    return dict(Firm.objects.filter(pk=world.firm.pk).values().get()), events


def patch_firm(world: FirmWorld, body: Any, **kwargs: Any) -> Any:
    headers = auth_headers(world.user(Role.FIRM_ADMIN))
    return APIClient().patch(FIRM_URL, body, headers=headers, **kwargs)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    "raw", [b'{"name": ', b"{'name': 'x'}", b"name=x", b'{"name": NaN}', b"\xff\xfe"]
)
def test_malformed_json_is_refused_and_changes_nothing(firm_a: FirmWorld, raw: bytes) -> None:
    before = firm_snapshot(firm_a)
    response = patch_firm(firm_a, raw, content_type="application/json")
    error = assert_error(response, 400, "parse_error")
    assert "not valid JSON" in error["message"]
    assert firm_snapshot(firm_a) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ["a list"]}, "name"),
        ({"name": {"an": "object"}}, "name"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"settings": "not an object"}, "settings"),
        ({"settings": {"risk_profile_valid_months": "soon"}}, "settings.risk_profile_valid_months"),
        ({"settings": {"risk_profile_valid_months": 1.5}}, "settings.risk_profile_valid_months"),
        ({"settings": {"risk_profile_valid_months": 0}}, "settings.risk_profile_valid_months"),
        ({"settings": {"risk_profile_valid_months": True}}, "settings.risk_profile_valid_months"),
    ],
)
def test_wrong_types_are_refused_naming_the_field(
    firm_a: FirmWorld, body: dict[str, Any], field: str
) -> None:
    before = firm_snapshot(firm_a)
    error = assert_error(patch_firm(firm_a, body, format="json"), 400, "validation_error")
    assert set(error["fields"]) == {field}
    assert field in error["message"]
    assert firm_snapshot(firm_a) == before


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"nmae": "Typo"}, {"nmae"}),
        ({"name": "Fine", "colour": "red"}, {"colour"}),
        ({"slug": "hijack"}, {"slug"}),  # read-only: not silently ignored either
        ({"id": 1, "created_at": "2020-01-01T00:00:00Z"}, {"id", "created_at"}),
        ({"settings": {"risk_profile_valid_months": 6, "theme": "dark"}}, {"settings.theme"}),
        ({"name": 5, "extra": 1, "settings": {"x": 1}}, {"extra", "settings.x"}),
    ],
)
def test_unknown_fields_are_refused_naming_the_field(
    firm_a: FirmWorld, body: dict[str, Any], fields: set[str]
) -> None:
    before = firm_snapshot(firm_a)
    error = assert_error(patch_firm(firm_a, body, format="json"), 400, "validation_error")
    assert set(error["fields"]) == fields
    assert all(error["fields"][f] == ["Unknown field."] for f in fields)
    assert firm_snapshot(firm_a) == before


@pytest.mark.parametrize("raw", [b"[]", b'["name"]', b'"name"', b"5", b"null"])
def test_a_body_that_is_not_an_object_is_refused(firm_a: FirmWorld, raw: bytes) -> None:
    before = firm_snapshot(firm_a)
    response = patch_firm(firm_a, raw, content_type="application/json")
    error = assert_error(response, 400, "validation_error")
    assert error["message"] == "The request body must be a JSON object."
    assert firm_snapshot(firm_a) == before


def test_not_json_at_all_is_unsupported(firm_a: FirmWorld) -> None:
    before = firm_snapshot(firm_a)
    response = patch_firm(firm_a, {"name": "Form post"}, format="multipart")
    assert_error(response, 415, "unsupported_media_type")
    assert firm_snapshot(firm_a) == before


def test_method_not_allowed_is_in_the_error_format(firm_a: FirmWorld) -> None:
    response = APIClient().delete(FIRM_URL, headers=auth_headers(firm_a.user(Role.FIRM_ADMIN)))
    assert_error(response, 405, "method_not_allowed")


def test_unknown_api_paths_answer_404_in_the_error_format() -> None:
    client = APIClient()
    assert_error(client.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert_error(client.post("/api/v2/anything/", {}, format="json"), 404, "not_found")
    no_slash = assert_error(client.get("/api/v1/me"), 404, "not_found")
    assert "/api/v1/me/" in no_slash["message"]


@pytest.fixture
def two_firm_user(firm_a: FirmWorld, firm_b: FirmWorld) -> User:
    user = firm_a.user(Role.FIRM_ADMIN)
    with firm_context(firm_b.firm):
        Membership.objects.create(user=user, role=Role.ADVISOR)
    return user


@pytest.mark.parametrize("route", ["api:firm", "api:firm-member-list"])
def test_several_firms_and_no_choice_is_firm_required(
    two_firm_user: User, firm_a: FirmWorld, firm_b: FirmWorld, route: str
) -> None:
    response = APIClient().get(reverse(route), headers=auth_headers(two_firm_user))
    error = assert_error(response, 400, "firm_required")
    assert "X-Firm" in error["message"]
    text = response.content.decode()
    for world in (firm_a, firm_b):
        assert world.firm.slug not in text
        assert world.firm.name not in text


def test_several_firms_and_x_firm_picks_one(
    two_firm_user: User, firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    client = APIClient()
    for world, role in ((firm_a, Role.FIRM_ADMIN), (firm_b, Role.ADVISOR)):
        headers = auth_headers(two_firm_user, X_Firm=world.firm.slug)
        me = client.get(reverse("api:me"), headers=headers).json()
        assert (me["firm"]["slug"], me["role"]) == (world.firm.slug, role)
        assert client.get(FIRM_URL, headers=headers).json()["slug"] == world.firm.slug
    # An advisor in beta may not do what they may do as firm admin in alpha.
    in_beta = auth_headers(two_firm_user, X_Firm=firm_b.firm.slug)
    assert client.get(reverse("api:firm-member-list"), headers=in_beta).status_code == 403


def test_endpoints_without_a_firm_work_for_a_user_with_several(
    two_firm_user: User, firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    client = APIClient()
    headers = auth_headers(two_firm_user)
    me = client.get(reverse("api:me"), headers=headers)
    assert me.status_code == 200
    assert (me.json()["firm"], me.json()["role"]) == (None, None)
    memberships = client.get(reverse("api:memberships"), headers=headers).json()
    assert {m["firm"]["slug"] for m in memberships["results"]} == {"alpha", "beta"}


def test_a_user_without_membership(db: None) -> None:
    user = User.objects.create_user(username="loner", password="x-long-password")
    client = APIClient()
    headers = auth_headers(user)
    assert_error(client.get(FIRM_URL, headers=headers), 403, "no_membership")
    me = client.get(reverse("api:me"), headers=headers)
    assert me.status_code == 200
    assert me.json()["firm"] is None
    assert client.get(reverse("api:memberships"), headers=headers).json()["results"] == []


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (NoFirmSelected(), 400, "firm_required"),
        (FirmSelectionRequired(), 400, "firm_required"),
        (FirmNotAllowed("x"), 403, "firm_not_allowed"),
        (NoMembership(), 403, "no_membership"),
        (TenancyError("row of another firm"), 404, "not_found"),
        (exceptions.Throttled(wait=7), 429, "throttled"),
        (
            exceptions.ValidationError({"a": {"b": ["bad"]}, "c": [{}, {"d": ["x"]}]}),
            400,
            "validation_error",
        ),
        (exceptions.ValidationError(["whole body bad"]), 400, "validation_error"),
    ],
)
def test_exception_handler_maps_to_the_error_format(exc: Exception, status: int, code: str) -> None:
    response = exception_handler(exc, {})
    assert response is not None
    assert response.status_code == status
    assert response.data["error"]["code"] == code
    assert set(response.data["error"]) == {"code", "message", "fields"}


def test_validation_fields_are_flattened() -> None:
    exc = exceptions.ValidationError(
        {"a": {"b": ["bad"]}, "c": [{}, {"d": ["x"]}], "non_field_errors": ["all wrong"]}
    )
    response = exception_handler(exc, {})
    assert response is not None
    error = response.data["error"]
    assert error["fields"] == {"a.b": ["bad"], "c.1.d": ["x"]}
    assert error["message"] == "all wrong"


def test_a_bug_is_left_to_django() -> None:
    assert exception_handler(KeyError("bug"), {}) is None
