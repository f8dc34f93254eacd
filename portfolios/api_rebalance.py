"""API of batch rebalancing: runs, their proposals, decisions, the orders blotter.

Roles: advisors and firm admins start, approve and reject; compliance officers read;
investors read only their own portfolios' trades (``/portfolios/{id}/trades/``).
Advisors act only over the households assigned to them: a household or portfolio id
they cannot reach answers 404 exactly like a missing one, and they see the proposals
and orders of their households only. A service's :class:`RebalanceError` answers 400
naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.book_selectors import (
    FIRM_WIDE_ROLES,
    household_list_visible,
    portfolio_list_visible,
)
from accounts.models import Membership, Role
from accounts.tenancy import firm_context
from accounts.web import signed_in_user
from advisor.api.permissions import ALL_ROLES, HasRole
from advisor.api.serializers import ErrorResponseSerializer, StrictInputSerializer
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView
from portfolios.models_rebalance import (
    RUN_PORTFOLIO_WAITING,
    Order,
    OrderSide,
    OrderStatus,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
    RunTrigger,
)
from portfolios.selectors_rebalance import (
    order_list,
    orders_csv_lines,
    portfolio_trades,
    proposal_orders,
    reason_text,
    run_get_visible,
    run_list_visible,
    run_portfolio_get,
    run_portfolio_list,
    trigger_text,
)
from portfolios.services_execution import (
    rebalance_run_approve,
    rebalance_run_reject,
    run_portfolio_decide,
)
from portfolios.services_rebalance import RebalanceError, rebalance_run_start

DECIDERS = (Role.FIRM_ADMIN, Role.ADVISOR)
READERS = (Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE)
TAGS = ["rebalancing"]
MAX_ID = 2**63 - 1
WAITING = list(RUN_PORTFOLIO_WAITING)


# --- serializers -------------------------------------------------------------------------


class RunSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    trigger_label = serializers.CharField(source="get_trigger_display", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    progress = serializers.FloatField(read_only=True, help_text="0 to 1: portfolios computed.")

    class Meta:
        model = RebalanceRun
        fields = [
            "id",
            "trigger",
            "trigger_label",
            "preview",
            "scope",
            "status",
            "status_label",
            "progress",
            "prices_as_of",
            "portfolios_total",
            "portfolios_done",
            "portfolios_triggered",
            "chunks_total",
            "chunks_done",
            "orders_count",
            "orders_blocked",
            "orders_held",
            "buy_value",
            "sell_value",
            "timings",
            "error",
            "created_label",
            "created_at",
            "started_at",
            "computed_at",
            "decided_at",
            "decision_note",
            "finished_at",
        ]
        read_only_fields = fields


class RunPortfolioSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    portfolio_number = serializers.CharField(source="portfolio.number", read_only=True)
    household = serializers.CharField(source="portfolio.client.household.name", read_only=True)
    discretionary = serializers.BooleanField(source="portfolio.discretionary", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    trigger_text = serializers.SerializerMethodField()

    class Meta:
        model = RunPortfolio
        fields = [
            "portfolio_id",
            "portfolio_number",
            "household",
            "discretionary",
            "status",
            "status_label",
            "trigger",
            "trigger_text",
            "nav",
            "cash_before",
            "cash_flow",
            "cash_after",
            "max_drift",
            "turnover",
            "compliance_outcome",
            "approved_at",
        ]
        read_only_fields = fields

    def get_trigger_text(self, row: RunPortfolio) -> str:
        return trigger_text(row.trigger)


class FailureSerializer(serializers.Serializer):  # type: ignore[type-arg]
    rule_id = serializers.IntegerField()
    kind = serializers.CharField()
    outcome = serializers.IntegerField(help_text="1 soft (a second approver), 2 hard (blocked).")
    measured = serializers.FloatField(allow_null=True)
    limit = serializers.FloatField(allow_null=True)
    message = serializers.CharField()


class OrderSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    run_id = serializers.IntegerField(read_only=True)
    portfolio_id = serializers.IntegerField(read_only=True)
    portfolio_number = serializers.CharField(source="portfolio.number", read_only=True)
    symbol = serializers.CharField(source="asset.symbol", read_only=True)
    reason_text = serializers.SerializerMethodField()
    failures = FailureSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "run_id",
            "portfolio_id",
            "portfolio_number",
            "symbol",
            "side",
            "quantity",
            "price",
            "value",
            "estimated_cost",
            "status",
            "reason",
            "reason_text",
            "drift",
            "band",
            "compliance_outcome",
            "failures",
            "fill_quantity",
            "fill_price",
            "fill_cost",
            "filled_at",
        ]
        read_only_fields = fields

    def get_reason_text(self, order: Order) -> str:
        return reason_text(order.reason)


class ProposalSerializer(RunPortfolioSerializer):
    orders = serializers.SerializerMethodField()

    class Meta(RunPortfolioSerializer.Meta):
        fields = [*RunPortfolioSerializer.Meta.fields, "orders"]
        read_only_fields = fields

    @extend_schema_field(OrderSerializer(many=True))
    def get_orders(self, row: RunPortfolio) -> list[dict[str, Any]]:
        return list(OrderSerializer(proposal_orders(run_portfolio=row), many=True).data)


class RunStartInputSerializer(StrictInputSerializer):
    preview = serializers.BooleanField(
        default=True, help_text="True (the default): compute and show, never trade."
    )
    portfolio_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        allow_empty=False,
    )
    household_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        allow_empty=False,
    )
    as_of = serializers.DateField(required=False, help_text="Prices as of; today by default.")
    force = serializers.BooleanField(
        required=False, help_text="Trade portfolios inside their bands too."
    )


class NoteInputSerializer(StrictInputSerializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RejectInputSerializer(StrictInputSerializer):
    note = serializers.CharField(max_length=2000, help_text="Why: required.")


class DecisionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    portfolios = serializers.IntegerField(help_text="Portfolios the decision applied to.")
    run = RunSerializer()


class CsvRenderer(BaseRenderer):
    """Lets ``?format=csv`` through content negotiation; the CSV itself streams."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        # Only errors reach here (the blotter streams itself): keep the one error format.
        return json.dumps(data).encode()


# --- helpers -----------------------------------------------------------------------------


def _run(membership: Membership, pk: int) -> RebalanceRun:
    run = run_get_visible(membership=membership, run_id=pk) if pk < 2**63 else None
    if run is None:
        raise NotFound()
    return run


def _run_portfolio(membership: Membership, pk: int, portfolio_id: int) -> RunPortfolio:
    run = _run(membership, pk)
    row = (
        run_portfolio_get(membership=membership, run=run, portfolio_id=portfolio_id)
        if portfolio_id < 2**63
        else None
    )
    if row is None:
        raise NotFound()
    return row


def _ids_visible(ids: Sequence[int], visible: QuerySet[Any]) -> list[int]:
    wanted = sorted(set(ids))
    found = set(visible.filter(pk__in=wanted).values_list("pk", flat=True))
    if len(found) != len(wanted):
        raise NotFound()
    return wanted


def _service_error(exc: RebalanceError) -> ValidationError:
    return ValidationError({exc.field: [exc.message]})


def _decision(run: RebalanceRun, count: int) -> Response:
    run.refresh_from_db()
    return Response({"portfolios": count, "run": RunSerializer(run).data})


# --- views -------------------------------------------------------------------------------


class RunListView(ListModelMixin, FirmScopedGenericAPIView):
    """Rebalance runs of the firm, newest first; start one (a preview by default).

    Scope: ``portfolio_ids``, ``household_ids``, or neither for the book (an advisor's
    book is the households assigned to them). Runs compute after the request commits;
    poll the run for its progress."""

    permission_classes = [IsAuthenticated, HasRole.of(*DECIDERS, read=READERS)]
    serializer_class = RunSerializer

    def get_queryset(self) -> QuerySet[RebalanceRun]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=RebalanceRun).none()
        return run_list_visible(membership=self.current_membership)

    @extend_schema(operation_id="rebalance_runs_list", tags=TAGS)
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="rebalance_runs_start",
        tags=TAGS,
        request=RunStartInputSerializer,
        responses={
            201: RunSerializer,
            404: OpenApiResponse(
                ErrorResponseSerializer,
                description="A household or portfolio id that is missing, of another firm, "
                "or not assigned to the calling advisor.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = RunStartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        membership = self.current_membership
        portfolio_ids: list[int] | None = None
        household_ids: list[int] | None = None
        if "portfolio_ids" in fields:
            portfolio_ids = _ids_visible(
                fields["portfolio_ids"], portfolio_list_visible(membership=membership)
            )
        if "household_ids" in fields:
            household_ids = _ids_visible(
                fields["household_ids"], household_list_visible(membership=membership)
            )
        if (
            portfolio_ids is None
            and household_ids is None
            and membership.role not in (FIRM_WIDE_ROLES)
        ):
            household_ids = list(
                household_list_visible(membership=membership).values_list("pk", flat=True)
            )
        try:
            run = rebalance_run_start(
                trigger=RunTrigger.MANUAL,
                actor=signed_in_user(request),
                preview=fields["preview"],
                portfolio_ids=portfolio_ids,
                household_ids=household_ids,
                as_of=fields.get("as_of"),
                force=fields.get("force"),
            )
        except RebalanceError as exc:
            raise _service_error(exc) from exc
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunDetailView(FirmScopedAPIView):
    """One run: status, progress, counts and timings (poll it while it computes)."""

    permission_classes = [IsAuthenticated, HasRole.of(*READERS)]

    @extend_schema(operation_id="rebalance_runs_retrieve", tags=TAGS, responses=RunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunSerializer(_run(self.current_membership, pk)).data)


class RunApproveView(FirmScopedAPIView):
    """Approve a computed run: its discretionary portfolios' proposals execute;
    non-discretionary ones wait for their own approval. An advisor approves only a run
    whose waiting proposals are all of households assigned to them."""

    permission_classes = [IsAuthenticated, HasRole.of(*DECIDERS)]

    @extend_schema(
        operation_id="rebalance_runs_approve",
        tags=TAGS,
        request=NoteInputSerializer,
        responses={200: DecisionSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        membership = self.current_membership
        run = _run(membership, pk)
        data = NoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _require_whole_run(membership, run)
        try:
            count = rebalance_run_approve(
                run=run, actor=signed_in_user(request), note=data.validated_data["note"]
            )
        except RebalanceError as exc:
            raise _service_error(exc) from exc
        return _decision(run, count)


class RunRejectView(FirmScopedAPIView):
    """Reject every proposal of the run still waiting; ``note`` (why) is required."""

    permission_classes = [IsAuthenticated, HasRole.of(*DECIDERS)]

    @extend_schema(
        operation_id="rebalance_runs_reject",
        tags=TAGS,
        request=RejectInputSerializer,
        responses={200: DecisionSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        membership = self.current_membership
        run = _run(membership, pk)
        data = RejectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _require_whole_run(membership, run)
        try:
            count = rebalance_run_reject(
                run=run, actor=signed_in_user(request), note=data.validated_data["note"]
            )
        except RebalanceError as exc:
            raise _service_error(exc) from exc
        return _decision(run, count)


def _require_whole_run(membership: Membership, run: RebalanceRun) -> None:
    if membership.role in FIRM_WIDE_ROLES:
        return
    waiting = RunPortfolio.objects.filter(run=run, status__in=WAITING)
    visible = portfolio_list_visible(membership=membership)
    if waiting.exclude(portfolio__in=visible).exists():
        raise PermissionDenied(
            "This run holds proposals of households not assigned to you: decide your "
            "portfolios one by one, or ask a firm admin to decide the run."
        )


class RunPortfolioListView(ListModelMixin, FirmScopedGenericAPIView):
    """The run's portfolios (advisors: their households' only), largest drift first."""

    permission_classes = [IsAuthenticated, HasRole.of(*READERS)]
    serializer_class = RunPortfolioSerializer
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[RunPortfolio]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=RunPortfolio).none()
        membership = self.current_membership
        run = _run(membership, self.kwargs["pk"])
        wanted = self.request.query_params.get("status") or None
        if wanted is not None and wanted not in RunPortfolioStatus.values:
            raise ValidationError({"status": [f"one of {', '.join(RunPortfolioStatus.values)}"]})
        return run_portfolio_list(membership=membership, run=run, status=wanted)

    @extend_schema(
        operation_id="rebalance_run_portfolios_list",
        tags=TAGS,
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=RunPortfolioStatus.values)],
    )
    def get(self, request: Request, pk: int) -> Response:
        return self.list(request)


class RunPortfolioDetailView(FirmScopedAPIView):
    """One portfolio's proposal: its trigger, its orders with their reasons in plain
    words, and the compliance failures of each."""

    permission_classes = [IsAuthenticated, HasRole.of(*READERS)]

    @extend_schema(
        operation_id="rebalance_run_portfolios_retrieve", tags=TAGS, responses=ProposalSerializer
    )
    def get(self, request: Request, pk: int, portfolio_id: int) -> Response:
        row = _run_portfolio(self.current_membership, pk, portfolio_id)
        return Response(ProposalSerializer(row).data)


class _RunPortfolioDecideView(FirmScopedAPIView):
    permission_classes = [IsAuthenticated, HasRole.of(*DECIDERS)]
    approve = True
    input_class: type[StrictInputSerializer] = NoteInputSerializer

    def post(self, request: Request, pk: int, portfolio_id: int) -> Response:
        row = _run_portfolio(self.current_membership, pk, portfolio_id)
        data = self.input_class(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            row = run_portfolio_decide(
                run_portfolio=row,
                actor=signed_in_user(request),
                approve=self.approve,
                note=data.validated_data["note"],
            )
        except RebalanceError as exc:
            raise _service_error(exc) from exc
        return Response(ProposalSerializer(row).data)


class RunPortfolioApproveView(_RunPortfolioDecideView):
    """Approve one portfolio's proposal (how non-discretionary portfolios trade)."""

    @extend_schema(
        operation_id="rebalance_run_portfolios_approve",
        tags=TAGS,
        request=NoteInputSerializer,
        responses={200: ProposalSerializer},
    )
    def post(self, request: Request, pk: int, portfolio_id: int) -> Response:
        return super().post(request, pk, portfolio_id)


class RunPortfolioRejectView(_RunPortfolioDecideView):
    """Reject one portfolio's proposal; ``note`` (why) is required."""

    approve = False
    input_class = RejectInputSerializer

    @extend_schema(
        operation_id="rebalance_run_portfolios_reject",
        tags=TAGS,
        request=RejectInputSerializer,
        responses={200: ProposalSerializer},
    )
    def post(self, request: Request, pk: int, portfolio_id: int) -> Response:
        return super().post(request, pk, portfolio_id)


class OrderFilterSerializer(StrictInputSerializer):
    run = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    side = serializers.ChoiceField(choices=OrderSide.choices, required=False)
    asset = serializers.CharField(max_length=40, required=False, help_text="Symbol.")
    portfolio = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    date_from = serializers.DateField(required=False, help_text="Run started on or after.")
    date_to = serializers.DateField(required=False, help_text="Run started on or before.")
    format = serializers.ChoiceField(choices=["json", "csv"], required=False)
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, required=False)


class OrderListView(ListModelMixin, FirmScopedGenericAPIView):
    """The orders blotter, newest run first: filter by run, status, side, asset,
    portfolio and the day runs started; ``?format=csv`` streams it all as CSV."""

    permission_classes = [IsAuthenticated, HasRole.of(*READERS)]
    serializer_class = OrderSerializer
    renderer_classes = [JSONRenderer, CsvRenderer]
    filter_backends: list[Any] = []

    def _filters(self) -> dict[str, Any]:
        data = OrderFilterSerializer(data=self.request.query_params.dict())
        data.is_valid(raise_exception=True)
        return dict(data.validated_data)

    def get_queryset(self) -> QuerySet[Order]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=Order).none()
        f = self._filters()
        return order_list(
            membership=self.current_membership,
            run_id=f.get("run"),
            status=f.get("status"),
            side=f.get("side"),
            asset=f.get("asset"),
            portfolio_id=f.get("portfolio"),
            date_from=f.get("date_from"),
            date_to=f.get("date_to"),
        )

    @extend_schema(
        operation_id="orders_list",
        tags=TAGS,
        parameters=[
            OpenApiParameter("run", OpenApiTypes.INT),
            OpenApiParameter("status", OpenApiTypes.STR, enum=OrderStatus.values),
            OpenApiParameter("side", OpenApiTypes.STR, enum=OrderSide.values),
            OpenApiParameter("asset", OpenApiTypes.STR),
            OpenApiParameter("portfolio", OpenApiTypes.INT),
            OpenApiParameter("date_from", OpenApiTypes.DATE),
            OpenApiParameter("date_to", OpenApiTypes.DATE),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
        ],
        responses={200: OpenApiResponse(OrderSerializer(many=True), description="JSON, or CSV.")},
    )
    def get(self, request: Request) -> Any:
        if request.accepted_renderer.format == "csv":
            orders = self.get_queryset()
            firm = self.current_membership.firm
            response = StreamingHttpResponse(
                _stream(firm, orders), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = 'attachment; filename="orders.csv"'
            return response
        return self.list(request)


def _stream(firm: Any, orders: QuerySet[Order]) -> Iterator[str]:
    """Runs after the request's transaction has ended: its own firm and transaction."""
    with firm_context(firm), transaction.atomic():
        yield from orders_csv_lines(orders)


class PortfolioTradesView(ListModelMixin, FirmScopedGenericAPIView):
    """A portfolio's filled trades with their reasons in plain words, newest first.
    Investors: their own portfolios; staff: the portfolios they see."""

    permission_classes = [IsAuthenticated, HasRole.of(*ALL_ROLES)]
    serializer_class = OrderSerializer
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Order]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=Order).none()
        pk = self.kwargs["pk"]
        trades = (
            portfolio_trades(membership=self.current_membership, portfolio_id=pk)
            if pk < 2**63
            else None
        )
        if trades is None:
            raise NotFound()
        return trades

    @extend_schema(operation_id="portfolios_trades_list", tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return self.list(request)
