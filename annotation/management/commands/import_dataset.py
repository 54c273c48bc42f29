"""python manage.py import_dataset --format easyvqa --split test [--limit N] [--seed S] [--dataset NAME]
python manage.py import_dataset --format jsonl|csv --manifest FILE --dataset NAME
    [--modalities image:image,text:text] [--labels a,b,c | --schema schema.json] [--skip-invalid]"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.importers.errors import format_groups, group_errors
from annotation.importers.schema_file import parse_labels_flag, parse_modalities_flag
from annotation.services.imports import ImportReport, easyvqa_import, manifest_import
from counterpoint.errors import ServiceError


class _Bar:
    """A tqdm bar on a terminal, nothing otherwise (logs and CI stay clean)."""

    def __init__(self, enabled: bool, desc: str) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=0, desc=desc, unit="ex", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            return
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Command(BaseCommand):
    help = (
        "Import a dataset: easy-VQA from the installed package, or a JSONL/CSV manifest with media."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format", required=True, choices=["easyvqa", "jsonl", "csv"], dest="fmt"
        )
        parser.add_argument("--dataset", help='dataset name (easyvqa default: "easy-VQA")')
        parser.add_argument("--split", choices=["train", "test"], help="easyvqa: which split")
        parser.add_argument(
            "--limit", type=int, help="easyvqa: import a seeded sample of N questions"
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="easyvqa: sampling seed (default 0)"
        )
        parser.add_argument("--manifest", help="jsonl/csv: the manifest file")
        parser.add_argument("--modalities", help="jsonl/csv: e.g. image:image,text:text")
        parser.add_argument("--labels", help="jsonl/csv: the label space, e.g. yes,no")
        parser.add_argument(
            "--schema",
            help='jsonl/csv: a JSON file {"modalities": [...], "label_space": [...], '
            '"metadata": {"key": "integer|number|boolean|string"}} (docs/importing.md)',
        )
        parser.add_argument(
            "--skip-invalid", action="store_true", help="import the good lines, report the rest"
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bar even on a terminal"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        fmt = opts["fmt"]
        bar = _Bar(sys.stderr.isatty() and not opts["no_progress"], desc=f"import {fmt}")
        try:
            if fmt == "easyvqa":
                if not opts["split"]:
                    raise CommandError("--format easyvqa needs --split train or --split test")
                report = easyvqa_import(
                    split=opts["split"],
                    limit=opts["limit"],
                    seed=opts["seed"],
                    dataset_name=opts["dataset"] or "easy-VQA",
                    progress=bar,
                )
            else:
                if not opts["manifest"] or not opts["dataset"]:
                    raise CommandError(f"--format {fmt} needs --manifest FILE and --dataset NAME")
                if opts["labels"] and opts["schema"]:
                    raise CommandError("give the label space with --labels or --schema, not both")
                report = manifest_import(
                    dataset_name=opts["dataset"],
                    manifest_path=opts["manifest"],
                    fmt=fmt,
                    modalities=parse_modalities_flag(opts["modalities"])
                    if opts["modalities"]
                    else None,
                    label_space=parse_labels_flag(opts["labels"]) if opts["labels"] else None,
                    schema_path=opts["schema"],
                    skip_invalid=opts["skip_invalid"],
                    progress=bar,
                    skip_option="--skip-invalid",
                )
        except ServiceError as exc:
            bar.close()
            self._print_errors(exc.details)
            raise CommandError(f"{exc.message} [{exc.code}]") from None
        bar.close()
        self._summary(report)

    def _print_errors(self, details: Any) -> None:
        """Identical errors once with their line ranges, at most MAX_ERROR_GROUPS of them."""
        if not isinstance(details, list):
            return
        errors = [err for err in details if isinstance(err, dict) and "line" in err]
        groups, left_off = group_errors(errors)
        for text in format_groups(groups, left_off):
            self.stderr.write(f"  {text}")

    def _summary(self, report: ImportReport) -> None:
        name = report.dataset.name if report.dataset else "?"
        rate = report.created / report.seconds if report.seconds > 0 else 0.0
        self.stdout.write(
            f"dataset {name!r}: {report.created} examples imported, {report.skipped_existing} already present, "
            f"{len(report.errors)} bad lines skipped; media {report.media_created} new, "
            f"{report.media_reused} reused; {report.seconds:.2f} s ({rate:,.0f} examples/s)"
        )
        if report.errors:
            self.stderr.write(f"skipped {len(report.errors)} bad line(s):")
            self._print_errors(report.errors)
