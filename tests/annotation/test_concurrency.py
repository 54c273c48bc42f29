"""The assignment engine under real concurrency: threads, each with its own database
connection, leasing and submitting through the API at once.

PostgreSQL (row locks, SKIP LOCKED): 32 annotators. The embedded SQLite (write lock taken at
BEGIN, busy timeout): 8 annotators. Same assertions: 200 examples x redundancy 3 end with
exactly 600 annotations, no example above 3, nobody twice on one example, and every
acknowledged submission stored."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from rest_framework.test import APIClient

from annotation.models import Annotation, Assignment, CampaignExample, Validation
from tests.annotation.annotator_helpers import add_annotators, annotate_body, text_campaign

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THREADS = 32 if settings.DATABASE_IS_POSTGRES else 8
EXAMPLES, REDUNDANCY = 200, 3
JOIN_TIMEOUT_S = 600  # a hung worker fails the test instead of hanging CI


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def run_threads(target: Any, args_list: list[tuple[Any, ...]]) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapped(*args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=wrapped, args=args, daemon=True) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
        assert not t.is_alive(), "a worker thread hung"
    return errors


def test_many_annotators_fill_the_pool_exactly() -> None:
    campaign = text_campaign(EXAMPLES, redundancy=REDUNDANCY)
    users = add_annotators(campaign, THREADS)
    barrier = threading.Barrier(THREADS)
    acknowledged: list[int] = []  # annotation ids the server answered 201 for
    repeated: list[int] = []  # ids answered 200 to a retried (same key) submit
    lock = threading.Lock()
    lease_url = f"/api/v1/campaigns/{campaign.id}/lease/"

    def worker(index: int, user: Any) -> None:
        client = client_for(user)
        barrier.wait(timeout=60)
        done = 0
        idle = 0
        for _ in range(10 * EXAMPLES):  # bounded
            r = client.post(lease_url, {"kind": "annotate"}, format="json")
            if r.status_code == 204:
                # Nothing for me now; an open lease elsewhere might still be skipped.
                if (
                    not Assignment.objects.filter(campaign=campaign, status="active").exists()
                    or idle > 300
                ):
                    return
                idle += 1
                time.sleep(0.02)
                continue
            assert r.status_code == 200, r.content
            idle = 0
            task = r.json()
            url = f"/api/v1/assignments/{task['assignment']['id']}/submit/"
            if done == 0 and index % 2 == 0:
                # Half the annotators give their first task back: the slot must be refilled.
                s = client.post(
                    f"/api/v1/assignments/{task['assignment']['id']}/skip/",
                    {"reason": "test"},
                    format="json",
                )
                assert s.status_code == 200, s.content
                done += 1
                continue
            body = annotate_body(task, key=str(uuid.uuid4()))
            s = client.post(url, body, format="json")
            assert s.status_code == 201, s.content
            with lock:
                acknowledged.append(s.json()["annotation"]["id"])
            if done % 7 == 3:  # a retried request after a lost response
                again = client.post(url, body, format="json")
                assert again.status_code == 200, again.content
                with lock:
                    repeated.append(again.json()["annotation"]["id"])
            done += 1

    errors = run_threads(worker, [(i, u) for i, u in enumerate(users)])
    assert not errors, errors[:3]

    annotations = Annotation.objects.filter(campaign=campaign)
    assert annotations.count() == EXAMPLES * REDUNDANCY
    per_example = Counter(annotations.values_list("example_id", flat=True))
    assert len(per_example) == EXAMPLES and set(per_example.values()) == {REDUNDANCY}
    pairs = annotations.values("example_id", "annotator_id").annotate(n=Count("id"))
    assert max(p["n"] for p in pairs) == 1
    stored = set(annotations.values_list("id", flat=True))
    assert sorted(acknowledged) == sorted(stored)  # no lost and no phantom submission
    assert set(repeated) <= stored
    counters = CampaignExample.objects.filter(campaign=campaign).values_list(
        "completed", "in_flight"
    )
    assert set(counters) == {(REDUNDANCY, 0)}
    assert not Assignment.objects.filter(campaign=campaign, status="active").exists()
    assert (
        Assignment.objects.filter(campaign=campaign, status="skipped").count() == (THREADS + 1) // 2
    )


def test_concurrent_double_submit_is_stored_once() -> None:
    campaign = text_campaign(1, redundancy=1)
    (user,) = add_annotators(campaign, 1)
    task = (
        client_for(user)
        .post(f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": "annotate"}, format="json")
        .json()
    )
    body = annotate_body(task, key="double-click")
    n = 6
    barrier = threading.Barrier(n)
    answers: list[tuple[int, int]] = []

    def submit() -> None:
        client = client_for(user)
        barrier.wait(timeout=60)
        r = client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/", body, format="json"
        )
        answers.append((r.status_code, r.json()["annotation"]["id"]))

    assert not run_threads(submit, [() for _ in range(n)])
    codes = sorted(code for code, _ in answers)
    assert codes == [200] * (n - 1) + [201]
    assert len({ident for _, ident in answers}) == 1
    assert Annotation.objects.count() == 1
    assert CampaignExample.objects.get(campaign=campaign).completed == 1


def test_concurrent_submits_of_one_key_with_different_bodies_store_one_and_refuse_the_rest() -> (
    None
):
    campaign = text_campaign(1, redundancy=1)
    (user,) = add_annotators(campaign, 1)
    task = (
        client_for(user)
        .post(f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": "annotate"}, format="json")
        .json()
    )
    n = 6
    bodies = [annotate_body(task, key="same-key", rationale=f"reason {i}") for i in range(n)]
    barrier = threading.Barrier(n)
    answers: list[tuple[int, dict[str, Any]]] = []

    def submit(body: dict[str, Any]) -> None:
        client = client_for(user)
        barrier.wait(timeout=60)
        r = client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/", body, format="json"
        )
        answers.append((r.status_code, r.json()))

    assert not run_threads(submit, [(b,) for b in bodies])
    assert sorted(code for code, _ in answers) == [201] + [409] * (n - 1)
    won = next(body for code, body in answers if code == 201)["annotation"]
    assert {body["error"]["code"] for code, body in answers if code == 409} == {
        "idempotency_key_reused"
    }
    stored = Annotation.objects.get()
    assert (stored.pk, stored.rationale) == (won["id"], won["rationale"])
    assert CampaignExample.objects.get(campaign=campaign).completed == 1


def test_one_person_leasing_from_several_tabs_gets_one_lease() -> None:
    campaign = text_campaign(10)
    (user,) = add_annotators(campaign, 1)
    n = 6
    barrier = threading.Barrier(n)
    ids: list[int] = []

    def tab() -> None:
        client = client_for(user)
        barrier.wait(timeout=60)
        r = client.post(
            f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": "annotate"}, format="json"
        )
        assert r.status_code == 200, r.content
        ids.append(r.json()["assignment"]["id"])

    assert not run_threads(tab, [() for _ in range(n)])
    assert len(set(ids)) == 1
    assert Assignment.objects.filter(annotator=user).count() == 1
    assert (
        sum(CampaignExample.objects.filter(campaign=campaign).values_list("in_flight", flat=True))
        == 1
    )


def test_concurrent_validators_never_exceed_the_required_validations() -> None:
    campaign = text_campaign(1, redundancy=1, validations_required=2, validations_to_verify=2)
    author, *validators = add_annotators(campaign, 1 + min(THREADS, 8))
    client = client_for(author)
    task = client.post(
        f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    assert (
        client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/",
            annotate_body(task),
            format="json",
        ).status_code
        == 201
    )
    barrier = threading.Barrier(len(validators))
    outcomes: list[int] = []

    def validate(user: Any) -> None:
        c = client_for(user)
        barrier.wait(timeout=60)
        r = c.post(f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": "validate"}, format="json")
        outcomes.append(r.status_code)
        if r.status_code == 200:
            t = r.json()
            s = c.post(
                f"/api/v1/assignments/{t['assignment']['id']}/submit/",
                {"idempotency_key": "v", "label": "yes"},
                format="json",
            )
            assert s.status_code == 201, s.content

    assert not run_threads(validate, [(u,) for u in validators])
    assert sorted(outcomes).count(200) == 2
    assert Validation.objects.count() == 2
