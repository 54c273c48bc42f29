"""Reading the easy-VQA dataset shipped inside the `easy_vqa` package (MIT licence): each
question is an example, its image (64x64 PNG) a media item shared by several questions."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import easy_vqa

from counterpoint.errors import ValidationFailed

SPLITS = ("train", "test")
MODALITIES = [
    {"name": "image", "kind": "image", "label": "Image"},
    {"name": "text", "kind": "text", "label": "Question"},
]
SHAPES = frozenset({"circle", "rectangle", "triangle"})
YES_NO = frozenset({"yes", "no"})


def label_space() -> list[str]:
    return list(easy_vqa.get_answers())


def question_type(answer: str) -> str:
    """The kind of question, read off its answer (easy-VQA asks about colour, shape or yes/no)."""
    if answer in YES_NO:
        return "yes/no"
    if answer in SHAPES:
        return "shape"
    return "colour"


@dataclass(frozen=True)
class Question:
    index: int
    text: str
    answer: str
    image_id: int

    def external_id(self, split: str) -> str:
        return f"{split}-{self.index}"


def read_split(split: str) -> tuple[list[Question], dict[int, Path]]:
    if split not in SPLITS:
        raise ValidationFailed(
            f"easy-VQA has splits {', '.join(SPLITS)}, not {split!r}", code="easyvqa_split"
        )
    if split == "train":
        texts, answers, image_ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    else:
        texts, answers, image_ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    questions = [
        Question(index=i, text=t, answer=a, image_id=int(img))
        for i, (t, a, img) in enumerate(zip(texts, answers, image_ids, strict=True))
    ]
    return questions, {int(k): Path(v) for k, v in paths.items()}


def choose(n: int, *, limit: int | None, seed: int) -> list[int]:
    """Question indices to import: all of them, or a seeded sample of `limit` in index order
    (so the same limit and seed always pick the same questions, and re-runs are no-ops)."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 1:
        raise ValidationFailed(f"limit must be at least 1, not {limit}", code="easyvqa_limit")
    return sorted(random.Random(seed).sample(range(n), limit))
