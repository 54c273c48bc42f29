"""Import benchmark: the easy-VQA test split (9,673 questions over 1,000 images) into a fresh
temporary database — SQLite always, PostgreSQL too when DATABASE_URL points at one — printing
examples/s, the idempotent re-run, and peak memory. Figures, not asserts; goal ≥ 2,000 ex/s.

Each measurement runs in its own child process (settings are per process): a timed run
(peak RSS from getrusage) and a traced run (tracemalloc's Python-heap peak; tracing slows
allocation, so its time is not the rate). Bounded: 2 imports per backend, 300 s per child.

    .venv/bin/python benchmarks/bench_import.py"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 300
GOAL = 2000.0


def child(mode: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "counterpoint.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import tracemalloc

    import easy_vqa

    from annotation.models import Example, Media
    from annotation.services.imports import easyvqa_import

    if mode == "traced":
        tracemalloc.start()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    report = easyvqa_import(split="test")
    wall = time.perf_counter() - t0
    peak_heap = tracemalloc.get_traced_memory()[1] if mode == "traced" else None
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t1 = time.perf_counter()
    again = easyvqa_import(split="test")
    rerun = time.perf_counter() - t1
    texts, _, image_ids = easy_vqa.get_test_questions()
    media_root = Path(os.environ["MEDIA_ROOT"])
    files = sum(1 for p in media_root.rglob("*.png"))
    print(
        json.dumps(
            {
                "created": report.created,
                "expected": len(texts),
                "unique_images": len(set(image_ids)),
                "media_rows": Media.objects.count(),
                "media_files": files,
                "examples_rows": Example.objects.count(),
                "seconds": wall,
                "rerun_seconds": rerun,
                "rerun_skipped": again.skipped_existing,
                "rss_before_kib": rss_before,
                "rss_peak_kib": rss_after,
                "heap_peak_bytes": peak_heap,
            }
        )
    )


def _run_child(mode: str, database_url: str, tmp: Path) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(tmp / f"media-{mode}"),
        "COUNTERPOINT_VAR_DIR": str(tmp / "var"),
        "DEBUG": "0",  # no query log
        "SECRET_KEY": "bench-only-key-not-secret",
        "LOG_LEVEL": "ERROR",
    }
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark child ({mode}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pg_fresh(url: str, name: str) -> tuple[str, str]:
    """(admin URL, URL of a new empty database `name`) on the server of `url`."""
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    return admin, urlunsplit(parts._replace(path=f"/{name}"))


def _pg_exec(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


def bench(label: str, database_urls: dict[str, str], tmp: Path) -> None:
    timed = _run_child("timed", database_urls["timed"], tmp)
    traced = _run_child("traced", database_urls["traced"], tmp)
    rate = timed["created"] / timed["seconds"]
    print(f"== {label}")
    print(
        f"  imported {timed['created']:,} of {timed['expected']:,} questions in {timed['seconds']:.2f} s "
        f"= {rate:,.0f} examples/s ({rate / GOAL:.1f}x the {GOAL:,.0f}/s goal)"
    )
    print(
        f"  images: {timed['unique_images']:,} unique; {timed['media_rows']:,} media rows, "
        f"{timed['media_files']:,} files (each stored once: "
        f"{timed['media_rows'] == timed['media_files'] == timed['unique_images']})"
    )
    print(
        f"  re-run: {timed['rerun_skipped']:,} skipped as already present in {timed['rerun_seconds']:.2f} s "
        f"({timed['rerun_seconds'] / timed['seconds']:.2f}x the first run)"
    )
    print(
        f"  memory: peak RSS {timed['rss_peak_kib'] / 1024:.0f} MiB "
        f"(+{(timed['rss_peak_kib'] - timed['rss_before_kib']) / 1024:.0f} MiB during the import); "
        f"Python heap peak {traced['heap_peak_bytes'] / 2**20:.1f} MiB (tracemalloc, separate run)"
    )


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        bench(
            "SQLite (fresh file, WAL)",
            {m: f"sqlite:///{tmp / f'{m}.sqlite3'}" for m in ("timed", "traced")},
            tmp,
        )
        url = os.environ.get("DATABASE_URL", "")
        if url.startswith(("postgres://", "postgresql://")):
            names = {m: f"bench_import_{os.getpid()}_{m}" for m in ("timed", "traced")}
            admin = ""
            urls = {}
            for m, name in names.items():
                admin, urls[m] = _pg_fresh(url, name)
                _pg_exec(admin, f'CREATE DATABASE "{name}"')
            try:
                bench("PostgreSQL (fresh database)", urls, tmp)
            finally:
                for name in names.values():
                    _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}"')
        else:
            print("== PostgreSQL: skipped (set DATABASE_URL=postgres://... to include it)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
