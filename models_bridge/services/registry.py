"""Model registration, health and the shipped reference models (docs/models.md).

A ModelVersion is immutable: registering the same name and version again with the same
package for the same dataset is a no-op that returns the existing row; with a different
package (new weights, new vocabulary, another URL) or for another dataset it is a Conflict —
new weights make a new version. TorchScript packages are checked in a sandbox
(models_bridge.adapters.sandbox) and registered at a content-addressed copy under
MEDIA_ROOT/models/, never at the folder they came from.

Registration checks the model against a dataset: every modality the model reads exists
in the dataset with the same kind, and every model label maps onto the dataset's label
space (identity by name unless `label_map` says otherwise); unmapped labels are an
error that names them."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from annotation.models import Campaign, Dataset
from counterpoint.errors import Conflict, NotFound, ValidationFailed
from models_bridge.adapters.base import ModelError
from models_bridge.adapters.package import Package, PackageError, read_package
from models_bridge.adapters.sandbox import package_check
from models_bridge.models import ModelVersion
from models_bridge.op_policy import POLICY_VERSION
from models_bridge.services.loading import (
    MEDIA_PREFIX,
    adapter_cache_put,
    adapter_for,
    build_adapter,
    resolve_location,
)

REFERENCE_MODELS = (
    "easyvqa-text-only",
    "easyvqa-image-only",
    "easyvqa-additive",
    "easyvqa-multiplicative",
    "easyvqa-cross-attention",
    # easyvqa-cross-attention@2: 4 heads and a head mask (the heads analysis)
    "easyvqa-cross-attention-4h",
)
Kind = ModelVersion.Kind


# --- pure checks -------------------------------------------------------------------------
def label_map_build(
    *,
    model_labels: Sequence[str],
    dataset_labels: Sequence[str],
    explicit: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """model label → dataset label. Identity for labels the dataset also has; `explicit`
    entries override. Several model labels may map onto one dataset label (their
    probabilities add up); a model label with no target is an error."""
    explicit = dict(explicit or {})
    unknown_src = sorted(k for k in explicit if k not in model_labels)
    if unknown_src:
        raise ValidationFailed(
            f"label_map names labels the model does not have: {', '.join(unknown_src)}",
            code="label_map_unknown_source",
            details={"unknown": unknown_src},
        )
    bad_dst = sorted({str(v) for v in explicit.values() if v not in dataset_labels})
    if bad_dst:
        raise ValidationFailed(
            f"label_map targets labels outside the dataset's label space: {', '.join(bad_dst)}",
            code="label_map_unknown_target",
            details={"unknown": bad_dst, "label_space": list(dataset_labels)},
        )
    out: dict[str, str] = {}
    unmapped: list[str] = []
    for label in model_labels:
        if label in explicit:
            out[label] = str(explicit[label])
        elif label in dataset_labels:
            out[label] = label
        else:
            unmapped.append(label)
    if unmapped:
        raise ValidationFailed(
            f"the model's labels {', '.join(unmapped)} are not in the dataset's label space "
            f"({', '.join(dataset_labels)}); map them with label_map",
            code="label_map_unmapped",
            details={"unmapped": unmapped},
        )
    return out


def modalities_check(*, modality_kinds: Mapping[str, str | None], dataset: Dataset) -> None:
    """Each modality the model reads must exist in the dataset with the same kind.
    A None kind means 'any kind' (remote models do not always say)."""
    for name, kind in modality_kinds.items():
        have = dataset.modality_kind(name)
        if have is None:
            raise ValidationFailed(
                f"the model reads modality {name!r}, which dataset {dataset.name!r} does not have "
                f"(it has {', '.join(dataset.modality_names())})",
                code="model_modality_unknown",
                details={"modality": name, "dataset_modalities": dataset.modality_names()},
            )
        if kind is not None and kind != have:
            raise ValidationFailed(
                f"the model reads {name!r} as {kind}, but in dataset {dataset.name!r} it is {have}",
                code="model_modality_kind",
            )


def _package_error(exc: PackageError) -> ValidationFailed:
    return ValidationFailed(exc.message, code=exc.code, details=exc.details)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# --- registration ------------------------------------------------------------------------
def _stored_dir(sha: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "models" / sha


def model_package_store(*, package: Package) -> str:
    """Copy a checked package's two files into managed storage, MEDIA_ROOT/models/<package
    sha256>/, and return the location to register. Content-addressed and never rewritten,
    so retraining into the folder a package came from cannot change what a registered
    version serves (the load path also re-checks the sha256 of what it reads)."""
    target = _stored_dir(package.sha256)
    if not (target / "model.pt").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        try:
            (tmp / "model.json").write_bytes(package.manifest_bytes)
            (tmp / "model.pt").write_bytes(package.weights)
            try:
                tmp.rename(target)
            except OSError:
                if not (target / "model.pt").is_file():  # not a concurrent identical store
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return f"{MEDIA_PREFIX}models/{package.sha256}"


def _package_unstore(location: str) -> None:
    """Remove a stored package no model version refers to (a lost registration race)."""
    if location.startswith(MEDIA_PREFIX + "models/") and not (
        ModelVersion.objects.filter(location=location).exists()
    ):
        shutil.rmtree(resolve_location(location), ignore_errors=True)


def model_register(
    *,
    dataset: Dataset,
    kind: str,
    location: str,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    remote_model_name: str = "",
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    created_by: Any = None,
    package_data: bytes | None = None,
) -> ModelVersion:
    """Register a model against a dataset. Permission (staff or campaign manager) is the
    caller's to check. Loads the model once to prove it answers; nothing is written (no
    row, no file) when any check fails.

    A TorchScript package comes as a path (`location`) or as the bytes of an uploaded zip
    (`package_data`); either way it is checked in the sandbox (op allowlist, test forward
    under time and memory limits), then copied into managed storage, and the version is
    registered at that copy."""
    if kind not in Kind.values:
        raise ValidationFailed(
            f"kind must be one of {', '.join(Kind.values)}, got {kind!r}", code="model_kind"
        )
    location = (location or "").strip()
    if package_data is not None and kind == Kind.TORCHSCRIPT:
        location = location or "upload.zip"
    if not location:
        raise ValidationFailed(
            "a model needs a location (package path, entry point or URL)", code="model_location"
        )

    adapter: Any = None
    manifest: dict[str, Any]
    model_labels: list[str]
    modality_kinds: dict[str, str | None]
    if kind == Kind.TORCHSCRIPT:
        try:
            package: Package = (
                read_package(location, data=package_data)
                if package_data is not None
                else read_package(resolve_location(location))
            )
        except PackageError as exc:
            raise _package_error(exc) from None
        m = package.manifest
        for given, field, have in ((name, "name", m.name), (version, "version", m.version)):
            if given and given != have:
                raise ValidationFailed(
                    f"the {field} given ({given!r}) differs from model.json's ({have!r})",
                    code="manifest_mismatch",
                )
        name, version = m.name, m.version
        model_labels = list(m.labels)
        modality_kinds = {x: m.kind_of(x) for x in m.modalities}
        sha = package.sha256
        manifest = m.summary()
        manifest["op_scan"] = {"policy_version": POLICY_VERSION}
        factorized = m.factorized
        description = m.description if description is None else description
    else:
        if not name or not version:
            raise ValidationFailed(
                "entry point and remote models need a name and a version", code="model_identity"
            )
        if kind == Kind.ENTRYPOINT:
            try:
                adapter = build_adapter(
                    kind=kind, location=location, manifest={"options": dict(options or {})}
                )
            except PackageError as exc:
                raise _package_error(exc) from None
            model_labels = list(adapter.labels)
            modality_kinds = {x: dataset.modality_kind(x) or "unknown" for x in adapter.modalities}
            if labels and list(labels) != model_labels:
                raise ValidationFailed(
                    "the labels given differ from the adapter's", code="manifest_mismatch"
                )
            factorized = bool(adapter.factorized)
            manifest = {"options": dict(options or {}), "exports": _exports(adapter)}
            if adapter.heads:
                manifest["heads"] = {"count": int(adapter.heads)}
            sha = _fingerprint(kind, location, manifest["options"])
        else:
            if not location.startswith(("http://", "https://")):
                raise ValidationFailed(
                    "a remote model's location is its http(s) base URL", code="model_location"
                )
            if not remote_model_name:
                raise ValidationFailed(
                    "a remote model needs remote_model_name", code="model_identity"
                )
            kinds = {m: dataset.modality_kind(m) or "" for m in dataset.modality_names()}
            manifest = {"modality_kinds": kinds, "preprocessing": dict(preprocessing or {})}
            try:
                adapter = build_adapter(
                    kind=kind,
                    location=location,
                    remote_model_name=remote_model_name,
                    manifest=manifest,
                    labels=list(labels) if labels else None,
                )
                model_labels = list(adapter.labels)
                modality_kinds = {x: kinds.get(x) or None for x in adapter.modalities}
                adapter.health()
            except (ModelError, ValueError) as exc:
                raise ValidationFailed(
                    f"the remote model {remote_model_name!r} at {location} cannot be used: {exc}",
                    code="model_unreachable",
                ) from None
            factorized = False
            manifest["metadata"] = adapter.metadata()
            sha = _fingerprint(kind, location, remote_model_name, model_labels)
        description = description or ""

    assert name is not None and version is not None
    modalities_check(modality_kinds=modality_kinds, dataset=dataset)
    mapping = label_map_build(
        model_labels=model_labels, dataset_labels=dataset.label_space, explicit=label_map
    )

    existing = ModelVersion.objects.filter(name=name, version=version).first()
    if existing is not None:
        return _same_or_conflict(
            existing, sha=sha, kind=kind, mapping=mapping, explicit=label_map, dataset=dataset
        )

    if kind == Kind.TORCHSCRIPT:
        adapter = _torchscript_admit(package)
        location = model_package_store(package=package)
    try:
        with transaction.atomic():
            mv = ModelVersion.objects.create(
                name=name,
                version=version,
                kind=kind,
                description=description,
                location=location,
                remote_model_name=remote_model_name,
                package_sha256=sha,
                dataset=dataset,
                labels=list(model_labels),
                label_map=mapping,
                modalities=list(modality_kinds),
                factorized=factorized,
                manifest=manifest,
                created_by=created_by if getattr(created_by, "pk", None) else None,
            )
    except IntegrityError:
        # Someone registered the same name and version between our check and insert.
        if kind == Kind.TORCHSCRIPT:
            _package_unstore(location)
        existing = ModelVersion.objects.get(name=name, version=version)
        return _same_or_conflict(
            existing, sha=sha, kind=kind, mapping=mapping, explicit=label_map, dataset=dataset
        )
    if adapter is not None:
        adapter_cache_put(mv, adapter)
    return mv


def _torchscript_admit(package: Package) -> Any:
    """The sandboxed check first (the first load of an archive runs its code), then the
    same bytes loaded here; for everyone, staff included."""
    from models_bridge.adapters.limits import ModelTimeout
    from models_bridge.adapters.torchscript import TorchScriptAdapter

    try:
        package_check(package)
        return TorchScriptAdapter.from_package(package)
    except PackageError as exc:
        raise _package_error(exc) from None
    except ModelTimeout as exc:
        raise ValidationFailed(
            f"the model's test forward overran its time limit: {exc}", code="model_call_timeout"
        ) from None
    except ModelError as exc:
        raise ValidationFailed(
            f"the model does not run: {exc}", code="package_unloadable"
        ) from None


def _exports(adapter: Any) -> list[str]:
    inner = getattr(adapter, "inner", adapter)
    return [
        n for n in ("predict", "encode", "fuse", "attention") if callable(getattr(inner, n, None))
    ]


def _same_or_conflict(
    existing: ModelVersion,
    *,
    sha: str,
    kind: str,
    mapping: dict[str, str],
    explicit: Mapping[str, Any] | None,
    dataset: Dataset,
) -> ModelVersion:
    if existing.package_sha256 != sha or existing.kind != kind:
        raise Conflict(
            f"{existing.name}@{existing.version} is already registered with a different package; "
            "a registered version never changes — give the new weights a new version",
            code="model_version_immutable",
        )
    if explicit is not None and mapping != existing.label_map:
        raise Conflict(
            f"{existing.name}@{existing.version} is already registered with another label mapping",
            code="model_version_immutable",
        )
    if existing.dataset_id != dataset.pk:
        # name@version is one row for the installation, bound to the dataset it was checked
        # against: handing it back for another dataset would pass off that check as this one's.
        raise Conflict(
            f"{existing.name}@{existing.version} is already registered for another dataset "
            f"(id {existing.dataset_id}); attach it to this dataset's campaigns if it fits, or "
            "register the package under a new version for this dataset",
            code="model_version_other_dataset",
            details={"model": existing.pk, "dataset": existing.dataset_id},
        )
    return existing


def model_fits_dataset(*, model_version: ModelVersion, dataset: Dataset) -> None:
    """Raise ValidationFailed unless the model can score this dataset's examples."""
    kinds = {
        m: (model_version.manifest.get("preprocessing", {}).get(m, {}).get("kind"))
        for m in model_version.modalities
    }
    modalities_check(modality_kinds=kinds, dataset=dataset)
    label_map_build(
        model_labels=model_version.labels,
        dataset_labels=dataset.label_space,
        explicit=model_version.label_map,
    )


def campaign_models_set(
    *, campaign: Campaign, model_versions: Iterable[ModelVersion]
) -> list[ModelVersion]:
    """Set the models used for a campaign's live feedback; each must fit its dataset."""
    mvs = list(model_versions)
    for mv in mvs:
        try:
            model_fits_dataset(model_version=mv, dataset=campaign.dataset)
        except ValidationFailed as exc:
            raise ValidationFailed(
                f"{mv} does not fit campaign {campaign.name!r}: {exc.message}", code=exc.code
            ) from None
    campaign.model_versions.set(mvs)
    return mvs


def model_health(*, model_version: ModelVersion) -> dict[str, Any]:
    """Load (once per process) and probe a model. Never raises for a failing model: the
    answer says unavailable and why."""
    started = time.perf_counter()
    out: dict[str, Any] = {
        "id": model_version.pk,
        "name": model_version.name,
        "version": model_version.version,
        "kind": model_version.kind,
    }
    try:
        details = adapter_for(model_version).health()
        out.update(status="ok", details=details)
    except (ModelError, PackageError, ValueError) as exc:
        out.update(status="unavailable", detail=str(exc))
    out["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return out


def reference_models_register(*, dataset: Dataset, created_by: Any = None) -> list[ModelVersion]:
    """Register the easy-VQA reference packages (COUNTERPOINT_MODELS_DIR/<folder>/)
    against `dataset`. Idempotent: a package already registered is returned as it is."""
    missing = [
        n for n in REFERENCE_MODELS if not (Path(settings.MODELS_DIR) / n / "model.json").exists()
    ]
    if missing:
        raise NotFound(
            f"reference model packages missing under {settings.MODELS_DIR}: {', '.join(missing)} "
            "(run `manage.py train_reference_models`)",
            code="reference_models_missing",
        )
    return [
        model_register(dataset=dataset, kind=Kind.TORCHSCRIPT, location=name, created_by=created_by)
        for name in REFERENCE_MODELS
    ]
