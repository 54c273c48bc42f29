"""The `pid`, `counterfactual` and `clusters` analysis methods on campaigns built through the
services: edits submitted and validated through the API, scores recorded through
edit_scores_record, reliance answers from real submissions, encodings from a real reference
model."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from annotation.models import Campaign, CounterfactualEdit, Example
from annotation.selectors_analysis import (
    analysis_examples,
    counterfactual_edit_rows,
    reliance_counts,
)
from annotation.services.counterfactuals import edit_scores_record
from counterpoint.errors import ValidationFailed
from models_bridge.analysis.registry import METHODS
from models_bridge.models import ModelVersion
from models_bridge.services.registry import model_register
from tests.annotation.annotator_helpers import add_annotators, annotate_body, text_campaign
from tests.conftest import client_for
from tests.models_bridge.conftest import easyvqa_dataset, package_dir

pytestmark = pytest.mark.django_db

OTHER = {"yes": "no", "no": "yes"}


def keyword_model(campaign: Campaign) -> ModelVersion:
    return model_register(
        dataset=campaign.dataset,
        kind="entrypoint",
        location="tests.models_bridge.example_entrypoint:make_adapter",
        name=f"keyword-{uuid.uuid4().hex[:6]}",
        version="1",
    )


def submit_edit(campaign: Campaign, author: Any, *, author_right: bool) -> CounterfactualEdit:
    """Lease, then label the original (its gold label, or the other one) and edit towards
    the other label, through the annotator API."""
    client = client_for(author)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    gold = Example.objects.get(pk=task["example"]["id"]).label
    label = gold if author_right else OTHER[gold]
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, label=label, target=OTHER[label]),
        format="json",
    )
    assert r.status_code == 201, r.content
    return CounterfactualEdit.objects.get(pk=r.json()["edit"]["id"])


def validate_next(
    campaign: Campaign, validator: Any, *, agree: bool, edit: CounterfactualEdit
) -> None:
    client = client_for(validator)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json"
    ).json()
    label = edit.target_label if agree else OTHER[edit.target_label]
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        {"idempotency_key": str(uuid.uuid4()), "label": label, "broken": False, "comment": ""},
        format="json",
    )
    assert r.status_code == 201, r.content


def summary(label: str) -> dict[str, Any]:
    return {"probabilities": {label: 0.9, OTHER[label]: 0.1}, "predicted_label": label}


def noop(done: int, total: int) -> None:
    pass


@pytest.fixture
def cf_campaign() -> dict[str, Any]:
    """Five edits with known verdicts and model predictions (the same rows, by hand, as
    test_analysis_pid.ROWS, here through the services)."""
    campaign = text_campaign(6, redundancy=1, validations_required=1, validations_to_verify=1)
    a, b = add_annotators(campaign, 2, prefix="author")
    (val,) = add_annotators(campaign, 1, prefix="val", role="validator")
    mv = keyword_model(campaign)
    e1 = submit_edit(campaign, a, author_right=True)
    validate_next(campaign, val, agree=True, edit=e1)
    e2 = submit_edit(campaign, a, author_right=True)
    validate_next(campaign, val, agree=False, edit=e2)
    e3 = submit_edit(campaign, b, author_right=False)
    validate_next(campaign, val, agree=True, edit=e3)
    e4 = submit_edit(campaign, b, author_right=True)
    e5 = submit_edit(campaign, b, author_right=True)
    gold = {e.pk: e.example.label for e in (e1, e2, e3, e4, e5)}
    key = str(mv.pk)
    edit_scores_record(
        scores={
            # right on both sides: flips, follows, contrast-consistent
            e1.pk: {key: {"original": summary(gold[e1.pk]), "edit": summary(e1.target_label)}},
            # does not flip (disputed anyway)
            e2.pk: {key: {"original": summary(gold[e2.pk]), "edit": summary(gold[e2.pk])}},
            # wrong on both sides: the target is the gold label, the model says the other
            e3.pk: {
                key: {"original": summary(OTHER[gold[e3.pk]]), "edit": summary(OTHER[gold[e3.pk]])}
            },
            e4.pk: {key: {"original": summary(gold[e4.pk]), "edit": summary(e4.target_label)}},
            # e5: the model could not take it
            e5.pk: {key: {"error": {"code": "model_unavailable", "message": "down"}}},
        }
    )
    return {"campaign": campaign, "model": mv, "authors": (a, b), "edits": (e1, e2, e3, e4, e5)}


def test_counterfactual_metrics_exact_on_a_campaign_built_through_the_services(
    cf_campaign: dict[str, Any],
) -> None:
    campaign, mv = cf_campaign["campaign"], cf_campaign["model"]
    assert [e.status for e in CounterfactualEdit.objects.order_by("id")] == [
        "verified",
        "disputed",
        "verified",
        "pending",
        "pending",
    ]
    out = METHODS["counterfactual"](
        campaign=campaign, model_version=mv, params={"resamples": 400, "seed": 3}, progress=noop
    )
    ratio = {
        k: (v["numerator"], v["denominator"]) for k, v in out["overall"].items() if k != "edits"
    }
    assert ratio == {
        "claimed_flip_rate": (4, 5),
        "verified_flip_rate": (2, 3),
        "model_flip_rate": (2, 4),
        "model_follows_human": (1, 2),
        "contrast_consistency": (1, 2),
        "verified_model_error_rate": (1, 3),
    }
    a, b = (u.username for u in cf_campaign["authors"])
    by_a, by_b = out["by_annotator"][a], out["by_annotator"][b]
    assert (by_a["edits"], by_b["edits"]) == (2, 3)
    assert [
        by_a[m]["value"]
        for m in (
            "claimed_flip_rate",
            "verified_flip_rate",
            "model_follows_human",
            "verified_model_error_rate",
        )
    ] == [1.0, 0.5, 1.0, 0.0]
    assert [
        by_b[m]["value"]
        for m in (
            "claimed_flip_rate",
            "verified_flip_rate",
            "model_follows_human",
            "verified_model_error_rate",
        )
    ] == [pytest.approx(2 / 3), 1.0, 0.0, 1.0]
    assert list(out["by_modality"]) == ["text"]
    for name, entry in out["overall"].items():
        if name != "edits":
            lo, hi = entry["ci95"]
            assert lo <= entry["value"] <= hi, name
    again = METHODS["counterfactual"](
        campaign=campaign, model_version=mv, params={"resamples": 400, "seed": 3}, progress=noop
    )
    assert again == out
    other = METHODS["counterfactual"](
        campaign=campaign, model_version=mv, params={"resamples": 400, "seed": 4}, progress=noop
    )
    assert (
        other["overall"]["model_flip_rate"]["value"] == out["overall"]["model_flip_rate"]["value"]
    )


def test_counterfactual_rows_are_one_query(
    cf_campaign: dict[str, Any], django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        rows = counterfactual_edit_rows(
            campaign=cf_campaign["campaign"], model_version_id=cf_campaign["model"].pk
        )
    assert len(rows) == 5 and rows[4]["pred_edit"] is None


def test_a_bad_param_is_a_named_error(cf_campaign: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed) as exc:
        METHODS["counterfactual"](
            campaign=cf_campaign["campaign"],
            model_version=cf_campaign["model"],
            params={"resamples": "many"},
            progress=noop,
        )
    assert exc.value.code == "analysis_param_invalid"


def test_pid_refuses_a_model_without_encodings(cf_campaign: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed) as exc:
        METHODS["pid"](
            campaign=cf_campaign["campaign"],
            model_version=cf_campaign["model"],
            params={},
            progress=noop,
        )
    assert exc.value.code == "pid_needs_factorized"


def test_clusters_carry_reliance_answers_and_example_references(
    django_assert_num_queries: Any,
) -> None:
    campaign = text_campaign(6, redundancy=2)
    people = add_annotators(campaign, 2)
    for user in people:
        for _ in range(6):
            submit_edit(campaign, user, author_right=True)  # reliance: specialization
    mv = keyword_model(campaign)
    ids = sorted(campaign.items.values_list("example_id", flat=True))
    rng = np.random.default_rng(0)
    vectors = {
        str(pk): ([3.0, 0.0] if i < 4 else [0.0, 3.0]) + 0.05 * rng.standard_normal(2)
        for i, pk in enumerate(ids)
    }
    vectors = {k: [float(x) for x in v] for k, v in vectors.items()}
    out = METHODS["clusters"](
        campaign=campaign,
        model_version=mv,
        params={"vectors": vectors, "k_min": 2, "k_max": 4, "seed": 0},
        progress=noop,
    )
    assert out["chosen_k"] == 2 and set(out["silhouette"]) == {"2", "3", "4"}
    big, small = out["clusters"]
    assert (big["size"], small["size"]) == (4, 2)
    assert [e["id"] for e in big["examples"]] == ids[:4]
    assert big["reliance"] == {"specialization": 8} and small["reliance"] == {"specialization": 4}
    first = Example.objects.get(pk=ids[0])
    assert big["examples"][0] == {
        "id": first.pk,
        "external_id": first.external_id,
        "label": first.label,
        "text": first.values["text"],
    }
    with django_assert_num_queries(1):
        assert reliance_counts(campaign=campaign, example_ids=ids)[ids[0]] == {"specialization": 2}
    with pytest.raises(ValidationFailed) as exc:
        METHODS["clusters"](
            campaign=campaign, model_version=mv, params={"vectors": {}}, progress=noop
        )
    assert exc.value.code == "clusters_vectors_missing"
    with pytest.raises(ValidationFailed) as exc:
        # No vectors: it would compute the EMAP, which needs two modalities.
        METHODS["clusters"](campaign=campaign, model_version=mv, params={}, progress=noop)
    assert exc.value.code == "analysis_modalities"
    with pytest.raises(ValidationFailed) as exc:
        METHODS["clusters"](
            campaign=campaign,
            model_version=mv,
            params={
                "vectors": {"999999": [1.0, 2.0], str(ids[0]): [0.0, 0.0], str(ids[1]): [5.0, 5.0]}
            },
            progress=noop,
        )
    assert exc.value.code == "clusters_input_invalid"


def test_analysis_examples_sample_is_seeded_and_bounded(django_assert_num_queries: Any) -> None:
    campaign = text_campaign(10, redundancy=1)
    with django_assert_num_queries(2):
        a = analysis_examples(campaign=campaign, limit=4, seed=1)
    assert len(a) == 4 and a == analysis_examples(campaign=campaign, limit=4, seed=1)
    assert [r["id"] for r in a] == sorted(r["id"] for r in a)
    assert len(analysis_examples(campaign=campaign)) == 10
    yes = analysis_examples(campaign=campaign, labels=["yes"])
    assert len(yes) == 5 and {r["label"] for r in yes} == {"yes"}


def test_pid_on_a_reference_model_labels_and_predictions(settings: Any) -> None:
    from annotation.services.campaigns import campaign_add_examples, campaign_create

    package_dir("easyvqa-multiplicative")
    dataset = easyvqa_dataset(n=60)
    campaign = campaign_create(dataset=dataset, name="pid", status=Campaign.Status.ACTIVE)
    campaign_add_examples(campaign=campaign)
    mv = model_register(dataset=dataset, kind="torchscript", location="easyvqa-multiplicative")
    calls: list[tuple[int, int]] = []
    out = METHODS["pid"](
        campaign=campaign,
        model_version=mv,
        params={"k": 4, "max_examples": 50, "seed": 0, "batch_size": 16},
        progress=lambda done, total: calls.append((done, total)),
    )
    assert out["examples"] == out["labels_examples"] == 50
    assert calls[-1] == (50, 50) and len(calls) == 4
    assert out["k"] == {"image": 4, "text": 4} and out["units"] == "bits"
    for part in ("labels", "predictions"):
        d = out[part]
        total = d["redundancy"] + d["unique_1"] + d["unique_2"] + d["synergy"]
        assert total == pytest.approx(d["mi_x1x2_y"], abs=1e-5)
        assert min(d["redundancy"], d["unique_1"], d["unique_2"], d["synergy"]) >= -1e-5
    assert out == METHODS["pid"](
        campaign=campaign,
        model_version=mv,
        params={"k": 4, "max_examples": 50, "seed": 0, "batch_size": 16},
        progress=noop,
    )


def test_clusters_compute_their_own_emap_vectors_through_the_job_registry(settings: Any) -> None:
    """Without precomputed vectors the clusters method runs the exact EMAP itself; its
    vectors are f(x) - EMAP f(x) of the same examples, so the same call twice agrees."""
    from annotation.services.campaigns import campaign_add_examples, campaign_create
    from models_bridge.analysis.methods import block_rows_of, emap_setup, emap_stream

    package_dir("easyvqa-additive")
    dataset = easyvqa_dataset(n=24)
    campaign = campaign_create(dataset=dataset, name="clusters", status=Campaign.Status.ACTIVE)
    campaign_add_examples(campaign=campaign)
    mv = model_register(dataset=dataset, kind="torchscript", location="easyvqa-additive")
    params = {"k_min": 2, "k_max": 3, "seed": 0}
    out = METHODS["clusters"](campaign=campaign, model_version=mv, params=params, progress=noop)
    assert sum(c["size"] for c in out["clusters"]) == 24
    assert out["variant"].startswith("exact ") and "over 24 examples" in out["variant"]
    # The additive model has no interaction: EMAP reproduces it, every vector is ~0.
    data, pairs = emap_setup(campaign=campaign, model_version=mv, params=params)
    sums = emap_stream(pairs, n=data.n, block_rows=block_rows_of(params, data.n), progress=noop)
    assert abs(sums.logits - sums.emap).max() < 1e-4
    assert all(c["mean_interaction_norm"] < 1e-3 for c in out["clusters"])
    assert out == METHODS["clusters"](
        campaign=campaign, model_version=mv, params=params, progress=noop
    )
