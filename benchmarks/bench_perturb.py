"""Perturbation benchmark (issue 10, docs/perturbation.md), on 1,000 easy-VQA test questions
with their images:

1. Building a 10-level ladder as the perturb job does (claim, chunks, perturb, PNG encode and
   content-addressed store for images, one INSERT per chunk): Gaussian noise on the images and
   word dropout on the questions, 10,000 perturbed items each: items/s.
2. Bulk scoring the 10,000 noisy items with the multiplicative reference model as a scoring
   Job (target "perturbed"), beside the bare batched forward of the same module over the same
   inputs, preprocessed beforehand, timed before and after the job (the faster kept: the
   machine is shared). Goal: job items/s >= 0.7 x bare forward items/s.
3. The minimal perturbation to chance for the 1,000 examples with the same model
   (bisection over the rungs, then 3 refinement steps between rungs): mean model calls per
   example. Goal: <= 2·log2(10) + 3 = 9.64.

    .venv/bin/python benchmarks/bench_perturb.py"""

from __future__ import annotations

import math
import shutil
import time

from _bridge_setup import django_in_temp_var, import_easyvqa

MODEL = "easyvqa-multiplicative"
EXAMPLES = 1000
BATCH = 256
NOISE = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8]
DROPOUT = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def main() -> None:
    var = django_in_temp_var("bench-perturb-")
    try:
        run()
    finally:
        shutil.rmtree(var, ignore_errors=True)


def run() -> None:
    import torch

    from annotation.models import Job, PerturbedItem
    from annotation.services.campaigns import campaign_add_examples, campaign_create
    from annotation.services.perturbations import perturbation_study_create
    from annotation.tasks import perturbation_build_run
    from models_bridge.adapters.torchscript import TorchScriptAdapter
    from models_bridge.services.bulk import bulk_score_start
    from models_bridge.services.loading import adapter_for
    from models_bridge.services.perturbation import minimal_perturbation
    from models_bridge.services.registry import model_register
    from models_bridge.services.scoring import ScoreStats, build_batch
    from models_bridge.tasks import bulk_score_task

    t = time.perf_counter()
    dataset = import_easyvqa(limit=EXAMPLES)
    campaign = campaign_create(dataset=dataset, name="bench perturb", status="active")
    campaign_add_examples(campaign=campaign)
    mv = model_register(dataset=dataset, kind="torchscript", location=MODEL)
    campaign.model_versions.add(mv)
    print(
        f"setup: {EXAMPLES} easy-VQA questions imported in {time.perf_counter() - t:.1f}s (not measured)"
    )

    studies = {}
    for name, modality, perturbation, levels in (
        ("noise", "image", "gaussian_noise", NOISE),
        ("dropout", "text", "word_dropout", DROPOUT),
    ):
        study = perturbation_study_create(
            campaign=campaign,
            created_by=None,
            name=name,
            modality=modality,
            perturbation=perturbation,
            levels=levels,
            seed=0,
            enqueue=False,  # this process runs the job (no broker)
        )
        t = time.perf_counter()
        perturbation_build_run(study.job_id)
        wall = time.perf_counter() - t
        study.refresh_from_db()
        items = PerturbedItem.objects.filter(study=study).count()
        assert study.status == "ready" and items == EXAMPLES * len(levels)
        print(
            f"ladder build, {perturbation:>14} of {modality:<5}: {items / wall:8.0f} items/s "
            f"({items} items in {wall:.2f}s)"
        )
        studies[name] = study

    noise = studies["noise"]
    adapter = adapter_for(mv)
    assert isinstance(adapter, TorchScriptAdapter)
    rows = list(
        PerturbedItem.objects.filter(study=noise).order_by("id").values_list("values", flat=True)
    )
    n = len(rows)
    batches = [adapter.prepare(build_batch(mv, rows[i : i + BATCH])) for i in range(0, n, BATCH)]

    def bare() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for b in batches:
                adapter.module(b)
        return time.perf_counter() - t

    bare_before = bare()
    job = bulk_score_start(
        model_version=mv,
        created_by=None,
        campaign=campaign,
        target="perturbed",
        study=noise,
        enqueue=False,
    )
    t = time.perf_counter()
    bulk_score_task(job.pk)
    job_s = time.perf_counter() - t
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert isinstance(job.result, dict)
    bare_s = min(bare_before, bare())
    rate, bare_rate = n / job_s, n / bare_s
    print(f"model: {mv}, batch {BATCH}, torch threads {torch.get_num_threads()}")
    print(f"bare batched forward:    {bare_rate:8.0f} items/s  ({bare_s:.2f}s for {n})")
    print(
        f"bulk job (perturbed):    {rate:8.0f} items/s  ({job_s:.2f}s; {job.result['computed']} computed, "
        f"{job.result['cached']} cached, {job.result['model_calls']} model calls)"
    )
    print(f"ratio job / bare:        {rate / bare_rate:8.2f}   (goal >= 0.70)")

    stats = ScoreStats()
    t = time.perf_counter()
    out = minimal_perturbation(study=noise, model_version=mv, refine=3, stats=stats)
    search_s = time.perf_counter() - t
    goal = 2 * math.log2(len(NOISE)) + 3
    print(
        f"minimal perturbation:    {out['mean_calls']:8.2f} model calls per example "
        f"(max {out['max_calls']}; goal <= {goal:.2f}) for {out['examples']} examples in "
        f"{out['steps']} batched steps, {search_s:.1f}s; {stats.computed} inputs computed, "
        f"{stats.cached} from the cache"
    )
    print(
        f"                         {out['reached_chance']} of {out['examples']} examples fail "
        f"on the ladder; median level {out['median_level']}"
    )


if __name__ == "__main__":
    main()
