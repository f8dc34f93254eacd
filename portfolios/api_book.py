"""API of portfolio state: rebalancing policies, a portfolio's strategy and policy, its
holdings, ledger and cash flows, and the book's drift matrix.

Thin views: validate, call one service or selector, serialise. A portfolio is reached
through :func:`accounts.book_selectors.portfolio_list_visible` (advisors: their
households; investors: their own), so another advisor's portfolio, like another
firm's, answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.book_selectors import client_can_change, portfolio_list_visible
from accounts.models import Client, Membership, Role
from accounts.web import signed_in_user
from advisor.api.permissions import ALL_ROLES, HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView
from portfolios.models import Portfolio
from portfolios.models_holdings import CashFlow, CashFlowKind, LedgerEntry, LedgerKind
from portfolios.models_rebalance import (
    POLICY_RULE_FIELDS,
    Calendar,
    LotMethod,
    RebalancePolicy,
    TriggerMode,
)
from portfolios.models_strategy import Strategy
from portfolios.selectors_book import (
    book_drift_matrix,
    cash_flow_list,
    portfolio_holdings,
    portfolio_ledger,
    rebalance_policy_get,
    rebalance_policy_list,
)
from portfolios.services_book import (
    cash_flow_cancel,
    cash_flow_request,
    portfolio_policy_set,
    portfolio_strategy_set,
    rebalance_policy_create,
    rebalance_policy_delete,
    rebalance_policy_update,
    strategy_policy_set,
)

BOOK_WRITERS = (Role.FIRM_ADMIN, Role.ADVISOR)
POLICY_READERS = (Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE)
TAGS = ["portfolio state"]

# --- serializers ---------------------------------------------------------------------------


class PolicySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = RebalancePolicy
        fields = ["id", "name", "is_firm_default", *POLICY_RULE_FIELDS, "updated_at"]


class PolicyInputSerializer(StrictInputSerializer):
    """A policy's fields; unset ones take the defaults (create) or keep their value
    (change). Shares are decimals: 0.05 is 5 percentage points."""

    name = serializers.CharField(max_length=200)
    is_firm_default = serializers.BooleanField(required=False)
    trigger_mode = serializers.ChoiceField(choices=TriggerMode.choices, required=False)
    calendar = serializers.ChoiceField(choices=Calendar.choices, required=False)
    abs_band = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True
    )
    rel_band = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True
    )
    to_band_edge = serializers.BooleanField(required=False)
    cash_target = serializers.DecimalField(max_digits=9, decimal_places=6, required=False)
    cash_floor = serializers.DecimalField(max_digits=9, decimal_places=6, required=False)
    min_trade_value = serializers.DecimalField(max_digits=20, decimal_places=2, required=False)
    cost_bps = serializers.DecimalField(max_digits=8, decimal_places=4, required=False)
    cost_fixed = serializers.DecimalField(max_digits=20, decimal_places=2, required=False)
    max_cost_ratio = serializers.DecimalField(max_digits=9, decimal_places=6, required=False)
    fractional = serializers.BooleanField(required=False)
    buy_only_on_deposit = serializers.BooleanField(required=False)
    sell_only_on_withdrawal = serializers.BooleanField(required=False)
    lot_method = serializers.ChoiceField(choices=LotMethod.choices, required=False)
    avoid_short_term_gains = serializers.BooleanField(required=False)
    wash_sale_days = serializers.IntegerField(min_value=0, max_value=366, required=False)


class PolicyRefInputSerializer(StrictInputSerializer):
    """The policy to use (null: fall back to the strategy's, then the firm default)."""

    policy_id = serializers.IntegerField(min_value=1, allow_null=True)


class StrategyRefInputSerializer(StrictInputSerializer):
    """An active strategy of the firm (null: follow the client's assignment)."""

    strategy_id = serializers.IntegerField(min_value=1, allow_null=True)


class PortfolioStateSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    client_id = serializers.IntegerField(read_only=True)
    strategy_id = serializers.IntegerField(read_only=True, allow_null=True)
    rebalance_policy_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Portfolio
        fields = [
            "id",
            "client_id",
            "number",
            "account_type",
            "status",
            "strategy_id",
            "rebalance_policy_id",
            "cash",
            "last_rebalanced_on",
        ]


class HoldingRowSerializer(serializers.Serializer):  # type: ignore[type-arg]
    asset_id = serializers.IntegerField(allow_null=True)
    symbol = serializers.CharField()
    name = serializers.CharField()
    asset_class = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=28, decimal_places=10)
    price = serializers.DecimalField(max_digits=28, decimal_places=10, allow_null=True)
    price_date = serializers.DateField(allow_null=True)
    value = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
    weight = serializers.DecimalField(max_digits=12, decimal_places=8, allow_null=True)
    target_weight = serializers.DecimalField(max_digits=12, decimal_places=8)
    drift = serializers.DecimalField(max_digits=12, decimal_places=8, allow_null=True)


class HoldingsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    portfolio_id = serializers.IntegerField()
    cash = serializers.DecimalField(max_digits=20, decimal_places=2)
    invested = serializers.DecimalField(max_digits=20, decimal_places=2)
    nav = serializers.DecimalField(max_digits=20, decimal_places=2)
    strategy_id = serializers.IntegerField(allow_null=True)
    strategy_version = serializers.IntegerField(allow_null=True)
    cash_target = serializers.DecimalField(max_digits=9, decimal_places=6)
    rows = HoldingRowSerializer(many=True)
    unpriced = serializers.ListField(child=serializers.CharField())


class LedgerEntrySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    symbol = serializers.SerializerMethodField()

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "kind",
            "trade_date",
            "symbol",
            "quantity",
            "price",
            "amount",
            "realised_gain",
            "run",
            "order",
            "note",
        ]

    def get_symbol(self, entry: LedgerEntry) -> str | None:
        return entry.asset.symbol if entry.asset is not None else None


class CashFlowSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    portfolio_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = CashFlow
        fields = [
            "id",
            "portfolio_id",
            "kind",
            "amount",
            "status",
            "requested_at",
            "processed_at",
            "run",
        ]


class CashFlowInputSerializer(StrictInputSerializer):
    """A deposit or withdrawal in dollars and cents (a withdrawal at most the value)."""

    kind = serializers.ChoiceField(choices=CashFlowKind.choices)
    amount = serializers.DecimalField(max_digits=20, decimal_places=2, min_value=0)


class CashFlowCancelInputSerializer(StrictInputSerializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class DriftRowSerializer(serializers.Serializer):  # type: ignore[type-arg]
    portfolio_id = serializers.IntegerField()
    number = serializers.CharField()
    household_id = serializers.IntegerField()
    strategy_id = serializers.IntegerField(allow_null=True)
    nav = serializers.DecimalField(max_digits=20, decimal_places=2)
    drift = serializers.DictField(child=serializers.DecimalField(max_digits=12, decimal_places=8))
    max_abs_drift = serializers.DecimalField(max_digits=12, decimal_places=8)


class DriftMatrixSerializer(serializers.Serializer):  # type: ignore[type-arg]
    asset_classes = serializers.ListField(child=serializers.CharField())
    rows = DriftRowSerializer(many=True)


# --- helpers -------------------------------------------------------------------------------


def _visible_portfolio(membership: Membership, pk: int) -> Portfolio:
    found = portfolio_list_visible(membership=membership).filter(pk=pk).first()
    if found is None:
        raise NotFound()
    return found


def _changeable_portfolio(membership: Membership, pk: int) -> Portfolio:
    portfolio = _visible_portfolio(membership, pk)
    client = Client.objects.get(pk=portfolio.client_id)
    if not client_can_change(membership=membership, client=client):
        raise PermissionDenied("You may not change this client's household.")
    return portfolio


def _policy(pk: int) -> RebalancePolicy:
    found = rebalance_policy_get(policy_id=pk)
    if found is None:
        raise NotFound()
    return found


def _policy_ref(value: int | None) -> RebalancePolicy | None:
    if value is None:
        return None
    found = rebalance_policy_get(policy_id=value)
    if found is None:
        raise ValidationError({"policy_id": ["no such policy"]})
    return found


# --- views ---------------------------------------------------------------------------------


class PolicyListView(ListModelMixin, FirmScopedGenericAPIView):
    """The firm's rebalancing policies (the default first); firm admins create them."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=POLICY_READERS)]
    serializer_class = PolicySerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[RebalancePolicy]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=RebalancePolicy).none()
        return rebalance_policy_list()

    @extend_schema(operation_id="policies_list", tags=TAGS)
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="policies_create",
        tags=TAGS,
        request=PolicyInputSerializer,
        responses={201: PolicySerializer},
    )
    def post(self, request: Request) -> Response:
        data = PolicyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = rebalance_policy_create(
            firm=self.current_membership.firm, actor=signed_in_user(request), **data.validated_data
        )
        return Response(PolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetailView(FirmScopedAPIView):
    """One policy; firm admins change it or delete it (when nothing uses it)."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=POLICY_READERS)]

    @extend_schema(operation_id="policies_retrieve", tags=TAGS, responses={200: PolicySerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(PolicySerializer(_policy(pk)).data)

    @extend_schema(
        operation_id="policies_update",
        tags=TAGS,
        request=PolicyInputSerializer(partial=True),
        responses={200: PolicySerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        policy = _policy(pk)
        data = PolicyInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        updated = rebalance_policy_update(
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            policy=policy,
            **data.validated_data,
        )
        return Response(PolicySerializer(updated).data)

    @extend_schema(operation_id="policies_delete", tags=TAGS, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        rebalance_policy_delete(
            firm=self.current_membership.firm, actor=signed_in_user(request), policy=_policy(pk)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class StrategyPolicyView(FirmScopedAPIView):
    """Set the rebalancing policy of a strategy (firm admins)."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN)]

    @extend_schema(
        operation_id="strategies_policy_set",
        tags=TAGS,
        request=PolicyRefInputSerializer,
        responses={200: PolicyRefInputSerializer},
    )
    def put(self, request: Request, pk: int) -> Response:
        strategy = Strategy.objects.filter(pk=pk).first()
        if strategy is None:
            raise NotFound()
        data = PolicyRefInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        strategy_policy_set(
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            strategy=strategy,
            policy=_policy_ref(data.validated_data["policy_id"]),
        )
        return Response({"policy_id": strategy.rebalance_policy_id})


class PortfolioPolicyView(FirmScopedAPIView):
    """Set a portfolio's own rebalancing policy (firm admins and its advisors)."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS)]

    @extend_schema(
        operation_id="portfolios_policy_set",
        tags=TAGS,
        request=PolicyRefInputSerializer,
        responses={200: PortfolioStateSerializer},
    )
    def put(self, request: Request, pk: int) -> Response:
        portfolio = _changeable_portfolio(self.current_membership, pk)
        data = PolicyRefInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        portfolio_policy_set(
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            portfolio=portfolio,
            policy=_policy_ref(data.validated_data["policy_id"]),
        )
        return Response(PortfolioStateSerializer(portfolio).data)


class PortfolioStrategyView(FirmScopedAPIView):
    """Set the strategy a portfolio follows (an active strategy of the firm)."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS)]

    @extend_schema(
        operation_id="portfolios_strategy_set",
        tags=TAGS,
        request=StrategyRefInputSerializer,
        responses={200: PortfolioStateSerializer},
    )
    def put(self, request: Request, pk: int) -> Response:
        portfolio = _changeable_portfolio(self.current_membership, pk)
        data = StrategyRefInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        strategy_id = data.validated_data["strategy_id"]
        strategy = None
        if strategy_id is not None:
            strategy = Strategy.objects.filter(pk=strategy_id).first()
            if strategy is None:
                raise ValidationError({"strategy_id": ["no such strategy"]})
        portfolio_strategy_set(
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            portfolio=portfolio,
            strategy=strategy,
        )
        return Response(PortfolioStateSerializer(portfolio).data)


class PortfolioHoldingsView(FirmScopedAPIView):
    """Holdings at the latest usable prices: value, weight, target weight and drift."""

    permission_classes = [IsAuthenticated, HasRole.of(*ALL_ROLES)]

    @extend_schema(
        operation_id="portfolios_holdings", tags=TAGS, responses={200: HoldingsSerializer}
    )
    def get(self, request: Request, pk: int) -> Response:
        portfolio = _visible_portfolio(self.current_membership, pk)
        return Response(HoldingsSerializer(portfolio_holdings(portfolio=portfolio)).data)


class PortfolioLedgerView(ListModelMixin, FirmScopedGenericAPIView):
    """The portfolio's ledger (deposits, withdrawals, buys, sells, fees), newest first;
    ``?kind=`` filters."""

    permission_classes = [IsAuthenticated, HasRole.of(*ALL_ROLES)]
    serializer_class = LedgerEntrySerializer

    def get_queryset(self) -> QuerySet[LedgerEntry]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=LedgerEntry).none()
        portfolio = _visible_portfolio(self.current_membership, self.kwargs["pk"])
        kind = self.request.query_params.get("kind") or None
        if kind is not None and kind not in LedgerKind.values:
            raise ValidationError({"kind": [f"one of {', '.join(LedgerKind.values)}"]})
        return portfolio_ledger(portfolio=portfolio, kind=kind)

    @extend_schema(operation_id="portfolios_ledger", tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return self.list(request)


class PortfolioCashFlowListView(ListModelMixin, FirmScopedGenericAPIView):
    """Deposits and withdrawals of a portfolio; firm admins and its advisors request them
    (a cash-flow rebalance starts once the request is saved)."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, read=ALL_ROLES)]
    serializer_class = CashFlowSerializer

    def get_queryset(self) -> QuerySet[CashFlow]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=CashFlow).none()
        portfolio = _visible_portfolio(self.current_membership, self.kwargs["pk"])
        return cash_flow_list(portfolio=portfolio)

    @extend_schema(operation_id="portfolios_cash_flows_list", tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="portfolios_cash_flows_create",
        tags=TAGS,
        request=CashFlowInputSerializer,
        responses={201: CashFlowSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        portfolio = _changeable_portfolio(self.current_membership, pk)
        data = CashFlowInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        flow = cash_flow_request(
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            portfolio=portfolio,
            **data.validated_data,
        )
        return Response(CashFlowSerializer(flow).data, status=status.HTTP_201_CREATED)


class CashFlowCancelView(FirmScopedAPIView):
    """Cancel a pending deposit or withdrawal."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS)]

    @extend_schema(
        operation_id="cash_flows_cancel",
        tags=TAGS,
        request=CashFlowCancelInputSerializer,
        responses={200: CashFlowSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        flow = CashFlow.objects.filter(pk=pk).first()
        if flow is None:
            raise NotFound()
        _changeable_portfolio(self.current_membership, flow.portfolio_id)
        data = CashFlowCancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cancelled = cash_flow_cancel(
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            cash_flow=flow,
            note=data.validated_data["note"],
        )
        return Response(CashFlowSerializer(cancelled).data)


class BookDriftView(FirmScopedAPIView):
    """Drift per asset class of every portfolio you see (a heat map's data): the class's
    weight in the portfolio minus its target, in weight units."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, Role.COMPLIANCE)]

    @extend_schema(operation_id="book_drift", tags=TAGS, responses={200: DriftMatrixSerializer})
    def get(self, request: Request) -> Response:
        matrix = book_drift_matrix(membership=self.current_membership)
        payload: dict[str, Any] = {"asset_classes": matrix.asset_classes, "rows": matrix.rows}
        return Response(DriftMatrixSerializer(payload).data)
