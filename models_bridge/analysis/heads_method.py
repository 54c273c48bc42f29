"""The `heads` analysis method (docs/analysis.md, "Attention heads"): head importance and the
pruning curve of a model that exposes a head mask, with the registry's signature
run(*, campaign, model_version, params, progress) -> dict.

The model calls are here; the arithmetic (importance, order, masks) is the pure
models_bridge/analysis/heads.py. A factorized model is encoded once per chunk of examples and
its fusion head run under every mask (`fuse_with_head_mask`); any other model with a head
mask runs whole (`predict_with_head_mask`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from annotation.models import Campaign
from counterpoint.errors import Unavailable, ValidationFailed
from models_bridge.adapters.base import Adapter, Batch, InputError, ModelError, NotFactorized
from models_bridge.analysis.data import AnalysisData, analysis_data, predicted_labels
from models_bridge.analysis.heads import (
    accuracy,
    accuracy_by_group,
    head_importance,
    pruning_masks,
    pruning_order,
    single_head_masks,
)
from models_bridge.analysis.pid_method import int_param
from models_bridge.models import ModelVersion

Progress = Callable[[int, int], None]
DEFAULT_BATCH = 256


def model_heads(model_version: ModelVersion) -> int:
    """How many attention heads a head mask can remove in this model, from what it declared
    at registration (model.json `heads.count`; an entry point's adapter `heads`): 0 for none."""
    heads = (model_version.manifest or {}).get("heads")
    count = heads.get("count") if isinstance(heads, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def heads_check(model_version: ModelVersion) -> int:
    """model_heads, or a named 400 (`analysis_no_heads`) for a model without heads."""
    heads = model_heads(model_version)
    if not heads:
        raise ValidationFailed(
            f"{model_version} has no attention heads to mask: the heads analysis needs a model "
            "that exports a head mask (fuse_with_head_mask or forward_with_head_mask, with "
            "heads.count in model.json)",
            code="analysis_no_heads",
        )
    return heads


def heads_adapter(model_version: ModelVersion) -> Adapter:
    """The adapter of a model with heads (heads_check first)."""
    from models_bridge.services.loading import adapter_for

    heads = heads_check(model_version)
    try:
        adapter = adapter_for(model_version)
    except ModelError as exc:
        raise Unavailable(str(exc), code="model_unavailable") from None
    if int(getattr(adapter, "heads", 0)) != heads:
        raise Unavailable(
            f"{model_version} declared {heads} heads but its adapter has "
            f"{getattr(adapter, 'heads', 0)}",
            code="model_unavailable",
        )
    return adapter


class MaskedRunner:
    """Logits of the analysis examples under head masks, chunk by chunk."""

    def __init__(self, adapter: Adapter, data: AnalysisData, batch: int) -> None:
        self.adapter = adapter
        self.data = data
        self.batch = batch
        self.reads = [m for m in data.modalities if m in adapter.modalities]
        exports = getattr(adapter, "exports", None)
        self.factorized = bool(adapter.factorized) and (
            exports is None or "fuse_with_head_mask" in exports
        )
        self.variant = (
            "head mask on the fusion head (encode once, fuse_with_head_mask)"
            if self.factorized
            else "head mask on the whole model (predict_with_head_mask)"
        )

    def chunks(self) -> list[tuple[int, int]]:
        n = self.data.n
        return [(s, min(n, s + self.batch)) for s in range(0, n, self.batch)]

    def logits(self, start: int, stop: int, masks: np.ndarray) -> list[np.ndarray]:
        """One (stop - start, C) logits array per row of `masks`."""
        import torch

        cols = {m: list(self.data.values[m][start:stop]) for m in self.reads}
        try:
            if self.factorized:
                enc = {m: self.adapter.encode(m, cols[m]) for m in self.reads}
                return [
                    torch.as_tensor(self.adapter.fuse_with_head_mask(enc, mask)).float().numpy()
                    for mask in masks
                ]
            batch = Batch(cols)
            return [self.adapter.predict_with_head_mask(batch, mask) for mask in masks]
        except InputError as exc:
            raise ValidationFailed(f"{exc.message}", code=exc.code) from None
        except NotFactorized as exc:
            raise ValidationFailed(str(exc), code="analysis_no_heads") from None
        except ModelError as exc:
            raise Unavailable(f"the model failed: {exc}", code="model_unavailable") from None


def _labels_under(
    runner: MaskedRunner,
    model_version: ModelVersion,
    masks: np.ndarray,
    progress: Callable[[], None],
) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in masks]
    for start, stop in runner.chunks():
        for k, logits in enumerate(runner.logits(start, stop, masks)):
            out[k].extend(predicted_labels(model_version, logits))
        progress()
    return out


def _figures(data: AnalysisData, pred: Sequence[str], base: Sequence[str]) -> dict[str, Any]:
    return {
        "accuracy": accuracy(pred, data.gold),
        "by_group": {
            name: accuracy_by_group(pred, data.gold, values)
            for name, values in data.groups.items()
            if name != "label"
        },
        "prediction_changed_fraction": float(
            np.mean([p != q for p, q in zip(pred, base, strict=True)])
        ),
    }


def run_heads(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Head importance (accuracy drop with each head alone masked) and the pruning curve
    (accuracy as heads are removed cumulatively, least important first)."""
    batch = int_param(params, "batch_size", DEFAULT_BATCH, 1, 4096)
    adapter = heads_adapter(model_version)
    data = analysis_data(campaign=campaign, model_version=model_version, params=params)
    runner = MaskedRunner(adapter, data, batch)
    heads = int(adapter.heads)
    total = 2 * len(runner.chunks())
    done = [0]

    def step() -> None:
        done[0] += 1
        progress(done[0], total)

    # pass 1: every head on, then each head alone masked
    first = np.vstack([np.ones((1, heads), dtype=np.float32), single_head_masks(heads)])
    labels = _labels_under(runner, model_version, first, step)
    full = labels[0]
    base = accuracy(full, data.gold)
    singles = [accuracy(p, data.gold) for p in labels[1:]]
    if base is None or any(a is None for a in singles):
        raise ValidationFailed(
            "the heads analysis needs examples with gold labels", code="analysis_no_gold"
        )
    importance = head_importance(base, [float(a) for a in singles if a is not None])
    order = pruning_order(importance)
    # pass 2: the pruning curve; rows 0 and 1 are already known from pass 1
    masks = pruning_masks(order, heads)
    later = _labels_under(runner, model_version, masks[2:], step) if heads > 1 else []
    curve_labels = [full, labels[1 + order[0]], *later]
    return {
        "method": "heads",
        "variant": runner.variant,
        "model": str(model_version),
        "n": data.n,
        "heads": heads,
        "params": {k: params[k] for k in ("limit", "seed", "split") if k in params}
        | {"batch_size": batch},
        **_figures(data, full, full),
        "importance": [
            {"head": h, "drop": importance[h], **_figures(data, labels[1 + h], full)}
            for h in range(heads)
        ],
        "pruning": {
            "order": order,
            "curve": [
                {
                    "removed": k,
                    "heads_removed": order[:k],
                    "mask": [float(x) for x in masks[k]],
                    **_figures(data, curve_labels[k], full),
                }
                for k in range(heads + 1)
            ],
        },
    }
