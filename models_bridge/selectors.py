"""Reads of stored model scores for managers: per example of a campaign's pool and per
campaign model, the prediction, the probabilities over the dataset's labels and whether it
matches the gold label.

Scores are keyed by (model version, input hash) and a model's input hash covers only the
modalities it reads, so the join to examples happens here, not in SQL: the pool's values are
read once (one query), the hashes computed, and the Score rows fetched for the page only, or
for the whole pool when a filter needs them (correct, predicted, scored)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from annotation.models import Campaign, Example
from counterpoint.errors import ValidationFailed
from models_bridge.models import ModelVersion
from models_bridge.services.scoring import ScoreResult, cached_scores, input_hash

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class _Pair:
    example_id: int
    external_id: str
    split: str
    gold: str | None
    model: ModelVersion
    input_hash: str


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    value = _BOOLS.get(str(raw).lower())
    if value is None:
        raise ValidationFailed(f"{name} must be true or false, not {raw!r}", code="scores_filter")
    return value


def _row(pair: _Pair, found: ScoreResult | None) -> dict[str, Any]:
    predicted = found.predicted_label if found is not None else None
    return {
        "example": pair.example_id,
        "example_external_id": pair.external_id,
        "split": pair.split,
        "gold_label": pair.gold,
        "model": pair.model.pk,
        "model_name": str(pair.model),
        "scored": found is not None,
        "predicted_label": predicted,
        "probabilities": found.probabilities if found is not None else None,
        "correct": None if predicted is None or pair.gold is None else predicted == pair.gold,
    }


class _ScoreRows(Sequence[dict[str, Any]]):
    """The (example, model) rows in order; a slice (one page) fetches only its scores."""

    def __init__(self, pairs: list[_Pair]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return _rows(self.pairs[index])
        return _rows([self.pairs[index]])[0]


def _rows(pairs: list[_Pair]) -> list[dict[str, Any]]:
    found = cached_scores((p.model.pk, p.input_hash) for p in pairs)
    return [_row(p, found.get((p.model.pk, p.input_hash))) for p in pairs]


def campaign_example_scores(
    *, campaign: Campaign, params: Mapping[str, str]
) -> Sequence[dict[str, Any]]:
    """Rows ordered by example id, then model id. Filters: model (id), split, label (gold),
    predicted (label), correct (true/false: scored and right / scored and wrong), scored
    (true/false). Raises ValidationFailed (`scores_filter`) for a malformed filter."""
    models = campaign.model_versions.filter(is_active=True).order_by("id")
    if model := params.get("model"):
        if not str(model).isdigit() or len(str(model)) > 18:
            raise ValidationFailed(f"model must be a model id, not {model!r}", code="scores_filter")
        models = models.filter(pk=int(model))
    mvs = list(models)
    examples = Example.objects.filter(campaign_items__campaign=campaign).order_by("id")
    if split := params.get("split"):
        examples = examples.filter(split=split)
    if label := params.get("label"):
        examples = examples.filter(label=label)
    correct, scored = _flag(params, "correct"), _flag(params, "scored")
    predicted = params.get("predicted") or None
    pairs = [
        _Pair(ex_id, ext, split_, gold, mv, input_hash(mv.modalities, values))
        for ex_id, ext, split_, gold, values in examples.values_list(
            "id", "external_id", "split", "label", "values"
        )
        for mv in mvs
        if all(m in values for m in mv.modalities)
    ]
    if correct is None and scored is None and predicted is None:
        return _ScoreRows(pairs)
    rows = _rows(pairs)
    if scored is not None:
        rows = [r for r in rows if r["scored"] is scored]
    if correct is not None:
        rows = [r for r in rows if r["correct"] is correct]
    if predicted is not None:
        rows = [r for r in rows if r["predicted_label"] == predicted]
    return rows


def pool_predictions(
    *, campaign: Campaign, examples: Sequence[tuple[int, Mapping[str, Any]]]
) -> dict[int, list[tuple[str, dict[str, float]]]]:
    """example id → [(predicted label, probabilities)] of each active campaign model that has
    a stored score for it (task ordering, annotation.policy.pool_ranks). Scores are only read:
    nothing is scored here (a bulk-score job fills them)."""
    mvs = list(campaign.model_versions.filter(is_active=True).order_by("id"))
    keys = [
        (ex_id, mv.pk, input_hash(mv.modalities, values))
        for ex_id, values in examples
        for mv in mvs
        if all(m in values for m in mv.modalities)
    ]
    found = cached_scores((mv_id, h) for _, mv_id, h in keys)
    out: dict[int, list[tuple[str, dict[str, float]]]] = {}
    for ex_id, mv_id, h in keys:
        score = found.get((mv_id, h))
        if score is not None:
            out.setdefault(ex_id, []).append((score.predicted_label, dict(score.probabilities)))
    return out
