"""Builders for import tests: small PNGs made with Pillow, manifests written into tmp_path, and
a snapshot of everything an import could touch (row counts and every path under MEDIA_ROOT)."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import zlib
from pathlib import Path
from typing import Any

from django.conf import settings
from PIL import Image

from annotation.models import Dataset, Example, Media

SCHEMA = {
    "modalities": [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}],
    "label_space": ["yes", "no"],
}


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def noisy_png(size: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """Incompressible pixels, so cutting the file short really cuts image data."""
    rng = random.Random(seed)
    img = Image.frombytes(
        "RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def truncated_png() -> bytes:
    data = noisy_png()
    return data[: len(data) // 2]


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid-looking PNG whose header declares width x height 1-bit pixels; the IDAT holds
    only a few bytes, so only a header check can refuse it cheaply."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def line(
    ext_id: str,
    image: Any = "img/a.png",
    text: Any = "is it red?",
    label: Any = "yes",
    **extra: Any,
) -> dict:
    rec: dict[str, Any] = {"external_id": ext_id, "values": {"image": image, "text": text}}
    if label is not None:
        rec["label"] = label
    rec.update(extra)
    return rec


def write_jsonl(folder: Path, records: list[Any], name: str = "manifest.jsonl") -> Path:
    """Records may be dicts (dumped as JSON), str (written as is) or bytes (raw)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = bytearray()
    for rec in records:
        if isinstance(rec, bytes):
            out += rec
        elif isinstance(rec, str):
            out += rec.encode()
        else:
            out += json.dumps(rec).encode()
        out += b"\n"
    path = folder / name
    path.write_bytes(bytes(out))
    return path


def write_images(folder: Path, **files: bytes) -> None:
    for rel, data in files.items():
        target = folder / "img" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def media_files() -> list[str]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def snapshot() -> tuple[int, int, int, list[str]]:
    return (Dataset.objects.count(), Example.objects.count(), Media.objects.count(), media_files())
