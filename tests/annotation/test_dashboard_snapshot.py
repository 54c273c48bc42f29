"""The dashboard's stored figures (annotation/services/dashboard.py): a big campaign is
served from its snapshot with stale / refreshing flags and refreshed by the Celery task
(one enqueue per refresh, one worker at a time, a dead worker's claim taken over); exact
query pins for the stale hit and the "computing" state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from annotation.models import Annotation, DashboardSnapshot
from annotation.services import dashboard as service
from annotation.services.dashboard import dashboard_read, dashboard_refresh
from annotation.tasks import dashboard_refresh_task
from tests.annotation.test_dashboard_api import _annotate, _world
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BIG = override_settings(DASHBOARD_INLINE_MAX_ANNOTATIONS=0)  # every campaign with work is "big"


def _url(campaign) -> str:  # type: ignore[no-untyped-def]
    return f"/api/v1/campaigns/{campaign.pk}/dashboard/"


def test_big_campaign_computing_then_ready(exact_queries, django_capture_on_commit_callbacks):
    campaign, manager, annotators = _world()
    _annotate(campaign, annotators[0], "no", "yes")
    client = client_for(manager)
    with BIG:
        # access + the snapshot (none) + the count + the snapshot row's insert + the refresh
        # request (a conditional update) + the rounds.
        with django_capture_on_commit_callbacks() as sent, exact_queries(6):
            r = client.get(_url(campaign))
        body = r.json()
        assert r.status_code == 200 and "progress" not in body
        assert body["snapshot"]["state"] == "computing" and body["snapshot"]["refreshing"]
        assert len(sent) == 1  # one refresh enqueued
        r = client.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/labels.csv")
        assert r.status_code == 503 and r.json()["error"]["code"] == "dashboard_computing"
        with django_capture_on_commit_callbacks() as sent:
            client.get(_url(campaign))
        assert sent == []  # already requested: no second message
        assert dashboard_refresh_task(campaign.pk) is True
        snap = DashboardSnapshot.objects.get(campaign=campaign)
        assert snap.requested_at is None and snap.claim_token == ""
        assert snap.last_annotation_id == Annotation.objects.get(campaign=campaign).pk
        body = client.get(_url(campaign)).json()
        assert body["snapshot"]["state"] == "ready"
        assert body["progress"]["annotations"] == 1


def test_stale_hit_serves_the_snapshot_and_enqueues_once(
    exact_queries, django_capture_on_commit_callbacks
):
    campaign, manager, annotators = _world()
    _annotate(campaign, annotators[0], "no", "yes")
    client = client_for(manager)
    first = client.get(_url(campaign)).json()  # small: computed inline, stored
    _annotate(campaign, annotators[1], "no", "yes")
    with BIG:
        # access + the snapshot + the refresh request (a conditional update) + the rounds.
        with django_capture_on_commit_callbacks() as sent, exact_queries(4):
            body = client.get(_url(campaign)).json()
        assert len(sent) == 1
        assert body["progress"]["annotations"] == 1  # the stored figures, at once
        assert body["snapshot"]["stale"] and body["snapshot"]["refreshing"]
        assert body["snapshot"]["computed_at"] == first["snapshot"]["computed_at"]
        with django_capture_on_commit_callbacks() as sent, exact_queries(4):
            client.get(_url(campaign))
        assert sent == []
        # The message, run by the task (as a worker would).
        with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
            service._send(campaign.pk)
        body = client.get(_url(campaign)).json()
        assert body["progress"]["annotations"] == 2


def test_one_worker_at_a_time_and_a_dead_claim_is_taken_over():
    campaign, _manager, annotators = _world()
    _annotate(campaign, annotators[0], "no", "yes")
    dashboard_read(campaign=campaign)
    snap = DashboardSnapshot.objects.get(campaign=campaign)
    live = timezone.now()
    DashboardSnapshot.objects.filter(pk=snap.pk).update(claimed_at=live, claim_token="other")
    _annotate(campaign, annotators[1], "no", "yes")
    assert dashboard_refresh(campaign_id=campaign.pk) is False  # the other worker computes
    snap.refresh_from_db()
    assert snap.claim_token == "other" and snap.figures["progress"]["annotations"] == 1
    dead = live - timedelta(seconds=301)  # older than DASHBOARD_REFRESH_EXPIRY_SECONDS
    DashboardSnapshot.objects.filter(pk=snap.pk).update(claimed_at=dead)
    assert dashboard_refresh(campaign_id=campaign.pk) is True
    snap.refresh_from_db()
    assert snap.claim_token == "" and snap.claimed_at is None
    assert snap.figures["progress"]["annotations"] == 2
    # The dead worker's late write matches nothing: its token is gone.
    assert DashboardSnapshot.objects.filter(pk=snap.pk, claim_token="other").update(figures={}) == 0


def test_a_failed_refresh_releases_its_claim(monkeypatch):
    campaign, _manager, _annotators = _world()
    dashboard_read(campaign=campaign)

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away")

    monkeypatch.setattr(service, "campaign_dashboard", broken)
    with pytest.raises(RuntimeError):
        dashboard_refresh(campaign_id=campaign.pk)
    snap = DashboardSnapshot.objects.get(campaign=campaign)
    assert snap.claimed_at is None and snap.claim_token == ""
    assert snap.figures is not None  # the previous figures stay


def test_one_snapshot_per_campaign():
    from django.db import IntegrityError, transaction

    campaign, _, _ = _world()
    DashboardSnapshot.objects.create(campaign=campaign)
    with pytest.raises(IntegrityError), transaction.atomic():
        DashboardSnapshot.objects.create(campaign=campaign)
