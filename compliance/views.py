"""The compliance console's pages: audit search and export, one event, chain checks,
exception reports.

Thin views, like the API's (:mod:`compliance.api_audit`): compliance officers and firm
admins read; running a chain check is for compliance officers. Other roles get 403
(the sidebar never shows them these pages); an event of another firm is a 404
exactly like a missing one.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Firm, Membership, Role
from accounts.web import signed_in_user
from compliance.api_audit import audit_export_response
from compliance.exports import csv_stream_response
from compliance.models import AuditEvent
from compliance.selectors_audit import (
    SEARCH_FIELDS,
    AuditSearch,
    AuditSearchError,
    audit_event_detail,
    audit_event_search,
    audit_search_parse,
    chain_verification_latest,
    event_related_orders,
)
from compliance.selectors_reports import (
    exception_report,
    exception_report_csv_rows,
    period_parse,
)
from compliance.services.verification import audit_chain_verification_run

READERS = frozenset({Role.COMPLIANCE, Role.FIRM_ADMIN})
PAGE_SIZE = 50
MAX_ID = 2**63 - 1


def _membership(request: HttpRequest, roles: frozenset[str] = READERS) -> Membership:
    membership = getattr(request, "membership", None)
    if not isinstance(membership, Membership) or membership.role not in roles:
        raise PermissionDenied
    return membership


def _firm(request: HttpRequest) -> Firm:
    return _membership(request).firm


@login_required
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    """Search form and results; htmx swaps the results only."""
    firm = _firm(request)
    error: AuditSearchError | None = None
    try:
        search = audit_search_parse(request.GET)
    except AuditSearchError as exc:
        error, search = exc, AuditSearch()
    page = None
    if error is None:
        paginator = Paginator(audit_event_search(firm=firm, search=search), PAGE_SIZE)
        page = paginator.get_page(request.GET.get("page"))
    params = search.as_params()
    context: dict[str, Any] = {
        "search": search,
        "values": {name: request.GET.get(name, "") for name in SEARCH_FIELDS},
        "error": error,
        "page": page,
        "query": urlencode(params),
    }
    template = (
        "compliance/_audit_results.html"
        if request.headers.get("HX-Request") == "true"
        else "compliance/audit_list.html"
    )
    return render(request, template, context, status=400 if error else 200)


@login_required
@require_GET
def audit_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    firm = _firm(request)
    try:
        search = audit_search_parse(request.GET)
    except AuditSearchError as exc:
        return HttpResponseBadRequest(f"{exc.field}: {exc.message}", content_type="text/plain")
    return audit_export_response(firm=firm, search=search)


@login_required
@require_GET
def audit_detail(request: HttpRequest, pk: int) -> HttpResponse:
    firm = _firm(request)
    if pk > MAX_ID:
        raise Http404("No such event.")
    try:
        detail = audit_event_detail(firm=firm, event_id=pk)
    except AuditEvent.DoesNotExist:
        raise Http404("No such event.") from None
    return render(
        request,
        "compliance/audit_detail.html",
        {
            "detail": detail,
            "e": detail.event,
            "heading": f"Audit event #{detail.event.seq}",
            "payload_json": json.dumps(detail.event.payload, indent=2, sort_keys=True),
            "orders": event_related_orders(event=detail.event),
        },
    )


@login_required
@require_POST
def chain_verify(request: HttpRequest) -> HttpResponse:
    """Run a chain check now (compliance officers); the home page shows its result."""
    membership = _membership(request, frozenset({Role.COMPLIANCE}))
    verification = audit_chain_verification_run(firm=membership.firm, actor=signed_in_user(request))
    if verification.ok:
        messages.success(request, f"Chain intact: {verification.events_checked} events verified.")
    else:
        messages.error(
            request,
            f"Chain broken at event #{verification.first_broken_seq}: {verification.message}",
        )
    return redirect("home")


@login_required
@require_GET
def chain_status(request: HttpRequest) -> HttpResponse:
    firm = _firm(request)
    return render(
        request,
        "compliance/_chain_status.html",
        {"verification": chain_verification_latest(firm=firm)},
    )


@login_required
@require_GET
def exception_report_page(request: HttpRequest) -> HttpResponse:
    firm = _firm(request)
    try:
        period = period_parse(request.GET)
    except AuditSearchError as exc:
        return render(
            request,
            "compliance/exception_report.html",
            {"error": exc, "values": request.GET},
            status=400,
        )
    report = exception_report(firm=firm, period=period)
    return render(
        request,
        "compliance/exception_report.html",
        {
            "report": report,
            "values": request.GET,
            "query": urlencode(period.as_params()),
        },
    )


@login_required
@require_GET
def exception_report_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    firm = _firm(request)
    try:
        period = period_parse(request.GET)
    except AuditSearchError as exc:
        return HttpResponseBadRequest(f"{exc.field}: {exc.message}", content_type="text/plain")

    def rows() -> Any:
        report = exception_report(firm=firm, period=period, limit=None)
        rows = exception_report_csv_rows(report)
        next(rows)  # the header, written by the stream
        return rows

    return csv_stream_response(
        firm=firm,
        filename=f"exceptions-{firm.slug}-{period.start}-{period.end}.csv",
        header=(
            "section",
            "id",
            "run",
            "when",
            "portfolio",
            "client",
            "detail",
            "rule_kinds",
            "outcome",
        ),
        rows=rows,
    )
