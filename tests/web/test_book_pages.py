"""The client-book and risk-profile pages through Django's test client."""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.test import Client as WebClient

from accounts.models import (
    AnswerOption,
    ModelPortfolio,
    ProfileFlag,
    Question,
    Questionnaire,
    RiskProfile,
    Role,
    StrategyAssignment,
    User,
)
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.strategy_services import model_portfolios_install_default
from accounts.tenancy import firm_context
from tests.accounts.book import Book, make_book

from .helpers import html

pytestmark = pytest.mark.django_db

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
CONTRADICTORY = {
    **{q.code: q.options[-1].code for q in DEFAULT_QUESTIONS},
    "tol_fall_20": "sell_all",
}


@pytest.fixture
def book(firm_a) -> Book:
    book = make_book(firm_a)
    with firm_context(firm_a.firm), transaction.atomic():
        questionnaire_install_default()
        model_portfolios_install_default()
    return book


def web(user: User) -> WebClient:
    client = WebClient()
    client.force_login(user)
    return client


def _profile(book: Book, client, answers) -> RiskProfile:
    with firm_context(book.world.firm), transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=client, questionnaire=questionnaire, actor=None)
        return response_submit(response=response, actor=None, answers=answers)


def test_the_book_shows_only_the_advisors_households(book: Book):
    _profile(book, book.client, CONTRADICTORY)
    page = html(web(book.world.user(Role.ADVISOR)).get("/clients/"))
    assert "Ines" in page
    assert "Otto" not in page
    assert 'class="badge status-flagged">' in page
    other = web(book.world.user(Role.ADVISOR)).get(f"/clients/{book.other_client.pk}/")
    assert other.status_code == 404
    assert web(book.other_advisor).get(f"/clients/{book.client.pk}/").status_code == 404


def test_search_and_filters_in_the_book(book: Book):
    _profile(book, book.other_client, MODERATE)
    admin = web(book.world.user(Role.FIRM_ADMIN))
    assert "Otto" not in html(admin.get("/clients/?q=ines"))
    partial = admin.get("/clients/?status=none", headers={"HX-Request": "true"})
    assert "<html" not in html(partial)
    assert "Ines" in html(partial)
    assert "Otto" not in html(partial)
    assert "Otto" in html(admin.get("/clients/?status=current"))
    assert "Ines" not in html(admin.get("/clients/?status=current"))


def test_investors_and_compliance_reach_only_their_pages(book: Book):
    investor = web(book.world.user(Role.INVESTOR))
    assert investor.get("/clients/").status_code == 404
    assert investor.get("/firm/questionnaires/").status_code == 404
    assert web(book.world.user(Role.ADVISOR)).get("/risk-profile/").status_code == 404
    compliance = web(book.world.user(Role.COMPLIANCE))
    assert compliance.get(f"/clients/{book.other_client.pk}/").status_code == 200
    response = compliance.post(
        f"/clients/{book.client.pk}/strategy/", {"action": "map"}, follow=False
    )
    assert response.status_code == 404  # reads the firm, changes nothing


def _post_step(client: WebClient, step: int, answers: dict[str, str], action: str = "next"):
    data = {f"q_{k}": v for k, v in answers.items()}
    return client.post(
        f"/risk-profile/questionnaire/?step={step}", {**data, "step": step, "action": action}
    )


def test_an_investor_answers_step_by_step_and_resumes(book: Book):
    investor = web(book.world.user(Role.INVESTOR))
    start = html(investor.get("/risk-profile/"))
    assert "Start the questionnaire" in start
    first = html(investor.get("/risk-profile/questionnaire/"))
    assert 'Step <span data-testid="step-number">1</span> of 5' in first
    codes = re.findall(r'data-question="(\w+)"', first)
    assert codes == [q.code for q in DEFAULT_QUESTIONS[:5]]
    incomplete = _post_step(investor, 0, {codes[0]: MODERATE[codes[0]]})
    assert incomplete.status_code == 200
    assert "Please answer every question" in html(incomplete)
    done = _post_step(investor, 0, {c: MODERATE[c] for c in codes})
    assert done.status_code == 302
    assert done["Location"].endswith("?step=1")
    saved = _post_step(investor, 1, {DEFAULT_QUESTIONS[5].code: "maybe"}, action="save")
    assert saved["Location"] == "/risk-profile/"
    assert "Continue the questionnaire" in html(investor.get("/risk-profile/"))
    # Resuming lands on the first step with an unanswered question, answers kept.
    resumed = html(investor.get("/risk-profile/questionnaire/"))
    assert 'Step <span data-testid="step-number">2</span> of 5' in resumed
    assert 'value="maybe" checked' in resumed
    for step in range(1, 5):
        page = html(investor.get(f"/risk-profile/questionnaire/?step={step}"))
        step_codes = re.findall(r'data-question="(\w+)"', page)
        action = "submit" if step == 4 else "next"
        response = _post_step(investor, step, {c: MODERATE[c] for c in step_codes}, action)
        assert response.status_code == 302, html(response)
    result = html(investor.get("/risk-profile/"))
    with firm_context(book.world.firm), transaction.atomic():
        profile = RiskProfile.objects.get(client=book.client)
    assert f'data-testid="risk-level">{profile.risk_level}<' in result
    assert "In a bad year" in result
    assert profile.risk_level == 4  # moderate answers: Balanced, a bad year about -15%
    assert "fall by about <strong>15%</strong>" in result
    assert "roughly <strong>$15,000</strong> less" in result
    assert "Your attitude to risk (2 of 2)" in html(
        investor.get("/risk-profile/questionnaire/?step=1")
    )


def test_a_flagged_profile_is_resolved_and_overridden_on_the_client_page(book: Book):
    profile = _profile(book, book.client, CONTRADICTORY)
    advisor = web(book.world.user(Role.ADVISOR))
    url = f"/clients/{book.client.pk}/"
    mapped = advisor.post(f"{url}strategy/", {"action": "map"}, follow=True)
    assert "open consistency flags" in html(mapped)
    with firm_context(book.world.firm), transaction.atomic():
        flags = list(ProfileFlag.objects.filter(profile=profile))
        preservation = ModelPortfolio.objects.get(name="Capital preservation").pk
    for flag in flags:
        response = advisor.post(f"{url}flags/{flag.pk}/resolve/", {"note": "Talked it through."})
        assert response.status_code == 302
    assert "Strategy mapped" in html(
        advisor.post(f"{url}strategy/", {"action": "map"}, follow=True)
    )
    no_reason = advisor.post(
        f"{url}strategy/", {"action": "override", "model_portfolio": preservation}, follow=True
    )
    assert "needs a rationale" in html(no_reason)
    pending = advisor.post(
        f"{url}strategy/",
        {"action": "override", "model_portfolio": preservation, "rationale": "Buying a home"},
        follow=True,
    )
    assert "waiting for compliance approval" in html(pending)
    compliance = web(book.world.user(Role.COMPLIANCE))
    assert "Buying a home" in html(compliance.get("/strategy-approvals/"))
    with firm_context(book.world.firm), transaction.atomic():
        assignment = StrategyAssignment.objects.get(status="pending_approval")
    decided = compliance.post(
        f"{url}assignments/{assignment.pk}/decide/", {"decision": "approve", "note": "ok"}
    )
    assert decided.status_code == 302
    with firm_context(book.world.firm), transaction.atomic():
        assert StrategyAssignment.objects.get(pk=assignment.pk).status == "active"


def test_firm_admin_edits_a_draft_but_not_a_published_version(book: Book):
    admin = web(book.world.user(Role.FIRM_ADMIN))
    with firm_context(book.world.firm), transaction.atomic():
        published = Questionnaire.objects.get(status="published")
    page = html(admin.get(f"/firm/questionnaires/{published.pk}/"))
    assert "this version is immutable" in page
    refused = admin.post(
        f"/firm/questionnaires/{published.pk}/", {"text_tol_job": "Changed?"}, follow=True
    )
    assert "cannot be edited" in html(refused)
    created = admin.post("/firm/questionnaires/", {"action": "new_version", "source": published.pk})
    assert created.status_code == 302
    draft_url = created["Location"]
    saved = admin.post(
        draft_url, {"text_tol_job": "A new job offer: what do you do?", "score_tol_job_accept": "5"}
    )
    assert saved.status_code == 302
    admin.post(draft_url, {"action": "publish"})
    with firm_context(book.world.firm), transaction.atomic():
        v2 = Questionnaire.objects.get(status="published")
        question = Question.objects.get(questionnaire=v2, code="tol_job")
        assert question.text == "A new job offer: what do you do?"
        assert AnswerOption.objects.get(question=question, code="accept").score == 5
        v1_question = Question.objects.get(questionnaire=published, code="tol_job")
        assert v1_question.text != question.text
    assert v2.version == 2


def test_firm_admin_edits_the_mapping(book: Book):
    admin = web(book.world.user(Role.FIRM_ADMIN))
    with firm_context(book.world.firm), transaction.atomic():
        growth = ModelPortfolio.objects.get(name="Growth").pk
    assert admin.post("/firm/strategy-mapping/", {"level_5": growth}).status_code == 302
    page = html(admin.get("/firm/strategy-mapping/"))
    assert re.search(
        rf'name="level_5".*?<option value="model_portfolio:{growth}" selected', page, re.S
    )


def test_the_invitation_page_names_a_used_or_unknown_link(book: Book):
    response = WebClient().get(f"/invitations/{book.world.firm.slug}/nonsense/")
    assert response.status_code == 400
    assert "this invitation does not exist" in html(response)
    assert WebClient().get("/invitations/no-such-firm/x/").status_code == 404


def test_an_advisor_invites_and_the_client_signs_up(book: Book, django_capture_on_commit_callbacks):
    with firm_context(book.world.firm), transaction.atomic():
        from accounts.book_services import client_create

        newcomer = client_create(
            household=book.mine,
            actor=None,
            first_name="Nia",
            last_name="Newcomer",
            email="nia@example.test",
        )
    advisor = web(book.world.user(Role.ADVISOR))
    page = html(advisor.get(f"/clients/{newcomer.pk}/"))
    assert "Invite Nia to sign up" in page
    with django_capture_on_commit_callbacks(execute=True):
        sent = advisor.post(f"/clients/{newcomer.pk}/invite/", follow=True)
    assert "Invitation sent to nia@example.test" in html(sent)
    from django.core import mail

    (message,) = mail.outbox
    link = next(line for line in message.body.splitlines() if "/invitations/" in line)
    path = link[link.index("/invitations/") :]
    anonymous = WebClient()
    assert "Choose a username and a password for nia@example.test" in html(anonymous.get(path))
    weak = anonymous.post(path, {"username": "nia", "password": "short"})
    assert weak.status_code == 200
    assert "_auth_user_id" not in anonymous.session  # refused: nobody is signed in
    signed_up = anonymous.post(path, {"username": "nia", "password": "a-long-passphrase-9"})
    assert signed_up.status_code == 302
    # Signed in at once, and straight into onboarding: the questionnaire.
    assert signed_up["Location"] == "/risk-profile/questionnaire/"
    onboarding = anonymous.get(signed_up["Location"])
    assert onboarding.status_code == 200
    assert "Your account is ready" in html(onboarding)
    assert 'name="q_' in html(onboarding)  # the first step's questions
    with firm_context(book.world.firm), transaction.atomic():
        from accounts.models import Client
        from compliance.models import AuditEvent

        nia_user = Client.objects.get(pk=newcomer.pk).user
        assert nia_user is not None
        assert nia_user.username == "nia"
        (login_event,) = AuditEvent.objects.filter(action="auth.login", actor=nia_user)
        assert login_event.object_id == str(nia_user.pk)
        accepted = AuditEvent.objects.get(action="invitation.accepted")
        assert accepted.seq < login_event.seq
    # The link is used up, for them and for anyone else.
    again = anonymous.get(path)
    assert again.status_code == 400
    assert "already been used" in html(again)
    assert WebClient().get(path).status_code == 400
    # The password they chose works for later visits.
    nia = WebClient()
    assert nia.login(username="nia", password="a-long-passphrase-9")
    assert "Start the questionnaire" in html(nia.get("/risk-profile/"))


def test_an_advisor_adds_a_client_and_opens_a_portfolio(book: Book):
    advisor = web(book.other_advisor)
    added = advisor.post(
        "/clients/new/",
        {"first_name": "Zoe", "last_name": "Zed", "new_household": "Zed family"},
        follow=True,
    )
    assert "Zoe Zed added" in html(added)
    with firm_context(book.world.firm), transaction.atomic():
        from accounts.models import Client

        zoe = Client.objects.get(first_name="Zoe")
    assert web(book.world.user(Role.ADVISOR)).get(f"/clients/{zoe.pk}/").status_code == 404
    opened = advisor.post(
        f"/clients/{zoe.pk}/portfolios/",
        {"number": "ZED-1", "account_type": "roth_ira", "discretionary": "on"},
        follow=True,
    )
    assert "Portfolio ZED-1 opened" in html(opened)
    duplicate = advisor.post(
        f"/clients/{zoe.pk}/portfolios/",
        {"number": "ZED-1", "account_type": "roth_ira"},
        follow=True,
    )
    assert "a portfolio with this number exists" in html(duplicate)
    # Not their household, and a bad date: refused with the reason, nothing saved.
    refused = advisor.post(
        "/clients/new/",
        {"first_name": "X", "last_name": "Y", "household": str(book.mine.pk)},
        follow=True,
    )
    assert "choose one of your households" in html(refused)
    bad_date = advisor.post(
        "/clients/new/",
        {"first_name": "X", "last_name": "Y", "new_household": "Y", "date_of_birth": "2020-13-45"},
        follow=True,
    )
    assert "enter a date as YYYY-MM-DD" in html(bad_date)
    with firm_context(book.world.firm), transaction.atomic():
        from accounts.models import Client, Household

        assert not Client.objects.filter(first_name="X").exists()
        assert not Household.objects.filter(name="Y").exists()
    assert web(book.world.user(Role.INVESTOR)).post("/clients/new/", {}).status_code == 404


def test_firm_admin_assigns_advisors_on_the_client_page(book: Book):
    admin = web(book.world.user(Role.FIRM_ADMIN))
    url = f"/clients/{book.client.pk}/"
    assert 'data-testid="household-advisors"' in html(admin.get(url))
    saved = admin.post(f"{url}advisors/", {"advisor": [str(book.other_advisor.pk)]}, follow=True)
    assert "Advisors of the household saved" in html(saved)
    assert web(book.world.user(Role.ADVISOR)).get(url).status_code == 404
    assert web(book.other_advisor).get(url).status_code == 200
    assert web(book.other_advisor).post(f"{url}advisors/", {}).status_code == 404


def test_firm_admin_adds_and_removes_questions_in_a_draft(book: Book):
    admin = web(book.world.user(Role.FIRM_ADMIN))
    with firm_context(book.world.firm), transaction.atomic():
        published = Questionnaire.objects.get(status="published")
    draft_url = admin.post(
        "/firm/questionnaires/", {"action": "new_version", "source": published.pk}
    )["Location"]
    bad = admin.post(
        draft_url,
        {"new_text": "How do you feel?", "new_dimension": "tolerance", "new_options": "Fine"},
        follow=True,
    )
    assert "write it as" in html(bad)
    too_few = admin.post(
        draft_url,
        {"new_text": "How do you feel?", "new_dimension": "tolerance", "new_options": "Fine = 1"},
        follow=True,
    )
    assert "at least two options" in html(too_few)
    saved = admin.post(
        draft_url,
        {
            "remove_tol_word": "on",
            "new_text": "How do you feel about a 10% fall?",
            "new_code": "tol_ten",
            "new_dimension": "tolerance",
            "new_options": "Worried = 1\nCalm = 3\n",
        },
        follow=True,
    )
    assert "Draft saved" in html(saved)
    with firm_context(book.world.firm), transaction.atomic():
        draft = Questionnaire.objects.get(status="draft")
        codes = list(
            Question.objects.filter(questionnaire=draft)
            .order_by("position")
            .values_list("code", flat=True)
        )
        assert "tol_word" not in codes
        assert codes[-1] == "tol_ten"
        options = AnswerOption.objects.filter(
            question__questionnaire=draft, question__code="tol_ten"
        )
        assert sorted(options.values_list("text", "score")) == [("Calm", 3), ("Worried", 1)]
        # The published version is untouched.
        assert Question.objects.filter(questionnaire=published, code="tol_word").exists()


def test_firm_admin_adds_a_model_portfolio(book: Book):
    admin = web(book.world.user(Role.FIRM_ADMIN))
    form = {
        "action": "new_portfolio",
        "name": "Income tilt",
        "bad_year": "12",
        "min_risk_level": "3",
        "max_risk_level": "5",
        "weight_us_bonds": "60",
        "weight_us_equity": "30",
    }
    short = admin.post("/firm/strategy-mapping/", form, follow=True)
    assert "the weights must add up to 1" in html(short)
    added = admin.post("/firm/strategy-mapping/", {**form, "weight_intl_equity": "10"}, follow=True)
    assert "Model portfolio Income tilt added" in html(added)
    with firm_context(book.world.firm), transaction.atomic():
        created = ModelPortfolio.objects.get(name="Income tilt")
    assert created.weights == {"us_bonds": "0.6", "us_equity": "0.3", "intl_equity": "0.1"}
    assert str(created.bad_year_return) == "-0.1200"
    assert (created.min_risk_level, created.max_risk_level) == (3, 5)
    assert "Income tilt" in html(admin.get("/firm/strategy-mapping/"))
