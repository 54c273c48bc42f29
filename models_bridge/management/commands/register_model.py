"""Register a model version against a dataset.

    python manage.py register_model --dataset easy-VQA fixtures/models/easyvqa-additive
    python manage.py register_model --dataset easy-VQA --kind entrypoint \\
        --name my-model --model-version 1 mypackage.models:make_adapter
    python manage.py register_model --dataset easy-VQA --kind remote \\
        --name my-remote --model-version 1 --remote-model-name easyvqa http://127.0.0.1:8080
    python manage.py register_model --dataset easy-VQA --reference   # the easy-VQA reference models

Options: --label-map '{"model label": "dataset label"}', --option key=value (entry point
factory keyword arguments, JSON values allowed), --campaign NAME to also attach it to a
campaign's live feedback. The command is run by whoever controls the server, so local
paths anywhere are accepted (the REST endpoint is stricter); the package is copied into
managed storage (MEDIA_ROOT/models/<sha256>/) and checked in the sandbox like any other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Campaign, Dataset
from counterpoint.errors import ServiceError


class Command(BaseCommand):
    help = "Register a model (TorchScript package, Python entry point or remote V2 server) for a dataset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "location", nargs="?", help="package folder/zip, package.module:factory, or base URL"
        )
        parser.add_argument("--dataset", required=True, help="dataset name or id")
        parser.add_argument(
            "--kind", choices=["torchscript", "entrypoint", "remote"], default="torchscript"
        )
        parser.add_argument("--name")
        parser.add_argument("--model-version", dest="model_version")
        parser.add_argument("--description")
        parser.add_argument("--remote-model-name", default="")
        parser.add_argument(
            "--labels", help="comma-separated labels (remote models without label metadata)"
        )
        parser.add_argument("--label-map", help="JSON object: model label → dataset label")
        parser.add_argument(
            "--option", action="append", default=[], help="factory keyword argument key=value"
        )
        parser.add_argument(
            "--campaign", help="also attach the model(s) to this campaign (name or id)"
        )
        parser.add_argument(
            "--reference", action="store_true", help="register the easy-VQA reference models"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        from models_bridge.services.registry import (
            campaign_models_set,
            model_register,
            reference_models_register,
        )

        dataset = _get(Dataset, opts["dataset"])
        try:
            if opts["reference"]:
                mvs = reference_models_register(dataset=dataset)
            else:
                if not opts["location"]:
                    raise CommandError("give a location (or --reference)")
                options = {}
                for item in opts["option"]:
                    key, sep, raw = item.partition("=")
                    if not sep:
                        raise CommandError(f"--option {item!r} is not key=value")
                    try:
                        options[key] = json.loads(raw)
                    except json.JSONDecodeError:
                        options[key] = raw
                try:
                    label_map = json.loads(opts["label_map"]) if opts["label_map"] else None
                except json.JSONDecodeError as exc:
                    raise CommandError(f"--label-map is not JSON: {exc}") from None
                location = opts["location"]
                if opts["kind"] == "torchscript" and Path(location).exists():
                    # A path given on the command line means this shell's working directory;
                    # a bare name that is not a path here is looked up in COUNTERPOINT_MODELS_DIR.
                    location = str(Path(location).resolve())
                mvs = [
                    model_register(
                        dataset=dataset,
                        kind=opts["kind"],
                        location=location,
                        name=opts["name"],
                        version=opts["model_version"],
                        description=opts["description"],
                        remote_model_name=opts["remote_model_name"],
                        labels=opts["labels"].split(",") if opts["labels"] else None,
                        label_map=label_map,
                        options=options or None,
                    )
                ]
            if opts["campaign"]:
                campaign = _get(Campaign, opts["campaign"])
                current = list(campaign.model_versions.all())
                campaign_models_set(
                    campaign=campaign, model_versions=current + [m for m in mvs if m not in current]
                )
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        for mv in mvs:
            self.stdout.write(
                self.style.SUCCESS(
                    f"{mv} (id {mv.pk}, {mv.kind}, reads {', '.join(mv.modalities)})"
                )
            )


def _get(model: Any, ref: str) -> Any:
    qs = model.objects.filter(pk=int(ref)) if ref.isdigit() else model.objects.filter(name=ref)
    obj = qs.first()
    if obj is None:
        raise CommandError(f"no {model.__name__.lower()} {ref!r}")
    return obj
