"""Export benchmark: a generated campaign with 1,000,000 annotations and 100,000 counterfactual
edits (text, two models' scores on both sides, one validation per tenth edit) in a fresh
SQLite file, exported as JSONL and as Parquet at 100,000 and at 1,000,000 annotation rows in
the same run (the smaller size is the same campaign cut by the export's own snapshot: rows
up to an id, the way every export is cut). Prints rows/s and peak RSS of each export, measured
in its own child process (getrusage of that child, so the generator's memory is not counted),
beside Label Studio 1.23's figure on this machine. Figures, not asserts.

Goals (issue 8): peak RSS < 300 MB and flat between the two sizes; JSONL >= 50,000 rows/s.
The machine's load average is printed before and after: on a shared machine wall time
includes waiting for a core, so rows per CPU-second are printed beside rows/s.

Measured 2026-12-01 at the issue's sizes, 2 cores shared by 7 jobs (load average 5.9 before,
3.0 after): JSONL 1,100,000 rows in 8.3 s = 132,500 rows/s wall, 136,500 rows per CPU-second;
Parquet 102,200 rows/s (104,000 per CPU-second); peak RSS JSONL 114 -> 116 MiB (ratio 1.02
for 10x the rows), Parquet 219 -> 223 MiB (1.02; pyarrow's first conversion alone adds about
50 MiB). The same code at load 8-12: JSONL 118,700 rows per CPU-second but 27,000 rows/s
wall. Before the cursor reads: JSONL 47,500 rows per CPU-second, 178 MiB at 100,000.

    .venv/bin/python benchmarks/bench_export.py                       # the issue's sizes
    .venv/bin/python benchmarks/bench_export.py --annotations 200000 --edits 20000

Generation is bounded: rows go in with executemany in 50,000-row batches inside one
transaction per table (about a minute for the full size on 2 cores)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 1800
BATCH = 50_000
ANNOTATORS = 20
PER_EXAMPLE = 5
LABEL_STUDIO = "Label Studio 1.23: 20,000 tasks / 60,000 annotations JSON export in 24-34 s (~1,800-2,500 annotations/s), server memory ~900 MB"


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "counterpoint.settings"
    import django

    django.setup()


def _insert(model: type, rows: object) -> int:
    """executemany of plain tuples for `model`'s concrete columns (defaults filled in), in
    batches: the ORM's per-object cost would dominate a million rows."""
    from django.db import connection, transaction
    from django.utils import timezone

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]  # type: ignore[attr-defined]
    cols = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({cols}) VALUES ({marks})"  # type: ignore[attr-defined]
    now = timezone.now()
    defaults = {}
    for f in fields:
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
            defaults[f.attname] = now
        else:
            defaults[f.attname] = f.get_default()  # "" for a blank string column, else None
    n = 0
    with transaction.atomic(), connection.cursor() as cur:
        batch: list[tuple] = []
        for row in rows:  # type: ignore[attr-defined]
            values = []
            for f in fields:
                v = row.get(f.attname, defaults[f.attname])
                values.append(f.get_db_prep_save(v, connection))
            batch.append(tuple(values))
            if len(batch) >= BATCH:
                cur.executemany(sql, batch)
                n += len(batch)
                batch = []
        if batch:
            cur.executemany(sql, batch)
            n += len(batch)
    return n


def generate(n_annotations: int, n_edits: int) -> dict:
    _setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from annotation.models import (
        Annotation,
        Assignment,
        Campaign,
        CounterfactualEdit,
        Example,
        Validation,
    )
    from annotation.schema import content_hash
    from annotation.services.campaigns import campaign_create
    from annotation.services.datasets import dataset_create

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    dataset = dataset_create(
        name="bench-export",
        modalities=[{"name": "text", "kind": "text"}],
        label_space=["yes", "no", "red", "blue"],
    )
    campaign = campaign_create(
        dataset=dataset,
        name="Export benchmark",
        instructions="Label the question; then change **one word** so the answer flips.",
        redundancy=PER_EXAMPLE,
        editable_modalities=["text"],
        edit_budgets={"text": 0.5},
        status=Campaign.Status.ACTIVE,
    )
    User = get_user_model()
    users = [User.objects.create(username=f"bench-ann-{i}") for i in range(ANNOTATORS)]
    validators = [User.objects.create(username=f"bench-val-{i}") for i in range(3)]
    n_examples = -(-n_annotations // PER_EXAMPLE)
    text = "is the shape number {} in the image a red circle or a blue square ?"
    _insert(
        Example,
        (
            {
                "dataset_id": dataset.pk,
                "external_id": f"q{i}",
                "values": {"text": text.format(i)},
                "label": ("yes", "no", "red", "blue")[i % 4],
                "split": "test",
                "content_hash": content_hash({"text": text.format(i)}),
            }
            for i in range(n_examples)
        ),
    )
    first_example = (
        Example.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True)[0]
    )
    now = timezone.now()

    def who(i: int) -> int:
        return users[(i % PER_EXAMPLE + (i // PER_EXAMPLE) * PER_EXAMPLE) % ANNOTATORS].pk

    _insert(
        Assignment,
        (
            {
                "campaign_id": campaign.pk,
                "kind": "annotate",
                "example_id": first_example + i // PER_EXAMPLE,
                "annotator_id": who(i),
                "status": "submitted",
                "leased_at": now,
                "expires_at": now,
                "submitted_at": now,
                "attempts_count": 3 if i < n_edits else 0,
            }
            for i in range(n_annotations)
        ),
    )
    first_assignment = (
        Assignment.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True)[0]
    )
    labels = ("yes", "no", "red", "blue")
    _insert(
        Annotation,
        (
            {
                "assignment_id": first_assignment + i,
                "campaign_id": campaign.pk,
                "example_id": first_example + i // PER_EXAMPLE,
                "annotator_id": who(i),
                "label": labels[(i // PER_EXAMPLE + (i % 7 == 0)) % 4],
                "confidence": 1 + i % 5,
                "rationale": "the colour word decides it",
                "reliance": "specialization",
                "reliance_modality": "text",
                "evidence": [{"modality": "text", "type": "span", "start": 4, "end": 9}],
                "time_spent_ms": 12_000 + i % 5000,
                "idempotency_key": f"k{i}",
            }
            for i in range(n_annotations)
        ),
    )
    first_annotation = (
        Annotation.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True)[0]
    )
    score = {"predicted": "no", "probabilities": {"yes": 0.2, "no": 0.7, "red": 0.05, "blue": 0.05}}
    _insert(
        CounterfactualEdit,
        (
            {
                "annotation_id": first_annotation + i,
                "campaign_id": campaign.pk,
                "example_id": first_example + i // PER_EXAMPLE,
                "author_id": who(i),
                "modality": "text",
                "edited_values": {"text": text.format(i // PER_EXAMPLE).replace("red", "green")},
                "content_hash": f"{i:064x}",
                "original_label": labels[(i // PER_EXAMPLE) % 4],
                "target_label": labels[(i // PER_EXAMPLE + 1) % 4],
                "minimality": {
                    "token_distance": 1,
                    "minimality": 0.0714,
                    "char_distance": 5,
                    "tokens": 14,
                },
                "scores": {
                    "1": {"original": score, "edit": score},
                    "2": {"original": score, "edit": score},
                },
                "status": "verified" if i % 10 == 0 else "pending",
                "validations_count": 1 if i % 10 == 0 else 0,
                "validations_agree": 1 if i % 10 == 0 else 0,
            }
            for i in range(n_edits)
        ),
    )
    edits = list(
        CounterfactualEdit.objects.filter(campaign=campaign)
        .order_by("id")
        .values_list("id", "example_id")[::10]
    )
    _insert(
        Assignment,
        (
            {
                "campaign_id": campaign.pk,
                "kind": "validate",
                "example_id": ex,
                "edit_id": eid,
                "annotator_id": validators[j % 3].pk,
                "status": "submitted",
                "leased_at": now,
                "expires_at": now,
            }
            for j, (eid, ex) in enumerate(edits)
        ),
    )
    vas = dict(
        Assignment.objects.filter(campaign=campaign, kind="validate").values_list("edit_id", "id")
    )
    _insert(
        Validation,
        (
            {
                "assignment_id": vas[eid],
                "edit_id": eid,
                "validator_id": validators[j % 3].pk,
                "label": "blue",
            }
            for j, (eid, _ex) in enumerate(edits)
        ),
    )
    from django.db.models import Max, Min

    a = Annotation.objects.filter(campaign=campaign).aggregate(lo=Min("id"), hi=Max("id"))
    e = CounterfactualEdit.objects.filter(campaign=campaign).aggregate(lo=Min("id"), hi=Max("id"))
    return {
        "campaign": campaign.pk,
        "seconds": time.perf_counter() - t0,
        "annotation_ids": [a["lo"], a["hi"]],
        "edit_ids": [e["lo"], e["hi"]],
        "validations": len(edits),
    }


def export_child(campaign_id: int, fmt: str, max_annotation_id: int, max_edit_id: int) -> dict:
    _setup()
    from django.utils import timezone

    from annotation.models import Campaign
    from annotation.services.exports import Snapshot, export_write

    campaign = Campaign.objects.select_related("dataset").get(pk=campaign_id)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_before, cpu0 = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    t0 = time.perf_counter()
    _path, report = export_write(
        campaign=campaign,
        fmt=fmt,
        snapshot=Snapshot(
            as_of=timezone.now(), max_annotation_id=max_annotation_id, max_edit_id=max_edit_id
        ),
        directory=Path(os.environ["MEDIA_ROOT"]) / "exports",
    )
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu0,
        "rows": report.rows,
        "seconds": seconds,
        "size_bytes": report.size_bytes,
        "rss_before_kib": rss_before,
        "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _child(args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--edits", type=int, default=100_000)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "MEDIA_ROOT": str(tmp / "media"),
        "COUNTERPOINT_VAR_DIR": str(tmp / "var"),
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-key-not-secret",
        "LOG_LEVEL": "ERROR",
    }
    try:
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"== load average {load} (1/5/15 min) on {os.cpu_count()} cores before the run")
        gen = _child(["--generate", str(opts.annotations), str(opts.edits)], env)
        print(
            f"== generated {opts.annotations:,} annotations, {opts.edits:,} edits, "
            f"{gen['validations']:,} validations (SQLite) in {gen['seconds']:.1f} s"
        )
        sizes = [opts.annotations // 10, opts.annotations]
        results: dict[tuple[str, int], dict] = {}
        for fmt in ("jsonl", "parquet"):
            for size in sizes:
                max_a = gen["annotation_ids"][0] + size - 1
                max_e = gen["edit_ids"][0] + max(0, size // 10) - 1
                r = _child(["--export", str(gen["campaign"]), fmt, str(max_a), str(max_e)], env)
                results[(fmt, size)] = r
                rows = r["rows"]["annotations"] + r["rows"]["pairs"]
                print(
                    f"  {fmt:8s} {r['rows']['annotations']:>9,} annotations + "
                    f"{r['rows']['pairs']:>7,} pairs in {r['seconds']:6.1f} s = "
                    f"{rows / r['seconds']:>8,.0f} rows/s ({r['rows']['annotations'] / r['seconds']:,.0f} "
                    f"annotations/s; {rows / r['cpu_seconds']:,.0f} rows per CPU-second); peak RSS {r['rss_peak_kib'] / 1024:.0f} MiB "
                    f"(+{(r['rss_peak_kib'] - r['rss_before_kib']) / 1024:.0f} MiB in the export); "
                    f"archive {r['size_bytes'] / 2**20:.1f} MiB"
                )
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"== load average {load} after the exports")
        print("== against the goals")
        for fmt in ("jsonl", "parquet"):
            small, big = results[(fmt, sizes[0])], results[(fmt, sizes[1])]
            ratio = big["rss_peak_kib"] / small["rss_peak_kib"]
            print(
                f"  {fmt}: peak RSS {small['rss_peak_kib'] / 1024:.0f} -> {big['rss_peak_kib'] / 1024:.0f} MiB "
                f"for 10x the rows (ratio {ratio:.2f}; goal < 300 MB and flat)"
            )
        big = results[("jsonl", sizes[1])]
        rate = (big["rows"]["annotations"] + big["rows"]["pairs"]) / big["seconds"]
        cpu_rate = (big["rows"]["annotations"] + big["rows"]["pairs"]) / big["cpu_seconds"]
        print(
            f"  jsonl: {rate:,.0f} rows/s wall, {cpu_rate:,.0f} rows per CPU-second, at "
            f"{sizes[1]:,} annotations (goal >= 50,000 rows/s; wall time includes waiting for "
            "a core when the machine is shared)"
        )
        per_s = big["rows"]["annotations"] / big["seconds"]
        print(f"  for scale: {LABEL_STUDIO}")
        print(
            f"  here: {per_s:,.0f} annotations/s ({per_s / 2500:.0f}-{per_s / 1800:.0f}x), "
            f"peak RSS {big['rss_peak_kib'] / 1024:.0f} MiB ({900 / (big['rss_peak_kib'] / 1024):.1f}x less)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--generate":
        print(json.dumps(generate(int(sys.argv[2]), int(sys.argv[3]))))
    elif len(sys.argv) == 6 and sys.argv[1] == "--export":
        print(
            json.dumps(
                export_child(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
            )
        )
    else:
        main()
