"""The `heads` analysis method and the attention maps (service and endpoints) on the
4-head cross-attention reference model, with campaigns built through the services."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction

from annotation.models import CounterfactualEdit, Job, Membership
from counterpoint.errors import ValidationFailed
from models_bridge.adapters.base import Batch
from models_bridge.analysis.data import analysis_data, predicted_labels
from models_bridge.analysis.heads_method import run_heads
from models_bridge.models import AnalysisResult
from models_bridge.services.attention import attention_map
from models_bridge.services.loading import adapter_for
from models_bridge.services.registry import campaign_models_set, model_register
from models_bridge.tasks import analysis_run_task
from tests.annotation.annotator_helpers import annotate_body
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.models_bridge.conftest import easyvqa_dataset, package_dir

pytestmark = pytest.mark.django_db
NAME = "easyvqa-cross-attention-4h"  # easyvqa-cross-attention@2, 4 heads


def noop(done: int, total: int) -> None:
    pass


def register(campaign: Any, name: str = NAME) -> Any:
    package_dir(name)
    return model_register(dataset=campaign.dataset, kind="torchscript", location=name)


def accuracy_under(mv: Any, campaign: Any, mask: list[float]) -> float:
    """Accuracy with `mask`, computed independently: the whole model per example."""
    data = analysis_data(campaign=campaign, model_version=mv, params={})
    adapter = adapter_for(mv)
    batch = Batch({m: list(data.values[m]) for m in mv.modalities})
    logits = adapter.predict_with_head_mask(batch, np.asarray(mask, dtype=np.float32))
    pred = predicted_labels(mv, logits)
    return float(np.mean([p == g for p, g in zip(pred, data.gold, strict=True)]))


def test_heads_method_figures(evqa_campaign):
    mv = register(evqa_campaign)
    out = run_heads(campaign=evqa_campaign, model_version=mv, params={}, progress=noop)
    heads = out["heads"]
    assert heads == 4 and out["n"] == 12 and out["method"] == "heads"
    assert out["variant"].startswith("head mask on the fusion head")
    assert out["accuracy"] == pytest.approx(accuracy_under(mv, evqa_campaign, [1.0] * heads))
    for row in out["importance"]:
        mask = [0.0 if h == row["head"] else 1.0 for h in range(heads)]
        assert row["accuracy"] == pytest.approx(accuracy_under(mv, evqa_campaign, mask))
        assert row["drop"] == pytest.approx(out["accuracy"] - row["accuracy"])
    drops = [row["drop"] for row in out["importance"]]
    order = out["pruning"]["order"]
    assert sorted(order) == list(range(heads))
    assert [drops[h] for h in order] == sorted(drops)
    curve = out["pruning"]["curve"]
    assert [c["removed"] for c in curve] == list(range(heads + 1))
    assert curve[0]["accuracy"] == out["accuracy"]
    assert curve[1]["accuracy"] == out["importance"][order[0]]["accuracy"]
    for c in curve:
        assert c["heads_removed"] == order[: c["removed"]]
        assert c["accuracy"] == pytest.approx(accuracy_under(mv, evqa_campaign, c["mask"]))
    assert curve[-1]["mask"] == [0.0] * heads
    assert set(out["by_group"]) == {"question_type"} or out["by_group"] == {}
    # The black-box path (the whole model under the mask) gives the same figures.
    black = run_heads(
        campaign=evqa_campaign, model_version=mv, params={"batch_size": 5}, progress=noop
    )
    other = {k: v for k, v in black.items() if k not in ("variant", "params")}
    same = {k: v for k, v in out.items() if k not in ("variant", "params")}
    assert other == same


def test_heads_refuses_a_model_without_heads(evqa_campaign, evqa_people):
    # version 1 of cross-attention has attention but one head and no head mask
    for name in ("easyvqa-cross-attention", "easyvqa-multiplicative"):
        mv = register(evqa_campaign, name)
        with pytest.raises(ValidationFailed) as exc:
            run_heads(campaign=evqa_campaign, model_version=mv, params={}, progress=noop)
        assert exc.value.code == "analysis_no_heads"
    # The REST endpoint refuses it before any job exists.
    client = client_for(evqa_people["manager"])
    r = client.post(
        f"/api/v1/campaigns/{evqa_campaign.pk}/analyses/",
        {"model": mv.pk, "methods": ["heads"]},
        format="json",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "analysis_no_heads"
    assert not Job.objects.filter(kind=Job.Kind.ANALYSIS).exists()


def test_heads_as_a_job_from_the_endpoint_and_the_command(evqa_campaign, evqa_people):
    mv = register(evqa_campaign)
    client = client_for(evqa_people["manager"])
    r = client.post(
        f"/api/v1/campaigns/{evqa_campaign.pk}/analyses/",
        {"model": mv.pk, "methods": ["heads"], "params": {"limit": 8, "seed": 1}},
        format="json",
    )
    assert r.status_code == 202, r.content
    job_id = r.json()["job"]["id"]
    analysis_run_task(job_id)
    got = client.get(f"/api/v1/campaigns/{evqa_campaign.pk}/analyses/{job_id}/").json()
    assert got["job"]["status"] == Job.Status.SUCCEEDED, got["job"]
    (result,) = got["results"]
    assert result["method"] == "heads" and result["result"]["n"] == 8
    assert result["result"]["params"] == {"limit": 8, "seed": 1, "batch_size": 256}


@pytest.mark.django_db(transaction=True)
def test_heads_from_the_command(evqa_campaign):
    # transaction=True: the command runs the job in a thread with its own connection
    mv = register(evqa_campaign)
    out = io.StringIO()
    call_command(
        "analyze_campaign", str(evqa_campaign.pk), model=str(mv), methods="heads", stdout=out
    )
    text = out.getvalue()
    assert "heads [head mask on the fusion head" in text and "pruning order" in text
    stored = AnalysisResult.objects.filter(method="heads").order_by("id").last()
    assert stored is not None and stored.result["n"] == 12


# --- attention maps ----------------------------------------------------------------------


def test_attention_map_shape(evqa_campaign):
    mv = register(evqa_campaign)
    example = evqa_campaign.dataset.examples.order_by("id").first()
    out = attention_map(mv, example.values)
    tokens = out["tokens"]
    assert tokens == example.values["text"].lower().replace("?", "").split()
    assert out["grid"] == [8, 8] and out["heads"] == 4
    assert np.asarray(out["per_head"]).shape == (4, len(tokens), 64)
    np.testing.assert_allclose(np.asarray(out["per_head"]).sum(-1), 1.0, atol=1e-4)
    mean = np.mean(out["per_head"], axis=0)
    np.testing.assert_allclose(out["mean"], mean, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out["average"], mean.mean(axis=0), atol=1e-5, rtol=0)
    assert out["model"] == str(mv) and out["text_modality"] == "text"
    # The adapter's head-averaged `attention` is what `mean` holds (real tokens only).
    from models_bridge.services.scoring import build_batch

    adapter = adapter_for(mv)
    plain = adapter.attention(build_batch(mv, [example.values]))[0, : len(tokens)]
    np.testing.assert_allclose(out["mean"], plain, atol=1e-5, rtol=0)
    multiplicative = register(evqa_campaign, "easyvqa-multiplicative")
    with pytest.raises(ValidationFailed) as exc:
        attention_map(multiplicative, example.values)
    assert exc.value.code == "model_no_attention"
    assert adapter.heads == 4


def _edit(campaign: Any, user: Any) -> CounterfactualEdit:
    client = client_for(user)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task),
        format="json",
    )
    assert r.status_code == 201, r.content
    return CounterfactualEdit.objects.get(pk=r.json()["edit"]["id"])


def test_attention_endpoints_and_their_access(evqa_campaign, evqa_people):
    mv = register(evqa_campaign)
    multiplicative = register(evqa_campaign, "easyvqa-multiplicative")
    with transaction.atomic():
        campaign_models_set(campaign=evqa_campaign, model_versions=[mv, multiplicative])
    edit = _edit(evqa_campaign, evqa_people["shown"])
    base = f"/api/v1/campaigns/{evqa_campaign.pk}"
    url = f"{base}/edits/{edit.pk}/attention/?model={mv.pk}"
    manager = client_for(evqa_people["manager"])
    r = manager.get(url)
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["edit"] == edit.pk and body["modality"] == "text"
    assert body["original"] == attention_map(mv, edit.example.values)
    assert body["edited"] == attention_map(mv, edit.edited_values)
    assert body["edited"]["tokens"] != body["original"]["tokens"]
    ex = manager.get(f"{base}/examples/{edit.example_id}/attention/?model={mv.pk}")
    assert ex.status_code == 200 and ex.json()["per_head"] == body["original"]["per_head"]

    # Who may read it: the pair viewer's rule (outsiders 404, annotators 403).
    other_manager = UserFactory(username="other-manager")
    other = easyvqa_dataset(n=2, name="other-evqa")
    from annotation.services.campaigns import campaign_create

    elsewhere = campaign_create(dataset=other, name="elsewhere")
    MembershipFactory(campaign=elsewhere, user=other_manager, role=Membership.Role.MANAGER)
    assert client_for(other_manager).get(url).status_code == 404
    assert client_for(evqa_people["outsider"]).get(url).status_code == 404
    assert client_for(evqa_people["shown"]).get(url).status_code == 403

    # Bad requests are named 4xx.
    def code(u: str) -> tuple[int, str]:
        resp = manager.get(u)
        return resp.status_code, resp.json()["error"]["code"]

    assert code(f"{base}/edits/{edit.pk}/attention/") == (400, "attention_model_missing")
    assert code(f"{base}/edits/{edit.pk}/attention/?model={multiplicative.pk}") == (
        400,
        "model_no_attention",
    )
    stray = model_register(dataset=evqa_campaign.dataset, kind="torchscript", location=NAME)
    assert stray.pk == mv.pk  # the same package: no second version
    assert code(f"{base}/edits/{edit.pk}/attention/?model=999999")[0] == 404
    assert code(f"{base}/edits/999999/attention/?model={mv.pk}")[0] == 404
    assert code(f"{base}/examples/999999/attention/?model={mv.pk}")[0] == 404


def test_pair_viewer_options_say_which_models_have_attention(evqa_campaign):
    from annotation.selectors_results import pair_filter_options

    mv = register(evqa_campaign)
    multiplicative = register(evqa_campaign, "easyvqa-multiplicative")
    with transaction.atomic():
        campaign_models_set(campaign=evqa_campaign, model_versions=[mv, multiplicative])
    models = {
        m["id"]: m["attention"] for m in pair_filter_options(campaign=evqa_campaign)["models"]
    }
    assert models == {mv.pk: True, multiplicative.pk: False}
