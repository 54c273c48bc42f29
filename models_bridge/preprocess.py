"""Model input preprocessing driven by a package's model.json (format
counterpoint-torchscript/1), with no Django and no torch: plain numpy, so the MLServer
runtime, the remote client and the in-process adapters share one implementation and its
tests run in microseconds.

Text:  re.findall(token_pattern, text.lower()) → ids (unk for out-of-vocabulary words),
       right-padded with pad_id to max_length. More tokens than max_length is an error
       (code text_too_long): truncating silently would score a different question than
       the one the annotator wrote.
Image: PIL open → convert(mode) → bilinear resize to `size` ([width, height] as PIL
       takes it) when different → float32 / 255 → (x - mean) / std, channels first.
Tabular (an extension of the format): `features` in order → float32, optional mean/std.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

MODALITY_KINDS = ("text", "image", "tabular")
# A decoded image is cached as uint8 (C·H·W bytes, 12 KB at 64x64 RGB): easy-VQA asks
# ~10 questions per image, and a live text draft re-reads the original image every call.
IMAGE_CACHE_BYTES = 64 * 1024 * 1024


class InputError(ValueError):
    """An input the model cannot take. `code` names the broken rule (text_too_long,
    image_undecodable, ...); the message is a sentence a person can act on."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class SpecError(ValueError):
    """A malformed preprocessing section in a model.json."""


@dataclass(frozen=True)
class ImageValue:
    """An image input: its content hash (the cache key) and either its bytes or a path to
    read them from only when the pixels are actually needed (a cache hit never reads)."""

    sha256: str
    data: bytes | None = None
    path: str | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise InputError(f"image {self.sha256[:12]} has no bytes", code="image_missing")
        try:
            with open(self.path, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise InputError(
                f"image {self.sha256[:12]} cannot be read: {exc}", code="image_missing"
            ) from None


def _require(spec: Mapping[str, Any], key: str, modality: str) -> Any:
    if key not in spec:
        raise SpecError(f"preprocessing.{modality} lacks {key!r}")
    return spec[key]


@dataclass(frozen=True)
class TextPreprocessor:
    vocab: tuple[str, ...]
    max_length: int
    pad_id: int = 0
    unk_id: int = 1
    lowercase: bool = True
    token_pattern: str = "[a-z0-9]+"
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], modality: str = "text") -> TextPreprocessor:
        vocab = _require(spec, "vocab", modality)
        max_length = _require(spec, "max_length", modality)
        if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab) or not vocab:
            raise SpecError(f"preprocessing.{modality}.vocab must be a non-empty list of strings")
        if not isinstance(max_length, int) or max_length < 1:
            raise SpecError(f"preprocessing.{modality}.max_length must be a positive integer")
        pad_id, unk_id = spec.get("pad_id", 0), spec.get("unk_id", 1)
        for key, value in (("pad_id", pad_id), ("unk_id", unk_id)):
            if not isinstance(value, int) or not 0 <= value < len(vocab):
                raise SpecError(f"preprocessing.{modality}.{key} must index the vocabulary")
        pattern = spec.get("token_pattern", "[a-z0-9]+")
        try:
            regex = re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise SpecError(
                f"preprocessing.{modality}.token_pattern is not a regex: {exc}"
            ) from None
        return cls(
            vocab=tuple(vocab),
            max_length=max_length,
            pad_id=pad_id,
            unk_id=unk_id,
            lowercase=bool(spec.get("lowercase", True)),
            token_pattern=pattern,
            _index={w: i for i, w in enumerate(vocab)},
            _regex=regex,
        )

    def tokens(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise InputError(
                f"text must be a string, got {type(text).__name__}", code="text_not_a_string"
            )
        assert self._regex is not None
        return self._regex.findall(text.lower() if self.lowercase else text)

    def ids(self, text: str) -> list[int]:
        words = self.tokens(text)
        if len(words) > self.max_length:
            raise InputError(
                f"the text has {len(words)} tokens; this model reads at most {self.max_length}",
                code="text_too_long",
            )
        unk = self.unk_id
        ids = [self._index.get(w, unk) for w in words]
        return ids + [self.pad_id] * (self.max_length - len(ids))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """(B, max_length) int64."""
        out = np.empty((len(texts), self.max_length), dtype=np.int64)
        for i, text in enumerate(texts):
            out[i] = self.ids(text)
        return out


class _ImageCache:
    """Byte-bounded LRU of decoded uint8 images keyed by (sha256, mode, size)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, tuple[int, int]], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, tuple[int, int]]) -> np.ndarray | None:
        with self._lock:
            arr = self._items.get(key)
            if arr is not None:
                self._items.move_to_end(key)
            return arr

    def put(self, key: tuple[str, str, tuple[int, int]], arr: np.ndarray) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = arr
            self._bytes += arr.nbytes
            while self._bytes > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


IMAGE_CACHE = _ImageCache(IMAGE_CACHE_BYTES)


def decode_image_bytes(data: bytes, *, mode: str, size: tuple[int, int]) -> np.ndarray:
    """(C, H, W) uint8 from encoded bytes, per the spec's decode steps."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            img = im.convert(mode)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise InputError(f"the image cannot be decoded: {exc}", code="image_undecodable") from None
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


@dataclass(frozen=True)
class ImagePreprocessor:
    size: tuple[int, int]  # (width, height), as PIL takes it
    mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], modality: str = "image") -> ImagePreprocessor:
        size = _require(spec, "size", modality)
        mode = spec.get("mode", "RGB")
        if (
            not isinstance(size, list | tuple)
            or len(size) != 2
            or not all(isinstance(s, int) and s > 0 for s in size)
        ):
            raise SpecError(f"preprocessing.{modality}.size must be [width, height]")
        try:
            bands = len(Image.new(mode, (1, 1)).getbands())
        except (ValueError, TypeError):
            raise SpecError(f"preprocessing.{modality}.mode {mode!r} is not a PIL mode") from None
        mean = tuple(float(x) for x in spec.get("mean", [0.0] * bands))
        std = tuple(float(x) for x in spec.get("std", [1.0] * bands))
        if len(mean) != bands or len(std) != bands or any(s <= 0 for s in std):
            raise SpecError(
                f"preprocessing.{modality} needs {bands} mean and {bands} positive std values for mode {mode}"
            )
        return cls(size=(size[0], size[1]), mode=mode, mean=mean, std=std)

    @property
    def channels(self) -> int:
        return len(self.mean)

    def decode(self, value: ImageValue | bytes) -> np.ndarray:
        """(C, H, W) uint8, cached by content hash."""
        if isinstance(value, bytes | bytearray):
            return decode_image_bytes(bytes(value), mode=self.mode, size=self.size)
        if not isinstance(value, ImageValue):
            raise InputError(
                f"an image input must be bytes, got {type(value).__name__}",
                code="image_undecodable",
            )
        key = (value.sha256, self.mode, self.size)
        arr = IMAGE_CACHE.get(key)
        if arr is None:
            arr = decode_image_bytes(value.read(), mode=self.mode, size=self.size)
            IMAGE_CACHE.put(key, arr)
        return arr

    def normalise(self, stack: np.ndarray) -> np.ndarray:
        """uint8 (B, C, H, W) → normalised float32 (B, C, H, W)."""
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return (stack.astype(np.float32) / np.float32(255.0) - mean) / std

    def __call__(self, values: Sequence[ImageValue | bytes]) -> np.ndarray:
        width, height = self.size
        stack = np.empty((len(values), self.channels, height, width), dtype=np.uint8)
        for i, value in enumerate(values):
            stack[i] = self.decode(value)
        return self.normalise(stack)


@dataclass(frozen=True)
class TabularPreprocessor:
    features: tuple[str, ...]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], modality: str = "tabular") -> TabularPreprocessor:
        features = _require(spec, "features", modality)
        if (
            not isinstance(features, list)
            or not features
            or not all(isinstance(f, str) for f in features)
        ):
            raise SpecError(f"preprocessing.{modality}.features must be a non-empty list of names")
        mean = spec.get("mean")
        std = spec.get("std")
        for key, vals in (("mean", mean), ("std", std)):
            if vals is not None and (not isinstance(vals, list) or len(vals) != len(features)):
                raise SpecError(f"preprocessing.{modality}.{key} needs one number per feature")
        return cls(
            features=tuple(features),
            mean=tuple(float(x) for x in mean) if mean is not None else None,
            std=tuple(float(x) for x in std) if std is not None else None,
        )

    def row(self, value: Any) -> list[float]:
        if not isinstance(value, Mapping):
            raise InputError(
                "a tabular value must be an object {feature: number}", code="tabular_not_an_object"
            )
        missing = [f for f in self.features if f not in value]
        if missing:
            raise InputError(
                f"tabular value lacks features: {', '.join(missing)}",
                code="tabular_feature_missing",
            )
        out = []
        for f in self.features:
            v = value[f]
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
                raise InputError(
                    f"feature {f!r} must be a finite number, got {v!r}", code="tabular_not_a_number"
                )
            out.append(float(v))
        return out

    def __call__(self, values: Sequence[Any]) -> np.ndarray:
        x: np.ndarray = np.asarray([self.row(v) for v in values], dtype=np.float32).reshape(
            len(values), len(self.features)
        )
        if self.mean is not None:
            x = x - np.asarray(self.mean, dtype=np.float32)
        if self.std is not None:
            x = x / np.asarray(self.std, dtype=np.float32)
        return x


Preprocessor = TextPreprocessor | ImagePreprocessor | TabularPreprocessor


def preprocessor_from_spec(spec: Mapping[str, Any], modality: str) -> Preprocessor:
    if not isinstance(spec, Mapping):
        raise SpecError(f"preprocessing.{modality} must be an object")
    kind = spec.get("kind")
    if kind == "text":
        return TextPreprocessor.from_spec(spec, modality)
    if kind == "image":
        return ImagePreprocessor.from_spec(spec, modality)
    if kind == "tabular":
        return TabularPreprocessor.from_spec(spec, modality)
    raise SpecError(
        f"preprocessing.{modality}.kind must be one of {', '.join(MODALITY_KINDS)}, got {kind!r}"
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (probabilities are stored and compared, so no float32 drift)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
