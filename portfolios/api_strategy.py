"""API of strategies and their model versions: /api/v1/strategies/...

Who may do what (firm roles):

* advisors and firm admins create and change strategies and compute versions;
* compliance officers read everything (strategies, versions, weights, inputs) to
  review what the machine did and why, but change nothing;
* investors have no access: a firm's strategy library, its parameters and its
  model versions are the firm's internal model management. A client sees the
  target and the plain-language explanation of the strategy their own portfolio
  follows, through their portfolio, not the library.

Bad strategy input (unknown asset, too little history, infeasible constraints)
answers 400 naming the problem, and no version is written.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role, User
from advisor.api.pagination import DefaultPagination
from advisor.api.permissions import HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView
from portfolios.engine.optimise import efficient_frontier
from portfolios.engine.types import Method, StrategyError
from portfolios.models_market import PriceFrequency
from portfolios.models_strategy import Strategy, StrategyStatus, StrategyVersion, VersionTrigger
from portfolios.selectors_strategy import (
    strategy_get,
    strategy_list,
    strategy_version_get,
    strategy_version_list,
)
from portfolios.services_strategy import (
    PARAMETER_NAMES,
    SCREENING_FIELDS,
    StrategyInputError,
    strategy_create,
    strategy_recommend,
    strategy_update,
    strategy_version_compute,
    version_frontier_request,
)

WRITERS = (Role.FIRM_ADMIN, Role.ADVISOR)
READERS = (Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE)
MAX_INT = 2**31 - 1
FRONTIER_POINTS = 20
TAGS = ["strategies"]

PARAMETERS_HELP = (
    "Method parameters (fields of the engine's OptimiseRequest): "
    + ", ".join(PARAMETER_NAMES)
    + ". Bounds are [minimum, maximum] pairs; symbols as in the universe."
)


# --- serializers -------------------------------------------------------------------


def _inline_choice(name: str, choices: list[str], help_text: str) -> type[serializers.ChoiceField]:
    """A choice field documented by a pattern of its choices.

    Not an enum: drf-spectacular names enum components by field name, and the same
    names (method, status) already carry other choice sets in this API.
    """

    field_class = type(name, (serializers.ChoiceField,), {})
    schema = {
        "type": "string",
        "pattern": "^(" + "|".join(choices) + ")$",
        "description": f"{help_text} One of: {', '.join(choices)}.",
    }
    return extend_schema_field(schema)(field_class)


MethodField = _inline_choice(
    "MethodField", [m.value for m in Method], "The optimisation method (see the engine)."
)
FrequencyField = _inline_choice(
    "FrequencyField", list(PriceFrequency.values), "Which prices the strategy is computed on."
)
StatusField = _inline_choice(
    "StatusField", list(StrategyStatus.values), "draft, active (has a version) or retired."
)
TriggerField = _inline_choice(
    "TriggerField", list(VersionTrigger.values), "Who or what computed the version."
)


class StrategySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None
    )
    parameters = serializers.DictField(read_only=True)
    screening = serializers.DictField(read_only=True)
    method = MethodField(choices=[m.value for m in Method], read_only=True)
    price_frequency = FrequencyField(choices=PriceFrequency.values, read_only=True)
    status = StatusField(choices=StrategyStatus.values, read_only=True)
    version_count = serializers.IntegerField(read_only=True, default=0)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True, default=None)

    class Meta:
        model = Strategy
        fields = [
            "id",
            "name",
            "method",
            "universe",
            "parameters",
            "price_frequency",
            "screening",
            "status",
            "risk_level_min",
            "risk_level_max",
            "explanation",
            "created_by",
            "created_at",
            "updated_at",
            "version_count",
            "latest_version",
        ]
        read_only_fields = fields


class StrategyInputSerializer(StrictInputSerializer):
    """A strategy's definition. Unknown assets or parameters answer 400 naming them."""

    name = serializers.CharField(max_length=200)
    method = MethodField(choices=[m.value for m in Method])
    universe = serializers.ListField(
        child=serializers.CharField(max_length=20), min_length=1, max_length=500
    )
    parameters = serializers.DictField(required=False, help_text=PARAMETERS_HELP)
    price_frequency = FrequencyField(choices=PriceFrequency.values, default=PriceFrequency.DAILY)
    screening = serializers.DictField(
        required=False,
        help_text="Index strategies: rules applied before selection, each exclusion recorded "
        "with its reason in the version's details: " + ", ".join(SCREENING_FIELDS) + ".",
    )
    status = StatusField(
        choices=StrategyStatus.values,
        default=StrategyStatus.DRAFT,
        help_text="A strategy becomes active once it has a computed version.",
    )
    risk_level_min = serializers.IntegerField(min_value=1, max_value=10, default=1)
    risk_level_max = serializers.IntegerField(min_value=1, max_value=10, default=10)
    explanation = serializers.CharField(
        allow_blank=True,
        required=False,
        max_length=5000,
        help_text="Plain language for clients; blank: the method's standard explanation.",
    )


class VersionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    strategy = serializers.IntegerField(source="strategy_id", read_only=True)
    weights = serializers.DictField(
        source="weights_ordered",
        child=serializers.CharField(),
        read_only=True,
        help_text="Symbol -> weight (universe order), a decimal string with 10 places; "
        "they sum to exactly 1.",
    )
    triggered_by = serializers.CharField(
        source="triggered_by.username", read_only=True, allow_null=True, default=None
    )
    method = MethodField(choices=[m.value for m in Method], read_only=True)
    trigger = TriggerField(choices=VersionTrigger.values, read_only=True)

    class Meta:
        model = StrategyVersion
        fields = [
            "strategy",
            "number",
            "method",
            "weights",
            "fingerprint",
            "prices_as_of",
            "prices_digest",
            "expected_return",
            "volatility",
            "sharpe_ratio",
            "risk_free_rate",
            "trigger",
            "triggered_by",
            "trigger_label",
            "created_at",
        ]
        read_only_fields = fields


class FrontierPointSerializer(serializers.Serializer):  # type: ignore[type-arg]
    volatility = serializers.FloatField()
    expected_return = serializers.FloatField()
    sharpe_ratio = serializers.FloatField()


class VersionDetailSerializer(VersionSerializer):
    inputs = serializers.DictField(read_only=True, help_text="The computation's parameters.")
    details = serializers.DictField(read_only=True)
    explanation = serializers.CharField(source="strategy.explanation", read_only=True)
    frontier = FrontierPointSerializer(
        many=True,
        read_only=True,
        help_text="The efficient frontier of the universe on this version's prices, "
        "least volatile first; the version itself is (volatility, expected_return).",
    )
    frontier_error = serializers.CharField(read_only=True, allow_null=True)

    class Meta(VersionSerializer.Meta):
        fields = [
            *VersionSerializer.Meta.fields,
            "inputs",
            "details",
            "explanation",
            "frontier",
            "frontier_error",
        ]
        read_only_fields = fields


class ComputeInputSerializer(StrictInputSerializer):
    """Compute a model version on the usable prices up to ``as_of`` (default: all)."""

    as_of = serializers.DateField(required=False)


class RecommendationInputSerializer(StrictInputSerializer):
    """A client's risk level and the universe to build the recommendation from."""

    risk_level = serializers.IntegerField(min_value=1, max_value=10)
    symbols = serializers.ListField(
        child=serializers.CharField(max_length=20), min_length=2, max_length=100
    )
    price_frequency = FrequencyField(choices=PriceFrequency.values, default=PriceFrequency.MONTHLY)
    backtest_start = serializers.DateField(required=False)
    backtest_end = serializers.DateField(required=False)
    costs_bps = serializers.FloatField(min_value=0, max_value=1000, default=5.0)


class AlternativeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    method = serializers.CharField()
    recommended = serializers.BooleanField()
    metrics = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        required=False,
        help_text="CAGR, volatility, Sharpe, Sortino, max drawdown, Calmar, ...",
    )
    turnover = serializers.FloatField(required=False)
    costs_paid = serializers.FloatField(required=False)
    error = serializers.CharField(required=False, help_text="Why this one could not be run.")


class RecommendationSerializer(serializers.Serializer):  # type: ignore[type-arg]
    risk_level = serializers.IntegerField()
    method = serializers.CharField()
    target_volatility = serializers.FloatField()
    parameters = serializers.DictField(help_text="Parameters to create the strategy with.")
    explanation = serializers.CharField()
    weights = serializers.DictField(child=serializers.CharField())
    expected_return = serializers.FloatField()
    volatility = serializers.FloatField()
    sharpe_ratio = serializers.FloatField()
    prices_as_of = serializers.CharField()
    backtest_start = serializers.DateField()
    alternatives = AlternativeSerializer(many=True)


# --- views -------------------------------------------------------------------------


def _actor(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


def _strategy_or_404(pk: int) -> Strategy:
    strategy = strategy_get(strategy_id=pk) if pk <= 2**63 - 1 else None
    if strategy is None:
        raise NotFound()
    return strategy


STATUS_PARAMETER = OpenApiParameter(
    "status", OpenApiTypes.STR, enum=StrategyStatus.values, required=False
)


class StrategyListView(ListModelMixin, FirmScopedGenericAPIView):
    """The firm's strategies; advisors and firm admins create them."""

    permission_classes = [IsAuthenticated, HasRole.of(*WRITERS, read=READERS)]
    serializer_class = StrategySerializer
    pagination_class = DefaultPagination

    def get_queryset(self) -> QuerySet[Strategy]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no firm
            return QuerySet(model=Strategy).none()
        wanted = self.request.query_params.get("status")
        return strategy_list(status=wanted if wanted in StrategyStatus.values else None)

    @extend_schema(operation_id="strategies_list", tags=TAGS, parameters=[STATUS_PARAMETER])
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="strategies_create",
        tags=TAGS,
        request=StrategyInputSerializer,
        responses={201: StrategySerializer},
        description="Advisors and firm admins. Audited as `strategy.created`.",
    )
    def post(self, request: Request) -> Response:
        data = StrategyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        strategy = strategy_create(actor=_actor(request), **values)
        return Response(
            StrategySerializer(_strategy_or_404(strategy.pk)).data, status=status.HTTP_201_CREATED
        )


class StrategyDetailView(FirmScopedAPIView):
    """One strategy; advisors and firm admins change it (versions already computed stay)."""

    permission_classes = [IsAuthenticated, HasRole.of(*WRITERS, read=READERS)]

    @extend_schema(
        operation_id="strategies_retrieve", tags=TAGS, responses={200: StrategySerializer}
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(StrategySerializer(_strategy_or_404(pk)).data)

    @extend_schema(
        operation_id="strategies_update",
        tags=TAGS,
        request=StrategyInputSerializer(partial=True),
        responses={200: StrategySerializer},
        description="Advisors and firm admins. Audited as `strategy.updated` with the "
        "values before and after.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        strategy = _strategy_or_404(pk)
        data = StrategyInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        strategy_update(strategy=strategy, actor=_actor(request), **dict(data.validated_data))
        return Response(StrategySerializer(_strategy_or_404(pk)).data)


class StrategyVersionListView(FirmScopedAPIView):
    """A strategy's model versions, newest first; POST computes one."""

    permission_classes = [IsAuthenticated, HasRole.of(*WRITERS, read=READERS)]
    pagination_class = DefaultPagination

    @extend_schema(
        operation_id="strategy_versions_list",
        tags=TAGS,
        responses={200: VersionSerializer(many=True)},
    )
    def get(self, request: Request, pk: int) -> Response:
        versions = strategy_version_list(strategy=_strategy_or_404(pk))
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(versions, request, view=self)
        return paginator.get_paginated_response(VersionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="strategy_versions_compute",
        tags=TAGS,
        request=ComputeInputSerializer,
        responses={201: VersionSerializer, 200: VersionSerializer},
        description="Advisors and firm admins. Runs the optimiser on usable prices (held "
        "prices are not used) and stores an immutable version (201), or answers 200 with "
        "the existing version when the inputs are identical (same fingerprint). Unknown "
        "assets, too little history and infeasible constraints answer 400 naming the "
        "problem; nothing is written then. Audited as `strategy.version_computed`.",
    )
    def post(self, request: Request, pk: int) -> Response:
        strategy = _strategy_or_404(pk)
        data = ComputeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version, created = strategy_version_compute(
            strategy=strategy,
            as_of=data.validated_data.get("as_of"),
            trigger=VersionTrigger.USER,
            actor=_actor(request),
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(VersionSerializer(version).data, status=code)


def frontier_of(version: StrategyVersion) -> tuple[list[dict[str, float]], str | None]:
    """The efficient frontier on the version's prices, or why it cannot be drawn."""
    try:
        request = version_frontier_request(version)
        points = efficient_frontier(request, points=FRONTIER_POINTS)
    except (StrategyInputError, StrategyError) as exc:
        messages = getattr(exc, "messages", None) or [str(exc)]
        return [], "; ".join(str(m) for m in messages)
    return [
        {
            "volatility": p.volatility,
            "expected_return": p.expected_return,
            "sharpe_ratio": p.sharpe_ratio,
        }
        for p in points
    ], None


class StrategyVersionDetailView(FirmScopedAPIView):
    """One model version: weights, inputs, the efficient frontier and the explanation."""

    permission_classes = [IsAuthenticated, HasRole.of(*WRITERS, read=READERS)]

    @extend_schema(
        operation_id="strategy_versions_retrieve",
        tags=TAGS,
        parameters=[
            OpenApiParameter(
                "frontier",
                OpenApiTypes.BOOL,
                required=False,
                description="Compute the efficient frontier (default true).",
            )
        ],
        responses={200: VersionDetailSerializer},
    )
    def get(self, request: Request, pk: int, number: int) -> Response:
        strategy = _strategy_or_404(pk)
        version = (
            strategy_version_get(strategy=strategy, number=number) if number <= MAX_INT else None
        )
        if version is None:
            raise NotFound()
        wanted = request.query_params.get("frontier", "true").lower() not in ("false", "0", "no")
        points, error = frontier_of(version) if wanted else ([], None)
        version.frontier = points  # type: ignore[attr-defined]
        version.frontier_error = error  # type: ignore[attr-defined]
        return Response(VersionDetailSerializer(version).data)


class StrategyRecommendationView(FirmScopedAPIView):
    """A risk level's recommended method and parameters, and the alternatives backtested."""

    permission_classes = [IsAuthenticated, HasRole.of(*READERS)]

    @extend_schema(
        operation_id="strategies_recommend",
        tags=TAGS,
        request=RecommendationInputSerializer,
        responses={200: RecommendationSerializer},
        description="Writes nothing. The recommendation (efficient risk at the risk "
        "level's target volatility, or minimum variance when the universe cannot be that "
        "calm) computed on usable prices, and beside it the walk-forward backtest of it and "
        "of its alternatives (minimum variance, HRP, risk parity, equal weight, dynamic).",
    )
    def post(self, request: Request) -> Response:
        data = RecommendationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values: dict[str, Any] = dict(data.validated_data)
        body = strategy_recommend(
            risk_level=values["risk_level"],
            symbols=values["symbols"],
            price_frequency=values["price_frequency"],
            backtest_start=values.get("backtest_start"),
            backtest_end=values.get("backtest_end"),
            costs_bps=values["costs_bps"],
        )
        return Response(RecommendationSerializer(body).data)


__all__ = [
    "StrategyDetailView",
    "StrategyListView",
    "StrategyRecommendationView",
    "StrategyVersionDetailView",
    "StrategyVersionListView",
]
