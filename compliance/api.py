"""Compliance API: the firm's rules (list, create, update, versions), rule-set versions,
the review queue of soft failures (release, reject) and "why this trade".

Reads of rules and rule sets: every staff role. Writes of rules, the review queue and
its decisions: compliance officers and firm admins (the services enforce the same,
and that the releaser is not the run's proposer). The order explanation: staff.
Another firm's object answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import STAFF_ROLES, Role
from accounts.web import signed_in_user
from advisor.api.permissions import HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView
from compliance import selectors
from compliance.models import ComplianceRule
from compliance.rules import RULE_KINDS, RuleParamError
from compliance.services.overrides import (
    OverrideError,
    held_portfolio_reject,
    held_portfolio_release,
)
from compliance.services.rule_management import (
    RulePermissionError,
    compliance_rule_create,
    compliance_rule_update,
    rule_version_data,
)
from portfolios.models_rebalance import Order, RunPortfolio

TAGS = ["compliance"]
MANAGERS = (Role.COMPLIANCE, Role.FIRM_ADMIN)


class RuleVersionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    version_id = serializers.IntegerField()
    number = serializers.IntegerField()
    kind = serializers.CharField()
    severity = serializers.ChoiceField(choices=["hard", "soft"])
    params = serializers.JSONField()
    strategy_ids = serializers.ListField(child=serializers.IntegerField())
    client_ids = serializers.ListField(child=serializers.IntegerField())
    active = serializers.BooleanField()


class RuleSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    active = serializers.BooleanField()
    current = RuleVersionSerializer()


class RuleInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=list(RULE_KINDS))
    severity = serializers.ChoiceField(choices=["hard", "soft"])
    params = serializers.JSONField(required=False, default=dict)
    strategy_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    client_ids = serializers.ListField(child=serializers.IntegerField(), required=False)


class RuleUpdateSerializer(StrictInputSerializer):
    severity = serializers.ChoiceField(choices=["hard", "soft"], required=False)
    params = serializers.JSONField(required=False)
    strategy_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    client_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    active = serializers.BooleanField(required=False)


class RuleSetSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    rule_version_ids = serializers.ListField(child=serializers.IntegerField())
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class OverrideDecisionInputSerializer(StrictInputSerializer):
    reason = serializers.CharField(allow_blank=True, max_length=4000)


class RunPortfolioDecisionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    run_portfolio_id = serializers.IntegerField()
    status = serializers.CharField()


def _rule_body(rule: ComplianceRule) -> dict[str, Any]:
    version = rule.current_version
    assert version is not None
    return {
        "id": rule.pk,
        "name": rule.name,
        "kind": rule.kind,
        "active": rule.active,
        "current": rule_version_data(version),
    }


def _rule(pk: int) -> ComplianceRule:
    rule = ComplianceRule.objects.select_related("current_version").filter(pk=pk).first()
    if rule is None:
        raise NotFound()
    return rule


def _service(call: Any, **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except RuleParamError as exc:
        raise ValidationError({exc.param: [exc.message]}) from None
    except OverrideError as exc:
        raise ValidationError({exc.field: [exc.message]}) from None
    except RulePermissionError as exc:
        raise PermissionDenied(str(exc)) from None


class RuleListView(FirmScopedAPIView):
    """The firm's compliance rules; compliance officers and firm admins add one."""

    permission_classes = [IsAuthenticated, HasRole.of(*MANAGERS, read=STAFF_ROLES)]

    @extend_schema(
        operation_id="compliance_rules_list", tags=TAGS, responses={200: RuleSerializer(many=True)}
    )
    def get(self, request: Request) -> Response:
        return Response([_rule_body(r) for r in selectors.rule_list()])

    @extend_schema(
        operation_id="compliance_rules_create",
        tags=TAGS,
        request=RuleInputSerializer,
        responses={201: RuleSerializer},
    )
    def post(self, request: Request) -> Response:
        data = RuleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = _service(
            compliance_rule_create,
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            **data.validated_data,
        )
        return Response(_rule_body(_rule(rule.pk)), status=status.HTTP_201_CREATED)


class RuleDetailView(FirmScopedAPIView):
    """One rule; a change writes a new version (and a new rule-set version)."""

    permission_classes = [IsAuthenticated, HasRole.of(*MANAGERS, read=STAFF_ROLES)]

    @extend_schema(
        operation_id="compliance_rules_retrieve", tags=TAGS, responses={200: RuleSerializer}
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(_rule_body(_rule(pk)))

    @extend_schema(
        operation_id="compliance_rules_update",
        tags=TAGS,
        request=RuleUpdateSerializer,
        responses={200: RuleSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        rule = _rule(pk)
        data = RuleUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _service(
            compliance_rule_update,
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            rule=rule,
            **data.validated_data,
        )
        return Response(_rule_body(_rule(pk)))


class RuleVersionListView(FirmScopedAPIView):
    """Every version of one rule, newest first."""

    permission_classes = [IsAuthenticated, HasRole.of(*MANAGERS, read=STAFF_ROLES)]

    @extend_schema(
        operation_id="compliance_rules_versions",
        tags=TAGS,
        responses={200: RuleVersionSerializer(many=True)},
    )
    def get(self, request: Request, pk: int) -> Response:
        rule = _rule(pk)
        return Response([rule_version_data(v) for v in selectors.rule_versions(rule_id=rule.pk)])


class RuleSetVersionListView(FirmScopedAPIView):
    """The firm's rule-set versions, newest first (a run names the one it used)."""

    permission_classes = [IsAuthenticated, HasRole.of(*MANAGERS, read=STAFF_ROLES)]

    @extend_schema(
        operation_id="compliance_rule_sets_list",
        tags=TAGS,
        responses={200: RuleSetSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "id": s.pk,
                    "number": s.number,
                    "rule_version_ids": s.rule_version_ids,
                    "created_by": s.created_by.get_username() if s.created_by else None,
                    "created_at": s.created_at,
                }
                for s in selectors.rule_set_versions()
            ]
        )


class ReviewQueueView(FirmScopedAPIView):
    """Portfolios held by soft failures, waiting for a second approver."""

    permission_classes = [IsAuthenticated, HasRole.of(*MANAGERS)]

    @extend_schema(
        operation_id="compliance_review_queue",
        tags=TAGS,
        responses={200: OpenApiResponse(response={"type": "array", "items": {"type": "object"}})},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.review_queue(firm=self.current_membership.firm))


class _DecisionView(FirmScopedAPIView):
    permission_classes = [IsAuthenticated, HasRole.of(*MANAGERS)]
    service: Any = None

    def _decide(self, request: Request, pk: int) -> Response:
        rp = RunPortfolio.objects.filter(pk=pk).first()
        if rp is None:
            raise NotFound()
        data = OverrideDecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        done = _service(
            type(self).service,
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            run_portfolio=rp,
            reason=data.validated_data["reason"],
        )
        return Response({"run_portfolio_id": done.pk, "status": done.status})


class ReleaseView(_DecisionView):
    """Release a held portfolio (second person, written reason; never a hard failure)."""

    service = staticmethod(held_portfolio_release)

    @extend_schema(
        operation_id="compliance_review_release",
        tags=TAGS,
        request=OverrideDecisionInputSerializer,
        responses={200: RunPortfolioDecisionSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        return self._decide(request, pk)


class RejectView(_DecisionView):
    """Reject a held portfolio with a written reason."""

    service = staticmethod(held_portfolio_reject)

    @extend_schema(
        operation_id="compliance_review_reject",
        tags=TAGS,
        request=OverrideDecisionInputSerializer,
        responses={200: RunPortfolioDecisionSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        return self._decide(request, pk)


class OrderExplainView(FirmScopedAPIView):
    """Why this trade: everything that produced the order, and whether it replays."""

    permission_classes = [IsAuthenticated, HasRole.of(*STAFF_ROLES)]

    @extend_schema(operation_id="orders_explain", tags=TAGS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        try:
            return Response(selectors.order_explain(order_id=pk))
        except Order.DoesNotExist:
            raise NotFound() from None
