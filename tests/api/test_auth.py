"""Token and session authentication of the API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import Membership, Role, User
from accounts.tenancy import context, firm_context
from advisor.api.views import ApiView
from compliance.models import AuditEvent
from tests.api.conftest import auth_headers
from tests.api.routes import api_routes, object_kwargs
from tests.conftest import PASSWORD, FirmWorld

pytestmark = pytest.mark.django_db

TOKEN_URL = reverse("api:auth-token")
REVOKE_URL = reverse("api:auth-token-revoke")
ME_URL = reverse("api:me")


def obtain(client: APIClient, username: str, password: str) -> Any:
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json")


def audit_actions(world: FirmWorld, action: str) -> list[AuditEvent]:
    with firm_context(world.firm):
        return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_right_credentials_give_a_token_that_authenticates(firm_a: FirmWorld) -> None:
    client = APIClient()
    user = firm_a.user(Role.ADVISOR)
    response = obtain(client, user.username, PASSWORD)
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    assert Token.objects.get(user=user).key == token

    me = APIClient().get(ME_URL, headers={"Authorization": f"Token {token}"})
    assert me.status_code == 200
    assert me.json()["user"]["username"] == user.username
    assert me.json()["firm"]["slug"] == firm_a.firm.slug
    assert me.json()["role"] == Role.ADVISOR

    again = obtain(client, user.username, PASSWORD)
    assert again.json()["token"] == token, "one token per user, handed out again"
    issued = audit_actions(firm_a, "auth.token_issued")
    assert [e.actor_id for e in issued] == [user.pk, user.pk]


def test_wrong_username_and_wrong_password_answer_alike(firm_a: FirmWorld) -> None:
    client = APIClient()
    user = firm_a.user(Role.INVESTOR)
    wrong_password = obtain(client, user.username, "not-the-password")
    wrong_username = obtain(client, "nobody-by-that-name", PASSWORD)
    assert wrong_password.status_code == wrong_username.status_code == 400
    assert wrong_password.json() == wrong_username.json()
    error = wrong_password.json()["error"]
    assert error["code"] == "invalid_credentials"
    assert error["fields"] == {}
    assert "username" not in error["message"].lower()
    assert "password" not in error["message"].lower()
    assert not Token.objects.filter(user=user).exists()


def test_inactive_user_answers_like_wrong_credentials(firm_a: FirmWorld) -> None:
    user = firm_a.user(Role.ADVISOR)
    User.objects.filter(pk=user.pk).update(is_active=False)
    inactive = obtain(APIClient(), user.username, PASSWORD)
    wrong = obtain(APIClient(), user.username, "nope")
    assert (inactive.status_code, inactive.json()) == (wrong.status_code, wrong.json())


def test_failed_login_is_audited_in_the_users_firm(firm_a: FirmWorld, firm_b: FirmWorld) -> None:
    user = firm_a.user(Role.COMPLIANCE)
    response = obtain(APIClient(), user.username, "wrong")
    assert response.status_code == 400

    events = audit_actions(firm_a, "auth.login_failed")
    assert len(events) == 1
    assert events[0].object_id == str(user.pk)
    assert events[0].payload["username"] == user.username
    assert "wrong" not in str(events[0].payload), "the attempted password is never recorded"
    assert audit_actions(firm_b, "auth.login_failed") == []


def test_token_input_is_validated(firm_a: FirmWorld) -> None:
    client = APIClient()
    missing = client.post(TOKEN_URL, {"username": "x"}, format="json")
    assert missing.status_code == 400
    assert set(missing.json()["error"]["fields"]) == {"password"}

    unknown = client.post(
        TOKEN_URL, {"username": "x", "password": "y", "otp": "123"}, format="json"
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["fields"] == {"otp": ["Unknown field."]}

    nul = client.post(TOKEN_URL, {"username": "a\x00b", "password": "y"}, format="json")
    assert nul.status_code == 400
    assert "username" in nul.json()["error"]["fields"]


@pytest.fixture
def tight_auth_throttle(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/minute"})
    cache.clear()
    yield
    cache.clear()


@pytest.mark.usefixtures("tight_auth_throttle")
def test_token_endpoint_is_throttled_with_the_auth_rate(firm_a: FirmWorld) -> None:
    client = APIClient()
    for _ in range(3):
        assert obtain(client, "someone", "wrong").status_code == 400
    throttled = obtain(client, firm_a.user(Role.ADVISOR).username, PASSWORD)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert int(throttled.headers["Retry-After"]) > 0


def test_revoke_deletes_the_callers_token(firm_a: FirmWorld) -> None:
    user = firm_a.user(Role.FIRM_ADMIN)
    other = firm_a.user(Role.ADVISOR)
    headers = auth_headers(user)
    other_token = Token.objects.create(user=other)

    response = APIClient().post(REVOKE_URL, headers=headers)
    assert response.status_code == 204
    assert not Token.objects.filter(user=user).exists()
    assert Token.objects.filter(pk=other_token.pk).exists()
    assert len(audit_actions(firm_a, "auth.token_revoked")) == 1

    stale = APIClient().get(ME_URL, headers=headers)
    assert stale.status_code == 401
    assert stale.json()["error"]["code"] == "authentication_failed"


def test_session_authentication_works_and_uses_the_chosen_firm(
    firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    user = firm_a.user(Role.ADVISOR)
    with firm_context(firm_b.firm):
        Membership.objects.create(user=user, role=Role.INVESTOR)
    client = APIClient()
    client.force_login(user)

    unchosen = client.get(reverse("api:firm"))
    assert unchosen.status_code == 400
    assert unchosen.json()["error"]["code"] == "firm_required"

    session = client.session
    session["active_firm"] = firm_b.firm.slug
    session.save()
    chosen = client.get(reverse("api:firm"))
    assert chosen.status_code == 200
    assert chosen.json()["slug"] == firm_b.firm.slug
    assert client.get(ME_URL).json()["role"] == Role.INVESTOR

    header_wins = client.get(reverse("api:firm"), headers={"X-Firm": firm_a.firm.slug})
    assert header_wins.json()["slug"] == firm_a.firm.slug


def test_a_token_caller_never_inherits_the_session_users_firm(
    firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    """A browser signed in as one user sending another user's token acts as the token user."""
    token_user = firm_b.user(Role.INVESTOR)
    with firm_context(firm_a.firm):
        Membership.objects.create(user=token_user, role=Role.INVESTOR)
    client = APIClient()
    client.force_login(firm_a.user(Role.FIRM_ADMIN))  # FirmMiddleware picks alpha for them
    headers = auth_headers(token_user)

    me = client.get(ME_URL, headers=headers).json()
    assert (me["user"]["username"], me["firm"], me["role"]) == (token_user.username, None, None)
    firm = client.get(reverse("api:firm"), headers=headers)
    assert firm.status_code == 400
    assert firm.json()["error"]["code"] == "firm_required"
    members = client.get(reverse("api:firm-member-list"), headers=headers)
    assert members.status_code == 400


def test_api_authentication_replaces_the_firm_the_middleware_chose(
    firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    token_user = firm_b.user(Role.INVESTOR)
    with firm_context(firm_a.firm):
        Membership.objects.create(user=token_user, role=Role.INVESTOR)
    django_request = APIRequestFactory().get(ME_URL, headers=auth_headers(token_user))
    view = ApiView()
    request = view.initialize_request(django_request)
    context.set_current_firm(firm_a.firm)  # as FirmMiddleware does for a session user
    context.set_current_user_id(firm_a.user(Role.FIRM_ADMIN).pk)
    view.perform_authentication(request)
    assert context.current_firm() is None
    assert context.current_user_id() == token_user.pk


def test_session_writes_need_the_csrf_token(firm_a: FirmWorld) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(firm_a.user(Role.FIRM_ADMIN))
    response = client.patch(reverse("api:firm"), {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


@pytest.mark.parametrize("route", [r for r in api_routes() if not r.public], ids=lambda r: r.name)
def test_every_private_route_needs_authentication(route: Any, firm_a: FirmWorld) -> None:
    kwargs = object_kwargs(route, firm_a) if route.params else None
    url = reverse(route.name, kwargs=kwargs)
    for method in route.methods:
        anonymous = getattr(APIClient(), method)(url)
        assert anonymous.status_code == 401, (method, url, anonymous.content)
        assert anonymous.json()["error"]["code"] == "not_authenticated"
        assert anonymous.headers["WWW-Authenticate"] == "Token"
        bad = getattr(APIClient(), method)(url, headers={"Authorization": "Token " + "0" * 40})
        assert bad.status_code == 401
        assert bad.json()["error"]["code"] == "authentication_failed"
