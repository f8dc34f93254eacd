"""The client book and risk profiling through the API: permissions, bad input, flows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import (
    Client,
    Invitation,
    ProfileFlag,
    QuestionnaireResponse,
    RiskProfile,
    Role,
    User,
)
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, questionnaire_new_version
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from tests.accounts.book import Book, make_book
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
CONTRADICTORY = {
    **{q.code: q.options[-1].code for q in DEFAULT_QUESTIONS},
    "tol_fall_20": "sell_all",
}


@pytest.fixture
def book(firm_a: FirmWorld) -> Book:
    return make_book(firm_a)


@pytest.fixture
def questionnaire_id(book: Book) -> int:
    with firm_context(book.world.firm), transaction.atomic():
        return questionnaire_install_default().pk


def _count(book: Book, model: Any, **filters: Any) -> int:
    with firm_context(book.world.firm), transaction.atomic():
        return int(model.objects.filter(**filters).count())


def test_an_advisor_sees_only_their_households(book: Book, client_as: Callable[..., APIClient]):
    api = client_as(book.world.user(Role.ADVISOR))
    listed = api.get("/api/v1/households/").json()["results"]
    assert [h["name"] for h in listed] == [book.mine.name]
    assert api.get(f"/api/v1/households/{book.theirs.pk}/").status_code == 404
    assert api.get(f"/api/v1/clients/{book.other_client.pk}/").status_code == 404
    assert api.get(f"/api/v1/portfolios/{book.other_portfolio.pk}/").status_code == 404
    assert api.patch(f"/api/v1/households/{book.theirs.pk}/", {"name": "x"}).status_code == 404
    mine = api.get(f"/api/v1/households/{book.mine.pk}/").json()
    assert [a["username"] for a in mine["advisors"]] == [book.world.user(Role.ADVISOR).username]
    clients = api.get("/api/v1/clients/").json()["results"]
    assert [c["id"] for c in clients] == [book.client.pk]


def test_search_and_filters(book: Book, client_as: Callable[..., APIClient]):
    api = client_as(book.world.user(Role.FIRM_ADMIN))
    assert [c["first_name"] for c in api.get("/api/v1/clients/?q=otto").json()["results"]] == [
        "Otto"
    ]
    by_household = api.get(f"/api/v1/clients/?household={book.mine.pk}").json()["results"]
    assert [c["first_name"] for c in by_household] == ["Ines"]
    roth = api.get("/api/v1/portfolios/?account_type=roth_ira").json()["results"]
    assert [p["id"] for p in roth] == [book.other_portfolio.pk]


def test_compliance_reads_but_does_not_change(book: Book, client_as: Callable[..., APIClient]):
    api = client_as(book.world.user(Role.COMPLIANCE))
    assert len(api.get("/api/v1/households/").json()["results"]) == 2
    response = api.patch(f"/api/v1/clients/{book.client.pk}/", {"phone": "1"}, format="json")
    assert response.status_code == 403


def test_an_advisor_creates_a_household_and_is_assigned(
    book: Book, client_as: Callable[..., APIClient]
):
    api = client_as(book.other_advisor)
    created = api.post("/api/v1/households/", {"name": "New family"}, format="json")
    assert created.status_code == 201
    assert [a["username"] for a in created.json()["advisors"]] == [book.other_advisor.username]
    client = api.post(
        "/api/v1/clients/",
        {"household_id": created.json()["id"], "first_name": "Ana", "last_name": "New"},
        format="json",
    )
    assert client.status_code == 201, client.content
    portfolio = api.post(
        "/api/v1/portfolios/",
        {"client_id": client.json()["id"], "number": "NEW-1", "account_type": "traditional_ira"},
        format="json",
    )
    assert portfolio.status_code == 201, portfolio.content
    assert portfolio.json()["base_currency"] == "USD"
    # Not their household: refused as if it did not exist.
    refused = api.post(
        "/api/v1/clients/",
        {"household_id": book.mine.pk, "first_name": "X", "last_name": "Y"},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"household_id": ["no such household"]}


def test_firm_admin_sets_a_households_advisors(book: Book, client_as: Callable[..., APIClient]):
    api = client_as(book.world.user(Role.FIRM_ADMIN))
    url = f"/api/v1/households/{book.mine.pk}/advisors/"
    response = api.put(url, {"advisor_ids": [book.other_advisor.pk]}, format="json")
    assert response.status_code == 200
    assert [a["username"] for a in response.json()["advisors"]] == [book.other_advisor.username]
    advisor = client_as(book.world.user(Role.ADVISOR))
    assert advisor.get(f"/api/v1/households/{book.mine.pk}/").status_code == 404
    bad = api.put(url, {"advisor_ids": [book.world.user(Role.INVESTOR).pk]}, format="json")
    assert bad.status_code == 400


def test_invitation_through_the_api(
    book: Book, client_as: Callable[..., APIClient], django_capture_on_commit_callbacks
):
    with firm_context(book.world.firm), transaction.atomic():
        newcomer = Client.objects.create(
            household=book.mine, first_name="Nia", last_name="Newcomer", email="nia@example.test"
        )
    api = client_as(book.world.user(Role.ADVISOR))
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/clients/{newcomer.pk}/invitations/", {}, format="json")
    assert response.status_code == 201, response.content
    assert "token" not in response.json()
    (message,) = mail.outbox
    link = next(line for line in message.body.splitlines() if "/invitations/" in line)
    token = link.rstrip("/").rsplit("/", 1)[1]

    body = {"firm": book.world.firm.slug, "token": token, "username": "nia", "password": "pw"}
    weak = APIClient().post("/api/v1/invitations/accept/", body, format="json")
    assert weak.status_code == 400
    assert "password" in weak.json()["error"]["fields"]
    body["password"] = "a-long-passphrase-9"
    ok = APIClient().post("/api/v1/invitations/accept/", body, format="json")
    assert ok.status_code == 201, ok.content
    used = APIClient().post(
        "/api/v1/invitations/accept/", {**body, "username": "nia2"}, format="json"
    )
    assert used.status_code == 400
    assert used.json()["error"]["fields"] == {"token": ["this invitation has already been used"]}
    assert not User.objects.filter(username="nia2").exists()


def test_an_expired_invitation_answers_400(book: Book, client_as: Callable[..., APIClient]):
    with firm_context(book.world.firm), transaction.atomic():
        newcomer = Client.objects.create(
            household=book.mine, first_name="Old", last_name="Link", email="old@example.test"
        )
        from accounts.book_services import invitation_create

        invitation, token = invitation_create(client=newcomer, actor=None)
        Invitation.objects.filter(pk=invitation.pk).update(
            expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
    body = {"firm": book.world.firm.slug, "token": token, "username": "old", "password": "x" * 20}
    response = APIClient().post("/api/v1/invitations/accept/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"token": ["this invitation has expired"]}
    assert not User.objects.filter(username="old").exists()


def _start(api: APIClient, questionnaire_id: int, **extra: Any) -> Any:
    return api.post(
        "/api/v1/questionnaire-responses/",
        {"questionnaire_id": questionnaire_id, **extra},
        format="json",
    )


def test_an_investor_answers_saves_resumes_and_submits(
    book: Book, questionnaire_id: int, client_as: Callable[..., APIClient]
):
    api = client_as(book.world.user(Role.INVESTOR))
    started = _start(api, questionnaire_id)
    assert started.status_code == 201, started.content
    pk = started.json()["id"]
    half = dict(list(MODERATE.items())[:8])
    saved = api.patch(f"/api/v1/questionnaire-responses/{pk}/", {"answers": half}, format="json")
    assert saved.status_code == 200
    resumed = _start(api, questionnaire_id)
    assert resumed.status_code == 200
    assert resumed.json()["answers"] == half
    rest = dict(list(MODERATE.items())[8:])
    submitted = api.post(
        f"/api/v1/questionnaire-responses/{pk}/submit/", {"answers": rest}, format="json"
    )
    assert submitted.status_code == 201, submitted.content
    profile = submitted.json()
    assert 1 <= profile["risk_level"] <= 10
    assert profile["explanation"].startswith(f"Risk level {profile['risk_level']}")
    mine = api.get("/api/v1/risk-profiles/").json()["results"]
    assert [p["id"] for p in mine] == [profile["id"]]


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({k: v for k, v in MODERATE.items() if k != "cap_income"}, "answers.cap_income"),
        ({**MODERATE, "cap_income": "lottery"}, "answers.cap_income"),
        ({**MODERATE, "cap_income": ["stable"]}, "answers.cap_income"),
        ({**MODERATE, "nonsense": "x"}, "answers.nonsense"),
    ],
)
def test_bad_answers_answer_400_and_save_nothing(
    book: Book, questionnaire_id: int, client_as: Callable[..., APIClient], answers, field
):
    api = client_as(book.world.user(Role.INVESTOR))
    pk = _start(api, questionnaire_id).json()["id"]
    events = _count(book, AuditEvent)
    response = api.post(
        f"/api/v1/questionnaire-responses/{pk}/submit/", {"answers": answers}, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert _count(book, RiskProfile) == 0
    assert _count(book, QuestionnaireResponse, pk=pk, answers={}) == 1
    assert _count(book, AuditEvent) == events


def test_unpublished_and_foreign_questionnaires_are_refused(
    book: Book, questionnaire_id: int, firm_b: FirmWorld, client_as: Callable[..., APIClient]
):
    with firm_context(book.world.firm), transaction.atomic():
        draft = questionnaire_new_version(source=questionnaire_install_default(), actor=None).pk
    with firm_context(firm_b.firm), transaction.atomic():
        foreign = questionnaire_install_default().pk
    api = client_as(book.world.user(Role.INVESTOR))
    for pk in (draft, foreign, 9 * 10**12):
        response = _start(api, pk)
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {
            "questionnaire_id": ["no such published questionnaire"]
        }
    assert _count(book, QuestionnaireResponse) == 0


def test_an_investor_cannot_read_another_investors_profile(
    book: Book, questionnaire_id: int, client_as: Callable[..., APIClient]
):
    other = client_as(book.other_investor)
    pk = _start(other, questionnaire_id).json()["id"]
    profile = other.post(
        f"/api/v1/questionnaire-responses/{pk}/submit/", {"answers": MODERATE}, format="json"
    ).json()
    api = client_as(book.world.user(Role.INVESTOR))
    assert api.get(f"/api/v1/risk-profiles/{profile['id']}/").status_code == 404
    assert api.get(f"/api/v1/questionnaire-responses/{pk}/").status_code == 404
    assert api.get("/api/v1/risk-profiles/").json()["results"] == []
    # Nor answer for them.
    assert _start(api, questionnaire_id, client_id=book.other_client.pk).status_code == 400
    # The other investor's advisor sees it; this advisor does not.
    assert (
        client_as(book.other_advisor).get(f"/api/v1/risk-profiles/{profile['id']}/").status_code
        == 200
    )
    assert (
        client_as(book.world.user(Role.ADVISOR))
        .get(f"/api/v1/risk-profiles/{profile['id']}/")
        .status_code
        == 404
    )


def test_an_advisor_resolves_a_flag_with_a_note(
    book: Book, questionnaire_id: int, client_as: Callable[..., APIClient]
):
    advisor = client_as(book.world.user(Role.ADVISOR))
    pk = _start(advisor, questionnaire_id, client_id=book.client.pk).json()["id"]
    profile = advisor.post(
        f"/api/v1/questionnaire-responses/{pk}/submit/", {"answers": CONTRADICTORY}, format="json"
    ).json()
    (flag,) = [f for f in profile["flags"] if f["code"] == "sell_after_fall_vs_max_growth"]
    flagged = advisor.get("/api/v1/risk-profiles/?flagged=true").json()["results"]
    assert [p["id"] for p in flagged] == [profile["id"]]
    url = f"/api/v1/profile-flags/{flag['id']}/resolve/"
    assert advisor.post(url, {"note": ""}, format="json").status_code == 400
    other = client_as(book.other_advisor).post(url, {"note": "mine now"}, format="json")
    assert other.status_code == 404
    done = advisor.post(url, {"note": "Client confirmed a long horizon."}, format="json")
    assert done.status_code == 200
    assert done.json()["resolved_by"] == book.world.user(Role.ADVISOR).username
    assert _count(book, ProfileFlag, pk=flag["id"], resolved_at__isnull=False) == 1


def test_a_published_questionnaire_cannot_be_edited_through_the_api(
    book: Book, questionnaire_id: int, client_as: Callable[..., APIClient]
):
    admin = client_as(book.world.user(Role.FIRM_ADMIN))
    url = f"/api/v1/questionnaires/{questionnaire_id}/"
    before = admin.get(url).json()
    response = admin.patch(url, {"name": "Sneaky"}, format="json")
    assert response.status_code == 400
    assert "cannot be edited" in response.json()["error"]["message"] + str(
        response.json()["error"]["fields"]
    )
    assert admin.get(url).json() == before
    draft = admin.post(f"/api/v1/questionnaires/{questionnaire_id}/new-version/").json()
    assert draft["version"] == 2
    assert draft["status"] == "draft"
    renamed = admin.patch(f"/api/v1/questionnaires/{draft['id']}/", {"name": "V2"}, format="json")
    assert renamed.status_code == 200
    published = admin.post(f"/api/v1/questionnaires/{draft['id']}/publish/")
    assert published.json()["status"] == "published"
    assert admin.get(url).json()["status"] == "superseded"
    investor = client_as(book.world.user(Role.INVESTOR))
    assert investor.get(f"/api/v1/questionnaires/{draft['id']}/").status_code == 200
    statistics = admin.get(f"/api/v1/questionnaires/{questionnaire_id}/statistics/").json()
    assert statistics["enough_responses"] is False
    assert set(statistics["risk_levels"]) == {str(n) for n in range(1, 11)}


def test_households_are_searchable(book: Book, client_as: Callable[..., APIClient]):
    api = client_as(book.world.user(Role.FIRM_ADMIN))
    found = api.get("/api/v1/households/?q=theirs").json()["results"]
    assert [h["id"] for h in found] == [book.theirs.pk]
