"""Serializer bases shared by every app's API, and the error schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings


class StrictInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Base of every input serializer: a field it does not know is an error, not ignored.

    A typo (``"nmae"``) or a read-only field sent back (``"id"``) answers 400 naming the
    field instead of silently doing nothing. Nested serializers built on this class are
    checked the same way, so errors read ``settings.unknown_key``.
    """

    default_error_messages = {"unknown_field": "Unknown field."}

    def run_validation(self, data: Any = empty) -> Any:
        if self.parent is None and data is not empty and not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["The request body must be a JSON object."]},
                code="invalid",
            )
        return super().run_validation(data)

    def writable_field_names(self) -> set[str]:
        return {name for name, field in self.fields.items() if not field.read_only}

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            known = self.writable_field_names()
            message = str(self.error_messages["unknown_field"])
            unknown = {str(key): [message] for key in data if key not in known}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from exc
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class ApiErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField(
        help_text="Stable machine-readable code, e.g. validation_error, not_found, "
        "firm_required, firm_not_allowed, permission_denied, not_authenticated, throttled."
    )
    message = serializers.CharField(help_text="Human-readable explanation.")
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per offending input field (dotted path for nested fields); "
        "empty when the error is not about a field.",
    )


class ErrorResponseSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = ApiErrorSerializer()
