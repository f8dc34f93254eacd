"""The audit trail in the Django admin: read-only, one firm at a time.

Audit events are firm-owned, so the list shows nothing until a firm is chosen in the
filter; the choice travels in the query string (and in ``_changelist_filters`` to an
event's page), and the view runs, and renders, inside that firm's context. Nobody may
add, change or delete an event here (the database refuses it anyway).
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.tenancy.admin import FIRM_PARAM, FirmScopedAdminMixin
from compliance.models import AuditEvent

__all__ = ["FIRM_PARAM", "AuditEventAdmin"]


@admin.register(AuditEvent)
class AuditEventAdmin(FirmScopedAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    firm_choice_message = "Choose a firm in the filter: each firm has its own trail."
    list_display = (
        "seq",
        "created_at",
        "firm",
        "action",
        "actor_label",
        "object_type",
        "object_id",
    )
    list_filter = ("firm",)
    list_select_related = ("firm",)
    search_fields = ("action", "actor_label", "object_type", "object_id", "request_id", "run_id")
    ordering = ("-seq",)
    actions = None
    fields = (
        "firm",
        "seq",
        "created_at",
        "actor",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "payload_json",
        "reasons_json",
        "request_id",
        "run_id",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    @admin.display(description="payload")
    def payload_json(self, event: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.payload, indent=2, sort_keys=True))

    @admin.display(description="reasons")
    def reasons_json(self, event: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.reasons, indent=2))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
