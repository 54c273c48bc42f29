"""The manager console's pair viewer (docs/managing.md "Pair viewer"): one shell for the
list and for a pair's stable link; the page's module reads the pairs from the REST API."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.selectors_results import pair_filter_options
from frontend.views import manage_context


@login_required
@ensure_csrf_cookie
def pairs(request: HttpRequest, campaign_id: int, edit_id: int | None = None) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="pairs")
    options = pair_filter_options(campaign=context["campaign"])
    context.update(options_json=json.dumps(options), edit_id=edit_id or "")
    return render(request, "frontend/manage/pairs.html", context)
