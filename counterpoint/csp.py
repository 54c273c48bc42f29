"""Content-Security-Policy for the product's own pages: scripts only from this origin (no
inline scripts, no eval — the dashboard's Vega charts run through vega-interpreter), styles
from this origin plus inline style attributes (the editors position elements with them;
vega-embed injects its stylesheet), images and fetches also from data:/blob: URLs (the image
editor turns its canvas into a data: URL and fetches it as a Blob).

The admin and /api/ (browsable API, Swagger UI) keep Django's and drf-spectacular's own
pages as they are: those ship inline scripts this policy would block."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self' data: blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ]
)
EXEMPT_PREFIXES = ("/admin/", "/api/")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.get("Content-Type", "").startswith("text/html")
            and not request.path.startswith(EXEMPT_PREFIXES)
            and "Content-Security-Policy" not in response
        ):
            response["Content-Security-Policy"] = POLICY
        return response
