from __future__ import annotations

import secrets
from typing import Any

from django.db import migrations, models


def fill_secrets(apps: Any, schema_editor: Any) -> None:
    # Existing campaigns get a secret too; their gold items stay as placed (is_gold is
    # stored), only the per-annotator timing of gold checks changes from here on.
    Campaign = apps.get_model("annotation", "Campaign")
    for campaign in Campaign.objects.filter(gold_secret="").only("id"):
        Campaign.objects.filter(pk=campaign.pk).update(gold_secret=secrets.token_hex(32))


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0006_h2_cache_and_media_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="gold_secret",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.RunPython(fill_secrets, migrations.RunPython.noop),
    ]
