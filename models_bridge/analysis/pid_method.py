"""The `pid`, `counterfactual` and `clusters` analysis methods (docs/analysis_pid.md), each
with the registry's signature run(*, campaign, model_version, params, progress) -> dict.

The arithmetic lives in the pure modules (pid, counterfactual, clusters); these read the
campaign through selectors and, for PID, run the model's factorized interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from annotation.models import Campaign
from annotation.selectors_analysis import (
    analysis_examples,
    counterfactual_edit_rows,
    reliance_counts,
)
from counterpoint.errors import Unavailable, ValidationFailed
from models_bridge.adapters.base import InputError, ModelError
from models_bridge.analysis.clusters import ClusterInputError, interaction_clusters, kmeans_codes
from models_bridge.analysis.counterfactual import EditRow, counterfactual_metrics
from models_bridge.analysis.pid import PIDError, joint_from_codes, pid_from_joint
from models_bridge.models import ModelVersion

Progress = Callable[[int, int], None]

PID_DEFAULTS = {"k": 8, "max_examples": 2000, "seed": 0, "batch_size": 256}
# Bounds on the caller's params: a k or N past these is a typo, not an analysis.
MAX_K = 64
MAX_EXAMPLES = 20000


def int_param(params: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationFailed(
            f"param {name!r} must be an integer in [{lo}, {hi}], got {value!r}",
            code="analysis_param_invalid",
        )
    return value


def _encode_all(
    model_version: ModelVersion,
    rows: Sequence[Mapping[str, Any]],
    *,
    batch_size: int,
    progress: Progress,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Each modality's encodings (flattened per example) and the model's predicted label,
    from one encode per modality and one fusion call per batch."""
    from models_bridge.services.loading import adapter_for
    from models_bridge.services.scoring import build_batch, summarise

    try:
        adapter = adapter_for(model_version)
    except ModelError as exc:
        raise Unavailable(str(exc), code="model_unavailable") from None
    modalities = list(model_version.modalities)
    encodings: dict[str, list[np.ndarray]] = {m: [] for m in modalities}
    predictions: list[str] = []
    total = len(rows)
    for start in range(0, total, batch_size):
        chunk = [r["values"] for r in rows[start : start + batch_size]]
        try:
            batch = build_batch(model_version, chunk)
            encoded = {m: adapter.encode(m, list(batch.column(m))) for m in modalities}
            logits = np.asarray(adapter.fuse(encoded), dtype=np.float64)
        except InputError as exc:
            raise ValidationFailed(f"{model_version}: {exc.message}", code=exc.code) from None
        except ModelError as exc:
            raise Unavailable(f"{model_version} failed: {exc}", code="model_unavailable") from None
        for m in modalities:
            arr = np.asarray(encoded[m], dtype=np.float64)
            encodings[m].append(arr.reshape(len(chunk), -1))
        predictions.extend(label for _, label in summarise(model_version, logits))
        progress(min(start + batch_size, total), total)
    return {m: np.concatenate(v) for m, v in encodings.items()}, predictions


def _pid_or_error(x1: np.ndarray, x2: np.ndarray, y: Sequence[int], sizes: tuple[int, int, int]):  # type: ignore[no-untyped-def]
    try:
        return pid_from_joint(joint_from_codes(x1, x2, y, sizes=sizes))
    except PIDError as exc:
        raise ValidationFailed(str(exc), code=exc.code) from None


def run_pid(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """PID of P(x1, x2, y) with x1, x2 the k-means clusters of the model's encodings of its two
    modalities and y the gold label (`labels`: the data's interactions, as this model's
    encoders see the inputs) or the model's prediction (`predictions`: the model's).

    Params: k (clusters per modality, default 8), max_examples (seeded sample of the pool,
    default 2000), seed (sampling and k-means), batch_size, only_labels (restrict the pool
    to examples with these gold labels, e.g. the yes/no questions). Needs the factorized interface:
    a black-box model has no encodings to cluster, and clustering raw pixels would measure
    the image format rather than what the model reads (named error `pid_needs_factorized`)."""
    k = int_param(params, "k", PID_DEFAULTS["k"], 1, MAX_K)
    limit = int_param(params, "max_examples", PID_DEFAULTS["max_examples"], 2, MAX_EXAMPLES)
    seed = int_param(params, "seed", PID_DEFAULTS["seed"], 0, 2**31 - 1)
    batch_size = int_param(params, "batch_size", PID_DEFAULTS["batch_size"], 1, 4096)
    if not model_version.factorized:
        raise ValidationFailed(
            f"{model_version} does not expose the factorized interface (encode/fuse): PID "
            "clusters each modality's encodings",
            code="pid_needs_factorized",
        )
    modalities = list(model_version.modalities)
    if len(modalities) != 2:
        raise ValidationFailed(
            f"PID decomposes two modalities; {model_version} reads {len(modalities)}",
            code="pid_needs_two_modalities",
        )
    only = params.get("only_labels")
    if only is not None and (
        not isinstance(only, list) or not only or not all(isinstance(x, str) for x in only)
    ):
        raise ValidationFailed(
            "param 'only_labels' must be a non-empty list of labels", code="analysis_param_invalid"
        )
    rows = analysis_examples(campaign=campaign, limit=limit, seed=seed, labels=only)
    if len(rows) < 2:
        raise ValidationFailed("PID needs at least 2 examples", code="analysis_too_few_examples")
    encodings, predictions = _encode_all(
        model_version, rows, batch_size=batch_size, progress=progress
    )
    x1 = kmeans_codes(encodings[modalities[0]], k=k, seed=seed)
    x2 = kmeans_codes(encodings[modalities[1]], k=k, seed=seed)
    label_space = list(campaign.dataset.label_space)
    index = {label: i for i, label in enumerate(label_space)}
    sizes = (int(x1.max()) + 1, int(x2.max()) + 1, len(label_space))

    gold = [i for i, r in enumerate(rows) if r["label"] in index]
    result: dict[str, Any] = {
        "method": "pid",
        "variant": "bertschinger-2014 convex program (cvxpy, Clarabel) on k-means of factorized encodings",
        "modalities": {"x1": modalities[0], "x2": modalities[1]},
        "examples": len(rows),
        "only_labels": only,
        "seed": seed,
        "k_requested": k,
        "k": {modalities[0]: sizes[0], modalities[1]: sizes[1]},
        "labels": None,
        "labels_examples": len(gold),
        "predictions": _pid_or_error(x1, x2, [index[p] for p in predictions], sizes),
        "units": "bits",
    }
    if gold:
        result["labels"] = _pid_or_error(
            x1[gold], x2[gold], [index[rows[i]["label"]] for i in gold], sizes
        )
    return result


def run_counterfactual(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Counterfactual metrics of the campaign's edits against `model_version`, overall, per
    modality edited and per annotator (definitions in models_bridge/analysis/counterfactual.py).
    Params: resamples (bootstrap, default 1000), seed (default 0)."""
    resamples = int_param(params, "resamples", 1000, 0, 100000)
    seed = int_param(params, "seed", 0, 0, 2**31 - 1)
    rows = [
        EditRow(**r)
        for r in counterfactual_edit_rows(campaign=campaign, model_version_id=model_version.pk)
    ]
    progress(0, 1)
    out = counterfactual_metrics(rows, resamples=resamples, seed=seed)
    progress(1, 1)
    return {
        "method": "counterfactual",
        "variant": "stored edit scores (CounterfactualEdit.scores), percentile bootstrap over edits",
        "model_version": model_version.pk,
        **out,
    }


def run_clusters(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Interaction clusters of precomputed per-example vectors f(x) - EMAP f(x).

    Params: vectors ({example id: [C floats]}; when absent, the exact EMAP is computed here
    over the campaign's sample: `limit`, `seed`, `split`),
    k_min / k_max (silhouette range, default 2..8), seed, variant (which EMAP the vectors
    came from, echoed in the result). Each cluster lists its examples (id, external id,
    text values, image sha256 for thumbnails) and the reliance answers given on them."""
    vectors = params.get("vectors")
    if vectors is None:
        # No vectors given: compute them, the exact EMAP streamed over the campaign's sample
        # (`limit`, `seed`, `split` as for emap), and say which EMAP they came from.
        from models_bridge.analysis.methods import block_rows_of, emap_setup, emap_stream

        data, pairs = emap_setup(campaign=campaign, model_version=model_version, params=params)
        sums = emap_stream(
            pairs, n=data.n, block_rows=block_rows_of(params, data.n), progress=lambda d, t: None
        )
        diff = sums.logits - sums.emap
        vectors = {
            ex: [float(x) for x in row] for ex, row in zip(data.example_ids, diff, strict=True)
        }
        params = {**params, "variant": f"exact {pairs.variant} EMAP over {data.n} examples"}
    if not isinstance(vectors, Mapping) or not vectors:
        raise ValidationFailed(
            "clusters needs params.vectors ({example id: f(x) - EMAP f(x)}) or none at all "
            "(then it computes the exact EMAP itself)",
            code="clusters_vectors_missing",
        )
    k_min = int_param(params, "k_min", 2, 2, MAX_K)
    k_max = int_param(params, "k_max", 8, k_min, MAX_K)
    seed = int_param(params, "seed", 0, 0, 2**31 - 1)
    try:
        ids = sorted(int(pk) for pk in vectors)
        matrix = np.asarray([vectors[pk] if pk in vectors else vectors[str(pk)] for pk in ids])
    except (TypeError, ValueError, KeyError):
        raise ValidationFailed(
            "params.vectors must map example ids to equal-length lists of numbers",
            code="clusters_input_invalid",
        ) from None
    progress(0, 1)
    try:
        found = interaction_clusters(matrix, k_range=range(k_min, k_max + 1), seed=seed)
    except (ClusterInputError, ValueError) as exc:
        raise ValidationFailed(str(exc), code="clusters_input_invalid") from None
    examples = {r["id"]: r for r in analysis_examples(campaign=campaign, example_ids=ids)}
    unknown = [pk for pk in ids if pk not in examples]
    if unknown:
        raise ValidationFailed(
            f"params.vectors names examples outside the campaign: {unknown[:5]}",
            code="clusters_input_invalid",
        )
    reliance = reliance_counts(campaign=campaign, example_ids=ids)
    kinds = {m["name"]: m["kind"] for m in campaign.dataset.modalities}
    clusters = []
    for c, members in enumerate(found["members"]):
        member_ids = [ids[i] for i in members]
        counts: dict[str, int] = {}
        for pk in member_ids:
            for category, n in reliance.get(pk, {}).items():
                counts[category] = counts.get(category, 0) + n
        norms = np.linalg.norm(matrix[members], axis=1)
        clusters.append(
            {
                "cluster": c,
                "size": len(members),
                "mean_interaction_norm": float(norms.mean()),
                "reliance": dict(sorted(counts.items())),
                "examples": [example_ref(examples[pk], kinds) for pk in member_ids],
            }
        )
    progress(1, 1)
    return {
        "method": "clusters",
        "variant": str(params.get("variant") or "precomputed interaction vectors"),
        "model_version": model_version.pk,
        "chosen_k": found["chosen_k"],
        "silhouette": found["silhouette"],
        "seed": seed,
        "clusters": clusters,
    }


def example_ref(row: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, Any]:
    ref: dict[str, Any] = {
        "id": row["id"],
        "external_id": row["external_id"],
        "label": row["label"],
    }
    for name, value in (row["values"] or {}).items():
        kind = kinds.get(name)
        if kind == "image":
            ref[f"{name}_sha256"] = value
        elif kind == "text":
            ref[name] = value
    return ref
