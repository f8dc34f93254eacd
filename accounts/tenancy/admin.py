"""One firm at a time in the Django admin, for firm-owned models.

Firm-owned rows are only reachable inside a firm context. A platform superuser picks
the firm in the list filter; the choice travels in the query string (and in
``_changelist_filters`` to an object's pages), and every view runs, and renders,
inside that firm's context. With no firm chosen the list is empty, without touching
the fail-closed manager.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict

from accounts.models import Firm
from accounts.tenancy.context import current_firm, firm_context

FIRM_PARAM = "firm__id__exact"


def firm_from_request(request: HttpRequest) -> Firm | None:
    """The firm chosen in the admin's list filter, or None."""
    value = request.GET.get(FIRM_PARAM)
    if value is None and "_changelist_filters" in request.GET:
        value = QueryDict(request.GET["_changelist_filters"]).get(FIRM_PARAM)
    if not value or not value.isdigit():
        return None
    return Firm.objects.filter(pk=int(value)).first()


def rendered(response: HttpResponse) -> HttpResponse:
    """Render a template response now, while the firm context is still set."""
    render = getattr(response, "render", None)
    if callable(render):
        render()
    return response


class FirmScopedAdminMixin:
    """Mix into a ``ModelAdmin`` of a firm-owned model (before ``admin.ModelAdmin``).

    The list filter must include ``"firm"``. ``firm_choice_message`` is shown on the
    list while no firm is chosen.
    """

    firm_choice_message = "Choose a firm in the filter: each firm has its own records."

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        if current_firm() is None:
            # No firm chosen: an empty list, without touching the firm-scoped manager.
            model: type[Model] = self.model  # type: ignore[attr-defined]
            return QuerySet(model=model).none()
        return super().get_queryset(request)  # type: ignore[misc,no-any-return]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        firm = firm_from_request(request)
        if firm is None:
            messages.info(request, self.firm_choice_message)
        with firm_context(firm):
            return rendered(super().changelist_view(request, extra_context))  # type: ignore[misc]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        with firm_context(firm_from_request(request)):
            return rendered(
                super().changeform_view(  # type: ignore[misc]
                    request, object_id, form_url, extra_context
                )
            )

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        with firm_context(firm_from_request(request)):
            return rendered(super().delete_view(request, object_id, extra_context))  # type: ignore[misc]

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        with firm_context(firm_from_request(request)):
            return rendered(super().history_view(request, object_id, extra_context))  # type: ignore[misc]
