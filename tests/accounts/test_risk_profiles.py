"""Questionnaire versions, answering, scoring into profiles, flags and expiry."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction

from accounts.models import (
    AnswerOption,
    ProfileFlag,
    ProfileStatus,
    Question,
    Questionnaire,
    QuestionnaireResponse,
    QuestionnaireStatus,
    ResponseStatus,
    RiskProfile,
)
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.profiling.scoring import FLAG_SELL_VS_GROWTH
from accounts.risk_services import (
    profile_flag_resolve,
    questionnaire_install_default,
    questionnaire_new_version,
    questionnaire_publish,
    questionnaire_update_draft,
    response_save,
    response_start,
    response_submit,
    risk_profile_rescore,
    risk_profiles_mark_stale,
)
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from tests.accounts.book import Book, make_book

pytestmark = pytest.mark.django_db

# Middle-of-the-road answers: every question's second option.
MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
# The most aggressive answer to every question.
BOLD = {q.code: q.options[-1].code for q in DEFAULT_QUESTIONS}


@pytest.fixture
def book(firm_a) -> Book:
    return make_book(firm_a)


@pytest.fixture
def in_firm(book):
    with firm_context(book.world.firm), transaction.atomic():
        yield book


def test_the_default_questionnaire_is_installed_once_and_published(in_firm):
    first = questionnaire_install_default()
    again = questionnaire_install_default()
    assert first.pk == again.pk
    assert first.status == QuestionnaireStatus.PUBLISHED
    assert first.version == 1
    questions = Question.objects.filter(questionnaire=first)
    assert questions.count() == len(DEFAULT_QUESTIONS)
    assert questions.filter(dimension="tolerance").count() == 10


def test_submitting_scores_a_profile_with_audit(in_firm):
    questionnaire = questionnaire_install_default()
    response = response_start(client=in_firm.client, questionnaire=questionnaire, actor=None)
    profile = response_submit(response=response, actor=None, answers=BOLD)
    assert profile.risk_level == 10
    assert profile.binding == ["tolerance", "capacity", "horizon"]
    assert profile.status == ProfileStatus.CURRENT
    assert not ProfileFlag.objects.filter(profile=profile).exists()
    event = AuditEvent.objects.get(action="risk_profile.created")
    assert event.payload["answers"] == BOLD
    assert event.payload["risk_level"] == 10
    assert event.reasons[0] == profile.explanation


def test_contradictions_are_flagged_and_resolved_with_a_note(in_firm):
    questionnaire = questionnaire_install_default()
    answers = {**BOLD, "tol_fall_20": "sell_all", "cap_emergency": "none"}
    response = response_start(client=in_firm.client, questionnaire=questionnaire, actor=None)
    profile = response_submit(response=response, actor=None, answers=answers)
    codes = set(ProfileFlag.objects.filter(profile=profile).values_list("code", flat=True))
    assert codes == {FLAG_SELL_VS_GROWTH, "high_tolerance_no_emergency_fund"}
    flag = ProfileFlag.objects.get(profile=profile, code=FLAG_SELL_VS_GROWTH)
    with pytest.raises(ValidationError, match="needs a note"):
        profile_flag_resolve(flag=flag, actor=None, note="  ")
    resolved = profile_flag_resolve(flag=flag, actor=None, note="Talked it through: long term.")
    assert resolved.resolved_at is not None
    with pytest.raises(ValidationError, match="already resolved"):
        profile_flag_resolve(flag=resolved, actor=None, note="again")
    assert AuditEvent.objects.filter(action="risk_profile.flag_resolved").count() == 1


def test_a_new_profile_supersedes_the_previous_one(in_firm):
    questionnaire = questionnaire_install_default()
    first = response_submit(
        response=response_start(client=in_firm.client, questionnaire=questionnaire, actor=None),
        actor=None,
        answers=MODERATE,
    )
    second = response_submit(
        response=response_start(client=in_firm.client, questionnaire=questionnaire, actor=None),
        actor=None,
        answers=BOLD,
    )
    assert RiskProfile.objects.get(pk=first.pk).status == ProfileStatus.SUPERSEDED
    assert RiskProfile.objects.get(pk=second.pk).status == ProfileStatus.CURRENT


def test_save_and_resume_keeps_partial_answers(in_firm):
    questionnaire = questionnaire_install_default()
    response = response_start(client=in_firm.client, questionnaire=questionnaire, actor=None)
    half = dict(list(MODERATE.items())[:5])
    response_save(response=response, answers=half, actor=None)
    resumed = response_start(client=in_firm.client, questionnaire=questionnaire, actor=None)
    assert resumed.pk == response.pk
    assert resumed.answers == half
    rest = dict(list(MODERATE.items())[5:])
    profile = response_submit(response=resumed, actor=None, answers=rest)
    assert QuestionnaireResponse.objects.get(pk=response.pk).answers == MODERATE
    assert profile.risk_level >= 1


@pytest.mark.parametrize(
    ("answers", "field", "message"),
    [
        ({k: v for k, v in MODERATE.items() if k != "tol_job"}, "answers.tol_job", "not answered"),
        ({**MODERATE, "tol_job": "yolo"}, "answers.tol_job", "is not one of the options"),
        ({**MODERATE, "tol_job": 3}, "answers.tol_job", "is not one of the options"),
        ({**MODERATE, "made_up": "x"}, "answers.made_up", "no such question"),
    ],
)
def test_bad_answers_are_refused_and_nothing_is_saved(in_firm, answers, field, message):
    questionnaire = questionnaire_install_default()
    response = response_start(client=in_firm.client, questionnaire=questionnaire, actor=None)
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as caught:
        response_submit(response=response, actor=None, answers=answers)
    assert message in " ".join(caught.value.message_dict[field])
    assert not RiskProfile.objects.exists()
    assert QuestionnaireResponse.objects.get(pk=response.pk).status == ResponseStatus.IN_PROGRESS
    assert AuditEvent.objects.count() == events


def test_a_draft_cannot_be_answered(in_firm):
    questionnaire = questionnaire_install_default()
    draft = questionnaire_new_version(source=questionnaire, actor=None)
    with pytest.raises(ValidationError, match="not published"):
        response_start(client=in_firm.client, questionnaire=draft, actor=None)


def test_answers_to_version_1_score_the_same_after_version_2(in_firm):
    v1 = questionnaire_install_default()
    profile = response_submit(
        response=response_start(client=in_firm.client, questionnaire=v1, actor=None),
        actor=None,
        answers=MODERATE,
    )
    before = risk_profile_rescore(profile=profile)

    v2 = questionnaire_new_version(source=v1, actor=None)
    specs = list(DEFAULT_QUESTIONS)
    # Version 2 rescales every tolerance option (and drops a question).
    from dataclasses import replace

    specs = [
        replace(q, options=tuple(replace(o, score=o.score * 10) for o in q.options))
        if q.dimension == "tolerance"
        else q
        for q in specs
        if q.code != "tol_word"
    ]
    questionnaire_update_draft(questionnaire=v2, actor=None, questions=specs)
    questionnaire_publish(questionnaire=v2, actor=None)
    assert Questionnaire.objects.get(pk=v1.pk).status == QuestionnaireStatus.SUPERSEDED
    assert v2.version == 2

    after = risk_profile_rescore(profile=profile)
    assert after == before
    assert after.risk_level == profile.risk_level
    assert after.tolerance_score == profile.tolerance_score


def _published_rows(in_firm):
    questionnaire = questionnaire_install_default()
    question = Question.objects.filter(questionnaire=questionnaire).first()
    option = AnswerOption.objects.filter(question=question).first()
    assert question is not None
    assert option is not None
    return questionnaire, question, option


def _attempt(change: str, questionnaire, question, option) -> None:
    if change == "questionnaire_name":
        questionnaire.name = "Changed"
        questionnaire.save()
    elif change == "questionnaire_delete":
        Questionnaire.objects.filter(pk=questionnaire.pk).delete()
    elif change == "question_text":
        Question.objects.filter(pk=question.pk).update(text="Changed?")
    elif change == "question_delete":
        question.delete()
    elif change == "question_insert":
        Question.objects.create(
            questionnaire=questionnaire, position=99, code="new", dimension="goals", text="?"
        )
    elif change == "option_score":
        option.score = 99
        option.save()
    elif change == "option_delete":
        AnswerOption.objects.filter(pk=option.pk).delete()
    elif change == "option_insert":
        AnswerOption.objects.create(question=question, position=9, code="z", text="z", score=1)
    elif change == "raw_sql":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE accounts_answeroption SET score = 42 WHERE id = %s", [option.pk])
    elif change == "back_to_draft":
        Questionnaire.objects.filter(pk=questionnaire.pk).update(status="draft")


CHANGES = [
    "questionnaire_name",
    "questionnaire_delete",
    "question_text",
    "question_delete",
    "question_insert",
    "option_score",
    "option_delete",
    "option_insert",
    "raw_sql",
    "back_to_draft",
]


@pytest.mark.parametrize("change", CHANGES)
def test_a_published_version_cannot_be_edited_through_any_path(in_firm, change):
    rows = _published_rows(in_firm)
    with pytest.raises((IntegrityError, DatabaseError), match="published"), transaction.atomic():
        _attempt(change, *rows)


@pytest.mark.parametrize("change", CHANGES)
def test_a_draft_version_can_be_edited(in_firm, change):
    v1 = questionnaire_install_default()
    draft = questionnaire_new_version(source=v1, actor=None)
    question = Question.objects.filter(questionnaire=draft).first()
    option = AnswerOption.objects.filter(question=question).first()
    with transaction.atomic():
        _attempt(change, draft, question, option)


def test_the_service_refuses_to_edit_a_published_version(in_firm):
    questionnaire = questionnaire_install_default()
    with pytest.raises(ValidationError, match="cannot be edited"):
        questionnaire_update_draft(questionnaire=questionnaire, actor=None, name="New name")
    with pytest.raises(ValidationError, match="cannot be edited"):
        questionnaire_publish(questionnaire=questionnaire, actor=None)


def test_publishing_needs_every_scored_dimension(in_firm):
    v1 = questionnaire_install_default()
    draft = questionnaire_new_version(source=v1, actor=None)
    no_horizon = [q for q in DEFAULT_QUESTIONS if q.dimension != "horizon"]
    questionnaire_update_draft(questionnaire=draft, actor=None, questions=no_horizon)
    with pytest.raises(ValidationError, match="needs horizon questions"):
        questionnaire_publish(questionnaire=draft, actor=None)


def test_expired_profiles_turn_stale_and_are_announced(in_firm):
    questionnaire = questionnaire_install_default()
    profile = response_submit(
        response=response_start(client=in_firm.client, questionnaire=questionnaire, actor=None),
        actor=None,
        answers=MODERATE,
    )
    assert profile.valid_until == dt.date(
        profile.created_at.year + 1, profile.created_at.month, profile.valid_until.day
    )
    assert risk_profiles_mark_stale(today=profile.valid_until) == []
    later = profile.valid_until + dt.timedelta(days=1)
    assert risk_profiles_mark_stale(today=later) == [profile.pk]
    assert RiskProfile.objects.get(pk=profile.pk).status == ProfileStatus.STALE
    event = AuditEvent.objects.get(action="risk_profile.expired")
    assert event.payload["notify"] == ["client", "advisor"]
    assert risk_profiles_mark_stale(today=later) == []


def test_the_firm_setting_sets_validity(in_firm):
    firm = in_firm.world.firm
    firm.settings = {**firm.settings, "risk_profile_valid_months": 3}
    firm.save()
    questionnaire = questionnaire_install_default()
    profile = response_submit(
        response=response_start(client=in_firm.client, questionnaire=questionnaire, actor=None),
        actor=None,
        answers=MODERATE,
    )
    months = (profile.valid_until.year - profile.created_at.year) * 12 + (
        profile.valid_until.month - profile.created_at.month
    )
    assert months == 3


def test_statistics_of_a_version_with_enough_responses(in_firm):
    from accounts.book_services import client_create
    from accounts.profiling.psychometrics import cronbach_alpha
    from accounts.risk_selectors import questionnaire_statistics

    questionnaire = questionnaire_install_default()
    rows = []
    for n in range(12):
        client = client_create(
            household=in_firm.mine, actor=None, first_name=f"C{n}", last_name="X"
        )
        # Respondent n picks option (n + i) % k on tolerance item i: varied, partly consistent.
        answers = {}
        for index, question in enumerate(DEFAULT_QUESTIONS):
            pick = (n // 3 + (index % 2) * (n % 2)) % len(question.options)
            answers[question.code] = question.options[pick].code
        rows.append(
            [
                q.options[[o.code for o in q.options].index(answers[q.code])].score
                for q in DEFAULT_QUESTIONS
                if q.dimension == "tolerance"
            ]
        )
        response = response_start(client=client, questionnaire=questionnaire, actor=None)
        response_submit(response=response, actor=None, answers=answers)
    statistics = questionnaire_statistics(questionnaire=questionnaire)
    assert statistics.responses == 12
    assert statistics.enough_responses
    assert statistics.tolerance is not None
    assert statistics.tolerance.alpha == pytest.approx(cronbach_alpha(rows))
    assert len(statistics.tolerance.item_statistics) == 10
    assert sum(statistics.risk_levels.values()) == 12


def test_the_expiry_task_runs_per_firm(book, firm_b):
    from unittest import mock

    from accounts.tasks import risk_profiles_expire, risk_profiles_expire_all

    with firm_context(book.world.firm), transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        profile = response_submit(
            response=response, actor=None, answers=MODERATE, answered_on=dt.date(2000, 1, 1)
        )
    assert risk_profiles_expire.delay(firm_id=book.world.firm.pk).get() == [profile.pk]
    with mock.patch.object(risk_profiles_expire, "delay") as delay:
        assert risk_profiles_expire_all.delay().get() == 2
    assert sorted(c.kwargs["firm_id"] for c in delay.call_args_list) == sorted(
        [book.world.firm.pk, firm_b.firm.pk]
    )
    with firm_context(book.world.firm), transaction.atomic():
        assert RiskProfile.objects.get(pk=profile.pk).status == ProfileStatus.STALE


def test_saved_answers_carry_over_to_a_new_version(in_firm):
    v1 = questionnaire_install_default()
    old = response_start(client=in_firm.client, questionnaire=v1, actor=None)
    response_save(
        response=old,
        answers={"tol_job": "accept", "tol_word": "loss", "cap_income": "stable"},
        actor=None,
    )
    draft = questionnaire_new_version(source=v1, actor=None)
    from dataclasses import replace

    specs = [
        replace(q, options=tuple(replace(o, code=f"{o.code}_v2") for o in q.options))
        if q.code == "cap_income"
        else q
        for q in DEFAULT_QUESTIONS
        if q.code != "tol_word"
    ]
    questionnaire_update_draft(questionnaire=draft, actor=None, questions=specs)
    v2 = questionnaire_publish(questionnaire=draft, actor=None)
    new = response_start(client=in_firm.client, questionnaire=v2, actor=None)
    assert new.pk != old.pk
    # tol_word is gone, cap_income's options changed: only tol_job carries over.
    assert new.answers == {"tol_job": "accept"}
    event = AuditEvent.objects.filter(action="questionnaire_response.started").latest("seq")
    assert event.payload["carried_over_from"] == old.pk
