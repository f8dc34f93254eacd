"""OpenAPI generation: the X-Firm header and the error responses, on every operation.

Every API view uses :class:`ApiAutoSchema` (set on the base classes in
:mod:`advisor.api.views`), so a new endpoint is documented with its error answers and
the firm header without anyone remembering to.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_view_model
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from advisor.api.serializers import ErrorResponseSerializer, StrictInputSerializer

FIRM_HEADER_PARAMETER = OpenApiParameter(
    name="X-Firm",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[-a-zA-Z0-9_]+$",
    description=(
        "Slug of the firm to act in. Needed when your user belongs to more than one firm "
        "(and no firm is chosen in the session); a firm you hold no membership in answers "
        "403 firm_not_allowed."
    ),
)

_ERRORS: dict[str, str] = {
    "400": "Invalid input (validation_error, parse_error) or no firm chosen (firm_required).",
    "401": "Not authenticated, or the credentials are invalid.",
    "403": "Not allowed: role (permission_denied), X-Firm (firm_not_allowed), no_membership.",
    "404": "Not found: a missing id and another firm's id answer alike.",
    "415": "The request body is not application/json.",
    "429": "Too many requests (throttled); see Retry-After.",
}


class ApiAutoSchema(AutoSchema):
    def _is_authenticated_view(self) -> bool:
        return bool(getattr(self.view, "authentication_classes", None))

    def _error_codes(self) -> list[str]:
        has_body = self.method in {"POST", "PUT", "PATCH"}
        codes = ["400"] if has_body or self._is_authenticated_view() else []
        if self._is_authenticated_view():
            codes += ["401", "403"]
            if "{" in self.path or self._is_list_view():
                codes.append("404")
        if has_body:
            codes.append("415")
        codes.append("429")
        return codes

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if hasattr(self.view, "firm_required") and self._is_authenticated_view():
            parameters.append(FIRM_HEADER_PARAMETER)
        return parameters

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                response = OpenApiResponse(ErrorResponseSerializer, description=_ERRORS[code])
                responses[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    response, code, direction=direction
                )
        return responses


class StrictInputSerializerExtension(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """Input serializers refuse unknown fields: say so with ``additionalProperties: false``."""

    target_class = StrictInputSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(  # type: ignore[no-untyped-call]
            self.target, direction, bypass_extensions=True
        )
        schema["additionalProperties"] = False
        cls = self.target if isinstance(self.target, type) else type(self.target)
        if not cls.__dict__.get("__doc__"):
            # Not the base class's docstring: it describes the mechanism, not this input.
            schema.pop("description", None)
        return schema


class FirmScopedDjangoFilterExtension(DjangoFilterExtension):  # type: ignore[no-untyped-call]
    """django-filter parameters without touching the model's default manager.

    drf-spectacular builds an empty queryset from ``Model.objects`` to find the
    filterset; a firm-owned model's default manager raises without a firm, and schema
    generation has none. An unmanaged empty queryset serves the same purpose.
    """

    priority = 1

    def get_schema_operation_parameters(
        self, auto_schema: AutoSchema, *args: Any, **kwargs: Any
    ) -> list[dict[str, Any]]:
        model = get_view_model(auto_schema.view)  # type: ignore[no-untyped-call]
        if not model:
            return []
        empty: QuerySet[Any] = QuerySet(model=model).none()
        filterset_class = self.target.get_filterset_class(auto_schema.view, empty)
        if not filterset_class:
            return []
        result: list[dict[str, Any]] = []
        for field_name, filter_field in filterset_class.base_filters.items():
            result += self.resolve_filter_field(  # type: ignore[no-untyped-call]
                auto_schema, model, filterset_class, field_name, filter_field
            )
        return result
