"""Submit enforces docs/architecture.md "Counterfactual protocol" on the server, names the broken rule, writes nothing on refusal,
keeps the draft, and stores an idempotent submission once."""

from __future__ import annotations

import base64
import copy
import io
import json
import uuid
from typing import Any

import numpy as np
import pytest
from PIL import Image

from annotation.models import (
    Annotation,
    Assignment,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Dataset,
    Example,
    Media,
)
from annotation.schema import content_hash
from annotation.services.campaigns import campaign_add_examples, campaign_update
from annotation.services.media import media_read
from tests.annotation.annotator_helpers import (
    add_annotators,
    annotate_body,
    bomb_png,
    media_files,
    png_data_url,
    text_campaign,
    undecodable_png,
)
from tests.conftest import client_for
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def lease_task(client, campaign) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = client.post(f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": "annotate"}, format="json")
    assert r.status_code == 200, r.content
    return r.json()


def post_submit(client, task, body):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/", body, format="json"
    )


def original_image(task: dict[str, Any]) -> Image.Image:
    media = Media.objects.get(sha256=task["example"]["values"]["image"]["sha256"])
    return Image.open(io.BytesIO(media_read(media))).convert("RGB")


def with_pixels_changed(img: Image.Image, n: int) -> Image.Image:
    arr = np.asarray(img).copy()
    flat = arr.reshape(-1, 3)
    flat[:n] = 255 - flat[:n]
    return Image.fromarray(arr)


def test_text_edit_is_stored_with_its_figures(api, campaign, examples, annotator) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    body = annotate_body(task, label="no", target="yes")
    r = post_submit(client, task, body)
    assert r.status_code == 201, r.content
    out = r.json()
    assert out["annotation"]["label"] == "no"
    assert out["annotation"]["evidence"][0]["text"] == task["example"]["values"]["text"][0:2]
    example = Example.objects.get(pk=task["example"]["id"])
    edit = CounterfactualEdit.objects.get()
    assert edit.modality == "text"
    assert edit.edited_values["text"] == body["counterfactual"]["value"]
    assert edit.edited_values["image"] == example.values["image"]  # byte-identical by hash
    assert edit.content_hash == content_hash(edit.edited_values)
    assert (edit.original_label, edit.target_label, edit.author_id) == ("no", "yes", annotator.pk)
    # "is there a shape number N?" → "is there a circle number N?": one of seven tokens.
    assert edit.minimality["token_distance"] == 1 and edit.minimality["tokens"] == 7
    assert edit.minimality["minimality"] == pytest.approx(1 / 7)
    assert edit.scores == {}  # never scored on the submit path; bulk scoring fills it
    assert out["edit"]["id"] == edit.pk and out["edit"]["status"] == "pending"
    ce = CampaignExample.objects.get(campaign=campaign, example=example)
    assert (ce.completed, ce.in_flight) == (1, 0)


def test_image_edit_is_checked_and_stored_as_media(api, campaign, examples, annotator) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    edited = with_pixels_changed(original_image(task), 4)  # 4 of 8x8 pixels
    mask = Image.new("L", edited.size, 0)
    body = annotate_body(task)
    body["counterfactual"] = {
        "modality": "image",
        "target_label": "yes",
        "image": png_data_url(edited),
        "mask": png_data_url(mask),
    }
    r = post_submit(client, task, body)
    assert r.status_code == 201, r.content
    edit = CounterfactualEdit.objects.get()
    assert edit.edited_media is not None and edit.mask_media is not None
    assert (
        edit.edited_values["image"]
        == edit.edited_media.sha256
        != task["example"]["values"]["image"]["sha256"]
    )
    assert edit.edited_values["text"] == task["example"]["values"]["text"]
    assert edit.minimality["changed_pixels"] == 4
    assert edit.minimality["pixel_fraction"] == pytest.approx(4 / 64)
    assert (edit.edited_media.width, edit.edited_media.height) == (8, 8)


def test_same_key_is_stored_once_and_answers_the_same_body(
    api, campaign, examples, annotator
) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    body = annotate_body(task)
    first = post_submit(client, task, body)
    second = post_submit(client, task, body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert Annotation.objects.count() == 1 and CounterfactualEdit.objects.count() == 1
    assert (
        CampaignExample.objects.get(campaign=campaign, example_id=task["example"]["id"]).completed
        == 1
    )
    other = post_submit(client, task, annotate_body(task))
    assert other.status_code == 409 and other.json()["error"]["code"] == "already_submitted"
    # The same key on another task is a client bug, not a retry.
    task2 = lease_task(client, campaign)
    reused = post_submit(client, task2, annotate_body(task2, key=body["idempotency_key"]))
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert Assignment.objects.get(pk=task2["assignment"]["id"]).status == "active"


def _image_cf(task: dict[str, Any], img: Image.Image, target: str = "yes") -> dict[str, Any]:
    return {"modality": "image", "target_label": target, "image": png_data_url(img)}


RULES: list[tuple[str, Any, str]] = [
    ("label", lambda b, t: b.update(label="purple"), "label_not_in_label_space"),
    ("confidence", lambda b, t: b.update(confidence=9), "confidence_out_of_range"),
    ("confidence-text", lambda b, t: b.update(confidence="very"), "confidence_out_of_range"),
    ("reliance", lambda b, t: b.update(reliance="vibes"), "reliance_unknown"),
    (
        "reliance-modality",
        lambda b, t: b.update(reliance="transfer", reliance_modality=""),
        "reliance_modality_required",
    ),
    (
        "span",
        lambda b, t: b.update(
            evidence=[{"modality": "text", "type": "span", "start": 3, "end": 999}]
        ),
        "evidence_invalid",
    ),
    (
        "box",
        lambda b, t: b.update(
            evidence=[{"modality": "image", "type": "box", "x": 4, "y": 4, "w": 5, "h": 2}]
        ),
        "evidence_invalid",
    ),
    (
        "evidence-modality",
        lambda b, t: b.update(evidence=[{"modality": "audio", "type": "span"}]),
        "evidence_invalid",
    ),
    ("time", lambda b, t: b.update(time_spent_ms=-5), "time_spent_invalid"),
    ("cf-missing", lambda b, t: b.update(counterfactual=None), "counterfactual_required"),
    (
        "cf-modality",
        lambda b, t: b["counterfactual"].update(modality="audio"),
        "counterfactual_modality_not_editable",
    ),
    (
        "cf-same",
        lambda b, t: b["counterfactual"].update(value=t["example"]["values"]["text"]),
        "edit_no_change",
    ),
    (
        "cf-budget",
        lambda b, t: b["counterfactual"].update(value="completely different words here now ok"),
        "counterfactual_over_budget",
    ),
    (
        "target",
        lambda b, t: b["counterfactual"].update(target_label="purple"),
        "target_label_not_in_label_space",
    ),
    (
        "target-same",
        lambda b, t: b["counterfactual"].update(target_label=b["label"]),
        "target_label_same_as_label",
    ),
    (
        "other-modality",
        lambda b, t: b["counterfactual"].update(values={"image": "0" * 64, "text": "ignored"}),
        "counterfactual_other_modality_changed",
    ),
    (
        "image-size",
        lambda b, t: b.update(counterfactual=_image_cf(t, Image.new("RGB", (9, 8)))),
        "image_wrong_size",
    ),
    (
        "image-garbage",
        lambda b, t: b.update(
            counterfactual={
                "modality": "image",
                "target_label": "yes",
                "image": "data:image/png;base64,AAAA",
            }
        ),
        "image_not_an_image",
    ),
    (
        "image-same",
        lambda b, t: b.update(counterfactual=_image_cf(t, original_image(t))),
        "edit_no_change",
    ),
    (
        "image-budget",
        lambda b, t: b.update(
            counterfactual=_image_cf(t, with_pixels_changed(original_image(t), 20))
        ),
        "counterfactual_over_budget",
    ),
]


@pytest.mark.parametrize(("name", "mutate", "code"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_is_named_and_nothing_is_written(
    api, campaign, examples, annotator, name, mutate, code
) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    draft = {"label": "no", "note": "work in progress"}
    client.put(
        f"/api/v1/assignments/{task['assignment']['id']}/draft/", {"draft": draft}, format="json"
    )
    body = copy.deepcopy(annotate_body(task))
    mutate(body, task)
    media_before = Media.objects.count()
    r = post_submit(client, task, body)
    assert r.status_code == 400, (name, r.content)
    err = r.json()["error"]
    assert err["code"] == code, (name, err)
    assert err["message"]
    assert Annotation.objects.count() == 0 and CounterfactualEdit.objects.count() == 0
    assert Media.objects.count() == media_before
    stored = Assignment.objects.get(pk=task["assignment"]["id"])
    assert stored.status == "active" and stored.draft == draft
    assert (
        CampaignExample.objects.get(campaign=campaign, example_id=task["example"]["id"]).completed
        == 0
    )


def test_over_budget_message_names_the_figure_and_the_budget(
    api, campaign, examples, annotator
) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    body = annotate_body(task)
    body["counterfactual"]["value"] = "a b c d e f g"
    err = post_submit(client, task, body).json()["error"]
    assert err["code"] == "counterfactual_over_budget"
    assert "0.50" in err["message"] and "minimality" in err["message"]
    assert err["details"]["budget"] == 0.5 and err["details"]["value"] > 0.5


def test_the_assigned_quota_cell_binds(api) -> None:  # type: ignore[no-untyped-def]
    campaign = text_campaign(
        2, redundancy=1, labels=["yes", "no", "maybe"], balance_counterfactuals=True
    )
    (ann,) = add_annotators(campaign, 1)
    client = client_for(ann)
    task = lease_task(client, campaign)
    assigned = task["counterfactual"]["target_label"]
    assert task["counterfactual"]["modality"] == "text" and assigned
    label = next(lab for lab in ("yes", "no", "maybe") if lab != assigned)
    other = next(lab for lab in ("yes", "no", "maybe") if lab not in (assigned, label))
    r = post_submit(client, task, annotate_body(task, label=label, target=other))
    assert (
        r.status_code == 400 and r.json()["error"]["code"] == "counterfactual_target_not_assigned"
    )
    body = annotate_body(task, label=label, target=assigned)
    body["counterfactual"]["modality"] = "image"
    r = post_submit(client, task, body)
    assert (
        r.status_code == 400 and r.json()["error"]["code"] == "counterfactual_modality_not_assigned"
    )
    # The annotator's own label is the assigned target: no edit can reach it, any other is fine.
    r = post_submit(client, task, annotate_body(task, label=assigned, target=label))
    assert r.status_code == 201, r.content


def test_an_empty_target_takes_the_assigned_one(api) -> None:  # type: ignore[no-untyped-def]
    campaign = text_campaign(
        1, redundancy=1, labels=["yes", "no", "maybe"], balance_counterfactuals=True
    )
    (ann,) = add_annotators(campaign, 1)
    client = client_for(ann)
    task = lease_task(client, campaign)
    assigned = task["counterfactual"]["target_label"]
    label = next(lab for lab in ("yes", "no", "maybe") if lab != assigned)
    body = annotate_body(task, label=label, target="")
    body["counterfactual"]["modality"] = ""
    r = post_submit(client, task, body)
    assert r.status_code == 201, r.content
    assert r.json()["edit"]["target_label"] == assigned


def tabular_campaign() -> Campaign:
    dataset = Dataset.objects.create(
        name="vitals",
        modalities=[{"name": "note", "kind": "text"}, {"name": "vitals", "kind": "tabular"}],
        label_space=["sick", "well"],
    )
    rows = [
        {"hr": 60, "temp": 36.5, "smoker": "no"},
        {"hr": 70, "temp": 36.9, "smoker": "yes"},
        {"hr": 80, "temp": 37.0, "smoker": "no"},
        {"hr": 90, "temp": 38.5, "smoker": "no"},
        {"hr": 200, "temp": 41.0, "smoker": "yes"},
    ]
    for i, vitals in enumerate(rows):
        values = {"note": f"patient {i}", "vitals": vitals}
        Example.objects.create(
            dataset=dataset,
            external_id=f"p{i}",
            values=values,
            label="well",
            content_hash=content_hash(values),
        )
    campaign = CampaignFactory(
        dataset=dataset, editable_modalities=["vitals"], edit_budgets={"vitals": 0.5}, redundancy=1
    )
    campaign_add_examples(campaign=campaign)
    return campaign


def test_tabular_edit_fraction_and_mad_scaled_l1() -> None:
    campaign = tabular_campaign()
    (ann,) = add_annotators(campaign, 1)
    client = client_for(ann)
    task = lease_task(client, campaign)
    vitals = dict(task["example"]["values"]["vitals"])
    vitals["hr"] = vitals["hr"] + 20
    body = {
        "idempotency_key": str(uuid.uuid4()),
        "label": "well",
        "counterfactual": {"modality": "vitals", "target_label": "sick", "value": vitals},
    }
    r = post_submit(client, task, body)
    assert r.status_code == 201, r.content
    fig = CounterfactualEdit.objects.get().minimality
    assert fig["fraction_changed"] == pytest.approx(1 / 3)
    # hr over the dataset: 60 70 80 90 200 → median 80, |dev| 20 10 0 10 120 → MAD 10.
    assert fig["scaled_l1"] == pytest.approx(20 / 10)
    task = lease_task(client, campaign)
    vitals = dict(task["example"]["values"]["vitals"])
    too_much = {**vitals, "hr": 1, "temp": 30.0}
    body = {
        "idempotency_key": str(uuid.uuid4()),
        "label": "well",
        "counterfactual": {"modality": "vitals", "target_label": "sick", "value": too_much},
    }
    assert post_submit(client, task, body).json()["error"]["code"] == "counterfactual_over_budget"
    missing = {"hr": 1}
    body["counterfactual"]["value"] = missing
    assert post_submit(client, task, body).json()["error"]["code"] == "tabular_features"


def test_label_only_campaign_needs_no_edit(api, campaign, examples, annotator) -> None:  # type: ignore[no-untyped-def]
    campaign_update(campaign=campaign, task_counterfactual=False)
    client = api(annotator)
    task = lease_task(client, campaign)
    r = post_submit(client, task, annotate_body(task, counterfactual=None))
    assert r.status_code == 201 and r.json()["edit"] is None


def test_paused_campaign_still_takes_submissions_closed_does_not(
    api, campaign, examples, annotator, annotator2
) -> None:  # type: ignore[no-untyped-def]
    # Closed is final (services.lifecycle): pause first, then close.
    client, client2 = api(annotator), api(annotator2)
    task, task2 = lease_task(client, campaign), lease_task(client2, campaign)
    campaign_update(campaign=campaign, status=Campaign.Status.PAUSED)
    assert post_submit(client, task, annotate_body(task)).status_code == 201
    campaign_update(campaign=campaign, status=Campaign.Status.CLOSED)
    r = post_submit(client2, task2, annotate_body(task2))
    assert r.status_code == 409 and r.json()["error"]["code"] == "campaign_not_active"


def test_annotators_never_see_each_others_work(
    api, campaign, examples, annotator, annotator2
) -> None:  # type: ignore[no-untyped-def]
    campaign_update(campaign=campaign, redundancy=2)
    CampaignExample.objects.filter(campaign=campaign).exclude(
        pk=CampaignExample.objects.filter(campaign=campaign).first().pk
    ).delete()  # type: ignore[union-attr]
    c1, c2 = api(annotator), api(annotator2)
    t1 = lease_task(c1, campaign)
    body = annotate_body(t1, rationale="SECRET-RATIONALE-42")
    assert post_submit(c1, t1, body).status_code == 201
    t2 = lease_task(c2, campaign)
    assert t2["example"]["id"] == t1["example"]["id"]
    blob = json.dumps(t2) + json.dumps(
        api(annotator2).get(f"/api/v1/campaigns/{campaign.id}/me/").json()
    )
    assert "SECRET-RATIONALE-42" not in blob
    assert body["counterfactual"]["value"] not in blob
    assert "annotation" not in t2 and "edit" not in t2


def test_the_same_key_with_another_body_is_a_409_and_the_first_stays(
    api, campaign, examples, annotator
) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    body = annotate_body(task)
    assert post_submit(client, task, body).status_code == 201
    changes = [
        {"label": "yes", "counterfactual": {**body["counterfactual"], "target_label": "no"}},
        {"rationale": "another reason"},
        {"confidence": 2},
        {
            "counterfactual": {
                **body["counterfactual"],
                "value": body["counterfactual"]["value"] + " x",
            }
        },
    ]
    for change in changes:
        r = post_submit(client, task, {**body, **change})
        assert r.status_code == 409, (change, r.content)
        err = r.json()["error"]
        assert err["code"] == "idempotency_key_reused"
        assert err["details"] == {"stored_id": Annotation.objects.get().pk}
    # Retrying the very same body (the page re-measures time_spent_ms) is still a replay.
    r = post_submit(client, task, {**body, "time_spent_ms": body["time_spent_ms"] + 500})
    assert r.status_code == 200, r.content
    stored = Annotation.objects.get()
    assert (stored.rationale, stored.confidence) == (body["rationale"], body["confidence"])
    assert CounterfactualEdit.objects.get().edited_values["text"] == body["counterfactual"]["value"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text + " ",  # a trailing space
        lambda text: "  " + text.replace(" ", "   "),  # spacing only
        lambda text: text.replace("is", "Is", 1),  # case only: "is" → "Is"
        lambda text: text.upper(),
    ],
    ids=["trailing-space", "spacing", "case-is-Is", "upper"],
)
def test_no_op_text_edits_are_refused_as_edit_no_change(
    api, campaign, examples, annotator, edit
) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    body = annotate_body(task)
    body["counterfactual"]["value"] = edit(task["example"]["values"]["text"])
    r = post_submit(client, task, body)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "edit_no_change"
    assert not Annotation.objects.exists() and not CounterfactualEdit.objects.exists()


def test_a_changed_word_after_a_case_change_still_counts_once(
    api, campaign, examples, annotator
) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    body = annotate_body(task)
    text = task["example"]["values"]["text"]
    body["counterfactual"]["value"] = text.replace("is", "Is", 1).replace("shape", "circle", 1)
    r = post_submit(client, task, body)
    assert r.status_code == 201, r.content
    assert CounterfactualEdit.objects.get().minimality["token_distance"] == 1


def test_no_op_and_boolean_tabular_edits_are_refused() -> None:
    campaign = tabular_campaign()
    (ann,) = add_annotators(campaign, 1)
    client = client_for(ann)
    task = lease_task(client, campaign)
    vitals = dict(task["example"]["values"]["vitals"])
    cases = [
        ({**vitals, "hr": float(vitals["hr"])}, "edit_no_change"),  # 70 → 70.0 is the same value
        ({**vitals, "hr": str(vitals["hr"])}, "edit_no_change"),
        ({**vitals, "smoker": True}, "tabular_not_a_number"),  # live scoring refused it too
        ({**vitals, "hr": None}, "tabular_not_a_number"),
    ]
    for value, code in cases:
        body = {
            "idempotency_key": str(uuid.uuid4()),
            "label": "well",
            "counterfactual": {"modality": "vitals", "target_label": "sick", "value": value},
        }
        r = post_submit(client, task, body)
        assert (r.status_code, r.json()["error"]["code"]) == (400, code), (value, r.content)
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("make", [bomb_png, undecodable_png], ids=["bomb-115KB", "undecodable"])
def test_an_image_edit_of_another_size_is_refused_from_its_header(
    api, campaign, examples, annotator, _media_root, make
) -> None:  # type: ignore[no-untyped-def]
    """The 6300 x 6300 file is under the pixel cap; it is refused as the wrong size before any
    decode (the undecodable one would otherwise be image_truncated), and nothing is written."""
    client = api(annotator)
    task = lease_task(client, campaign)
    media_before, files_before = Media.objects.count(), media_files(_media_root)
    body = annotate_body(task)
    body["counterfactual"] = {
        "modality": "image",
        "target_label": "yes",
        "image": "data:image/png;base64," + base64.b64encode(make()).decode(),
    }
    r = post_submit(client, task, body)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "image_wrong_size"
    assert Media.objects.count() == media_before and media_files(_media_root) == files_before
    assert not Annotation.objects.exists()


def test_a_mask_of_another_size_is_refused_from_its_header(
    api, campaign, examples, annotator
) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    body = annotate_body(task)
    body["counterfactual"] = {
        "modality": "image",
        "target_label": "yes",
        "image": png_data_url(with_pixels_changed(original_image(task), 4)),
        "mask": "data:image/png;base64," + base64.b64encode(undecodable_png()).decode(),
    }
    r = post_submit(client, task, body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "image_wrong_size")
    assert not CounterfactualEdit.objects.exists()


def test_one_data_url_decoder_names_one_rule(api, campaign, examples, annotator) -> None:  # type: ignore[no-untyped-def]
    client = api(annotator)
    task = lease_task(client, campaign)
    for bad in ("data:image/png;base64,!!!", "data:image/png,plain", "", 42):
        body = annotate_body(task)
        body["counterfactual"] = {"modality": "image", "target_label": "yes", "image": bad}
        r = post_submit(client, task, body)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "data_uri_invalid"), bad
