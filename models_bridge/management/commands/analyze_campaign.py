"""Run analyses of a campaign with one model (docs/analysis.md).

    python manage.py analyze_campaign "easy-VQA demo" --model easyvqa-multiplicative@1 \\
        --methods emap,ablation,perceptual --limit 500

The job is an ordinary analysis Job: by default this process runs it and prints its progress;
--enqueue sends it to the `analysis` workers instead (add --block-tasks N to let N more
workers share the EMAP row blocks). --resume JOB sends a failed job again: stored method
results and EMAP blocks are kept."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from annotation.models import Campaign, Job
from counterpoint.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Run analysis methods (emap, ablation, perceptual, pid, counterfactual, clusters, "
        "heads) of a campaign with a model."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign", help="campaign name or id")
        parser.add_argument("--model", required=True, help="NAME@VERSION")
        parser.add_argument("--methods", default="emap", help="comma-separated method names")
        parser.add_argument("--limit", type=int, help="a seeded sample of this many examples")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--split", help="only examples of this split")
        parser.add_argument("--path", choices=["auto", "factorized", "black-box"], default="auto")
        parser.add_argument("--block-rows", type=int, help="EMAP grid rows per block")
        parser.add_argument(
            "--block-tasks", type=int, default=0, help="helper tasks sent for EMAP blocks"
        )
        parser.add_argument("--permutations", type=int, help="perceptual score permutations")
        parser.add_argument("--grid", type=int, help="grounding: image patches per side")
        parser.add_argument(
            "--word-mode", choices=["drop", "unk"], help="grounding: how a word is removed"
        )
        parser.add_argument("--enqueue", action="store_true", help="send to workers, do not wait")

    def handle(self, *args: Any, **opts: Any) -> None:
        from models_bridge.models import ModelVersion
        from models_bridge.services.analysis import analysis_start
        from models_bridge.tasks import analysis_run_task

        ref = opts["campaign"]
        campaign = (
            Campaign.objects.filter(pk=int(ref)).first()
            if str(ref).isdigit()
            else Campaign.objects.filter(name=ref).first()
        )
        if campaign is None:
            raise CommandError(f"no campaign {ref!r}")
        name, _, version = str(opts["model"]).rpartition("@")
        mv = ModelVersion.objects.filter(name=name, version=version).first()
        if not name or mv is None:
            raise CommandError(f"no model {opts['model']!r} (give NAME@VERSION)")
        params: dict[str, Any] = {"seed": opts["seed"], "path": opts["path"]}
        for key in ("limit", "split", "block_rows", "permutations", "grid", "word_mode"):
            if opts[key] is not None:
                params[key] = opts[key]
        params["block_tasks"] = opts["block_tasks"]
        methods = [m.strip() for m in str(opts["methods"]).split(",") if m.strip()]
        try:
            job = analysis_start(
                campaign=campaign,
                model_version=mv,
                methods=methods,
                params=params,
                created_by=None,
                enqueue=bool(opts["enqueue"]),
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(f"analysis job {job.pk}: {', '.join(methods)} on {mv}")
        if opts["enqueue"]:
            return

        def work() -> None:
            try:
                analysis_run_task(job.pk)
            finally:
                connection.close()

        thread = threading.Thread(target=work, name=f"analysis-{job.pk}")
        thread.start()
        last = None
        while thread.is_alive():
            thread.join(timeout=1.0)
            row = Job.objects.only("progress_done", "progress_total").get(pk=job.pk)
            now = (row.progress_done, row.progress_total)
            if now != last and row.progress_total:
                self.stdout.write(f"  progress {now[0]}/{now[1]}")
                last = now
            time.sleep(0.01)
        job.refresh_from_db()
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"job {job.pk} {job.status}: {job.error}")
        self.stdout.write(self._summary(job))

    def _summary(self, job: Job) -> str:
        from models_bridge.models import AnalysisResult

        lines = []
        for r in AnalysisResult.objects.filter(job_id=job.pk).order_by("id"):
            res = r.result
            lines.append(f"{r.method} [{res.get('variant')}], n={res.get('n')}")
            if r.method == "emap":
                acc = res["accuracy"]
                rows = [("overall", acc["overall"])]
                for group in ("by_question_type", "by_label"):
                    rows += [(f"  {k}", v) for k, v in (acc.get(group) or {}).items()]
                    if group in acc:
                        break
                for label, a in rows:
                    lines.append(
                        f"  {label:<12} n={a['n']:<5} model acc {a['model']:.3f}  "
                        f"EMAP acc {a['emap']:.3f}"
                    )
                lines.append(
                    f"  argmax changed on {res['argmax_changed_fraction']:.3f} of examples; "
                    f"mean interaction score {res['interaction_score']['mean']:.3f}"
                )
            elif r.method == "heads":
                lines.append(f"  accuracy with all {res['heads']} heads {res['accuracy']:.3f}")
                for row in res["importance"]:
                    lines.append(
                        f"  head {row['head']} masked: acc {row['accuracy']:.3f} "
                        f"(drop {row['drop']:+.3f})"
                    )
                curve = ", ".join(
                    f"{c['removed']}: {c['accuracy']:.3f}" for c in res["pruning"]["curve"]
                )
                lines.append(f"  pruning order {res['pruning']['order']}; heads removed: {curve}")
            elif r.method in ("ablation", "perceptual"):
                lines.append(f"  accuracy {res.get('accuracy')}")
                for m, v in res["modalities"].items():
                    shown = {k: v[k] for k in ("accuracy", "delta", "mean", "std") if k in v}
                    lines.append(f"  {m}: {shown}")
        return "\n".join(lines)
