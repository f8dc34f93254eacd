"""Reads of questionnaires, responses and risk profiles, limited to what the caller sees."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, QuerySet

from accounts.book_selectors import client_list_visible
from accounts.models import (
    AnswerOption,
    Membership,
    ProfileFlag,
    Question,
    Questionnaire,
    QuestionnaireResponse,
    QuestionnaireStatus,
    ResponseStatus,
    RiskProfile,
    Role,
    StrategyAssignment,
)
from accounts.profiling.psychometrics import MIN_RESPONSES, ScaleReport, scale_report

EDITOR_ROLES = frozenset({Role.FIRM_ADMIN})


def questionnaire_list_visible(*, membership: Membership) -> QuerySet[Questionnaire]:
    """Firm admins see every version, drafts included; others the published and superseded."""
    questionnaires = Questionnaire.objects.all()
    if membership.role not in EDITOR_ROLES:
        questionnaires = questionnaires.exclude(status=QuestionnaireStatus.DRAFT)
    return questionnaires.order_by("key", "-version")


def questionnaire_current(*, key: str | None = None) -> Questionnaire | None:
    """The published questionnaire (of ``key``, or the first key)."""
    published = Questionnaire.objects.filter(status=QuestionnaireStatus.PUBLISHED)
    if key:
        published = published.filter(key=key)
    return published.order_by("key").first()


def questionnaire_questions(
    *, questionnaire: Questionnaire
) -> list[tuple[Question, list[AnswerOption]]]:
    questions = list(Question.objects.filter(questionnaire=questionnaire).order_by("position"))
    options: dict[int, list[AnswerOption]] = {q.pk: [] for q in questions}
    for option in AnswerOption.objects.filter(question__in=questions).order_by("position"):
        options[option.question_id].append(option)
    return [(q, options[q.pk]) for q in questions]


def response_list_visible(*, membership: Membership) -> QuerySet[QuestionnaireResponse]:
    clients = client_list_visible(membership=membership)
    return QuestionnaireResponse.objects.filter(
        Exists(clients.filter(pk=OuterRef("client_id")))
    ).order_by("-started_at", "-pk")


def profile_list_visible(*, membership: Membership) -> QuerySet[RiskProfile]:
    clients = client_list_visible(membership=membership)
    open_flags = ProfileFlag.objects.filter(profile_id=OuterRef("pk"), resolved_at__isnull=True)
    return (
        RiskProfile.objects.filter(Exists(clients.filter(pk=OuterRef("client_id"))))
        .annotate(has_open_flags=Exists(open_flags))
        .order_by("-created_at", "-pk")
    )


def flag_list_visible(*, membership: Membership) -> QuerySet[ProfileFlag]:
    profiles = profile_list_visible(membership=membership)
    return ProfileFlag.objects.filter(profile_id__in=profiles.values("pk")).order_by("pk")


def assignment_list_visible(*, membership: Membership) -> QuerySet[StrategyAssignment]:
    """Strategy assignments of the clients the caller sees."""
    clients = client_list_visible(membership=membership)
    return StrategyAssignment.objects.filter(
        Exists(clients.filter(pk=OuterRef("client_id")))
    ).order_by("-created_at", "-pk")


def profile_flags(*, profile: RiskProfile) -> list[ProfileFlag]:
    return list(ProfileFlag.objects.filter(profile=profile).order_by("pk"))


@dataclass(frozen=True)
class QuestionnaireStatistics:
    questionnaire: Questionnaire
    responses: int
    enough_responses: bool
    minimum_responses: int
    tolerance: ScaleReport | None
    risk_levels: dict[int, int]


def questionnaire_statistics(*, questionnaire: Questionnaire) -> QuestionnaireStatistics:
    """Cronbach's alpha of the tolerance items, item-total correlations and the risk
    level distribution of one version's submitted responses."""
    tolerance = [
        (q, {o.code: o.score for o in options})
        for q, options in questionnaire_questions(questionnaire=questionnaire)
        if q.dimension == "tolerance"
    ]
    answers = list(
        QuestionnaireResponse.objects.filter(
            questionnaire=questionnaire, status=ResponseStatus.SUBMITTED
        ).values_list("answers", flat=True)
    )
    rows = [
        [float(scores[a[q.code]]) for q, scores in tolerance]
        for a in answers
        if all(a.get(q.code) in scores for q, scores in tolerance)
    ]
    levels = dict(
        RiskProfile.objects.filter(questionnaire=questionnaire)
        .values("risk_level")
        .annotate(n=Count("pk"))
        .values_list("risk_level", "n")
    )
    enough = len(rows) >= MIN_RESPONSES
    report = scale_report(rows, [q.code for q, _ in tolerance]) if enough and tolerance else None
    return QuestionnaireStatistics(
        questionnaire=questionnaire,
        responses=len(answers),
        enough_responses=enough,
        minimum_responses=MIN_RESPONSES,
        tolerance=report,
        risk_levels={level: levels.get(level, 0) for level in range(1, 11)},
    )
