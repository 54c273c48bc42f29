"""Fine-tune a TorchScript model in place and write it back as a package's model.pt.

Pure PyTorch (no Django): models_bridge.services.round_training gathers the rows (the
training split and a round's verified pairs), and hands them here with a `prepare`
function (the package's own preprocessing, the one scoring uses), so the model is trained
on exactly the tensors it is later scored on. A scripted module trains like an eager one
(its parameters take gradients; train() switches BatchNorm to batch statistics) and saves
with the same graphs, so the fine-tuned package passes the op allowlist its parent passed.
"""

from __future__ import annotations

import io
import random
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

MAX_THREADS = 2  # shared 2-core machine, as the reference training


def load_module(weights: bytes) -> torch.jit.ScriptModule:
    """A fresh, trainable copy of a package's module (never the adapter cache's copy, which
    live scoring keeps using). The bytes must have passed the sandboxed check."""
    with warnings.catch_warnings():
        # TorchScript is the package format (docs/models.md), deprecated upstream or not.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(io.BytesIO(weights), map_location="cpu")
    for p in module.parameters():
        p.requires_grad_(True)
    return module


def finetune(
    module: torch.jit.ScriptModule,
    *,
    rows: Sequence[Any],
    labels: Sequence[int],
    prepare: Callable[[Sequence[Any]], dict[str, Tensor]],
    epochs: int,
    seed: int,
    lr: float = 1e-4,
    batch_size: int = 64,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Adam on the cross-entropy of `module(prepare(batch))` against `labels` (model label
    indices), `epochs` passes in an order drawn from `seed`. Returns the losses per epoch
    and the wall time. Deterministic for the same inputs and seed on one machine."""
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    if len(rows) != len(labels) or not rows:
        raise ValueError("rows and labels must be non-empty and of the same length")
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, MAX_THREADS))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    target = torch.tensor(list(labels), dtype=torch.long)
    optimiser = torch.optim.Adam([p for p in module.parameters()], lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    started = time.perf_counter()
    try:
        for epoch in range(epochs):
            module.train()
            perm = torch.randperm(len(rows), generator=order).tolist()
            total, seen = 0.0, 0
            for start in range(0, len(perm), batch_size):
                idx = perm[start : start + batch_size]
                if len(idx) < 2 and seen:
                    continue  # a batch of one gives BatchNorm no batch statistics
                logits = module(prepare([rows[i] for i in idx]))
                loss = loss_fn(logits, target[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.item()) * len(idx)
                seen += len(idx)
            losses.append(round(total / max(seen, 1), 6))
            log(
                f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} "
                f"({time.perf_counter() - started:.0f}s)"
            )
    finally:
        module.eval()
        torch.set_num_threads(previous)
    return {"losses": losses, "seconds": round(time.perf_counter() - started, 1)}


def save_checked(
    module: torch.jit.ScriptModule, path: Path, sample: dict[str, Tensor], exports: Sequence[str]
) -> None:
    """Write model.pt and refuse it unless the reloaded module answers like the trained one
    (forward, and fuse(encode_*(x)) for a factorized package)."""
    module.eval()
    module.save(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        reloaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        want = module(sample)
        got = reloaded(sample)
        if not torch.allclose(want, got, atol=1e-5):
            raise RuntimeError(f"{path}: the reloaded module differs from the trained one")
        if "fuse" in exports:
            enc = {m: getattr(reloaded, f"encode_{m}")(x) for m, x in sample.items()}
            if not torch.allclose(reloaded.fuse(enc), got, atol=1e-5):
                raise RuntimeError(f"{path}: fuse(encode_*(x)) differs from forward(x)")
