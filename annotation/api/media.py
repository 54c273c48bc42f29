"""Serves stored media by content address to whoever may see something that uses it
(access.media_for_user), signed in by session or API token. A caller without credentials
gets the API's JSON 403, not a redirect to the sign-in page: image clients are API clients."""

from __future__ import annotations

import re
from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from annotation.access import media_for_user
from annotation.services.media import media_path
from counterpoint.errors import NotFound

_SHA = re.compile(r"^[0-9a-f]{64}$")


class _FirstRenderer(BaseContentNegotiation):
    """The body is the file whatever the Accept header says (`<img>` asks for image/*);
    errors render as JSON."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0]

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class MediaView(APIView):
    content_negotiation_class = _FirstRenderer

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY})
    def get(self, request: Request, sha256: str) -> FileResponse:
        if not _SHA.match(sha256):
            raise NotFound("not a media address")
        media = media_for_user(user=request.user, sha256=sha256)
        path = media_path(media)
        if not path.exists():
            raise NotFound("media file missing", code="media_file_missing")
        response = FileResponse(path.open("rb"), content_type=media.mime_type)
        # Content-addressed: the bytes behind this URL never change; private, since who may
        # see them is per user.
        response["Cache-Control"] = "private, max-age=31536000, immutable"
        response["ETag"] = f'"{media.sha256}"'
        return response


media_view = MediaView.as_view()
