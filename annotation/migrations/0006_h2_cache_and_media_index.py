"""Two things for access control.

1. The shared cache's table (settings.CACHES on the embedded default), so `migrate` alone
   readies a database for throttles and sign-in lockouts; made whatever CACHES says today,
   so switching from Redis back to the database cache needs no extra step.
2. ExampleMedia, the index of which example uses which image (the media access rule reads
   it), filled here for examples imported before it existed."""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

CACHE_TABLE = "counterpoint_cache"


def create_cache_table(apps: Any, schema_editor: Any) -> None:
    from django.core.management.commands.createcachetable import Command

    command = Command()
    command.verbosity = 0
    command.create_table(schema_editor.connection.alias, CACHE_TABLE, False)


def drop_cache_table(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(CACHE_TABLE)}")


def index_example_media(apps: Any, schema_editor: Any) -> None:
    Dataset = apps.get_model("annotation", "Dataset")
    Example = apps.get_model("annotation", "Example")
    Media = apps.get_model("annotation", "Media")
    ExampleMedia = apps.get_model("annotation", "ExampleMedia")

    def flush(batch: list[tuple[int, str, str]]) -> None:
        shas = {sha for _, _, sha in batch}
        ids = dict(Media.objects.filter(sha256__in=shas).values_list("sha256", "id"))
        ExampleMedia.objects.bulk_create(
            [
                ExampleMedia(example_id=pk, modality=name, media_id=ids[sha])
                for pk, name, sha in batch
                if sha in ids
            ],
            ignore_conflicts=True,
        )

    for dataset in Dataset.objects.all():
        images = [m["name"] for m in dataset.modalities if m["kind"] == "image"]
        if not images:
            continue
        batch: list[tuple[int, str, str]] = []
        examples = Example.objects.filter(dataset_id=dataset.pk).values_list("id", "values")
        for pk, values in examples.iterator(chunk_size=2000):
            for name in images:
                sha = values.get(name) if isinstance(values, dict) else None
                if isinstance(sha, str):
                    batch.append((pk, name, sha))
            if len(batch) >= 500:
                flush(batch)
                batch = []
        flush(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0005_h5_job_heartbeat"),
    ]

    operations = [
        migrations.RunPython(create_cache_table, drop_cache_table),
        migrations.CreateModel(
            name="ExampleMedia",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("modality", models.CharField(max_length=100)),
                (
                    "example",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="media_uses",
                        to="annotation.example",
                    ),
                ),
                (
                    "media",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotation.media",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["media", "example"], name="example_media_by_media")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("example", "modality"), name="example_media_once_per_modality"
                    )
                ],
            },
        ),
        migrations.RunPython(index_example_media, migrations.RunPython.noop),
    ]
