"""The audit trail in the Django admin: read-only, one firm at a time.

Audit events are firm-owned, so the list shows nothing until a firm is chosen in the
filter; the choice travels in the query string (and in ``_changelist_filters`` to an
event's page), and the view runs, and renders, inside that firm's context. Nobody may
add, change or delete an event here (the database refuses it anyway).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.html import format_html

from accounts.models import Firm
from accounts.tenancy.context import current_firm, firm_context
from compliance.models import AuditEvent

FIRM_PARAM = "firm__id__exact"


def _firm_from(request: HttpRequest) -> Firm | None:
    value = request.GET.get(FIRM_PARAM)
    if value is None and "_changelist_filters" in request.GET:
        value = QueryDict(request.GET["_changelist_filters"]).get(FIRM_PARAM)
    if not value or not value.isdigit():
        return None
    return Firm.objects.filter(pk=int(value)).first()


def _rendered(response: HttpResponse) -> HttpResponse:
    render = getattr(response, "render", None)
    if callable(render):
        render()
    return response


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        if current_firm() is None:
            # No firm chosen: an empty list, without touching the firm-scoped manager.
            return QuerySet(model=AuditEvent).none()
        return super().get_queryset(request)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        firm = _firm_from(request)
        if firm is None:
            messages.info(request, "Choose a firm in the filter: each firm has its own trail.")
        with firm_context(firm):
            return _rendered(super().changelist_view(request, extra_context))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        with firm_context(_firm_from(request)):
            return _rendered(super().change_view(request, object_id, form_url, extra_context))

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        with firm_context(_firm_from(request)):
            return _rendered(super().history_view(request, object_id, extra_context))
