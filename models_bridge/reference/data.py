"""easy-VQA as tensors, with the exact preprocessing recorded in each model.json.

The tokenizer and image normalisation here are the reference implementation of the
"counterpoint-torchscript/1" preprocessing spec: whatever the loader does from model.json
must reproduce these tensors, and the tests check that it does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

TOKEN_PATTERN = "[a-z0-9]+"
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
# Longest easy-VQA question is 9 tokens; 16 leaves room for hand-written
# counterfactual questions without the loader rejecting them.
MAX_LENGTH = 16
IMAGE_SIZE = (64, 64)

YES_NO = frozenset({"yes", "no"})
SHAPES = frozenset({"circle", "rectangle", "triangle"})
QUESTION_TYPES = ("yes_no", "colour", "shape")


def question_type(answer: str) -> str:
    """Classify a question by its answer: yes/no, shape, otherwise colour."""
    if answer in YES_NO:
        return "yes_no"
    if answer in SHAPES:
        return "shape"
    return "colour"


@dataclass(frozen=True)
class Tokenizer:
    vocab: tuple[str, ...]
    max_length: int = MAX_LENGTH

    @classmethod
    def from_texts(cls, texts: Sequence[str], max_length: int = MAX_LENGTH) -> Tokenizer:
        # Sorted so the vocabulary (and hence every embedding row) does not depend
        # on question order.
        words = sorted({w for text in texts for w in re.findall(TOKEN_PATTERN, text.lower())})
        return cls((PAD, UNK, *words), max_length)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Tokenizer:
        return cls(tuple(spec["vocab"]), int(spec["max_length"]))

    def tokenize(self, text: str) -> list[int]:
        index = {w: i for i, w in enumerate(self.vocab)}
        ids = [index.get(w, UNK_ID) for w in re.findall(TOKEN_PATTERN, text.lower())]
        if len(ids) > self.max_length:
            raise ValueError(f"{len(ids)} tokens > max_length {self.max_length}: {text!r}")
        return ids + [PAD_ID] * (self.max_length - len(ids))

    def encode(self, texts: Sequence[str]) -> Tensor:
        """(B, max_length) LongTensor, right-padded with pad_id."""
        return torch.tensor([self.tokenize(t) for t in texts], dtype=torch.long).reshape(
            len(texts), self.max_length
        )

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "text",
            "lowercase": True,
            "token_pattern": TOKEN_PATTERN,
            "vocab": list(self.vocab),
            "pad_id": PAD_ID,
            "unk_id": UNK_ID,
            "max_length": self.max_length,
        }


def read_image(path: str | Path) -> np.ndarray:
    """(3, H, W) uint8 per the spec: PIL open -> RGB -> bilinear resize if needed."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if rgb.size != IMAGE_SIZE:
            rgb = rgb.resize(IMAGE_SIZE, Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()


@dataclass(frozen=True)
class ImageNorm:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_uint8(cls, images: Tensor) -> ImageNorm:
        x = images.to(torch.float64) / 255.0
        # Rounded so the floats in model.json are exactly the ones used in training.
        mean = tuple(round(float(v), 6) for v in x.mean(dim=(0, 2, 3)))
        std = tuple(round(float(v), 6) for v in x.std(dim=(0, 2, 3)))
        return cls(mean, std)  # type: ignore[arg-type]

    def apply(self, images: Tensor) -> Tensor:
        """uint8 (B, 3, H, W) -> normalised float32 (B, 3, H, W)."""
        x = images.to(torch.float32) / 255.0
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x - mean) / std

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "image",
            "size": list(IMAGE_SIZE),
            "mode": "RGB",
            "mean": list(self.mean),
            "std": list(self.std),
        }


@dataclass(frozen=True)
class Split:
    texts: list[str]
    answers: list[str]
    tokens: Tensor  # (N, L) long
    labels: Tensor  # (N,) long, index into get_answers()
    image_rows: Tensor  # (N,) long, row of `images` for each question
    images: Tensor  # (M, 3, 64, 64) uint8, each image stored once
    image_ids: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def qtypes(self) -> list[str]:
        return [question_type(a) for a in self.answers]


@dataclass(frozen=True)
class EasyVQA:
    labels: list[str]
    tokenizer: Tokenizer
    norm: ImageNorm
    train: Split
    test: Split


def _load_split(
    questions: tuple[list[str], list[str], list[int]],
    paths: dict[int, str],
    tokenizer: Tokenizer,
    label_index: dict[str, int],
) -> Split:
    texts, answers, qids = list(questions[0]), list(questions[1]), list(questions[2])
    ids = sorted(paths)
    row = {image_id: i for i, image_id in enumerate(ids)}
    images = torch.from_numpy(np.stack([read_image(paths[i]) for i in ids]))
    return Split(
        texts=texts,
        answers=answers,
        tokens=tokenizer.encode(texts),
        labels=torch.tensor([label_index[a] for a in answers], dtype=torch.long),
        image_rows=torch.tensor([row[i] for i in qids], dtype=torch.long),
        images=images,
        image_ids=ids,
    )


def load_easy_vqa() -> EasyVQA:
    """Load both splits; the tokenizer and image statistics come from train only."""
    import easy_vqa

    labels = list(easy_vqa.get_answers())
    label_index = {a: i for i, a in enumerate(labels)}
    train_q = easy_vqa.get_train_questions()
    tokenizer = Tokenizer.from_texts(train_q[0])
    train = _load_split(train_q, easy_vqa.get_train_image_paths(), tokenizer, label_index)
    test = _load_split(
        easy_vqa.get_test_questions(), easy_vqa.get_test_image_paths(), tokenizer, label_index
    )
    return EasyVQA(labels, tokenizer, ImageNorm.from_uint8(train.images), train, test)
