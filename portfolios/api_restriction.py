"""API of a client's restrictions: read, replace, clear, and preview their effect.

``/api/v1/clients/{id}/restrictions/``: GET for anyone who sees the client (the
household's advisors, firm admins and compliance, the investor their own record);
PUT and DELETE for firm admins and the household's advisors.
``/api/v1/clients/{id}/restrictions/preview/?strategy=ID``: the strategy's current
weights beside the client's customised weights. Another firm's client, or a client
the caller does not see, answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.book_api import BOOK_WRITERS, _changeable_client, _visible_client
from accounts.web import signed_in_user
from advisor.api.permissions import ALL_ROLES, HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView
from portfolios.models_strategy import ClientRestriction
from portfolios.selectors_strategy import client_restriction_get, strategy_get
from portfolios.services_restriction import (
    client_restriction_clear,
    client_restriction_preview,
    client_restriction_set,
)

TAGS = ["client book"]


class RestrictionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    client = serializers.IntegerField()
    excluded_assets = serializers.ListField(child=serializers.CharField())
    excluded_tags = serializers.ListField(child=serializers.CharField())
    asset_bounds = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)
    )
    class_tilts = serializers.DictField(child=serializers.FloatField())
    note = serializers.CharField(allow_blank=True)
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


class RestrictionInputSerializer(StrictInputSerializer):
    """Replaces every field: one left out is emptied. Checked in the service."""

    excluded_assets = serializers.ListField(
        child=serializers.CharField(max_length=20), required=False
    )
    excluded_tags = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False
    )
    asset_bounds = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        required=False,
        help_text="{symbol: [minimum, maximum]}, weights within [0, 1].",
    )
    class_tilts = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="{asset class: tilt}, a tilt within [-1, 1] added to the class's weight.",
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class PreviewWeightSerializer(serializers.Serializer):  # type: ignore[type-arg]
    symbol = serializers.CharField()
    strategy_weight = serializers.CharField()
    customised_weight = serializers.CharField()
    change = serializers.CharField()


class PreviewSerializer(serializers.Serializer):  # type: ignore[type-arg]
    client = serializers.IntegerField()
    strategy = serializers.IntegerField()
    strategy_name = serializers.CharField()
    version = serializers.IntegerField()
    prices_as_of = serializers.DateField()
    restricted = serializers.BooleanField()
    signature = serializers.CharField()
    customisation = serializers.JSONField()
    weights = PreviewWeightSerializer(many=True)


def _body(client_id: int, row: ClientRestriction | None) -> dict[str, Any]:
    if row is None:
        return {
            "client": client_id,
            "excluded_assets": [],
            "excluded_tags": [],
            "asset_bounds": {},
            "class_tilts": {},
            "note": "",
            "updated_by": None,
            "updated_at": None,
        }
    return {
        "client": client_id,
        **row.as_data(),
        "note": row.note,
        "updated_by": row.updated_by.get_username() if row.updated_by else None,
        "updated_at": row.updated_at,
    }


class ClientRestrictionView(FirmScopedAPIView):
    """A client's restrictions (empty when none are set)."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, read=ALL_ROLES)]

    @extend_schema(
        operation_id="clients_restrictions_retrieve",
        tags=TAGS,
        responses={200: RestrictionSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        client = _visible_client(self.current_membership, pk)
        row = client_restriction_get(client_id=client.pk)
        return Response(RestrictionSerializer(_body(client.pk, row)).data)

    @extend_schema(
        operation_id="clients_restrictions_update",
        tags=TAGS,
        request=RestrictionInputSerializer,
        responses={200: RestrictionSerializer},
        description="Replaces the client's restrictions. An unknown asset, tag or asset "
        "class, bounds outside [0, 1] or a minimum above its maximum, a tilt outside "
        "[-1, 1] answer 400 naming the field. Audited.",
    )
    def put(self, request: Request, pk: int) -> Response:
        client = _changeable_client(self.current_membership, pk)
        data = RestrictionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = client_restriction_set(
            firm=self.current_membership.firm,
            actor=signed_in_user(request),
            client=client,
            data=data.validated_data,
        )
        return Response(RestrictionSerializer(_body(client.pk, row)).data)

    @extend_schema(operation_id="clients_restrictions_destroy", tags=TAGS, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        client = _changeable_client(self.current_membership, pk)
        client_restriction_clear(
            firm=self.current_membership.firm, actor=signed_in_user(request), client=client
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClientRestrictionPreviewView(FirmScopedAPIView):
    """The effect of the client's restrictions on a strategy's current weights."""

    permission_classes = [IsAuthenticated, HasRole.of(read=ALL_ROLES)]

    @extend_schema(
        operation_id="clients_restrictions_preview",
        tags=TAGS,
        parameters=[OpenApiParameter("strategy", int, required=True, description="A strategy id.")],
        responses={200: PreviewSerializer},
        description="The strategy's current version beside the customised weights of "
        "this client (computed once per signature and shared).",
    )
    def get(self, request: Request, pk: int) -> Response:
        client = _visible_client(self.current_membership, pk)
        raw = request.query_params.get("strategy", "")
        if not raw.isdigit():
            raise ValidationError({"strategy": ["a strategy id is required"]})
        strategy = strategy_get(strategy_id=int(raw))
        if strategy is None:
            raise NotFound("No such strategy.")
        actor = signed_in_user(request)
        body = client_restriction_preview(client=client, strategy=strategy, actor=actor)
        return Response(PreviewSerializer(body).data)


__all__ = ["ClientRestrictionPreviewView", "ClientRestrictionView"]
