"""Cached, batched scoring: score(model_version, inputs) → logits, probabilities,
predicted label per input (docs/models.md).

Cache: a Score row per (model version, input hash), unique in the database. The input
hash is annotation.schema.content_hash over only the modalities the model reads, so an
image edit never invalidates a text-only model's score, and since image values are media
SHA-256s it is a hash of the bytes. Rows are written with ignore_conflicts: two workers
scoring the same input at once both succeed and one row survives.

Probabilities are over the dataset's labels (the model's softmax carried through its
label_map; several model labels on one dataset label add up); logits stay in the model's
own label order for the analyses."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotation.models import Media
from annotation.schema import content_hash
from annotation.services.media import media_path
from counterpoint.errors import Unavailable, ValidationFailed
from models_bridge.adapters.base import Adapter, Batch, ModelError
from models_bridge.models import ModelVersion, Score
from models_bridge.preprocess import ImageValue, InputError, softmax
from models_bridge.services.loading import adapter_for

LOOKUP_CHUNK = 500
DEFAULT_BATCH = 256


@dataclass(frozen=True)
class ScoreResult:
    input_hash: str
    logits: list[float]
    probabilities: dict[str, float]
    predicted_label: str
    latency_ms: float
    cached: bool

    def summary(self) -> dict[str, Any]:
        return {"probabilities": self.probabilities, "predicted_label": self.predicted_label}


def input_hash(modalities: Sequence[str], values: Mapping[str, Any]) -> str:
    try:
        return content_hash({m: values[m] for m in modalities})
    except KeyError as exc:
        raise ValidationFailed(
            f"the input lacks modality {exc.args[0]!r}", code="modality_missing"
        ) from None


# --- label mapping ----------------------------------------------------------------------
_label_plans: dict[tuple[int, str], tuple[list[str], np.ndarray]] = {}


def label_plan(mv: ModelVersion) -> tuple[list[str], np.ndarray]:
    """(dataset labels in first-appearance order, (C, T) 0/1 matrix model → dataset)."""
    key = (mv.pk, mv.package_sha256)
    plan = _label_plans.get(key)
    if plan is None:
        targets: list[str] = []
        for label in mv.labels:
            t = mv.label_map.get(label, label)
            if t not in targets:
                targets.append(t)
        mat = np.zeros((len(mv.labels), len(targets)), dtype=np.float64)
        for i, label in enumerate(mv.labels):
            mat[i, targets.index(mv.label_map.get(label, label))] = 1.0
        plan = _label_plans[key] = (targets, mat)
    return plan


def summarise(mv: ModelVersion, logits: np.ndarray) -> list[tuple[dict[str, float], str]]:
    targets, mat = label_plan(mv)
    probs = softmax(logits) @ mat
    out = []
    for row in probs:
        out.append(
            ({t: float(p) for t, p in zip(targets, row, strict=True)}, targets[int(np.argmax(row))])
        )
    return out


# --- inputs -----------------------------------------------------------------------------
_paths: dict[tuple[str, str], str] = {}
PATH_CACHE_SIZE = 50_000


def image_paths(shas: Iterable[str]) -> dict[str, str]:
    """Media file paths by content hash. Media is content-addressed and never rewritten,
    so a path once found stays right: the live path asks for the same original image on
    every draft and should not pay a query for it."""
    from django.conf import settings

    root = str(settings.MEDIA_ROOT)  # part of the key: tests switch MEDIA_ROOT
    wanted = sorted(set(shas))
    out = {sha: _paths[(root, sha)] for sha in wanted if (root, sha) in _paths}
    missing = [sha for sha in wanted if sha not in out]
    for i in range(0, len(missing), LOOKUP_CHUNK):
        for media in Media.objects.filter(sha256__in=missing[i : i + LOOKUP_CHUNK]).only(
            "sha256", "file"
        ):
            out[media.sha256] = str(media_path(media))
    if len(_paths) > PATH_CACHE_SIZE:
        _paths.clear()
    _paths.update(((root, sha), path) for sha, path in out.items())
    return out


def image_modalities(mv: ModelVersion) -> list[str]:
    prep = mv.manifest.get("preprocessing", {}) if isinstance(mv.manifest, dict) else {}
    kinds = mv.manifest.get("modality_kinds", {}) if isinstance(mv.manifest, dict) else {}
    out = []
    for m in mv.modalities:
        kind = (prep.get(m) or {}).get("kind") or kinds.get(m)
        if kind == "image":
            out.append(m)
    if not out and mv.dataset_id is not None:
        ds = mv.dataset
        out = [m for m in mv.modalities if ds is not None and ds.modality_kind(m) == "image"]
    return out


def build_batch(
    mv: ModelVersion,
    rows: Sequence[Mapping[str, Any]],
    *,
    paths: Mapping[str, str] | None = None,
    image_bytes: Mapping[str, bytes] | None = None,
) -> Batch:
    """Rows of dataset values → a Batch of model inputs; image hashes become ImageValues
    read lazily from media storage (or from `image_bytes` when the caller has them)."""
    images = set(image_modalities(mv))
    cols: dict[str, list[Any]] = {m: [] for m in mv.modalities}
    need = [
        row[m]
        for row in rows
        for m in images
        if m in row and not (image_bytes and row[m] in image_bytes)
    ]
    if paths is None:
        paths = image_paths(need) if need else {}
    for row in rows:
        for m in mv.modalities:
            if m not in row:
                raise InputError(f"the input lacks modality {m!r}", code="modality_missing")
            v = row[m]
            if m in images:
                if image_bytes and v in image_bytes:
                    v = ImageValue(sha256=v, data=image_bytes[v])
                elif v in paths:
                    v = ImageValue(sha256=v, path=paths[v])
                else:
                    raise InputError(
                        f"image {str(v)[:12]} is not in media storage", code="image_missing"
                    )
            cols[m].append(v)
    return Batch(cols)


def cached_scores(pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], ScoreResult]:
    """One query per LOOKUP_CHUNK hashes for many (model version id, input hash) pairs."""
    pairs = set(pairs)
    mv_ids = sorted({p[0] for p in pairs})
    hashes = sorted({p[1] for p in pairs})
    out: dict[tuple[int, str], ScoreResult] = {}
    for i in range(0, len(hashes), LOOKUP_CHUNK):
        rows = Score.objects.filter(
            model_version_id__in=mv_ids, input_hash__in=hashes[i : i + LOOKUP_CHUNK]
        ).values_list(
            "model_version_id",
            "input_hash",
            "logits",
            "probabilities",
            "predicted_label",
            "latency_ms",
        )
        for mv_id, h, logits, probs, pred, lat in rows:
            if (mv_id, h) in pairs:
                out[(mv_id, h)] = ScoreResult(h, logits, probs, pred, lat, True)
    return out


def compute(
    mv: ModelVersion, adapter: Adapter, prepared: Any, hashes: Sequence[str]
) -> list[ScoreResult]:
    """Run prepared inputs through the model; raises ModelError."""
    started = time.perf_counter()
    logits = adapter.run(prepared)
    per_item = (time.perf_counter() - started) * 1000 / max(1, len(hashes))
    return [
        ScoreResult(h, [float(x) for x in row], probs, pred, per_item, False)
        for h, row, (probs, pred) in zip(hashes, logits, summarise(mv, logits), strict=True)
    ]


def store(mv_results: Iterable[tuple[int, ScoreResult]]) -> None:
    rows = [
        Score(
            model_version_id=mv_id,
            input_hash=r.input_hash,
            logits=r.logits,
            probabilities=r.probabilities,
            predicted_label=r.predicted_label,
            latency_ms=r.latency_ms,
        )
        for mv_id, r in mv_results
        if not r.cached
    ]
    if rows:
        Score.objects.bulk_create(rows, ignore_conflicts=True, batch_size=LOOKUP_CHUNK)


@dataclass
class ScoreStats:
    inputs: int = 0
    cached: int = 0
    computed: int = 0
    model_calls: int = 0
    forward_s: float = 0.0


def score(
    *,
    model_version: ModelVersion,
    inputs: Sequence[Mapping[str, Any]],
    batch_size: int = DEFAULT_BATCH,
    stats: ScoreStats | None = None,
) -> list[ScoreResult]:
    """Score dataset-form values (text strings, image media hashes, tabular objects) with
    one model, reading the cache first and writing what it computed. Raises
    ValidationFailed for an input the model cannot take and Unavailable when the model
    fails; either way nothing half-done is left but the scores already stored."""
    stats = stats if stats is not None else ScoreStats()
    mv = model_version
    hashes = [input_hash(mv.modalities, values) for values in inputs]
    stats.inputs += len(hashes)
    found = cached_scores((mv.pk, h) for h in hashes)
    results: dict[str, ScoreResult] = {h: r for (_, h), r in found.items()}
    stats.cached += sum(1 for h in hashes if h in results)
    todo: dict[str, Mapping[str, Any]] = {}
    for h, values in zip(hashes, inputs, strict=True):
        if h not in results and h not in todo:
            todo[h] = values
    if todo:
        try:
            adapter = adapter_for(mv)
        except ModelError as exc:
            raise Unavailable(str(exc), code="model_unavailable") from None
        items = list(todo.items())
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            chunk_hashes = [h for h, _ in chunk]
            try:
                prepared = adapter.prepare(build_batch(mv, [v for _, v in chunk]))
            except InputError as exc:
                raise ValidationFailed(f"{mv}: {exc.message}", code=exc.code) from None
            started = time.perf_counter()
            try:
                new = compute(mv, adapter, prepared, chunk_hashes)
            except ModelError as exc:
                raise Unavailable(f"{mv} failed: {exc}", code="model_unavailable") from None
            stats.forward_s += time.perf_counter() - started
            stats.model_calls += 1
            stats.computed += len(new)
            store((mv.pk, r) for r in new)
            results.update((r.input_hash, r) for r in new)
    return [results[h] for h in hashes]
