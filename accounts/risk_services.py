"""Questionnaires (versioned, immutable once published), responses, scoring into risk
profiles with consistency flags, flag resolution and profile expiry. Every state change
writes its audit event in the same transaction."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import (
    AnswerOption,
    Client,
    Dimension,
    ProfileFlag,
    ProfileStatus,
    Question,
    Questionnaire,
    QuestionnaireResponse,
    QuestionnaireStatus,
    ResponseStatus,
    RiskProfile,
    User,
)
from accounts.profiling.default_questionnaire import (
    DEFAULT_QUESTIONNAIRE_KEY,
    DEFAULT_QUESTIONNAIRE_NAME,
    DEFAULT_QUESTIONS,
    OptionSpec,
    QuestionSpec,
)
from accounts.profiling.scoring import (
    KNOWN_TAGS,
    SCORED_DIMENSIONS,
    ProfileResult,
    ScoredAnswer,
    ScoringError,
    score_profile,
)
from accounts.tenancy.context import require_firm
from compliance.services import audit_record

DEFAULT_VALID_MONTHS = 12


# --- questionnaires ----------------------------------------------------------------------

#: Called inside the transaction that creates a risk profile (with its open flags).
ON_PROFILE_CREATED: list[Callable[[RiskProfile, list[ProfileFlag]], None]] = []
#: Called inside the transaction that marks profiles stale (expired).
ON_PROFILES_EXPIRED: list[Callable[[list[RiskProfile]], None]] = []


def _validate_specs(questions: Sequence[QuestionSpec]) -> None:
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for index, question in enumerate(questions):
        where = f"questions.{index}"
        if question.code in seen:
            errors[f"{where}.code"] = [f"duplicate question code {question.code!r}"]
        seen.add(question.code)
        if question.dimension not in Dimension.values:
            errors[f"{where}.dimension"] = [f"{question.dimension!r} is not a dimension"]
        if len(question.options) < 2:
            errors[f"{where}.options"] = ["a question needs at least two options"]
        codes = [o.code for o in question.options]
        if len(set(codes)) != len(codes):
            errors[f"{where}.options"] = ["option codes must be unique within a question"]
        for o_index, option in enumerate(question.options):
            unknown = set(option.tags) - KNOWN_TAGS
            if unknown:
                errors[f"{where}.options.{o_index}.tags"] = [f"unknown tags {sorted(unknown)}"]
            if question.dimension == Dimension.HORIZON and option.horizon_years is None:
                errors[f"{where}.options.{o_index}.horizon_years"] = [
                    "every option of a horizon question needs a number of years"
                ]
    if errors:
        raise ValidationError(errors)


def _check_publishable(questions: Sequence[QuestionSpec]) -> None:
    dimensions = {q.dimension for q in questions}
    missing = [d for d in SCORED_DIMENSIONS if d not in dimensions]
    if missing:
        raise ValidationError(
            {"questions": [f"a published questionnaire needs {', '.join(missing)} questions"]}
        )


def _write_questions(questionnaire: Questionnaire, questions: Sequence[QuestionSpec]) -> None:
    for position, spec in enumerate(questions, start=1):
        question = Question.objects.create(
            questionnaire=questionnaire,
            position=position,
            code=spec.code,
            dimension=spec.dimension,
            text=spec.text,
            help_text=spec.help_text,
        )
        AnswerOption.objects.bulk_create(
            [
                AnswerOption(
                    firm_id=questionnaire.firm_id,
                    question=question,
                    position=o_position,
                    code=option.code,
                    text=option.text,
                    score=option.score,
                    tags=list(option.tags),
                    horizon_years=option.horizon_years,
                )
                for o_position, option in enumerate(spec.options, start=1)
            ]
        )


def questionnaire_specs(*, questionnaire: Questionnaire) -> list[QuestionSpec]:
    """The questionnaire's questions and options as plain specs (for copying and export)."""
    questions = list(Question.objects.filter(questionnaire=questionnaire).order_by("position"))
    options: dict[int, list[AnswerOption]] = {}
    for option in AnswerOption.objects.filter(question__in=questions).order_by("position"):
        options.setdefault(option.question_id, []).append(option)
    return [
        QuestionSpec(
            code=q.code,
            dimension=q.dimension,
            text=q.text,
            help_text=q.help_text,
            options=tuple(
                OptionSpec(o.code, o.text, o.score, tuple(o.tags), o.horizon_years)
                for o in options.get(q.pk, [])
            ),
        )
        for q in questions
    ]


def questionnaire_create_draft(
    *,
    actor: User | None,
    key: str,
    name: str,
    questions: Sequence[QuestionSpec] = (),
) -> Questionnaire:
    """A new draft version of the questionnaire ``key`` (version = last + 1)."""
    _validate_specs(questions)
    if not name.strip():
        raise ValidationError({"name": ["must not be blank"]})
    with transaction.atomic():
        versions = Questionnaire.objects.filter(key=key).order_by("-version")
        last = versions.values_list("version", flat=True).first()
        if Questionnaire.objects.filter(key=key, status=QuestionnaireStatus.DRAFT).exists():
            raise ValidationError({"key": [f"questionnaire {key!r} already has a draft version"]})
        questionnaire = Questionnaire.objects.create(
            key=key, name=name.strip(), version=(last or 0) + 1
        )
        _write_questions(questionnaire, questions)
        audit_record(
            action="questionnaire.draft_created",
            actor=actor,
            object_type="questionnaire",
            object_id=questionnaire.pk,
            payload={"key": key, "version": questionnaire.version, "questions": len(questions)},
        )
    return questionnaire


def questionnaire_new_version(*, source: Questionnaire, actor: User | None) -> Questionnaire:
    """A draft copy of ``source`` as the next version, to edit and publish."""
    return questionnaire_create_draft(
        actor=actor,
        key=source.key,
        name=source.name,
        questions=questionnaire_specs(questionnaire=source),
    )


def _require_draft(questionnaire: Questionnaire) -> None:
    if questionnaire.status != QuestionnaireStatus.DRAFT:
        raise ValidationError(
            {
                "questionnaire": [
                    f"version {questionnaire.version} is {questionnaire.status}: a published "
                    "version cannot be edited; create a new version"
                ]
            }
        )


def questionnaire_update_draft(
    *,
    questionnaire: Questionnaire,
    actor: User | None,
    name: str | None = None,
    questions: Sequence[QuestionSpec] | None = None,
) -> Questionnaire:
    """Rename a draft and/or replace its questions."""
    _require_draft(questionnaire)
    if questions is not None:
        _validate_specs(questions)
    with transaction.atomic():
        locked = Questionnaire.objects.select_for_update().get(pk=questionnaire.pk)
        _require_draft(locked)
        if name is not None and name.strip():
            locked.name = name.strip()
            locked.save(update_fields=["name"])
        if questions is not None:
            Question.objects.filter(questionnaire=locked).delete()
            _write_questions(locked, questions)
        audit_record(
            action="questionnaire.draft_changed",
            actor=actor,
            object_type="questionnaire",
            object_id=locked.pk,
            payload={
                "name": locked.name,
                "questions": None if questions is None else [q.code for q in questions],
            },
        )
    return locked


def questions_validate(*, questions: Sequence[QuestionSpec]) -> None:
    """The checks a draft's questions must pass before they are saved (a ValidationError
    keyed ``questions.<index>.<field>`` otherwise); for forms that validate up front."""
    _validate_specs(questions)


def questionnaire_delete_draft(*, questionnaire: Questionnaire, actor: User | None) -> None:
    """Delete a draft version with its questions; published versions stay for ever."""
    _require_draft(questionnaire)
    with transaction.atomic():
        locked = Questionnaire.objects.select_for_update().get(pk=questionnaire.pk)
        _require_draft(locked)
        questions = list(
            Question.objects.filter(questionnaire=locked)
            .order_by("position")
            .values_list("code", flat=True)
        )
        pk = locked.pk
        locked.delete()
        audit_record(
            action="questionnaire.draft_deleted",
            actor=actor,
            object_type="questionnaire",
            object_id=pk,
            payload={"key": locked.key, "version": locked.version, "questions": questions},
        )


def questionnaire_publish(*, questionnaire: Questionnaire, actor: User | None) -> Questionnaire:
    """Publish a draft; the version published before it is superseded. Immutable after."""
    _require_draft(questionnaire)
    specs = questionnaire_specs(questionnaire=questionnaire)
    _validate_specs(specs)
    _check_publishable(specs)
    with transaction.atomic():
        previous = list(
            Questionnaire.objects.select_for_update().filter(
                key=questionnaire.key, status=QuestionnaireStatus.PUBLISHED
            )
        )
        for old in previous:
            old.status = QuestionnaireStatus.SUPERSEDED
            old.save(update_fields=["status"])
        questionnaire.status = QuestionnaireStatus.PUBLISHED
        questionnaire.published_at = timezone.now()
        questionnaire.save(update_fields=["status", "published_at"])
        audit_record(
            action="questionnaire.published",
            actor=actor,
            object_type="questionnaire",
            object_id=questionnaire.pk,
            payload={
                "key": questionnaire.key,
                "version": questionnaire.version,
                "supersedes": [q.pk for q in previous],
            },
        )
    return questionnaire


def questionnaire_install_default(*, actor: User | None = None) -> Questionnaire:
    """The firm's published default questionnaire, installed (version 1) when it has none."""
    with transaction.atomic():
        existing = Questionnaire.objects.filter(
            key=DEFAULT_QUESTIONNAIRE_KEY, status=QuestionnaireStatus.PUBLISHED
        ).first()
        if existing is not None:
            return existing
        draft = Questionnaire.objects.filter(
            key=DEFAULT_QUESTIONNAIRE_KEY, status=QuestionnaireStatus.DRAFT
        ).first()
        if draft is None:
            draft = questionnaire_create_draft(
                actor=actor,
                key=DEFAULT_QUESTIONNAIRE_KEY,
                name=DEFAULT_QUESTIONNAIRE_NAME,
                questions=DEFAULT_QUESTIONS,
            )
        return questionnaire_publish(questionnaire=draft, actor=actor)


# --- answering and scoring -----------------------------------------------------------------


def _options_by_question(
    questionnaire: Questionnaire,
) -> tuple[list[Question], dict[str, dict[str, AnswerOption]]]:
    questions = list(Question.objects.filter(questionnaire=questionnaire).order_by("position"))
    by_code: dict[str, dict[str, AnswerOption]] = {q.code: {} for q in questions}
    code_of = {q.pk: q.code for q in questions}
    for option in AnswerOption.objects.filter(question__in=questions).order_by("position"):
        by_code[code_of[option.question_id]][option.code] = option
    return questions, by_code


def answers_validate(
    *, questionnaire: Questionnaire, answers: Mapping[str, Any], complete: bool
) -> dict[str, str]:
    """Answers (question code -> option code) checked against the version's option set."""
    questions, options = _options_by_question(questionnaire)
    errors: dict[str, list[str]] = {}
    clean: dict[str, str] = {}
    for code, value in answers.items():
        if code not in options:
            errors[f"answers.{code}"] = ["no such question in this questionnaire version"]
        elif not isinstance(value, str) or value not in options[code]:
            errors[f"answers.{code}"] = [
                f"{value!r} is not one of the options: {', '.join(options[code])}"
            ]
        else:
            clean[code] = value
    if complete:
        for question in questions:
            if question.code not in answers:
                errors[f"answers.{question.code}"] = ["this question is not answered"]
    if errors:
        raise ValidationError(errors)
    return clean


def answers_score(*, questionnaire: Questionnaire, answers: Mapping[str, str]) -> ProfileResult:
    """Score complete answers to one questionnaire version (reads only that version)."""
    questions, options = _options_by_question(questionnaire)
    scored = []
    for question in questions:
        choice = options[question.code][answers[question.code]]
        scores = [o.score for o in options[question.code].values()]
        scored.append(
            ScoredAnswer(
                question=question.code,
                dimension=question.dimension,
                score=choice.score,
                min_score=min(scores),
                max_score=max(scores),
                tags=frozenset(choice.tags),
                horizon_years=choice.horizon_years,
            )
        )
    try:
        return score_profile(scored)
    except ScoringError as exc:
        raise ValidationError({"answers": [str(exc)]}) from exc


def response_start(
    *, client: Client, questionnaire: Questionnaire, actor: User | None
) -> QuestionnaireResponse:
    """The client's in-progress response to this version, or a new one (published only).

    Answers the client had saved for an earlier version of the same questionnaire carry
    over where the new version asks the same question with the same option.
    """
    if questionnaire.status != QuestionnaireStatus.PUBLISHED:
        raise ValidationError(
            {"questionnaire": [f"version {questionnaire.version} is not published"]}
        )
    with transaction.atomic():
        response = QuestionnaireResponse.objects.filter(
            client=client, questionnaire=questionnaire, status=ResponseStatus.IN_PROGRESS
        ).first()
        if response is not None:
            return response
        earlier = (
            QuestionnaireResponse.objects.filter(
                client=client,
                status=ResponseStatus.IN_PROGRESS,
                questionnaire__key=questionnaire.key,
                questionnaire__version__lt=questionnaire.version,
            )
            .order_by("-updated_at")
            .first()
        )
        carried: dict[str, str] = {}
        if earlier is not None:
            _questions, options = _options_by_question(questionnaire)
            carried = {
                code: value
                for code, value in earlier.answers.items()
                if code in options and value in options[code]
            }
        response = QuestionnaireResponse.objects.create(
            client=client, questionnaire=questionnaire, started_by=actor, answers=carried
        )
        audit_record(
            action="questionnaire_response.started",
            actor=actor,
            object_type="questionnaire_response",
            object_id=response.pk,
            payload={
                "client_id": client.pk,
                "questionnaire_id": questionnaire.pk,
                "carried_over_from": earlier.pk if earlier is not None else None,
                "answers": carried,
            },
        )
    return response


def _require_in_progress(response: QuestionnaireResponse) -> None:
    if response.status != ResponseStatus.IN_PROGRESS:
        raise ValidationError({"response": ["this response has already been submitted"]})


def response_save(
    *, response: QuestionnaireResponse, answers: Mapping[str, Any], actor: User | None
) -> QuestionnaireResponse:
    """Save some answers (save-and-resume); they are checked against the option set."""
    _require_in_progress(response)
    questionnaire = Questionnaire.objects.get(pk=response.questionnaire_id)
    clean = answers_validate(questionnaire=questionnaire, answers=answers, complete=False)
    with transaction.atomic():
        response.answers = {**response.answers, **clean}
        response.save(update_fields=["answers", "updated_at"])
        audit_record(
            action="questionnaire_response.saved",
            actor=actor,
            object_type="questionnaire_response",
            object_id=response.pk,
            payload={"answers": clean},
        )
    return response


def _valid_until(today: dt.date) -> dt.date:
    months = int((require_firm().settings or {}).get("risk_profile_valid_months", 12))
    year, month = divmod(today.month - 1 + months, 12)
    day = min(today.day, calendar.monthrange(today.year + year, month + 1)[1])
    return dt.date(today.year + year, month + 1, day)


def response_submit(
    *,
    response: QuestionnaireResponse,
    actor: User | None,
    answers: Mapping[str, Any] | None = None,
    answered_on: dt.date | None = None,
) -> RiskProfile:
    """Submit a complete response: score it into the client's current risk profile.

    Missing answers or answers out of the option set are refused (ValidationError naming
    them) and nothing is saved. The previous current profile is superseded.
    ``answered_on`` (default today) dates answers taken earlier (paper forms, imports,
    the demo): the profile's validity runs from it.
    """
    _require_in_progress(response)
    questionnaire = Questionnaire.objects.get(pk=response.questionnaire_id)
    merged = {**response.answers, **(answers or {})}
    clean = answers_validate(questionnaire=questionnaire, answers=merged, complete=True)
    result = answers_score(questionnaire=questionnaire, answers=clean)
    now = timezone.now()
    with transaction.atomic():
        locked = QuestionnaireResponse.objects.select_for_update().get(pk=response.pk)
        _require_in_progress(locked)
        locked.answers = clean
        locked.status = ResponseStatus.SUBMITTED
        locked.submitted_at = now
        locked.save(update_fields=["answers", "status", "submitted_at", "updated_at"])
        superseded = list(
            RiskProfile.objects.filter(
                client_id=locked.client_id,
                status__in=[ProfileStatus.CURRENT, ProfileStatus.STALE],
            ).values_list("pk", flat=True)
        )
        RiskProfile.objects.filter(pk__in=superseded).update(status=ProfileStatus.SUPERSEDED)
        profile = RiskProfile.objects.create(
            client_id=locked.client_id,
            response=locked,
            questionnaire=questionnaire,
            tolerance_score=result.tolerance_score,
            capacity_score=result.capacity_score,
            horizon_years=result.horizon_years,
            tolerance_level=result.tolerance_level,
            capacity_level=result.capacity_level,
            horizon_level=result.horizon_level,
            risk_level=result.risk_level,
            binding=list(result.binding),
            explanation=result.explanation,
            valid_until=_valid_until(answered_on or timezone.localdate()),
        )
        flags = ProfileFlag.objects.bulk_create(
            [
                ProfileFlag(
                    firm_id=profile.firm_id,
                    profile=profile,
                    code=flag.code,
                    message=flag.message,
                    questions=list(flag.questions),
                )
                for flag in result.flags
            ]
        )
        audit_record(
            action="risk_profile.created",
            actor=actor,
            object_type="risk_profile",
            object_id=profile.pk,
            payload={
                "client_id": locked.client_id,
                "questionnaire_id": questionnaire.pk,
                "questionnaire_version": questionnaire.version,
                "answers": clean,
                "tolerance_score": result.tolerance_score,
                "capacity_score": result.capacity_score,
                "horizon_years": result.horizon_years,
                "allowed": result.allowed,
                "risk_level": result.risk_level,
                "binding": list(result.binding),
                "flags": [f.code for f in result.flags],
                "superseded": superseded,
                "answered_on": (answered_on or timezone.localdate()).isoformat(),
            },
            reasons=[result.explanation, *[f.message for f in result.flags]],
        )
        for hook in ON_PROFILE_CREATED:
            hook(profile, list(flags))
    return profile


def risk_profile_rescore(*, profile: RiskProfile) -> ProfileResult:
    """Score a profile's answers again against its own questionnaire version."""
    response = QuestionnaireResponse.objects.get(pk=profile.response_id)
    questionnaire = Questionnaire.objects.get(pk=profile.questionnaire_id)
    return answers_score(questionnaire=questionnaire, answers=response.answers)


def profile_flag_resolve(*, flag: ProfileFlag, actor: User | None, note: str) -> ProfileFlag:
    note = note.strip()
    if not note:
        raise ValidationError({"note": ["resolving a flag needs a note"]})
    with transaction.atomic():
        locked = ProfileFlag.objects.select_for_update().get(pk=flag.pk)
        if locked.resolved_at is not None:
            raise ValidationError({"flag": ["this flag is already resolved"]})
        locked.resolved_at = timezone.now()
        locked.resolved_by = actor
        locked.resolution_note = note
        locked.save(update_fields=["resolved_at", "resolved_by", "resolution_note"])
        audit_record(
            action="risk_profile.flag_resolved",
            actor=actor,
            object_type="profile_flag",
            object_id=locked.pk,
            payload={"profile_id": locked.profile_id, "code": locked.code, "note": note},
        )
    return locked


def risk_profiles_mark_stale(*, today: dt.date | None = None) -> list[int]:
    """Mark the current firm's expired profiles stale; each is audited so that the client
    and their advisor can be told (by the notification layer once it exists)."""
    today = today or timezone.localdate()
    with transaction.atomic():
        expired = list(
            RiskProfile.objects.select_for_update()
            .filter(status=ProfileStatus.CURRENT, valid_until__lt=today)
            .order_by("pk")
        )
        for profile in expired:
            profile.status = ProfileStatus.STALE
            profile.save(update_fields=["status"])
            audit_record(
                action="risk_profile.expired",
                object_type="risk_profile",
                object_id=profile.pk,
                payload={
                    "client_id": profile.client_id,
                    "valid_until": profile.valid_until.isoformat(),
                    "notify": ["client", "advisor"],
                },
                reasons=[f"the profile was valid until {profile.valid_until.isoformat()}"],
            )
        if expired:
            for hook in ON_PROFILES_EXPIRED:
                hook(expired)
    return [p.pk for p in expired]


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))
