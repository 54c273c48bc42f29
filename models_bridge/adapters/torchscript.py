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

from models_bridge.adapters.base import (
    Adapter,
    Batch,
    ModelError,
    NotFactorized,
    check_head_mask,
    check_logits,
    setting,
)
from models_bridge.adapters.limits import CallLimiter
from models_bridge.adapters.package import Package, PackageError, read_package
from models_bridge.adapters.sandbox import package_check, probe_spec

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
            n = int(setting("COUNTERPOINT_TORCH_THREADS", 1))
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
        self.heads = self.manifest.heads
        self.preprocessors = self.manifest.preprocessors
        self.limiter = CallLimiter(self.manifest.name)

    @classmethod
    def load(
        cls, path: str | Path, *, expected_sha256: str | None = None, checked: bool = False
    ) -> TorchScriptAdapter:
        """Load a package; raises PackageError (bad package) or ModelError (will not load).
        Unless `checked` (its sha256 passed the sandboxed check under the current op policy
        at registration, and `expected_sha256` pins the bytes to that sha), the package is
        checked in the sandbox first."""
        package = read_package(path)
        if expected_sha256 and package.sha256 != expected_sha256:
            raise PackageError(
                f"the package at {path} changed since it was registered "
                f"(sha256 {package.sha256[:12]}, registered {expected_sha256[:12]}); "
                "register new weights as a new version",
                code="package_changed",
            )
        if not (checked and expected_sha256):
            package_check(package)
        return cls.from_package(package)

    @classmethod
    def from_package(cls, package: Package) -> TorchScriptAdapter:
        """Load bytes that passed models_bridge.adapters.sandbox.package_check (the caller's
        duty: loading runs the archive's __setstate__)."""
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
    def _forward(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(prepared)

    def _call(self, method: Any, *args: Any, batch_size: int) -> Any:
        def inner() -> Any:
            with torch.inference_mode():
                return method(*args)

        return self.limiter.call(inner, batch_size=batch_size)

    def run(self, prepared: dict[str, torch.Tensor]) -> np.ndarray:
        size = next(iter(prepared.values())).shape[0]
        try:
            out = self.limiter.call(self._forward, prepared, batch_size=size)
        except ModelError:
            raise
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
        return self._call(method, x, batch_size=len(values))

    def fuse(self, encodings: Mapping[str, torch.Tensor]) -> torch.Tensor:
        method = self._method("fuse")
        size = max((int(t.shape[0]) for t in encodings.values()), default=1)
        return self._call(method, dict(encodings), batch_size=size)

    def attention(self, batch: Batch) -> np.ndarray:
        method = self._method("attention")
        inputs = self.prepare(batch)
        return self._call(method, inputs, batch_size=batch.size).numpy()

    def attention_heads(self, batch: Batch) -> np.ndarray:
        method = self._method("attention_heads")
        inputs = self.prepare(batch)
        return self._call(method, inputs, batch_size=batch.size).numpy()

    def _head_mask(self, head_mask: Any, batch_size: int) -> torch.Tensor:
        mask = check_head_mask(head_mask, heads=self.heads, batch_size=batch_size)
        return torch.from_numpy(mask)

    def run_with_head_mask(self, prepared: dict[str, torch.Tensor], head_mask: Any) -> np.ndarray:
        """run(prepared) with a head mask (prepared inputs, as BlackBoxPairs holds them)."""
        method = self._method("forward_with_head_mask")
        size = next(iter(prepared.values())).shape[0]
        mask = self._head_mask(head_mask, size)
        try:
            out = self._call(method, prepared, mask, batch_size=size)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{self.manifest.name} failed: {exc}") from exc
        return check_logits(
            out.numpy(), batch_size=size, num_labels=len(self.labels), who=self.manifest.name
        )

    def predict_with_head_mask(self, batch: Batch, head_mask: Any) -> np.ndarray:
        return self.run_with_head_mask(self.prepare(batch), head_mask)

    def fuse_with_head_mask(self, encodings: Mapping[str, torch.Tensor], head_mask: Any) -> Any:
        method = self._method("fuse_with_head_mask")
        size = max((int(t.shape[0]) for t in encodings.values()), default=1)
        mask = self._head_mask(head_mask, size)
        return self._call(method, dict(encodings), mask, batch_size=size)

    def probe_inputs(self, size: int = 1) -> dict[str, torch.Tensor]:
        """Synthetic inputs of the right shapes, the same the sandboxed check used."""
        out: dict[str, torch.Tensor] = {}
        for m, spec in probe_spec(self.manifest).items():
            dtype = torch.long if spec["dtype"] == "long" else torch.float32
            out[m] = torch.full([size, *spec["shape"]], spec["fill"], dtype=dtype)
        return out

    def warm_up(self) -> None:
        """TorchScript's profiling executor specialises a graph over its first calls; doing
        them here keeps that cost out of the first live request."""
        for size in (1, 2, 1):
            self.run(self.probe_inputs(size))

    def health(self) -> dict[str, Any]:
        self.run(self.probe_inputs(1))
        return {"package_sha256": self.package.sha256}
