"""The perturbation page is the campaign's managers' (and staff's): others get a page error;
it carries the catalogue and the dataset's modalities as JSON, not as an inline script."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _get(user, campaign):  # type: ignore[no-untyped-def]
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(f"/manage/campaigns/{campaign.pk}/perturbation/")


def test_perturbation_page_roles(campaign, manager, annotator, validator, outsider, staff):
    page = _get(manager, campaign)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'aria-current="page">Perturbation<' in body
    data = re.search(
        r'<script id="perturb-setup" type="application/json">(.*?)</script>', body, re.S
    )
    assert data is not None
    setup = json.loads(data.group(1))
    assert setup["campaign"] == campaign.pk
    assert {m["name"] for m in setup["modalities"]} == {"image", "text"}
    assert "gaussian_noise" in {p["name"] for p in setup["perturbations"]}
    assert _get(staff, campaign).status_code == 200
    assert _get(annotator, campaign).status_code == 403
    assert _get(validator, campaign).status_code == 403
    assert _get(outsider, campaign).status_code == 404
    anonymous = _get(None, campaign)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_study_page_and_task_page_roles(campaign, manager, annotator, validator, outsider):
    from annotation.services.perturbations import perturbation_study_create

    study = perturbation_study_create(
        campaign=campaign, created_by=manager, name="n", modality="image", perturbation="blur"
    )

    def get(user, path):  # type: ignore[no-untyped-def]
        client = Client()
        client.force_login(user)
        return client.get(path)

    page = f"/manage/campaigns/{campaign.pk}/perturbation/{study.pk}/"
    task = f"/campaigns/{campaign.pk}/perturbation/{study.pk}/"
    assert get(manager, page).status_code == 200
    assert 'id="study-chart"' in get(manager, page).content.decode()
    assert get(annotator, page).status_code == 403
    assert get(outsider, page).status_code == 404
    assert get(manager, f"/manage/campaigns/{campaign.pk}/perturbation/999/").status_code == 404
    body = get(annotator, task)
    assert body.status_code == 200 and f'data-study-id="{study.pk}"' in body.content.decode()
    assert get(validator, task).status_code == 403
    assert get(outsider, task).status_code == 404
