"""The `reliance` analysis method (docs/analysis.md "The reliance report"): per campaign and
model, the human reliance answers beside what the model needed. It reads the campaign
(examples, reliance answers, edits with their stored scores), takes EMAP from the same job's
`emap` result when that covers the same examples (else computes the exact EMAP streamed
here), runs the ablation's null inputs, and leaves the arithmetic to
models_bridge/analysis/reliance.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from annotation.models import Campaign
from annotation.selectors_analysis import (
    analysis_examples,
    counterfactual_edit_rows,
    reliance_counts,
)
from models_bridge.analysis.data import analysis_data, predicted_labels
from models_bridge.analysis.emap import interaction_scores
from models_bridge.analysis.pid_method import example_ref, int_param
from models_bridge.analysis.reliance import (
    DEFAULT_TOP,
    RelianceEdit,
    RelianceExample,
    reliance_report,
)
from models_bridge.models import AnalysisResult, ModelVersion

Progress = Callable[[int, int], None]


def _stored_emap(job_id: Any, example_ids: list[int]) -> dict[str, Any] | None:
    """The same job's EMAP result, when it covers exactly these examples."""
    if job_id is None:
        return None
    row = AnalysisResult.objects.filter(job_id=int(job_id), method="emap").first()
    if row is None:
        return None
    examples = row.result.get("examples") or []
    if [e.get("example") for e in examples] != example_ids:
        return None
    return row.result


def _emap_figures(
    *,
    campaign: Campaign,
    model_version: ModelVersion,
    params: dict[str, Any],
    example_ids: list[int],
) -> tuple[list[dict[str, Any]], str]:
    stored = _stored_emap(params.get("job_id"), example_ids)
    if stored is not None:
        return list(stored["examples"]), f"{stored.get('variant')} (this job's emap result)"
    from models_bridge.analysis.methods import block_rows_of, emap_setup, emap_stream

    data, pairs = emap_setup(campaign=campaign, model_version=model_version, params=params)
    sums = emap_stream(
        pairs, n=data.n, block_rows=block_rows_of(params, data.n), progress=lambda d, t: None
    )
    pred = predicted_labels(model_version, sums.logits)
    pred_emap = predicted_labels(model_version, sums.emap)
    scores = interaction_scores(sums.logits, sums.emap)
    rows = [
        {
            "example": ex,
            "predicted": p,
            "predicted_emap": pe,
            "argmax_changed": p != pe,
            "interaction": float(s),
        }
        for ex, p, pe, s in zip(data.example_ids, pred, pred_emap, scores, strict=True)
    ]
    return rows, f"exact {pairs.variant}, streamed"


def run_reliance(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """The reliance report over the campaign's sample (`limit`, `seed`, `split`,
    `modalities` as for emap). Params: resamples (bootstrap, default 1000), top (how many
    disagreement examples, default 12)."""
    from models_bridge.analysis.methods import ablation_predictions

    resamples = int_param(params, "resamples", 1000, 0, 100000)
    seed = int_param(params, "seed", 0, 0, 2**31 - 1)
    top = int_param(params, "top", DEFAULT_TOP, 0, 500)
    data = analysis_data(campaign=campaign, model_version=model_version, params=params)
    ids = data.example_ids
    progress(0, 4)
    emap_rows, emap_variant = _emap_figures(
        campaign=campaign, model_version=model_version, params=params, example_ids=ids
    )
    progress(1, 4)
    ablation_variant, _full, nulled, nulls = ablation_predictions(
        data=data, model_version=model_version, params=params, progress=lambda d, t: None
    )
    progress(2, 4)
    answers = reliance_counts(campaign=campaign, example_ids=ids)
    examples = [
        RelianceExample(
            example=ex,
            reliance=answers.get(ex, {}),
            emap_changed=bool(row["argmax_changed"]),
            interaction=float(row["interaction"]),
            predicted=str(row["predicted"]),
            predicted_emap=str(row["predicted_emap"]),
            gold=data.gold[i],
            ablated={m: nulled[m][i] for m in data.modalities},
        )
        for i, (ex, row) in enumerate(zip(ids, emap_rows, strict=True))
    ]
    wanted = set(ids)
    edit_rows = [
        r
        for r in counterfactual_edit_rows(campaign=campaign, model_version_id=model_version.pk)
        if r["example_id"] in wanted
    ]
    edits = [
        RelianceEdit(
            edit=r["edit_id"],
            example=r["example_id"],
            modality=r["modality"],
            status=r["status"],
            pred_original=r["pred_original"],
            pred_edit=r["pred_edit"],
        )
        for r in edit_rows
    ]
    progress(3, 4)
    report = reliance_report(
        examples, edits, modalities=data.modalities, resamples=resamples, seed=seed, top=top
    )
    # What the report's readers need beside the figures: the disagreement examples' inputs
    # (thumbnails by sha256, texts) and their edits (links to the pair viewer).
    shown = [d["example"] for d in report["disagreements"]]
    refs = {r["id"]: r for r in analysis_examples(campaign=campaign, example_ids=shown)}
    kinds = {m["name"]: m["kind"] for m in campaign.dataset.modalities}
    edits_of: dict[int, list[int]] = {}
    for r in edit_rows:
        edits_of.setdefault(r["example_id"], []).append(r["edit_id"])
    for d in report["disagreements"]:
        d["inputs"] = example_ref(refs[d["example"]], kinds) if d["example"] in refs else {}
        d["edits"] = edits_of.get(d["example"], [])
    progress(4, 4)
    return {
        "method": "reliance",
        "variant": f"EMAP: {emap_variant}; ablation: {ablation_variant}; edits: stored scores",
        "model": str(model_version),
        "model_version": model_version.pk,
        "null_inputs": nulls,
        **report,
    }
