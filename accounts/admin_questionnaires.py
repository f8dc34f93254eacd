"""Questionnaire versions in the Django admin, for platform superusers, one firm at a time.

Questionnaires are firm-owned: the list shows nothing until a firm is chosen in the
filter, and every view runs, and renders, inside that firm's context (the choice travels
in the query string and in ``_changelist_filters``, as in the audit trail's admin).

Drafts are edited here, questions inline with their options (one option per line), and
every change goes through the audited services: a draft's name and questions through
``questionnaire_update_draft``, a new draft through ``questionnaire_create_draft``,
deletion through ``questionnaire_delete_draft``, and the actions "publish" and "new
draft version" through ``questionnaire_publish`` and ``questionnaire_new_version``.
Published and superseded versions are read-only (no change, no delete); the database
triggers refuse any change to them anyway.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.models import AnswerOption, Question, Questionnaire, QuestionnaireStatus, User
from accounts.profiling.default_questionnaire import OptionSpec, QuestionSpec
from accounts.risk_services import (
    questionnaire_create_draft,
    questionnaire_delete_draft,
    questionnaire_new_version,
    questionnaire_publish,
    questionnaire_update_draft,
    questions_validate,
)
from accounts.tenancy.admin import FirmScopedAdminMixin
from accounts.tenancy.context import current_firm

OPTION_LINE_HELP = (
    "One option per line: code | text | points, optionally followed by | tags (comma "
    "separated) and | years (horizon questions need the years)."
)


def _actor(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _editable(questionnaire: Questionnaire | None) -> bool:
    return questionnaire is not None and questionnaire.status == QuestionnaireStatus.DRAFT


def _error_lines(exc: ValidationError, specs: list[QuestionSpec] | None = None) -> list[str]:
    """A service's ValidationError as readable lines; ``questions.<i>`` named by code."""
    if not hasattr(exc, "error_dict"):
        return list(exc.messages)
    lines: list[str] = []
    for key, errors in exc.message_dict.items():
        parts = key.split(".")
        index = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
        if specs is not None and parts[0] == "questions" and 0 <= index < len(specs):
            parts = [specs[index].code, *parts[2:]]
        where = ".".join(parts)
        lines.extend(f"{where}: {error}" for error in errors)
    return lines


# --- questions inline, with their options as text -------------------------------------------


def options_as_text(question: Question) -> str:
    lines = []
    for option in AnswerOption.objects.filter(question=question).order_by("position"):
        parts = [
            option.code,
            option.text,
            str(option.score),
            ", ".join(option.tags),
            "" if option.horizon_years is None else str(option.horizon_years),
        ]
        while parts[-1] == "":
            parts.pop()
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def options_from_text(text: str) -> tuple[OptionSpec, ...]:
    """Parse the option lines; a ValidationError names every bad line."""
    score_field = forms.IntegerField()
    years_field = forms.DecimalField(max_digits=5, decimal_places=2, min_value=0)
    options: list[OptionSpec] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")]
        if not 3 <= len(parts) <= 5 or not parts[1]:
            errors.append(f"line {number}: write it as 'code | text | points [| tags [| years]]'")
            continue
        try:
            validate_slug(parts[0])
            if len(parts[0]) > 60:
                raise ValidationError("at most 60 characters")
            score = score_field.clean(parts[2])
            tags = (
                tuple(t.strip() for t in parts[3].split(",") if t.strip()) if len(parts) > 3 else ()
            )
            years = years_field.clean(parts[4]) if len(parts) > 4 and parts[4] else None
        except ValidationError as exc:
            errors.append(f"line {number}: {' '.join(exc.messages)}")
            continue
        options.append(OptionSpec(parts[0], parts[1], score, tags, years))
    if errors:
        raise ValidationError(errors)
    return tuple(options)


class OptionsField(forms.CharField):
    def to_python(self, value: Any) -> str:
        text = super().to_python(value) or ""
        return "\n".join(line.rstrip() for line in re.split(r"\r\n|\r|\n", text)).strip()


class QuestionAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    options = OptionsField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60}), help_text=OPTION_LINE_HELP
    )

    class Meta:
        model = Question
        fields = ("position", "code", "dimension", "text", "help_text")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial.setdefault("options", options_as_text(self.instance))

    def clean_options(self) -> tuple[OptionSpec, ...]:
        return options_from_text(self.cleaned_data["options"])


class QuestionFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    """Validates the draft's questions as a whole (as the service will) and keeps them as
    specs, in position order, for ``questionnaire_update_draft``."""

    specs: list[QuestionSpec] | None = None

    @classmethod
    def get_default_prefix(cls) -> str:
        return "questions"  # the foreign key's related_name is "+"

    def clean(self) -> None:
        super().clean()
        kept = []
        for form in self.forms:
            if self.can_delete and form.cleaned_data.get("DELETE"):
                continue  # removed: its other fields do not matter
            if form.instance.pk is None and not form.has_changed():
                continue  # an empty extra form
            if form.errors:
                return  # the form shows its own errors
            kept.append(form.cleaned_data)
        kept.sort(key=lambda data: data["position"])
        specs = [
            QuestionSpec(
                code=data["code"],
                dimension=data["dimension"],
                text=data["text"],
                help_text=data.get("help_text") or "",
                options=data["options"],
            )
            for data in kept
        ]
        try:
            questions_validate(questions=specs)
        except ValidationError as exc:
            raise ValidationError(_error_lines(exc, specs)) from exc
        self.specs = specs


class QuestionInline(admin.StackedInline):  # type: ignore[type-arg]
    model = Question
    form = QuestionAdminForm
    formset = QuestionFormSet
    extra = 1
    ordering = ("position", "pk")
    verbose_name_plural = "questions (a draft's changes are saved through the audited service)"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = ("position", "code", "dimension", "text", "help_text")
        return (*fields, "options" if _editable(obj) else "options_list")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if _editable(obj) else ["options_list"]

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 1 if _editable(obj) else 0

    @admin.display(description="options")
    def options_list(self, question: Question) -> str:
        return format_html("<pre>{}</pre>", options_as_text(question))

    def has_add_permission(self, request: HttpRequest, obj: Any) -> bool:  # type: ignore[override]
        return _editable(obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _editable(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _editable(obj)


# --- the questionnaire versions -------------------------------------------------------------


class QuestionnaireAddForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Questionnaire
        fields = ("key", "name")

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"]
        if Questionnaire.objects.filter(key=key, status=QuestionnaireStatus.DRAFT).exists():
            raise ValidationError(
                f"questionnaire {key!r} already has a draft version: edit that one"
            )
        return key


@admin.register(Questionnaire)
class QuestionnaireAdmin(FirmScopedAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "key", "version", "status", "question_count", "published_at")
    list_filter = ("firm", "status")
    list_select_related = ("firm",)
    search_fields = ("key", "name")
    ordering = ("key", "-version")
    actions = ["publish", "new_version"]

    # --- one firm at a time (FirmScopedAdminMixin)

    firm_choice_message = "Choose a firm in the filter: each firm has its own questionnaires."

    # --- what may be done: drafts only

    def has_add_permission(self, request: HttpRequest) -> bool:
        return current_firm() is not None and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if isinstance(obj, Questionnaire) and not _editable(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if isinstance(obj, Questionnaire) and not _editable(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one draft at a time, from its page
        return actions

    # --- the form

    def get_form(
        self,
        request: HttpRequest,
        obj: Questionnaire | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm[Questionnaire]]:
        if obj is None:
            kwargs["form"] = QuestionnaireAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Questionnaire | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("key", "name")
        return ("firm", "key", "name", "version", "status", "published_at", "created_at")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Questionnaire | None = None
    ) -> list[str]:
        if obj is None:
            return []
        return ["firm", "key", "version", "status", "published_at", "created_at"]

    def get_inlines(self, request: HttpRequest, obj: Questionnaire | None) -> list[type[Any]]:
        return [QuestionInline] if obj is not None else []

    @admin.display(description="questions")
    def question_count(self, questionnaire: Questionnaire) -> int:
        return Question.objects.filter(questionnaire=questionnaire).count()

    # --- every change through the audited services

    def save_model(
        self,
        request: HttpRequest,
        obj: Questionnaire,
        form: forms.ModelForm[Questionnaire],
        change: bool,
    ) -> None:
        if change:
            return  # the name is saved with the questions, in save_related
        created = questionnaire_create_draft(
            actor=_actor(request), key=form.cleaned_data["key"], name=form.cleaned_data["name"]
        )
        for field in Questionnaire._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False

    def save_related(
        self,
        request: HttpRequest,
        form: forms.ModelForm[Questionnaire],
        formsets: Any,
        change: bool,
    ) -> None:
        for formset in formsets:
            # Nothing is saved through the formsets themselves; the admin's change
            # message reads these.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not change:
            return
        questions = next(
            (f.specs for f in formsets if isinstance(f, QuestionFormSet) and f.has_changed()),
            None,
        )
        if questions is None and "name" not in form.changed_data:
            return
        questionnaire_update_draft(
            questionnaire=form.instance,
            actor=_actor(request),
            name=form.cleaned_data["name"],
            questions=questions,
        )

    def delete_model(self, request: HttpRequest, obj: Questionnaire) -> None:
        questionnaire_delete_draft(questionnaire=obj, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Questionnaire]) -> None:
        for questionnaire in queryset:
            questionnaire_delete_draft(questionnaire=questionnaire, actor=_actor(request))

    # --- actions

    @admin.action(description="Publish the selected draft (supersedes the published version)")
    def publish(self, request: HttpRequest, queryset: QuerySet[Questionnaire]) -> None:
        for questionnaire in queryset.order_by("key", "version"):
            try:
                with transaction.atomic():
                    questionnaire_publish(questionnaire=questionnaire, actor=_actor(request))
            except ValidationError as exc:
                for line in _error_lines(exc):
                    messages.error(request, f"{questionnaire} was not published: {line}")
            else:
                messages.success(request, f"{questionnaire} is published.")

    @admin.action(description="Create a new draft version from the selected version")
    def new_version(self, request: HttpRequest, queryset: QuerySet[Questionnaire]) -> None:
        for questionnaire in queryset.order_by("key", "version"):
            try:
                with transaction.atomic():
                    draft = questionnaire_new_version(source=questionnaire, actor=_actor(request))
            except ValidationError as exc:
                for line in _error_lines(exc):
                    messages.error(request, f"No new version of {questionnaire}: {line}")
            else:
                messages.success(request, f"{draft} is a new draft, copied from {questionnaire}.")
