"""Perturbation studies (docs/perturbation.md; annotation/services/perturbations.py): a manager
defines one through the API, a job of kind perturb builds one item per (example, level) — images
stored as Media — and runs again without adding anything; bad definitions are named 400s that
write nothing; a role x endpoint matrix; the list's query count is pinned."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from annotation.minimality import decode_rgb
from annotation.models import Job, Media, PerturbationStudy, PerturbedItem
from annotation.schema import content_hash
from annotation.services.campaigns import campaign_add_examples
from annotation.services.media import media_read
from annotation.services.perturbations import perturbation_study_create, study_chance
from annotation.tasks import perturbation_build_run
from tests.conftest import client_for
from tests.factories import CampaignFactory, DatasetFactory, ExampleFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def _url(campaign):  # type: ignore[no-untyped-def]
    return f"/api/v1/campaigns/{campaign.pk}/perturbation-studies/"


def test_manager_defines_an_image_noise_study_and_the_job_builds_it(
    campaign, examples, manager, django_capture_on_commit_callbacks
):
    client = client_for(manager)
    with django_capture_on_commit_callbacks() as sent:
        r = client.post(
            _url(campaign),
            {"name": "noise", "modality": "image", "perturbation": "gaussian_noise", "seed": 3},
            format="json",
        )
    assert r.status_code == 201, r.content
    assert len(sent) == 1  # the build is sent once the rows are committed
    body = r.json()
    assert body["status"] == "building" and body["levels"] == [0.0, 0.05, 0.1, 0.2, 0.4, 0.8]
    assert r["Location"] == f"{_url(campaign)}{body['id']}/"
    perturbation_build_run(body["job"]["id"])  # what the io worker does with the message
    got = client.get(r["Location"]).json()
    assert got["status"] == "ready"
    assert got["items_by_level"] == [5] * 6
    assert got["job"]["status"] == "succeeded"

    study = PerturbationStudy.objects.get(pk=body["id"])
    for example in examples:
        items = list(PerturbedItem.objects.filter(study=study, example=example))
        assert [i.level_index for i in items] == list(range(6))
        # The identity rung is the example itself: same values, same hash (scores reused).
        assert items[0].values == example.values
        assert items[0].content_hash == example.content_hash
        original = decode_rgb(media_read(Media.objects.get(sha256=example.values["image"])))
        changes = []
        for item in items:
            assert item.values["text"] == example.values["text"]
            assert item.content_hash == content_hash(item.values)
            assert item.media is not None and item.media.sha256 == item.values["image"]
            pixels = decode_rgb(media_read(item.media))
            assert pixels.shape == original.shape
            changes.append(float(np.abs(pixels.astype(int) - original.astype(int)).mean()))
        assert changes[0] == 0 and changes == sorted(changes) and changes[-1] > changes[1]

    # Again (a duplicate delivery or a re-run): nothing new.
    job = Job.objects.get(pk=body["job"]["id"])
    Job.objects.filter(pk=job.pk).update(status=Job.Status.PENDING)
    perturbation_build_run(job.pk)
    job.refresh_from_db()
    assert job.result["items_created"] == 0 and job.result["items_total"] == 30


def test_text_study_perturbs_only_its_modality(campaign, examples, manager):
    study = perturbation_study_create(
        campaign=campaign,
        created_by=manager,
        name="dropout",
        modality="text",
        perturbation="word_dropout",
        levels=[0, 0.5, 1.0],
    )
    perturbation_build_run(study.job_id)
    items = PerturbedItem.objects.filter(study=study, example=examples[0]).order_by("level_index")
    texts = [i.values["text"] for i in items]
    assert texts[0] == examples[0].values["text"] and texts[2] == ""
    assert len(texts[1].split()) < len(texts[0].split())
    assert all(i.values["image"] == examples[0].values["image"] for i in items)
    assert all(i.media is None for i in items)
    assert study_chance(study) == 0.25  # four labels


def test_tabular_study_moves_features_by_their_mad(db):
    dataset = DatasetFactory(
        modalities=[{"name": "row", "kind": "tabular"}], label_space=["a", "b"]
    )
    campaign = CampaignFactory(dataset=dataset, editable_modalities=["row"], edit_budgets={})
    for i in range(6):
        ExampleFactory(dataset=dataset, values={"row": {"x": i * 2, "kind": "k"}})
    campaign_add_examples(campaign=campaign)
    study = perturbation_study_create(
        campaign=campaign,
        created_by=None,
        name="t",
        modality="row",
        perturbation="feature_noise",
        chance=0.5,
    )
    perturbation_build_run(study.job_id)
    assert PerturbedItem.objects.filter(study=study).count() == 36
    top = PerturbedItem.objects.filter(study=study, level_index=5)
    assert all(i.values["row"]["kind"] == "k" for i in top)
    assert any(i.values["row"]["x"] != i.example.values["row"]["x"] for i in top)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "s", "modality": "image", "perturbation": "melt"}, "perturbation_unknown"),
        ({"name": "s", "modality": "sound", "perturbation": "blur"}, "perturbation_modality"),
        ({"name": "s", "modality": "text", "perturbation": "blur"}, "perturbation_modality"),
        (
            {"name": "s", "modality": "image", "perturbation": "blur", "levels": [1, 2]},
            "perturbation_ladder_invalid",
        ),
        (
            {"name": "s", "modality": "image", "perturbation": "blur", "chance": 1.5},
            "perturbation_chance",
        ),
        ({"name": " ", "modality": "image", "perturbation": "blur"}, "perturbation_name"),
    ],
)
def test_bad_definitions_are_named_400s_and_write_nothing(campaign, manager, body, code):
    r = client_for(manager).post(_url(campaign), body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == code
    assert not PerturbationStudy.objects.exists() and not Job.objects.exists()


def test_a_second_study_of_the_same_name_is_a_409(campaign, manager):
    body = {"name": "noise", "modality": "image", "perturbation": "blur"}
    client = client_for(manager)
    assert client.post(_url(campaign), body, format="json").status_code == 201
    r = client.post(_url(campaign), body, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "perturbation_study_exists"
    assert PerturbationStudy.objects.count() == 1 and Job.objects.count() == 1


def test_list_query_count_is_pinned(campaign, examples, manager, exact_queries):
    for name in ("a", "b", "c"):
        study = perturbation_study_create(
            campaign=campaign,
            created_by=manager,
            name=name,
            modality="text",
            perturbation="char_noise",
        )
        perturbation_build_run(study.job_id)
    client = client_for(manager)
    # the manager's membership, the studies with their jobs, the item counts per level
    with exact_queries(3):
        r = client.get(_url(campaign))
    assert [s["name"] for s in r.json()["results"]] == ["a", "b", "c"]
    assert all(s["items_by_level"] == [5] * 6 for s in r.json()["results"])


EXPECTED = {
    "manager": (200, 201, 200),
    "staff": (200, 201, 200),
    "annotator": (403, 403, 403),
    "validator": (403, 403, 403),
    "outsider": (404, 404, 404),
    "anonymous": (403, 403, 403),
}


@pytest.mark.parametrize("persona", list(EXPECTED))
def test_permission_matrix(
    campaign, examples, manager, annotator, validator, outsider, staff, persona
):
    study = perturbation_study_create(
        campaign=campaign, created_by=manager, name="x", modality="image", perturbation="occlusion"
    )
    people = {
        "manager": manager,
        "staff": staff,
        "annotator": annotator,
        "validator": validator,
        "outsider": outsider,
        "anonymous": None,
    }
    client = client_for(people[persona])
    got = (
        client.get(_url(campaign)).status_code,
        client.post(
            _url(campaign),
            {"name": f"y-{persona}", "modality": "text", "perturbation": "word_shuffle"},
            format="json",
        ).status_code,
        client.get(f"{_url(campaign)}{study.pk}/").status_code,
    )
    assert got == EXPECTED[persona]


def test_another_campaigns_study_is_not_reachable_through_this_one(campaign, manager):
    other = CampaignFactory()
    MembershipFactory(campaign=other, user=manager, role="manager")
    study = perturbation_study_create(
        campaign=campaign, created_by=manager, name="x", modality="image", perturbation="blur"
    )
    r = client_for(manager).get(f"{_url(other)}{study.pk}/")
    assert r.status_code == 404


def test_perturbed_images_are_served_to_the_campaigns_managers_only(
    campaign, examples, manager, outsider
):
    study = perturbation_study_create(
        campaign=campaign, created_by=manager, name="x", modality="image", perturbation="pixelation"
    )
    perturbation_build_run(study.job_id)
    item = PerturbedItem.objects.filter(study=study, level_index=3).first()
    assert item is not None and item.media is not None
    got = client_for(manager).get(f"/media/{item.media.sha256}")
    assert got.status_code == 200
    with Image.open(io.BytesIO(b"".join(got.streaming_content))) as img:
        assert img.format == "PNG"
    assert client_for(outsider).get(f"/media/{item.media.sha256}").status_code == 404


def test_catalogue_lists_every_perturbation(manager):
    r = client_for(manager).get("/api/v1/perturbations/")
    names = {p["name"]: p for p in r.json()["results"]}
    assert set(names) == {
        "gaussian_noise",
        "blur",
        "occlusion",
        "pixelation",
        "word_dropout",
        "word_shuffle",
        "char_noise",
        "feature_noise",
    }
    assert names["pixelation"]["default_ladder"][0] == 1.0
