"""EMAP benchmark (docs/analysis.md), with the multiplicative reference model on easy-VQA.

1. N = 2,000 (4,000,000 evaluations), in one run: the factorized path (each modality
   encoded once, the fusion head on all N² pairs in batches), the black-box path (the whole
   model on gathered pairs) and the plain per-pair loop (the published algorithm as written:
   one call per pair), the last two timed on a subsample of rows / pairs and extrapolated
   (printed as such; --blackbox-full runs the black-box grid whole), beside the fusion
   head's raw batched throughput on pre-encoded pairs.
   Goals: factorized >= 20x the per-pair loop; factorized within 2x of the raw fusion head.
2. N = 10,000 streamed (row blocks, never the N²·C grid): time and peak RSS, each size in
   a fresh process, beside a small N, so "RSS independent of N" is read off two numbers.
3. The same analysis Job with 1 and with 2 Celery workers (separate processes, one torch
   thread each, kombu's filesystem broker in the temporary var dir): speed-up printed.

    .venv/bin/python benchmarks/bench_emap.py            # the issue's sizes
    .venv/bin/python benchmarks/bench_emap.py --n 500 --stream-n 2000 --workers-n 500

Peak RSS comes from getrusage (Linux: KiB). The machine may be shared: ratios are measured
in the same run, absolute times are indicative."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _bridge_setup import ROOT, django_in_temp_var

MODEL = "easyvqa-multiplicative"
CAMPAIGN = "bench-emap"


def setup(n_needed: int):  # type: ignore[no-untyped-def]
    """easy-VQA (test split, plus train when more examples are needed), one campaign over
    all of it, the multiplicative model registered."""
    from annotation.models import Campaign, Dataset
    from annotation.services.campaigns import campaign_add_examples, campaign_create
    from annotation.services.imports import easyvqa_import
    from models_bridge.services.registry import model_register

    if not Dataset.objects.filter(name="easy-VQA").exists():
        easyvqa_import(split="test")
    ds = Dataset.objects.get(name="easy-VQA")
    have = ds.examples.count()
    if n_needed > have:
        easyvqa_import(split="train", limit=n_needed - have + 100)
    campaign = Campaign.objects.filter(name=CAMPAIGN).first()
    if campaign is None:
        campaign = campaign_create(dataset=ds, name=CAMPAIGN)
    campaign_add_examples(campaign=campaign)  # idempotent: adds what the import just added
    mv = model_register(dataset=ds, kind="torchscript", location=MODEL)
    return campaign, mv


def rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM), so the peak measured next is the EMAP's and
    not the set-up's (model registration, imports). Linux only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def part_paths(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from models_bridge.analysis.methods import emap_setup, emap_stream
    from models_bridge.analysis.pairs import BlackBoxPairs, FactorizedPairs, PerPairLoop

    campaign, mv = setup(args.n)
    n = args.n
    params = {"limit": n, "seed": 0, "path": "factorized"}
    t0 = time.perf_counter()
    data, fact = emap_setup(campaign=campaign, model_version=mv, params=params)
    assert isinstance(fact, FactorizedPairs)
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    sums = emap_stream(fact, n=n, block_rows=250, progress=lambda d, t: None)
    t_fact = time.perf_counter() - t0
    pairs_total = n * n
    print(f"N = {n:,} ({pairs_total:,} evaluations), model {mv}")
    print(f"  data + encodings: {t_setup:.1f} s (includes reading {n:,} examples)")
    print(f"  factorized EMAP:  {t_fact:.1f} s   {pairs_total / t_fact:,.0f} pairs/s")

    # Raw fusion head: the scripted fuse on pre-gathered encodings, same batch size.
    module = fact.adapter.module  # type: ignore[attr-defined]
    a, b = fact.modalities
    batch = fact.pair_batch
    rng = np.random.default_rng(0)
    ia = torch.from_numpy(rng.integers(0, n, batch))
    ib = torch.from_numpy(rng.integers(0, n, batch))
    enc = {a: fact.enc[a].index_select(0, ia), b: fact.enc[b].index_select(0, ib)}
    reps = max(3, min(40, 2_000_000 // batch))
    with torch.inference_mode():
        module.fuse(enc)
        t0 = time.perf_counter()
        for _ in range(reps):
            module.fuse(enc)
        t_raw = (time.perf_counter() - t0) / (reps * batch)
    raw_rate = 1 / t_raw
    print(f"  raw fusion head:  {raw_rate:,.0f} pairs/s (batches of {batch:,}, pre-gathered)")

    # Black-box: the whole model on gathered pairs, on a subsample of rows unless --blackbox-full.
    black = BlackBoxPairs(fact.adapter, fact.modalities, data.values)
    rows = n if args.blackbox_full else min(n, args.blackbox_rows)
    t0 = time.perf_counter()
    black_rows = black.rows(0, rows, n)
    t_black_part = time.perf_counter() - t0
    t_black = t_black_part * n / rows
    np.testing.assert_allclose(black_rows, fact.rows(0, rows, n), atol=1e-4)
    how = "measured" if rows == n else f"extrapolated from {rows} rows ({rows * n:,} pairs)"
    print(f"  black-box EMAP:   {t_black:.1f} s   {pairs_total / t_black:,.0f} pairs/s ({how})")

    # The per-pair loop: one call per pair on raw values.
    loop = PerPairLoop(fact.adapter, fact.modalities, data.values)
    k = args.loop_pairs
    sample_a = rng.integers(0, n, k)
    sample_b = rng.integers(0, n, k)
    t0 = time.perf_counter()
    loop_out = loop.pairs(sample_a, sample_b)
    t_pair = (time.perf_counter() - t0) / k
    np.testing.assert_allclose(loop_out, fact.pairs(sample_a, sample_b), atol=1e-4)
    t_loop = t_pair * pairs_total
    print(
        f"  per-pair loop:    {t_loop:,.0f} s   {1 / t_pair:,.0f} pairs/s "
        f"(extrapolated from {k:,} pairs)"
    )
    print(f"  factorized vs per-pair loop: {t_loop / t_fact:,.1f}x   (goal >= 20x)")
    print(f"  factorized vs black-box:     {t_black / t_fact:,.1f}x")
    ratio = raw_rate / (pairs_total / t_fact)
    print(f"  raw fusion head / factorized throughput: {ratio:.2f}   (goal <= 2)")
    acc = float(np.mean(sums.emap.argmax(1) == sums.logits.argmax(1)))
    print(f"  (EMAP argmax = model argmax on {acc:.3f} of the examples)")


def part_stream_child(n: int) -> None:
    """In a fresh process: the streamed factorized EMAP for N examples; prints JSON."""
    from models_bridge.analysis.methods import emap_setup, emap_stream

    campaign, mv = setup(n)
    base = _status_kib("VmRSS")
    if not reset_peak():
        base = rss_kib()
    t0 = time.perf_counter()
    data, fact = emap_setup(
        campaign=campaign, model_version=mv, params={"limit": n, "path": "factorized"}
    )
    emap_stream(fact, n=data.n, block_rows=250, progress=lambda d, t: None)
    print(
        json.dumps(
            {
                "n": data.n,
                "seconds": time.perf_counter() - t0,
                "rss_kib": rss_kib(),
                "rss_before_kib": base,
            }
        )
    )


def part_stream(args: argparse.Namespace, var: Path) -> None:
    setup(max(args.stream_n, args.stream_small_n))
    print("streamed EMAP (factorized, row blocks of 250), each size in a fresh process:")
    for n in (args.stream_small_n, args.stream_n):
        out = subprocess.run(
            [sys.executable, __file__, "--child-stream", str(n)],
            env={**os.environ, "COUNTERPOINT_VAR_DIR": str(var)},
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  N = {r['n']:>6,}: {r['seconds']:8.1f} s   {r['n'] ** 2 / r['seconds']:>12,.0f} "
            f"pairs/s   peak RSS {r['rss_kib'] / 1024:,.0f} MiB "
            f"(before the EMAP {r['rss_before_kib'] / 1024:,.0f} MiB)"
        )


def _worker(var: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COUNTERPOINT_VAR_DIR": str(var),
        "DJANGO_SETTINGS_MODULE": "counterpoint.settings_test",
        "COUNTERPOINT_TORCH_THREADS": "1",
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    cmd = [
        str(Path(sys.executable).with_name("celery")), "-A", "counterpoint", "worker",
        "-Q", "analysis", "--pool", "solo", "--concurrency", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--hostname", f"bench-{log.stem}@localhost", "--loglevel", "WARNING",
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def part_workers(args: argparse.Namespace, var: Path) -> None:
    from annotation.models import Job
    from models_bridge.models import AnalysisBlock
    from models_bridge.services.analysis import analysis_start

    campaign, mv = setup(args.workers_n)
    params = {
        "limit": args.workers_n, "path": args.workers_path, "block_rows": args.workers_block_rows,
        "block_tasks": 1,
    }  # fmt: skip
    print(
        f"one analysis job (emap, N = {args.workers_n:,}, {args.workers_path}, blocks of "
        f"{args.workers_block_rows} rows) on Celery workers:"
    )
    times = {}
    for count in (1, 2):
        logs = [var / f"worker-{count}-{k}.log" for k in range(count)]
        procs = [_worker(var, log) for log in logs]
        try:
            time.sleep(3.0)  # let the workers connect before the job is sent
            t0 = time.perf_counter()
            job = analysis_start(
                campaign=campaign,
                model_version=mv,
                methods=["emap"],
                params=params,
                created_by=None,
            )
            while True:
                job.refresh_from_db()
                if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
                    break
                if any(p.poll() is not None for p in procs):
                    raise SystemExit(f"a worker exited: {logs[0].read_text()[-2000:]}")
                time.sleep(0.1)
            elapsed = time.perf_counter() - t0
            if job.status != Job.Status.SUCCEEDED:
                raise SystemExit(f"job failed: {job.error}")
            by = set(
                AnalysisBlock.objects.filter(job=job, block__gte=0).values_list(
                    "computed_by", flat=True
                )
            )
            times[count] = elapsed
            print(
                f"  {count} worker(s): {elapsed:.1f} s (blocks computed by {len(by)} process(es))"
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(f"  speed-up with 2 workers: {times[1] / times[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--blackbox-rows", type=int, default=40)
    parser.add_argument("--blackbox-full", action="store_true")
    parser.add_argument("--loop-pairs", type=int, default=400)
    parser.add_argument("--stream-n", type=int, default=10_000)
    parser.add_argument("--stream-small-n", type=int, default=1_000)
    parser.add_argument("--workers-n", type=int, default=2_000)
    parser.add_argument("--workers-path", default="factorized")
    parser.add_argument("--workers-block-rows", type=int, default=100)
    parser.add_argument("--skip", default="", help="comma-separated: paths,stream,workers")
    parser.add_argument("--child-stream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--var", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_stream:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "counterpoint.settings_test")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        part_stream_child(args.child_stream)
        return
    var = django_in_temp_var("bench-emap-")
    skip = set(filter(None, args.skip.split(",")))
    try:
        if "paths" not in skip:
            part_paths(args)
        if "stream" not in skip:
            part_stream(args, var)
        if "workers" not in skip:
            part_workers(args, var)
    finally:
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
