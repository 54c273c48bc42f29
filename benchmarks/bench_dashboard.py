"""Dashboard data benchmark (issue #8): GET /api/v1/campaigns/{id}/dashboard/ on PostgreSQL
for a generated campaign of 200,000 examples x redundancy 5 = 1,000,000 annotations by 50
annotators and 100,000 counterfactual edits (scored by 3 models, a third validated).

Rows are written with COPY (a few seconds per million), then requests go through the whole
Django stack in this process (test client, a manager's session). Prints the generation time,
then the compute time of fresh figures (--cold runs of the refresh task's work,
annotation.services.dashboard.dashboard_refresh: every aggregate plus storing the snapshot),
p50/p95 of --warm requests served from the stored snapshot (DASHBOARD_CACHE_SECONDS=10, what a
polling page gets) and of --warm requests past the TTL (served from the snapshot, flagged
stale, one refresh enqueued), and the response size. Goal: under 300 ms per request.

Creates a fresh database (dropped at the end, also on failure, unless --keep or --reuse). Bounded: fixed sizes, a fixed
number of requests.

    .venv/bin/python benchmarks/bench_dashboard.py [--annotations 1000000] [--edits 100000]
        [--keep]  (leave the generated database; its name is printed)
        [--reuse NAME]  (time a database a --keep run left, without generating it)
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres  (the server to use)"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], q: int) -> float:
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def create_database(admin_url: str) -> tuple[str, str]:
    name = f"cp_bench_dash_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_rows(model: Any, columns: list[str], rows: Any) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        with cur.cursor.copy(
            f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)


def seed(n_annotations: int, n_edits: int, redundancy: int, n_annotators: int) -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from psycopg.types.json import Jsonb

    from annotation.models import (
        Annotation,
        Assignment,
        Campaign,
        CampaignExample,
        CounterfactualEdit,
        Dataset,
        Example,
        Membership,
    )
    from annotation.services.campaigns import campaign_create
    from models_bridge.models import ModelVersion

    call_command("migrate", verbosity=0)
    labels = ["yes", "no", "red", "blue", "circle", "square"]
    dataset = Dataset.objects.create(
        name="bench-dash",
        modalities=[{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}],
        label_space=labels,
    )
    n_examples = n_annotations // redundancy
    now = datetime.now(UTC)
    copy_rows(
        Example,
        [
            "dataset_id",
            "external_id",
            "values",
            "label",
            "split",
            "metadata",
            "content_hash",
            "created_at",
        ],
        (
            (
                dataset.pk,
                f"d{i}",
                Jsonb({"text": f"q{i}"}),
                labels[i % 6],
                "",
                Jsonb({}),
                f"{i:064x}",
                now,
            )
            for i in range(n_examples)
        ),
    )
    campaign = campaign_create(
        dataset=dataset,
        name="bench-dashboard",
        status=Campaign.Status.ACTIVE,
        redundancy=redundancy,
        editable_modalities=["image", "text"],
        edit_budgets={"image": 0.25, "text": 0.5},
    )
    example_ids = list(
        Example.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True)
    )
    gold = set(example_ids[::50])
    copy_rows(
        CampaignExample,
        ["campaign_id", "example_id", "is_gold", "gold_answer", "rank", "completed", "in_flight"],
        ((campaign.pk, e, e in gold, "", i, redundancy, 0) for i, e in enumerate(example_ids)),
    )
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"dash-ann-{i}", password="!") for i in range(n_annotators)]
    )
    manager = User.objects.create(username="dash-manager", password="!")
    Membership.objects.bulk_create(
        [Membership(campaign=campaign, user=u, role=Membership.Role.ANNOTATOR) for u in users]
        + [Membership(campaign=campaign, user=manager, role=Membership.Role.MANAGER)]
    )
    models = [
        ModelVersion.objects.create(
            name=f"bench-model-{k}",
            version="1",
            kind=ModelVersion.Kind.REMOTE,
            location="http://127.0.0.1:9/none",
            dataset=dataset,
            labels=labels,
        )
        for k in range(3)
    ]
    campaign.model_versions.add(*models)
    rng = random.Random(0)
    uids = [u.pk for u in users]
    start = now - timedelta(days=5)
    # Assignments (one per annotation: the OneToOne) then the annotations, both by COPY.
    plan: list[tuple[int, int, datetime]] = []
    for e in example_ids:
        for who in rng.sample(uids, redundancy):
            plan.append((e, who, start + timedelta(seconds=(len(plan) * 432_000) // n_annotations)))
    copy_rows(
        Assignment,
        [
            "campaign_id",
            "kind",
            "example_id",
            "annotator_id",
            "status",
            "is_gold",
            "cf_modality",
            "cf_target_label",
            "leased_at",
            "expires_at",
            "submitted_at",
            "skip_reason",
            "draft",
            "attempts_count",
        ],
        (
            (
                campaign.pk,
                "annotate",
                e,
                who,
                "submitted",
                e in gold,
                "",
                "",
                t,
                t,
                t,
                "",
                Jsonb({}),
                0,
            )
            for e, who, t in plan
        ),
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, example_id, annotator_id FROM annotation_assignment WHERE campaign_id = %s",
            [campaign.pk],
        )
        assignment_of = {(e, a): pk for pk, e, a in cur.fetchall()}
    truth = {e: labels[(e * 7) % 6] for e in example_ids}
    given = [truth[e] if rng.random() < 0.8 else rng.choice(labels) for e, _, _ in plan]
    copy_rows(
        Annotation,
        [
            "assignment_id",
            "campaign_id",
            "example_id",
            "annotator_id",
            "label",
            "rationale",
            "reliance",
            "reliance_modality",
            "evidence",
            "time_spent_ms",
            "is_gold",
            "request_hash",
            "late",
            "created_at",
        ],
        (
            (
                assignment_of[(e, who)],
                campaign.pk,
                e,
                who,
                lab,
                "",
                "",
                "",
                Jsonb([]),
                rng.randint(4_000, 90_000),
                e in gold,
                "",
                False,
                t,
            )
            for (e, who, t), lab in zip(plan, given, strict=True)
        ),
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, example_id, annotator_id, label FROM annotation_annotation "
            "WHERE campaign_id = %s AND NOT is_gold ORDER BY id LIMIT %s",
            [campaign.pk, n_edits],
        )
        chosen = cur.fetchall()
    statuses = ["verified", "disputed", "pending"]

    def edit_row(a: tuple[int, int, int, str]) -> tuple[Any, ...]:
        pk, e, who, lab = a
        target = labels[(labels.index(lab) + 1) % 6]
        modality = "text" if pk % 3 else "image"
        size = (
            {"minimality": rng.random() * 0.5}
            if modality == "text"
            else {"pixel_fraction": rng.random() * 0.25}
        )
        scores = {
            str(m.pk): {
                "original": {"predicted_label": lab},
                "edit": {"predicted_label": target if rng.random() < 0.4 + 0.2 * k else lab},
            }
            for k, m in enumerate(models)
            if rng.random() < 0.9
        }
        status = statuses[pk % 3]
        return (
            pk,
            campaign.pk,
            e,
            who,
            modality,
            Jsonb({}),
            f"{pk:064x}",
            lab,
            target,
            Jsonb(size),
            Jsonb(scores),
            status,
            1 if status != "pending" else 0,
            1 if status == "verified" else 0,
            now,
        )

    copy_rows(
        CounterfactualEdit,
        [
            "annotation_id",
            "campaign_id",
            "example_id",
            "author_id",
            "modality",
            "edited_values",
            "content_hash",
            "original_label",
            "target_label",
            "minimality",
            "scores",
            "status",
            "validations_count",
            "validations_agree",
            "created_at",
        ],
        (edit_row(a) for a in chosen),
    )
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return campaign, manager


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--annotations", type=int, default=1_000_000)
    ap.add_argument("--edits", type=int, default=100_000)
    ap.add_argument("--cold", type=int, default=5)
    ap.add_argument("--warm", type=int, default=50)
    ap.add_argument(
        "--keep", action="store_true", help="keep the generated database (its name is printed)"
    )
    ap.add_argument("--reuse", metavar="NAME", help="time a database an earlier --keep run left")
    args = ap.parse_args()
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if args.reuse:
        name = args.reuse
        db_url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    else:
        name, db_url = create_database(admin_url)
    var = Path(tempfile.mkdtemp(prefix="cp-bench-dash-"))
    try:
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "counterpoint.settings",
                "DEBUG": "0",
                "SECRET_KEY": "bench-only-" + secrets.token_hex(24),
                "DATABASE_URL": db_url,
                "COUNTERPOINT_VAR_DIR": str(var),
                "ALLOWED_HOSTS": "testserver",
                "LOG_LEVEL": "ERROR",
            }
        )
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.test import Client, override_settings

        t0 = time.perf_counter()
        if args.reuse:
            from django.contrib.auth import get_user_model

            from annotation.models import Campaign

            campaign = Campaign.objects.get(name="bench-dashboard")
            manager = get_user_model().objects.get(username="dash-manager")
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            print(f"reusing {name}: {campaign.annotations.count():,} annotations")
        else:
            campaign, manager = seed(args.annotations, args.edits, 5, 50)
            print(
                f"generated {args.annotations:,} annotations, {args.edits:,} edits "
                f"in {time.perf_counter() - t0:.1f} s (COPY)"
            )
            if args.keep:
                print(f"kept database {name} (--reuse {name}; drop it when done)")
        client = Client()
        client.force_login(manager)
        url = f"/api/v1/campaigns/{campaign.pk}/dashboard/"

        def timed(n: int) -> tuple[list[float], int]:
            times, size = [], 0
            for _ in range(n):
                t = time.perf_counter()
                r = client.get(url)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.content[:300]
                size = len(r.content)
            return times, size

        from annotation.models import DashboardSnapshot
        from annotation.services.dashboard import dashboard_refresh

        DashboardSnapshot.objects.get_or_create(campaign=campaign)
        cold = []
        for _ in range(args.cold):
            t = time.perf_counter()
            assert dashboard_refresh(campaign_id=campaign.pk)
            cold.append((time.perf_counter() - t) * 1000)
        with override_settings(DASHBOARD_CACHE_SECONDS=3600):
            warm, size = timed(args.warm)
            body = client.get(url).json()
            assert body["snapshot"]["state"] == "ready" and not body["snapshot"]["stale"]
        with override_settings(DASHBOARD_CACHE_SECONDS=0):
            # A big campaign: served at once from the snapshot, one refresh enqueued (the
            # message goes to the broker; no worker runs here, so it stays requested).
            body = client.get(url).json()
            assert body["snapshot"]["stale"] and body["snapshot"]["refreshing"]
            stale, _ = timed(args.warm)
        figures = body["progress"]["annotations"]
        print(f"response {size / 1024:.0f} KiB ({figures:,} annotations in the figures)")
        print(
            f"compute (fresh figures + store):   p50 {pct(cold, 50):7.0f} ms   p95 {pct(cold, 95):7.0f} ms   ({args.cold} runs)"
        )
        print(
            f"request, snapshot fresh:           p50 {pct(warm, 50):7.1f} ms   p95 {pct(warm, 95):7.1f} ms   ({args.warm} requests)"
        )
        print(
            f"request, snapshot stale (enqueue): p50 {pct(stale, 50):7.1f} ms   p95 {pct(stale, 95):7.1f} ms   ({args.warm} requests)"
        )
        print(
            f"ratio compute / fresh request p50: {pct(cold, 50) / pct(warm, 50):.0f}x; "
            f"goal (< 300 ms per request, p95): "
            f"{'met' if max(pct(warm, 95), pct(stale, 95)) < 300 else 'MISSED'}"
        )
    finally:
        from django.db import connections

        connections.close_all()
        if not (args.keep or args.reuse):
            drop_database(admin_url, name)
        shutil.rmtree(var, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
