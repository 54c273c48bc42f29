"""The manager console's perturbation page: a shell with the catalogue of perturbations and the
dataset's modalities as JSON (json_script); its ES module (js/perturbation.js) defines studies
and follows them through the REST API (annotation/api/perturbations.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.access import perturbation_study_of
from annotation.models import Campaign, Membership, PerturbationStudy
from annotation.selectors_perturbations import perturbation_catalogue
from counterpoint.errors import NotFound
from frontend.views import _campaign_or_page_error, manage_context


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


def _study(campaign: Campaign, study_id: int) -> PerturbationStudy:
    try:
        return perturbation_study_of(campaign=campaign, study_id=study_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


@login_required
@ensure_csrf_cookie
def perturbation_study(request: HttpRequest, campaign_id: int, study_id: int) -> HttpResponse:
    """One study's curves (js/perturbation_study.js reads .../curves/)."""
    context = manage_context(request, campaign_id, tab="perturbation")
    study = _study(context["campaign"], study_id)
    context["study"] = study
    context["levels_text"] = ", ".join(f"{x:g}" for x in study.levels)
    return render(request, "frontend/manage/perturbation_study.html", context)


@login_required
@ensure_csrf_cookie
def perturbation_task(request: HttpRequest, campaign_id: int, study_id: int) -> HttpResponse:
    """The annotators' page of a study (js/perturb.js leases kind perturbation)."""
    campaign = _campaign_or_page_error(request, campaign_id, [Membership.Role.ANNOTATOR])
    study = _study(campaign, study_id)
    return render(
        request,
        "frontend/perturb.html",
        {"campaign": campaign, "kind": "perturbation", "study": study},
    )
