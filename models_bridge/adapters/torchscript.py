"""TorchScript packages, run in process.

A module is loaded once per process (the cache lives in models_bridge.adapters.loader),
put in eval mode and always called under torch.inference_mode(). torch.jit.load reads
TorchScript only; nothing here unpickles Python objects (if weights are ever loaded with
torch.load it must be with weights_only=True)."""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from django.conf import settings

from models_bridge.adapters.base import Adapter, Batch, ModelError, NotFactorized, check_logits
from models_bridge.adapters.package import Package, PackageError, read_package

_threads_lock = threading.Lock()
_threads_set = False


def configure_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads once per process. The live path scores batches of one
    or two on tiny networks, where a second thread costs more in hand-off than it saves,
    and web processes run side by side; so the default is 1 unless COUNTERPOINT_TORCH_THREADS
    says otherwise. The bulk worker passes the core count explicitly."""
    global _threads_set
    with _threads_lock:
        if n is None:
            if _threads_set:
                return torch.get_num_threads()
            n = int(getattr(settings, "COUNTERPOINT_TORCH_THREADS", 1))
        n = max(1, min(n, os.cpu_count() or 1))
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        _threads_set = True
        return n


class TorchScriptAdapter(Adapter):
    kind = "torchscript"

    def __init__(self, package: Package, module: torch.jit.ScriptModule) -> None:
        self.package = package
        self.manifest = package.manifest
        self.module = module
        self.labels = list(self.manifest.labels)
        self.modalities = list(self.manifest.modalities)
        self.factorized = self.manifest.factorized
        self.exports = set(self.manifest.exports)
        self.preprocessors = self.manifest.preprocessors

    @classmethod
    def load(cls, path: str | Path, *, expected_sha256: str | None = None) -> TorchScriptAdapter:
        """Load a package; raises PackageError (bad package) or ModelError (will not load)."""
        package = read_package(path)
        if expected_sha256 and package.sha256 != expected_sha256:
            raise PackageError(
                f"the package at {path} changed since it was registered "
                f"(sha256 {package.sha256[:12]}, registered {expected_sha256[:12]}); "
                "register new weights as a new version",
                code="package_changed",
            )
        return cls.from_package(package)

    @classmethod
    def from_package(cls, package: Package) -> TorchScriptAdapter:
        configure_torch_threads()
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated upstream in favour of torch.export, but it is the
                # package format: say so once in the docs, not on every load.
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(io.BytesIO(package.weights), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError, ValueError, ... on bad archives
            raise PackageError(
                f"model.pt is not a loadable TorchScript module: {exc}", code="package_unloadable"
            ) from None
        module.eval()
        lacking = [name for name in package.manifest.exports if not hasattr(module, name)]
        if lacking:
            raise PackageError(
                f"model.json lists exports the module does not have: {', '.join(lacking)}",
                code="package_exports",
            )
        adapter = cls(package, module)
        adapter.warm_up()
        return adapter

    # --- preprocessing -------------------------------------------------------------
    def prepare_modality(self, modality: str, values: Sequence[Any]) -> torch.Tensor:
        pre = self.preprocessors.get(modality)
        if pre is None:
            raise NotFactorized(f"{self.manifest.name} does not read modality {modality!r}")
        return torch.from_numpy(pre(values))

    def prepare(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {m: self.prepare_modality(m, batch.column(m)) for m in self.modalities}

    # --- running -------------------------------------------------------------------
    def run(self, prepared: dict[str, torch.Tensor]) -> np.ndarray:
        size = next(iter(prepared.values())).shape[0]
        try:
            with torch.inference_mode():
                out = self.module(prepared)
        except Exception as exc:
            raise ModelError(f"{self.manifest.name} failed: {exc}") from exc
        return check_logits(
            out.numpy(), batch_size=size, num_labels=len(self.labels), who=self.manifest.name
        )

    def predict(self, batch: Batch) -> np.ndarray:
        return self.run(self.prepare(batch))

    def _method(self, name: str) -> Any:
        if name not in self.exports:
            raise NotFactorized(f"{self.manifest.name} does not export {name}")
        return getattr(self.module, name)

    def encode(self, modality: str, values: Sequence[Any]) -> torch.Tensor:
        method = self._method(f"encode_{modality}")
        x = self.prepare_modality(modality, values)
        with torch.inference_mode():
            return method(x)

    def fuse(self, encodings: Mapping[str, torch.Tensor]) -> torch.Tensor:
        method = self._method("fuse")
        with torch.inference_mode():
            return method(dict(encodings))

    def attention(self, batch: Batch) -> np.ndarray:
        method = self._method("attention")
        inputs = self.prepare(batch)
        with torch.inference_mode():
            return method(inputs).numpy()

    def probe_inputs(self, size: int = 1) -> dict[str, torch.Tensor]:
        """Synthetic inputs of the right shapes (all padding; mid-grey images)."""
        out: dict[str, torch.Tensor] = {}
        for m, pre in self.preprocessors.items():
            spec = self.manifest.preprocessing[m]
            if spec["kind"] == "text":
                out[m] = torch.full(
                    (size, int(spec["max_length"])), int(spec.get("pad_id", 0)), dtype=torch.long
                )
            elif spec["kind"] == "image":
                w, h = spec["size"]
                out[m] = torch.zeros((size, pre.channels, h, w), dtype=torch.float32)  # type: ignore[union-attr]
            else:
                out[m] = torch.zeros((size, len(spec["features"])), dtype=torch.float32)
        return out

    def warm_up(self) -> None:
        """TorchScript's profiling executor specialises a graph over its first calls; doing
        them here keeps that cost out of the first live request."""
        for size in (1, 2, 1):
            self.run(self.probe_inputs(size))

    def health(self) -> dict[str, Any]:
        self.run(self.probe_inputs(1))
        return {"package_sha256": self.package.sha256}
