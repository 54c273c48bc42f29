"""The dashboard's stored figures (docs/dashboard.md "Freshness"): requests serve a campaign's
DashboardSnapshot at once and a Celery task recomputes it off the request path.

- ``dashboard_read`` (the API): the snapshot when it is younger than DASHBOARD_CACHE_SECONDS;
  older, a small campaign (at most DASHBOARD_INLINE_MAX_ANNOTATIONS annotations when last
  computed, or counted when it never was) is recomputed within the request, a big one is
  served as it is, flagged ``stale``, and one refresh is enqueued (``refreshing``); a big
  campaign never computed yet answers ``state: "computing"``.
- ``dashboard_refresh`` (the task): claims the snapshot by a conditional update, computes the
  figures outside any transaction (no SQLite write lock is held while the statements run)
  and stores them with one UPDATE matching its claim token; a claim older than
  DASHBOARD_REFRESH_EXPIRY_SECONDS (a dead worker) is taken over, and the dead worker's late
  write then matches nothing. Running it twice recomputes once more: idempotent.

The rounds are not part of the snapshot: they are few, read live (selectors_rounds), and the
round form on the page must see the round it just opened."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import Annotation, Campaign, DashboardSnapshot
from annotation.selectors_dashboard import campaign_dashboard
from annotation.selectors_rounds import campaign_rounds

logger = logging.getLogger(__name__)


def _ttl() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "DASHBOARD_CACHE_SECONDS", 0.0)))


def _expiry() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "DASHBOARD_REFRESH_EXPIRY_SECONDS", 300)))


def dashboard_inline_limit() -> int:
    """Campaigns with at most this many annotations are recomputed within the request."""
    return int(getattr(settings, "DASHBOARD_INLINE_MAX_ANNOTATIONS", 20_000))


def _store(figures: dict[str, Any], computed_at: datetime) -> dict[str, Any]:
    covers = figures.get("covers") or {}
    return {
        "figures": figures,
        "computed_at": computed_at,
        "last_annotation_id": covers.get("annotation_id"),
        "last_edit_id": covers.get("edit_id"),
    }


def _compute_inline(campaign: Campaign) -> DashboardSnapshot:
    """Figures computed now (outside any transaction), stored by one upsert statement."""
    figures = campaign_dashboard(campaign=campaign)
    snap = DashboardSnapshot(campaign=campaign, **_store(figures, timezone.now()))
    DashboardSnapshot.objects.bulk_create(
        [snap],
        update_conflicts=True,
        unique_fields=["campaign"],
        update_fields=["figures", "computed_at", "last_annotation_id", "last_edit_id"],
    )
    return snap


def _send(campaign_id: int) -> None:
    from annotation.tasks import dashboard_refresh_task

    queue = getattr(settings, "JOBS_QUEUE_OVERRIDE", "") or None
    options: dict[str, Any] = {"queue": queue} if queue else {}
    try:
        dashboard_refresh_task.apply_async(args=[campaign_id], **options)
    except Exception:
        # A broker that is down costs freshness only: the request stays expired and the
        # next request past DASHBOARD_REFRESH_EXPIRY_SECONDS asks again.
        logger.warning("could not enqueue the dashboard of campaign %s", campaign_id, exc_info=True)


def _request_refresh(campaign: Campaign, now: datetime) -> None:
    """Enqueue one refresh: only the request whose conditional update marks the snapshot
    requested sends the task (after commit), so a crowd of polling pages sends one."""
    free = Q(requested_at__isnull=True) | Q(requested_at__lt=now - _expiry())
    if DashboardSnapshot.objects.filter(free, campaign=campaign).update(requested_at=now):
        campaign_id = campaign.pk
        transaction.on_commit(lambda: _send(campaign_id))


def _freshness(
    snap: DashboardSnapshot | None, now: datetime, *, stale: bool, refreshing: bool
) -> dict[str, Any]:
    computed = snap.computed_at if snap is not None else None
    return {
        "state": "ready" if computed is not None else "computing",
        "computed_at": computed.isoformat() if computed is not None else None,
        "age_seconds": round((now - computed).total_seconds(), 3) if computed else None,
        "stale": stale,
        "refreshing": refreshing,
        "inline_max_annotations": dashboard_inline_limit(),
    }


def dashboard_read(*, campaign: Campaign) -> dict[str, Any]:
    """The dashboard's answer: figures, the live rounds and their freshness (``snapshot``)."""
    now = timezone.now()
    snap = DashboardSnapshot.objects.filter(campaign=campaign).first()
    figures = snap.figures if snap is not None else None
    if snap is not None and snap.computed_at is not None and now - snap.computed_at < _ttl():
        fresh: dict[str, Any] = _freshness(
            snap, now, stale=False, refreshing=snap.requested_at is not None
        )
    else:
        if figures is not None:
            small = int(figures["progress"]["annotations"]) <= dashboard_inline_limit()
        else:
            small = Annotation.objects.filter(campaign=campaign).count() <= dashboard_inline_limit()
        if small:
            snap = _compute_inline(campaign)
            figures = snap.figures
            fresh = _freshness(snap, timezone.now(), stale=False, refreshing=False)
        else:
            if snap is None:
                DashboardSnapshot.objects.bulk_create(
                    [DashboardSnapshot(campaign=campaign)], ignore_conflicts=True
                )
            _request_refresh(campaign, now)
            fresh = _freshness(snap, now, stale=True, refreshing=True)
    base = figures if figures is not None else {"campaign": campaign.pk, "status": campaign.status}
    return {
        **base,
        "status": campaign.status,
        "rounds": campaign_rounds(campaign=campaign),
        "snapshot": fresh,
    }


def dashboard_refresh(*, campaign_id: int) -> bool:
    """Recompute the campaign's snapshot if no live worker is on it; True when stored."""
    now = timezone.now()
    token = uuid.uuid4().hex
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - _expiry())
    mine = DashboardSnapshot.objects.filter(campaign_id=campaign_id)
    if not mine.filter(free).update(claimed_at=now, claim_token=token):
        return False  # another worker holds a live claim (or the campaign is gone)
    try:
        campaign = Campaign.objects.select_related("dataset").get(pk=campaign_id)
        figures = campaign_dashboard(campaign=campaign)
    except BaseException:
        mine.filter(claim_token=token).update(claimed_at=None, claim_token="")
        raise
    stored = mine.filter(claim_token=token).update(
        **_store(figures, timezone.now()), requested_at=None, claimed_at=None, claim_token=""
    )
    return bool(stored)
