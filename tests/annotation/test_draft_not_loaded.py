"""The autosaved draft can be megabytes of image data URLs: only the task view reads it back.
Submit, skip and live scoring must not pull it from the database."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.annotation.annotator_helpers import add_annotators, annotate_body, text_campaign
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

DRAFT_COLUMN = '"annotation_assignment"."draft"'


def test_submit_does_not_read_the_draft_but_the_task_view_does():
    campaign = text_campaign(2, redundancy=1)
    (user,) = add_annotators(campaign, 1)
    client = client_for(user)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    aid = task["assignment"]["id"]
    big = {"image": "data:image/png;base64," + "A" * 500_000}
    assert (
        client.put(f"/api/v1/assignments/{aid}/draft/", {"draft": big}, format="json").status_code
        == 200
    )

    with CaptureQueriesContext(connection) as seen:
        r = client.get(f"/api/v1/assignments/{aid}/")
    assert r.json()["draft"] == big
    assert any(DRAFT_COLUMN in q["sql"] for q in seen.captured_queries)

    with CaptureQueriesContext(connection) as seen:
        r = client.post(f"/api/v1/assignments/{aid}/submit/", annotate_body(task), format="json")
    assert r.status_code == 201, r.content
    assert not any(DRAFT_COLUMN in q["sql"] for q in seen.captured_queries)


def test_the_edits_results_do_not_load_any_draft(django_assert_num_queries):
    from annotation.models import Membership
    from tests.annotation.annotator_helpers import member

    campaign = text_campaign(3, redundancy=1)
    manager = member(campaign, "mia-drafts", Membership.Role.MANAGER)
    for user in add_annotators(campaign, 3):
        client = client_for(user)
        task = client.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
        ).json()
        aid = task["assignment"]["id"]
        big = {"image": "data:image/png;base64," + "A" * 200_000}
        client.put(f"/api/v1/assignments/{aid}/draft/", {"draft": big}, format="json")
        r = client.post(f"/api/v1/assignments/{aid}/submit/", annotate_body(task), format="json")
        assert r.status_code == 201, r.content

    client = client_for(manager)
    # membership check, count, edits, validations, assignment ids, attempts, campaign models
    with django_assert_num_queries(7):
        with CaptureQueriesContext(connection) as seen:
            r = client.get(f"/api/v1/campaigns/{campaign.pk}/edits/")
    assert r.status_code == 200 and r.json()["count"] == 3
    assert not any(DRAFT_COLUMN in q["sql"] for q in seen.captured_queries)
    assert all(e["scores_pending"] == [] for e in r.json()["results"])
