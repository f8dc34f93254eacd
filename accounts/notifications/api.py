"""API of notifications: the caller's inbox and preferences; the firm's webhook endpoints
and failed deliveries (firm admins)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role
from accounts.models_notifications import Delivery, DeliveryStatus, Notification, WebhookEndpoint
from accounts.notifications.services import (
    notification_archive,
    notification_mark_read,
    notification_preference_set,
    notification_preferences_get,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
)
from accounts.web import signed_in_user
from advisor.api.permissions import HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView


def _refused(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


class NotificationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Notification
        fields = [
            "id",
            "event_type",
            "subject",
            "body",
            "link",
            "regulatory",
            "created_at",
            "read_at",
            "archived_at",
        ]


class InboxListView(ListModelMixin, FirmScopedGenericAPIView):
    """The caller's inbox, newest first (``?archived=1`` for the archive)."""

    serializer_class = NotificationSerializer

    def get_queryset(self) -> QuerySet[Notification]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=Notification).none()
        qs = Notification.objects.filter(recipient=signed_in_user(self.request), in_inbox=True)
        archived = self.request.query_params.get("archived") in ("1", "true")
        return qs.filter(archived_at__isnull=not archived).order_by("-created_at", "-id")

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


def _own(request: Request, pk: int) -> Notification:
    found = Notification.objects.filter(
        pk=pk, recipient=signed_in_user(request), in_inbox=True
    ).first()
    if found is None:
        raise NotFound()
    return found


class InboxReadView(FirmScopedAPIView):
    """Mark one of the caller's notifications read."""

    @extend_schema(
        operation_id="notification_read",
        tags=["notifications"],
        request=None,
        responses={200: NotificationSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        n = notification_mark_read(notification=_own(request, pk), actor=signed_in_user(request))
        return Response(NotificationSerializer(n).data)


class InboxArchiveView(FirmScopedAPIView):
    """Archive one of the caller's notifications."""

    @extend_schema(
        operation_id="notification_archive",
        tags=["notifications"],
        request=None,
        responses={200: NotificationSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        n = notification_archive(notification=_own(request, pk), actor=signed_in_user(request))
        return Response(NotificationSerializer(n).data)


class PreferenceInputSerializer(StrictInputSerializer):
    event_type = serializers.CharField(max_length=40)
    channels = serializers.ListField(child=serializers.CharField(max_length=10))
    mode = serializers.ChoiceField(choices=["immediate", "digest"], default="immediate")


class PreferenceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    event_type = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    audience = serializers.CharField()
    regulatory = serializers.BooleanField()
    channels = serializers.ListField(child=serializers.CharField())
    mode = serializers.CharField()


class PreferencesView(FirmScopedAPIView):
    """The caller's choices per event type (GET); set one (PUT). Regulatory events cannot
    be switched off or delayed."""

    @extend_schema(
        operation_id="notification_preferences",
        tags=["notifications"],
        responses={200: PreferenceSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(notification_preferences_get(user=signed_in_user(request)))

    @extend_schema(
        operation_id="notification_preference_set",
        tags=["notifications"],
        request=PreferenceInputSerializer,
        responses={200: PreferenceSerializer(many=True)},
    )
    def put(self, request: Request) -> Response:
        data = PreferenceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            notification_preference_set(user=signed_in_user(request), **data.validated_data)
        except DjangoValidationError as exc:
            raise _refused(exc) from exc
        return Response(notification_preferences_get(user=signed_in_user(request)))


class WebhookEndpointSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "event_types", "is_active", "description", "created_at"]


class WebhookEndpointInputSerializer(StrictInputSerializer):
    url = serializers.CharField(max_length=500)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, default=list
    )
    description = serializers.CharField(max_length=200, required=False, default="")


class WebhookEndpointPatchSerializer(StrictInputSerializer):
    url = serializers.CharField(max_length=500, required=False)
    event_types = serializers.ListField(child=serializers.CharField(max_length=40), required=False)
    description = serializers.CharField(max_length=200, required=False)
    is_active = serializers.BooleanField(required=False)


ADMIN: list[Any] = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN)]


class WebhookEndpointListView(FirmScopedAPIView):
    """The firm's webhook endpoints; create one (its signing secret is shown once)."""

    permission_classes = ADMIN

    @extend_schema(
        operation_id="webhook_list",
        tags=["webhooks"],
        responses={200: WebhookEndpointSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        rows = WebhookEndpoint.objects.order_by("pk")
        return Response(WebhookEndpointSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="webhook_create",
        tags=["webhooks"],
        request=WebhookEndpointInputSerializer,
        responses={
            201: inline_serializer(
                "WebhookEndpointCreated",
                {
                    "id": serializers.IntegerField(),
                    "url": serializers.CharField(),
                    "event_types": serializers.ListField(child=serializers.CharField()),
                    "is_active": serializers.BooleanField(),
                    "description": serializers.CharField(),
                    "created_at": serializers.DateTimeField(),
                    "secret": serializers.CharField(help_text="Shown once: keep it."),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        data = WebhookEndpointInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            ep = webhook_endpoint_create(actor=signed_in_user(request), **data.validated_data)
        except DjangoValidationError as exc:
            raise _refused(exc) from exc
        body = dict(WebhookEndpointSerializer(ep).data)
        body["secret"] = ep.secret
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(FirmScopedAPIView):
    permission_classes = ADMIN

    def _get(self, pk: int) -> WebhookEndpoint:
        ep = WebhookEndpoint.objects.filter(pk=pk).first()
        if ep is None:
            raise NotFound()
        return ep

    @extend_schema(
        operation_id="webhook_retrieve",
        tags=["webhooks"],
        responses={200: WebhookEndpointSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookEndpointSerializer(self._get(pk)).data)

    @extend_schema(
        operation_id="webhook_update",
        tags=["webhooks"],
        request=WebhookEndpointPatchSerializer,
        responses={200: WebhookEndpointSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        ep = self._get(pk)
        data = WebhookEndpointPatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            ep = webhook_endpoint_update(
                endpoint=ep, actor=signed_in_user(request), **data.validated_data
            )
        except DjangoValidationError as exc:
            raise _refused(exc) from exc
        return Response(WebhookEndpointSerializer(ep).data)

    @extend_schema(
        operation_id="webhook_deactivate",
        tags=["webhooks"],
        responses={204: OpenApiResponse(description="Deactivated.")},
    )
    def delete(self, request: Request, pk: int) -> Response:
        webhook_endpoint_delete(endpoint=self._get(pk), actor=signed_in_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliverySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_key",
            "target",
            "channel",
            "status",
            "attempts",
            "last_error",
            "note",
            "created_at",
        ]


class FailedDeliveryListView(ListModelMixin, FirmScopedGenericAPIView):
    """Deliveries that failed after their retries, newest first (firm admins)."""

    permission_classes = ADMIN
    serializer_class = DeliverySerializer

    def get_queryset(self) -> QuerySet[Delivery]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=Delivery).none()
        return Delivery.objects.filter(status=DeliveryStatus.FAILED).order_by("-id")

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)
