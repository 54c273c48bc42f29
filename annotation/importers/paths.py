"""Resolving a manifest's relative media paths without ever leaving the manifest's folder.

Two checks, because each catches what the other misses: a lexical one (no absolute paths, no
`..` component) and a resolved one (after following symlinks the file must still be inside
the folder), so a symlink planted in the folder cannot point at /etc/passwd."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from annotation.importers import errors as E
from annotation.importers.errors import FieldProblem

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve_inside(base_dir: Path, value: str) -> Path:
    """The real path of `value` (relative to `base_dir`), guaranteed inside `base_dir`.
    Precondition: `base_dir` is already resolved. Raises FieldProblem."""
    if not value.strip():
        raise FieldProblem(E.FIELD_MISSING, "the image path is empty")
    if "\x00" in value:
        raise FieldProblem(E.PATH_INVALID, "the image path contains a NUL character")
    if value.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(value) or os.path.isabs(value):
        raise FieldProblem(
            E.PATH_ABSOLUTE,
            f"image path {value!r} is absolute; give it relative to the manifest's folder",
        )
    parts = re.split(r"[\\/]+", value)
    if ".." in parts:
        raise FieldProblem(
            E.PATH_TRAVERSAL,
            f"image path {value!r} uses '..'; paths must stay inside the manifest's folder",
        )
    candidate = base_dir / value
    try:
        real = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        raise FieldProblem(
            E.FILE_UNREADABLE, f"image path {value!r} cannot be resolved: {exc}"
        ) from None
    if not real.is_relative_to(base_dir):
        raise FieldProblem(
            E.PATH_SYMLINK_ESCAPE,
            f"image path {value!r} is a symlink that points outside the manifest's folder",
        )
    return real


def read_file_capped(path: Path, *, label: str, max_bytes: int) -> bytes:
    """Read a regular file whole, refusing (from its size, before reading) anything over
    `max_bytes` so a huge file never lands in memory. Raises FieldProblem."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FieldProblem(E.FILE_MISSING, f"image file {label!r} does not exist") from None
    except IsADirectoryError:
        raise FieldProblem(
            E.FILE_UNREADABLE, f"image path {label!r} is a folder, not a file"
        ) from None
    except OSError as exc:
        raise FieldProblem(
            E.FILE_UNREADABLE, f"image file {label!r} cannot be read: {exc.strerror or exc}"
        ) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FieldProblem(E.FILE_UNREADABLE, f"image path {label!r} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            # FIFOs and devices could block or never end.
            raise FieldProblem(E.FILE_UNREADABLE, f"image path {label!r} is not a regular file")
        if st.st_size > max_bytes:
            raise FieldProblem(
                "image_too_large",
                f"image file {label!r} is {st.st_size:,} bytes, over the cap of {max_bytes:,} bytes",
            )
        chunks: list[bytes] = []
        remaining = max_bytes + 1  # one more than allowed, to notice a file that grew
        while remaining > 0:
            try:
                chunk = os.read(fd, min(remaining, 1 << 20))
            except OSError as exc:
                raise FieldProblem(
                    E.FILE_UNREADABLE, f"image file {label!r} cannot be read: {exc.strerror or exc}"
                ) from None
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
