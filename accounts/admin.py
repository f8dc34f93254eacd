"""Django admin for platform superusers: firms (with their memberships) and users.

Firm-owned rows are only reachable inside a firm context, so the firm's change page
runs, and renders, inside ``firm_context(firm)``. Membership changes made there go
through the audited services, like everywhere else. Nothing here deletes: firms and
users carry audit history (protected foreign keys); deactivate them instead. A firm's
questionnaire versions have their own admin (``accounts/admin_questionnaires.py``),
linked from the firm's page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Model
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from accounts import admin_questionnaires  # noqa: F401  (registers the questionnaire admin)
from accounts.models import Firm, Membership, Questionnaire, User
from accounts.services import membership_create, membership_update
from accounts.tenancy.admin import FIRM_PARAM
from accounts.tenancy.admin import rendered as _rendered
from accounts.tenancy.context import firm_context
from compliance.services import audit_record


class MembershipFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    @classmethod
    def get_default_prefix(cls) -> str:
        return "memberships"  # the foreign key's related_name is "+"


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Membership
    formset = MembershipFormSet
    fields = ("user", "role", "is_active", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user",)
    extra = 0
    can_delete = False  # deactivate instead: the history stays readable
    verbose_name_plural = "memberships (changes are audited)"


@admin.register(Firm)
class FirmAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "slug", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fields = ("name", "slug", "is_active", "settings", "created_at", "questionnaires")
    readonly_fields = ("created_at", "questionnaires")
    ordering = ("name",)

    @admin.display(description="questionnaires")
    def questionnaires(self, firm: Firm) -> str:
        """A link to the firm's questionnaire versions (their own admin, one firm at a time)."""
        if firm.pk is None:
            return "-"
        with firm_context(firm):
            versions = Questionnaire.objects.count()
        url = reverse("admin:accounts_questionnaire_changelist")
        return format_html(
            '<a href="{}?{}">{} version(s)</a>', url, urlencode({FIRM_PARAM: firm.pk}), versions
        )

    def get_inlines(self, request: HttpRequest, obj: Firm | None) -> list[type[Any]]:
        return [MembershipInline] if obj is not None and obj.pk else []

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        firm = self.get_object(request, unquote(object_id))
        if firm is None:  # the admin answers "does not exist" itself
            return super().change_view(request, object_id, form_url, extra_context)
        with firm_context(firm):
            return _rendered(super().change_view(request, object_id, form_url, extra_context))

    def save_model(
        self, request: HttpRequest, obj: Firm, form: forms.ModelForm[Firm], change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        if change and not form.changed_data:
            return
        changes = {
            name: [form.initial.get(name), form.cleaned_data.get(name)]
            for name in form.changed_data
        }
        with firm_context(obj):
            audit_record(
                action="firm.changed" if change else "firm.created",
                actor=request.user if isinstance(request.user, User) else None,
                object_type="firm",
                object_id=obj.pk,
                payload={"changes": changes, "via": "admin"},
            )

    def save_formset(
        self,
        request: HttpRequest,
        form: forms.ModelForm[Firm],
        formset: Any,
        change: bool,
    ) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        firm = form.instance
        actor = request.user if isinstance(request.user, User) else None
        for membership in formset.save(commit=False):
            if membership.pk is None:
                created = membership_create(
                    firm=firm, user=membership.user, role=membership.role, actor=actor
                )
                if not membership.is_active:
                    with firm_context(firm):
                        membership_update(membership=created, actor=actor, is_active=False)
                continue
            with firm_context(firm):
                stored = Membership.objects.get(pk=membership.pk)
                membership_update(
                    membership=stored,
                    actor=actor,
                    role=membership.role,
                    is_active=membership.is_active,
                )


class PlatformUserCreationForm(AdminUserCreationForm):  # type: ignore[type-arg]
    class Meta(AdminUserCreationForm.Meta):
        model = User


class PlatformUserChangeForm(UserChangeForm):  # type: ignore[type-arg]
    class Meta(UserChangeForm.Meta):
        model = User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):  # type: ignore[type-arg]
    form = PlatformUserChangeForm
    add_form = PlatformUserCreationForm
    list_display = ("username", "email", "first_name", "last_name", "is_active", "is_superuser")
    list_filter = ("is_active", "is_staff", "is_superuser")

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Users carry audit history and memberships in firms; deactivate them instead.
        return False
