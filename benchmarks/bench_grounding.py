"""Grounding benchmark (issue 12, docs/analysis.md "Grounding"): occlusion attributions for
1,000 easy-VQA test questions with their images (an 8x8 patch grid + every word) with each of
the five reference models, through the grounding method's own occluder (Captum's
FeatureAblation over the adapter; models_bridge/analysis/occlusion.py): examples/s, beside the
bare batched forward of the same number of occluded inputs (the module on preprocessed
tensors in batches of 256, no occlusion, no Captum). Goal: >= 0.7 x bare forward.

The images are decoded and the questions cut into words beforehand, and Captum is imported
(not timed: the method does each once per run or per worker process); one torch thread.

    .venv/bin/python benchmarks/bench_grounding.py"""

from __future__ import annotations

import shutil
import sys
import time

from _bridge_setup import django_in_temp_var, import_easyvqa

MODELS = (
    "easyvqa-text-only",
    "easyvqa-image-only",
    "easyvqa-additive",
    "easyvqa-multiplicative",
    "easyvqa-cross-attention",
)
EXAMPLES = 1000
GRID = 8
BATCH = 256
RING = 8


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES
    var = django_in_temp_var("bench-grounding-")
    try:
        run(examples)
    finally:
        shutil.rmtree(var, ignore_errors=True)


def run(examples: int) -> None:
    import numpy as np
    import torch

    from annotation.services.campaigns import campaign_add_examples, campaign_create
    from models_bridge.adapters.torchscript import configure_torch_threads
    from models_bridge.analysis.data import analysis_data
    from models_bridge.analysis.grounding_method import occlusion_inputs
    from models_bridge.services.loading import adapter_for
    from models_bridge.services.registry import model_register

    configure_torch_threads(1)
    import captum.attr  # noqa: F401  (imported once per worker process: not timed)

    t = time.perf_counter()
    dataset = import_easyvqa(limit=examples)
    campaign = campaign_create(dataset=dataset, name="bench grounding", status="active")
    campaign_add_examples(campaign=campaign)
    print(
        f"setup: {examples} easy-VQA questions imported in {time.perf_counter() - t:.1f}s "
        "(not measured)"
    )
    ratios = []
    for name in MODELS:
        mv = model_register(dataset=dataset, kind="torchscript", location=name)
        adapter = adapter_for(mv)
        data = analysis_data(campaign=campaign, model_version=mv, params={})
        occ, items, _fill = occlusion_inputs(
            adapter, data, text_m="text", image_m="image", grid=GRID, word_mode="drop"
        )
        n = len(items)
        t = time.perf_counter()
        full = occ.edited_logits(items, [None] * n, [None] * n)
        targets = [int(k) for k in np.argmax(full, axis=1)]
        occ.attributions(items, targets, progress=lambda d, t: None)
        took = time.perf_counter() - t
        rows = occ.rows

        # The bare forward: the same number of rows, preprocessed beforehand, batches of 256
        # (a ring of 8 distinct batches reused: all 70,000 inputs at once would be 3 GB).
        prepare = getattr(adapter, "prepare_modality")  # noqa: B009  (TorchScript packages)
        prepared = {m: prepare(m, data.values[m]) for m in adapter.modalities}
        ring = []
        for k in range(RING):
            index = torch.from_numpy((np.arange(BATCH) + k * BATCH) % n)
            ring.append({m: v.index_select(0, index) for m, v in prepared.items()})
        t = time.perf_counter()
        for k, s in enumerate(range(0, rows, BATCH)):
            b = ring[k % RING]
            size = min(BATCH, rows - s)
            adapter.run(b if size == BATCH else {m: v[:size] for m, v in b.items()})
        bare = time.perf_counter() - t
        ratio = bare / took
        ratios.append(ratio)
        print(
            f"{name}: {n / took:,.1f} examples/s occlusion ({rows:,} occluded inputs, "
            f"{rows / n:.1f} per example, {occ.calls} model calls) | bare forward of "
            f"{rows:,} inputs: {n / bare:,.1f} examples/s ({rows / bare:,.0f} inputs/s) | "
            f"ratio {ratio:.2f} (goal >= 0.7)"
        )
    print(f"ratio min {min(ratios):.2f}, mean {sum(ratios) / len(ratios):.2f} over the five models")


if __name__ == "__main__":
    main()
