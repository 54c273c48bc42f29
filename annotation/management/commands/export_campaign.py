"""python manage.py export_campaign CAMPAIGN --format jsonl|csv|parquet|hf --out PATH

CAMPAIGN is the campaign's id or name. PATH is the archive to write, or an existing folder
to write it into under its immutable name (`<campaign>-<UTC time>-<sha256 prefix>.zip`).
The same service as the export jobs (annotation/services/exports.py) builds it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.export_format import FORMATS
from annotation.management.commands.import_dataset import _Bar
from annotation.models import Campaign
from annotation.services.exports import export_snapshot, export_write
from counterpoint.errors import ServiceError


class Command(BaseCommand):
    help = "Export a campaign's annotations and counterfactual pairs with a datasheet (a zip)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign", help="the campaign's id or name")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument(
            "--out", required=True, help="the .zip to write, or a folder to write it into"
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bar even on a terminal"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        ref = str(opts["campaign"])
        qs = Campaign.objects.select_related("dataset")
        campaign = (qs.filter(pk=int(ref)).first() if ref.isdigit() else None) or qs.filter(
            name=ref
        ).first()
        if campaign is None:
            raise CommandError(f"no campaign with id or name {ref!r}")
        out = Path(opts["out"])
        into_folder = out.is_dir()
        bar = _Bar(sys.stderr.isatty() and not opts["no_progress"], desc=f"export {opts['fmt']}")
        try:
            path, report = export_write(
                campaign=campaign,
                fmt=opts["fmt"],
                snapshot=export_snapshot(campaign=campaign),
                directory=out if into_folder else out.parent,
                progress=bar,
                final_path=None if into_folder else out,
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        finally:
            bar.close()
        self.stdout.write(
            f"exported {report.rows['annotations']} annotations and {report.rows['pairs']} "
            f"pairs to {path} ({report.size_bytes} bytes, sha256 {report.sha256}) "
            f"in {report.seconds:.1f} s"
        )
