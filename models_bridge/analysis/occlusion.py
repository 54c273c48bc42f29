"""Model evidence for the grounding analysis (docs/analysis.md "Grounding"): occlusion
attributions for any adapter, and Integrated Gradients where the model is in process.

Occlusion is black-box, so a remote model answers it too: Captum's FeatureAblation runs a
forward function over the adapter with one feature per word and one per image patch (a GxG
grid over the source pixels, models_bridge/analysis/grounding.py). A word is removed by
cutting it out of the text (`word_mode` "drop") or by replacing it with a word the model
does not know ("unk"); a patch is filled with the dataset's background colour (the
ablation's null-input colour, models_bridge/analysis/data.py). A feature's attribution is
the drop in the predicted label's logit when it alone is removed. Examples with the same
image size and word count go through Captum together, so one model call carries many
examples' occluded inputs.

The forward function builds model inputs from pixels and strings. For an in-process
TorchScript package it preprocesses them with the package's own preprocessors and calls
`adapter.run` (no PNG round trip); for any other adapter it encodes PNGs and calls
`adapter.predict`, as a remote model receives them."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models_bridge.adapters.base import Adapter, Batch
from models_bridge.analysis.grounding import Span, patch_index_map
from models_bridge.preprocess import ImagePreprocessor, ImageValue, TextPreprocessor

WORD_MODES = ("drop", "unk")
# Occluded inputs per model call: the bulk scorer's batch size.
OCCLUSION_BATCH = 256
IG_STEPS = 32
# One Captum call's occluded inputs: at most this many rows and numbers (16M float32: 64 MB).
CALL_ROWS = 8192
CALL_ELEMENTS = 16 * 1024 * 1024


@dataclass
class Item:
    """One example's occludable inputs: its text and word spans, its source pixels."""

    text: str | None
    words: list[Span]
    image: np.ndarray | None  # (H, W, 3) uint8


def decode_rgb(value: Any) -> np.ndarray:
    from PIL import Image

    data = value.read() if isinstance(value, ImageValue) else bytes(value)
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _png(pixels: np.ndarray) -> ImageValue:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    data = buf.getvalue()
    return ImageValue(sha256=hashlib.sha256(data).hexdigest(), data=data)


def edit_text(text: str, words: Sequence[Span], keep: np.ndarray, replacement: str | None) -> str:
    """The text with the words whose `keep` is below one half cut out (replacement None) or
    replaced by `replacement`; other characters are left as they were."""
    out, pos = [], 0
    for (s, e), k in zip(words, keep, strict=True):
        if k >= 0.5:
            continue
        out.append(text[pos:s])
        if replacement is not None:
            out.append(replacement)
        pos = e
    out.append(text[pos:])
    return "".join(out)


class Occluder:
    """Occlusion attributions and probabilities on edited inputs for one adapter."""

    def __init__(
        self,
        adapter: Adapter,
        *,
        text_modality: str | None,
        image_modality: str | None,
        background: tuple[int, int, int],
        grid: int,
        word_mode: str = "drop",
        batch: int = OCCLUSION_BATCH,
    ) -> None:
        if word_mode not in WORD_MODES:
            raise ValueError(f"word_mode must be one of {WORD_MODES}")
        self.adapter = adapter
        reads = set(adapter.modalities)
        self.text_modality = text_modality if text_modality in reads else None
        self.image_modality = image_modality if image_modality in reads else None
        # The modalities the model reads but does not have occluded: passed through unchanged.
        self.background = np.asarray(background, dtype=np.uint8)
        self.grid = grid
        self.word_mode = word_mode
        self.batch = batch
        pre = getattr(adapter, "preprocessors", None) or {}
        self.text_pre = pre.get(self.text_modality) if self.text_modality else None
        self.image_pre = pre.get(self.image_modality) if self.image_modality else None
        self.prepared = (
            hasattr(adapter, "prepare_modality")
            and all(m in pre for m in adapter.modalities)
            and (self.image_modality is None or isinstance(self.image_pre, ImagePreprocessor))
            and (self.text_modality is None or isinstance(self.text_pre, TextPreprocessor))
        )
        self.replacement = self._unknown_word() if word_mode == "unk" else None
        self.calls = 0
        self.rows = 0

    def _unknown_word(self) -> str:
        """A word the model's vocabulary lacks (checked against it when it declares one)."""
        vocab = set(self.text_pre.vocab) if isinstance(self.text_pre, TextPreprocessor) else set()
        word, k = "unk", 0
        while word in vocab:
            k += 1
            word = f"unk{k}"
        return word

    def record(self) -> dict[str, Any]:
        return {
            "method": "occlusion",
            "implementation": "captum.attr.FeatureAblation",
            "target": "logit of the predicted label",
            "grid": self.grid,
            "patch_fill": [int(c) for c in self.background],
            "word_mode": self.word_mode,
            "unknown_word": self.replacement,
            "path": "preprocessed tensors" if self.prepared else "raw values (PNG, text)",
            "occluded": [m for m in (self.text_modality, self.image_modality) if m],
        }

    # --- the model on pixels and strings ------------------------------------------------
    def logits(self, texts: Sequence[str] | None, images: Sequence[np.ndarray] | None) -> Any:
        """(B, C) float32 logits for B edited inputs (each a list or None when that
        modality is not occluded; other modalities come from `self.fixed`)."""
        size = len(texts) if texts is not None else len(images or [])
        out = []
        for s in range(0, size, self.batch):
            e = min(size, s + self.batch)
            t = texts[s:e] if texts is not None else None
            im = images[s:e] if images is not None else None
            out.append(self._logits(t, im, e - s))
        return np.concatenate(out) if out else np.zeros((0, len(self.adapter.labels)))

    def _logits(
        self, texts: Sequence[str] | None, images: Sequence[np.ndarray] | None, size: int
    ) -> np.ndarray:
        self.calls += 1
        self.rows += size
        if self.prepared:
            import torch

            inputs: dict[str, Any] = {}
            if texts is not None and self.text_pre is not None:
                inputs[self.text_modality or ""] = torch.from_numpy(self.text_pre(texts))
            if images is not None and isinstance(self.image_pre, ImagePreprocessor):
                inputs[self.image_modality or ""] = torch.from_numpy(
                    self._image_tensor(self.image_pre, images)
                )
            return np.asarray(self.adapter.run(inputs))
        cols: dict[str, list[Any]] = {}
        if texts is not None and self.text_modality:
            cols[self.text_modality] = list(texts)
        if images is not None and self.image_modality:
            cols[self.image_modality] = [_png(p) for p in images]
        return np.asarray(self.adapter.predict(Batch(cols)))

    @staticmethod
    def _image_tensor(pre: ImagePreprocessor, images: Sequence[np.ndarray]) -> np.ndarray:
        width, height = pre.size
        stack = np.stack(images)
        if stack.shape[1:3] != (height, width) or pre.mode != "RGB":
            from PIL import Image

            resized = []
            for p in images:
                img = Image.fromarray(p).convert(pre.mode)
                if img.size != (width, height):
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
                resized.append(arr[:, :, None] if arr.ndim == 2 else arr)
            stack = np.stack(resized)
        return pre.normalise(np.ascontiguousarray(stack.transpose(0, 3, 1, 2)))

    # --- edited inputs ------------------------------------------------------------------
    def fill(self, pixels: np.ndarray, patch_keep: np.ndarray) -> np.ndarray:
        """The image with the patches whose keep is below one half filled with background."""
        h, w, _ = pixels.shape
        off = np.asarray(patch_keep) < 0.5
        if not off.any():
            return pixels
        out = pixels.copy()
        out[off[patch_index_map(h, w, self.grid)]] = self.background
        return out

    def edited_logits(
        self,
        items: Sequence[Item],
        word_keep: Sequence[np.ndarray | None],
        patch_keep: Sequence[np.ndarray | None],
    ) -> np.ndarray:
        """Logits on each item with the given words and patches kept (None: all kept)."""
        texts = (
            [
                it.text or ""
                if k is None
                else edit_text(it.text or "", it.words, k, self.replacement)
                for it, k in zip(items, word_keep, strict=True)
            ]
            if self.text_modality
            else None
        )
        images = (
            [
                it.image if k is None else self.fill(it.image, k)  # type: ignore[arg-type]
                for it, k in zip(items, patch_keep, strict=True)
            ]
            if self.image_modality
            else None
        )
        return np.asarray(self.logits(texts, images))  # type: ignore[arg-type]

    # --- occlusion attributions ---------------------------------------------------------
    def attributions(
        self, items: Sequence[Item], targets: Sequence[int], progress: Callable[[int, int], None]
    ) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
        """Per item (word attributions (L,), patch attributions (G*G,)), None for a modality
        not occluded."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, it in enumerate(items):
            shape = it.image.shape[:2] if self.image_modality and it.image is not None else ()
            groups.setdefault((len(it.words) if self.text_modality else 0, *shape), []).append(i)
        words_out: list[np.ndarray | None] = [None] * len(items)
        patches_out: list[np.ndarray | None] = [None] * len(items)
        done = 0
        for key, members in groups.items():
            n_words = key[0]
            features = (n_words if self.text_modality else 0) + (
                self.grid * self.grid if self.image_modality else 0
            )
            # Examples per Captum call: its occluded inputs stay under CALL_ELEMENTS numbers
            # (Captum builds them all at once), and the model still sees `batch`-row calls.
            per_row = (n_words if self.text_modality else 0) + (
                int(np.prod(key[1:])) * 3 if self.image_modality and len(key) > 1 else 0
            )
            rows = max(self.batch, min(CALL_ROWS, CALL_ELEMENTS // max(1, per_row)))
            per_call = max(1, rows // max(1, features))
            for s in range(0, len(members), per_call):
                chunk = members[s : s + per_call]
                w, p = self._captum(
                    [items[i] for i in chunk], [targets[i] for i in chunk], n_words, features
                )
                for j, i in enumerate(chunk):
                    words_out[i] = w[j] if w is not None else None
                    patches_out[i] = p[j] if p is not None else None
                done += len(chunk)
                progress(done, len(items))
        return words_out, patches_out

    def _captum(
        self, items: Sequence[Item], targets: Sequence[int], n_words: int, features: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        import torch
        from captum.attr import FeatureAblation

        n = len(items)
        inputs: list[Any] = []
        baselines: list[Any] = []
        masks: list[Any] = []
        offset = 0
        if self.image_modality:
            pixels = torch.from_numpy(
                np.stack([np.asarray(it.image) for it in items]).astype(np.float32)
            )
            h, w = pixels.shape[1:3]
            inputs.append(pixels)
            baselines.append(
                torch.from_numpy(self.background.astype(np.float32)).reshape(1, 1, 1, 3)
            )
            index = torch.from_numpy(patch_index_map(h, w, self.grid))
            masks.append(index.reshape(1, h, w, 1).expand(1, h, w, 3))
            offset = self.grid * self.grid
        if self.text_modality:
            inputs.append(torch.ones((n, max(1, n_words))))
            baselines.append(0.0)
            word_ids = torch.arange(offset, offset + max(1, n_words)).reshape(1, -1)
            masks.append(word_ids)

        fast = self._tensor_forward(items, n_words)

        def forward(*tensors: Any) -> Any:
            if fast is not None:
                return fast(*tensors)
            rows = int(tensors[0].shape[0])
            k = 0
            images = None
            texts = None
            if self.image_modality:
                images = list(tensors[k].round().clamp(0, 255).to(torch.uint8).numpy())
                k += 1
            if self.text_modality:
                keep = tensors[k].numpy()
                texts = [
                    edit_text(
                        items[r % n].text or "",
                        items[r % n].words,
                        keep[r, :n_words],
                        self.replacement,
                    )
                    for r in range(rows)
                ]
            return torch.from_numpy(np.asarray(self.logits(texts, images), dtype=np.float32))

        ablation = FeatureAblation(forward)
        with torch.no_grad():
            attr = ablation.attribute(
                tuple(inputs),
                baselines=tuple(baselines),
                target=[int(t) for t in targets],
                feature_mask=tuple(masks),
                perturbations_per_eval=max(1, features),
            )
        k = 0
        patches = words = None
        if self.image_modality:
            a = attr[k].numpy()
            h, w = a.shape[1:3]
            first = [(t, le) for t, _b, le, _r in _bounds(h, w, self.grid)]
            patches = np.stack([[a[j, t, le, 0] for t, le in first] for j in range(n)])
            k += 1
        if self.text_modality:
            words = attr[k].numpy()[:, :n_words].astype(np.float64)
        return words, patches

    def _tensor_forward(self, items: Sequence[Item], n_words: int) -> Callable[..., Any] | None:
        """For a TorchScript package whose preprocessing is a token lookup and a per-channel
        normalisation at the images' own size: the occluded inputs built as tensors (the same
        numbers its preprocessors give the edited strings and pixels, without them: a word is
        one token of its own pattern, so dropping it drops its id and pads at the end, and the
        unknown word is its unknown id). None where that does not hold."""
        import torch

        if not self.prepared:
            return None
        text_pre = self.text_pre if isinstance(self.text_pre, TextPreprocessor) else None
        image_pre = self.image_pre if isinstance(self.image_pre, ImagePreprocessor) else None
        if image_pre is not None:
            shape = items[0].image.shape if items[0].image is not None else None
            if image_pre.mode != "RGB" or shape is None or shape[:2] != image_pre.size[::-1]:
                return None
        n = len(items)
        base = None
        if text_pre is not None:
            ids = text_pre([it.text or "" for it in items])
            if n_words and (ids[:, :n_words] == text_pre.pad_id).any():
                return None  # a word its tokenizer does not see as one token
            base = torch.from_numpy(ids)
        mean = torch.tensor(image_pre.mean).reshape(1, 1, 1, -1) if image_pre else None
        std = torch.tensor(image_pre.std).reshape(1, 1, 1, -1) if image_pre else None
        length = text_pre.max_length if text_pre else 0

        def forward(*tensors: Any) -> Any:
            rows = int(tensors[0].shape[0])
            inputs: dict[str, Any] = {}
            k = 0
            if self.image_modality and image_pre is not None:
                x = tensors[k].round().clamp(0, 255) / 255.0
                inputs[self.image_modality] = ((x - mean) / std).permute(0, 3, 1, 2).contiguous()
                k += 1
            if self.text_modality and text_pre is not None and base is not None:
                ids = base[torch.arange(rows) % n]
                if n_words:
                    keep = torch.ones((rows, length), dtype=torch.bool)
                    keep[:, :n_words] = tensors[k][:, :n_words] >= 0.5
                    if self.replacement is not None:
                        ids = torch.where(keep, ids, torch.full_like(ids, text_pre.unk_id))
                    else:
                        # kept ids first in their order, then padding
                        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
                        ids = torch.where(
                            torch.gather(keep, 1, order),
                            torch.gather(ids, 1, order),
                            torch.full_like(ids, text_pre.pad_id),
                        )
                inputs[self.text_modality] = ids
            out = []
            for s in range(0, rows, self.batch):
                part = {m: v[s : s + self.batch] for m, v in inputs.items()}
                self.calls += 1
                self.rows += int(next(iter(part.values())).shape[0])
                out.append(torch.from_numpy(np.asarray(self.adapter.run(part), dtype=np.float32)))
            return torch.cat(out)

        return forward


def _bounds(h: int, w: int, grid: int) -> list[tuple[int, int, int, int]]:
    from models_bridge.analysis.grounding import patch_bounds

    return patch_bounds(h, w, grid)


def integrated_gradients(
    adapter: Adapter,
    *,
    items: Sequence[Item],
    targets: Sequence[int],
    image_modality: str | None,
    text_modality: str | None,
    background: tuple[int, int, int],
    grid: int,
    steps: int = IG_STEPS,
) -> tuple[dict[str, Any], list[np.ndarray] | None]:
    """(record, per item (G*G,) patch sums of Captum's Integrated Gradients on the image
    input, from the background-colour image) for an in-process TorchScript package whose
    forward is differentiable in its image tensor; otherwise the record says why not and
    the attributions are None."""
    record: dict[str, Any] = {
        "method": "integrated_gradients",
        "implementation": "captum.attr.IntegratedGradients",
        "input": image_modality,
        "baseline": "background colour",
        "steps": steps,
        "grid": grid,
        "target": "logit of the predicted label",
    }
    module = getattr(adapter, "module", None)
    pre = getattr(adapter, "preprocessors", None) or {}
    image_pre = pre.get(image_modality) if image_modality else None
    if module is None or not isinstance(image_pre, ImagePreprocessor):
        record["available"] = False
        record["reason"] = "the model is not an in-process package with a preprocessed image input"
        return record, None
    import torch
    from captum.attr import IntegratedGradients

    others = [m for m in adapter.modalities if m != image_modality]
    if any(m != text_modality or not isinstance(pre.get(m), TextPreprocessor) for m in others):
        record["available"] = False
        record["reason"] = "the model reads inputs other than one image and one text"
        return record, None
    width, height = image_pre.size
    out: list[np.ndarray] = []
    for it, target in zip(items, targets, strict=True):
        assert it.image is not None
        x = torch.from_numpy(Occluder._image_tensor(image_pre, [it.image]))
        bg = np.broadcast_to(background, it.image.shape).astype(np.uint8)
        base = torch.from_numpy(Occluder._image_tensor(image_pre, [bg]))
        fixed: dict[str, Any] = {}
        if text_modality in adapter.modalities:
            fixed[text_modality or ""] = torch.from_numpy(pre[text_modality]([it.text or ""]))

        def forward(img: Any, fixed: dict[str, Any] = fixed) -> Any:
            inputs = {k: v.expand(img.shape[0], -1) for k, v in fixed.items()}
            inputs[image_modality or ""] = img
            return module(inputs)

        try:
            with torch.enable_grad():
                attr = IntegratedGradients(forward).attribute(
                    x, baselines=base, target=int(target), n_steps=steps
                )
        except RuntimeError as exc:  # a module without a gradient path (e.g. integer ops)
            record["available"] = False
            record["reason"] = f"no gradient through the image input: {exc}"[:300]
            return record, None
        per_pixel = attr.detach().sum(dim=1)[0].numpy()
        index = patch_index_map(height, width, grid)
        out.append(np.bincount(index.ravel(), weights=per_pixel.ravel(), minlength=grid * grid))
    record["available"] = True
    return record, out
