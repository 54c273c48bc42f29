from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from annotation.models import Dataset
from annotation.schema import normalise_label_space, normalise_modalities
from counterpoint.errors import Conflict


def dataset_create(
    *, name: str, modalities: Any, label_space: Any, description: str = "", created_by: Any = None
) -> Dataset:
    mods = normalise_modalities(modalities)
    labels = normalise_label_space(label_space)
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                name=name,
                description=description,
                modalities=mods,
                label_space=labels,
                created_by=created_by,
            )
    except IntegrityError:
        raise Conflict(
            f"a dataset named {name!r} already exists", code="dataset_name_taken"
        ) from None


def dataset_get_or_create(
    *, name: str, modalities: Any, label_space: Any, description: str = "", created_by: Any = None
) -> tuple[Dataset, bool]:
    """For idempotent imports: an existing dataset must have the same schema."""
    existing = Dataset.objects.filter(name=name).first()
    if existing is None:
        return dataset_create(
            name=name,
            modalities=modalities,
            label_space=label_space,
            description=description,
            created_by=created_by,
        ), True
    mods = normalise_modalities(modalities)
    labels = normalise_label_space(label_space)
    if existing.modalities != mods or existing.label_space != labels:
        raise Conflict(
            f"dataset {name!r} exists with a different schema (modalities {existing.modalities}, "
            f"labels {existing.label_space})",
            code="dataset_schema_mismatch",
        )
    return existing, False
