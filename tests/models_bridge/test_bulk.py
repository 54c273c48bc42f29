"""Bulk scoring jobs: chunked, resumable, idempotent, with progress."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from annotation.models import Example, Job
from annotation.services.jobs import job_claim, job_lease_s
from counterpoint.errors import Conflict
from models_bridge.models import Score
from models_bridge.services.bulk import bulk_score_resume, bulk_score_run, bulk_score_start
from models_bridge.services.registry import model_register
from models_bridge.tasks import bulk_score_task
from tests.conftest import client_for
from tests.models_bridge.conftest import counting

pytestmark = pytest.mark.django_db


def start(campaign, mv, user, target="examples"):  # type: ignore[no-untyped-def]
    # The task is sent on commit; the test runs it itself in this process.
    with transaction.atomic():
        job = bulk_score_start(model_version=mv, campaign=campaign, target=target, created_by=user)
    return job


def test_job_scores_every_example_and_a_second_pass_makes_no_model_call(evqa_campaign, evqa_people):
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-additive"
    )
    counter = counting(mv)
    job = start(evqa_campaign, mv, evqa_people["manager"])
    bulk_score_task(job.pk)
    job.refresh_from_db()
    n = Example.objects.filter(dataset=evqa_campaign.dataset).count()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress_done, job.progress_total) == (n, n)
    assert job.result["computed"] == n and job.result["model_calls"] == counter.calls >= 1
    assert Score.objects.filter(model_version=mv).count() == n
    calls = counter.calls
    again = start(evqa_campaign, mv, evqa_people["manager"])
    bulk_score_task(again.pk)
    again.refresh_from_db()
    assert again.status == Job.Status.SUCCEEDED
    assert (again.result["model_calls"], again.result["cached"]) == (0, n)
    assert counter.calls == calls


def test_job_runs_once_per_claim(evqa_campaign, evqa_people):
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-text-only"
    )
    job = start(evqa_campaign, mv, evqa_people["manager"])
    bulk_score_task(job.pk)
    finished = Job.objects.get(pk=job.pk).finished_at
    bulk_score_task(job.pk)  # a duplicate delivery does nothing
    assert Job.objects.get(pk=job.pk).finished_at == finished


def test_resume_continues_from_the_cursor(evqa_campaign, evqa_people):
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-text-only"
    )
    counter = counting(mv)
    job = start(evqa_campaign, mv, evqa_people["manager"])
    ids = list(
        Example.objects.filter(dataset=evqa_campaign.dataset)
        .order_by("id")
        .values_list("id", flat=True)
    )
    # A run that died after its first chunk of 5 left this cursor behind:
    Job.objects.filter(pk=job.pk).update(result={"cursor": ids[4]})
    job.refresh_from_db()
    summary = bulk_score_run(job=job, chunk=5)
    assert summary["done"] == len(ids) and summary["computed"] == len(ids) - 5
    assert counter.rows == len(ids) - 5


def test_edits_get_their_scores(evqa_campaign, evqa_people):
    from annotation.services.annotations import annotation_submit
    from tests.annotation.annotator_helpers import edited_text
    from tests.models_bridge.conftest import lease

    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-text-only"
    )
    a = lease(evqa_campaign, evqa_people["shown"])
    labels = list(evqa_campaign.dataset.label_space)
    label = a.example.label or labels[0]
    submitted = annotation_submit(
        assignment=a,
        label=label,
        counterfactual={
            "modality": "text",
            "target_label": next(x for x in labels if x != label),
            "value": edited_text(a.example.values["text"]),
        },
    )
    edit = submitted.edit
    assert edit is not None
    job = start(evqa_campaign, mv, evqa_people["manager"], target="edits")
    bulk_score_task(job.pk)
    edit.refresh_from_db()
    scores = edit.scores[str(mv.pk)]
    assert set(scores) == {"original", "edit"}
    assert scores["edit"]["predicted_label"] in evqa_campaign.dataset.label_space


def test_bulk_endpoint_is_for_managers(
    evqa_campaign, evqa_people, django_capture_on_commit_callbacks
):
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-text-only"
    )
    url = f"/api/v1/campaigns/{evqa_campaign.pk}/bulk-score/"
    r = client_for(evqa_people["shown"]).post(url, {"model": mv.pk}, format="json")
    assert r.status_code == 403
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = client_for(evqa_people["manager"]).post(url, {"model": mv.pk}, format="json")
    assert r.status_code == 202, r.content
    assert r["Location"] == f"/api/v1/jobs/{r.json()['job']['id']}/"
    assert len(callbacks) == 1  # the task is sent once the job row is committed


def test_resume_accepts_a_running_job_whose_worker_is_gone_but_not_a_live_one(
    evqa_campaign: Any, evqa_people: Any
) -> None:
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-text-only"
    )
    with transaction.atomic():
        job = bulk_score_start(
            model_version=mv, campaign=evqa_campaign, created_by=evqa_people["manager"]
        )
    live = job_claim(job_id=job.pk)
    assert live is not None
    with pytest.raises(Conflict) as refused:
        bulk_score_resume(job=job)
    assert refused.value.code == "job_not_failed"

    Job.objects.filter(pk=job.pk).update(status=Job.Status.PENDING)  # back as it was sent
    job_claim(job_id=job.pk, now=timezone.now() - timedelta(seconds=3 * job_lease_s()))
    job = bulk_score_resume(job=job)
    assert (job.status, job.claim_token) == (Job.Status.PENDING, "")
    bulk_score_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["done"] == job.result["total"] == evqa_campaign.items.count()
