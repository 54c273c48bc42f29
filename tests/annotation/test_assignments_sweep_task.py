from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, CampaignExample
from annotation.services.assignments import assignment_lease
from annotation.tasks import expire_stale_leases

pytestmark = pytest.mark.django_db


def test_periodic_sweep_returns_expired_slots_and_is_idempotent(campaign, examples, annotator):
    leased = assignment_lease(campaign=campaign, annotator=annotator, kind="annotate").assignment
    assert leased is not None
    Assignment.objects.filter(pk=leased.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    item = CampaignExample.objects.get(campaign=campaign, example_id=leased.example_id)
    assert item.in_flight == 1

    assert expire_stale_leases() == 1
    item.refresh_from_db()
    assert item.in_flight == 0
    assert Assignment.objects.get(pk=leased.pk).status == Assignment.Status.EXPIRED
    assert expire_stale_leases() == 0
    item.refresh_from_db()
    assert item.in_flight == 0
