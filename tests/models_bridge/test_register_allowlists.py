"""Campaign managers who are not staff may register entry points and remote models only
from the operator's allowlists: an entry point is code the server calls at registration, and a
remote URL sends this server's requests wherever it points."""

from __future__ import annotations

import pytest

from annotation.models import Dataset
from models_bridge.models import ModelVersion
from tests.conftest import client_for

ENTRYPOINT = "tests.models_bridge.example_entrypoint:make_adapter"


@pytest.fixture
def manager_api(evqa_campaign, evqa_people):  # type: ignore[no-untyped-def]
    Dataset.objects.filter(pk=evqa_campaign.dataset_id).update(created_by=evqa_people["manager"])
    return client_for(evqa_people["manager"])


@pytest.fixture
def kw_dataset(evqa_people):  # type: ignore[no-untyped-def]
    return Dataset.objects.create(
        name="kw",
        modalities=[{"name": "text", "kind": "text"}],
        label_space=["yes", "no"],
        created_by=evqa_people["manager"],
    )


def _entrypoint_body(dataset_id: int, location: str) -> dict[str, object]:
    return {
        "dataset": dataset_id,
        "kind": "entrypoint",
        "location": location,
        "name": "ep",
        "version": "1",
        "options": {"keyword": "circle"},
    }


def test_manager_cannot_register_an_arbitrary_callable(manager_api, evqa_campaign, settings):
    settings.MODEL_ENTRYPOINT_ALLOWED_MODULES = []
    r = manager_api.post(
        "/api/v1/models/",
        {**_entrypoint_body(evqa_campaign.dataset_id, "os:getcwd"), "options": {}},
        format="json",
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "entrypoint_forbidden"
    assert "MODEL_ENTRYPOINT_ALLOWED_MODULES" in r.json()["error"]["message"]
    assert not ModelVersion.objects.filter(name="ep").exists()


def test_allowlisted_entrypoint_module_is_accepted(manager_api, kw_dataset, settings):
    settings.MODEL_ENTRYPOINT_ALLOWED_MODULES = ["tests.models_bridge."]
    r = manager_api.post(
        "/api/v1/models/", _entrypoint_body(kw_dataset.pk, ENTRYPOINT), format="json"
    )
    assert r.status_code == 201, r.content
    # a prefix is a module boundary, not a string prefix of another package
    settings.MODEL_ENTRYPOINT_ALLOWED_MODULES = ["tests.models_bridge.example"]
    body = _entrypoint_body(kw_dataset.pk, ENTRYPOINT) | {"version": "2"}
    assert manager_api.post("/api/v1/models/", body, format="json").status_code == 403


def test_remote_hosts_outside_the_allowlist_are_refused(manager_api, evqa_campaign, settings):
    settings.REMOTE_MODEL_ALLOWED_HOSTS = ["models.internal"]
    r = manager_api.post(
        "/api/v1/models/",
        {
            "dataset": evqa_campaign.dataset_id,
            "kind": "remote",
            "location": "http://169.254.169.254/latest",
            "remote_model_name": "x",
            "name": "r",
            "version": "1",
        },
        format="json",
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "remote_host_forbidden"


def test_staff_are_not_limited_by_the_allowlists(kw_dataset, staff, settings):
    settings.MODEL_ENTRYPOINT_ALLOWED_MODULES = []
    r = client_for(staff).post(
        "/api/v1/models/", _entrypoint_body(kw_dataset.pk, ENTRYPOINT), format="json"
    )
    assert r.status_code == 201, r.content
