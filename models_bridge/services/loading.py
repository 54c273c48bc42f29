"""The per-process adapter cache. An adapter is built once per process and reused,
keyed by model version id and package hash, so a re-registered package (a new version)
never reuses an old module."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from models_bridge.adapters.base import Adapter, ModelError
from models_bridge.adapters.package import PackageError
from models_bridge.models import ModelVersion

MEDIA_PREFIX = "media:"

_cache: dict[tuple[Any, ...], Adapter] = {}
_locks: dict[tuple[Any, ...], threading.Lock] = {}
_guard = threading.Lock()


def resolve_location(location: str) -> Path:
    """Registered packages live in managed storage under MEDIA_ROOT ("media:models/<package
    sha256>"; versions registered before that may say "media:models/<zip sha>.zip", a path
    relative to COUNTERPOINT_MODELS_DIR, or an absolute path). Relative forms keep a
    database moved to another machine or checkout working."""
    if location.startswith(MEDIA_PREFIX):
        return Path(settings.MEDIA_ROOT) / location[len(MEDIA_PREFIX) :]
    p = Path(location)
    return p if p.is_absolute() else Path(settings.MODELS_DIR) / p


def adapter_key(mv: ModelVersion) -> tuple[Any, ...]:
    return (mv.pk, mv.package_sha256, mv.kind, mv.location, mv.remote_model_name)


def build_adapter(
    *,
    kind: str,
    location: str,
    remote_model_name: str = "",
    manifest: dict[str, Any] | None = None,
    labels: list[str] | None = None,
    expected_sha256: str | None = None,
) -> Adapter:
    """Build an adapter from registration fields. Raises PackageError or ModelError."""
    manifest = manifest or {}
    if kind == ModelVersion.Kind.TORCHSCRIPT:
        from models_bridge.adapters.torchscript import TorchScriptAdapter
        from models_bridge.op_policy import POLICY_VERSION

        # A version registered under the current op policy was scanned at registration and
        # its bytes are pinned by expected_sha256; anything else is scanned before loading.
        scan = manifest.get("op_scan") or {}
        return TorchScriptAdapter.load(
            resolve_location(location),
            expected_sha256=expected_sha256 or None,
            checked=bool(expected_sha256) and scan.get("policy_version") == POLICY_VERSION,
        )
    if kind == ModelVersion.Kind.ENTRYPOINT:
        from models_bridge.adapters.entrypoint import EntryPointAdapter

        return EntryPointAdapter.load(location, options=manifest.get("options") or {})
    if kind == ModelVersion.Kind.REMOTE:
        from models_bridge.adapters.remote import RemoteAdapter

        return RemoteAdapter(
            base_url=location,
            model_name=remote_model_name,
            modality_kinds=manifest.get("modality_kinds") or {},
            labels=labels or None,
            preprocessing=manifest.get("preprocessing") or {},
            timeout_s=float(settings.REMOTE_MODEL_TIMEOUT_S),
            retries=int(getattr(settings, "REMOTE_MODEL_RETRIES", 2)),
        )
    raise PackageError(f"unknown model kind {kind!r}", code="model_kind")


def adapter_for(mv: ModelVersion) -> Adapter:
    """The process's adapter for a model version, built on first use. Raises ModelError
    when it cannot be built (the caller reports the model as unavailable)."""
    key = adapter_key(mv)
    adapter = _cache.get(key)
    if adapter is not None:
        return adapter
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    # One builder per key: two requests arriving together must not load a module twice.
    with lock:
        adapter = _cache.get(key)
        if adapter is None:
            try:
                adapter = build_adapter(
                    kind=mv.kind,
                    location=mv.location,
                    remote_model_name=mv.remote_model_name,
                    manifest=mv.manifest,
                    labels=list(mv.labels),
                    expected_sha256=mv.package_sha256
                    if mv.kind == ModelVersion.Kind.TORCHSCRIPT
                    else None,
                )
            except PackageError as exc:
                raise ModelError(f"{mv} cannot be loaded: {exc.message}") from None
            _cache[key] = adapter
    return adapter


def adapter_cache_put(mv: ModelVersion, adapter: Adapter) -> None:
    """Install an adapter for a model version (benchmarks and tests wrap the real adapter
    in a call counter this way)."""
    _cache[adapter_key(mv)] = adapter


def adapter_cache_clear() -> None:
    _cache.clear()
