"""The shared cache's table (settings.CACHES on the embedded default), so `migrate` alone
readies a database for throttles and sign-in lockouts; created whatever CACHES says today, so
switching from Redis back to the database cache needs no extra step."""

from __future__ import annotations

from typing import Any

from django.db import migrations

CACHE_TABLE = "counterpoint_cache"


def create_cache_table(apps: Any, schema_editor: Any) -> None:
    from django.core.management.commands.createcachetable import Command

    command = Command()
    command.verbosity = 0
    command.create_table(schema_editor.connection.alias, CACHE_TABLE, False)


def drop_cache_table(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(CACHE_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0003_campaign_item_load"),
    ]

    operations = [
        migrations.RunPython(create_cache_table, drop_cache_table),
    ]
