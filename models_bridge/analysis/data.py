"""What an analysis runs on: a campaign's examples (in a fixed order, optionally a seeded
subsample), their model inputs per modality, gold labels, groupings, and the null inputs of
the ablation. Reads only; the same params always give the same examples in the same order,
so the workers sharing an EMAP job agree on row i."""

from __future__ import annotations

import hashlib
import io
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotation.models import Campaign, Example
from counterpoint.errors import ValidationFailed
from models_bridge.models import ModelVersion
from models_bridge.preprocess import ImageValue
from models_bridge.services.scoring import build_batch, label_plan

# Border colours are read from at most this many images: the estimate settles long before.
BACKGROUND_SAMPLE = 200


@dataclass
class AnalysisData:
    example_ids: list[int]
    modalities: tuple[str, str]
    values: dict[str, list[Any]]  # per modality the model reads, the model-input values
    gold: list[str | None]
    groups: dict[str, list[str | None]]
    kinds: dict[str, str]
    raw: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.example_ids)


def two_modalities(*, campaign: Campaign, params: dict[str, Any]) -> tuple[str, str]:
    names = [m["name"] for m in campaign.dataset.modalities]
    wanted = params.get("modalities") or names
    if len(wanted) != 2 or any(m not in names for m in wanted) or wanted[0] == wanted[1]:
        raise ValidationFailed(
            f"these analyses take two of the dataset's modalities ({', '.join(names)}); "
            f"got {wanted}",
            code="analysis_modalities",
        )
    return (str(wanted[0]), str(wanted[1]))


def analysis_data(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any]
) -> AnalysisData:
    """The campaign's examples ordered by id; `params["limit"]` keeps a seeded sample of that
    many (`params["seed"]`, default 0), `params["split"]` only one split."""
    modalities = two_modalities(campaign=campaign, params=params)
    qs = Example.objects.filter(campaign_items__campaign=campaign).order_by("id")
    if params.get("split"):
        qs = qs.filter(split=str(params["split"]))
    rows = list(qs.values("id", "values", "label", "metadata"))
    limit = params.get("limit")
    if limit is not None:
        limit = int(limit)
        if limit < 2:
            raise ValidationFailed("limit must be at least 2", code="analysis_limit")
        if limit < len(rows):
            keep = sorted(random.Random(int(params.get("seed", 0))).sample(range(len(rows)), limit))
            rows = [rows[i] for i in keep]
    if len(rows) < 2:
        raise ValidationFailed(
            "an analysis needs at least two examples in the campaign", code="analysis_too_few"
        )
    reads = list(model_version.modalities)
    batch = build_batch(model_version, [r["values"] for r in rows])
    values = {m: list(batch.column(m)) for m in reads}
    for m in modalities:
        values.setdefault(m, [None] * len(rows))
    qtypes = [(r["metadata"] or {}).get("question_type") for r in rows]
    groups: dict[str, list[str | None]] = {"label": [r["label"] for r in rows]}
    if any(q is not None for q in qtypes):
        groups["question_type"] = [None if q is None else str(q) for q in qtypes]
    kinds = {m: campaign.dataset.modality_kind(m) or "" for m in modalities}
    return AnalysisData(
        example_ids=[r["id"] for r in rows],
        modalities=modalities,
        values=values,
        gold=[r["label"] for r in rows],
        groups=groups,
        kinds=kinds,
        raw=[r["values"] for r in rows],
    )


def predicted_labels(model_version: ModelVersion, logits: np.ndarray) -> list[str]:
    """Dataset labels predicted by logits in the model's label order (through label_map)."""
    targets, mat = label_plan(model_version)
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return [targets[int(k)] for k in np.argmax(p @ mat, axis=1)]


# --- null inputs -------------------------------------------------------------------------


def _modal_border(values: list[Any]) -> tuple[tuple[int, int, int], tuple[int, int]]:
    from PIL import Image

    counts: Counter[tuple[int, int, int]] = Counter()
    size = (64, 64)
    for k, v in enumerate(values[:BACKGROUND_SAMPLE]):
        if not isinstance(v, ImageValue):
            continue
        with Image.open(io.BytesIO(v.read())) as im:
            rgb = np.asarray(im.convert("RGB"))
        if k == 0:
            size = (rgb.shape[1], rgb.shape[0])
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        counts.update((int(px[0]), int(px[1]), int(px[2])) for px in border)
    colour = counts.most_common(1)[0][0] if counts else (255, 255, 255)
    return colour, size


def null_input(*, kind: str, values: list[Any], raw: list[Any]) -> tuple[Any, dict[str, Any]]:
    """(the model-input null value, its record for the result) for one modality: a blank
    image in the dataset's background colour (the modal border colour of its images), empty
    text, or each feature's median."""
    if kind == "image":
        from PIL import Image

        colour, size = _modal_border(values)
        buf = io.BytesIO()
        Image.new("RGB", size, colour).save(buf, format="PNG")
        data = buf.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        record = {"kind": "image", "colour": list(colour), "size": list(size), "sha256": sha}
        return ImageValue(sha256=sha, data=data), record
    if kind == "tabular":
        feats = sorted({k for row in raw if isinstance(row, dict) for k in row})
        med: dict[str, Any] = {}
        for f in feats:
            nums = [row[f] for row in raw if isinstance(row.get(f), int | float)]
            med[f] = float(np.median(nums)) if nums else None
        return med, {"kind": "tabular", "medians": med}
    return "", {"kind": "text", "text": ""}
