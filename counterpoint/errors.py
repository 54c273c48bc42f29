"""Service errors and the one API exception handler that maps them to HTTP.

Services raise a `ServiceError` subclass naming the rule that was broken (`code`) with a
sentence a person can act on (`message`); views never build error responses themselves.
Every API error body has the same shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response


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


class TooManyRequests(ServiceError):
    http_status = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "throttled"


class RequestTooLarge(ServiceError):
    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def request_too_large() -> RequestTooLarge:
    cap = int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return RequestTooLarge(
        f"the request body is over the cap of {cap:,} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)",
        details={"max_bytes": cap},
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400 handler (counterpoint.urls.handler400). A request Django refuses before
    any view runs still gets the API's error shape under /api/; pages keep the HTML page."""
    if request.path.startswith("/api/"):
        err: ServiceError = (
            request_too_large()
            if isinstance(exception, RequestDataTooBig)
            else ValidationFailed("the request is malformed", code="bad_request")
        )
        return JsonResponse({"error": err.as_dict()}, status=err.http_status)
    from django.views.defaults import bad_request as html_bad_request

    return html_bad_request(request, exception)  # type: ignore[arg-type]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES at import, and the
    # parser (counterpoint.parsers) raises this module's errors.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RequestDataTooBig):
        # Raised while the view reads the body (Content-Length over the cap): nothing was read.
        exc = request_too_large()
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
