"""API of the compliance console: audit search, one event, CSV export, chain checks,
exception reports.

Compliance officers and firm admins only (other roles: 403, like every role check of
the API); an event of another firm answers 404 exactly like a missing one. Bad search
input answers 400 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role, User
from advisor.api.pagination import DefaultPagination
from advisor.api.permissions import HasRole
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView
from compliance.exports import csv_stream_response
from compliance.models import AuditEvent, ChainVerification
from compliance.selectors_audit import (
    EXPORT_COLUMNS,
    AuditSearch,
    AuditSearchError,
    audit_event_detail,
    audit_event_search,
    audit_export_rows,
    audit_search_parse,
)
from compliance.selectors_reports import exception_report, period_parse
from compliance.services.verification import audit_chain_verification_run

AUDIT_READERS = (Role.COMPLIANCE, Role.FIRM_ADMIN)
TAGS = ["compliance console"]
MAX_ID = 2**63 - 1


def _search(request: Request) -> AuditSearch:
    try:
        return audit_search_parse(request.query_params)
    except AuditSearchError as exc:
        raise ValidationError({exc.field: [exc.message]}) from None


SEARCH_PARAMETERS = [
    OpenApiParameter("client", int, description="A client: its events, its portfolios'."),
    OpenApiParameter("household", int, description="A household, its clients and portfolios."),
    OpenApiParameter("portfolio", int, description="A portfolio, its run rows and orders."),
    OpenApiParameter("actor", str, description="Username or system job name (exact)."),
    OpenApiParameter("action", str, description="Action prefix, e.g. `rebalance.`."),
    OpenApiParameter("run", str, description="A rebalance run id."),
    OpenApiParameter("object_type", str),
    OpenApiParameter("object_id", str),
    OpenApiParameter("seq", int, description="Position in the firm's chain."),
    OpenApiParameter("date_from", OpenApiTypes.DATE, description="First day (included)."),
    OpenApiParameter("date_to", OpenApiTypes.DATE, description="Last day (included)."),
    OpenApiParameter("q", str, description="Text in the event's reasons."),
]


class AuditEventSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "seq",
            "created_at",
            "actor",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "run_id",
            "request_id",
            "reasons",
        ]


class ChainVerificationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = ChainVerification
        fields = [
            "id",
            "checked_at",
            "ok",
            "events_checked",
            "first_broken_seq",
            "first_broken_event_id",
            "message",
            "triggered_by",
        ]


class ChainAtEventSerializer(serializers.Serializer):  # type: ignore[type-arg]
    link_ok = serializers.BooleanField(help_text="prev_hash is the previous event's hash.")
    content_ok = serializers.BooleanField(help_text="The content still hashes to hash.")
    state = serializers.ChoiceField(
        choices=["verified", "broken_here", "after_break", "not_checked"],
        help_text="What the last stored chain check says of this event.",
    )
    last_check = ChainVerificationSerializer(allow_null=True)


class AuditEventDetailSerializer(AuditEventSerializer):
    payload = serializers.JSONField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()
    previous_event_id = serializers.IntegerField(allow_null=True)
    previous_event_hash = serializers.CharField(allow_null=True)
    next_event_id = serializers.IntegerField(allow_null=True)
    chain = ChainAtEventSerializer()

    class Meta(AuditEventSerializer.Meta):
        fields = [
            *AuditEventSerializer.Meta.fields,
            "payload",
            "prev_hash",
            "hash",
            "previous_event_id",
            "previous_event_hash",
            "next_event_id",
            "chain",
        ]


class AuditEventListView(ListModelMixin, FirmScopedGenericAPIView):
    """Search the firm's audit trail, newest first (filters combine with AND)."""

    permission_classes = [IsAuthenticated, HasRole.of(*AUDIT_READERS)]
    serializer_class = AuditEventSerializer
    pagination_class = DefaultPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=AuditEvent).none()
        membership = self.current_membership
        return audit_event_search(firm=membership.firm, search=_search(self.request))

    @extend_schema(operation_id="audit_events_list", tags=TAGS, parameters=SEARCH_PARAMETERS)
    def get(self, request: Request) -> Response:
        return self.list(request)


class AuditEventDetailView(FirmScopedAPIView):
    """One event: payload, reasons, its hash, the link to the event before it, and the
    chain's verification state at this event."""

    permission_classes = [IsAuthenticated, HasRole.of(*AUDIT_READERS)]

    @extend_schema(
        operation_id="audit_events_retrieve", tags=TAGS, responses=AuditEventDetailSerializer
    )
    def get(self, request: Request, pk: int) -> Response:
        if pk > MAX_ID:
            raise NotFound()
        try:
            detail = audit_event_detail(firm=self.current_membership.firm, event_id=pk)
        except AuditEvent.DoesNotExist:
            raise NotFound() from None
        event = detail.event
        data: dict[str, Any] = dict(AuditEventSerializer(event).data)
        chain = detail.chain
        data.update(
            payload=event.payload,
            prev_hash=event.prev_hash,
            hash=event.hash,
            previous_event_id=detail.previous_id,
            previous_event_hash=detail.previous_hash,
            next_event_id=detail.next_id,
            chain={
                "link_ok": chain.link_ok,
                "content_ok": chain.content_ok,
                "state": chain.state,
                "last_check": ChainVerificationSerializer(chain.last_check).data
                if chain.last_check
                else None,
            },
        )
        return Response(data)


def audit_export_response(*, firm: Any, search: AuditSearch) -> StreamingHttpResponse:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return csv_stream_response(
        firm=firm,
        filename=f"audit-{firm.slug}-{stamp}.csv",
        header=EXPORT_COLUMNS,
        rows=lambda: audit_export_rows(firm=firm, search=search),
    )


class AuditEventExportView(FirmScopedAPIView):
    """The same search as CSV (every matching event, streamed as it is read)."""

    permission_classes = [IsAuthenticated, HasRole.of(*AUDIT_READERS)]

    @extend_schema(
        operation_id="audit_events_export",
        tags=TAGS,
        parameters=SEARCH_PARAMETERS,
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        return audit_export_response(firm=self.current_membership.firm, search=_search(request))


class ChainVerificationListView(ListModelMixin, FirmScopedGenericAPIView):
    """The firm's audit chain checks, newest first; POST runs one now (compliance officers)."""

    permission_classes = [
        IsAuthenticated,
        HasRole.of(Role.COMPLIANCE, read=AUDIT_READERS),
    ]
    serializer_class = ChainVerificationSerializer
    pagination_class = DefaultPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[ChainVerification]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=ChainVerification).none()
        return ChainVerification.objects.order_by("-checked_at", "-pk")

    @extend_schema(operation_id="audit_chain_verifications_list", tags=TAGS)
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="audit_chain_verifications_create",
        tags=TAGS,
        request=None,
        responses={201: ChainVerificationSerializer},
    )
    def post(self, request: Request) -> Response:
        user = request.user
        assert isinstance(user, User)
        verification = audit_chain_verification_run(firm=self.current_membership.firm, actor=user)
        return Response(
            ChainVerificationSerializer(verification).data, status=status.HTTP_201_CREATED
        )


class KindCountSerializer(serializers.Serializer):  # type: ignore[type-arg]
    kind = serializers.CharField()
    hard = serializers.IntegerField()
    soft = serializers.IntegerField()


class ExceptionReportSerializer(serializers.Serializer):  # type: ignore[type-arg]
    date_from = serializers.DateField(source="period.start")
    date_to = serializers.DateField(source="period.end")
    period_label = serializers.CharField(source="period.label")
    blocked_orders_count = serializers.IntegerField()
    blocked_portfolios_count = serializers.IntegerField()
    held_count = serializers.IntegerField()
    held_pending = serializers.IntegerField()
    held_released = serializers.IntegerField()
    held_rejected = serializers.IntegerField()
    skipped_count = serializers.IntegerField()
    skipped_by_reason = serializers.SerializerMethodField()
    rule_changes_count = serializers.IntegerField()
    by_rule_kind = KindCountSerializer(many=True)
    blocked_orders = serializers.SerializerMethodField()
    held_portfolios = serializers.SerializerMethodField()
    skipped = serializers.SerializerMethodField()
    rule_changes = serializers.SerializerMethodField()

    def get_skipped_by_reason(self, report: Any) -> list[dict[str, Any]]:
        return [{"reason": r, "count": n} for r, n in report.skipped_by_reason]

    def _rows(self, rows: Any) -> list[dict[str, Any]]:
        def plain(value: Any) -> Any:
            if isinstance(value, dt.datetime | dt.date):
                return value.isoformat()
            if isinstance(value, Decimal):
                return str(value)
            return list(value) if isinstance(value, tuple) else value

        return [{k: plain(v) for k, v in asdict(row).items()} for row in rows]

    def get_blocked_orders(self, report: Any) -> list[dict[str, Any]]:
        return self._rows(report.blocked_orders)

    def get_held_portfolios(self, report: Any) -> list[dict[str, Any]]:
        return self._rows(report.held_portfolios)

    def get_skipped(self, report: Any) -> list[dict[str, Any]]:
        return self._rows(report.skipped)

    def get_rule_changes(self, report: Any) -> list[dict[str, Any]]:
        return self._rows(report.rule_changes)


class ExceptionReportView(FirmScopedAPIView):
    """Exceptions of a period: blocked orders, held portfolios and how each was resolved,
    skipped portfolios with reasons, rule changes, failures by rule kind."""

    permission_classes = [IsAuthenticated, HasRole.of(*AUDIT_READERS)]

    @extend_schema(
        operation_id="exception_report",
        tags=TAGS,
        parameters=[
            OpenApiParameter("month", str, description="YYYY-MM (default: this month)."),
            OpenApiParameter("date_from", OpenApiTypes.DATE),
            OpenApiParameter("date_to", OpenApiTypes.DATE),
        ],
        responses=ExceptionReportSerializer,
    )
    def get(self, request: Request) -> Response:
        try:
            period = period_parse(request.query_params)
        except AuditSearchError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
        report = exception_report(firm=self.current_membership.firm, period=period)
        return Response(ExceptionReportSerializer(report).data)
