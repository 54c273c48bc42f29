"""The reliance report's arithmetic (docs/analysis.md "The reliance report"): per human
reliance category (docs/architecture.md "Reliance questions"), what the model needed.
Pure: numpy and annotation.agreement only, no database, no model.

Inputs are one `RelianceExample` per analysed example (its annotators' reliance answers and
the model's figures on it) and one `RelianceEdit` per counterfactual edit of those examples.

Definitions:

- an example's **human category** is the reliance answer most of its annotators gave; a tie
  between two or more answers is the category `tied`; an example nobody answered the
  question on has none (it counts under `unanswered`).
- **EMAP changes the prediction** = examples whose argmax of EMAP f differs from the argmax
  of f / examples of the category.
- **ablation Δ** (per modality) = mean over the category's examples with a gold label of
  [f right] - [f right with that modality replaced by its null input]: the accuracy the
  modality carries. Beside it, the share of examples whose prediction changes when it is nulled.
- **edit flip rate** (per modality edited) = edits of the category's examples whose stored
  prediction on the edit differs from the prediction on the original / those the model scored.
  The verified rate beside it is the human side: verified edits / decided ones.
- **κ**: Cohen's κ (annotation.agreement.cohen_kappa) over the answered, untied examples
  between "humans needed both" (human category `synergy`: "I needed both together; neither
  alone says anything") and "the model uses the interaction" (EMAP changes the argmax).
- **disagreement** of an example = |share of its reliance answers that are `synergy` - [EMAP
  changes the argmax]|; the report lists the examples where it is largest (at least 0.5:
  the majority of the humans and the model disagree), biggest first, ties by the larger
  interaction score ‖f - EMAP f‖₂ and then by example id.

Intervals: seeded percentile bootstrap over examples (over edits for the edit rates), the
same resampling as the counterfactual metrics (models_bridge.analysis.counterfactual
.bootstrap_ratio), with one generator per group derived from the seed and the group's name;
given only when the denominator is at least MIN_FOR_INTERVAL."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotation.agreement import cohen_kappa
from models_bridge.analysis.counterfactual import bootstrap_ratio

CATEGORIES = ("specialization", "equivalence", "synergy", "complementarity", "transfer")
NEEDED_BOTH = "synergy"
TIED = "tied"
UNANSWERED = "unanswered"
GROUPS = (*CATEGORIES, TIED, UNANSWERED)
MIN_FOR_INTERVAL = 5
DEFAULT_TOP = 12


@dataclass(frozen=True)
class RelianceExample:
    example: int
    reliance: Mapping[str, int]  # category → how many annotations gave it
    emap_changed: bool
    interaction: float = 0.0
    predicted: str = ""
    predicted_emap: str = ""
    gold: str | None = None
    # per modality: the prediction with that modality replaced by its null input
    ablated: Mapping[str, str] = field(default_factory=dict)

    @property
    def correct(self) -> bool | None:
        return None if self.gold is None else self.predicted == self.gold


@dataclass(frozen=True)
class RelianceEdit:
    edit: int
    example: int
    modality: str
    status: str  # pending | verified | disputed
    pred_original: str | None = None
    pred_edit: str | None = None


def human_category(counts: Mapping[str, int]) -> str:
    """The majority answer; `tied` on a tie, `unanswered` without answers."""
    given = {k: int(v) for k, v in counts.items() if v and int(v) > 0}
    if not given:
        return UNANSWERED
    top = max(given.values())
    winners = [k for k, v in given.items() if v == top]
    return winners[0] if len(winners) == 1 else TIED


def needed_both_share(counts: Mapping[str, int]) -> float | None:
    total = sum(int(v) for v in counts.values())
    return None if total == 0 else int(counts.get(NEEDED_BOTH, 0)) / total


def _rng(seed: int, group: str) -> np.random.Generator:
    return np.random.default_rng([seed, *group.encode()])


def ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    resamples: int,
    seed: int,
    group: str,
) -> dict[str, Any]:
    """Σnum / Σden with its count and (when counts allow) a seeded bootstrap 95% interval."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    d = float(den.sum())
    out: dict[str, Any] = {
        "value": float(num.sum() / d) if d else None,
        "numerator": float(num.sum()),
        "denominator": int(d),
        "ci95": None,
    }
    if resamples and d >= MIN_FOR_INTERVAL:
        idx = _rng(seed, group).integers(0, len(num), size=(resamples, len(num)))
        ci = bootstrap_ratio(num, den, idx)
        out["ci95"] = list(ci) if ci is not None else None
    return out


def kappa_figures(
    humans: Sequence[bool | None], model: Sequence[bool], *, resamples: int, seed: int
) -> dict[str, Any]:
    """Cohen's κ between the two yes/no vectors (None = the humans' side is undefined), the
    2x2 table and a bootstrap interval over the defined units."""
    pairs = [(h, m) for h, m in zip(humans, model, strict=True) if h is not None]
    a = [h for h, _ in pairs]
    b = [m for _, m in pairs]
    value = cohen_kappa(a, b) if pairs else math.nan
    table = {
        "both_yes": sum(1 for h, m in pairs if h and m),
        "humans_only": sum(1 for h, m in pairs if h and not m),
        "model_only": sum(1 for h, m in pairs if not h and m),
        "both_no": sum(1 for h, m in pairs if not h and not m),
    }
    out: dict[str, Any] = {
        "value": None if math.isnan(value) else value,
        "n": len(pairs),
        "table": table,
        "agreement": (table["both_yes"] + table["both_no"]) / len(pairs) if pairs else None,
        "ci95": None,
    }
    if resamples and len(pairs) >= MIN_FOR_INTERVAL and out["value"] is not None:
        idx = _rng(seed, "kappa").integers(0, len(pairs), size=(resamples, len(pairs)))
        va, vb = np.asarray(a), np.asarray(b)
        draws = [cohen_kappa(list(va[i]), list(vb[i])) for i in idx]
        kept = [k for k in draws if not math.isnan(k)]
        if kept:
            lo, hi = np.percentile(kept, [2.5, 97.5])
            out["ci95"] = [float(lo), float(hi)]
    return out


def _group_figures(
    group: str,
    members: Sequence[RelianceExample],
    edits: Sequence[RelianceEdit],
    *,
    modalities: Sequence[str],
    edited: Sequence[str],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    n = len(members)
    ones = [1.0] * n
    out: dict[str, Any] = {
        "examples": n,
        "emap_changed": ratio(
            [float(e.emap_changed) for e in members],
            ones,
            resamples=resamples,
            seed=seed,
            group=f"{group}:emap",
        ),
        "interaction_mean": float(np.mean([e.interaction for e in members])) if n else None,
        "ablation": {},
        "edits": {},
    }
    with_gold = [e for e in members if e.gold is not None]
    for m in modalities:
        deltas = [
            float(e.predicted == e.gold) - float(e.ablated.get(m) == e.gold) for e in with_gold
        ]
        out["ablation"][m] = {
            "delta": ratio(
                deltas,
                [1.0] * len(deltas),
                resamples=resamples,
                seed=seed,
                group=f"{group}:ablation:{m}",
            ),
            "prediction_changed": ratio(
                [float(e.ablated.get(m) != e.predicted) for e in members],
                ones,
                resamples=resamples,
                seed=seed,
                group=f"{group}:ablation-changed:{m}",
            ),
        }
    for m in edited:
        rows = [r for r in edits if r.modality == m]
        scored = [r.pred_original is not None and r.pred_edit is not None for r in rows]
        out["edits"][m] = {
            "edits": len(rows),
            "model_flip_rate": ratio(
                [
                    float(s and r.pred_edit != r.pred_original)
                    for s, r in zip(scored, rows, strict=True)
                ],
                [float(s) for s in scored],
                resamples=resamples,
                seed=seed,
                group=f"{group}:edits:{m}",
            ),
            "verified_rate": ratio(
                [float(r.status == "verified") for r in rows],
                [float(r.status in ("verified", "disputed")) for r in rows],
                resamples=resamples,
                seed=seed,
                group=f"{group}:verified:{m}",
            ),
        }
    return out


def disagreements(
    examples: Sequence[RelianceExample], *, top: int = DEFAULT_TOP
) -> list[dict[str, Any]]:
    """The examples where the humans' "needed both" share and the model's use of the
    interaction differ most (at least 0.5), with what each said."""
    scored = []
    for e in examples:
        share = needed_both_share(e.reliance)
        if share is None:
            continue
        gap = abs(share - float(e.emap_changed))
        if gap >= 0.5:
            scored.append((gap, e, share))
    scored.sort(key=lambda t: (-t[0], -t[1].interaction, t[1].example))
    return [
        {
            "example": e.example,
            "disagreement": gap,
            "humans": {
                "reliance": dict(sorted(e.reliance.items())),
                "category": human_category(e.reliance),
                "needed_both_share": share,
            },
            "model": {
                "uses_interaction": e.emap_changed,
                "interaction": e.interaction,
                "predicted": e.predicted,
                "predicted_emap": e.predicted_emap,
                "ablated": dict(e.ablated),
            },
            "gold": e.gold,
            "kind": (
                "humans needed both; the model does not use the interaction"
                if share > float(e.emap_changed)
                else "the model uses the interaction; the humans did not need both"
            ),
        }
        for gap, e, share in scored[: max(0, top)]
    ]


def reliance_report(
    examples: Sequence[RelianceExample],
    edits: Sequence[RelianceEdit],
    *,
    modalities: Sequence[str],
    resamples: int = 1000,
    seed: int = 0,
    top: int = DEFAULT_TOP,
) -> dict[str, Any]:
    """Per human category the model's figures, overall the same, Cohen's κ between "humans
    needed both" and "the model uses the interaction", and the biggest disagreements. Same
    inputs, resamples and seed → same result."""
    if resamples < 0:
        raise ValueError("resamples must be ≥ 0")
    examples = sorted(examples, key=lambda e: e.example)
    category = {e.example: human_category(e.reliance) for e in examples}
    edited = sorted({r.modality for r in edits})
    known = [r for r in edits if r.example in category]

    def figures(group: str, members: Sequence[RelianceExample]) -> dict[str, Any]:
        ids = {e.example for e in members}
        return _group_figures(
            group,
            members,
            [r for r in known if r.example in ids],
            modalities=modalities,
            edited=edited,
            resamples=resamples,
            seed=seed,
        )

    by_category = {
        g: figures(g, members)
        for g in GROUPS
        if (members := [e for e in examples if category[e.example] == g])
    }
    humans: list[bool | None] = [
        None if category[e.example] in (TIED, UNANSWERED) else category[e.example] == NEEDED_BOTH
        for e in examples
    ]
    return {
        "definitions": {
            "human_category": "majority reliance answer of the example's annotators (tie: tied)",
            "humans_needed_both": f"human category is {NEEDED_BOTH!r}",
            "model_uses_interaction": "argmax of EMAP f differs from argmax of f",
            "ablation_delta": "accuracy of f minus accuracy with the modality nulled",
            "edit_flip_rate": "stored prediction on the edit differs from the original's",
        },
        "bootstrap": {
            "resamples": resamples,
            "seed": seed,
            "level": 0.95,
            "method": "percentile",
            "min_count": MIN_FOR_INTERVAL,
        },
        "examples": len(examples),
        "answered": sum(1 for e in examples if category[e.example] != UNANSWERED),
        "edits": len(known),
        "modalities": list(modalities),
        "edited_modalities": edited,
        "overall": figures("overall", examples),
        "by_category": by_category,
        "kappa": kappa_figures(
            humans, [e.emap_changed for e in examples], resamples=resamples, seed=seed
        ),
        "disagreements": disagreements(examples, top=top),
    }
