"""The manager's campaign setup pages (/manage/): the campaign list, the create and settings
form, the pool and the annotator-page preview. Thin shells: the pages' ES modules read and
write through the REST API (annotation/api/setup.py and the campaign endpoints)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.access import can_manage_anything
from frontend.views import manage_context


@login_required
@ensure_csrf_cookie
def manage_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "frontend/manage/list.html",
        {"can_create": can_manage_anything(request.user)},
    )


@login_required
@ensure_csrf_cookie
def campaign_new(request: HttpRequest) -> HttpResponse:
    if not can_manage_anything(request.user):
        raise PermissionDenied("only staff and campaign managers may create campaigns")
    return render(request, "frontend/manage/new.html", {"mode": "new"})


@login_required
@ensure_csrf_cookie
def campaign_settings(request: HttpRequest, campaign_id: int) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="settings")
    return render(request, "frontend/manage/settings.html", {**context, "mode": "edit"})


@login_required
@ensure_csrf_cookie
def campaign_pool(request: HttpRequest, campaign_id: int) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="pool")
    return render(request, "frontend/manage/pool.html", context)


@login_required
@ensure_csrf_cookie
def campaign_preview(request: HttpRequest, campaign_id: int) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="preview")
    return render(request, "frontend/manage/preview.html", {**context, "kind": "annotate"})
