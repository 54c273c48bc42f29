"""Unpacking an uploaded zip of media next to its manifest, safely: no member may land outside
the target folder, no symlinks are created, and both the member count and the bytes actually
written are capped (the sizes a zip declares can lie, so the written bytes are counted)."""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from pathlib import Path

from annotation.importers import errors as E
from counterpoint.errors import ValidationFailed

_DRIVE = re.compile(r"^[A-Za-z]:")


def _safe_member_path(name: str) -> str:
    clean = name.replace("\\", "/")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if (
        clean.startswith("/")
        or _DRIVE.match(clean)
        or ".." in parts
        or "\x00" in clean
        or not parts
    ):
        raise ValidationFailed(
            f"the archive member {name!r} would land outside the import folder",
            code=E.ARCHIVE_UNSAFE_PATH,
        )
    return "/".join(parts)


def extract_zip(
    *,
    archive: Path,
    target: Path,
    max_files: int,
    max_total_bytes: int,
    max_member_bytes: int,
    reserved: frozenset[str] = frozenset(),
) -> int:
    """Extract regular files of `archive` into `target` (which must exist). A member larger than
    `max_member_bytes` is cut at max_member_bytes + 1 so the image check reports it as over the
    cap if the manifest uses it. Returns the number of files written."""
    target = target.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationFailed(
            f"the media archive is not a readable zip file: {exc}", code=E.ARCHIVE_INVALID
        ) from None
    written = 0
    total = 0
    with zf:
        members = zf.infolist()
        if len(members) > max_files:
            raise ValidationFailed(
                f"the media archive holds {len(members):,} entries, over the cap of {max_files:,}",
                code=E.ARCHIVE_TOO_MANY_FILES,
            )
        for info in members:
            if info.is_dir():
                continue
            rel = _safe_member_path(info.filename)
            if rel in reserved:
                raise ValidationFailed(
                    f"the media archive may not contain {rel!r} (that name is reserved for the manifest)",
                    code=E.ARCHIVE_UNSAFE_PATH,
                )
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                # Never recreate a symlink: it could point anywhere on the worker.
                raise ValidationFailed(
                    f"the media archive member {info.filename!r} is a symlink; archives must hold plain files",
                    code=E.ARCHIVE_UNSAFE_PATH,
                )
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.resolve().is_relative_to(target):
                raise ValidationFailed(
                    f"the archive member {info.filename!r} would land outside the import folder",
                    code=E.ARCHIVE_UNSAFE_PATH,
                )
            try:
                with zf.open(info) as src, dest.open("wb") as out:
                    remaining = max_member_bytes + 1
                    while remaining > 0:
                        chunk = src.read(min(1 << 20, remaining))
                        if not chunk:
                            break
                        out.write(chunk)
                        remaining -= len(chunk)
                        total += len(chunk)
                        if total > max_total_bytes:
                            raise ValidationFailed(
                                f"the media archive unpacks to more than {max_total_bytes:,} bytes",
                                code=E.ARCHIVE_TOO_LARGE,
                            )
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as exc:
                raise ValidationFailed(
                    f"the archive member {info.filename!r} cannot be unpacked: {exc}",
                    code=E.ARCHIVE_INVALID,
                ) from None
            written += 1
    return written


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
