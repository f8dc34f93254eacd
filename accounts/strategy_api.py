"""API of the profile-to-strategy mapping: model portfolios, the firm's mapping, strategy
assignments (mapped or overridden) and compliance decisions on overrides."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.book_selectors import client_can_change
from accounts.models import (
    Client,
    ModelPortfolio,
    RiskLevelMapping,
    Role,
    StrategyAssignment,
)
from accounts.risk_selectors import assignment_list_visible, profile_list_visible
from accounts.strategy_services import (
    ASSET_CLASSES,
    Target,
    model_portfolio_create,
    risk_mapping_set,
    strategy_assign_from_profile,
    strategy_override,
    strategy_override_decide,
)
from accounts.web import signed_in_user
from advisor.api.permissions import ALL_ROLES, HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView
from portfolios.models_strategy import Strategy, StrategyStatus

STAFF = (Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE)


class ModelPortfolioSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    weights = serializers.DictField(child=serializers.CharField())

    class Meta:
        model = ModelPortfolio
        fields = [
            "id",
            "name",
            "description",
            "weights",
            "min_risk_level",
            "max_risk_level",
            "bad_year_return",
            "is_active",
        ]


class ModelPortfolioInputSerializer(StrictInputSerializer):
    """A placeholder strategy: asset-class weights (adding up to 1) and its risk band."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=2000, required=False, default="")
    weights = serializers.DictField(
        child=serializers.DecimalField(max_digits=6, decimal_places=4),
        help_text="asset class (" + ", ".join(ASSET_CLASSES) + ") -> weight",
    )
    min_risk_level = serializers.IntegerField(min_value=1, max_value=10)
    max_risk_level = serializers.IntegerField(min_value=1, max_value=10)
    bad_year_return = serializers.DecimalField(
        max_digits=5, decimal_places=4, min_value=Decimal(-1), max_value=Decimal(0)
    )


class TargetSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """What a level maps to / a client follows: a strategy or a placeholder model portfolio."""

    type = serializers.ChoiceField(choices=["strategy", "model_portfolio"])
    id = serializers.IntegerField()
    name = serializers.CharField()


class MappingRowSerializer(serializers.Serializer):  # type: ignore[type-arg]
    risk_level = serializers.IntegerField()
    model_portfolio_id = serializers.IntegerField(allow_null=True)
    strategy_id = serializers.IntegerField(allow_null=True)
    target = TargetSerializer()


class MappingInputSerializer(StrictInputSerializer):
    """Risk level -> model portfolio id (``mapping``) and/or risk level -> strategy id
    (``strategies``); a level is in at most one of them; levels not sent keep theirs."""

    mapping = serializers.DictField(child=serializers.IntegerField(min_value=1), required=False)
    strategies = serializers.DictField(child=serializers.IntegerField(min_value=1), required=False)


def _target_names(
    *, strategy_ids: set[int], portfolio_ids: set[int]
) -> tuple[dict[int, str], dict[int, str]]:
    return (
        dict(Strategy.objects.filter(pk__in=strategy_ids).values_list("pk", "name")),
        dict(ModelPortfolio.objects.filter(pk__in=portfolio_ids).values_list("pk", "name")),
    )


def _target(
    strategy_id: int | None,
    portfolio_id: int | None,
    names: tuple[dict[int, str], dict[int, str]],
) -> dict[str, object]:
    if strategy_id is not None:
        return {"type": "strategy", "id": strategy_id, "name": names[0].get(strategy_id, "")}
    assert portfolio_id is not None
    return {"type": "model_portfolio", "id": portfolio_id, "name": names[1].get(portfolio_id, "")}


class AssignmentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    client_id = serializers.IntegerField(read_only=True)
    profile_id = serializers.IntegerField(read_only=True)
    model_portfolio_id = serializers.IntegerField(read_only=True, allow_null=True)
    strategy_id = serializers.IntegerField(read_only=True, allow_null=True)
    target = serializers.SerializerMethodField()

    class Meta:
        model = StrategyAssignment
        fields = [
            "id",
            "client_id",
            "profile_id",
            "model_portfolio_id",
            "strategy_id",
            "target",
            "source",
            "status",
            "rationale",
            "outside_band",
            "decision_note",
            "decided_at",
            "created_at",
        ]

    @extend_schema_field(TargetSerializer)
    def get_target(self, obj: StrategyAssignment) -> dict[str, object]:
        names = (
            {obj.strategy_id: obj.strategy.name} if obj.strategy_id and obj.strategy else {},
            {obj.model_portfolio_id: obj.model_portfolio.name}
            if obj.model_portfolio_id and obj.model_portfolio
            else {},
        )
        return _target(obj.strategy_id, obj.model_portfolio_id, names)


class AssignmentInputSerializer(StrictInputSerializer):
    """Map a current profile to its strategy; with strategy_id or model_portfolio_id (not
    both), override it (with a rationale; outside the target's band it waits for compliance
    approval)."""

    profile_id = serializers.IntegerField(min_value=1)
    strategy_id = serializers.IntegerField(min_value=1, required=False)
    model_portfolio_id = serializers.IntegerField(min_value=1, required=False)
    rationale = serializers.CharField(max_length=2000, required=False, default="")


class DecisionInputSerializer(StrictInputSerializer):
    """Approve or reject an override outside the risk band (a rejection needs a note)."""

    approve = serializers.BooleanField()
    note = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class ModelPortfolioListView(ListModelMixin, FirmScopedGenericAPIView):
    """The firm's model portfolios (placeholder strategies); firm admins add them."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=ALL_ROLES)]
    serializer_class = ModelPortfolioSerializer

    def get_queryset(self) -> QuerySet[ModelPortfolio]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=ModelPortfolio).none()
        return ModelPortfolio.objects.order_by("min_risk_level", "name", "pk")

    @extend_schema(operation_id="model_portfolios_list", tags=["strategies"])
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="model_portfolios_create",
        tags=["strategies"],
        request=ModelPortfolioInputSerializer,
        responses={201: ModelPortfolioSerializer},
    )
    def post(self, request: Request) -> Response:
        data = ModelPortfolioInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if ModelPortfolio.objects.filter(name=data.validated_data["name"]).exists():
            raise ValidationError({"name": ["a model portfolio with this name exists"]})
        portfolio = model_portfolio_create(actor=signed_in_user(request), **data.validated_data)
        return Response(ModelPortfolioSerializer(portfolio).data, status=status.HTTP_201_CREATED)


class RiskMappingView(FirmScopedAPIView):
    """The firm's mapping from risk level to model portfolio; firm admins change it."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=STAFF)]

    def _rows(self) -> list[dict[str, object]]:
        rows = list(RiskLevelMapping.objects.order_by("risk_level"))
        names = _target_names(
            strategy_ids={m.strategy_id for m in rows if m.strategy_id},
            portfolio_ids={m.model_portfolio_id for m in rows if m.model_portfolio_id},
        )
        return [
            {
                "risk_level": m.risk_level,
                "model_portfolio_id": m.model_portfolio_id,
                "strategy_id": m.strategy_id,
                "target": _target(m.strategy_id, m.model_portfolio_id, names),
            }
            for m in rows
        ]

    @extend_schema(
        operation_id="risk_mapping_retrieve",
        tags=["strategies"],
        responses={200: MappingRowSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(MappingRowSerializer(self._rows(), many=True).data)

    @extend_schema(
        operation_id="risk_mapping_update",
        tags=["strategies"],
        request=MappingInputSerializer,
        responses={200: MappingRowSerializer(many=True)},
    )
    def put(self, request: Request) -> Response:
        data = MappingInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wanted: dict[int, Target] = {}
        errors: dict[str, list[str]] = {}
        by_portfolio = data.validated_data.get("mapping") or {}
        by_strategy = data.validated_data.get("strategies") or {}
        if not by_portfolio and not by_strategy:
            raise ValidationError({"mapping": ["send mapping and/or strategies"]})
        portfolios: dict[int, Target] = {p.pk: p for p in ModelPortfolio.objects.all()}
        # Firm-scoped: a foreign firm's strategy is "no such strategy", like a missing one.
        strategies: dict[int, Target] = {
            s.pk: s for s in Strategy.objects.filter(status=StrategyStatus.ACTIVE)
        }
        for field, given, known, noun in (
            ("mapping", by_portfolio, portfolios, "model portfolio"),
            ("strategies", by_strategy, strategies, "active strategy"),
        ):
            for key, target_id in given.items():
                level = int(key) if str(key).isdigit() else 0
                if not 1 <= level <= 10:
                    errors[f"{field}.{key}"] = ["a risk level is 1-10"]
                elif target_id not in known:
                    errors[f"{field}.{key}"] = [f"no such {noun}"]
                elif level in wanted:
                    errors[f"{field}.{key}"] = ["a level maps to one strategy or model portfolio"]
                else:
                    wanted[level] = known[target_id]
        if errors:
            raise ValidationError(errors)
        risk_mapping_set(actor=signed_in_user(request), mapping=wanted)
        return Response(MappingRowSerializer(self._rows(), many=True).data)


class AssignmentListView(ListModelMixin, FirmScopedGenericAPIView):
    """Strategy assignments of the clients you see; map or override a profile."""

    permission_classes = [
        IsAuthenticated,
        HasRole.of(Role.FIRM_ADMIN, Role.ADVISOR, read=ALL_ROLES),
    ]
    serializer_class = AssignmentSerializer

    def get_queryset(self) -> QuerySet[StrategyAssignment]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=StrategyAssignment).none()
        # The target's name in each row, without a query per row.
        return assignment_list_visible(membership=self.current_membership).select_related(
            "strategy", "model_portfolio"
        )

    @extend_schema(operation_id="strategy_assignments_list", tags=["strategies"])
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="strategy_assignments_create",
        tags=["strategies"],
        request=AssignmentInputSerializer,
        responses={201: AssignmentSerializer},
    )
    def post(self, request: Request) -> Response:
        data = AssignmentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = self.current_membership
        profile = (
            profile_list_visible(membership=membership)
            .filter(pk=data.validated_data["profile_id"])
            .first()
        )
        if profile is None:
            raise ValidationError({"profile_id": ["no such risk profile"]})
        client = Client.objects.get(pk=profile.client_id)
        if not client_can_change(membership=membership, client=client):
            raise PermissionDenied("You may not change this client's household.")
        portfolio_id = data.validated_data.get("model_portfolio_id")
        strategy_id = data.validated_data.get("strategy_id")
        if portfolio_id is not None and strategy_id is not None:
            raise ValidationError(
                {"strategy_id": ["send strategy_id or model_portfolio_id, not both"]}
            )
        if portfolio_id is None and strategy_id is None:
            assignment = strategy_assign_from_profile(
                profile=profile, actor=signed_in_user(request)
            )
        elif strategy_id is not None:
            # Firm-scoped: a foreign firm's strategy is refused like a missing one.
            strategy = Strategy.objects.filter(pk=strategy_id).first()
            if strategy is None:
                raise ValidationError({"strategy_id": ["no such strategy"]})
            assignment = strategy_override(
                profile=profile,
                strategy=strategy,
                actor=signed_in_user(request),
                rationale=data.validated_data["rationale"],
            )
        else:
            portfolio = ModelPortfolio.objects.filter(pk=portfolio_id).first()
            if portfolio is None:
                raise ValidationError({"model_portfolio_id": ["no such model portfolio"]})
            assignment = strategy_override(
                profile=profile,
                model_portfolio=portfolio,
                actor=signed_in_user(request),
                rationale=data.validated_data["rationale"],
            )
        return Response(AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)


class AssignmentDecisionView(FirmScopedAPIView):
    """The compliance officer approves or rejects an override outside the risk band."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.COMPLIANCE)]

    @extend_schema(
        operation_id="strategy_assignments_decide",
        tags=["strategies"],
        request=DecisionInputSerializer,
        responses={200: AssignmentSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        assignment = assignment_list_visible(membership=self.current_membership).filter(pk=pk)
        found = assignment.first()
        if found is None:
            raise NotFound()
        data = DecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decided = strategy_override_decide(
            assignment=found, actor=signed_in_user(request), **data.validated_data
        )
        return Response(AssignmentSerializer(decided).data)
