"""The campaign dashboard page: a shell; frontend/static/frontend/js/dashboard.js polls
/api/v1/campaigns/<id>/dashboard/ and draws the charts."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.selectors_rounds import round_target_choices
from annotation.services.dashboard import dashboard_inline_limit
from frontend.views import manage_context

# (chart id in the dashboard API, title, what it shows, what an empty chart says); the ids
# are the CSV endpoints' names.
CHARTS = [
    (
        "throughput",
        "Throughput",
        "Annotations submitted per minute, hour or day (by how long the work has run).",
        "No annotation yet.",
    ),
    ("labels", "Label distribution", "Annotations per label.", "No annotation yet."),
    (
        "minimality",
        "Edit size per modality",
        "Counterfactual edits by size (share of tokens, pixels or features changed).",
        "No counterfactual edit yet.",
    ),
    (
        "flips",
        "Claimed vs verified flips",
        "Edits claiming a new label, and what validation made of them.",
        "No counterfactual edit yet.",
    ),
    (
        "models",
        "Models: flip and fooled rates",
        "Flip: prediction on the edit differs from the original. Fooled: prediction on a verified edit differs from its verified label.",
        "No edit scored by a campaign model yet.",
    ),
]


@login_required
@ensure_csrf_cookie
def dashboard(request: HttpRequest, campaign_id: int) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="dashboard")
    context["charts"] = CHARTS
    context["cache_seconds"] = int(settings.DASHBOARD_CACHE_SECONDS)
    context["inline_max"] = dashboard_inline_limit()
    context["round_targets"] = round_target_choices(campaign=context["campaign"])
    return render(request, "frontend/manage/dashboard.html", context)
