"""Perturbation studies (docs/perturbation.md): define one on a campaign, and build its
perturbed items — every pool example at every rung of the ladder — in a Job of kind perturb.

Building is chunked and idempotent: a chunk's values are computed and its images stored
(media_store, content-addressed, each write its own short transaction) before the chunk's rows
are inserted in one transaction with `ignore_conflicts` on the (study, example, level) key, so
no image I/O happens while SQLite's write lock is held, and a re-run or taken-over job only
adds what is missing. The first rung is the identity: its values are the example's own (same
bytes, same content hash, so model scores already made are reused)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count

from annotation import perturbations as pt
from annotation.models import (
    Campaign,
    CampaignExample,
    Example,
    Job,
    Media,
    PerturbationStudy,
    PerturbedItem,
)
from annotation.schema import content_hash
from annotation.selectors import tabular_mad
from annotation.services.media import (
    CheckedImage,
    check_image_bytes,
    media_read,
    media_store_many,
)
from counterpoint.errors import Conflict, ValidationFailed

BUILD_CHUNK = 50


def _refuse(exc: pt.PerturbationError) -> ValidationFailed:
    return ValidationFailed(str(exc), code=exc.code)


def perturbation_study_create(
    *,
    campaign: Campaign,
    created_by: Any,
    name: str,
    modality: str,
    perturbation: str,
    levels: Sequence[Any] | None = None,
    seed: int = 0,
    chance: float | None = None,
    enqueue: bool = True,
) -> PerturbationStudy:
    """Define a study and enqueue the job that builds its items (on commit; with
    `enqueue=False` the caller runs perturbation_build_run itself). Precondition: the
    caller manages `campaign`. Raises ValidationFailed: perturbation_unknown,
    perturbation_modality (no such modality, or not of the perturbation's kind),
    perturbation_ladder_invalid, perturbation_chance; Conflict perturbation_study_exists."""
    from annotation.services.jobs import job_create, job_enqueue
    from annotation.tasks import perturbation_build_run

    try:
        spec = pt.perturbation_get(perturbation)
        ladder = pt.check_ladder(spec, list(spec.default_ladder) if levels is None else levels)
    except pt.PerturbationError as exc:
        raise _refuse(exc) from None
    kind = campaign.dataset.modality_kind(modality)
    if kind is None:
        names = ", ".join(campaign.dataset.modality_names())
        raise ValidationFailed(
            f"the dataset has no modality {modality!r} (it has {names})",
            code="perturbation_modality",
        )
    if kind != spec.kind:
        raise ValidationFailed(
            f"{perturbation} perturbs {spec.kind} values; {modality!r} is {kind}",
            code="perturbation_modality",
        )
    if chance is not None and not 0 < chance < 1:
        raise ValidationFailed(
            "chance is the accuracy of guessing, between 0 and 1", code="perturbation_chance"
        )
    name = name.strip()
    if not name:
        raise ValidationFailed("a study needs a name", code="perturbation_name")
    try:
        with transaction.atomic():
            study = PerturbationStudy.objects.create(
                campaign=campaign,
                name=name,
                modality=modality,
                perturbation=perturbation,
                levels=ladder,
                seed=seed,
                chance=chance,
                created_by=created_by if getattr(created_by, "pk", None) else None,
            )
            job = job_create(
                kind=Job.Kind.PERTURB,
                created_by=created_by,
                params={"study": study.pk},
                campaign=campaign,
                dataset=campaign.dataset,
            )
            study.job = job
            study.save(update_fields=["job"])
            if enqueue:
                job_enqueue(job=job, task=perturbation_build_run)
    except IntegrityError:
        raise Conflict(
            f"the campaign already has a study named {name!r}", code="perturbation_study_exists"
        ) from None
    return study


def study_chance(study: PerturbationStudy) -> float:
    """The accuracy of guessing: the study's own figure, else 1 / |label space|."""
    if study.chance is not None:
        return float(study.chance)
    labels = study.campaign.dataset.label_space
    return 1.0 / len(labels) if labels else 0.5


@dataclass(frozen=True)
class _Perturber:
    """Turns one example's values into its values at each rung, without writing anything:
    images come back as checked PNG bytes for the caller to store."""

    study: PerturbationStudy
    kind: str
    mad: dict[str, float | None]

    def values_at(
        self, example: Example, sources: dict[str, bytes]
    ) -> list[tuple[dict[str, Any], CheckedImage | str | None]]:
        """(values, image) per rung; the image is the original's sha256 at the first rung
        (the example itself) and a CheckedImage at the others. [] when the example's image
        is not stored (it stays out of the study)."""
        study, modality = self.study, self.study.modality
        original = example.values.get(modality)
        key = example.content_hash
        out: list[tuple[dict[str, Any], CheckedImage | str | None]] = [
            (dict(example.values), original if self.kind == "image" else None)
        ]
        rungs = study.levels[1:]
        if self.kind == "image":
            source = sources.get(str(original))
            if source is None:
                return []
            images = pt.perturb_image_levels(
                source, name=study.perturbation, levels=rungs, seed=study.seed, key=key
            )
            for data in images:
                checked = check_image_bytes(data)
                out.append(({**example.values, modality: checked.sha256}, checked))
            return out
        for level in rungs:
            values = dict(example.values)
            if self.kind == "text":
                values[modality] = pt.perturb_text(
                    str(original or ""),
                    name=study.perturbation,
                    level=level,
                    seed=study.seed,
                    key=key,
                )
            else:
                values[modality] = pt.perturb_tabular(
                    original if isinstance(original, dict) else {},
                    name=study.perturbation,
                    level=level,
                    seed=study.seed,
                    key=key,
                    mad=self.mad,
                )
            out.append((values, None))
        return out


def _sources(examples: list[Example], modality: str) -> dict[str, bytes]:
    """The stored bytes of the examples' images in `modality` (one query per chunk)."""
    shas = {
        str(e.values.get(modality)) for e in examples if isinstance(e.values.get(modality), str)
    }
    return {m.sha256: media_read(m) for m in Media.objects.filter(sha256__in=sorted(shas))}


@dataclass
class BuildReport:
    examples: int
    items_created: int
    items_total: int


def perturbation_items_build(
    *, study: PerturbationStudy, progress: Callable[[int, int], None] | None = None
) -> BuildReport:
    """Create every missing PerturbedItem of `study` (pool examples x rungs) and mark it ready.
    Safe to run again and from a taken-over job: existing rows are kept as they are."""
    campaign = study.campaign
    kind = campaign.dataset.modality_kind(study.modality) or ""
    mad = (
        tabular_mad(dataset=campaign.dataset, modality=study.modality) if kind == "tabular" else {}
    )
    perturber = _Perturber(study=study, kind=kind, mad=mad)
    example_ids = list(
        CampaignExample.objects.filter(campaign=campaign)
        .order_by("example_id")
        .values_list("example_id", flat=True)
    )
    rungs = len(study.levels)
    done_ids = set(
        PerturbedItem.objects.filter(study=study)
        .values("example_id")
        .annotate(n=Count("id"))
        .filter(n=rungs)
        .values_list("example_id", flat=True)
    )
    position = {pk: i for i, pk in enumerate(example_ids)}
    todo = [pk for pk in example_ids if pk not in done_ids]
    created = 0
    total = len(example_ids)
    if progress:
        progress(total - len(todo), total)
    for start in range(0, len(todo), BUILD_CHUNK):
        chunk = list(
            Example.objects.filter(pk__in=todo[start : start + BUILD_CHUNK]).order_by("pk")
        )
        sources = _sources(chunk, study.modality) if kind == "image" else {}
        per_example = [(example, perturber.values_at(example, sources)) for example in chunk]
        # Images stored before the rows' transaction (files, then their Media rows).
        new_images = [
            img for _, rungs_ in per_example for _, img in rungs_ if isinstance(img, CheckedImage)
        ]
        stored = media_store_many(checked=new_images) if new_images else {}
        originals = (
            {m.sha256: m for m in Media.objects.filter(sha256__in=list(sources))} if sources else {}
        )
        rows = []
        for example, rungs_ in per_example:
            for index, (values, image) in enumerate(rungs_):
                media: Media | None = None
                if isinstance(image, CheckedImage):
                    media = stored[image.sha256]
                elif isinstance(image, str):
                    media = originals.get(image)
                rows.append(
                    PerturbedItem(
                        study=study,
                        example=example,
                        level_index=index,
                        level=study.levels[index],
                        position=position[example.pk],
                        values=values,
                        media=media,
                        content_hash=content_hash(values),
                    )
                )
        with transaction.atomic():
            before = PerturbedItem.objects.filter(study=study).count()
            PerturbedItem.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
            created += PerturbedItem.objects.filter(study=study).count() - before
        if progress:
            progress(total - len(todo) + start + len(chunk), total)
    PerturbationStudy.objects.filter(pk=study.pk).update(status=PerturbationStudy.Status.READY)
    return BuildReport(
        examples=total,
        items_created=created,
        items_total=PerturbedItem.objects.filter(study=study).count(),
    )


def perturbation_build_job_run(
    *, job: Job, progress: Callable[[int, int], None]
) -> tuple[PerturbationStudy, BuildReport]:
    study = PerturbationStudy.objects.select_related("campaign__dataset").get(
        pk=job.params["study"]
    )
    try:
        report = perturbation_items_build(study=study, progress=progress)
    except Exception:
        PerturbationStudy.objects.filter(pk=study.pk).update(status=PerturbationStudy.Status.FAILED)
        raise
    return study, report
