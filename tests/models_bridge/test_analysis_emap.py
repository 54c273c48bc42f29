"""Exact EMAP on the reference models through every path, the analysis job (idempotent,
resumable through its row blocks), ablation, perceptual score and the REST endpoints."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.db import transaction

from annotation.models import Job
from models_bridge.analysis.emap import emap_from_grid
from models_bridge.analysis.methods import (
    block_rows_of,
    compute_block,
    emap_setup,
    emap_stream,
)
from models_bridge.analysis.pairs import make_pairs
from models_bridge.models import AnalysisBlock, AnalysisResult
from models_bridge.services.analysis import (
    analysis_start,
    emap_block_claim,
    emap_block_store,
    emap_blocks_ensure,
)
from models_bridge.services.registry import model_register
from models_bridge.tasks import analysis_run_task
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def noop(done: int, total: int) -> None:
    pass


def register(campaign: Any, name: str) -> Any:
    return model_register(dataset=campaign.dataset, kind="torchscript", location=name)


def sums_for(campaign: Any, mv: Any, **params: Any):  # type: ignore[no-untyped-def]
    data, pairs = emap_setup(campaign=campaign, model_version=mv, params=params)
    return data, pairs, emap_stream(pairs, n=data.n, block_rows=5, progress=noop)


def test_additive_model_emap_is_the_model(evqa_campaign):
    mv = register(evqa_campaign, "easyvqa-additive")
    for path in ("factorized", "black-box"):
        _data, _pairs, sums = sums_for(evqa_campaign, mv, path=path)
        np.testing.assert_allclose(sums.emap, sums.logits, atol=1e-5)


@pytest.mark.parametrize("name", ["easyvqa-multiplicative", "easyvqa-cross-attention"])
def test_factorized_black_box_streamed_and_the_full_grid_agree(evqa_campaign, name):
    mv = register(evqa_campaign, name)
    data, fact, streamed = sums_for(evqa_campaign, mv, path="factorized")
    _d, black, black_sums = sums_for(evqa_campaign, mv, path="black-box")
    n = data.n
    grid = fact.rows(0, n, n)
    np.testing.assert_allclose(black.rows(0, n, n), grid, atol=1e-5)
    np.testing.assert_allclose(streamed.emap, emap_from_grid(grid), atol=1e-5)
    np.testing.assert_allclose(black_sums.emap, streamed.emap, atol=1e-5)
    # The interaction is real: EMAP differs from the model somewhere.
    assert np.abs(streamed.emap - streamed.logits).max() > 1e-3


def test_swapping_the_modalities_changes_nothing(evqa_campaign):
    mv = register(evqa_campaign, "easyvqa-multiplicative")
    _d, _p, one = sums_for(evqa_campaign, mv, modalities=["image", "text"])
    _d, _p, other = sums_for(evqa_campaign, mv, modalities=["text", "image"])
    np.testing.assert_allclose(one.emap, other.emap, atol=1e-5)
    np.testing.assert_allclose(one.logits, other.logits, atol=1e-5)


def start(campaign, mv, user, methods, **params):  # type: ignore[no-untyped-def]
    with transaction.atomic():
        return analysis_start(
            campaign=campaign,
            model_version=mv,
            methods=methods,
            params=params,
            created_by=user,
            enqueue=False,
        )


def test_job_stores_one_result_per_method_and_a_second_run_changes_nothing(
    evqa_campaign, evqa_people
):
    mv = register(evqa_campaign, "easyvqa-multiplicative")
    job = start(
        evqa_campaign,
        mv,
        evqa_people["manager"],
        ["emap", "ablation", "perceptual"],
        block_rows=5,
        permutations=3,
    )
    analysis_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress_done == job.progress_total == 3000
    results = {r.method: r for r in AnalysisResult.objects.filter(job=job)}
    assert sorted(results) == ["ablation", "emap", "perceptual"]
    emap = results["emap"].result
    assert emap["variant"] == "exact factorized" and emap["blocks"] == 3
    assert emap["n"] == 12 and len(emap["examples"]) == 12
    overall = emap["accuracy"]["overall"]
    assert overall["n"] == 12 and 0 <= overall["emap"] <= 1
    assert set(emap["accuracy"]["by_label"]) <= set(evqa_campaign.dataset.label_space)
    first = {r.method: (r.pk, r.result) for r in results.values()}
    # A duplicate delivery finds the job finished and changes nothing.
    analysis_run_task(job.pk)
    again = {r.method: (r.pk, r.result) for r in AnalysisResult.objects.filter(job=job)}
    assert again == first
    assert AnalysisBlock.objects.filter(job=job).count() == 4  # 3 blocks + the combine


def test_a_failed_job_started_again_keeps_the_results_it_stored(evqa_campaign, evqa_people):
    from annotation.services.jobs import job_claim, job_finish, job_reopen
    from models_bridge.services.analysis import analysis_result_store

    mv = register(evqa_campaign, "easyvqa-additive")
    job = start(evqa_campaign, mv, evqa_people["manager"], ["perceptual", "emap"])
    token = job_claim(job_id=job.pk)
    kept = analysis_result_store(
        job_id=job.pk, method="perceptual", result={"variant": "stored before the failure"}
    )
    job_finish(job_id=job.pk, status=Job.Status.FAILED, error="worker lost", token=token)
    assert job_reopen(job_id=job.pk)
    analysis_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    rows = {r.method: r for r in AnalysisResult.objects.filter(job=job)}
    assert rows["perceptual"].pk == kept.pk
    assert rows["perceptual"].result == {"variant": "stored before the failure"}
    assert rows["emap"].result["variant"] == "exact factorized"
    assert job.result["results"]["perceptual"]["id"] == kept.pk


def test_a_block_done_before_a_takeover_is_not_recomputed(evqa_campaign, evqa_people):
    mv = register(evqa_campaign, "easyvqa-multiplicative")
    job = start(evqa_campaign, mv, evqa_people["manager"], ["emap"], block_rows=4)
    data, pairs = emap_setup(campaign=evqa_campaign, model_version=mv, params={})
    emap_blocks_ensure(job_id=job.pk, n=data.n, block_rows=block_rows_of({"block_rows": 4}, 12))
    claimed = emap_block_claim(job_id=job.pk)
    assert claimed is not None
    blk, token = claimed
    partial = compute_block(pairs, start=blk.start, stop=blk.stop, n=data.n)
    assert emap_block_store(block_id=blk.pk, token=token, data=partial.packed(), seconds=0.0)
    AnalysisBlock.objects.filter(pk=blk.pk).update(computed_by="an earlier worker")
    analysis_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert AnalysisBlock.objects.get(pk=blk.pk).computed_by == "an earlier worker"
    result = AnalysisResult.objects.get(job=job, method="emap").result
    _d, _p, direct = sums_for(evqa_campaign, mv)
    from models_bridge.analysis.data import predicted_labels

    assert [e["predicted_emap"] for e in result["examples"]] == predicted_labels(mv, direct.emap)


def test_ablation_records_its_null_inputs_and_a_text_only_model_ignores_the_image(
    evqa_campaign, evqa_people
):
    mv = register(evqa_campaign, "easyvqa-text-only")
    from models_bridge.analysis.methods import ablation_run, perceptual_run

    out = ablation_run(campaign=evqa_campaign, model_version=mv, params={}, progress=noop)
    image = out["modalities"]["image"]
    assert image["null_input"]["kind"] == "image" and len(image["null_input"]["colour"]) == 3
    assert image["null_input"]["size"] == [64, 64]
    assert image["delta"] == 0.0 and image["prediction_changed_fraction"] == 0.0
    assert out["modalities"]["text"]["null_input"] == {"kind": "text", "text": ""}
    perc = perceptual_run(
        campaign=evqa_campaign, model_version=mv, params={"permutations": 4}, progress=noop
    )
    assert perc["modalities"]["image"]["mean"] == 0.0
    assert len(perc["modalities"]["text"]["drops"]) == 4 and "std" in perc["modalities"]["text"]


def test_background_colour_is_the_modal_border_colour() -> None:
    import io

    from PIL import Image

    from models_bridge.analysis.data import null_input
    from models_bridge.preprocess import ImageValue

    def png(colour: tuple[int, int, int]) -> ImageValue:
        im = Image.new("RGB", (10, 8), colour)
        im.putpixel((5, 4), (0, 0, 0))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return ImageValue(sha256="x", data=buf.getvalue())

    _v, record = null_input(
        kind="image", values=[png((250, 240, 230)), png((250, 240, 230)), png((1, 2, 3))], raw=[]
    )
    assert record["colour"] == [250, 240, 230] and record["size"] == [10, 8]


def test_black_box_path_for_an_adapter_without_prepared_tensors(evqa_campaign):
    """Entry-point and remote adapters get raw values paired into Batches."""
    mv = register(evqa_campaign, "easyvqa-multiplicative")
    data, fact = emap_setup(campaign=evqa_campaign, model_version=mv, params={})

    class Plain:
        factorized = False

        def __init__(self, inner: Any) -> None:
            self.inner, self.labels, self.modalities = inner, inner.labels, inner.modalities

        def predict(self, batch: Any) -> Any:
            return self.inner.predict(batch)

    plain = make_pairs(Plain(fact.adapter), data.modalities, data.values, path="black-box")  # type: ignore[arg-type]
    assert plain.prepared is None  # type: ignore[attr-defined]
    np.testing.assert_allclose(plain.rows(0, 3, data.n), fact.rows(0, 3, data.n), atol=1e-5)


# --- REST ----------------------------------------------------------------------------------


def test_unknown_method_is_a_named_400_listing_the_known_ones(evqa_campaign, evqa_people):
    mv = register(evqa_campaign, "easyvqa-additive")
    client = client_for(evqa_people["manager"])
    before = Job.objects.count()
    r = client.post(
        f"/api/v1/campaigns/{evqa_campaign.pk}/analyses/",
        {"model": mv.pk, "methods": ["emap", "telepathy"]},
        format="json",
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "analysis_method_unknown"
    assert err["details"]["unknown"] == ["telepathy"]
    assert {"emap", "ablation", "perceptual"} <= set(err["details"]["known"])
    assert Job.objects.count() == before


def test_only_managers_start_and_read_analyses(evqa_campaign, evqa_people):
    mv = register(evqa_campaign, "easyvqa-additive")
    url = f"/api/v1/campaigns/{evqa_campaign.pk}/analyses/"
    body = {"model": mv.pk, "methods": ["emap"]}
    assert client_for(evqa_people["shown"]).post(url, body, format="json").status_code == 403
    assert client_for(evqa_people["outsider"]).post(url, body, format="json").status_code == 404
    assert client_for(evqa_people["shown"]).get(url).status_code == 403
    r = client_for(evqa_people["manager"]).post(url, body, format="json")
    assert r.status_code == 202
    job_id = r.json()["job"]["id"]
    assert Job.objects.get(pk=job_id).kind == Job.Kind.ANALYSIS
    one = f"{url}{job_id}/"
    assert client_for(evqa_people["shown"]).get(one).status_code == 403
    assert client_for(evqa_people["outsider"]).get(one).status_code == 404


def test_results_endpoints_with_pinned_queries(
    evqa_campaign, evqa_people, django_assert_num_queries
):
    mv = register(evqa_campaign, "easyvqa-additive")
    job = start(evqa_campaign, mv, evqa_people["manager"], ["emap", "perceptual"])
    analysis_run_task(job.pk)
    start(evqa_campaign, mv, evqa_people["manager"], ["emap"])  # pending: no results yet
    client = client_for(evqa_people["manager"])
    url = f"/api/v1/campaigns/{evqa_campaign.pk}/analyses/"
    # memberships (the access helper), the jobs, their results
    with django_assert_num_queries(3):
        r = client.get(url)
    assert r.status_code == 200
    listed = r.json()
    assert [len(j["results"]) for j in listed] == [0, 2]
    # The page's poll: the same three queries, each result as its id and method only.
    with django_assert_num_queries(3):
        r = client.get(f"{url}?results=methods")
    assert [[x["method"] for x in j["results"]] for j in r.json()] == [[], ["emap", "perceptual"]]
    assert set(r.json()[1]["results"][0]) == {"id", "method"}
    # memberships, the job, its results
    with django_assert_num_queries(3):
        r = client.get(f"{url}{job.pk}/")
    body = r.json()
    assert body["job"]["status"] == "succeeded"
    emap = body["results"][0]["result"]
    assert emap["variant"] == "exact factorized"
    assert emap["accuracy"]["overall"]["model"] == emap["accuracy"]["overall"]["emap"]


def test_each_stored_edit_gets_a_background_pool_emap_from_factorized_models(
    evqa_campaign, evqa_people, settings
):
    from annotation.models import CounterfactualEdit
    from models_bridge.analysis.pool import emap_pairs_against_pool, pool_for
    from models_bridge.services.registry import campaign_models_set
    from tests.models_bridge.test_edit_scores import _submit_edit

    settings.EMAP_EDIT_POOL_SIZE = 8
    add = register(evqa_campaign, "easyvqa-additive")
    mul = register(evqa_campaign, "easyvqa-multiplicative")
    campaign_models_set(campaign=evqa_campaign, model_versions=[add, mul])
    edit = _submit_edit(evqa_campaign, evqa_people["shown"])
    from models_bridge.tasks import edit_score_task

    edit_score_task(edit.pk)
    scores = CounterfactualEdit.objects.get(pk=edit.pk).scores
    for mv in (add, mul):
        entry = scores[str(mv.pk)]["emap"]
        assert entry["variant"] == "background pool M=8 (seed 0)"
        assert entry["edit"]["predicted"] == scores[str(mv.pk)]["edit"]["predicted_label"]
    # Additive: the pool EMAP of any pair is the model itself.
    assert scores[str(add.pk)]["emap"]["edit"]["interaction"] < 1e-4
    # The pool EMAP of a pool member equals the exact EMAP over the pool's own grid.
    pool = pool_for(campaign=evqa_campaign, model_version=mul, size=8)
    from annotation.models import Example

    first = Example.objects.get(pk=pool.example_ids[0]).values
    got = emap_pairs_against_pool(pool=pool, model_version=mul, inputs=[first])[0]
    grid = pool.pairs.rows(0, 8, 8)
    exact = emap_from_grid(grid)[0]
    want = float(np.linalg.norm(grid[0, 0] - exact))
    assert abs(got["interaction"] - want) < 1e-4


def test_no_pool_emap_when_turned_off(evqa_campaign, evqa_people, settings):
    from annotation.models import CounterfactualEdit
    from models_bridge.services.registry import campaign_models_set
    from models_bridge.tasks import edit_score_task
    from tests.models_bridge.test_edit_scores import _submit_edit

    settings.EMAP_EDIT_POOL_SIZE = 0
    mul = register(evqa_campaign, "easyvqa-multiplicative")
    campaign_models_set(campaign=evqa_campaign, model_versions=[mul])
    edit = _submit_edit(evqa_campaign, evqa_people["shown"])
    edit_score_task(edit.pk)
    assert "emap" not in CounterfactualEdit.objects.get(pk=edit.pk).scores[str(mul.pk)]
