"""Service errors and the one API exception handler that maps them to HTTP.

Services raise a `ServiceError` subclass naming the rule that was broken (`code`) with a
sentence a person can act on (`message`); views never build error responses themselves.
Every API error body has the same shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ServiceError(Exception):
    http_status: int = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class ValidationFailed(ServiceError):
    """Input broke a rule; nothing was written."""


class NotFound(ServiceError):
    http_status = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class Forbidden(ServiceError):
    http_status = status.HTTP_403_FORBIDDEN
    default_code = "forbidden"


class Conflict(ServiceError):
    http_status = status.HTTP_409_CONFLICT
    default_code = "conflict"


class Unavailable(ServiceError):
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        return Response({"error": exc.as_dict()}, status=exc.http_status)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound(str(exc) or "not found")
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied(str(exc) or "permission denied")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail
        code = exc.get_codes() if not isinstance(exc, drf_exceptions.ValidationError) else "invalid"
        if not isinstance(code, str):
            code = "invalid"
        body: dict[str, Any] = {"code": code, "message": _first_message(detail)}
        if isinstance(exc, drf_exceptions.ValidationError):
            body["details"] = detail
        response.data = {"error": body}
    return response
