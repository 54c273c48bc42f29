"""The Adapter interface of docs/models.md and the Batch it reads.

A Batch holds raw values per modality, in the dataset's form: text as a string, image as
an ImageValue (content hash + bytes or a path), tabular as {feature: number}. Adapters
do their own preprocessing so a remote model can receive PNG bytes while an in-process
model receives a normalised tensor.

Prediction is split in two steps so callers can tell a bad input (InputError from
`prepare`, a 4xx for the person who sent it) from a failing model (anything raised by
`run`, which the live path reports as that model being unavailable)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models_bridge.preprocess import ImageValue, InputError

__all__ = [
    "Adapter",
    "Batch",
    "ImageValue",
    "InputError",
    "ModelError",
    "NotFactorized",
    "setting",
]


def setting(name: str, default: Any) -> Any:
    """A Django setting, or `default` where Django is not configured: adapters also run in
    MLServer and in a researcher's packaging script, which have no settings module."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:
        return default


class ModelError(RuntimeError):
    """The model could not answer (load failure, crash, timeout, bad output, circuit open)."""


class NotFactorized(ModelError):
    """encode/fuse asked of a model that does not expose the factorized interface."""


@dataclass(frozen=True)
class Batch:
    values: Mapping[str, Sequence[Any]]

    def __post_init__(self) -> None:
        sizes = {len(v) for v in self.values.values()}
        if len(sizes) > 1:
            raise ValueError(f"batch columns have different lengths: {sorted(sizes)}")

    @property
    def size(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def __len__(self) -> int:
        return self.size

    def column(self, modality: str) -> Sequence[Any]:
        try:
            return self.values[modality]
        except KeyError:
            raise InputError(
                f"the input lacks modality {modality!r}", code="modality_missing"
            ) from None

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], modalities: Sequence[str]) -> Batch:
        cols: dict[str, list[Any]] = {m: [] for m in modalities}
        for row in rows:
            for m in modalities:
                if m not in row:
                    raise InputError(f"the input lacks modality {m!r}", code="modality_missing")
                cols[m].append(row[m])
        return cls(cols)


class Adapter:
    """Subclasses set `labels`, `modalities`, `factorized` and implement `predict`, or the
    two halves `prepare` + `run` (then predict is run(prepare(batch)))."""

    kind: str = "python"
    labels: list[str]
    modalities: list[str]
    factorized: bool = False
    # attention heads that predict_with_head_mask / fuse_with_head_mask can switch off
    heads: int = 0

    def prepare(self, batch: Batch) -> Any:
        """Check and preprocess inputs; raises InputError for inputs the model cannot take."""
        return batch

    def run(self, prepared: Any) -> np.ndarray:
        """(B, C) logits for prepared inputs; raises on model failure."""
        return self.predict(prepared)

    def predict(self, batch: Batch) -> np.ndarray:
        """(B, C) logits, C = len(labels)."""
        if type(self).run is Adapter.run:
            raise NotImplementedError(f"{type(self).__name__} implements neither predict nor run")
        return self.run(self.prepare(batch))

    # Optional factorized interface for fast EMAP and ablations (docs/models.md).
    def encode(self, modality: str, values: Sequence[Any]) -> Any:
        raise NotFactorized(f"{type(self).__name__} does not expose encode()")

    def fuse(self, encodings: Mapping[str, Any]) -> Any:
        raise NotFactorized(f"{type(self).__name__} does not expose fuse()")

    def attention(self, batch: Batch) -> np.ndarray:
        raise NotFactorized(f"{type(self).__name__} does not expose attention()")

    # Optional head interface of attention models (docs/models.md): `head_mask` is a float
    # array of shape (heads,) for the whole batch or (B, heads), 1 keeps a head, 0 removes it.
    def attention_heads(self, batch: Batch) -> np.ndarray:
        """(B, heads, L, R) attention weights of every head."""
        raise NotFactorized(f"{type(self).__name__} does not expose attention_heads()")

    def predict_with_head_mask(self, batch: Batch, head_mask: np.ndarray) -> np.ndarray:
        """(B, C) logits with the heads `head_mask` switches off removed."""
        raise NotFactorized(f"{type(self).__name__} does not expose a head mask")

    def fuse_with_head_mask(self, encodings: Mapping[str, Any], head_mask: np.ndarray) -> Any:
        """fuse(encodings) with the heads `head_mask` switches off removed."""
        raise NotFactorized(f"{type(self).__name__} does not expose a head mask")

    def health(self) -> dict[str, Any]:
        """Raise ModelError when the model cannot answer; return details otherwise."""
        return {}


def check_head_mask(head_mask: Any, *, heads: int, batch_size: int) -> np.ndarray:
    """A head mask as float32, shape (heads,) or (batch_size, heads); raises InputError."""
    try:
        arr = np.asarray(head_mask, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError("a head mask must be numbers", code="head_mask_invalid") from None
    if arr.shape not in ((heads,), (batch_size, heads)):
        raise InputError(
            f"a head mask has shape ({heads},) or ({batch_size}, {heads}), not {arr.shape}",
            code="head_mask_shape",
        )
    if not np.isfinite(arr).all():
        raise InputError("a head mask must be finite", code="head_mask_invalid")
    return arr


def check_logits(logits: Any, *, batch_size: int, num_labels: int, who: str) -> np.ndarray:
    """Models are untrusted: a wrong shape or a NaN is a model failure, not a crash later."""
    try:
        arr = np.asarray(logits, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{who} returned something that is not numbers: {exc}") from None
    if arr.shape != (batch_size, num_labels):
        raise ModelError(
            f"{who} returned logits of shape {arr.shape}, expected ({batch_size}, {num_labels})"
        )
    if not np.isfinite(arr).all():
        raise ModelError(f"{who} returned non-finite logits")
    return arr
