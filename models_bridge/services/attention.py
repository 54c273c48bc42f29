"""Attention maps: a cross-attention model's question-token x image-region weights for one
example (docs/analysis.md, "Attention maps"). The pair viewer draws them over the image
(frontend/static/frontend/js/attention_overlay.js); the reliance report can call
`attention_map` for its examples the same way."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from counterpoint.errors import Unavailable, ValidationFailed
from models_bridge.adapters.base import InputError, ModelError, NotFactorized
from models_bridge.models import ModelVersion

# Weights are sent to the browser rounded: six decimals is far below what a heatmap shows.
DECIMALS = 6


def model_has_attention(model_version: ModelVersion) -> bool:
    """Whether the model exports attention weights (`attention` in its registered exports)."""
    exports = (model_version.manifest or {}).get("exports") or []
    return isinstance(exports, list) and "attention" in exports


def _modality_of_kind(model_version: ModelVersion, kind: str) -> str:
    dataset = model_version.dataset
    kinds = {m: dataset.modality_kind(m) if dataset else None for m in model_version.modalities}
    names = [m for m, k in kinds.items() if k == kind]
    if len(names) != 1:
        raise ValidationFailed(
            f"{model_version} does not read exactly one {kind} modality "
            f"({', '.join(f'{m}: {k}' for m, k in kinds.items())}); attention maps need one "
            "text and one image modality",
            code="attention_modalities",
        )
    return names[0]


def _grid(model_version: ModelVersion, regions: int) -> tuple[int, int]:
    layout = (model_version.manifest or {}).get("encoding_layout") or {}
    grid = (layout.get("image") or {}).get("grid") if isinstance(layout, dict) else None
    if (
        isinstance(grid, list)
        and len(grid) == 2
        and all(isinstance(g, int) and g > 0 for g in grid)
        and grid[0] * grid[1] == regions
    ):
        return grid[0], grid[1]
    side = math.isqrt(regions)
    if side * side != regions:
        raise ValidationFailed(
            f"{model_version} attends over {regions} regions, which is not a square grid and "
            "model.json names no encoding_layout.image.grid",
            code="attention_grid",
        )
    return side, side


def attention_map(model_version: ModelVersion, values: Mapping[str, Any]) -> dict[str, Any]:
    """The model's attention of each question token over the image regions, for one example.

    `values` are one example's dataset values as stored (`Example.values` or an edit's
    `edited_values`: the text as a string, the image as its media sha256).

    Returns a JSON-serialisable dict:
    - `model` ("name@version"), `model_id`;
    - `text_modality`, `image_modality`: the dataset modality names;
    - `tokens`: the question's tokens as the model's tokenizer reads them (T of them, padding
      left out; a word outside the vocabulary is still listed: the model sees `<unk>` there);
    - `grid`: [rows, cols] of the image regions; region r covers row r // cols, column
      r % cols of the image split into equal cells (raster order);
    - `heads`: H, the number of attention heads (1 for a model that exports only the
      head-averaged `attention`);
    - `per_head`: H x T x (rows * cols) weights; each token's row sums to 1 over the regions;
    - `mean`: T x (rows * cols), `per_head` averaged over the heads;
    - `average`: rows * cols, `mean` averaged over the tokens (what a map "over all tokens"
      draws); also sums to 1.
    Raises ValidationFailed (`model_no_attention`, `attention_modalities`, an input's code)
    or Unavailable (`model_unavailable`)."""
    from models_bridge.services.loading import adapter_for
    from models_bridge.services.scoring import build_batch

    if not model_has_attention(model_version):
        raise ValidationFailed(
            f"{model_version} does not export attention weights", code="model_no_attention"
        )
    text_m = _modality_of_kind(model_version, "text")
    image_m = _modality_of_kind(model_version, "image")
    try:
        adapter = adapter_for(model_version)
        batch = build_batch(model_version, [values])
        exports = getattr(adapter, "exports", None)
        if int(getattr(adapter, "heads", 0)) and (exports is None or "attention_heads" in exports):
            weights = np.asarray(adapter.attention_heads(batch), dtype=np.float64)[0]
        else:
            weights = np.asarray(adapter.attention(batch), dtype=np.float64)[0][None]
    except InputError as exc:
        raise ValidationFailed(exc.message, code=exc.code) from None
    except NotFactorized as exc:
        raise ValidationFailed(str(exc), code="model_no_attention") from None
    except ModelError as exc:
        raise Unavailable(f"{model_version} failed: {exc}", code="model_unavailable") from None
    if weights.ndim != 3 or not np.isfinite(weights).all():
        raise Unavailable(
            f"{model_version} returned attention of shape {weights.shape}; expected "
            "(heads, tokens, regions) per example",
            code="model_unavailable",
        )
    pre = getattr(adapter, "preprocessors", {}).get(text_m)
    text = str(values.get(text_m) or "")
    tokens = pre.tokens(text) if pre is not None and hasattr(pre, "tokens") else text.split()
    tokens = tokens[: weights.shape[1]]
    per_head = weights[:, : len(tokens), :]
    mean = per_head.mean(axis=0)
    average = mean.mean(axis=0) if len(tokens) else np.zeros(weights.shape[2])
    rows, cols = _grid(model_version, weights.shape[2])
    return {
        "model": str(model_version),
        "model_id": model_version.pk,
        "text_modality": text_m,
        "image_modality": image_m,
        "tokens": tokens,
        "grid": [rows, cols],
        "heads": int(per_head.shape[0]),
        "per_head": np.round(per_head, DECIMALS).tolist(),
        "mean": np.round(mean, DECIMALS).tolist(),
        "average": np.round(average, DECIMALS).tolist(),
    }


# --- campaign-scoped lookups (the API's; the caller has passed annotation.access) ----------


def campaign_attention_model(*, campaign: Any, model_id: Any) -> ModelVersion:
    """One of the campaign's models by id (`?model=`): a named 400 when missing or not a
    number, 404 when it is not one of the campaign's."""
    from counterpoint.errors import NotFound
    from counterpoint.parsers import parse_pk

    if model_id in (None, ""):
        raise ValidationFailed("name a model: ?model=<model id>", code="attention_model_missing")
    pk = parse_pk(model_id)
    mv = (
        ModelVersion.objects.select_related("dataset").filter(campaigns=campaign, pk=pk).first()
        if pk is not None
        else None
    )
    if mv is None:
        raise NotFound(f"model {model_id} is not one of this campaign's", code="model_not_found")
    return mv


def edit_attention(*, campaign: Any, edit_id: Any, model_id: Any) -> dict[str, Any]:
    """attention_map of both sides of one of the campaign's edits:
    {"edit": id, "modality": the edited modality, "original": map, "edited": map}."""
    from annotation.models import CounterfactualEdit
    from counterpoint.errors import NotFound
    from counterpoint.parsers import parse_pk

    mv = campaign_attention_model(campaign=campaign, model_id=model_id)
    pk = parse_pk(edit_id)
    edit = (
        CounterfactualEdit.objects.filter(campaign=campaign, pk=pk)
        .select_related("example")
        .only("id", "modality", "edited_values", "example__values")
        .first()
        if pk is not None
        else None
    )
    if edit is None:
        raise NotFound(f"edit {edit_id} is not one of this campaign's")
    return {
        "edit": edit.pk,
        "modality": edit.modality,
        "original": attention_map(mv, edit.example.values),
        "edited": attention_map(mv, edit.edited_values),
    }


def example_attention(*, campaign: Any, example_id: Any, model_id: Any) -> dict[str, Any]:
    """attention_map of one of the campaign's examples, plus {"example": id}."""
    from annotation.models import Example
    from counterpoint.errors import NotFound
    from counterpoint.parsers import parse_pk

    mv = campaign_attention_model(campaign=campaign, model_id=model_id)
    pk = parse_pk(example_id)
    example = (
        Example.objects.filter(campaign_items__campaign=campaign, pk=pk)
        .only("id", "values")
        .first()
        if pk is not None
        else None
    )
    if example is None:
        raise NotFound(f"example {example_id} is not one of this campaign's")
    return {"example": example.pk, **attention_map(mv, example.values)}
