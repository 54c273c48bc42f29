"""Campaigns with work in them, made through the API as annotators and validators make it."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from annotation.models import Campaign
from tests.annotation.annotator_helpers import annotate_body
from tests.conftest import client_for


def do_work(campaign: Campaign, annotators: list[Any], validator: Any | None = None) -> None:
    """Each annotator labels one example and writes a text edit after one scored draft;
    the validator (if any) validates one edit."""
    for user in annotators:
        client = client_for(user)
        task = client.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
        ).json()
        scored = client.post(
            "/api/v1/score/",
            {"assignment": task["assignment"]["id"], "modality": "text", "value": "draft"},
            format="json",
        )
        assert scored.status_code == 200, scored.content
        r = client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/",
            annotate_body(task),
            format="json",
        )
        assert r.status_code == 201, r.content
    if validator is not None:
        vclient = client_for(validator)
        task = vclient.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json"
        ).json()
        r = vclient.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/",
            {"idempotency_key": "v-1", "label": "yes", "broken": False},
            format="json",
        )
        assert r.status_code == 201, r.content


def unzip(archive: Path, into: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(into)
    return into
