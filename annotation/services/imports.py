"""Dataset import: easy-VQA from the installed package, and JSONL/CSV manifests with media.

Two phases, so bad input never leaves partial data:
1. validate: every line is parsed and every image read, hashed and fully decoded (once per
   distinct file / distinct bytes) without writing anything; existing examples are compared.
2. write: first the new media files (content-addressed, atomic rename, outside any
   transaction), then one short transaction for the dataset, the Media rows and the examples
   in bulk. If that transaction fails, the media files this import created that no committed
   Media row references are removed again, so the media folder is as it was.

By default an import is all or nothing and reports every bad line; skip_invalid imports the
good lines and reports the rest. Re-running an import is a no-op: an existing example with the
same external id and identical content is skipped; one whose content changed is an error."""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from annotation.importers import easyvqa as evqa
from annotation.importers import errors as E
from annotation.importers.archive import extract_zip
from annotation.importers.errors import FieldProblem, LineError, format_group, group_errors
from annotation.importers.images import ImageInfo, ImageReader
from annotation.importers.manifest import PreparedRow, Schema, read_manifest
from annotation.importers.schema_file import build_schema, load_schema_file
from annotation.models import Dataset, Example, Job, Media
from annotation.schema import content_hash, normalise_label_space, normalise_modalities
from annotation.services.datasets import dataset_get_or_create
from annotation.services.jobs import JobLeaseLost
from annotation.services.media import example_media_index, media_relative_path, write_media_file
from counterpoint.errors import Conflict, ValidationFailed

Progress = Callable[[int, int], None]
FORMATS = ("jsonl", "csv", "easyvqa")
EXAMPLE_BATCH = 1000
QUERY_CHUNK = 500
MAX_REPORTED_IN_MESSAGE = 3
STAGING_DIR = "_imports"
MANIFEST_NAME = "__manifest__"


@dataclass
class ImportReport:
    dataset: Dataset | None
    created: int = 0
    skipped_existing: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    media_created: int = 0
    media_reused: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        groups, left_off = group_errors(self.errors)
        return {
            "dataset": {"id": self.dataset.pk, "name": self.dataset.name} if self.dataset else None,
            "created": self.created,
            "skipped_existing": self.skipped_existing,
            "errors": self.errors,
            "error_groups": groups,
            "error_groups_left_off": left_off,
            "media_created": self.media_created,
            "media_reused": self.media_reused,
            "seconds": round(self.seconds, 3),
        }


def _limits() -> tuple[int, int, int]:
    return (
        int(settings.IMPORT_MAX_IMAGE_BYTES),
        int(settings.IMPORT_MAX_IMAGE_PIXELS),
        int(settings.IMPORT_MAX_TEXT_CHARS),
    )


def _check_dataset_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("give the dataset a name", code="import_dataset_name")
    if len(name) > 200:
        raise ValidationFailed(
            "dataset names are at most 200 characters", code="import_dataset_name"
        )
    return name


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _invalid(
    errors: list[LineError], *, what: str = "the manifest", skip_option: str | None = "skip_invalid"
) -> ValidationFailed:
    """The all-or-nothing refusal. The message names the first groups of identical errors
    (group_errors), not the first lines, so one systematic mistake reads as one sentence;
    `details` keeps every line for clients; `skip_option` is how the caller spells the option
    that imports the good lines (None: the import has no such option)."""
    errors = sorted(errors, key=lambda e: (e.line, e.field))
    lines = {e.line for e in errors}
    groups, left_off = group_errors(errors, limit=MAX_REPORTED_IN_MESSAGE)
    shown = "; ".join(format_group(g) for g in groups)
    more = f" (and {left_off} more kinds of error)" if left_off else ""
    hint = f"Fix them, or import the good lines with {skip_option}." if skip_option else "Fix them."
    return ValidationFailed(
        f"{len(lines)} line(s) of {what} are invalid, so nothing was imported: {shown}{more}. "
        + hint,
        code="import_invalid",
        details=[e.as_dict() for e in errors],
    )


# --- schema --------------------------------------------------------------------------------


def resolve_schema(
    *,
    dataset_name: str,
    modalities: Any = None,
    label_space: Any = None,
    schema_path: Path | str | None = None,
    metadata_types: dict[str, str] | None = None,
) -> tuple[Schema, str]:
    """The schema of the import: flags override the schema file; an existing dataset supplies
    what neither gives, and must agree with what they give. Returns (schema, description)."""
    description = ""
    if schema_path is not None:
        loaded = load_schema_file(Path(schema_path))
        modalities = modalities if modalities is not None else loaded.get("modalities")
        label_space = label_space if label_space is not None else loaded.get("label_space")
        metadata_types = metadata_types or loaded.get("metadata")
        description = loaded.get("description", "")
    existing = Dataset.objects.filter(name=dataset_name).first()
    if existing is not None:
        mods = normalise_modalities(modalities) if modalities is not None else existing.modalities
        labels = (
            normalise_label_space(label_space) if label_space is not None else existing.label_space
        )
        if mods != existing.modalities or labels != existing.label_space:
            raise Conflict(
                f"dataset {dataset_name!r} exists with a different schema (modalities "
                f"{existing.modalities}, labels {existing.label_space}); import into a new dataset name",
                code="dataset_schema_mismatch",
            )
        return Schema(
            modalities=list(mods), label_space=list(labels), metadata_types=metadata_types or {}
        ), existing.description
    if modalities is None:
        raise ValidationFailed(
            f"dataset {dataset_name!r} does not exist yet: give its modalities (e.g. image:image,text:text) "
            "or a schema file",
            code=E.SCHEMA_MISSING,
        )
    if label_space is None:
        raise ValidationFailed(
            f"dataset {dataset_name!r} does not exist yet: give its label space (labels or a schema file)",
            code=E.SCHEMA_MISSING,
        )
    return build_schema(
        modalities=modalities, label_space=label_space, metadata_types=metadata_types
    ), description


# --- write phase ------------------------------------------------------------------------------


def _against_existing(
    dataset: Dataset | None, rows: list[PreparedRow]
) -> tuple[list[PreparedRow], int, list[LineError]]:
    """Split rows into new ones, identical existing ones (skipped) and changed ones (errors)."""
    if dataset is None or not rows:
        return rows, 0, []
    existing: dict[str, tuple[str, str | None, str, Any]] = {}
    for chunk in _chunks([r.external_id for r in rows], QUERY_CHUNK):
        for ext, chash, label, split, meta in Example.objects.filter(
            dataset=dataset, external_id__in=chunk
        ).values_list("external_id", "content_hash", "label", "split", "metadata"):
            existing[ext] = (chash, label, split, meta)
    if not existing:
        return rows, 0, []
    fresh: list[PreparedRow] = []
    skipped = 0
    errors: list[LineError] = []
    for row in rows:
        old = existing.get(row.external_id)
        if old is None:
            fresh.append(row)
        elif old == (row.content_hash, row.label, row.split, row.metadata):
            skipped += 1
        else:
            errors.append(
                LineError(
                    row.line,
                    "external_id",
                    E.EXTERNAL_ID_EXISTS,
                    f"external id {row.external_id!r} already exists in dataset {dataset.name!r} with "
                    "different content; give the changed example a new id",
                )
            )
    return fresh, skipped, errors


class _MediaWriter:
    """Writes media files and remembers what it created (files and folders), so a failed
    import can take exactly those back."""

    def __init__(self) -> None:
        self.root = Path(settings.MEDIA_ROOT)
        self.files: list[tuple[str, Path]] = []
        self.dirs: list[Path] = []

    def write(self, info: ImageInfo) -> bool:
        rel = media_relative_path(info.sha256, info.mime_type)
        target = self.root / rel
        if target.exists():
            return False
        parent = target.parent
        missing: list[Path] = []
        while parent != self.root and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        self.dirs.extend(missing)
        if write_media_file(rel, info.load()):
            self.files.append((info.sha256, target))
            return True
        return False

    def undo(self) -> None:
        if not self.files and not self.dirs:
            return
        shas = [sha for sha, _ in self.files]
        try:
            kept: set[str] = set()
            for chunk in _chunks(shas, QUERY_CHUNK):
                kept.update(Media.objects.filter(sha256__in=chunk).values_list("sha256", flat=True))
        except Exception:
            kept = set()  # the database is unreachable: our own files go regardless
        for sha, path in self.files:
            if sha not in kept:
                path.unlink(missing_ok=True)
        for d in sorted(self.dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()  # only when empty
            except OSError:
                pass


def _commit(
    *,
    dataset_name: str,
    schema: Schema,
    description: str,
    rows: list[PreparedRow],
    created_by: Any,
) -> tuple[Dataset, int, int, int]:
    """Returns (dataset, examples created, media created, media reused)."""
    needed: dict[str, ImageInfo] = {}
    for row in rows:
        for info in row.images:
            needed.setdefault(info.sha256, info)
    known: set[str] = set()
    for chunk in _chunks(list(needed), QUERY_CHUNK):
        known.update(Media.objects.filter(sha256__in=chunk).values_list("sha256", flat=True))
    new_media = [info for sha, info in needed.items() if sha not in known]
    writer = _MediaWriter()
    try:
        # Files first, outside any transaction: on SQLite the write lock is taken at BEGIN, so
        # slow I/O inside it would stall every lease and submit. Content addressing and the
        # atomic rename make the writes idempotent; if the rows then fail, `writer.undo`
        # takes back the files this import created and no committed row references.
        for info in new_media:
            writer.write(info)
        for sha in known:
            # A committed row whose file went missing gets its bytes back.
            info = needed[sha]
            if not (writer.root / media_relative_path(sha, info.mime_type)).exists():
                write_media_file(media_relative_path(sha, info.mime_type), info.load())
        # Then one short transaction for the rows only.
        with transaction.atomic():
            dataset, _ = dataset_get_or_create(
                name=dataset_name,
                modalities=schema.modalities,
                label_space=schema.label_space,
                description=description,
                created_by=created_by if getattr(created_by, "pk", None) else None,
            )
            Media.objects.bulk_create(
                [
                    Media(
                        sha256=info.sha256,
                        mime_type=info.mime_type,
                        size_bytes=info.size_bytes,
                        width=info.width,
                        height=info.height,
                        file=media_relative_path(info.sha256, info.mime_type),
                    )
                    for info in new_media
                ],
                batch_size=EXAMPLE_BATCH,
                # Another import may store the same bytes concurrently; the unique sha256 decides.
                ignore_conflicts=True,
            )
            for batch in _chunks(rows, EXAMPLE_BATCH):
                created = Example.objects.bulk_create(
                    [
                        Example(
                            dataset=dataset,
                            external_id=r.external_id,
                            values=r.values,
                            label=r.label,
                            split=r.split,
                            metadata=r.metadata,
                            content_hash=r.content_hash,
                        )
                        for r in batch
                    ]
                )
                example_media_index(dataset=dataset, examples=created)
    except IntegrityError:
        writer.undo()
        raise Conflict(
            f"another import wrote examples with the same external ids into {dataset_name!r} at the same "
            "time; nothing was imported — run the import again",
            code="import_conflict",
        ) from None
    except BaseException:
        writer.undo()
        raise
    return dataset, len(rows), len(new_media), len(known)


def _finish(
    *,
    dataset_name: str,
    schema: Schema,
    description: str,
    rows: list[PreparedRow],
    errors: list[LineError],
    skip_invalid: bool,
    created_by: Any,
    started: float,
    what: str,
    skip_option: str | None = "skip_invalid",
) -> ImportReport:
    dataset = Dataset.objects.filter(name=dataset_name).first()
    rows, skipped, changed = _against_existing(dataset, rows)
    errors = sorted([*errors, *changed], key=lambda e: (e.line, e.field))
    if errors and (not skip_invalid or (not rows and not skipped)):
        raise _invalid(errors, what=what, skip_option=skip_option)
    report = ImportReport(
        dataset=dataset, skipped_existing=skipped, errors=[e.as_dict() for e in errors]
    )
    if rows or dataset is None:
        report.dataset, report.created, report.media_created, report.media_reused = _commit(
            dataset_name=dataset_name,
            schema=schema,
            description=description,
            rows=rows,
            created_by=created_by,
        )
    report.seconds = time.perf_counter() - started
    return report


# --- the two import services ------------------------------------------------------------------


def easyvqa_import(
    *,
    split: str,
    limit: int | None = None,
    seed: int = 0,
    dataset_name: str = "easy-VQA",
    created_by: Any = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import easy-VQA questions of `split` (all, or a seeded sample of `limit`) into
    `dataset_name`. Idempotent. Error `line`s are question indices."""
    started = time.perf_counter()
    dataset_name = _check_dataset_name(dataset_name)
    questions, paths = evqa.read_split(split)
    chosen = evqa.choose(len(questions), limit=limit, seed=seed)
    schema, description = resolve_schema(
        dataset_name=dataset_name, modalities=evqa.MODALITIES, label_space=evqa.label_space()
    )
    if not Dataset.objects.filter(name=dataset_name).exists():
        description = "easy-VQA (MIT licence): 64x64 images of one shape, questions about colour, shape and yes/no."
    max_bytes, max_pixels, max_text = _limits()
    reader = ImageReader(base_dir=None, max_bytes=max_bytes, max_pixels=max_pixels)
    labels = set(schema.label_space)
    rows: list[PreparedRow] = []
    errors: list[LineError] = []
    total = len(chosen)
    for n, i in enumerate(chosen, 1):
        q = questions[i]
        path = paths.get(q.image_id)
        try:
            if path is None:
                raise FieldProblem(
                    E.FILE_MISSING, f"image {q.image_id} of question {i} is not in the package"
                )
            info = reader.read_path(path, label=f"{split}/images/{q.image_id}.png")
        except FieldProblem as p:
            errors.append(LineError(i, "image", p.code, p.message))
            continue
        if q.answer not in labels:
            errors.append(
                LineError(
                    i, "label", E.LABEL_UNKNOWN, f"answer {q.answer!r} is not in the label space"
                )
            )
            continue
        if len(q.text) > max_text:
            errors.append(
                LineError(i, "text", E.TEXT_TOO_LONG, "the question is over the text cap")
            )
            continue
        values = {"image": info.sha256, "text": q.text}
        rows.append(
            PreparedRow(
                line=i,
                external_id=q.external_id(split),
                values=values,
                label=q.answer,
                split=split,
                metadata={"image_id": q.image_id, "question_type": evqa.question_type(q.answer)},
                content_hash=content_hash(values),
                images=[info],
            )
        )
        if progress and (n % 500 == 0 or n == total):
            progress(n, total)
    return _finish(
        dataset_name=dataset_name,
        schema=schema,
        description=description,
        rows=rows,
        errors=errors,
        skip_invalid=False,
        created_by=created_by,
        started=started,
        what=f"easy-VQA {split}",
        skip_option=None,
    )


def manifest_import(
    *,
    dataset_name: str,
    manifest_path: Path | str,
    fmt: str,
    modalities: Any = None,
    label_space: Any = None,
    schema_path: Path | str | None = None,
    skip_invalid: bool = False,
    created_by: Any = None,
    progress: Progress | None = None,
    skip_option: str = "skip_invalid",
    metadata_types: dict[str, str] | None = None,
) -> ImportReport:
    """Import a JSONL or CSV manifest (see annotation.importers.manifest for the format).
    Image paths are relative to the manifest's folder and may not leave it."""
    started = time.perf_counter()
    if fmt not in ("jsonl", "csv"):
        raise ValidationFailed(
            f"manifest format must be jsonl or csv, not {fmt!r}", code="import_format"
        )
    dataset_name = _check_dataset_name(dataset_name)
    manifest_path = Path(manifest_path)
    schema, description = resolve_schema(
        dataset_name=dataset_name,
        modalities=modalities,
        label_space=label_space,
        schema_path=schema_path,
        metadata_types=metadata_types,
    )
    max_bytes, max_pixels, max_text = _limits()
    reader = ImageReader(base_dir=manifest_path.parent, max_bytes=max_bytes, max_pixels=max_pixels)
    try:
        result = read_manifest(
            path=manifest_path,
            fmt=fmt,
            schema=schema,
            images=reader,
            max_text_chars=max_text,
            max_image_bytes=max_bytes,
            progress=progress,
        )
    except FieldProblem as p:
        raise ValidationFailed(p.message, code=p.code) from None
    if result.fatal:
        raise _invalid([*result.fatal, *result.errors], skip_option=None)
    return _finish(
        dataset_name=dataset_name,
        schema=schema,
        description=description,
        rows=result.rows,
        errors=result.errors,
        skip_invalid=skip_invalid,
        created_by=created_by,
        started=started,
        what="the manifest",
        skip_option=skip_option,
    )


# --- import jobs (REST) --------------------------------------------------------------------------

_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def _staging_root() -> Path:
    return Path(settings.MEDIA_ROOT) / STAGING_DIR


def _staging_dir(token: str) -> Path:
    if not _TOKEN.match(token or ""):
        raise ValidationFailed("the import job has no valid upload folder", code="import_staging")
    return _staging_root() / token


def _remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.parent.rmdir()  # only when no other import is staged, so MEDIA_ROOT is as before
    except OSError:
        pass


def _save_upload(upload: UploadedFile, dest: Path) -> None:
    # Django has already spooled the upload to a temp file; refusing here keeps an oversize
    # upload from being copied again (the proxy's body limit is the first line of defence).
    cap = int(getattr(settings, "IMPORT_MAX_UPLOAD_BYTES", 4 * 1024**3))
    if (upload.size or 0) > cap:
        raise ValidationFailed(
            f"the upload {upload.name!r} is {upload.size:,} bytes, over the cap of {cap:,} bytes",
            code="import_upload_too_large",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)


def _parse_list_field(raw: Any, *, flag_parser: Callable[[str], list[str]]) -> Any:
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            import json

            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(
                    f"{text[:40]!r} is not valid JSON: {exc.msg}", code="import_params"
                ) from None
        return flag_parser(text)
    return raw


def import_job_create(
    *,
    created_by: Any,
    fmt: str,
    dataset_name: str | None = None,
    manifest: UploadedFile | None = None,
    media_archive: UploadedFile | None = None,
    schema_file: UploadedFile | None = None,
    modalities: Any = None,
    label_space: Any = None,
    skip_invalid: bool = False,
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> Job:
    """Check what can be checked now (format, schema, who may write the dataset), stage the
    uploads under MEDIA_ROOT (shared with workers), create the import Job and enqueue it on
    commit. Precondition: the caller may create datasets."""
    from annotation.access import dataset_for_user, datasets_visible_to
    from annotation.importers.schema_file import parse_labels_flag, parse_modalities_flag
    from annotation.services.jobs import job_create, job_enqueue
    from annotation.tasks import import_run

    if fmt not in FORMATS:
        raise ValidationFailed(
            f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", code="import_format"
        )
    dataset_name = _check_dataset_name(dataset_name or ("easy-VQA" if fmt == "easyvqa" else ""))
    existing = Dataset.objects.filter(name=dataset_name).first()
    if existing is not None:
        if not datasets_visible_to(user=created_by).filter(pk=existing.pk).exists():
            raise Conflict(
                f"a dataset named {dataset_name!r} already exists", code="dataset_name_taken"
            )
        dataset_for_user(user=created_by, dataset_id=existing.pk, write=True)

    params: dict[str, Any] = {"format": fmt, "dataset": dataset_name}
    if fmt == "easyvqa":
        if split not in evqa.SPLITS:
            raise ValidationFailed(
                f"easy-VQA has splits {', '.join(evqa.SPLITS)}, not {split!r}", code="easyvqa_split"
            )
        if limit is not None and limit < 1:
            raise ValidationFailed(f"limit must be at least 1, not {limit}", code="easyvqa_limit")
        resolve_schema(
            dataset_name=dataset_name, modalities=evqa.MODALITIES, label_space=evqa.label_space()
        )
        params.update({"split": split, "limit": limit, "seed": seed})
        with transaction.atomic():
            job = job_create(
                kind=Job.Kind.IMPORT, created_by=created_by, params=params, dataset=existing
            )
            job_enqueue(job=job, task=import_run)
        return job

    if manifest is None:
        raise ValidationFailed(
            "upload the manifest file as 'manifest'", code="import_manifest_missing"
        )
    mods = _parse_list_field(modalities, flag_parser=parse_modalities_flag)
    labels = _parse_list_field(label_space, flag_parser=parse_labels_flag)
    metadata_types: dict[str, str] | None = None
    token = uuid.uuid4().hex
    staging = _staging_dir(token)
    try:
        if schema_file is not None:
            _save_upload(schema_file, staging / "schema.json")
            loaded = load_schema_file(staging / "schema.json")
            mods = mods if mods is not None else loaded.get("modalities")
            labels = labels if labels is not None else loaded.get("label_space")
            metadata_types = loaded.get("metadata")
        schema, _ = resolve_schema(
            dataset_name=dataset_name,
            modalities=mods,
            label_space=labels,
            metadata_types=metadata_types,
        )
        _save_upload(manifest, staging / "files" / f"{MANIFEST_NAME}.{fmt}")
        if media_archive is not None:
            _save_upload(media_archive, staging / "media.zip")
        params.update(
            {
                "staging": token,
                "modalities": schema.modalities,
                "label_space": schema.label_space,
                "metadata_types": schema.metadata_types,
                "skip_invalid": bool(skip_invalid),
                "archive": media_archive is not None,
                "manifest_name": getattr(manifest, "name", ""),
            }
        )
        with transaction.atomic():
            job = job_create(
                kind=Job.Kind.IMPORT, created_by=created_by, params=params, dataset=existing
            )
            job_enqueue(job=job, task=import_run)
        return job
    except BaseException:
        _remove_staging(staging)
        raise


def import_job_run(
    *, job: Job, progress: Progress | None = None, log: Callable[[str], None] | None = None
) -> ImportReport:
    """Run an import job's work (the task has already claimed it). Removes the staged uploads
    whatever happens, unless the job was taken over by another run meanwhile."""
    params = job.params or {}
    fmt = params.get("format")
    say = log or (lambda _msg: None)
    if fmt == "easyvqa":
        return easyvqa_import(
            split=params.get("split", ""),
            limit=params.get("limit"),
            seed=int(params.get("seed") or 0),
            dataset_name=params.get("dataset") or "easy-VQA",
            created_by=job.created_by,
            progress=progress,
        )
    if fmt not in ("jsonl", "csv"):
        raise ValidationFailed(
            f"import job {job.pk} has an unknown format {fmt!r}", code="import_format"
        )
    staging = _staging_dir(params.get("staging", ""))
    taken_over = False
    try:
        files = staging / "files"
        if params.get("archive"):
            max_bytes, _, _ = _limits()
            count = extract_zip(
                archive=staging / "media.zip",
                target=files,
                max_files=int(getattr(settings, "IMPORT_MAX_ARCHIVE_FILES", 200_000)),
                max_total_bytes=int(getattr(settings, "IMPORT_MAX_ARCHIVE_BYTES", 4 * 1024**3)),
                max_member_bytes=max_bytes,
                reserved=frozenset({f"{MANIFEST_NAME}.jsonl", f"{MANIFEST_NAME}.csv"}),
            )
            say(f"unpacked {count} media files")
        return manifest_import(
            dataset_name=params["dataset"],
            manifest_path=files / f"{MANIFEST_NAME}.{fmt}",
            fmt=fmt,
            modalities=params.get("modalities"),
            label_space=params.get("label_space"),
            metadata_types=params.get("metadata_types"),
            skip_invalid=bool(params.get("skip_invalid")),
            created_by=job.created_by,
            progress=progress,
        )
    except JobLeaseLost:
        # Another run took the job over and reads these uploads now: they are its to remove.
        taken_over = True
        raise
    finally:
        if not taken_over:
            _remove_staging(staging)
