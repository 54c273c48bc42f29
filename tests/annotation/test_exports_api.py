"""The exports API: managers start, follow and download exports; nobody else can (a role x
endpoint matrix); the list's query count is pinned; download works with an API token."""

from __future__ import annotations

import io
import zipfile

import pytest
from rest_framework.test import APIClient

from annotation.models import Job
from annotation.services.accounts import token_issue
from tests.annotation.export_helpers import do_work
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(campaign, examples, manager, annotator, annotator2, validator, outsider, staff):  # type: ignore[no-untyped-def]
    do_work(campaign, [annotator, annotator2])
    r = client_for(manager).post(
        f"/api/v1/campaigns/{campaign.pk}/exports/", {"format": "jsonl"}, format="json"
    )
    assert r.status_code == 202, r.content
    return {
        "campaign": campaign,
        "job": r.json()["id"],
        "manager": manager,
        "annotator": annotator,
        "validator": validator,
        "outsider": outsider,
        "staff": staff,
        "anonymous": None,
    }


def test_manager_starts_follows_and_downloads(world, django_capture_on_commit_callbacks):
    campaign, manager = world["campaign"], world["manager"]
    client = client_for(manager)
    from annotation.tasks import export_run

    with django_capture_on_commit_callbacks() as sent:
        r = client.post(
            f"/api/v1/campaigns/{campaign.pk}/exports/", {"format": "csv"}, format="json"
        )
    assert r.status_code == 202
    assert len(sent) == 1  # the task is sent once the job row is committed
    assert r["Location"] == f"/api/v1/campaigns/{campaign.pk}/exports/{r.json()['id']}/"
    assert client.get(r["Location"]).json()["download_url"] is None
    export_run(r.json()["id"])  # what the io worker does with the message
    body = client.get(r["Location"]).json()
    assert body["status"] == "succeeded", body
    assert body["format"] == "csv"
    assert body["progress"] == 1.0 and body["rows"] == {"annotations": 2, "pairs": 2}
    assert body["download_url"].endswith(f"/exports/{body['id']}/download/")
    got = client.get(body["download_url"])
    assert got.status_code == 200
    assert got["Content-Type"] == "application/zip"
    assert body["file_name"] in got["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(got.streaming_content)))
    assert {"annotations.csv", "pairs.csv", "README.md"} <= set(archive.namelist())


def test_list_query_count_is_pinned(world, django_assert_num_queries):
    campaign, manager = world["campaign"], world["manager"]
    client = client_for(manager)
    for fmt in ("csv", "parquet"):
        client.post(f"/api/v1/campaigns/{campaign.pk}/exports/", {"format": fmt}, format="json")
    # the manager's membership, the count, the page (created_by joined, no log column)
    with django_assert_num_queries(3):
        r = client.get(f"/api/v1/campaigns/{campaign.pk}/exports/")
    assert r.status_code == 200
    assert r.json()["count"] == 3
    assert [e["format"] for e in r.json()["results"]] == ["parquet", "csv", "jsonl"]


def test_bad_format_is_a_named_400_and_nothing_is_stored(world):
    campaign = world["campaign"]
    r = client_for(world["manager"]).post(
        f"/api/v1/campaigns/{campaign.pk}/exports/", {"format": "xlsx"}, format="json"
    )
    assert r.status_code == 400
    assert "error" in r.json()
    assert Job.objects.filter(kind=Job.Kind.EXPORT).count() == 1


def test_not_ready_export_has_no_file(world):
    campaign = world["campaign"]
    r = client_for(world["manager"]).get(
        f"/api/v1/campaigns/{campaign.pk}/exports/{world['job']}/download/"
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "export_not_ready"


EXPECTED = {
    # persona: (list, start, detail, download)
    "manager": (200, 202, 200, 200),
    "staff": (200, 202, 200, 200),
    "annotator": (403, 403, 403, 403),
    "validator": (403, 403, 403, 403),
    "outsider": (404, 404, 404, 404),
    "anonymous": (403, 403, 403, 403),
}


@pytest.mark.parametrize("persona", list(EXPECTED))
def test_permission_matrix(world, persona):
    from annotation.tasks import export_run

    export_run(world["job"])
    campaign = world["campaign"]
    client = client_for(world[persona])
    base = f"/api/v1/campaigns/{campaign.pk}/exports/"
    got = (
        client.get(base).status_code,
        client.post(base, {"format": "jsonl"}, format="json").status_code,
        client.get(f"{base}{world['job']}/").status_code,
        client.get(f"{base}{world['job']}/download/").status_code,
    )
    assert got == EXPECTED[persona]


def test_another_campaigns_export_is_not_reachable_through_this_one(world):
    from tests.factories import CampaignFactory, MembershipFactory

    other = CampaignFactory()
    MembershipFactory(campaign=other, user=world["manager"], role="manager")
    r = client_for(world["manager"]).get(f"/api/v1/campaigns/{other.pk}/exports/{world['job']}/")
    assert r.status_code == 404


def test_download_with_an_api_token(world):
    from annotation.tasks import export_run

    export_run(world["job"])
    token = token_issue(user=world["manager"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    campaign = world["campaign"]
    r = client.get(f"/api/v1/campaigns/{campaign.pk}/exports/{world['job']}/download/")
    assert r.status_code == 200
    r = APIClient().get(f"/api/v1/campaigns/{campaign.pk}/exports/{world['job']}/download/")
    assert r.status_code in (401, 403)
