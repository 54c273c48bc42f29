"""The manager console's exports page: a shell; its ES module (js/exports.js) starts exports
and follows them through the REST API (annotation/api/exports.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.export_format import FORMATS
from frontend.views import manage_context

FORMAT_HELP = {
    "jsonl": "JSON Lines: one row per annotation and one per pair; images as files",
    "csv": "CSV: the same rows, nested fields as JSON strings; images as files",
    "parquet": "Parquet: images as bytes (the datasets Image layout); pandas reads it too",
    "hf": "Hugging Face dataset folder: that Parquet with configs for load_dataset",
}


@login_required
@ensure_csrf_cookie
def exports(request: HttpRequest, campaign_id: int) -> HttpResponse:
    context = manage_context(request, campaign_id, tab="exports")
    context["formats"] = [(f, FORMAT_HELP[f]) for f in FORMATS]
    return render(request, "frontend/manage/exports.html", context)
