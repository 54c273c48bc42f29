"""Python entry points: "package.module:factory" returning an Adapter, for models that
will not script. The factory is called with keyword arguments from the registration
(`options`), and its adapter is wrapped so that its answers are checked like any
untrusted model's: shape (B, C), finite numbers, declared labels and modalities."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models_bridge.adapters.base import (
    Adapter,
    Batch,
    InputError,
    ModelError,
    NotFactorized,
    check_head_mask,
    check_logits,
)
from models_bridge.adapters.limits import CallLimiter
from models_bridge.adapters.package import PackageError

_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def parse_entrypoint(location: str) -> tuple[str, str]:
    if not isinstance(location, str) or not _ENTRYPOINT.match(location.strip()):
        raise PackageError(
            f"an entry point is written package.module:factory, got {location!r}",
            code="entrypoint_syntax",
        )
    module, _, attr = location.strip().partition(":")
    return module, attr


def load_factory(location: str) -> Any:
    module_name, attr = parse_entrypoint(location)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        # The usual cause is a process started without the model's code on its path: the
        # web server and the Celery worker each need it (docs/models.md, "Python entry
        # points"), and a running process only sees PYTHONPATH as it was at its start.
        raise PackageError(
            f"cannot import {module_name}: {type(exc).__name__}: {exc}. The module must be "
            "importable by this process: install it into the project's environment or put "
            "its folder on PYTHONPATH for both the web server and the worker, then restart "
            "them",
            code="entrypoint_not_importable",
            details={"module": module_name, "error": f"{type(exc).__name__}: {exc}"},
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PackageError(
                f"{module_name} has no attribute {attr}", code="entrypoint_import"
            ) from None
    if not callable(obj):
        raise PackageError(f"{location} is not callable", code="entrypoint_import")
    return obj


class EntryPointAdapter(Adapter):
    kind = "entrypoint"

    def __init__(self, inner: Any, *, location: str) -> None:
        self.inner = inner
        self.location = location
        labels = getattr(inner, "labels", None)
        modalities = getattr(inner, "modalities", None)
        if (
            not isinstance(labels, list | tuple)
            or not labels
            or not all(isinstance(x, str) for x in labels)
        ):
            raise PackageError(
                f"{location} returned an adapter without a list of labels",
                code="entrypoint_adapter",
            )
        if len(set(labels)) != len(labels):
            raise PackageError(f"{location} returned duplicate labels", code="entrypoint_adapter")
        if (
            not isinstance(modalities, list | tuple)
            or not modalities
            or not all(isinstance(m, str) for m in modalities)
        ):
            raise PackageError(
                f"{location} returned an adapter without a list of modalities",
                code="entrypoint_adapter",
            )
        if not callable(getattr(inner, "predict", None)):
            raise PackageError(
                f"{location} returned an adapter without predict()", code="entrypoint_adapter"
            )
        self.labels = list(labels)
        self.modalities = list(modalities)
        self.factorized = bool(getattr(inner, "factorized", False))
        self.heads = int(getattr(inner, "heads", 0) or 0)
        self.limiter = CallLimiter(location)

    @classmethod
    def load(cls, location: str, options: Mapping[str, Any] | None = None) -> EntryPointAdapter:
        factory = load_factory(location)
        try:
            inner = factory(**dict(options or {}))
        except Exception as exc:
            raise PackageError(
                f"{location}(...) failed: {exc}", code="entrypoint_factory"
            ) from None
        return cls(inner, location=location)

    def prepare(self, batch: Batch) -> Batch:
        # Input checks that the inner adapter exposes run first, so bad input is a 4xx.
        columns = {m: batch.column(m) for m in self.modalities}
        check = getattr(self.inner, "prepare", None)
        if callable(check):
            check(Batch(columns))
        return Batch(columns)

    def run(self, prepared: Batch) -> np.ndarray:
        try:
            logits = self.limiter.call(self.inner.predict, prepared, batch_size=prepared.size)
        except (InputError, ModelError):
            raise
        except Exception as exc:
            raise ModelError(f"{self.location} failed: {exc}") from exc
        return check_logits(
            logits, batch_size=prepared.size, num_labels=len(self.labels), who=self.location
        )

    def predict(self, batch: Batch) -> np.ndarray:
        return self.run(self.prepare(batch))

    def encode(self, modality: str, values: Sequence[Any]) -> Any:
        if not self.factorized or not callable(getattr(self.inner, "encode", None)):
            raise NotFactorized(f"{self.location} does not expose encode()")
        return self.inner.encode(modality, values)

    def fuse(self, encodings: Mapping[str, Any]) -> Any:
        if not self.factorized or not callable(getattr(self.inner, "fuse", None)):
            raise NotFactorized(f"{self.location} does not expose fuse()")
        return self.inner.fuse(encodings)

    def attention(self, batch: Batch) -> np.ndarray:
        if not callable(getattr(self.inner, "attention", None)):
            raise NotFactorized(f"{self.location} does not expose attention()")
        return np.asarray(self.inner.attention(batch))

    def _inner_method(self, name: str) -> Any:
        method = getattr(self.inner, name, None)
        if not callable(method):
            raise NotFactorized(f"{self.location} does not expose {name}()")
        return method

    def attention_heads(self, batch: Batch) -> np.ndarray:
        return np.asarray(self._inner_method("attention_heads")(batch))

    def predict_with_head_mask(self, batch: Batch, head_mask: Any) -> np.ndarray:
        method = self._inner_method("predict_with_head_mask")
        prepared = self.prepare(batch)
        mask = check_head_mask(head_mask, heads=self.heads, batch_size=prepared.size)
        try:
            logits = self.limiter.call(method, prepared, mask, batch_size=prepared.size)
        except (InputError, ModelError):
            raise
        except Exception as exc:
            raise ModelError(f"{self.location} failed: {exc}") from exc
        return check_logits(
            logits, batch_size=prepared.size, num_labels=len(self.labels), who=self.location
        )

    def fuse_with_head_mask(self, encodings: Mapping[str, Any], head_mask: Any) -> Any:
        if not self.factorized:
            raise NotFactorized(f"{self.location} does not expose fuse()")
        size = max((len(t) for t in encodings.values()), default=1)
        mask = check_head_mask(head_mask, heads=self.heads, batch_size=size)
        return self._inner_method("fuse_with_head_mask")(encodings, mask)

    def health(self) -> dict[str, Any]:
        check = getattr(self.inner, "health", None)
        if callable(check):
            try:
                return dict(check() or {})
            except Exception as exc:
                raise ModelError(f"{self.location} is unhealthy: {exc}") from exc
        return {}
