"""The manager console's analyses (docs/analysis.md "From the dashboard"): the list of a
campaign's analysis jobs with a form to start one (its ES module js/analyses.js starts jobs
through the same REST endpoint as any client and follows their progress), one report page
per job rendering every stored result, and each result's JSON and CSV downloads."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.access import analysis_job_for_user
from frontend.views import manage_context, page_errors
from models_bridge.analysis.perturbation_curves import minimal_distribution
from models_bridge.analysis.registry import METHODS, STUDY_METHODS
from models_bridge.analysis.tables import result_tables, table_csv
from models_bridge.services.analysis import analysis_results

# Example cards shown per cluster (the CSV lists every member).
CLUSTER_CARDS = 12
# Table rows shown on the page (the CSV has them all).
PAGE_ROWS = 50

CHART_ROWS = 500
METHOD_TITLES = {
    "emap": "EMAP",
    "ablation": "Unimodal ablation",
    "perceptual": "Perceptual score",
    "pid": "Partial information decomposition",
    "counterfactual": "Counterfactual metrics",
    "clusters": "Interaction clusters",
    "heads": "Attention heads",
    "reliance": "Reliance report: what humans needed and what the model uses",
    "perturbation_minimal": "Minimal perturbation to chance",
    "grounding": "Grounding: does the model look where the annotators looked?",
}

# What each method computes, in a researcher's words (a method added to the registry without
# an entry here shows its docstring's first line).
METHOD_HELP = {
    "emap": "EMAP: accuracy of f and of its additive projection, per example interaction score",
    "ablation": "each modality replaced by a recorded null input",
    "perceptual": "accuracy drop when a modality is permuted across examples (seeded)",
    "pid": "partial information decomposition in bits (factorized models)",
    "counterfactual": "flip rates and model errors on the campaign's edits, with intervals",
    "clusters": "k-means of the interaction vectors f(x) - EMAP f(x), with reliance answers",
    "reliance": "the reliance report: human reliance answers beside what the model needed",
    "heads": "head importance and pruning curve (models with attention heads only)",
    "perturbation_minimal": "per example, the smallest perturbation level at which the model "
    "falls to chance (params: study)",
    "grounding": "occlusion attributions vs annotators' evidence: plausibility, faithfulness",
}


def method_choices() -> list[tuple[str, str]]:
    """The methods the analyses form offers, with their help."""
    out = []
    for name, fn in METHODS.items():
        if name in STUDY_METHODS:  # started from the study's page, with its study
            continue
        doc = (getattr(fn, "__doc__", "") or "").strip().splitlines()
        out.append((name, METHOD_HELP.get(name) or (doc[0] if doc else "")))
    return out


@login_required
@ensure_csrf_cookie
def analyses(request: HttpRequest, campaign_id: int) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="analyses")
    campaign = context["campaign"]
    context["models"] = list(campaign.model_versions.filter(is_active=True).order_by("id"))
    context["methods"] = method_choices()
    return render(request, "frontend/manage/analyses.html", context)


def _job(request: HttpRequest, campaign_id: int, job_id: int) -> tuple[Any, Any]:
    with page_errors():
        return analysis_job_for_user(user=request.user, campaign_id=campaign_id, job_id=job_id)


def _card(ref: dict[str, Any], kinds: dict[str, str], **extra: Any) -> dict[str, Any]:
    """An example as the report shows it: thumbnails (access-checked media URLs), texts."""
    return {
        "id": ref.get("id"),
        "external_id": ref.get("external_id", ""),
        "label": ref.get("label"),
        "images": [
            (m, f"/media/{ref[f'{m}_sha256']}")
            for m, k in kinds.items()
            if k == "image" and ref.get(f"{m}_sha256")
        ],
        "texts": [(m, ref[m]) for m, k in kinds.items() if k == "text" and ref.get(m)],
        **extra,
    }


def _cards(method: str, result: dict[str, Any], kinds: dict[str, str]) -> list[dict[str, Any]]:
    """The example cards a result shows: the reliance report's disagreements, each cluster's
    members (grouped by the template)."""
    if method == "reliance":
        return [
            _card(
                {**(d.get("inputs") or {}), "id": d.get("example")},
                kinds,
                kind=d.get("kind", ""),
                disagreement=d.get("disagreement"),
                humans=d.get("humans") or {},
                model=d.get("model") or {},
                gold=d.get("gold"),
                edits=d.get("edits") or [],
            )
            for d in result.get("disagreements") or []
        ]
    if method == "grounding":
        return grounding_cards(result, kinds)
    if method == "clusters":
        return [
            _card(e, kinds, cluster=c.get("cluster"))
            for c in result.get("clusters") or []
            for e in (c.get("examples") or [])[:CLUSTER_CARDS]
        ]
    return []


def _alpha(values: list[float] | None, scale: float) -> list[float]:
    """Opacity 0..1 per unit: positive weights over the largest one (negatives show none)."""
    return [round(max(0.0, v) / scale, 3) if scale > 0 else 0.0 for v in values or []]


def grounding_cards(result: dict[str, Any], kinds: dict[str, str]) -> list[dict[str, Any]]:
    """The grounding report's disagreement examples, each with its overlays: the annotators'
    soft mask and the model's occlusion map over the image's patch grid, and per word the
    annotators' share and the model's weight (the template shades them)."""
    by_id = {e["example"]: e for e in result.get("examples") or []}
    grid = int((result.get("params") or {}).get("grid") or 0)
    cards = []
    for d in result.get("disagreements") or []:
        ex = by_id.get(d.get("example"), {})
        text, image = ex.get("text") or {}, ex.get("image") or {}
        model_img = image.get("model") or []
        human_img = image.get("human_soft") or []
        words = text.get("model") or []
        word_scale = max([0.0, *words])
        cells = list(
            zip(_alpha(human_img, 1.0), _alpha(model_img, max([0.0, *model_img])), strict=False)
        )
        cards.append(
            _card(
                {**(d.get("inputs") or {}), "id": d.get("example")},
                kinds,
                disagreement=d.get("disagreement"),
                category=d.get("category"),
                predicted=d.get("predicted"),
                gold=d.get("gold"),
                f1=d.get("text_top_k_f1"),
                iou=d.get("image_iou"),
                grid=grid,
                cells=cells if grid and len(cells) == grid * grid else [],
                words=list(
                    zip(
                        text.get("words") or [],
                        [round(float(h), 3) for h in text.get("human") or []],
                        _alpha(words, word_scale),
                        [round(float(w), 3) for w in words],
                        strict=False,
                    )
                ),
                edits=d.get("edits") or [],
            )
        )
    return cards


@login_required
def analysis_report(request: HttpRequest, campaign_id: int, job_id: int) -> HttpResponse:
    campaign, job = _job(request, campaign_id, job_id)
    context = manage_context(request, campaign.pk, tab="analyses", campaign=campaign)
    kinds = {m["name"]: m["kind"] for m in campaign.dataset.modalities}
    sections = []
    charts = []
    for row in analysis_results(job=job):
        tables = result_tables(row.method, row.result)
        sections.append(
            {
                "method": row.method,
                "title": METHOD_TITLES.get(row.method, row.method.replace("_", " ").capitalize()),
                "variant": row.result.get("variant", ""),
                "tables": [
                    {**t.as_dict(), "shown": t.rows[:PAGE_ROWS], "hidden": len(t.rows) > PAGE_ROWS}
                    for t in tables
                ],
                "cards": _cards(row.method, row.result, kinds),
            }
        )
        # The charts are drawn from the same tables (js/analysis_report.js).
        chart: dict[str, Any] = {
            "method": row.method,
            "tables": {t.key: t.as_dict() for t in tables if len(t.rows) <= CHART_ROWS},
        }
        if row.method == "perturbation_minimal":
            chart["minimal"] = minimal_distribution(row.result)
        charts.append(chart)
    context.update(
        job=job,
        model=job.params.get("model", ""),
        methods=job.params.get("methods", []),
        params=json.dumps(job.params.get("params") or {}, sort_keys=True),
        sections=sections,
        charts=charts,
    )
    return render(request, "frontend/manage/analysis_report.html", context)


@login_required
def analysis_download(
    request: HttpRequest, campaign_id: int, job_id: int, method: str, fmt: str
) -> HttpResponse:
    _campaign, job = _job(request, campaign_id, job_id)
    if fmt not in ("json", "csv"):
        raise Http404("downloads are .json or .csv")
    row = next((r for r in analysis_results(job=job) if r.method == method), None)
    if row is None:
        raise Http404(f"analysis {job.pk} has no {method} result")
    name = f"analysis-{job.pk}-{method}"
    if fmt == "json":
        response: HttpResponse = JsonResponse(row.result, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response
    tables = result_tables(method, row.result)
    key = request.GET.get("table") or (tables[0].key if tables else "")
    table = next((t for t in tables if t.key == key), None)
    if table is None:
        raise Http404(f"the {method} result has no table {key!r}")
    response = HttpResponse(table_csv(table), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-{table.key}.csv"'
    return response
