"""Background-pool EMAP of one new pair (docs/analysis.md "EMAP"): a seeded pool of M
campaign examples is encoded once per worker process and its M² grand mean cached, so each
new pair (an edit as it is stored) costs its own encodings and 2M fusion-head calls. Only for
factorized models: the live path never waits on it (it runs in the edit-scoring task)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotation.models import Campaign
from models_bridge.analysis.data import analysis_data, predicted_labels
from models_bridge.analysis.emap import emap_background
from models_bridge.analysis.pairs import FactorizedPairs
from models_bridge.models import ModelVersion
from models_bridge.services.scoring import build_batch

POOL_SEED = 0
_pools: dict[tuple[Any, ...], Pool] = {}
_lock = threading.Lock()
MAX_POOLS = 32


@dataclass
class Pool:
    pairs: FactorizedPairs
    m: int
    grand_mean: np.ndarray
    example_ids: list[int]

    @property
    def variant(self) -> str:
        return f"background pool M={self.m} (seed {POOL_SEED})"


def pool_for(*, campaign: Campaign, model_version: ModelVersion, size: int) -> Pool:
    """The campaign's background pool for this model, built once per process. The key holds
    the pool's example ids, so a campaign whose examples change gets a new pool."""
    from models_bridge.analysis.methods import _adapter

    params = {"limit": size, "seed": POOL_SEED}
    data = analysis_data(campaign=campaign, model_version=model_version, params=params)
    key = (model_version.pk, model_version.package_sha256, campaign.pk, tuple(data.example_ids))
    with _lock:
        pool = _pools.get(key)
    if pool is not None:
        return pool
    pairs = FactorizedPairs(_adapter(model_version), data.modalities, data.values)
    m = data.n
    grand = pairs.rows(0, m, m).mean(axis=(0, 1))
    pool = Pool(pairs=pairs, m=m, grand_mean=grand, example_ids=data.example_ids)
    with _lock:
        if len(_pools) >= MAX_POOLS:
            _pools.clear()
        _pools[key] = pool
    return pool


def emap_pairs_against_pool(
    *, pool: Pool, model_version: ModelVersion, inputs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """For each input (dataset-form values), f, its background-pool EMAP, the interaction
    score and whether the argmax changes."""
    batch = build_batch(model_version, inputs)
    pairs = pool.pairs
    extra = {m: list(batch.column(m)) for m in pairs.reads}
    ext = pairs.extended(extra)
    m = pool.m
    idx = np.arange(m)
    out = []
    for k in range(len(inputs)):
        new = np.full(m, m + k)
        with_pool_b = ext.pairs(new, idx)
        with_pool_a = ext.pairs(idx, new)
        f = ext.pairs(np.array([m + k]), np.array([m + k]))[0]
        emap = emap_background(
            with_pool_b=with_pool_b, with_pool_a=with_pool_a, pool_grand_mean=pool.grand_mean
        )
        pred, pred_emap = predicted_labels(model_version, np.stack([f, emap]))
        out.append(
            {
                "predicted": pred,
                "predicted_emap": pred_emap,
                "argmax_changed": pred != pred_emap,
                "interaction": float(np.linalg.norm(f - emap)),
            }
        )
    return out


def edit_emap(
    *,
    campaign: Campaign,
    model_version: ModelVersion,
    original: dict[str, Any],
    edited: dict[str, Any],
    size: int,
) -> dict[str, Any]:
    """The background-pool EMAP entry stored with an edit's scores for one model."""
    pool = pool_for(campaign=campaign, model_version=model_version, size=size)
    orig, edit = emap_pairs_against_pool(
        pool=pool, model_version=model_version, inputs=[original, edited]
    )
    return {"variant": pool.variant, "original": orig, "edit": edit}
