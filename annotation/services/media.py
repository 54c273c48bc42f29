"""Content-addressed media storage. Bytes are checked (type, size, pixel count, full decode)
before anything is written, so a bad image never leaves a file behind; identical bytes are
stored once (the SHA-256 is the key).

Every check that can be made from the header (format, declared width x height against the
pixel cap and, for an edit, against the original's size) runs before the one full decode:
Pillow's `Image.open` reads only the header, so a small file that declares a huge image is
refused without decoding it. `decode_data_url` is the one decoder of `data:…;base64,…` URLs
(imports, submitted edits, live drafts)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from PIL import Image, UnidentifiedImageError

from annotation.models import Dataset, Example, ExampleMedia, Media
from counterpoint.errors import ValidationFailed

ALLOWED_IMAGE_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    sha256: str
    mime_type: str
    width: int
    height: int


def decode_data_url(value: Any, *, what: str, max_bytes: int | None = None) -> bytes:
    """Bytes of a `data:<mime>;base64,<payload>` URL (or of bare base64). Raises
    ValidationFailed `data_uri_invalid` (not a base64 data URL) or `image_too_large` (the
    payload's length alone shows it decodes past `max_bytes`, so it is never decoded)."""
    max_bytes = max_bytes or settings.IMPORT_MAX_IMAGE_BYTES
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(
            f"{what} must be a data:image/png;base64,… URL", code="data_uri_invalid"
        )
    payload = value.strip()
    if payload[:5].lower() == "data:":
        header, comma, payload = payload[5:].partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise ValidationFailed(
                f"{what} must look like data:image/png;base64,<base64 bytes>",
                code="data_uri_invalid",
            )
    payload = "".join(payload.split())
    if len(payload) // 4 * 3 > max_bytes + 3:
        raise ValidationFailed(
            f"{what} holds about {len(payload) // 4 * 3:,} bytes, over the cap of {max_bytes:,} bytes",
            code="image_too_large",
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(
            f"{what} is not valid base64: {exc}", code="data_uri_invalid"
        ) from None


def check_image_bytes(
    data: bytes,
    *,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    expect_size: tuple[int, int] | None = None,
) -> CheckedImage:
    """Validate image bytes without touching storage. Raises ValidationFailed with a rule code:
    image_empty, image_too_large, image_not_an_image, image_format, image_too_many_pixels,
    image_wrong_size (the header's width x height is not `expect_size`, checked before
    decoding), image_truncated."""
    max_bytes = max_bytes or settings.IMPORT_MAX_IMAGE_BYTES
    max_pixels = max_pixels or settings.IMPORT_MAX_IMAGE_PIXELS
    if not data:
        raise ValidationFailed("the image file is empty", code="image_empty")
    if len(data) > max_bytes:
        raise ValidationFailed(
            f"the image is {len(data):,} bytes, over the cap of {max_bytes:,} bytes",
            code="image_too_large",
        )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            width, height = probe.size
    except UnidentifiedImageError:
        raise ValidationFailed(
            "the file is not an image Pillow can read", code="image_not_an_image"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ValidationFailed(
            f"the image is a decompression bomb: {exc}", code="image_too_many_pixels"
        ) from None
    except Exception as exc:
        raise ValidationFailed(
            f"the image header is unreadable: {exc}", code="image_not_an_image"
        ) from None
    if fmt not in ALLOWED_IMAGE_FORMATS:
        raise ValidationFailed(
            f"image format {fmt or 'unknown'} is not accepted (use PNG, JPEG, GIF or WebP)",
            code="image_format",
        )
    # The declared size is checked before decoding, so a bomb costs nothing to refuse.
    if width * height > max_pixels:
        raise ValidationFailed(
            f"the image is {width}x{height} = {width * height:,} pixels, over the cap of {max_pixels:,}",
            code="image_too_many_pixels",
        )
    if expect_size is not None and (width, height) != tuple(expect_size):
        raise ValidationFailed(
            f"the image is {width}x{height}, the original {expect_size[0]}x{expect_size[1]}; "
            "an edit must keep the original's width x height",
            code="image_wrong_size",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise ValidationFailed(
            f"the image is truncated or corrupt: {exc}", code="image_truncated"
        ) from None
    return CheckedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        mime_type=ALLOWED_IMAGE_FORMATS[fmt],
        width=width,
        height=height,
    )


def media_relative_path(sha256: str, mime_type: str) -> str:
    ext = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}.get(
        mime_type, "bin"
    )
    return f"media/{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"


def write_media_file(rel_path: str, data: bytes) -> bool:
    """Write atomically (temp file + rename) so a crash never leaves half a file under the
    content address. Returns False when the file was already there."""
    target = Path(settings.MEDIA_ROOT) / rel_path
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def media_store(*, checked: CheckedImage) -> Media:
    """Store a checked image once. Safe under concurrency: the unique sha256 decides."""
    existing = Media.objects.filter(sha256=checked.sha256).first()
    if existing is not None:
        return existing
    rel = media_relative_path(checked.sha256, checked.mime_type)
    write_media_file(rel, checked.data)
    try:
        with transaction.atomic():
            return Media.objects.create(
                sha256=checked.sha256,
                mime_type=checked.mime_type,
                size_bytes=len(checked.data),
                width=checked.width,
                height=checked.height,
                file=rel,
            )
    except IntegrityError:
        return Media.objects.get(sha256=checked.sha256)


def media_store_many(*, checked: Iterable[CheckedImage]) -> dict[str, Media]:
    """Store many checked images: the files first (outside any transaction: slow I/O never
    holds SQLite's write lock), then the missing rows in one short transaction with
    `ignore_conflicts` (the unique sha256 decides under concurrency). Returns sha256 → Media."""
    wanted = {c.sha256: c for c in checked}
    shas = sorted(wanted)
    found: dict[str, Media] = {}
    for start in range(0, len(shas), 500):
        found.update(
            (m.sha256, m) for m in Media.objects.filter(sha256__in=shas[start : start + 500])
        )
    new = [wanted[sha] for sha in shas if sha not in found]
    for c in new:
        write_media_file(media_relative_path(c.sha256, c.mime_type), c.data)
    if new:
        with transaction.atomic():
            Media.objects.bulk_create(
                [
                    Media(
                        sha256=c.sha256,
                        mime_type=c.mime_type,
                        size_bytes=len(c.data),
                        width=c.width,
                        height=c.height,
                        file=media_relative_path(c.sha256, c.mime_type),
                    )
                    for c in new
                ],
                batch_size=500,
                ignore_conflicts=True,
            )
        missing = [c.sha256 for c in new]
        for start in range(0, len(missing), 500):
            found.update(
                (m.sha256, m) for m in Media.objects.filter(sha256__in=missing[start : start + 500])
            )
    return found


def media_store_bytes(
    *, data: bytes, max_bytes: int | None = None, max_pixels: int | None = None
) -> Media:
    return media_store(checked=check_image_bytes(data, max_bytes=max_bytes, max_pixels=max_pixels))


def media_path(media: Media) -> Path:
    return Path(settings.MEDIA_ROOT) / str(media.file.name)


def media_read(media: Media) -> bytes:
    return media_path(media).read_bytes()


def example_media_index(*, dataset: Dataset, examples: Iterable[Example]) -> int:
    """Record which stored images `examples` (saved, of `dataset`) use, for the media access
    rule. Safe to run again (one row per example and modality). Returns rows written."""
    images = [m["name"] for m in dataset.modalities if m["kind"] == "image"]
    if not images:
        return 0
    uses = [
        (ex.pk, name, ex.values.get(name))
        for ex in examples
        for name in images
        if isinstance(ex.values.get(name), str)
    ]
    shas = sorted({sha for _, _, sha in uses})
    ids: dict[str, int] = {}
    for start in range(0, len(shas), 500):
        chunk = shas[start : start + 500]
        ids.update(Media.objects.filter(sha256__in=chunk).values_list("sha256", "id"))
    rows = [
        ExampleMedia(example_id=pk, modality=name, media_id=ids[sha])
        for pk, name, sha in uses
        if sha in ids
    ]
    ExampleMedia.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)
