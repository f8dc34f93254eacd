"""API of the accounts app: tokens, the caller, their memberships, the firm and its members.

Thin views: validate input, call one service or selector, serialise.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth import authenticate
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import Firm, Membership, Role, User
from accounts.selectors import (
    membership_get_for_firm,
    membership_list_for_firm,
    membership_list_for_user,
)
from accounts.services import firm_update, user_token_issue, user_token_revoke
from advisor.api.errors import InvalidCredentials, error_response
from advisor.api.pagination import DefaultPagination
from advisor.api.permissions import ALL_ROLES, HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import ApiView, FirmScopedAPIView, FirmScopedGenericAPIView, PublicApiView

# --- serializers -------------------------------------------------------------------------


class TokenObtainInputSerializer(StrictInputSerializer):
    """Credentials of a user."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):  # type: ignore[type-arg]
    token = serializers.CharField(
        help_text="Send as `Authorization: Token <token>` on every request."
    )


class FirmBriefSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Firm
        fields = ["id", "slug", "name"]


class UserBriefSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name"]


class MeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    user = UserBriefSerializer()
    firm = FirmBriefSerializer(allow_null=True, help_text="The firm this request acts in.")
    role = serializers.ChoiceField(
        choices=Role.choices, allow_null=True, help_text="Your role in that firm."
    )


class MyMembershipSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    firm = FirmBriefSerializer()

    class Meta:
        model = Membership
        fields = ["id", "firm", "role"]


class FirmSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    settings = serializers.DictField(help_text="Firm-wide settings.")

    class Meta:
        model = Firm
        fields = ["id", "slug", "name", "settings", "created_at"]


class FirmSettingsInputSerializer(StrictInputSerializer):
    """Firm settings that a firm admin may change."""

    risk_profile_valid_months = serializers.IntegerField(
        min_value=1,
        max_value=120,
        required=False,
        help_text="How long an investor's risk profile stays valid, in months.",
    )


class FirmUpdateInputSerializer(StrictInputSerializer):
    """Fields of the firm to change; those not sent keep their value."""

    name = serializers.CharField(max_length=200, required=False)
    settings = FirmSettingsInputSerializer(
        required=False, help_text="Keys given replace their value; others are kept."
    )


class MemberSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    user = UserBriefSerializer()

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "is_active", "created_at"]


class MemberFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = Membership
        fields = ["role", "is_active"]


# --- views -------------------------------------------------------------------------------


def _client(request: Request) -> dict[str, str]:
    return {
        "ip": str(request.META.get("REMOTE_ADDR", "")),
        "user_agent": str(request.META.get("HTTP_USER_AGENT", ""))[:200],
    }


class TokenObtainView(PublicApiView):
    """Exchange a username and password for an API token."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        operation_id="auth_token_obtain",
        tags=["auth"],
        request=TokenObtainInputSerializer,
        responses={200: TokenSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = TokenObtainInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request=request._request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if not isinstance(user, User):
            # Returned, not raised: the failed login's audit event must be committed.
            return error_response(InvalidCredentials())
        token = user_token_issue(user=user, client=_client(request))
        return Response(TokenSerializer({"token": token}).data)


class TokenRevokeView(ApiView):
    """Delete the caller's API token (signing out every client that uses it)."""

    @extend_schema(
        operation_id="auth_token_revoke", tags=["auth"], request=None, responses={204: None}
    )
    def post(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        user_token_revoke(user=request.user, client=_client(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(ApiView):
    """The signed-in user, and the firm and role this request acts with."""

    @extend_schema(operation_id="me", tags=["me"], responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        membership = self.membership
        payload: dict[str, Any] = {
            "user": request.user,
            "firm": membership.firm if membership else None,
            "role": membership.role if membership else None,
        }
        return Response(MeSerializer(payload).data)


class MyMembershipListView(ApiView):
    """Your active memberships in every firm (what the firm switcher lists)."""

    pagination_class = DefaultPagination

    @extend_schema(
        operation_id="memberships_list",
        tags=["me"],
        responses={200: MyMembershipSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        memberships = membership_list_for_user(user=request.user)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(memberships, request, view=self)
        return paginator.get_paginated_response(MyMembershipSerializer(page, many=True).data)


class FirmView(FirmScopedAPIView):
    """The firm this request acts in: every member reads it, firm admins change it."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=ALL_ROLES)]

    @extend_schema(operation_id="firm_retrieve", tags=["firm"], responses={200: FirmSerializer})
    def get(self, request: Request) -> Response:
        return Response(FirmSerializer(self.current_membership.firm).data)

    @extend_schema(
        operation_id="firm_update",
        tags=["firm"],
        request=FirmUpdateInputSerializer,
        responses={200: FirmSerializer},
        description="Firm admins only. Audited as `firm.updated` with the values before and after.",
    )
    def patch(self, request: Request) -> Response:
        data = FirmUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        firm = firm_update(
            firm=self.current_membership.firm,
            actor=request.user,
            name=data.validated_data.get("name"),
            settings=data.validated_data.get("settings"),
        )
        return Response(FirmSerializer(firm).data)


class FirmMemberListView(ListModelMixin, FirmScopedGenericAPIView):
    """The firm's members (firm admins only), filterable by role and active flag."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN)]
    serializer_class = MemberSerializer
    filterset_class = MemberFilter
    ordering_fields = ["user__username", "role", "created_at"]
    ordering = ["user__username", "id"]

    def get_queryset(self) -> QuerySet[Membership]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no firm
            return QuerySet(model=Membership).none()
        return membership_list_for_firm()

    @extend_schema(operation_id="firm_members_list", tags=["firm"])
    def get(self, request: Request) -> Response:
        return self.list(request)


class FirmMemberDetailView(FirmScopedGenericAPIView):
    """One member of the firm (firm admins only)."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN)]
    serializer_class = MemberSerializer

    def get_queryset(self) -> QuerySet[Membership]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no firm
            return QuerySet(model=Membership).none()
        return membership_list_for_firm()

    @extend_schema(operation_id="firm_members_retrieve", tags=["firm"])
    def get(self, request: Request, pk: int) -> Response:
        membership = membership_get_for_firm(membership_id=pk)
        if membership is None:
            raise NotFound()
        return Response(self.get_serializer(membership).data)


__all__ = [
    "FirmMemberDetailView",
    "FirmMemberListView",
    "FirmView",
    "MeView",
    "MyMembershipListView",
    "TokenObtainView",
    "TokenRevokeView",
]
