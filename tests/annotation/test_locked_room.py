"""SKIP LOCKED skips rows whose lease another request is writing at that instant. Near the end
of a pool those rows can be the only room left; a lease must then wait for the writer rather
than tell the annotator "nothing left" (a 204) while a slot is free."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from annotation.models import CampaignExample, CounterfactualEdit
from tests.annotation.annotator_helpers import add_annotators, annotate_body, text_campaign
from tests.conftest import client_for, requires_postgres

pytestmark = [pytest.mark.django_db(transaction=True), requires_postgres()]

HOLD_S = 0.1  # shorter than the lease's bounded wait (20 + 40 + 60 + 80 ms)


def _hold_lock_while(lock_rows: Callable[[], Any], action: Callable[[], Any]) -> Any:
    """Run `action` while another connection holds row locks taken by `lock_rows` for HOLD_S."""
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                lock_rows()
                locked.set()
                release.wait(HOLD_S)
        finally:
            connection.close()

    t = threading.Thread(target=holder)
    t.start()
    assert locked.wait(10)
    try:
        return action()
    finally:
        release.set()
        t.join(10)


def test_annotate_lease_waits_for_a_row_being_leased_elsewhere():
    campaign = text_campaign(1, redundancy=2)
    (user,) = add_annotators(campaign, 1)
    client = client_for(user)
    client.get("/api/v1/whoami/")  # warm: the lock must still be held when the lease runs
    r = _hold_lock_while(
        lambda: list(CampaignExample.objects.select_for_update().filter(campaign=campaign)),
        lambda: client.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
        ),
    )
    assert r.status_code == 200, r.content


def test_validate_lease_waits_for_an_edit_being_leased_elsewhere():
    campaign = text_campaign(1, redundancy=1, validations_required=2, validations_to_verify=2)
    author, validator = add_annotators(campaign, 2)
    client = client_for(author)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task),
        format="json",
    )
    assert r.status_code == 201
    vclient = client_for(validator)
    vclient.get("/api/v1/whoami/")
    r = _hold_lock_while(
        lambda: list(CounterfactualEdit.objects.select_for_update().filter(campaign=campaign)),
        lambda: vclient.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json"
        ),
    )
    assert r.status_code == 200, r.content


def test_a_full_pool_still_answers_nothing_left_without_waiting_on_locks():
    campaign = text_campaign(1, redundancy=1)
    first, second = add_annotators(campaign, 2)
    assert (
        client_for(first)
        .post(f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json")
        .status_code
        == 200
    )
    r = client_for(second).post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    )
    assert r.status_code == 204
