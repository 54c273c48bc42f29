"""The `grounding` analysis method on easy-VQA campaigns built through the services:
annotations with word highlights and image boxes submitted through the annotator API, the
job run as a worker runs it. The synthetic model reads one word and one image quadrant by
construction, so where its evidence lies is known."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.db import transaction

from annotation.models import Job
from models_bridge.analysis import grounding as g
from models_bridge.models import AnalysisResult
from models_bridge.services.analysis import analysis_start
from models_bridge.services.registry import campaign_models_set, model_register
from models_bridge.tasks import analysis_run_task
from tests.annotation.annotator_helpers import annotate_body
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def annotate_with(campaign: Any, user: Any, evidence_of: Any, reliance: str = "synergy") -> int:
    """Lease and submit every task for `user` with `evidence_of(example values)`."""
    client = client_for(user)
    done = 0
    while True:
        r = client.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
        )
        if r.status_code == 204:
            return done
        task = r.json()
        body = annotate_body(
            task,
            label="yes",
            target="no",
            reliance=reliance,
            evidence=evidence_of(task["example"]["values"]),
        )
        r = client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/", body, format="json"
        )
        assert r.status_code == 201, r.content
        done += 1


def run(campaign: Any, model: Any, manager: Any, **params: Any) -> dict[str, Any]:
    with transaction.atomic():
        job = analysis_start(
            campaign=campaign,
            model_version=model,
            methods=["grounding"],
            params={"resamples": 200, **params},
            created_by=manager,
            enqueue=False,
        )
    analysis_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    return AnalysisResult.objects.get(job=job, method="grounding").result


def shape_word_evidence(values: dict[str, Any]) -> list[dict[str, Any]]:
    text = values["text"]
    spans = g.word_spans(text)
    s, e = spans[-1]  # easy-VQA questions end on the noun ("shape", "circle", ...)
    return [{"modality": "text", "type": "span", "start": s, "end": e}]


def test_grounding_on_a_reference_model(evqa_campaign: Any, evqa_people: Any) -> None:
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-cross-attention"
    )
    campaign_models_set(campaign=evqa_campaign, model_versions=[mv])
    annotate_with(evqa_campaign, evqa_people["shown"], shape_word_evidence)
    res = run(evqa_campaign, mv, evqa_people["manager"], grid=4)
    assert res["n"] == 12
    occ = res["attributions"]["occlusion"]
    assert occ["grid"] == 4 and occ["implementation"] == "captum.attr.FeatureAblation"
    assert occ["path"] == "preprocessed tensors"
    assert res["attributions"]["integrated_gradients"]["available"] is True
    ex = res["examples"][0]
    assert len(ex["image"]["model"]) == 16 and len(ex["image"]["ig"]) == 16
    assert len(ex["text"]["model"]) == len(ex["text"]["words"])
    assert ex["image"]["pointing"] is None  # nobody drew a box
    assert res["overall"]["examples"] == 12


# --- the synthetic model -------------------------------------------------------------------

SIZE = 32
QUESTIONS = ["is there a circle here", "a circle or not", "circle in the corner", "see the circle"]


def quadrant_image(k: int) -> bytes:
    """White, the top-left quadrant dark (what the model reads), a dark square bottom right
    (what it ignores)."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, SIZE // 2 - 1, SIZE // 2 - 1), fill=(10 * k, 0, 0))
    draw.rectangle((20, 20, 27, 27), fill=(0, 0, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def synthetic(db: Any) -> dict[str, Any]:
    from annotation.models import Dataset, Example, Membership
    from annotation.schema import content_hash
    from annotation.services.campaigns import campaign_add_examples, campaign_create
    from annotation.services.media import media_store_bytes
    from tests.factories import MembershipFactory, UserFactory

    ds = Dataset.objects.create(
        name="word-quadrant",
        modalities=[{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}],
        label_space=["yes", "no"],
    )
    for i, q in enumerate(QUESTIONS):
        media = media_store_bytes(data=quadrant_image(i))
        values = {"image": media.sha256, "text": q}
        Example.objects.create(
            dataset=ds,
            external_id=f"wq-{i}",
            values=values,
            label="yes",
            split="test",
            content_hash=content_hash(values),
        )
    campaign = campaign_create(
        dataset=ds,
        name="word-quadrant",
        status="active",
        editable_modalities=["image", "text"],
        edit_budgets={"image": 0.25, "text": 0.5},
    )
    campaign_add_examples(campaign=campaign)
    manager = UserFactory(username="gm-manager")
    MembershipFactory(campaign=campaign, user=manager, role=Membership.Role.MANAGER)
    annotator = UserFactory(username="ga-annotator")
    MembershipFactory(campaign=campaign, user=annotator, role=Membership.Role.ANNOTATOR)
    mv = model_register(
        dataset=ds,
        kind="entrypoint",
        location="tests.models_bridge.example_entrypoint:word_quadrant_adapter",
        name="word-quadrant",
        version="1",
    )
    campaign_models_set(campaign=campaign, model_versions=[mv])
    return {"campaign": campaign, "model": mv, "manager": manager, "annotator": annotator}


def evidence(word: str, box: tuple[int, int, int, int]) -> Any:
    def of(values: dict[str, Any]) -> list[dict[str, Any]]:
        text = values["text"]
        s = text.index(word)
        x, y, w, h = box
        return [
            {"modality": "text", "type": "span", "start": s, "end": s + len(word)},
            {"modality": "image", "type": "box", "x": x, "y": y, "w": w, "h": h},
        ]

    return of


MATCHING = evidence("circle", (0, 0, SIZE // 2, SIZE // 2))


def disjoint(values: dict[str, Any]) -> list[dict[str, Any]]:
    other = next(w for w in values["text"].split() if w != "circle")
    return evidence(other, (SIZE // 2, SIZE // 2, SIZE // 2, SIZE // 2))(values)


@pytest.mark.parametrize("word_mode", ["drop", "unk"])
def test_occlusion_puts_all_mass_on_what_the_model_reads(
    synthetic: dict[str, Any], word_mode: str
) -> None:
    annotate_with(synthetic["campaign"], synthetic["annotator"], MATCHING)
    res = run(
        synthetic["campaign"],
        synthetic["model"],
        synthetic["manager"],
        grid=4,
        q=0.25,
        word_mode=word_mode,
    )
    assert res["attributions"]["occlusion"]["word_mode"] == word_mode
    assert res["attributions"]["occlusion"]["path"] == "raw values (PNG, text)"
    ig = res["attributions"]["integrated_gradients"]
    assert ig["available"] is False and ig["reason"]
    quadrant = {0, 1, 4, 5}  # the top-left 2x2 patches of a 4x4 grid
    for ex in res["examples"]:
        words = np.array(ex["text"]["model"])
        on = [i for i, w in enumerate(ex["text"]["words"]) if w == "circle"]
        assert words[on].tolist() == [2.0] and np.abs(np.delete(words, on)).sum() == 0
        patches = np.array(ex["image"]["model"])
        assert np.abs(patches[sorted(quadrant)] - 1.0).max() < 1e-5  # 4·(1/4) each
        assert np.abs(np.delete(patches, sorted(quadrant))).sum() == 0
        # plausibility 1 against matching human evidence
        assert ex["text"]["top_k_f1"] == 1.0 and ex["text"]["auprc"] == 1.0
        assert ex["image"]["pointing"] is True and ex["image"]["iou"] == 1.0
        assert ex["disagreement"] == 0.0


def test_plausibility_and_faithfulness_take_their_extremes(synthetic: dict[str, Any]) -> None:
    from models_bridge.analysis.grounding_method import _softmax_at

    campaign, mv, manager = synthetic["campaign"], synthetic["model"], synthetic["manager"]
    annotate_with(campaign, synthetic["annotator"], MATCHING)
    matching = run(campaign, mv, manager, grid=4, q=0.25)
    # A second campaign on the same examples whose annotator marks what the model ignores.
    from annotation.models import Membership
    from annotation.services.campaigns import campaign_add_examples, campaign_create
    from tests.factories import MembershipFactory, UserFactory

    second = campaign_create(
        dataset=campaign.dataset,
        name="word-quadrant-disjoint",
        status="active",
        editable_modalities=["image", "text"],
        edit_budgets={"image": 0.25, "text": 0.5},
    )
    campaign_add_examples(campaign=second)
    MembershipFactory(campaign=second, user=manager, role=Membership.Role.MANAGER)
    annotator = UserFactory(username="gd-annotator")
    MembershipFactory(campaign=second, user=annotator, role=Membership.Role.ANNOTATOR)
    campaign_models_set(campaign=second, model_versions=[mv])
    annotate_with(second, annotator, disjoint)
    other = run(second, mv, manager, grid=4, q=0.25)

    p_full = float(_softmax_at(np.array([[6.0, 1.0]]), [0])[0])
    p_none = float(_softmax_at(np.array([[0.0, 1.0]]), [0])[0])  # neither word nor quadrant
    for m, o in zip(matching["examples"], other["examples"], strict=True):
        assert m["p_predicted"] == pytest.approx(p_full, abs=1e-4)
        hm, ho = m["faithfulness"]["human"]["all"], o["faithfulness"]["human"]["all"]
        # the human evidence is all the model reads: removing it is the largest drop,
        # keeping only it loses nothing; disjoint evidence: the other way round
        assert hm["comprehensiveness"] == pytest.approx(p_full - p_none, abs=1e-4)
        assert hm["sufficiency"] == pytest.approx(0.0, abs=1e-6)
        assert ho["comprehensiveness"] == pytest.approx(0.0, abs=1e-6)
        assert ho["sufficiency"] == pytest.approx(p_full - p_none, abs=1e-4)
        # the model's own top evidence is the same in both runs
        assert m["faithfulness"]["model"] == o["faithfulness"]["model"]
        assert o["text"]["top_k_f1"] == 0.0 and o["text"]["auprc"] < 1.0
        assert o["image"]["pointing"] is False and o["image"]["iou"] == 0.0
        assert o["disagreement"] == 1.0
    assert matching["overall"]["image_iou"]["value"] == 1.0
    assert other["overall"]["image_iou"]["value"] == 0.0
    assert other["overall"]["human_sufficiency_all"]["ci95"] is None  # 4 examples < 5
    assert [d["example"] for d in other["disagreements"]] == sorted(
        e["example"] for e in other["examples"]
    )


def test_the_report_page_shows_the_overlays_and_downloads(synthetic: dict[str, Any]) -> None:
    import csv
    import io
    import json

    from django.test import Client

    from models_bridge.analysis.tables import result_tables

    campaign, manager = synthetic["campaign"], synthetic["manager"]
    annotate_with(campaign, synthetic["annotator"], disjoint)
    res = run(campaign, synthetic["model"], manager, grid=4, q=0.25)
    job = AnalysisResult.objects.get(method="grounding").job
    client = Client()
    client.force_login(manager)
    base = f"/manage/campaigns/{campaign.pk}/analyses/{job.pk}/"
    body = client.get(base).content.decode()
    assert 'id="result-grounding"' in body
    for table in result_tables("grounding", res):
        assert f'data-table="grounding:{table.key}"' in body
        sheet = client.get(f"{base}grounding.csv?table={table.key}")
        rows = list(csv.reader(io.StringIO(sheet.content.decode())))
        assert rows[0] == table.columns and len(rows) == 1 + len(table.rows)
    assert json.loads(client.get(f"{base}grounding.json").content) == res
    cards = body.count('class="example-card grounding-card"')
    assert cards == len(res["disagreements"]) == 4
    # per card: 16 human cells, 16 model cells; the model's 4 quadrant patches at full weight
    assert body.count('<span style="opacity: 1.0"></span>') == 4 * (4 + 4)
    assert body.count('class="gr-word gr-human-word"') == 4  # one marked word per question
    assert 'id="gr-h-' in body and 'id="gr-m-' in body


def test_cross_attention_map_agrees_with_its_occlusion_map(
    evqa_campaign: Any, evqa_people: Any
) -> None:
    """The reference cross-attention model's own attention over its 8x8 regions (the
    adapter's `attention` export, mean over the question's tokens) against the grounding
    result's occlusion map on the same grid: the most attended region lies among the top
    10% occlusion patches far more often than the 7/64 a random region would."""
    from models_bridge.adapters.base import Batch
    from models_bridge.analysis.data import analysis_data
    from models_bridge.services.loading import adapter_for

    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-cross-attention"
    )
    campaign_models_set(campaign=evqa_campaign, model_versions=[mv])
    res = run(evqa_campaign, mv, evqa_people["manager"], grid=8, ig=False)
    assert res["attributions"]["integrated_gradients"]["reason"] == "not asked (ig false)"
    data = analysis_data(campaign=evqa_campaign, model_version=mv, params={})
    adapter = adapter_for(mv)
    att = adapter.attention(Batch({m: data.values[m] for m in adapter.modalities}))
    pre = adapter.preprocessors["text"]  # type: ignore[attr-defined]
    real = (pre(data.values["text"]) != pre.pad_id)[:, :, None]
    regions = (att * real).sum(axis=1) / real.sum(axis=1)
    assert [e["example"] for e in res["examples"]] == data.example_ids
    hits = [
        g.top_k(np.abs(np.array(e["image"]["model"])), 7)[int(np.argmax(regions[i]))]
        for i, e in enumerate(res["examples"])
    ]
    chance = 7 / 64
    assert float(np.mean(hits)) > 3 * chance


@pytest.mark.parametrize("word_mode", ["drop", "unk"])
def test_the_tensor_path_gives_the_numbers_of_the_raw_value_path(
    evqa_campaign: Any, word_mode: str, monkeypatch: Any
) -> None:
    """For a TorchScript package the occluded inputs are built as tensors; the same
    attributions as editing the strings and pixels and preprocessing them."""
    from models_bridge.analysis.data import analysis_data
    from models_bridge.analysis.grounding_method import occlusion_inputs
    from models_bridge.analysis.occlusion import Occluder
    from models_bridge.services.loading import adapter_for

    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-cross-attention"
    )
    data = analysis_data(campaign=evqa_campaign, model_version=mv, params={})
    adapter = adapter_for(mv)

    def attributions() -> tuple[list[Any], list[Any]]:
        occ, items, _ = occlusion_inputs(
            adapter, data, text_m="text", image_m="image", grid=8, word_mode=word_mode
        )
        full = occ.edited_logits(items, [None] * len(items), [None] * len(items))
        return occ.attributions(items, list(np.argmax(full, axis=1)), progress=lambda d, t: None)

    occ, items, _ = occlusion_inputs(
        adapter, data, text_m="text", image_m="image", grid=8, word_mode=word_mode
    )
    assert occ._tensor_forward(items[:1], len(items[0].words)) is not None
    fast_words, fast_patches = attributions()
    monkeypatch.setattr(Occluder, "_tensor_forward", lambda self, items, n_words: None)
    slow_words, slow_patches = attributions()
    for a, b in zip(fast_words + fast_patches, slow_words + slow_patches, strict=True):
        assert np.allclose(a, b, atol=1e-4)
