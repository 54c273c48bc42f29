"""A Python entry point model for the tests: eager PyTorch with data-dependent Python
control flow (a dict lookup per word), the kind of model that will not script."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from models_bridge.adapters.base import Adapter, Batch, InputError

LABELS = ["yes", "no"]


class KeywordModel(torch.nn.Module):
    def __init__(self, keyword: str) -> None:
        super().__init__()
        self.keyword = keyword
        self.bias = torch.nn.Parameter(torch.tensor([2.0, -2.0]))

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        rows = [
            self.bias if self.keyword in re.findall(r"[a-z]+", t.lower()) else -self.bias
            for t in texts
        ]
        return torch.stack(rows)


class KeywordAdapter(Adapter):
    kind = "entrypoint"
    labels = LABELS
    modalities = ["text"]
    factorized = False

    def __init__(self, keyword: str = "circle") -> None:
        self.model = KeywordModel(keyword).eval()

    def prepare(self, batch: Batch) -> Batch:
        for t in batch.column("text"):
            if len(t) > 200:
                raise InputError("the text is over 200 characters", code="text_too_long")
        return batch

    def predict(self, batch: Batch) -> np.ndarray:
        with torch.inference_mode():
            return self.model(list(batch.column("text"))).numpy()


def make_adapter(keyword: str = "circle") -> KeywordAdapter:
    return KeywordAdapter(keyword)


def broken_adapter() -> Any:
    class Broken:
        labels = LABELS
        modalities = ["text"]

        def predict(self, batch: Batch) -> Any:
            raise RuntimeError("boom")

    return Broken()


def wrong_shape_adapter() -> Any:
    class Wrong:
        labels = LABELS
        modalities = ["text"]

        def predict(self, batch: Batch) -> Any:
            return np.zeros((batch.size, 5))

    return Wrong()


SLOW_CALLS: list[int] = []


def slow_adapter(delay: float = 1.0) -> Any:
    """Answers after `delay` seconds; counts the calls that reached it."""
    import time

    class Slow:
        labels = LABELS
        modalities = ["text"]

        def predict(self, batch: Batch) -> np.ndarray:
            SLOW_CALLS.append(batch.size)
            time.sleep(delay)
            return np.zeros((batch.size, 2), dtype=np.float32)

    return Slow()


class WordQuadrantAdapter(Adapter):
    """Reads, by construction, only one word of the text and the top-left quadrant of the
    image: logit(yes) = 2·[the word is in the text] + 4·(share of dark pixels in the top-left
    quadrant), logit(no) = 1. Everything else in the inputs cannot change its answer."""

    kind = "entrypoint"
    labels = LABELS
    modalities = ["image", "text"]
    factorized = False

    def __init__(self, word: str = "circle") -> None:
        self.word = word

    def predict(self, batch: Batch) -> np.ndarray:
        import io

        from PIL import Image

        out = np.empty((batch.size, 2), dtype=np.float32)
        for i, (text, image) in enumerate(
            zip(batch.column("text"), batch.column("image"), strict=True)
        ):
            with Image.open(io.BytesIO(image.read())) as im:
                px = np.asarray(im.convert("RGB"), dtype=np.float32)
            h, w = px.shape[:2]
            dark = float((px[: h // 2, : w // 2].mean(axis=2) < 128).mean())
            has_word = self.word in re.findall(r"[a-z]+", text.lower())
            out[i] = (2.0 * has_word + 4.0 * dark, 1.0)
        return out


def word_quadrant_adapter(word: str = "circle") -> WordQuadrantAdapter:
    return WordQuadrantAdapter(word)
