"""Perturbation tasks (docs/perturbation.md; annotation/perturbation_design.py,
annotation/services/perturbation_tasks.py): the Latin square is balanced; through the lease API
each annotator sees each base example at most once, at one level, levels rotate within and
across annotators, gold items come at level 0; labels are stored as PerturbationLabel (not
Annotation), idempotently, with named 400s for bad input; perturbed images are served only to
the holder of that item. PostgreSQL: concurrent leases keep every rule."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction

from annotation.models import (
    Annotation,
    Assignment,
    Membership,
    PerturbationLabel,
    PerturbationStudy,
    PerturbedItem,
)
from annotation.perturbation_design import perturbation_level
from annotation.services.perturbation_tasks import perturbation_lease
from annotation.services.perturbations import perturbation_study_create
from annotation.tasks import perturbation_build_run
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.annotation.test_concurrency import client_for as force_client
from tests.annotation.test_concurrency import run_threads
from tests.conftest import client_for, requires_postgres

LEVELS = [0.0, 0.1, 0.2, 0.4, 0.8]


def test_latin_square_is_balanced() -> None:
    n_levels, examples, people = 5, 20, 10
    grid = [
        [
            perturbation_level(slot=s, position=p, n_levels=n_levels, is_gold=False)
            for p in range(examples)
        ]
        for s in range(people)
    ]
    # Every (example, level) cell: exactly people / levels labels.
    cells = Counter((p, grid[s][p]) for s in range(people) for p in range(examples))
    assert set(cells.values()) == {people // n_levels}
    assert len(cells) == examples * n_levels
    # Within a person, any L consecutive examples cover every level once.
    for row in grid:
        for start in range(examples - n_levels + 1):
            assert sorted(row[start : start + n_levels]) == list(range(n_levels))
    # Across any L consecutive people, an example is seen at every level once.
    for p in range(examples):
        for start in range(people - n_levels + 1):
            column = [grid[s][p] for s in range(start, start + n_levels)]
            assert sorted(column) == list(range(n_levels))
    assert perturbation_level(slot=3, position=7, n_levels=5, is_gold=True) == 0


def _study(campaign: Any, **kw: Any) -> PerturbationStudy:
    study = perturbation_study_create(
        campaign=campaign,
        created_by=None,
        name=kw.pop("name", "noise"),
        modality="text",
        perturbation="char_noise",
        levels=kw.pop("levels", LEVELS),
        seed=1,
    )
    perturbation_build_run(study.job_id)
    study.refresh_from_db()
    return study


def _lease(client: Any, campaign: Any, study: Any) -> Any:
    return client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/",
        {"kind": "perturbation", "study": study.pk},
        format="json",
    )


def _label_all(client: Any, campaign: Any, study: Any, limit: int = 100) -> list[dict[str, Any]]:
    seen = []
    for _ in range(limit):
        r = _lease(client, campaign, study)
        if r.status_code == 204:
            return seen
        assert r.status_code == 200, r.content
        task = r.json()
        seen.append(task)
        s = client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/",
            {"label": "yes", "confidence": 3, "idempotency_key": uuid.uuid4().hex},
            format="json",
        )
        assert s.status_code == 201, s.content
    raise AssertionError("the lease never ran out")


@pytest.mark.django_db
def test_annotators_go_through_a_balanced_design() -> None:
    campaign = text_campaign(10)
    study = _study(campaign)
    people = add_annotators(campaign, 5)
    for user in people:
        tasks = _label_all(client_for(user), campaign, study)
        assert len(tasks) == 10
        assert all(t["assignment"]["kind"] == "perturbation" for t in tasks)
        assert "level" not in str(tasks[0]["example"])  # the annotator is not told the level
    labels = list(PerturbationLabel.objects.filter(study=study))
    assert len(labels) == 50
    # Each person: each base example once; each level twice (10 examples, 5 levels).
    for user in people:
        mine = [row for row in labels if row.annotator_id == user.pk]
        assert len({row.example_id for row in mine}) == 10
        assert set(Counter(row.level_index for row in mine).values()) == {2}
    # Each (example, level) cell: exactly one label from the 5 people.
    assert set(Counter((row.example_id, row.level_index) for row in labels).values()) == {1}
    assert len({(row.example_id, row.level_index) for row in labels}) == 50
    # The label went to its item: the item's level and the study's.
    assert all(row.item.level_index == row.level_index for row in labels)
    assert not Annotation.objects.exists()  # perturbation labels stay out of the label step


@pytest.mark.django_db
def test_gold_items_come_at_level_zero() -> None:
    campaign = text_campaign(10, gold=lambda i: i < 3)
    study = _study(campaign)
    for user in add_annotators(campaign, 3):
        _label_all(client_for(user), campaign, study)
    gold = PerturbationLabel.objects.filter(study=study, is_gold=True)
    assert gold.count() == 9
    assert set(gold.values_list("level_index", flat=True)) == {0}


@pytest.mark.django_db
def test_an_example_once_per_person_across_kinds_and_leases() -> None:
    campaign = text_campaign(4)
    study = _study(campaign)
    ana = member(campaign, "ana")
    client = client_for(ana)
    # Ana annotated one example in the ordinary label step: never shown to her perturbed.
    r = client.post(f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json")
    annotated = r.json()["example"]["id"]
    first = _lease(client, campaign, study).json()
    assert _lease(client, campaign, study).json()["assignment"] == first["assignment"]  # open
    skip = client.post(f"/api/v1/assignments/{first['assignment']['id']}/skip/", {}, format="json")
    assert skip.status_code == 200
    got = [first, *_label_all(client, campaign, study)]
    examples = [Assignment.objects.get(pk=t["assignment"]["id"]).example_id for t in got]
    assert len(examples) == 3 and len(set(examples)) == 3 and annotated not in examples
    # The database holds the rule too.
    item = PerturbedItem.objects.filter(study=study, example_id=examples[1]).exclude(
        pk=Assignment.objects.get(pk=got[1]["assignment"]["id"]).perturbed_item_id
    )[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(
            campaign=campaign,
            kind=Assignment.Kind.PERTURBATION,
            example_id=examples[1],
            perturbed_item=item,
            annotator=ana,
            status=Assignment.Status.SUBMITTED,
            leased_at=item.created_at,
            expires_at=item.created_at,
        )


@pytest.mark.django_db
def test_submit_rules_and_idempotency() -> None:
    campaign = text_campaign(3)
    study = _study(campaign)
    client = client_for(member(campaign, "ana"))
    task = _lease(client, campaign, study).json()
    url = f"/api/v1/assignments/{task['assignment']['id']}/submit/"
    bad = client.post(url, {"label": "maybe"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "label_invalid"
    bad = client.post(url, {"label": "yes", "confidence": 7}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "confidence_invalid"
    assert not PerturbationLabel.objects.exists()
    assert client.get(f"/api/v1/assignments/{task['assignment']['id']}/").json() == task
    body = {"label": "no", "confidence": 2, "idempotency_key": "k1"}
    first = client.post(url, body, format="json")
    again = client.post(url, body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["perturbation_label"]["id"] == again.json()["perturbation_label"]["id"]
    other = client.post(url, {**body, "label": "yes"}, format="json")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert PerturbationLabel.objects.count() == 1


@pytest.mark.django_db
def test_who_may_lease_and_when() -> None:
    campaign = text_campaign(3)
    building = perturbation_study_create(
        campaign=campaign, created_by=None, name="b", modality="text", perturbation="word_shuffle"
    )
    study = _study(campaign)
    vera = member(campaign, "vera", Membership.Role.VALIDATOR)
    otto = member(text_campaign(1), "otto")
    ana = member(campaign, "ana")
    assert _lease(client_for(vera), campaign, study).status_code == 403
    assert _lease(client_for(otto), campaign, study).status_code == 404
    r = _lease(client_for(ana), campaign, building)
    assert r.status_code == 409 and r.json()["error"]["code"] == "study_not_ready"
    elsewhere = _study(text_campaign(2), name="x")
    assert _lease(client_for(ana), campaign, elsewhere).status_code == 404


@pytest.mark.django_db
def test_perturbed_images_go_to_the_holder_of_that_item_only(
    campaign, examples, annotator, annotator2
):  # type: ignore[no-untyped-def]
    study = perturbation_study_create(
        campaign=campaign, created_by=None, name="n", modality="image", perturbation="blur"
    )
    perturbation_build_run(study.job_id)
    task = _lease(client_for(annotator), campaign, PerturbationStudy.objects.get(pk=study.pk))
    assignment = Assignment.objects.get(pk=task.json()["assignment"]["id"])
    sha = task.json()["example"]["values"]["image"]["sha256"]
    assert sha == assignment.perturbed_item.values["image"]
    assert client_for(annotator).get(f"/media/{sha}").status_code == 200
    others = PerturbedItem.objects.filter(study=study, example=assignment.example).exclude(
        pk=assignment.perturbed_item_id
    )
    for item in others:
        if item.values["image"] != sha:
            assert client_for(annotator).get(f"/media/{item.values['image']}").status_code == 404
    assert client_for(annotator2).get(f"/media/{sha}").status_code == 404


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_concurrent_leases_keep_the_design_on_postgres() -> None:
    assert settings.DATABASE_IS_POSTGRES
    campaign = text_campaign(12)
    study = _study(campaign, levels=[0.0, 0.2, 0.4])
    people = add_annotators(campaign, 6)
    barrier = threading.Barrier(len(people) * 2)
    lock = threading.Lock()
    leased: list[tuple[int, int]] = []

    def worker(user: Any, twin: bool) -> None:
        client = force_client(user)
        barrier.wait(timeout=60)
        for _ in range(40):
            r = _lease(client, campaign, study)
            if r.status_code == 204:
                return
            assert r.status_code == 200, r.content
            ident = r.json()["assignment"]["id"]
            s = client.post(
                f"/api/v1/assignments/{ident}/submit/",
                {"label": "yes", "idempotency_key": f"{ident}"},
                format="json",
            )
            assert s.status_code in (200, 201), s.content
            with lock:
                leased.append((user.pk, ident))

    # Each person in two threads at once (two tabs): the same lease, never two examples open.
    errors = run_threads(worker, [(u, t) for u in people for t in (False, True)])
    assert not errors, errors
    labels = list(PerturbationLabel.objects.filter(study=study))
    assert len(labels) == 12 * 6
    for user in people:
        mine = [row for row in labels if row.annotator_id == user.pk]
        assert len({row.example_id for row in mine}) == 12
        assert set(Counter(row.level_index for row in mine).values()) == {4}
    assert set(Counter((row.example_id, row.level_index) for row in labels).values()) == {2}
    slots = sorted(study.participants.values_list("slot", flat=True))
    assert slots == list(range(6))  # six people, six rows of the square, none shared


@pytest.mark.django_db
def test_service_lease_returns_none_when_done() -> None:
    campaign = text_campaign(2)
    study = _study(campaign)
    ana = member(campaign, "ana")
    _label_all(client_for(ana), campaign, study)
    assert perturbation_lease(study=study, annotator=ana).assignment is None


@pytest.mark.django_db
def test_dashboard_shows_study_progress_and_leases_by_kind() -> None:
    campaign = text_campaign(10)
    study = _study(campaign)
    people = add_annotators(campaign, 2)
    manager = member(campaign, "maud-manager", Membership.Role.MANAGER)
    _label_all(client_for(people[0]), campaign, study)
    assert _lease(client_for(people[1]), campaign, study).status_code == 200  # held, open
    data = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/dashboard/").json()
    (row,) = data["perturbation"]
    assert row["id"] == study.pk and row["status"] == "ready"
    assert row["url"] == f"/manage/campaigns/{campaign.pk}/perturbation/{study.pk}/"
    # One person labelled all 10 examples: two per level cell of the 5-level ladder.
    assert row["labels_by_level"] == [2] * 5 and row["labels"] == 10 and row["annotators"] == 1
    # The open perturbation lease is counted as such, not as a pool annotation in flight.
    progress = data["progress"]
    assert progress["open_leases_by_kind"] == {"annotate": 0, "validate": 0, "perturbation": 1}
    assert progress["open_leases"] == 1 and progress["annotations"] == 0
    detail = client_for(manager).get(
        f"/api/v1/campaigns/{campaign.pk}/perturbation-studies/{study.pk}/"
    )
    assert detail.json()["humans"] == {
        k: row[k] for k in ("labels_by_level", "labels", "annotators")
    }
    assert detail.json()["jobs"] == {"score": [], "minimal": []}
