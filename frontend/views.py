"""Thin page views: they render templates; the pages talk to the REST API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.access import campaigns_visible_to


@login_required
def home(request: HttpRequest) -> HttpResponse:
    campaigns = campaigns_visible_to(user=request.user).select_related("dataset").order_by("name")
    return render(request, "frontend/home.html", {"campaigns": campaigns})
