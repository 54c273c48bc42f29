"""Jobs are visible per campaign, not per shared dataset (issue 7, A6)."""

from __future__ import annotations

import pytest

from annotation.models import Job
from annotation.services.campaigns import campaign_create, membership_add
from annotation.services.jobs import job_create
from tests.conftest import client_for
from tests.factories import DatasetFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_campaigns():  # type: ignore[no-untyped-def]
    owner = UserFactory(username="dora-dataset-owner")
    dataset = DatasetFactory(created_by=owner)
    alice, bob = UserFactory(username="alice-a"), UserFactory(username="bob-b")
    a = campaign_create(dataset=dataset, name="campaign A", created_by=alice)
    campaign_create(dataset=dataset, name="campaign B", created_by=bob)
    helper = UserFactory(username="hugo-helper")
    membership_add(campaign=a, user=helper, role="annotator")
    job_a = job_create(
        kind=Job.Kind.SCORE, created_by=alice, params={}, campaign=a, dataset=dataset
    )
    imp = job_create(kind=Job.Kind.IMPORT, created_by=owner, params={}, dataset=dataset)
    return {
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "helper": helper,
        "job_a": job_a,
        "import": imp,
    }


def _ids(user) -> set[int]:  # type: ignore[no-untyped-def]
    response = client_for(user).get("/api/v1/jobs/")
    assert response.status_code == 200
    return {row["id"] for row in response.json()["results"]}


def test_manager_of_another_campaign_over_the_same_dataset_does_not_see_the_job(two_campaigns):
    w = two_campaigns
    job_a, imp = w["job_a"].id, w["import"].id
    assert _ids(w["bob"]) == {imp}
    response = client_for(w["bob"]).get(f"/api/v1/jobs/{job_a}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_who_sees_a_campaign_job_and_a_dataset_job(two_campaigns):
    w = two_campaigns
    job_a, imp = w["job_a"].id, w["import"].id
    staff = UserFactory(username="stan-staff", is_staff=True)
    assert _ids(w["alice"]) == {job_a, imp}  # manages A, so sees A's dataset
    assert _ids(staff) >= {job_a, imp}
    # The dataset's creator sees the dataset's import but not a campaign's bulk job.
    assert _ids(w["owner"]) == {imp}
    assert _ids(w["helper"]) == set()  # an annotator of A sees neither
    assert client_for(w["alice"]).get(f"/api/v1/jobs/{job_a}/").status_code == 200
