"""The EMAP, ablation and perceptual-score methods of the analysis registry
(models_bridge/analysis/registry.py; definitions in docs/analysis.md). Each takes the
method contract's keyword arguments and returns a JSON-serialisable result that names the
variant it used. Inside an analysis job the runner adds `params["job_id"]`, and EMAP then
runs its row blocks through the block table so several workers share the grid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from annotation.models import Campaign
from counterpoint.errors import Unavailable, ValidationFailed
from models_bridge.adapters.base import Adapter, ModelError
from models_bridge.analysis.data import AnalysisData, analysis_data, null_input, predicted_labels
from models_bridge.analysis.emap import (
    BlockAccumulator,
    BlockPartial,
    EmapSums,
    accuracy_table,
    combine,
    interaction_scores,
    row_blocks,
)
from models_bridge.analysis.pairs import Pairs, make_pairs
from models_bridge.models import ModelVersion

Progress = Callable[[int, int], None]
PATHS = ("auto", "factorized", "black-box")
DEFAULT_BLOCK_ROWS = 250
DEFAULT_PERMUTATIONS = 5


def _adapter(model_version: ModelVersion) -> Adapter:
    from models_bridge.services.loading import adapter_for

    try:
        return adapter_for(model_version)
    except ModelError as exc:
        raise Unavailable(str(exc), code="model_unavailable") from None


def _path(params: dict[str, Any], adapter: Adapter) -> str:
    path = str(params.get("path", "auto"))
    if path not in PATHS:
        raise ValidationFailed(
            f"path must be one of {', '.join(PATHS)}, not {path!r}", code="analysis_path"
        )
    if path == "factorized" and not adapter.factorized:
        raise ValidationFailed(
            "this model does not expose the factorized interface (encode/fuse); "
            "use path auto or black-box",
            code="analysis_not_factorized",
        )
    return path


def emap_setup(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any]
) -> tuple[AnalysisData, Pairs]:
    data = analysis_data(campaign=campaign, model_version=model_version, params=params)
    adapter = _adapter(model_version)
    pairs = make_pairs(adapter, data.modalities, data.values, path=_path(params, adapter))
    return data, pairs


def block_rows_of(params: dict[str, Any], n: int) -> int:
    return max(1, min(n, int(params.get("block_rows") or DEFAULT_BLOCK_ROWS)))


def compute_block(pairs: Pairs, *, start: int, stop: int, n: int) -> BlockPartial:
    """Grid rows start..stop-1 against every column, a chunk of rows at a time."""
    step = pairs.rows_per_chunk(n)
    acc: BlockAccumulator | None = None
    for s in range(start, stop, step):
        e = min(stop, s + step)
        chunk = pairs.rows(s, e, n)
        if acc is None:
            acc = BlockAccumulator(start=start, stop=stop, n=n, c=chunk.shape[2])
        acc.add(s, chunk)
    assert acc is not None
    return acc.partial()


def emap_stream(pairs: Pairs, *, n: int, block_rows: int, progress: Progress) -> EmapSums:
    """The exact EMAP block by block in this process (the streamed path)."""
    blocks = row_blocks(n, block_rows)
    partials = []
    for k, (start, stop) in enumerate(blocks):
        partials.append(compute_block(pairs, start=start, stop=stop, n=n))
        progress(k + 1, len(blocks))
    return combine(partials, n=n)


def emap_report(
    *,
    model_version: ModelVersion,
    data: AnalysisData,
    sums: EmapSums,
    variant: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    pred = predicted_labels(model_version, sums.logits)
    pred_emap = predicted_labels(model_version, sums.emap)
    scores = interaction_scores(sums.logits, sums.emap)
    changed = [a != b for a, b in zip(pred, pred_emap, strict=True)]
    return {
        "method": "emap",
        "variant": variant,
        "model": str(model_version),
        "n": data.n,
        "modalities": list(data.modalities),
        "accuracy": accuracy_table(
            gold=data.gold, predicted=pred, predicted_emap=pred_emap, groups=data.groups
        ),
        "argmax_changed_fraction": float(np.mean(changed)),
        "interaction_score": {
            "mean": float(scores.mean()),
            "median": float(np.median(scores)),
            "max": float(scores.max()),
        },
        "examples": [
            {
                "example": ex,
                "predicted": p,
                "predicted_emap": pe,
                "argmax_changed": c,
                "interaction": float(s),
            }
            for ex, p, pe, c, s in zip(
                data.example_ids, pred, pred_emap, changed, scores, strict=True
            )
        ],
        **(extra or {}),
    }


def emap_run(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Exact dataset-level EMAP (factorized when the adapter has it, else black-box; `path`
    forces one). In a job, row blocks go through the block table (shared by workers,
    resumable); outside one, they are streamed here."""
    data, pairs = emap_setup(campaign=campaign, model_version=model_version, params=params)
    n = data.n
    block_rows = block_rows_of(params, n)
    job_id = params.get("job_id")
    if job_id is not None:
        from models_bridge.services.analysis import emap_blocks_coordinate

        sums, how = emap_blocks_coordinate(
            job_id=int(job_id), pairs=pairs, n=n, block_rows=block_rows, progress=progress
        )
    else:
        sums, how = emap_stream(pairs, n=n, block_rows=block_rows, progress=progress), "streamed"
    return emap_report(
        model_version=model_version,
        data=data,
        sums=sums,
        variant=f"exact {pairs.variant}",
        extra={"blocks": len(row_blocks(n, block_rows)), "block_rows": block_rows, "run": how},
    )


def _acc(pred: list[str], gold: list[str | None]) -> float | None:
    idx = [i for i, g in enumerate(gold) if g is not None]
    return sum(1 for i in idx if pred[i] == gold[i]) / len(idx) if idx else None


def ablation_predictions(
    *, data: AnalysisData, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> tuple[str, list[str], dict[str, list[str]], dict[str, dict[str, Any]]]:
    """(variant, predictions on the intact inputs, per modality the predictions with it
    replaced by its recorded null input, per modality that null input's record)."""
    adapter = _adapter(model_version)
    n = data.n
    a = data.modalities[0]
    nulls: dict[str, dict[str, Any]] = {}
    values = {m: list(v) for m, v in data.values.items()}
    for m in data.modalities:
        value, record = null_input(
            kind=data.kinds[m], values=values[m], raw=[r.get(m) for r in data.raw]
        )
        values[m].append(value)  # index n: the null input
        nulls[m] = record
    pairs = make_pairs(adapter, data.modalities, values, path=_path(params, adapter))
    idx = np.arange(n)
    full = predicted_labels(model_version, pairs.pairs(idx, idx))
    progress(1, 3)
    nulled: dict[str, list[str]] = {}
    for k, m in enumerate(data.modalities):
        null_idx = np.full(n, n)
        ia, ib = (null_idx, idx) if m == a else (idx, null_idx)
        nulled[m] = predicted_labels(model_version, pairs.pairs(ia, ib))
        progress(k + 2, 3)
    return pairs.variant, full, nulled, nulls


def ablation_run(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Accuracy with each modality in turn replaced by a recorded null input."""
    data = analysis_data(campaign=campaign, model_version=model_version, params=params)
    variant, full, nulled, nulls = ablation_predictions(
        data=data, model_version=model_version, params=params, progress=progress
    )
    base = _acc(full, data.gold)
    out: dict[str, Any] = {
        "method": "ablation",
        "variant": variant,
        "model": str(model_version),
        "n": data.n,
        "accuracy": base,
        "modalities": {},
    }
    for m in data.modalities:
        pred = nulled[m]
        acc = _acc(pred, data.gold)
        out["modalities"][m] = {
            "null_input": nulls[m],
            "accuracy": acc,
            "delta": None if acc is None or base is None else base - acc,
            "prediction_changed_fraction": float(
                np.mean([p != q for p, q in zip(pred, full, strict=True)])
            ),
            "by_group": accuracy_table(
                gold=data.gold, predicted=full, predicted_emap=pred, groups=data.groups
            ),
        }
    out["note"] = "by_group: 'model' = intact inputs, 'emap' = this modality nulled"
    return out


def perceptual_run(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Accuracy drop when one modality is permuted across examples, over `permutations`
    seeded permutations (`seed`), mean and spread."""
    data = analysis_data(campaign=campaign, model_version=model_version, params=params)
    adapter = _adapter(model_version)
    n = data.n
    count = int(params.get("permutations", DEFAULT_PERMUTATIONS))
    if count < 1:
        raise ValidationFailed("permutations must be at least 1", code="analysis_permutations")
    seed = int(params.get("seed", 0))
    a, _b = data.modalities
    pairs = make_pairs(adapter, data.modalities, data.values, path=_path(params, adapter))
    idx = np.arange(n)
    base = _acc(predicted_labels(model_version, pairs.pairs(idx, idx)), data.gold)
    out: dict[str, Any] = {
        "method": "perceptual",
        "variant": f"{pairs.variant}, {count} permutations, seed {seed}",
        "model": str(model_version),
        "n": n,
        "accuracy": base,
        "modalities": {},
    }
    total = 2 * count
    step = 0
    for k, m in enumerate(data.modalities):
        drops = []
        for p in range(count):
            perm = np.random.default_rng([seed, k, p]).permutation(n)
            ia, ib = (perm, idx) if m == a else (idx, perm)
            acc = _acc(predicted_labels(model_version, pairs.pairs(ia, ib)), data.gold)
            drops.append(None if acc is None or base is None else base - acc)
            step += 1
            progress(step, total)
        vals = [d for d in drops if d is not None]
        out["modalities"][m] = {
            "drops": drops,
            "mean": float(np.mean(vals)) if vals else None,
            "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
        }
    return out
