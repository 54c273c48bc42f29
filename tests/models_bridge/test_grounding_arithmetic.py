"""The grounding metrics (models_bridge/analysis/grounding.py) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from models_bridge.analysis import grounding as g


def test_word_spans_and_the_soft_word_mask() -> None:
    text = "What colour is the Circle?"
    words = g.word_spans(text)
    assert [text[s:e] for s, e in words] == ["What", "colour", "is", "the", "Circle"]
    # three annotators: two marked "circle", one marked "colour" and part of "circle"
    annotators = [[(19, 25)], [(20, 22)], [(5, 11), (24, 25)]]
    assert g.human_word_mask(words, annotators).tolist() == [0, 1 / 3, 0, 0, 1.0]
    assert g.human_word_mask(words, []).tolist() == [0.0] * 5


def test_pixel_and_patch_masks_count_annotators() -> None:
    # 4x4 image, 2x2 grid; annotator A covers the top-left quadrant, B the top half
    px = g.human_pixel_mask(4, 4, [[(0, 0, 2, 2)], [(0, 0, 4, 2)]])
    assert px[:2, :2].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert px[:2, 2:].tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert px[2:].sum() == 0
    assert g.patch_means(px, 2).tolist() == [1.0, 0.5, 0.0, 0.0]
    # two boxes of one annotator count once
    assert g.human_pixel_mask(2, 2, [[(0, 0, 2, 2), (0, 0, 1, 1)]]).max() == 1.0


def test_patch_grid_covers_every_pixel_once() -> None:
    index = g.patch_index_map(10, 7, 3)
    assert sorted(set(index.ravel().tolist())) == list(range(9))
    assert index[0, 0] == 0 and index[9, 6] == 8
    with pytest.raises(ValueError):
        g.patch_bounds(4, 4, 5)


def test_token_f1_and_auprc_by_hand() -> None:
    truth = np.array([1, 1, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.1, 0.8, 0.0, 0.2])
    chosen = g.top_k(scores, 2)  # words 0 and 2
    assert chosen.tolist() == [True, False, True, False, False]
    # precision 1/2, recall 1/2
    assert g.token_f1(chosen, truth) == pytest.approx(0.5)
    # ranking 0 (T), 2 (F), 4 (F), 1 (T): AP = (1/1 + 2/4) / 2
    assert g.auprc(scores, truth) == pytest.approx(0.75)
    assert g.auprc(scores, np.zeros(5, dtype=bool)) is None
    assert g.token_f1(np.zeros(3, dtype=bool), np.zeros(3, dtype=bool)) is None
    assert g.token_f1(g.top_k(scores, 1), ~truth) == 0.0


def test_pointing_game_and_iou_by_hand() -> None:
    human = np.zeros((4, 4), dtype=bool)
    human[:2, :2] = True  # the top-left quadrant
    cover = g.patch_means(human.astype(float), 2)
    assert g.pointing_game(np.array([0.9, 0.1, 0.0, 0.0]), cover) is True
    assert g.pointing_game(np.array([0.1, 0.9, 0.0, 0.0]), cover) is False
    assert g.pointing_game(np.zeros(4), np.zeros(4)) is None
    # q = 0.25 of 4 patches = the top one
    assert g.iou_top_q(np.array([0.9, 0.1, 0.0, 0.0]), human, 2, 0.25) == 1.0
    assert g.iou_top_q(np.array([0.1, 0.9, 0.0, 0.0]), human, 2, 0.25) == 0.0
    # q = 0.5: patches 0 and 1 (8 px) against 4 human px
    assert g.iou_top_q(np.array([0.9, 0.5, 0.0, 0.0]), human, 2, 0.5) == 0.5


def test_rationale_faithfulness_and_disagreement() -> None:
    assert g.rationale(np.array([0.0, 0.5, 0.4, 1.0])).tolist() == [False, True, False, True]
    assert g.rationale(np.zeros(2), threshold=0.0).tolist() == [False, False]
    assert g.comprehensiveness(0.9, 0.2) == pytest.approx(0.7)
    assert g.sufficiency(0.9, 0.9) == 0.0
    assert g.disagreement([1.0, None, 0.5]) == pytest.approx(0.25)
    assert g.disagreement([None]) is None


def _row(ex: int, category: str, f1: float | None, comp: float) -> dict[str, object]:
    return {
        "example": ex,
        "category": category,
        "predicted": "yes",
        "gold": "yes",
        "text": {"top_k_f1": f1, "auprc": None},
        "image": None,
        "faithfulness": {"human": {"all": {"comprehensiveness": comp}}, "model": {}},
        "disagreement": None if f1 is None else 1 - f1,
    }


def test_report_means_groups_and_ranks() -> None:
    rows = [
        _row(1, "synergy", 1.0, 0.5),
        _row(2, "synergy", 0.0, 0.1),
        _row(3, "equivalence", None, 0.3),
        _row(4, "equivalence", 0.5, 0.0),
    ]
    rep = g.grounding_report(rows, resamples=0, seed=0, top=2)
    assert rep["overall"]["text_top_k_f1"]["value"] == pytest.approx(0.5)
    assert rep["overall"]["text_top_k_f1"]["denominator"] == 3
    assert rep["overall"]["human_comprehensiveness_all"]["value"] == pytest.approx(0.225)
    assert rep["overall"]["image_iou"]["value"] is None
    assert list(rep["by_category"]) == ["equivalence", "synergy"]  # the taxonomy's order
    assert rep["by_category"]["synergy"]["examples"] == 2
    assert [d["example"] for d in rep["disagreements"]] == [2, 4]
    again = g.grounding_report(rows * 3, resamples=100, seed=7, top=0)
    assert again == g.grounding_report(rows * 3, resamples=100, seed=7, top=0)
    assert again["overall"]["text_top_k_f1"]["ci95"] is not None
