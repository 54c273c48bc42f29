"""Minimality figures (docs/architecture.md "Counterfactual protocol"; annotation/minimality.py). Distances are checked against
rapidfuzz (an established Levenshtein implementation) and textbook values; image and tabular
figures against shapes drawn with known areas and hand-computable medians."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw
from rapidfuzz.distance import Levenshtein as RF

from annotation import minimality as mm


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("a", "b", "d"),
    [
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("", "abc", 3),
        ("abc", "", 3),
        ("", "", 0),
        ("same", "same", 0),
    ],
)
def test_levenshtein_textbook_values(a: str, b: str, d: int) -> None:
    assert mm.levenshtein(a, b) == d


def test_levenshtein_matches_rapidfuzz_on_strings_and_token_lists() -> None:
    rng = random.Random(42)
    for _ in range(1500):
        alphabet = rng.choice(["ab", "abc", "abcdefgh"])
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        assert mm.levenshtein(a, b) == RF.distance(a, b)
    words = ["the", "red", "circle", "square", "is", "?", "what", "color"]
    for _ in range(500):
        a = [rng.choice(words) for _ in range(rng.randint(0, 20))]
        b = [rng.choice(words) for _ in range(rng.randint(0, 20))]
        assert mm.levenshtein(a, b) == RF.distance(a, b)
    long_a = "".join(rng.choice("acgt") for _ in range(3000))
    long_b = "".join(rng.choice("acgt") for _ in range(2500))
    assert mm.levenshtein(long_a, long_b) == RF.distance(long_a, long_b)


def test_tokens_are_words_and_single_punctuation_marks() -> None:
    assert mm.tokenize("what color is the circle?") == ["what", "color", "is", "the", "circle", "?"]
    assert mm.tokenize("  it's  blue!! ") == ["it", "'", "s", "blue", "!", "!"]
    assert mm.tokenize("") == []


def test_text_minimality_is_token_distance_over_original_tokens() -> None:
    original, edited = "what color is the circle?", "what color is the square?"
    fig = mm.text_minimality(original, edited)
    assert fig["token_distance"] == 1
    assert fig["tokens"] == 6
    assert fig["minimality"] == pytest.approx(1 / 6)
    assert fig["char_distance"] == RF.distance(original, edited)
    # Whitespace alone never counts as a token change.
    assert mm.text_minimality("a  b", "a b")["token_distance"] == 0
    # Punctuation does: "?" → "." is one substitution.
    assert mm.text_minimality("is it red?", "is it red.")["token_distance"] == 1
    # An empty original counts as one token, so the figure stays finite.
    assert mm.text_minimality("", "new words")["minimality"] == 2.0


def test_image_changed_pixels_and_bbox_of_a_drawn_rectangle() -> None:
    base = Image.new("RGB", (64, 48), (10, 20, 30))
    edited = base.copy()
    ImageDraw.Draw(edited).rectangle([5, 7, 14, 11], fill=(200, 0, 0))  # inclusive: 10 x 5 px
    fig = mm.image_minimality(png(base), png(edited))
    assert fig["changed_pixels"] == 50
    assert fig["pixel_fraction"] == pytest.approx(50 / (64 * 48))
    assert fig["bbox"] == [5, 7, 10, 5]
    assert fig["bbox_area"] == 50
    assert (fig["width"], fig["height"]) == (64, 48)


def test_image_bbox_spans_separate_changes_and_one_channel_is_enough() -> None:
    base = np.zeros((20, 30, 3), dtype=np.uint8)
    edited = base.copy()
    edited[2, 3, 2] = 1  # one channel of one pixel
    edited[10, 25] = 255
    fig = mm.image_minimality_arrays(base, edited)
    assert fig["changed_pixels"] == 2
    assert fig["bbox"] == [3, 2, 23, 9]
    assert fig["bbox_area"] == 23 * 9
    unchanged = mm.image_minimality_arrays(base, base.copy())
    assert unchanged["changed_pixels"] == 0 and unchanged["bbox"] is None


def test_image_palette_and_rgb_encodings_of_the_same_pixels_do_not_differ() -> None:
    rgb = Image.new("RGB", (8, 8), (255, 0, 0))
    pal = rgb.convert("P")
    assert mm.image_minimality(png(rgb), png(pal))["changed_pixels"] == 0


def test_image_size_mismatch_is_refused() -> None:
    with pytest.raises(mm.ImageSizeMismatch):
        mm.image_minimality(png(Image.new("RGB", (8, 8))), png(Image.new("RGB", (8, 9))))


def test_median_absolute_deviation_by_hand() -> None:
    # median 3; |x - 3| = 2, 1, 0, 1, 97 → median 1
    assert mm.median_absolute_deviation([1, 2, 3, 4, 100]) == 1.0
    # even count: median 2.5; deviations 1.5, 0.5, 0.5, 1.5 → 1.0; strings that are numbers count
    assert mm.median_absolute_deviation([1, "2", 3, 4, "n/a", None]) == 1.0
    assert mm.median_absolute_deviation(["a", None]) is None


def test_tabular_fraction_and_mad_scaled_l1() -> None:
    original = {"age": 40, "income": 1000.0, "city": "Oslo", "kids": 2}
    edited = {"age": 46, "income": 1000, "city": "Bergen", "kids": 2}
    mad = {"age": 3.0, "income": 250.0, "city": None, "kids": 0.0}
    fig = mm.tabular_minimality(original, edited, mad)
    assert fig["changed_features"] == ["age", "city"]
    assert fig["fraction_changed"] == 0.5
    assert fig["scaled_l1"] == pytest.approx(6 / 3 + 1)  # two MADs of age + one categorical change
    zero_mad = mm.tabular_minimality({"kids": 2}, {"kids": 5}, {"kids": 0.0})
    assert zero_mad["scaled_l1"] == 1.0
