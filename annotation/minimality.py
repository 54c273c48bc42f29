"""Minimality figures of a counterfactual edit (docs/architecture.md "Counterfactual protocol"), DB-free.

- text: tokens are runs of word characters plus each punctuation mark on its own (so "?" →
  "." counts as one substitution, and whitespace never counts). Tokens are compared
  normalised (`token_key`: Unicode NFC, lower case), so a case-only change ("is" → "Is") or
  a spacing change is no change; `token_distance` is the Levenshtein distance between the
  normalised token sequences, `minimality = token_distance /
  len(original tokens)` (MiCE; an empty original counts as one token so the figure stays
  finite), `char_distance` the Levenshtein distance between the raw strings.
- image: both decoded to RGB of the same HxW; a pixel changed when any channel differs
  (threshold 0: edits arrive as lossless PNG); `pixel_fraction = changed / (H·W)`, plus the
  bounding box [x, y, w, h] of the change and its area.
- tabular: `fraction_changed` over the original's features, and `scaled_l1` = Σ |Δ| / MAD
  (median absolute deviation of the feature over the dataset, Wachter et al. 2017) for
  numeric features with MAD > 0; a changed feature without a usable MAD (non-numeric, or
  MAD 0) adds 1, the same as a one-MAD move.

What counts as a change is decided here once (`edit_changed`), from these figures: text, a
normalised token differs (token_distance > 0); image, at least one pixel differs; tabular, at
least one value differs (`feature_changed`: numbers compared as numbers). Submit refuses
anything else as `edit_no_change` (NO_CHANGE_CODE); the page's meter (textdiff.js
`textChanged`) applies the same rule as you type.
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


NO_CHANGE_CODE = "edit_no_change"


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def token_key(token: str) -> str:
    """The form in which tokens are compared. textdiff.js `tokenKey` is the same function
    (NFC, then String.toLowerCase, which maps like str.lower)."""
    return unicodedata.normalize("NFC", token).lower()


def levenshtein(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance (unit insert/delete/substitute) between two sequences of
    hashables: strings or token lists. Bit-parallel (Myers 1999, in Hyyrö's 2001 form for
    edit distance), so a 100k-character text costs len(b) big-integer steps rather than
    len(a)·len(b) Python steps."""
    if len(a) < len(b):
        a, b = b, a  # the shorter sequence is the pattern: narrower bit vectors
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[Hashable, int] = {}
    for i, sym in enumerate(b):
        peq[sym] = peq.get(sym, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for sym in a:
        eq = peq.get(sym, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        # Row 0 of the DP table grows by one per column (D[0][j] = j): shift in a +1.
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def text_minimality(original: str, edited: str) -> dict[str, Any]:
    orig_tokens = [token_key(t) for t in tokenize(original)]
    edit_tokens = [token_key(t) for t in tokenize(edited)]
    token_distance = levenshtein(orig_tokens, edit_tokens)
    return {
        "token_distance": token_distance,
        "minimality": token_distance / max(len(orig_tokens), 1),
        "char_distance": levenshtein(original, edited),
        "tokens": len(orig_tokens),
        "edited_tokens": len(edit_tokens),
    }


class ImageSizeMismatch(ValueError):
    """The two images do not have the same width x height."""


def decode_rgb(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8. Callers check the bytes first (annotation.services.media)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def image_minimality_arrays(original: np.ndarray, edited: np.ndarray) -> dict[str, Any]:
    if original.shape != edited.shape:
        raise ImageSizeMismatch(
            f"the edited image is {edited.shape[1]}x{edited.shape[0]}, the original {original.shape[1]}x{original.shape[0]}"
        )
    height, width = original.shape[:2]
    changed = np.any(original != edited, axis=2)
    n_changed = int(changed.sum())
    if n_changed:
        rows = np.flatnonzero(changed.any(axis=1))
        cols = np.flatnonzero(changed.any(axis=0))
        x, y = int(cols[0]), int(rows[0])
        w, h = int(cols[-1]) - x + 1, int(rows[-1]) - y + 1
        bbox: list[int] | None = [x, y, w, h]
        bbox_area = w * h
    else:
        bbox, bbox_area = None, 0
    total = width * height
    return {
        "pixel_fraction": n_changed / total if total else 0.0,
        "changed_pixels": n_changed,
        "bbox": bbox,
        "bbox_area": bbox_area,
        "bbox_fraction": bbox_area / total if total else 0.0,
        "width": width,
        "height": height,
    }


def image_minimality(original: bytes, edited: bytes) -> dict[str, Any]:
    """Raises ImageSizeMismatch when the sizes differ."""
    return image_minimality_arrays(decode_rgb(original), decode_rgb(edited))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def median_absolute_deviation(values: Iterable[Any]) -> float | None:
    """MAD of the numeric values (non-numeric ones ignored); None when there are none."""
    numbers = [n for n in (_as_number(v) for v in values) if n is not None]
    if not numbers:
        return None
    arr = np.asarray(numbers, dtype=np.float64)
    return float(np.median(np.abs(arr - np.median(arr))))


def feature_changed(original: Any, edited: Any) -> bool:
    a, b = _as_number(original), _as_number(edited)
    if a is not None and b is not None:
        return a != b
    return bool(original != edited)


def tabular_minimality(
    original: Mapping[str, Any], edited: Mapping[str, Any], mad: Mapping[str, float | None]
) -> dict[str, Any]:
    """Both map the same features (the caller checks the keys)."""
    changed = [f for f in original if feature_changed(original[f], edited.get(f))]
    scaled = 0.0
    for f in changed:
        a, b, scale = _as_number(original[f]), _as_number(edited.get(f)), mad.get(f)
        if a is not None and b is not None and scale:
            scaled += abs(b - a) / scale
        else:
            scaled += 1.0
    n = len(original)
    return {
        "fraction_changed": len(changed) / n if n else 0.0,
        "scaled_l1": scaled,
        "changed_features": changed,
        "features": n,
    }


def edit_changed(kind: str, figures: Mapping[str, Any]) -> bool:
    """Whether an edit with these minimality figures changes its modality at all (see the
    module docstring). `kind` is text, image or tabular."""
    if kind == "text":
        return int(figures["token_distance"]) > 0
    if kind == "image":
        return int(figures["changed_pixels"]) > 0
    return bool(figures["changed_features"])
