"""Pure, DB-free parsing and validation of import sources: JSONL/CSV manifests, schema files,
the easy-VQA package, media archives and image values. Nothing here touches the database or
MEDIA_ROOT, so every rule is tested without either; annotation.services.imports does the
writing."""

from __future__ import annotations

from annotation.importers.errors import FieldProblem, LineError
from annotation.importers.images import ImageInfo, ImageReader
from annotation.importers.manifest import PreparedRow, Schema, read_manifest

__all__ = [
    "FieldProblem",
    "ImageInfo",
    "ImageReader",
    "LineError",
    "PreparedRow",
    "Schema",
    "read_manifest",
]
