"""Managers read a campaign's results through the API: annotations, edits with their scored
attempts and blind validations, and progress; annotators and outsiders cannot."""

from __future__ import annotations

import pytest

from annotation.models import Membership
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.annotation.export_helpers import do_work
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_manager_reads_annotations_edits_and_progress(exact_queries):
    campaign = text_campaign(4, redundancy=2, validations_required=1, validations_to_verify=1)
    manager = member(campaign, "mia-manager", Membership.Role.MANAGER)
    annotators = add_annotators(campaign, 3)
    validator = member(campaign, "val-validator", Membership.Role.VALIDATOR)
    do_work(campaign, annotators, validator)
    client = client_for(manager)

    with exact_queries(3):
        r = client.get(f"/api/v1/campaigns/{campaign.pk}/annotations/")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 3
    assert {a["annotator"] for a in body["results"]} == {u.username for u in annotators}
    assert body["results"][0]["reliance"] == "specialization"

    r = client.get(
        f"/api/v1/campaigns/{campaign.pk}/annotations/?annotator={annotators[0].username}"
    )
    assert r.json()["count"] == 1

    with exact_queries(7):
        r = client.get(f"/api/v1/campaigns/{campaign.pk}/edits/")
    edits = r.json()["results"]
    assert len(edits) == 3
    assert all(len(e["attempts"]) == 1 and e["attempts"][0]["value"] == "draft" for e in edits)
    verified = [e for e in edits if e["status"] == "verified"]
    assert len(verified) == 1
    assert verified[0]["validations"][0]["validator"] == "val-validator"
    assert all(e["original_values"]["text"] != e["edited_values"]["text"] for e in edits)

    r = client.get(f"/api/v1/campaigns/{campaign.pk}/edits/?status=pending")
    assert r.json()["count"] == 2

    progress = client.get(f"/api/v1/campaigns/{campaign.pk}/progress/").json()
    assert progress["annotations"] == 3
    assert progress["target_annotations"] == 4 * 2
    assert progress["pool"]["examples"] == 4
    assert progress["edits"] == {"pending": 2, "verified": 1, "disputed": 0}
    assert sorted(a["annotations"] for a in progress["annotators"]) == [1, 1, 1]
    assert progress["validators"] == [{"username": "val-validator", "validations": 1}]


@pytest.mark.parametrize("path", ["annotations", "edits", "progress"])
def test_results_are_for_managers_only(path):
    campaign = text_campaign(2)
    annotator = member(campaign, "ann-only")
    outsider = member(text_campaign(1), "elsewhere")
    r = client_for(annotator).get(f"/api/v1/campaigns/{campaign.pk}/{path}/")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "role_required"
    assert client_for(outsider).get(f"/api/v1/campaigns/{campaign.pk}/{path}/").status_code == 404
    assert client_for(None).get(f"/api/v1/campaigns/{campaign.pk}/{path}/").status_code in (
        401,
        403,
    )
