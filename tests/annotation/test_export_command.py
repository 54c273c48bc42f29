"""manage.py export_campaign: the same archive as the jobs, to a file or into a folder."""

from __future__ import annotations

import zipfile
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.annotation.export_helpers import do_work

pytestmark = pytest.mark.django_db


def test_export_command_to_a_file_and_into_a_folder(
    campaign, examples, annotator, annotator2, tmp_path
):
    do_work(campaign, [annotator, annotator2])
    out = StringIO()
    call_command(
        "export_campaign",
        str(campaign.pk),
        "--format",
        "csv",
        "--out",
        str(tmp_path / "a.zip"),
        stdout=out,
    )
    assert "exported 2 annotations and 2 pairs" in out.getvalue()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert "pairs.csv" in zf.namelist()
    folder = tmp_path / "exports"
    folder.mkdir()
    call_command(
        "export_campaign",
        campaign.name,
        "--format",
        "parquet",
        "--out",
        str(folder),
        stdout=StringIO(),
    )
    (made,) = folder.iterdir()
    assert made.name.endswith(".zip") and made.name.startswith(campaign.name.lower())
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


def test_export_command_unknown_campaign(db, tmp_path):
    with pytest.raises(CommandError, match="no campaign"):
        call_command("export_campaign", "nope", "--format", "jsonl", "--out", str(tmp_path))
