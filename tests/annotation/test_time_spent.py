"""time_spent_ms: what the page counted over all its loads, bounded by the lease's age (one
function, annotations.time_spent, for both submit paths)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from annotation.models import Annotation, Assignment
from annotation.services.annotations import time_spent
from tests.annotation.annotator_helpers import add_annotators, annotate_body, text_campaign
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_time_spent_is_bounded_by_the_lease_age() -> None:
    leased = datetime(2026, 1, 1, tzinfo=UTC)
    now = leased + timedelta(seconds=90)
    assert time_spent(reported_ms=120_000, leased_at=leased, now=now) == 90_000
    assert time_spent(reported_ms=9_000, leased_at=leased, now=now) == 9_000
    assert time_spent(reported_ms=5, leased_at=now, now=leased) == 0  # clock skew: never < 0


def test_submit_stores_at_most_the_lease_age() -> None:
    campaign = text_campaign(1, redundancy=1)
    (ann,) = add_annotators(campaign, 1)
    client = client_for(ann)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, time_spent_ms=3_600_000),
        format="json",
    )
    assert r.status_code == 201, r.content
    annotation = Annotation.objects.get(annotator=ann)
    assignment = Assignment.objects.get(pk=annotation.assignment_id)
    assert assignment.submitted_at is not None
    age_ms = (assignment.submitted_at - assignment.leased_at).total_seconds() * 1000
    assert annotation.time_spent_ms <= age_ms + 1
    assert r.json()["annotation"]["time_spent_ms"] == annotation.time_spent_ms
