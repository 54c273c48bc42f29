"""Who gets which /media/<sha> (issue 7, A5): the persona x image matrix through the real
endpoint, token clients, and the query count of one request."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from annotation.models import Campaign, CounterfactualEdit, Media
from annotation.services.campaigns import campaign_add_examples, campaign_create, membership_add
from annotation.services.media import media_read
from tests.annotation.annotator_helpers import annotate_body, png_data_url
from tests.conftest import client_for
from tests.factories import DatasetFactory, ExampleFactory, UserFactory

pytestmark = pytest.mark.django_db

PERSONAS = [
    "staff",
    "owner",
    "manager",
    "annotator",
    "annotator2",
    "validator",
    "other_manager",
    "outsider",
    "anonymous",
]
# image -> personas answered 200; every other signed-in persona gets 404, anonymous 403.
SEES = {
    "orig_x": {"staff", "owner", "manager", "annotator"},  # not the validator: blind
    "edited_x": {"staff", "manager", "annotator", "validator"},
    "mask_x": {"staff", "manager", "annotator"},
    "orig_z": {"staff", "owner", "manager", "annotator2", "validator"},  # untouched by a text edit
    "orig_y": {"staff", "owner", "manager"},  # in the pool, leased by nobody
    "foreign": {"staff", "other_manager"},
}


def _lease(user: Any, campaign: Campaign, kind: str) -> dict[str, Any]:
    r = client_for(user).post(
        f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": kind}, format="json"
    )
    assert r.status_code == 200, r.content
    return r.json()


def _submit(user: Any, task: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    r = client_for(user).post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/", body, format="json"
    )
    assert r.status_code == 201, r.content
    return r.json()


def _four_pixels_changed(task: dict[str, Any]) -> Any:
    original = Media.objects.get(sha256=task["example"]["values"]["image"]["sha256"])
    img = Image.open(io.BytesIO(media_read(original))).convert("RGB")
    for x in range(4):
        img.putpixel((x, 0), (255, 255, 255))
    return img


@pytest.fixture
def world() -> dict[str, Any]:
    people = {
        name: UserFactory(username=f"{name}-m", is_staff=name == "staff")
        for name in PERSONAS
        if name != "anonymous"
    }
    dataset = DatasetFactory(created_by=people["owner"])
    for _ in range(3):
        ExampleFactory(dataset=dataset)
    campaign = campaign_create(
        dataset=dataset,
        name="media campaign",
        created_by=people["manager"],
        status="active",
        redundancy=1,
    )
    campaign_add_examples(campaign=campaign)
    for name, role in [
        ("annotator", "annotator"),
        ("annotator2", "annotator"),
        ("validator", "validator"),
    ]:
        membership_add(campaign=campaign, user=people[name], role=role)
    other_ds = DatasetFactory()
    foreign = ExampleFactory(dataset=other_ds)
    campaign_create(dataset=other_ds, name="other campaign", created_by=people["other_manager"])

    task_x = _lease(people["annotator"], campaign, "annotate")
    body = annotate_body(task_x)
    body["counterfactual"] = {
        "modality": "image",
        "target_label": "yes",
        "image": png_data_url(_four_pixels_changed(task_x)),
        "mask": png_data_url(Image.new("L", (8, 8), 255)),
    }
    _submit(people["annotator"], task_x, body)
    task_z = _lease(people["annotator2"], campaign, "annotate")
    _submit(people["annotator2"], task_z, annotate_body(task_z))
    for _ in range(2):  # the validator validates both edits
        task = _lease(people["validator"], campaign, "validate")
        _submit(
            people["validator"],
            task,
            {"idempotency_key": str(uuid.uuid4()), "label": "yes", "broken": False, "comment": ""},
        )
    edit_x = CounterfactualEdit.objects.get(modality="image")
    seen = {task_x["example"]["id"], task_z["example"]["id"]}
    y = dataset.examples.exclude(pk__in=seen).first()
    assert y is not None
    shas = {
        "orig_x": task_x["example"]["values"]["image"]["sha256"],
        "edited_x": edit_x.edited_media.sha256,
        "mask_x": edit_x.mask_media.sha256,
        "orig_z": task_z["example"]["values"]["image"]["sha256"],
        "orig_y": y.values["image"],
        "foreign": foreign.values["image"],
    }
    assert len(set(shas.values())) == len(shas), shas
    return {"people": people, "shas": shas}


CASES = [(image, persona) for image in SEES for persona in PERSONAS]


@pytest.mark.parametrize(("image", "persona"), CASES, ids=[f"{i}-{p}" for i, p in CASES])
def test_media_matrix(world: dict[str, Any], image: str, persona: str) -> None:
    user = world["people"].get(persona)
    response = client_for(user).get(f"/media/{world['shas'][image]}")
    expected = 403 if persona == "anonymous" else 200 if persona in SEES[image] else 404
    assert response.status_code == expected, (image, persona, response.status_code)
    if expected == 200:
        assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    else:
        assert response.json()["error"]["code"] in {"not_found", "not_authenticated"}


def test_token_clients_load_images_and_are_never_sent_to_the_login_page(
    world: dict[str, Any],
) -> None:
    sha = world["shas"]["orig_x"]
    token = (
        APIClient()
        .post(
            "/api/v1/auth/token/",
            {"username": "annotator-m", "password": "pw-for-tests"},
            format="json",
        )
        .json()["token"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    ok = client.get(f"/media/{sha}", HTTP_ACCEPT="image/png")
    assert ok.status_code == 200 and ok["Content-Type"] == "image/png"
    assert client.get(f"/media/{world['shas']['orig_y']}").status_code == 404
    bad = APIClient().get(f"/media/{sha}", HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "token_invalid"
    anonymous = Client().get(f"/media/{sha}")
    assert anonymous.status_code == 403 and "Location" not in anonymous
    assert anonymous.json()["error"]["code"] == "not_authenticated"


def test_one_query_decides(world: dict[str, Any], django_assert_num_queries: Any) -> None:
    # The address lookup and every rule are one statement (EXISTS subqueries), for a member
    # who may see the image, one who may not, and staff.
    for persona, image in [("validator", "edited_x"), ("validator", "orig_x"), ("staff", "orig_y")]:
        client = client_for(world["people"][persona])
        with django_assert_num_queries(1):
            response = client.get(f"/media/{world['shas'][image]}")
        assert response.status_code in (200, 404)


def test_an_import_indexes_its_images_for_the_dataset_creator(tmp_path: Any) -> None:
    from annotation.services.imports import manifest_import
    from tests.fixtures_import.builders import SCHEMA, line, png, write_images, write_jsonl

    write_images(tmp_path, **{"a.png": png((9, 9, 9)), "b.png": png((0, 0, 255))})
    path = write_jsonl(tmp_path, [line("a"), line("b", image="img/b.png")])
    creator, stranger = UserFactory(username="ivy-importer"), UserFactory(username="sol-stranger")
    manifest_import(
        manifest_path=path,
        fmt="jsonl",
        dataset_name="imported",
        modalities=SCHEMA["modalities"],
        label_space=SCHEMA["label_space"],
        created_by=creator,
    )
    for sha in Media.objects.values_list("sha256", flat=True):
        assert client_for(creator).get(f"/media/{sha}").status_code == 200
        assert client_for(stranger).get(f"/media/{sha}").status_code == 404
