"""API of the profile-to-strategy mapping: model portfolios, the firm's mapping, strategy
assignments (mapped or overridden) and compliance decisions on overrides."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
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
    User,
)
from accounts.risk_selectors import assignment_list_visible, profile_list_visible
from accounts.strategy_services import (
    ASSET_CLASSES,
    model_portfolio_create,
    risk_mapping_set,
    strategy_assign_from_profile,
    strategy_override,
    strategy_override_decide,
)
from advisor.api.permissions import ALL_ROLES, HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView

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


class MappingRowSerializer(serializers.Serializer):  # type: ignore[type-arg]
    risk_level = serializers.IntegerField()
    model_portfolio_id = serializers.IntegerField()


class MappingInputSerializer(StrictInputSerializer):
    """Risk level -> model portfolio id; levels not sent keep theirs."""

    mapping = serializers.DictField(child=serializers.IntegerField(min_value=1))


class AssignmentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    client_id = serializers.IntegerField(read_only=True)
    profile_id = serializers.IntegerField(read_only=True)
    model_portfolio_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = StrategyAssignment
        fields = [
            "id",
            "client_id",
            "profile_id",
            "model_portfolio_id",
            "source",
            "status",
            "rationale",
            "outside_band",
            "decision_note",
            "decided_at",
            "created_at",
        ]


class AssignmentInputSerializer(StrictInputSerializer):
    """Map a current profile to its strategy; with model_portfolio_id, override it (with a
    rationale; outside the profile's band it waits for compliance approval)."""

    profile_id = serializers.IntegerField(min_value=1)
    model_portfolio_id = serializers.IntegerField(min_value=1, required=False)
    rationale = serializers.CharField(max_length=2000, required=False, default="")


class DecisionInputSerializer(StrictInputSerializer):
    """Approve or reject an override outside the risk band (a rejection needs a note)."""

    approve = serializers.BooleanField()
    note = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


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
        portfolio = model_portfolio_create(actor=_user(request), **data.validated_data)
        return Response(ModelPortfolioSerializer(portfolio).data, status=status.HTTP_201_CREATED)


class RiskMappingView(FirmScopedAPIView):
    """The firm's mapping from risk level to model portfolio; firm admins change it."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=STAFF)]

    def _rows(self) -> list[dict[str, int]]:
        return [
            {"risk_level": m.risk_level, "model_portfolio_id": m.model_portfolio_id}
            for m in RiskLevelMapping.objects.order_by("risk_level")
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
        wanted: dict[int, ModelPortfolio] = {}
        errors: dict[str, list[str]] = {}
        portfolios = {p.pk: p for p in ModelPortfolio.objects.all()}
        for key, portfolio_id in data.validated_data["mapping"].items():
            level = int(key) if str(key).isdigit() else 0
            if not 1 <= level <= 10:
                errors[f"mapping.{key}"] = ["a risk level is 1-10"]
            elif portfolio_id not in portfolios:
                errors[f"mapping.{key}"] = ["no such model portfolio"]
            else:
                wanted[level] = portfolios[portfolio_id]
        if errors:
            raise ValidationError(errors)
        risk_mapping_set(actor=_user(request), mapping=wanted)
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
        return assignment_list_visible(membership=self.current_membership)

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
        if portfolio_id is None:
            assignment = strategy_assign_from_profile(profile=profile, actor=_user(request))
        else:
            portfolio = ModelPortfolio.objects.filter(pk=portfolio_id).first()
            if portfolio is None:
                raise ValidationError({"model_portfolio_id": ["no such model portfolio"]})
            assignment = strategy_override(
                profile=profile,
                model_portfolio=portfolio,
                actor=_user(request),
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
            assignment=found, actor=_user(request), **data.validated_data
        )
        return Response(AssignmentSerializer(decided).data)
