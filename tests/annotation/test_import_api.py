"""POST /api/v1/imports/ and GET /api/v1/jobs/: who may import, what the job records, and that
a failed import leaves nothing behind (rows, media files, staged uploads). Tasks run eagerly
here; tests/annotation/test_celery_worker.py runs the same flow through a real worker."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import Dataset, Example, Job, Media
from tests.factories import DatasetFactory, UserFactory
from tests.fixtures_import.builders import data_uri, line, png, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager(settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True


def jsonl(records: list[Any]) -> SimpleUploadedFile:
    body = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode()
    return SimpleUploadedFile("manifest.jsonl", body, content_type="application/jsonl")


def zipped(members: dict[str, bytes]) -> SimpleUploadedFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return SimpleUploadedFile("media.zip", buf.getvalue(), content_type="application/zip")


def post(client: Any, capture: Any, data: dict[str, Any], fmt: str = "multipart") -> Any:
    with capture(execute=True):
        return client.post("/api/v1/imports/", data, format=fmt)


def manifest_form(records: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "format": "jsonl",
        "dataset": "pets",
        "modalities": "image:image,text:text",
        "labels": "yes,no",
        "manifest": jsonl(records),
        **extra,
    }


def test_manager_imports_manifest_with_zip(
    api, manager, django_capture_on_commit_callbacks, settings
) -> None:
    media = zipped({"img/a.png": png(), "img/b.png": png((0, 0, 255))})
    r = post(
        api(manager),
        django_capture_on_commit_callbacks,
        manifest_form([line("a"), line("b", image="img/b.png", label="no")], media=media),
    )
    assert r.status_code == 202, r.content
    assert r["Location"] == f"/api/v1/jobs/{r.json()['id']}/"
    job = Job.objects.get(pk=r.json()["id"])
    assert (job.kind, job.status, job.created_by) == (
        Job.Kind.IMPORT,
        Job.Status.SUCCEEDED,
        manager,
    )
    assert job.result["created"] == 2 and job.result["media_created"] == 2
    assert job.dataset.name == "pets" and job.dataset.created_by == manager
    assert sorted(
        Example.objects.filter(dataset=job.dataset).values_list("external_id", flat=True)
    ) == ["a", "b"]
    assert not (Path(settings.MEDIA_ROOT) / "_imports").exists()  # staged uploads are gone
    detail = api(manager).get(f"/api/v1/jobs/{job.pk}/").json()
    assert (
        detail["status"] == "succeeded"
        and detail["progress"] == 1.0
        and "staging" not in detail["params"]
    )
    assert any("imported 2 examples" in entry["message"] for entry in detail["log"])


def test_data_uris_need_no_zip_and_schema_can_be_a_file(
    api, manager, django_capture_on_commit_callbacks
) -> None:
    schema = SimpleUploadedFile(
        "schema.json",
        json.dumps(
            {
                "modalities": [
                    {"name": "image", "kind": "image"},
                    {"name": "text", "kind": "text"},
                ],
                "label_space": ["yes", "no"],
            }
        ).encode(),
    )
    r = post(
        api(manager),
        django_capture_on_commit_callbacks,
        {
            "format": "jsonl",
            "dataset": "pets",
            "schema": schema,
            "manifest": jsonl([line("a", image=data_uri(png()))]),
        },
    )
    assert r.status_code == 202, r.content
    assert Job.objects.get().status == Job.Status.SUCCEEDED
    assert Example.objects.filter(dataset__name="pets").count() == 1


def test_easyvqa_by_json(api, manager, django_capture_on_commit_callbacks) -> None:
    r = post(
        api(manager),
        django_capture_on_commit_callbacks,
        {"format": "easyvqa", "split": "test", "limit": 9, "seed": 2},
        fmt="json",
    )
    assert r.status_code == 202, r.content
    job = Job.objects.get(pk=r.json()["id"])
    assert job.status == Job.Status.SUCCEEDED and job.result["created"] == 9
    assert Dataset.objects.get(name="easy-VQA").examples.count() == 9


def test_failed_import_job_lists_every_bad_line_and_changes_nothing(
    api, manager, django_capture_on_commit_callbacks
) -> None:
    before = snapshot()
    media = zipped({"img/a.png": png(), "img/not.png": b"text"})
    r = post(
        api(manager),
        django_capture_on_commit_callbacks,
        manifest_form(
            [line("a"), line("b", image="img/not.png"), "{", line("d", label="maybe")], media=media
        ),
    )
    assert r.status_code == 202
    job = Job.objects.get(pk=r.json()["id"])
    assert job.status == Job.Status.FAILED
    assert job.result["code"] == "import_invalid" and "nothing was imported" in job.error
    assert [(d["line"], d["code"]) for d in job.result["details"]] == [
        (2, "image_not_an_image"),
        (3, "json_malformed"),
        (4, "label_unknown"),
    ]
    assert snapshot()[:3] == before[:3]
    assert snapshot()[3] == before[3]  # no media file and no staged upload left


def test_zip_slip_fails_the_job(api, manager, django_capture_on_commit_callbacks, tmp_path) -> None:
    before = snapshot()
    r = post(
        api(manager),
        django_capture_on_commit_callbacks,
        manifest_form([line("a")], media=zipped({"../../evil.png": png(), "img/a.png": png()})),
    )
    job = Job.objects.get(pk=r.json()["id"])
    assert job.status == Job.Status.FAILED and job.result["code"] == "archive_unsafe_path"
    assert snapshot() == before


def test_request_errors_are_400_and_stage_nothing(
    api, manager, django_capture_on_commit_callbacks, settings
) -> None:
    client = api(manager)
    before = snapshot()
    r = post(client, django_capture_on_commit_callbacks, {"format": "jsonl", "dataset": "pets"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "import_manifest_missing"
    r = post(
        client,
        django_capture_on_commit_callbacks,
        {"format": "jsonl", "dataset": "pets", "manifest": jsonl([line("a")])},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "schema_missing"
    settings.IMPORT_MAX_UPLOAD_BYTES = 10
    r = post(client, django_capture_on_commit_callbacks, manifest_form([line("a")]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "import_upload_too_large"
    r = post(client, django_capture_on_commit_callbacks, {"format": "parquet", "dataset": "x"})
    assert r.status_code == 400
    r = post(
        client,
        django_capture_on_commit_callbacks,
        {"format": "easyvqa", "split": "dev"},
        fmt="json",
    )
    assert r.status_code == 400
    assert snapshot() == before and Job.objects.count() == 0


@pytest.mark.parametrize("who", ["annotator", "validator", "outsider"])
def test_only_managers_import(api, who, request, django_capture_on_commit_callbacks) -> None:
    user = request.getfixturevalue(who)
    r = post(
        api(user),
        django_capture_on_commit_callbacks,
        {"format": "easyvqa", "split": "test", "limit": 1},
        fmt="json",
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "manager_required"
    assert Job.objects.count() == 0
    assert api(None).post("/api/v1/imports/", {}, format="json").status_code in (401, 403)


def test_someone_elses_dataset_cannot_be_imported_into(
    api, manager, django_capture_on_commit_callbacks
) -> None:
    DatasetFactory(name="theirs", created_by=UserFactory(username="other"))
    r = post(
        api(manager),
        django_capture_on_commit_callbacks,
        {"format": "easyvqa", "split": "test", "limit": 1, "dataset": "theirs"},
        fmt="json",
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "dataset_name_taken"


def test_jobs_are_visible_to_their_creator_and_staff_only(
    api, manager, annotator, outsider, staff, django_capture_on_commit_callbacks
) -> None:
    r = post(
        api(manager),
        django_capture_on_commit_callbacks,
        {"format": "easyvqa", "split": "test", "limit": 2},
        fmt="json",
    )
    job_id = r.json()["id"]
    assert [j["id"] for j in api(manager).get("/api/v1/jobs/").json()["results"]] == [job_id]
    assert [
        j["id"]
        for j in api(staff).get("/api/v1/jobs/?kind=import&status=succeeded").json()["results"]
    ] == [job_id]
    assert api(staff).get("/api/v1/jobs/?status=failed").json()["results"] == []
    for user in (annotator, outsider):
        assert api(user).get("/api/v1/jobs/").json()["results"] == []
        assert api(user).get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert api(manager).get("/api/v1/jobs/999999/").status_code == 404


def test_job_list_query_count_is_flat(api, manager, exact_queries) -> None:
    for _ in range(5):
        Job.objects.create(kind=Job.Kind.IMPORT, created_by=manager, params={})
    with exact_queries(2):
        r = api(manager).get("/api/v1/jobs/")
    assert r.status_code == 200 and len(r.json()["results"]) == 5
    assert Media.objects.count() == 0
