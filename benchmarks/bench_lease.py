"""Lease + submit benchmark (issue #4): gunicorn + PostgreSQL, a 10,000-example campaign with
redundancy 3, and 1, 8 and 32 simulated annotators (threads, each a requests.Session with its
own token) running lease → submit cycles. In the same run and against the same server, a
trivial authenticated DRF endpoint (GET /api/v1/whoami/) at the same concurrency gives the
ceiling: a cycle is two requests, so ceiling cycles/s = trivial requests/s ÷ 2.

Prints per client count: cycles/s, p50/p95 of each call, the ceiling and the ratio; then
checks zero over-assignment in the database. Goals: ratio ≥ 0.5 at 8 and 32 clients, p95
per call < 100 ms at 8 clients, and ≥ 5x Label Studio 1.23's 10 cycles/s at 8 clients.

Creates a fresh database (dropped at the end), a temporary var dir, and one gunicorn
(127.0.0.1, a free port), all stopped and removed at the end, also on failure. Bounded:
each phase runs at most --seconds and --max-cycles.

    .venv/bin/python benchmarks/bench_lease.py [--seconds 10] [--clients 1,8,32]
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres  (the server to use)"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests
from _server import free_port, stop_gunicorn

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LABEL_STUDIO_CYCLES_AT_8 = 10.0  # measured on this machine (issue #4)


def pct(xs: list[float], q: int) -> float:
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


# --- database and Django in this process (seeding and checks) ---------------------------------


def create_database(admin_url: str) -> tuple[str, str]:
    name = f"cp_bench_lease_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    return name, urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(db_url: str, var: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "counterpoint.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-" + secrets.token_hex(24),
            "DATABASE_URL": db_url,
            "COUNTERPOINT_VAR_DIR": str(var),
            "MEDIA_ROOT": str(var / "media"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "ERROR",
            "STATIC_ROOT": str(var / "static"),
            "DB_CONN_MAX_AGE": "600",
        }
    )
    return env


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(*, examples: int, annotators: int, redundancy: int) -> tuple[int, list[str]]:
    """A campaign of `examples` image+text examples (40 distinct small PNGs), annotators with
    tokens. Returns (campaign id, tokens)."""
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from PIL import Image
    from rest_framework.authtoken.models import Token

    from annotation.models import Campaign, Dataset, Example, Membership
    from annotation.schema import content_hash
    from annotation.services.campaigns import campaign_add_examples
    from annotation.services.media import media_store_bytes

    call_command("migrate", verbosity=0)
    dataset = Dataset.objects.create(
        name="bench-shapes",
        modalities=[{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}],
        label_space=["yes", "no", "red", "blue"],
    )
    shas = []
    for i in range(40):
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (i * 6, 255 - i * 6, (i * 37) % 256)).save(buf, format="PNG")
        shas.append(media_store_bytes(data=buf.getvalue()).sha256)
    rows = []
    for i in range(examples):
        values = {
            "image": shas[i % len(shas)],
            "text": f"is there a shape number {i} in the image?",
        }
        rows.append(
            Example(
                dataset=dataset,
                external_id=f"b{i}",
                values=values,
                label="yes" if i % 2 else "no",
                content_hash=content_hash(values),
            )
        )
    Example.objects.bulk_create(rows, batch_size=2000)
    campaign = Campaign.objects.create(
        dataset=dataset,
        name="bench-lease",
        status=Campaign.Status.ACTIVE,
        redundancy=redundancy,
        editable_modalities=["image", "text"],
        edit_budgets={"image": 0.25, "text": 0.5},
        seed=1,
    )
    campaign_add_examples(campaign=campaign)
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"bench-ann-{i}", password="!") for i in range(annotators)]
    )
    Membership.objects.bulk_create(
        [Membership(campaign=campaign, user=u, role=Membership.Role.ANNOTATOR) for u in users]
    )
    tokens = Token.objects.bulk_create([Token(key=Token.generate_key(), user=u) for u in users])
    # What autovacuum does shortly after any bulk load: planner statistics for the new rows.
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return campaign.pk, [t.key for t in tokens]


def check_assignment(campaign_id: int, acknowledged: int, redundancy: int) -> list[str]:
    """Zero over-assignment: counters and annotations agree with the rules."""
    from django.db.models import Count, F, Max

    from annotation.models import Annotation, Assignment, CampaignExample

    problems = []
    items = CampaignExample.objects.filter(campaign_id=campaign_id)
    worst = items.aggregate(load=Max(F("completed") + F("in_flight")), completed=Max("completed"))
    if (worst["load"] or 0) > redundancy:
        problems.append(f"an example has completed + in_flight = {worst['load']} > {redundancy}")
    annotations = Annotation.objects.filter(campaign_id=campaign_id)
    per_example = (
        annotations.values("example_id").annotate(n=Count("id")).aggregate(m=Max("n"))["m"] or 0
    )
    if per_example > redundancy:
        problems.append(f"an example has {per_example} annotations > {redundancy}")
    pairs = (
        annotations.values("example_id", "annotator_id")
        .annotate(n=Count("id"))
        .aggregate(m=Max("n"))["m"]
        or 0
    )
    if pairs > 1:
        problems.append("an annotator annotated one example twice")
    stored = annotations.count()
    if stored != acknowledged:
        problems.append(f"{acknowledged} submissions acknowledged but {stored} stored")
    completed_sum = sum(items.values_list("completed", flat=True))
    if completed_sum != stored:
        problems.append(f"completed counters sum to {completed_sum}, annotations {stored}")
    in_flight_sum = sum(items.values_list("in_flight", flat=True))
    active = Assignment.objects.filter(
        campaign_id=campaign_id, kind="annotate", status="active"
    ).count()
    if in_flight_sum != active:
        problems.append(f"in_flight counters sum to {in_flight_sum}, open leases {active}")
    return problems


# --- the server ------------------------------------------------------------------------------


def start_gunicorn(
    env: dict[str, str], port: int, workers: int, threads: int, log: Path
) -> subprocess.Popen[bytes]:
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "counterpoint.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--keep-alive",
        "5",
        "--timeout",
        "60",
        "--log-level",
        "warning",
    ]
    # Output to a file: an inherited stdout would keep our caller's pipe open.
    with log.open("wb") as fh:
        return subprocess.Popen(
            cmd, env=env, cwd=ROOT, start_new_session=True, stdout=fh, stderr=subprocess.STDOUT
        )


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-2000:]}"
            )
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v1/whoami/", timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise RuntimeError(
        f"gunicorn did not answer within {timeout_s:.0f} s:\n{log.read_text()[-2000:]}"
    )


# --- load ------------------------------------------------------------------------------------


@dataclass
class Phase:
    clients: int
    seconds: float = 0.0
    count: int = 0
    errors: list[str] = field(default_factory=list)
    lat: dict[str, list[float]] = field(default_factory=dict)


def run_threads(n: int, target: Any, seconds: float) -> float:
    barrier = threading.Barrier(n + 1)
    threads = [threading.Thread(target=target, args=(i, barrier), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    t0 = time.perf_counter()
    for t in threads:
        t.join(seconds + 60)
    return time.perf_counter() - t0


def trivial_phase(
    base: str, tokens: list[str], clients: int, seconds: float, max_requests: int
) -> Phase:
    phase = Phase(clients, lat={"whoami": []})
    lock = threading.Lock()

    def worker(i: int, barrier: threading.Barrier) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Token {tokens[i % len(tokens)]}"
        s.get(f"{base}/api/v1/whoami/")  # connection up before the clock starts
        lats = []
        barrier.wait(timeout=30)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            with lock:
                if phase.count >= max_requests:
                    break
                phase.count += 1
            t0 = time.perf_counter()
            r = s.get(f"{base}/api/v1/whoami/")
            lats.append(time.perf_counter() - t0)
            if r.status_code != 200:
                with lock:
                    phase.errors.append(f"whoami {r.status_code}")
        with lock:
            phase.lat["whoami"] += lats

    phase.seconds = run_threads(clients, worker, seconds)
    return phase


def cycle_phase(
    base: str, campaign_id: int, tokens: list[str], clients: int, seconds: float, max_cycles: int
) -> Phase:
    phase = Phase(clients, lat={"lease": [], "submit": []})
    lock = threading.Lock()
    lease_url = f"{base}/api/v1/campaigns/{campaign_id}/lease/"

    def worker(i: int, barrier: threading.Barrier) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Token {tokens[i]}"
        s.get(f"{base}/api/v1/whoami/")
        lease_lat, submit_lat, done = [], [], 0
        barrier.wait(timeout=30)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            with lock:
                if phase.count >= max_cycles:
                    break
            t0 = time.perf_counter()
            r = s.post(lease_url, json={"kind": "annotate"})
            t1 = time.perf_counter()
            if r.status_code != 200:
                with lock:
                    phase.errors.append(f"lease {r.status_code} {r.text[:200]}")
                break
            task = r.json()
            text = task["example"]["values"]["text"]
            body: dict[str, Any] = {
                "idempotency_key": str(uuid.uuid4()),
                "label": "no",
                "confidence": 4,
                "rationale": "the question names the shape",
                "reliance": "synergy",
                "time_spent_ms": 5000,
                "counterfactual": {
                    "modality": "text",
                    "target_label": "yes",
                    "value": text.replace("shape", "circle"),
                },
            }
            t2 = time.perf_counter()
            r = s.post(f"{base}/api/v1/assignments/{task['assignment']['id']}/submit/", json=body)
            t3 = time.perf_counter()
            if r.status_code != 201:
                with lock:
                    phase.errors.append(f"submit {r.status_code} {r.text[:200]}")
                break
            lease_lat.append(t1 - t0)
            submit_lat.append(t3 - t2)
            done += 1
            with lock:
                phase.count += 1
        with lock:
            phase.lat["lease"] += lease_lat
            phase.lat["submit"] += submit_lat

    phase.seconds = run_threads(clients, worker, seconds)
    return phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--max-cycles", type=int, default=5000, help="per phase")
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # `timeout`/Ctrl-C must still stop the server and drop the database (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    levels = [int(x) for x in args.clients.split(",")]
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")

    var = Path(tempfile.mkdtemp(prefix="bench-lease-"))
    (var / "static").mkdir()
    db_name = None
    server = None
    try:
        db_name, db_url = create_database(admin_url)
        env = server_env(db_url, var)
        django_setup(env)
        t0 = time.perf_counter()
        campaign_id, tokens = seed(
            examples=args.examples, annotators=sum(levels), redundancy=args.redundancy
        )
        print(
            f"seeded {args.examples:,} examples x redundancy {args.redundancy}, {len(tokens)} annotators "
            f"in {time.perf_counter() - t0:.1f} s (database {db_name})"
        )
        from django.db import connections

        connections.close_all()
        port = free_port()
        server = start_gunicorn(env, port, args.workers, args.threads, var / "gunicorn.log")
        wait_ready(server, port, var / "gunicorn.log")
        base = f"http://127.0.0.1:{port}"
        print(
            f"gunicorn {args.workers} workers x {args.threads} threads (gthread) on {base}; "
            f"{os.cpu_count()} CPUs shared with PostgreSQL and the load generator"
        )
        trivial_phase(base, tokens, max(levels), 2.0, 400)  # warm every worker

        rows = []
        offset = 0
        acknowledged = 0
        for n in levels:
            triv = trivial_phase(base, tokens, n, args.seconds, 100_000)
            cyc = cycle_phase(
                base, campaign_id, tokens[offset : offset + n], n, args.seconds, args.max_cycles
            )
            offset += n
            acknowledged += len(cyc.lat["submit"])
            rows.append((n, triv, cyc))
            for err in (triv.errors + cyc.errors)[:5]:
                print("  error:", err)

        print()
        print(
            f"{'clients':>7} {'trivial req/s':>13} {'ceiling cyc/s':>13} {'cycles/s':>9} {'ratio':>6} "
            f"{'lease p50':>9} {'lease p95':>9} {'submit p50':>10} {'submit p95':>10} {'trivial p95':>11} {'cycles':>6}"
        )
        summary = {}
        for n, triv, cyc in rows:
            trivial_rps = triv.count / triv.seconds
            ceiling = trivial_rps / 2
            cps = len(cyc.lat["submit"]) / cyc.seconds
            ms = {k: [v * 1000 for v in vals] for k, vals in cyc.lat.items()}
            tri_ms = [v * 1000 for v in triv.lat["whoami"]]
            summary[n] = (
                cps,
                cps / ceiling if ceiling else 0.0,
                max(pct(ms["lease"], 95), pct(ms["submit"], 95)),
            )
            print(
                f"{n:>7} {trivial_rps:>13.1f} {ceiling:>13.1f} {cps:>9.1f} {cps / ceiling:>6.2f} "
                f"{pct(ms['lease'], 50):>7.1f}ms {pct(ms['lease'], 95):>7.1f}ms {pct(ms['submit'], 50):>8.1f}ms "
                f"{pct(ms['submit'], 95):>8.1f}ms {pct(tri_ms, 95):>9.1f}ms {len(cyc.lat['submit']):>6}"
            )
        print()
        for n in (8, 32):
            if n in summary:
                cps, ratio, _ = summary[n]
                print(
                    f"goal ratio >= 0.5 at {n} clients: {ratio:.2f} {'met' if ratio >= 0.5 else 'MISSED'}"
                )
        if 8 in summary:
            cps, _, p95 = summary[8]
            print(
                f"goal p95 per call < 100 ms at 8 clients: {p95:.1f} ms {'met' if p95 < 100 else 'MISSED'}"
            )
            goal = 5 * LABEL_STUDIO_CYCLES_AT_8
            print(
                f"goal >= 5x Label Studio ({goal:.0f} cycles/s) at 8 clients: {cps:.1f} cycles/s = "
                f"{cps / LABEL_STUDIO_CYCLES_AT_8:.1f}x {'met' if cps >= goal else 'MISSED'}"
            )

        stop_gunicorn(server)
        server = None
        problems = check_assignment(campaign_id, acknowledged, args.redundancy)
        print(
            f"over-assignment check over {acknowledged} submissions: {'none' if not problems else 'FAILED'}"
        )
        for p in problems:
            print("  ", p)
        connections.close_all()
        return 1 if problems or any(cyc.errors for _, _, cyc in rows) else 0
    finally:
        stop_gunicorn(server)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if db_name:
            drop_database(admin_url, db_name)
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
