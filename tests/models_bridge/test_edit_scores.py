"""Edit scores: a submitted edit is scored against every campaign model by a task sent on
commit (the results say which scores are pending until then), the task is safe to run twice
and reads the Score cache, and writers for different models never drop each other's keys."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import numpy as np
import pytest
from django.db import connection, transaction

from annotation.models import CounterfactualEdit
from annotation.services.counterfactuals import edit_scores_record
from models_bridge.models import ModelVersion
from models_bridge.services.bulk import bulk_score_run, bulk_score_start
from models_bridge.services.loading import adapter_cache_put, adapter_for
from models_bridge.services.registry import campaign_models_set, model_register
from models_bridge.tasks import edit_score_task
from tests.annotation.annotator_helpers import annotate_body
from tests.conftest import client_for, requires_postgres
from tests.models_bridge.conftest import CountingAdapter, counting


def _submit_edit(campaign: Any, user: Any) -> CounterfactualEdit:
    """An annotation with a text edit, through the lease and submit endpoints."""
    client = client_for(user)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, label="no", target="yes"),
        format="json",
    )
    assert r.status_code == 201, r.content
    return CounterfactualEdit.objects.get(annotation__assignment_id=task["assignment"]["id"])


def _two_models(campaign: Any) -> tuple[ModelVersion, ModelVersion]:
    a = model_register(dataset=campaign.dataset, kind="torchscript", location="easyvqa-text-only")
    b = model_register(dataset=campaign.dataset, kind="torchscript", location="easyvqa-additive")
    campaign_models_set(campaign=campaign, model_versions=[a, b])
    return a, b


def _edits_page(campaign: Any, manager: Any) -> list[dict[str, Any]]:
    r = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/edits/")
    assert r.status_code == 200, r.content
    return r.json()["results"]


@pytest.mark.django_db
def test_a_submitted_edit_is_scored_by_every_campaign_model_after_commit(
    evqa_campaign: Any, evqa_people: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    a, b = _two_models(evqa_campaign)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        edit = _submit_edit(evqa_campaign, evqa_people["shown"])
    assert edit.scores == {}
    (page,) = _edits_page(evqa_campaign, evqa_people["manager"])
    assert (page["scores"], page["scores_pending"]) == ({}, [a.pk, b.pk])

    # The submit's one on-commit callback sends the task; eager mode runs it in this process.
    assert len(sent) == 1
    settings.CELERY_TASK_ALWAYS_EAGER = True
    sent[0]()
    edit.refresh_from_db()
    assert set(edit.scores) == {str(a.pk), str(b.pk)}
    for entry in edit.scores.values():
        assert set(entry) - {"emap"} == {"original", "edit"}  # emap: factorized models
        assert entry["edit"]["predicted_label"] in evqa_campaign.dataset.label_space
    (page,) = _edits_page(evqa_campaign, evqa_people["manager"])
    assert page["scores_pending"] == [] and page["scores"] == edit.scores


@pytest.mark.django_db
def test_the_edit_task_reads_the_cache_and_a_second_run_calls_no_model(
    evqa_campaign: Any, evqa_people: Any
) -> None:
    a, b = _two_models(evqa_campaign)
    edit = _submit_edit(evqa_campaign, evqa_people["shown"])
    # The originals were scored by a bulk job before: only the edited input is new.
    for mv in (a, b):
        with transaction.atomic():
            job = bulk_score_start(
                model_version=mv, campaign=evqa_campaign, created_by=evqa_people["manager"]
            )
        bulk_score_run(job=job)
    counters = [counting(a), counting(b)]
    edit_score_task(edit.pk)
    assert [c.rows for c in counters] == [1, 1]
    first = CounterfactualEdit.objects.get(pk=edit.pk).scores
    assert set(first) == {str(a.pk), str(b.pk)}

    edit_score_task(edit.pk)  # a redelivered message
    assert [c.calls for c in counters] == [1, 1]
    assert CounterfactualEdit.objects.get(pk=edit.pk).scores == first


@pytest.mark.django_db
def test_writers_for_different_models_with_stale_reads_keep_both_keys(
    evqa_campaign: Any, evqa_people: Any
) -> None:
    edit = _submit_edit(evqa_campaign, evqa_people["shown"])
    summary = {"probabilities": {"yes": 1.0}, "predicted_label": "yes"}
    # Two writers each read the edit (scores {}) before either wrote.
    stale_1 = CounterfactualEdit.objects.get(pk=edit.pk)
    stale_2 = CounterfactualEdit.objects.get(pk=edit.pk)
    assert stale_1.scores == stale_2.scores == {}
    edit_scores_record(scores={stale_1.pk: {"101": {"original": summary, "edit": summary}}})
    edit_scores_record(scores={stale_2.pk: {"202": {"original": summary, "edit": summary}}})
    assert set(CounterfactualEdit.objects.get(pk=edit.pk).scores) == {"101", "202"}
    # A key already scored is kept; an error entry is replaced by scores.
    edit_scores_record(scores={edit.pk: {"101": {"error": {"code": "x", "message": "x"}}}})
    edit_scores_record(scores={edit.pk: {"303": {"error": {"code": "x", "message": "x"}}}})
    edit_scores_record(scores={edit.pk: {"303": {"original": summary, "edit": summary}}})
    scores = CounterfactualEdit.objects.get(pk=edit.pk).scores
    assert scores["101"]["edit"] == summary and scores["303"]["edit"] == summary


class _Interleaving(CountingAdapter):
    """Runs `during()` once inside its first forward: another job's whole run happens between
    this job's read of the edits and its write."""

    def __init__(self, inner: Any, during: Any) -> None:
        super().__init__(inner)
        self.during = during

    def run(self, prepared: Any) -> np.ndarray:
        during, self.during = self.during, None
        if during is not None:
            during()
        return super().run(prepared)


def _edits_job(campaign: Any, mv: ModelVersion, user: Any) -> Any:
    with transaction.atomic():
        return bulk_score_start(
            model_version=mv, campaign=campaign, target="edits", created_by=user
        )


@pytest.mark.django_db
def test_two_interleaved_bulk_jobs_for_different_models_both_survive(
    evqa_campaign: Any, evqa_people: Any
) -> None:
    a, b = _two_models(evqa_campaign)
    edits = [_submit_edit(evqa_campaign, evqa_people[who]) for who in ("shown", "hidden")]
    job_a = _edits_job(evqa_campaign, a, evqa_people["manager"])
    job_b = _edits_job(evqa_campaign, b, evqa_people["manager"])
    adapter_cache_put(a, _Interleaving(adapter_for(a), lambda: bulk_score_run(job=job_b)))
    bulk_score_run(job=job_a)
    for edit in edits:
        assert set(CounterfactualEdit.objects.get(pk=edit.pk).scores) == {str(a.pk), str(b.pk)}


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_bulk_jobs_on_postgres_both_survive(
    evqa_campaign: Any, evqa_people: Any, settings: Any
) -> None:
    from tests.annotation.test_celery_worker import _forget_queue

    # This test runs the jobs itself: their messages go to a queue nobody serves, then away.
    settings.JOBS_QUEUE_OVERRIDE = f"test-unserved-{uuid.uuid4().hex[:12]}"
    try:
        _run_two_concurrent_jobs(evqa_campaign, evqa_people)
    finally:
        _forget_queue(settings.JOBS_QUEUE_OVERRIDE)


def _run_two_concurrent_jobs(evqa_campaign: Any, evqa_people: Any) -> None:
    # Submitted before the models are attached: no scoring message leaves this test.
    edits = [_submit_edit(evqa_campaign, evqa_people[who]) for who in ("shown", "hidden")]
    a, b = _two_models(evqa_campaign)
    jobs = [_edits_job(evqa_campaign, mv, evqa_people["manager"]) for mv in (a, b)]
    # Both jobs have read the edits before either writes: each waits for the other at its
    # model call.
    barrier = threading.Barrier(2)

    class _Meet(CountingAdapter):
        def run(self, prepared: Any) -> np.ndarray:
            barrier.wait(timeout=30)
            return super().run(prepared)

    for mv in (a, b):
        adapter_cache_put(mv, _Meet(adapter_for(mv)))
    errors: list[BaseException] = []

    def work(job: Any) -> None:
        try:
            bulk_score_run(job=job)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    for edit in edits:
        assert set(CounterfactualEdit.objects.get(pk=edit.pk).scores) == {str(a.pk), str(b.pk)}
