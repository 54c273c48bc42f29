"""Bulk scoring benchmark: the 9,673 easy-VQA test questions through the multiplicative
reference model as a scoring Job (run in this process by the Celery task function: claim,
chunks of 1,024, cache lookups, batched forward of 256, Score inserts, progress), beside
the bare batched forward pass of the same module over the same inputs, preprocessed
beforehand, timed before and after the job in the same run (the faster kept: the machine
is shared). Then a second job over the same inputs, which must make no
model call (counted by a wrapper around the real adapter).

Goal (issue #3): job examples/s >= 0.7 x bare forward examples/s.

    .venv/bin/python benchmarks/bench_bulk_scoring.py"""

from __future__ import annotations

import shutil
import time

from _bridge_setup import django_in_temp_var, import_easyvqa

MODEL = "easyvqa-multiplicative"
BATCH = 256


def main() -> None:
    var = django_in_temp_var("bench-bulk-")
    try:
        run()
    finally:
        shutil.rmtree(var, ignore_errors=True)


def run() -> None:
    import torch

    from annotation.models import Example, Job
    from annotation.services.jobs import job_create
    from models_bridge.adapters.base import Adapter
    from models_bridge.adapters.torchscript import TorchScriptAdapter
    from models_bridge.services.loading import adapter_cache_put, adapter_for
    from models_bridge.services.registry import model_register
    from models_bridge.services.scoring import build_batch
    from models_bridge.tasks import bulk_score_task

    t = time.perf_counter()
    dataset = import_easyvqa(limit=None)
    n = Example.objects.filter(dataset=dataset).count()
    print(
        f"imported {n} easy-VQA test questions in {time.perf_counter() - t:.1f}s (setup, not measured)"
    )
    mv = model_register(dataset=dataset, kind="torchscript", location=MODEL)
    adapter = adapter_for(mv)
    assert isinstance(adapter, TorchScriptAdapter)

    class Counting(Adapter):
        def __init__(self, inner: Adapter) -> None:
            self.inner, self.kind, self.labels, self.modalities = (
                inner,
                inner.kind,
                inner.labels,
                inner.modalities,
            )
            self.calls = 0

        def prepare(self, batch):  # type: ignore[no-untyped-def]
            return self.inner.prepare(batch)

        def run(self, prepared):  # type: ignore[no-untyped-def]
            self.calls += 1
            return self.inner.run(prepared)

        def predict(self, batch):  # type: ignore[no-untyped-def]
            return self.run(self.prepare(batch))

    counter = Counting(adapter)
    adapter_cache_put(mv, counter)

    # Bare batched forward: every input preprocessed first, then only module(inputs) timed.
    rows = [
        v
        for v in Example.objects.filter(dataset=dataset)
        .order_by("id")
        .values_list("values", flat=True)
    ]
    batches = [adapter.prepare(build_batch(mv, rows[i : i + BATCH])) for i in range(0, n, BATCH)]

    def bare() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for b in batches:
                adapter.module(b)
        return time.perf_counter() - t

    bare_before = bare()

    def job_run() -> tuple[float, dict]:
        job = job_create(
            kind=Job.Kind.SCORE, created_by=None, params={"model_version": mv.pk}, dataset=dataset
        )
        t = time.perf_counter()
        bulk_score_task(job.pk)
        wall = time.perf_counter() - t
        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert isinstance(job.result, dict)
        return wall, job.result

    first_s, first = job_run()
    # The machine is shared: bare forward is timed before and after the job, best kept.
    bare_s = min(bare_before, bare())
    bare_rate = n / bare_s
    calls_after_first = counter.calls
    second_s, second = job_run()
    rate = n / first_s
    print(f"model: {mv}, batch {BATCH}, torch threads {torch.get_num_threads()}")
    print(f"bare batched forward:   {bare_rate:8.0f} examples/s  ({bare_s:.2f}s for {n})")
    print(
        f"bulk job, first pass:   {rate:8.0f} examples/s  ({first_s:.2f}s; {first['computed']} computed, "
        f"{first['model_calls']} model calls)"
    )
    print(f"ratio job / bare:       {rate / bare_rate:8.2f}   (goal >= 0.70)")
    print(
        f"bulk job, second pass:  {n / second_s:8.0f} examples/s  ({second_s:.2f}s; {second['cached']} from the "
        f"cache, {second['model_calls']} model calls; counted at the adapter: "
        f"{counter.calls - calls_after_first})"
    )


if __name__ == "__main__":
    main()
