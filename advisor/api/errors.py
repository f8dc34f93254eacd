"""One error format for the whole API.

Every error answer, whatever raised it, has the same shape::

    {"error": {"code": "validation_error",
               "message": "Invalid input: name.",
               "fields": {"name": ["Ensure this field has no more than 200 characters."]}}}

``code`` is stable and meant for programs; ``message`` is for people; ``fields`` maps
each offending input field (dotted for nested ones: ``settings.risk_profile_valid_months``)
to its messages, and is empty when the error is not about a field.

Tenancy failures never become a 500: an unresolvable firm is the client's problem
(``firm_required``, ``firm_not_allowed``, ``no_membership``), and an object of another
firm reached through a service answers 404 exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from accounts.selectors import FirmNotAllowed, FirmSelectionRequired, NoMembership
from accounts.tenancy.context import NoFirmSelected, TenancyError

NON_FIELD_KEY = api_settings.NON_FIELD_ERRORS_KEY


class FirmRequired(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "firm_required"
    default_detail = (
        "You belong to several firms: name one with the X-Firm header "
        "(or choose one in the firm switcher)."
    )


class FirmNotAllowedError(exceptions.APIException):
    # The same answer whether the firm exists or not: nothing is looked up.
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "firm_not_allowed"
    default_detail = "You hold no active membership in the firm named by the X-Firm header."


class NoMembershipError(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "no_membership"
    default_detail = "Your user holds no active membership in any firm."


class InvalidCredentials(exceptions.APIException):
    # One message for a wrong username and a wrong password alike.
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_credentials"
    default_detail = "Unable to sign in with the provided credentials."


def error_body(
    code: str, message: str, fields: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": dict(fields or {})}}


def error_response(exc: exceptions.APIException) -> Response:
    """The error answer for ``exc`` without rolling the request's transaction back.

    For errors that must keep what was written on the way (a failed login's audit event).
    """
    body, headers = _render(exc)
    return Response(body, status=exc.status_code, headers=headers)


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"a": {"b": ["x"]}, "c": [{"d": ["y"]}]}`` -> ``{"a.b": ["x"], "c.0.d": ["y"]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if key == NON_FIELD_KEY:  # a nested object's own errors belong to the object
                name = prefix or NON_FIELD_KEY
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in _flatten(value, name).items():
                out.setdefault(field, []).extend(messages)
    elif isinstance(detail, Sequence) and not isinstance(detail, str):
        if all(not isinstance(item, Mapping | list) for item in detail):
            out[prefix or NON_FIELD_KEY] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:
                    out.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or NON_FIELD_KEY] = [str(detail)]
    return out


def _validation_body(exc: exceptions.ValidationError) -> dict[str, Any]:
    fields = _flatten(exc.detail)
    general = fields.pop(NON_FIELD_KEY, [])
    if general:
        message = " ".join(general)
    elif fields:
        message = "Invalid input: " + ", ".join(sorted(fields)) + "."
    else:
        message = "Invalid input."
    return error_body("validation_error", message, fields)


def _code_of(exc: exceptions.APIException) -> str:
    code = getattr(exc.detail, "code", None)
    return str(code or exc.default_code)


def _render(exc: exceptions.APIException) -> tuple[dict[str, Any], dict[str, str]]:
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = str(auth_header)
    wait = getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = f"{int(wait)}"

    if isinstance(exc, exceptions.ValidationError):
        return _validation_body(exc), headers
    message = str(exc.detail)
    code = _code_of(exc)
    if isinstance(exc, exceptions.ParseError):
        reason = message.removeprefix("JSON parse error - ")
        message = f"The request body is not valid JSON ({reason})."
    elif isinstance(exc, exceptions.PermissionDenied) and message.startswith("CSRF Failed"):
        code = "csrf_failed"
    return error_body(code, message), headers


def to_api_exception(exc: Exception) -> exceptions.APIException | None:
    """The API exception for ``exc``, or None when it is a genuine server error."""
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        # Django's message names the model; a foreign and a missing id must read alike.
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return exceptions.ValidationError(detail)
    if isinstance(exc, FirmSelectionRequired | NoFirmSelected):
        return FirmRequired()
    if isinstance(exc, FirmNotAllowed):
        return FirmNotAllowedError()
    if isinstance(exc, NoMembership):
        return NoMembershipError()
    if isinstance(exc, TenancyError):
        # An object of another firm handed to a service: answer like a missing one.
        return exceptions.NotFound()
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every handled error in the one format, transaction rolled back."""
    api_exc = to_api_exception(exc)
    if api_exc is None:
        return None  # a bug: let Django log it and answer 500
    set_rollback()
    body, headers = _render(api_exc)
    return Response(body, status=api_exc.status_code, headers=headers)


@csrf_exempt
def route_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Catch-all for paths under /api/ that match no route, in the API's error format."""
    message = "No API route matches this path."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not route_not_found:
            message += f" API paths end with a slash: {request.path}/"
    return JsonResponse(error_body("not_found", message), status=status.HTTP_404_NOT_FOUND)
