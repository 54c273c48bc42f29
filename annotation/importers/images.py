"""Reading and checking the image values of one import: a path relative to the manifest
folder or a `data:` URI. Each distinct file is read and hashed once, and identical bytes are
checked (fully decoded) once, however many examples share them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from annotation.importers import errors as E
from annotation.importers.errors import FieldProblem
from annotation.importers.paths import read_file_capped, resolve_inside
from counterpoint.errors import ValidationFailed

# Bytes kept in memory between validating and writing; beyond this the writer re-reads the
# file (and re-checks its hash), so a large import stays bounded in memory.
DEFAULT_KEEP_BYTES = 128 * 1024 * 1024


@dataclass
class ImageInfo:
    sha256: str
    mime_type: str
    width: int
    height: int
    size_bytes: int
    path: Path | None = None
    data: bytes | None = None

    def load(self) -> bytes:
        """The checked bytes again. Re-read files must still hash to the same address, so a file
        swapped between validation and writing is refused rather than stored under a lie."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValidationFailed(
                f"image file {self.path} changed while it was being imported; run the import again",
                code="image_changed",
            )
        return data


def _check_bytes(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[str, int, int]:
    # Imported lazily: the check lives with media storage (annotation.services.media), whose
    # module also defines the storage writes; this module only calls the pure check.
    from annotation.services.media import check_image_bytes

    try:
        checked = check_image_bytes(data, max_bytes=max_bytes, max_pixels=max_pixels)
    except ValidationFailed as exc:
        raise FieldProblem(exc.code, exc.message) from None
    return checked.mime_type, checked.width, checked.height


def decode_data_uri(value: str, *, max_bytes: int) -> bytes:
    # The one decoder lives with media storage (annotation.services.media); imported lazily
    # for the same reason as the check above.
    from annotation.services.media import decode_data_url

    try:
        return decode_data_url(value, what="the data: URI", max_bytes=max_bytes)
    except ValidationFailed as exc:
        raise FieldProblem(exc.code, exc.message) from None


class ImageReader:
    """Checks image values for one import. Not thread-safe; one per import."""

    def __init__(
        self,
        *,
        base_dir: Path | None,
        max_bytes: int,
        max_pixels: int,
        keep_bytes: int = DEFAULT_KEEP_BYTES,
    ) -> None:
        self.base_dir = base_dir.resolve() if base_dir is not None else None
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.keep_budget = keep_bytes
        self._by_path: dict[Path, ImageInfo | FieldProblem] = {}
        self._by_sha: dict[str, ImageInfo | FieldProblem] = {}
        self.files_read = 0
        self.images_decoded = 0

    def read(self, value: object) -> ImageInfo:
        """Raises FieldProblem naming the broken rule."""
        if not isinstance(value, str):
            raise FieldProblem(
                E.FIELD_TYPE,
                f"an image value must be a relative path or a data: URI, not {type(value).__name__}",
            )
        if value[:5].lower() == "data:":
            return self.read_bytes(decode_data_uri(value, max_bytes=self.max_bytes), keep=True)
        if self.base_dir is None:
            raise FieldProblem(
                E.PATH_INVALID, "image paths need a manifest folder; use a data: URI here"
            )
        return self.read_path(resolve_inside(self.base_dir, value), label=value)

    def read_path(self, real: Path, *, label: str) -> ImageInfo:
        """`real` must already be resolved and checked to be inside the allowed folder."""
        cached = self._by_path.get(real)
        if cached is None:
            try:
                data = read_file_capped(real, label=label, max_bytes=self.max_bytes)
                self.files_read += 1
                cached = self.read_bytes(data, keep=False, path=real)
            except FieldProblem as exc:
                cached = exc
            self._by_path[real] = cached
        if isinstance(cached, FieldProblem):
            raise FieldProblem(cached.code, cached.message)
        return cached

    def read_bytes(self, data: bytes, *, keep: bool, path: Path | None = None) -> ImageInfo:
        sha = hashlib.sha256(data).hexdigest()
        cached = self._by_sha.get(sha)
        if cached is None:
            try:
                mime, width, height = _check_bytes(
                    data, max_bytes=self.max_bytes, max_pixels=self.max_pixels
                )
                self.images_decoded += 1
                info = ImageInfo(
                    sha256=sha,
                    mime_type=mime,
                    width=width,
                    height=height,
                    size_bytes=len(data),
                    path=path,
                )
                if keep or path is None or len(data) <= self.keep_budget:
                    info.data = data
                    self.keep_budget -= len(data)
                cached = info
            except FieldProblem as exc:
                cached = exc
            self._by_sha[sha] = cached
        if isinstance(cached, FieldProblem):
            raise FieldProblem(cached.code, cached.message)
        return cached
