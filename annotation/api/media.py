"""Serves stored media by content address. The SHA-256 is unguessable, and the caller must
be signed in; pages only learn a media address through a task or dataset they may see."""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_GET

from annotation.models import Media
from annotation.services.media import media_path

_SHA = re.compile(r"^[0-9a-f]{64}$")


@require_GET
@login_required
def media_view(request: HttpRequest, sha256: str) -> FileResponse:
    if not _SHA.match(sha256):
        raise Http404("not a media address")
    media = Media.objects.filter(sha256=sha256).first()
    if media is None:
        raise Http404("no such media")
    path = media_path(media)
    if not path.exists():
        raise Http404("media file missing")
    response = FileResponse(path.open("rb"), content_type=media.mime_type)
    # Content-addressed: the bytes behind this URL never change.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    response["ETag"] = f'"{media.sha256}"'
    return response
