"""Shared setup for the model-bridge benchmarks: a throw-away var dir (SQLite database and
media), migrated, with easy-VQA test questions imported. Not a benchmark itself."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_in_temp_var(prefix: str) -> Path:
    var = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["COUNTERPOINT_VAR_DIR"] = str(var)
    os.environ.setdefault("COUNTERPOINT_TORCH_THREADS", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "counterpoint.settings_test"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return var


def import_easyvqa(limit: int | None):  # type: ignore[no-untyped-def]
    from annotation.models import Dataset
    from annotation.services.imports import easyvqa_import

    easyvqa_import(split="test", limit=limit)
    return Dataset.objects.get(name="easy-VQA")
