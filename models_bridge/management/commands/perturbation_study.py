"""Define (or reuse) a perturbation study of a campaign, build its items, score them with the
campaign's models and print the curves (docs/perturbation.md).

    python manage.py perturbation_study "easy-VQA demo" --name noise --modality image \\
        --perturbation gaussian_noise --levels 0,0.1,0.2,0.4,0.8 --score

This process runs the jobs (the build, one scoring job per model); --minimal NAME@VERSION also
runs the minimal perturbation to chance for that model. Run it again after people have labelled
the study to print their curve beside the models'."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Campaign, Job, PerturbationStudy
from counterpoint.errors import ServiceError


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}"


class Command(BaseCommand):
    help = "Build, score and report a perturbation study of a campaign."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign", help="campaign name or id")
        parser.add_argument("--name", required=True, help="the study's name in the campaign")
        parser.add_argument("--modality", help="the modality to perturb (new study)")
        parser.add_argument("--perturbation", help="e.g. gaussian_noise, blur, word_dropout")
        parser.add_argument("--levels", help="comma-separated ladder (default: the perturbation's)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--score", action="store_true", help="score items with every model")
        parser.add_argument("--minimal", help="NAME@VERSION: minimal perturbation to chance")

    def handle(self, *args: Any, **opts: Any) -> None:
        from annotation.services.perturbations import perturbation_study_create
        from annotation.tasks import perturbation_build_run
        from models_bridge.models import ModelVersion
        from models_bridge.services.perturbation import (
            minimal_perturbation,
            perturbation_score_start,
            study_curves,
        )
        from models_bridge.tasks import bulk_score_task

        ref = opts["campaign"]
        campaign = (
            Campaign.objects.filter(pk=int(ref)).first()
            if str(ref).isdigit()
            else Campaign.objects.filter(name=ref).first()
        )
        if campaign is None:
            raise CommandError(f"no campaign {ref!r}")
        study = PerturbationStudy.objects.filter(campaign=campaign, name=opts["name"]).first()
        try:
            if study is None:
                if not opts["modality"] or not opts["perturbation"]:
                    raise CommandError("a new study needs --modality and --perturbation")
                levels = (
                    [float(x) for x in str(opts["levels"]).split(",")] if opts["levels"] else None
                )
                study = perturbation_study_create(
                    campaign=campaign,
                    created_by=None,
                    name=opts["name"],
                    modality=opts["modality"],
                    perturbation=opts["perturbation"],
                    levels=levels,
                    seed=opts["seed"],
                    enqueue=False,
                )
                self.stdout.write(
                    f"study {study.pk} {study.name!r}: {study.perturbation} of {study.modality}, ladder {study.levels}"
                )
            if study.status != PerturbationStudy.Status.READY and study.job_id:
                Job.objects.filter(pk=study.job_id, status=Job.Status.FAILED).update(
                    status=Job.Status.PENDING
                )
                perturbation_build_run(study.job_id)
                study.refresh_from_db()
                job = Job.objects.get(pk=study.job_id)
                self.stdout.write(
                    f"build job {job.pk}: {job.status}, {(job.result or {}).get('items_total', 0)} items"
                )
            if opts["score"]:
                for job in perturbation_score_start(study=study, created_by=None, enqueue=False):
                    bulk_score_task(job.pk)
                    job.refresh_from_db()
                    result = job.result or {}
                    self.stdout.write(
                        f"scoring job {job.pk}: {job.status}, {result.get('computed', 0)} computed, "
                        f"{result.get('cached', 0)} cached"
                    )
            curves = study_curves(study=study)
            if opts["minimal"]:
                name, _, version = str(opts["minimal"]).rpartition("@")
                mv = ModelVersion.objects.filter(name=name, version=version).first()
                if mv is None:
                    raise CommandError(f"no model {opts['minimal']!r} (give NAME@VERSION)")
                minimal = minimal_perturbation(study=study, model_version=mv)
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        levels = curves["levels"]
        self.stdout.write(
            f"chance {curves['chance']:.3f}; accuracy by level {', '.join(f'{x:g}' for x in levels)}"
        )
        for who, curve in [("humans", curves["humans"])] + [
            (m["name"], m) for m in curves["models"]
        ]:
            acc = " ".join(_fmt(p["accuracy"]) for p in curve["points"])
            self.stdout.write(
                f"  {who:<32} n={curve['observations']:<6} {acc}   halfway to chance: "
                f"{_fmt(curve['halfway']) if curve['halfway_on_ladder'] else 'beyond the ladder'} "
                f"(fit), {_fmt(curve['empirical_halfway'])} (observed)"
            )
        if opts["minimal"]:
            self.stdout.write(
                f"minimal perturbation to chance, {minimal['model_name']}: {minimal['reached_chance']} of "
                f"{minimal['examples']} examples fail on the ladder, median level "
                f"{_fmt(minimal['median_level'])}, {minimal['mean_calls']:.2f} model calls per example"
            )
