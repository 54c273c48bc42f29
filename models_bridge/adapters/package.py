"""Reading and checking a TorchScript package (format counterpoint-torchscript/1): a
folder or a zip holding model.json and model.pt. DB-free and torch-free.

The package hash is sha256("model.json\\0" + sha256(json) + "model.pt\\0" + sha256(pt)),
so a folder and a zip of the same two files have the same identity, and any change to
either file (new weights, new vocabulary) is a different package."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models_bridge.preprocess import Preprocessor, SpecError, preprocessor_from_spec

FORMAT = "counterpoint-torchscript/1"
# Bounds on what we read from an untrusted package (a zip can claim any size).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_WEIGHTS_BYTES = 1024 * 1024 * 1024
PACKAGE_FILES = ("model.json", "model.pt")


class PackageError(ValueError):
    """A package that cannot be used; `code` names the rule."""

    def __init__(self, message: str, *, code: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    description: str
    labels: list[str]
    modalities: list[str]
    factorized: bool
    exports: list[str]
    preprocessing: dict[str, dict[str, Any]]
    raw: dict[str, Any]
    preprocessors: dict[str, Preprocessor] = field(compare=False, repr=False, default_factory=dict)
    # attention heads a head mask can switch off (0: the model has no head mask)
    heads: int = 0

    def kind_of(self, modality: str) -> str:
        return str(self.preprocessing[modality]["kind"])

    def summary(self) -> dict[str, Any]:
        """The manifest without bulky parts (vocabularies), for storage and the API."""
        out = {k: v for k, v in self.raw.items() if k != "preprocessing"}
        prep = {}
        for m, spec in self.preprocessing.items():
            prep[m] = {k: v for k, v in spec.items() if k != "vocab"}
            if "vocab" in spec:
                prep[m]["vocab_size"] = len(spec["vocab"])
        out["preprocessing"] = prep
        return out


HEAD_MASK_EXPORTS = frozenset({"fuse_with_head_mask", "forward_with_head_mask"})


def _err(message: str, code: str = "manifest_invalid") -> PackageError:
    return PackageError(message, code=code)


def parse_manifest(raw: Any) -> Manifest:
    if not isinstance(raw, Mapping):
        raise _err("model.json must be a JSON object")
    if raw.get("format") != FORMAT:
        raise _err(
            f"model.json format must be {FORMAT!r}, got {raw.get('format')!r}", "manifest_format"
        )
    for key in ("name", "version"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _err(f"model.json needs a non-empty string {key!r}")
    if len(raw["name"]) > 200 or len(raw["version"]) > 50:
        raise _err("model.json name is limited to 200 characters and version to 50")
    labels = raw.get("labels")
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise _err("model.json labels must be a non-empty list of strings")
    if len(set(labels)) != len(labels):
        raise _err("model.json labels contain duplicates")
    modalities = raw.get("modalities")
    if (
        not isinstance(modalities, list)
        or not modalities
        or not all(isinstance(m, str) for m in modalities)
    ):
        raise _err("model.json modalities must be a non-empty list of modality names")
    if len(set(modalities)) != len(modalities):
        raise _err("model.json modalities contain duplicates")
    prep = raw.get("preprocessing")
    if not isinstance(prep, Mapping):
        raise _err("model.json needs a preprocessing object with one entry per modality")
    missing = [m for m in modalities if m not in prep]
    if missing:
        raise _err(f"model.json has no preprocessing for modalities: {', '.join(missing)}")
    preprocessors: dict[str, Preprocessor] = {}
    for m in modalities:
        try:
            preprocessors[m] = preprocessor_from_spec(prep[m], m)
        except SpecError as exc:
            raise _err(f"model.json: {exc}") from None
    factorized = bool(raw.get("factorized", False))
    exports = raw.get("exports", ["forward"])
    if not isinstance(exports, list) or not all(isinstance(e, str) for e in exports):
        raise _err("model.json exports must be a list of method names")
    if factorized:
        needed = [f"encode_{m}" for m in modalities] + ["fuse"]
        lacking = [n for n in needed if n not in exports]
        if lacking:
            raise _err(f"a factorized model must export {', '.join(lacking)}")
    heads = 0
    if HEAD_MASK_EXPORTS & set(exports):
        spec = raw.get("heads")
        count = spec.get("count") if isinstance(spec, Mapping) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise _err(
                "a model exporting a head mask (fuse_with_head_mask / forward_with_head_mask) "
                "needs heads.count, a positive integer"
            )
        heads = count
    return Manifest(
        name=raw["name"].strip(),
        version=raw["version"].strip(),
        description=str(raw.get("description", "")),
        labels=list(labels),
        modalities=list(modalities),
        factorized=factorized,
        exports=list(exports),
        preprocessing={m: dict(prep[m]) for m in modalities},
        raw=dict(raw),
        preprocessors=preprocessors,
        heads=heads,
    )


@dataclass(frozen=True)
class Package:
    path: Path
    manifest: Manifest
    manifest_bytes: bytes
    weights: bytes
    sha256: str


def package_sha256(manifest_bytes: bytes, weights: bytes) -> str:
    h = hashlib.sha256()
    for name, blob in zip(PACKAGE_FILES, (manifest_bytes, weights), strict=True):
        h.update(name.encode() + b"\0" + hashlib.sha256(blob).digest())
    return h.hexdigest()


def _read_zip(path: Path, data: bytes | None = None) -> tuple[bytes, bytes]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if data is not None else path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _err(f"{path.name} is not a readable zip: {exc}", "package_unreadable") from None
    with zf:
        infos = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            # Accept the two files at the top or inside one top-level folder.
            base = info.filename.rsplit("/", 1)[-1]
            depth = info.filename.count("/")
            if base in PACKAGE_FILES and depth <= 1:
                if base in infos:
                    raise _err(f"the zip holds more than one {base}", "package_layout")
                infos[base] = info
        missing = [n for n in PACKAGE_FILES if n not in infos]
        if missing:
            raise _err(f"the zip lacks {', '.join(missing)}", "package_layout")
        out = []
        for name, cap in zip(PACKAGE_FILES, (MAX_MANIFEST_BYTES, MAX_WEIGHTS_BYTES), strict=True):
            info = infos[name]
            if info.file_size > cap:
                raise _err(
                    f"{name} is {info.file_size:,} bytes, over the cap of {cap:,}",
                    "package_too_large",
                )
            with zf.open(info) as fh:
                # Read one byte past the cap: a lying header cannot make us read more.
                blob = fh.read(cap + 1)
            if len(blob) > cap:
                raise _err(f"{name} is over the cap of {cap:,} bytes", "package_too_large")
            out.append(blob)
        return out[0], out[1]


def _read_folder(path: Path) -> tuple[bytes, bytes]:
    out = []
    for name, cap in zip(PACKAGE_FILES, (MAX_MANIFEST_BYTES, MAX_WEIGHTS_BYTES), strict=True):
        f = path / name
        if not f.is_file():
            raise _err(f"the package folder {path} lacks {name}", "package_layout")
        if f.stat().st_size > cap:
            raise _err(f"{name} is over the cap of {cap:,} bytes", "package_too_large")
        out.append(f.read_bytes())
    return out[0], out[1]


def read_package(path: str | Path, *, data: bytes | None = None) -> Package:
    """Read and check a package (folder or zip, or the bytes of a zip named `path`).
    Raises PackageError."""
    p = Path(path)
    if data is not None:
        manifest_bytes, weights = _read_zip(p, data)
    elif p.is_dir():
        manifest_bytes, weights = _read_folder(p)
    elif p.is_file():
        manifest_bytes, weights = _read_zip(p)
    else:
        raise _err(f"no model package at {p}", "package_not_found")
    try:
        raw = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _err(f"model.json is not valid JSON: {exc}") from None
    manifest = parse_manifest(raw)
    return Package(
        path=p,
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        weights=weights,
        sha256=package_sha256(manifest_bytes, weights),
    )
