"""The grounding analysis's arithmetic (docs/analysis.md "Grounding"): human evidence as soft
masks, and how a model's attributions compare with it. Pure: numpy and scikit-learn, no
database, no model, no torch (the report's intervals reuse models_bridge/analysis/reliance.py).

Units. Text is cut into words by a token pattern (the model's own when it declares one,
else `\\w+`), each with its character span; an annotator marks a word when one of their
highlighted spans overlaps it. An image is cut into a GxG grid of patches over its source
pixels (patch r, c covers rows r·H//G .. (r+1)·H//G and columns likewise); an annotator's
boxes are in source pixels.

Human soft masks: per word, the fraction of the example's annotators who marked it; per
pixel, the fraction whose boxes cover it; per patch, the mean of its pixels' fractions.
The human *rationale* (what ERASER calls the evidence) is the words and pixels marked by at
least `threshold` of the annotators (default 0.5, a majority); a patch belongs to it when
at least half of its area does.

Plausibility (DeYoung et al. 2020, ERASER):
- text: token F1 of the model's top-k words (k = the rationale's size unless given) against
  the rationale words, and AUPRC (average precision) of the word scores against them;
- image: the pointing game (the top-scoring patch lies at least half in the human region)
  and the IoU between the top-q fraction of patches (by score) and the human pixels.

Faithfulness (ERASER, with probabilities of the model's predicted label): comprehensiveness
= p(full) - p(rationale removed), sufficiency = p(full) - p(only the rationale kept). High
comprehensiveness and low sufficiency say the model relies on that evidence.

The report: each figure's mean over the examples where it is defined, overall and per human
reliance category (models_bridge/analysis/reliance.py human_category), with the reliance
report's seeded percentile bootstrap (reliance.ratio); the examples with the largest
disagreement first."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from models_bridge.analysis.reliance import GROUPS, ratio

WORD_PATTERN = r"\w+"
DEFAULT_GRID = 8
DEFAULT_THRESHOLD = 0.5
DEFAULT_TOP_Q = 0.1
# The faithfulness scopes: both modalities' evidence at once, or one modality's alone.
SCOPES = ("all", "text", "image")

Span = tuple[int, int]
Box = tuple[float, float, float, float]  # x, y, w, h in source pixels


def word_spans(text: str, pattern: str = WORD_PATTERN, *, lowercase: bool = True) -> list[Span]:
    """Character spans of the words of `text` as the token pattern finds them."""
    source = text.lower() if lowercase else text
    return [m.span() for m in re.finditer(pattern, source)]


def patch_bounds(height: int, width: int, grid: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of each patch, row-major, covering every pixel."""
    if grid < 1 or grid > min(height, width):
        raise ValueError(f"a {grid}x{grid} grid does not fit a {width}x{height} image")
    rows = [(r * height // grid, (r + 1) * height // grid) for r in range(grid)]
    cols = [(c * width // grid, (c + 1) * width // grid) for c in range(grid)]
    return [(t, b, left, right) for t, b in rows for left, right in cols]


def patch_index_map(height: int, width: int, grid: int) -> np.ndarray:
    """(H, W) int: the patch each pixel belongs to."""
    out = np.empty((height, width), dtype=np.int64)
    for k, (t, b, left, right) in enumerate(patch_bounds(height, width, grid)):
        out[t:b, left:right] = k
    return out


# --- human evidence ----------------------------------------------------------------------


def human_word_mask(words: Sequence[Span], annotators: Sequence[Sequence[Span]]) -> np.ndarray:
    """(len(words),) fraction of annotators whose spans overlap each word; zeros when the
    example has no annotators."""
    mask = np.zeros(len(words), dtype=np.float64)
    if not annotators:
        return mask
    for spans in annotators:
        marked = np.array(
            [any(s < we and ws < e for s, e in spans) for ws, we in words], dtype=np.float64
        )
        mask += marked
    return mask / len(annotators)


def human_pixel_mask(height: int, width: int, annotators: Sequence[Sequence[Box]]) -> np.ndarray:
    """(H, W) fraction of annotators whose boxes cover each pixel (a pixel is covered when
    its centre lies in the box)."""
    mask = np.zeros((height, width), dtype=np.float64)
    if not annotators:
        return mask
    ys = np.arange(height) + 0.5
    xs = np.arange(width) + 0.5
    for boxes in annotators:
        covered = np.zeros((height, width), dtype=bool)
        for x, y, w, h in boxes:
            rows = (ys >= y) & (ys < y + h)
            cols = (xs >= x) & (xs < x + w)
            covered |= rows[:, None] & cols[None, :]
        mask += covered
    return mask / len(annotators)


def patch_means(pixels: np.ndarray, grid: int) -> np.ndarray:
    """(G*G,) mean of a (H, W) array over each patch."""
    h, w = pixels.shape
    return np.array([pixels[t:b, le:r].mean() for t, b, le, r in patch_bounds(h, w, grid)])


def rationale(mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The units marked by at least `threshold` of the annotators (bool); nothing when no
    unit is marked at all."""
    return (mask >= threshold) & (mask > 0)


# --- plausibility ------------------------------------------------------------------------


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """bool mask of the k highest scores (ties broken by position, first wins)."""
    out = np.zeros(len(scores), dtype=bool)
    k = max(0, min(k, len(scores)))
    if k:
        out[np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]] = True
    return out


def token_f1(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    """F1 of two bool masks over the same units; None when both are empty."""
    p, t = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    if not p.any() and not t.any():
        return None
    tp = float((p & t).sum())
    if tp == 0:
        return 0.0
    precision, recall = tp / p.sum(), tp / t.sum()
    return float(2 * precision * recall / (precision + recall))


def auprc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Average precision of the scores ranking the true units first; None without a true
    unit or without a false one (the curve is then undefined or trivial)."""
    from sklearn.metrics import average_precision_score

    t = np.asarray(truth, dtype=bool)
    if not t.any() or t.all():
        return None
    return float(average_precision_score(t.astype(int), np.asarray(scores, dtype=np.float64)))


def pointing_game(patch_scores: np.ndarray, human_patch_cover: np.ndarray) -> bool | None:
    """Whether the top-scoring patch lies at least half inside the human region
    (`human_patch_cover`: per patch, the fraction of its area in the region); None without
    a human region."""
    cover = np.asarray(human_patch_cover, dtype=np.float64)
    if not (cover > 0).any():
        return None
    top = int(np.argmax(np.asarray(patch_scores, dtype=np.float64)))
    return bool(cover[top] >= 0.5)


def top_q_count(n_patches: int, q: float) -> int:
    return max(1, min(n_patches, math.ceil(q * n_patches - 1e-9)))


def iou_top_q(
    patch_scores: np.ndarray, human_pixels: np.ndarray, grid: int, q: float = DEFAULT_TOP_Q
) -> float | None:
    """IoU between the pixels of the top-q fraction of patches and the human pixels (bool
    (H, W)); None without a human region."""
    human = np.asarray(human_pixels, dtype=bool)
    if not human.any():
        return None
    h, w = human.shape
    chosen = top_k(np.asarray(patch_scores), top_q_count(grid * grid, q))
    model = chosen[patch_index_map(h, w, grid)]
    union = float((model | human).sum())
    return float((model & human).sum() / union)


# --- faithfulness ------------------------------------------------------------------------


def comprehensiveness(p_full: float, p_removed: float) -> float:
    """How much the predicted label's probability drops when the evidence is removed."""
    return float(p_full - p_removed)


def sufficiency(p_full: float, p_only: float) -> float:
    """How much it drops when only the evidence is kept (0: the evidence suffices)."""
    return float(p_full - p_only)


def disagreement(plausibility: Sequence[float | None]) -> float | None:
    """1 - the mean of an example's defined plausibility figures (text top-k F1, image IoU):
    1 where the model looks nowhere the humans looked."""
    vals = [float(v) for v in plausibility if v is not None]
    return None if not vals else 1.0 - float(np.mean(vals))


# --- the report ----------------------------------------------------------------------------


def _metric(r: dict[str, Any], name: str) -> float | None:
    """An example's figure `name` (one of METRICS) or None where it is undefined."""
    if name.startswith("text_"):
        return (r["text"] or {}).get(name[5:])
    if name == "image_pointing":
        hit = (r["image"] or {}).get("pointing")
        return None if hit is None else float(hit)
    if name == "image_iou":
        return (r["image"] or {}).get("iou")
    who, fig, scope = name.split("_")
    return ((r["faithfulness"].get(who) or {}).get(scope) or {}).get(fig)


METRICS = (
    "text_top_k_f1",
    "text_auprc",
    "image_pointing",
    "image_iou",
    *(
        f"{who}_{fig}_{scope}"
        for who in ("human", "model")
        for fig in ("comprehensiveness", "sufficiency")
        for scope in SCOPES
    ),
)


def _figures(rows: Sequence[dict[str, Any]], *, resamples: int, seed: int, group: str) -> Any:
    out: dict[str, Any] = {"examples": len(rows)}
    for name in METRICS:
        vals = [v for v in (_metric(r, name) for r in rows) if v is not None]
        out[name] = ratio(
            vals, [1.0] * len(vals), resamples=resamples, seed=seed, group=f"{group}:{name}"
        )
    return out


def grounding_report(
    rows: Sequence[dict[str, Any]], *, resamples: int, seed: int, top: int
) -> dict[str, Any]:
    """Means with seeded bootstrap intervals over the examples, overall and per human
    reliance category; the `top` examples where the model looks furthest from the humans
    (disagreement, then example id)."""
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r)
    order = [c for c in GROUPS if c in by_cat]
    ranked = sorted(
        (r for r in rows if r["disagreement"] is not None),
        key=lambda r: (-r["disagreement"], r["example"]),
    )[:top]
    return {
        "overall": _figures(rows, resamples=resamples, seed=seed, group="overall"),
        "by_category": {
            c: _figures(by_cat[c], resamples=resamples, seed=seed, group=c) for c in order
        },
        "bootstrap": {"resamples": resamples, "seed": seed, "interval": "percentile 95%"},
        "disagreements": [
            {
                "example": r["example"],
                "disagreement": r["disagreement"],
                "category": r["category"],
                "predicted": r["predicted"],
                "gold": r["gold"],
                "text_top_k_f1": (r["text"] or {}).get("top_k_f1"),
                "image_iou": (r["image"] or {}).get("iou"),
            }
            for r in ranked
        ],
    }
