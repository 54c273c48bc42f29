"""Perturbation ladders (docs/perturbation.md), DB-free and torch-free: numpy and Pillow only.

A perturbation degrades one modality value by a *level* (its parameter: sigma, radius, fraction …);
a study walks an ordered ladder of levels whose first rung is the identity. The output is a pure
function of (value, perturbation, level, seed, key) where `key` names the example (the services
pass its content hash), so humans and models see the same bytes and a study can be rebuilt.

Common random numbers: the random draws depend on (seed, key, perturbation) only, never on
the level, and the level scales or thresholds them. So the rungs of one example are nested —
the words dropped at rate 0.2 are among those dropped at 0.4, the patches occluded at 10 % of the
area among those at 20 %, the noise at sigma=0.2 is twice the noise at sigma=0.1 — and the effect grows
monotonically with the level, which the psychometric fit and the bisection for the minimal
perturbation to chance (annotation.perturbation_curves) rely on.

Images come back as RGB PNG of the original's width x height; text as a string; tabular values
as the same mapping with numeric features moved by `level` MADs (median absolute deviation of
the feature over the dataset, the unit of the tabular minimality figures)."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from annotation.minimality import _as_number, decode_rgb

MAX_LADDER_LEVELS = 20
_WORD = re.compile(r"\S+")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


class PerturbationError(ValueError):
    """An unknown perturbation, or a level or ladder it does not accept. `code` names the rule."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Perturbation:
    name: str
    kind: str  # the modality kind it applies to: image, text, tabular
    parameter: str  # what a level means, for people
    identity: float  # the level that leaves the value unchanged (a ladder's first rung)
    maximum: float | None  # the largest level accepted (None: unbounded)
    continuous: bool  # levels between rungs mean something (bisection may refine there)
    default_ladder: tuple[float, ...]


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation(
            "gaussian_noise",
            "image",
            "sigma of additive Gaussian noise, as a fraction of the 0-255 range",
            0.0,
            4.0,
            True,
            (0.0, 0.05, 0.1, 0.2, 0.4, 0.8),
        ),
        Perturbation(
            "blur",
            "image",
            "radius of a Gaussian blur, in pixels",
            0.0,
            256.0,
            True,
            (0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
        ),
        Perturbation(
            "occlusion",
            "image",
            "fraction of the area covered by grey patches placed at random",
            0.0,
            1.0,
            True,
            (0.0, 0.1, 0.2, 0.4, 0.6, 0.8),
        ),
        Perturbation(
            "pixelation",
            "image",
            "side of the square blocks the image is averaged over, in pixels",
            1.0,
            1024.0,
            False,
            (1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
        ),
        Perturbation(
            "word_dropout",
            "text",
            "fraction of the words removed",
            0.0,
            1.0,
            True,
            (0.0, 0.1, 0.2, 0.4, 0.6, 0.8),
        ),
        Perturbation(
            "word_shuffle",
            "text",
            "fraction of the words moved to another word's place",
            0.0,
            1.0,
            True,
            (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        ),
        Perturbation(
            "char_noise",
            "text",
            "fraction of the non-space characters replaced by a random letter",
            0.0,
            1.0,
            True,
            (0.0, 0.05, 0.1, 0.2, 0.4, 0.6),
        ),
        Perturbation(
            "feature_noise",
            "tabular",
            "sigma of Gaussian noise added to every numeric feature, in MADs of that feature",
            0.0,
            1000.0,
            True,
            (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
        ),
    )
}


def perturbation_get(name: str) -> Perturbation:
    try:
        return PERTURBATIONS[name]
    except KeyError:
        known = ", ".join(sorted(PERTURBATIONS))
        raise PerturbationError(
            f"unknown perturbation {name!r} (known: {known})", code="perturbation_unknown"
        ) from None


def check_ladder(perturbation: Perturbation, levels: Sequence[Any]) -> list[float]:
    """The ladder as floats: 2..MAX_LADDER_LEVELS finite levels, strictly increasing, the first
    the perturbation's identity, none past its maximum. Raises PerturbationError
    `perturbation_ladder_invalid`."""

    def bad(message: str) -> PerturbationError:
        return PerturbationError(message, code="perturbation_ladder_invalid")

    if not isinstance(levels, list | tuple) or not 2 <= len(levels) <= MAX_LADDER_LEVELS:
        raise bad(f"a ladder is a list of 2 to {MAX_LADDER_LEVELS} levels")
    out: list[float] = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int | float):
            raise bad(f"level {level!r} is not a number")
        if not math.isfinite(level):
            raise bad(f"level {level!r} is not finite")
        out.append(float(level))
    if out[0] != perturbation.identity:
        raise bad(
            f"the first level of a {perturbation.name} ladder must be {perturbation.identity:g} "
            "(the unperturbed value)"
        )
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise bad("the levels must increase strictly")
    if perturbation.maximum is not None and out[-1] > perturbation.maximum:
        raise bad(f"{perturbation.name} accepts levels up to {perturbation.maximum:g}")
    return out


def _rng(seed: int, key: str, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{key}\x00{name}".encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *words]))


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# --- images: (H, W, 3) uint8 in, (H, W, 3) uint8 out ---------------------------------------


def _gaussian_noise(pixels: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal(pixels.shape, dtype=np.float32)
    noisy = pixels.astype(np.float32) + np.float32(level * 255.0) * z
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _blur(pixels: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    img = Image.fromarray(pixels, mode="RGB").filter(ImageFilter.GaussianBlur(radius=level))
    return np.asarray(img, dtype=np.uint8)


def occlusion_patch_side(height: int, width: int) -> int:
    return max(1, round(min(height, width) / 8))


def _occlusion(pixels: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    # Patches are the cells of a grid taken in one random order per example, so a higher
    # fraction covers a superset of a lower one; the count is rounded on the cell count.
    height, width = pixels.shape[:2]
    side = occlusion_patch_side(height, width)
    rows, cols = math.ceil(height / side), math.ceil(width / side)
    order = rng.permutation(rows * cols)
    count = round(level * rows * cols)
    out = pixels.copy()
    for cell in order[:count]:
        r, c = divmod(int(cell), cols)
        out[r * side : (r + 1) * side, c * side : (c + 1) * side] = 127
    return out


def _pixelation(pixels: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    block = max(1, round(level))
    if block == 1:
        return pixels
    height, width = pixels.shape[:2]
    small = (max(1, math.ceil(width / block)), max(1, math.ceil(height / block)))
    img = Image.fromarray(pixels, mode="RGB").resize(small, Image.Resampling.BOX)
    return np.asarray(img.resize((width, height), Image.Resampling.NEAREST), dtype=np.uint8)


_IMAGE_OPS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _gaussian_noise,
    "blur": _blur,
    "occlusion": _occlusion,
    "pixelation": _pixelation,
}


# --- text ----------------------------------------------------------------------------------


def _word_dropout(text: str, level: float, rng: np.random.Generator) -> str:
    words = _WORD.findall(text)
    u = rng.random(len(words))
    return " ".join(w for w, x in zip(words, u, strict=True) if x >= level)


def _word_shuffle(text: str, level: float, rng: np.random.Generator) -> str:
    # The first round(level·n) words of one random order rotate one place among their own
    # positions: every chosen word moves (when two or more are chosen), the rest stay.
    words = _WORD.findall(text)
    order = rng.permutation(len(words))
    chosen = sorted(int(i) for i in order[: round(level * len(words))])
    if len(chosen) >= 2:
        moved = [words[i] for i in chosen]
        moved = moved[1:] + moved[:1]
        for i, w in zip(chosen, moved, strict=True):
            words[i] = w
    return " ".join(words)


def _char_noise(text: str, level: float, rng: np.random.Generator) -> str:
    u = rng.random(len(text))
    # A shift of 1..25 letters, so the replacement always differs from a lowercase original.
    shift = rng.integers(1, len(_ALPHABET), size=len(text))
    out = []
    for ch, x, s in zip(text, u, shift, strict=True):
        if x < level and not ch.isspace():
            base = _ALPHABET.find(ch.lower())
            out.append(_ALPHABET[(max(base, 0) + int(s)) % len(_ALPHABET)])
        else:
            out.append(ch)
    return "".join(out)


_TEXT_OPS: dict[str, Callable[[str, float, np.random.Generator], str]] = {
    "word_dropout": _word_dropout,
    "word_shuffle": _word_shuffle,
    "char_noise": _char_noise,
}


# --- tabular -------------------------------------------------------------------------------


def _feature_noise(
    row: Mapping[str, Any], level: float, rng: np.random.Generator, mad: Mapping[str, float | None]
) -> dict[str, Any]:
    # One draw per feature in sorted name order, so the key order of the row does not matter.
    names = sorted(row)
    z = dict(zip(names, rng.standard_normal(len(names)), strict=True))
    out: dict[str, Any] = {}
    for name, value in row.items():
        number, scale = _as_number(value), mad.get(name)
        if level == 0 or number is None or not scale:
            out[name] = value
        else:
            out[name] = round(number + level * float(scale) * float(z[name]), 6)
    return out


def perturb_image(data: bytes, *, name: str, level: float, seed: int, key: str) -> bytes:
    """PNG bytes of the perturbed image, RGB, the original's width x height. The bytes are
    checked by the caller first (annotation.services.media.check_image_bytes)."""
    perturbation = perturbation_get(name)
    if perturbation.kind != "image":
        raise PerturbationError(f"{name} is not an image perturbation", code="perturbation_kind")
    pixels = decode_rgb(data)
    if level == perturbation.identity:
        return _png(pixels)
    return _png(_IMAGE_OPS[name](pixels, level, _rng(seed, key, name)))


def perturb_image_levels(
    data: bytes, *, name: str, levels: Sequence[float], seed: int, key: str
) -> list[bytes]:
    """perturb_image at each of `levels`, decoding the image once: the same bytes as one call
    per level (each level draws from a fresh generator of the same seed)."""
    perturbation = perturbation_get(name)
    if perturbation.kind != "image":
        raise PerturbationError(f"{name} is not an image perturbation", code="perturbation_kind")
    pixels = decode_rgb(data)
    return [
        _png(pixels)
        if level == perturbation.identity
        else _png(_IMAGE_OPS[name](pixels, level, _rng(seed, key, name)))
        for level in levels
    ]


def perturb_text(text: str, *, name: str, level: float, seed: int, key: str) -> str:
    perturbation = perturbation_get(name)
    if perturbation.kind != "text":
        raise PerturbationError(f"{name} is not a text perturbation", code="perturbation_kind")
    if level == perturbation.identity:
        return text
    return _TEXT_OPS[name](text, level, _rng(seed, key, name))


def perturb_tabular(
    row: Mapping[str, Any],
    *,
    name: str,
    level: float,
    seed: int,
    key: str,
    mad: Mapping[str, float | None],
) -> dict[str, Any]:
    perturbation = perturbation_get(name)
    if perturbation.kind != "tabular":
        raise PerturbationError(f"{name} is not a tabular perturbation", code="perturbation_kind")
    return _feature_noise(row, level, _rng(seed, key, name), mad)
