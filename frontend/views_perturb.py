"""The manager console's perturbation page: a shell with the catalogue of perturbations and the
dataset's modalities as JSON (json_script); its ES module (js/perturbation.js) defines studies
and follows them through the REST API (annotation/api/perturbations.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.selectors_perturbations import perturbation_catalogue
from frontend.views import manage_context


@login_required
@ensure_csrf_cookie
def perturbation(request: HttpRequest, campaign_id: int) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="perturbation")
    campaign = context["campaign"]
    context["perturb_setup"] = {
        "campaign": campaign.pk,
        "modalities": campaign.dataset.modalities,
        "labels": campaign.dataset.label_space,
        "perturbations": perturbation_catalogue(),
    }
    return render(request, "frontend/manage/perturbation.html", context)
