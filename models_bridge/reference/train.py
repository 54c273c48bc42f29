"""Train, evaluate and package the reference easy-VQA models (five interaction families,
cross-attention in two versions: one head, and four heads with a head mask).

Pure PyTorch (no Django): the management command ``train_reference_models`` is a thin
wrapper around :func:`train_all`.

Each model is seeded independently from ``seed`` alone, so ``--only NAME`` retrains
exactly the same weights as a full run (a warm-started model, ``init_from``, also needs the
package it starts from in the output directory; a full run trains that one first).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import nets
from .data import QUESTION_TYPES, EasyVQA, Split, load_easy_vqa

FORMAT = "counterpoint-torchscript/1"
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 500
MAX_THREADS = 2  # shared 2-core machine


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    modalities: tuple[str, ...]
    epochs: int
    lr: float = 1e-3
    version: str = "1"
    # the folder under the output directory (several versions of one model name coexist)
    package: str = ""
    heads: int = 1  # attention heads (cross-attention only)
    # warm start: the weights of this already-trained package (same parameter shapes)
    init_from: str | None = None

    @property
    def folder(self) -> str:
        return self.package or self.name


SPECS: dict[str, ModelSpec] = {
    s.folder: s
    for s in (
        ModelSpec(
            "easyvqa-text-only",
            "Question-only baseline (token embeddings, masked mean, MLP): the language prior.",
            ("text",),
            epochs=5,  # ~1 s per epoch, so let it converge fully onto the prior
        ),
        ModelSpec(
            "easyvqa-image-only",
            "Image-only baseline (conv-BN-ReLU trunk, global max pool, linear head).",
            ("image",),
            epochs=2,
        ),
        ModelSpec(
            "easyvqa-additive",
            "Additive late fusion: logits = g(question) + h(image), no interaction term.",
            ("image", "text"),
            epochs=4,
        ),
        ModelSpec(
            "easyvqa-multiplicative",
            "Multiplicative fusion: MLP on the element-wise product of question and image encodings.",
            ("image", "text"),
            epochs=8,
        ),
        ModelSpec(
            "easyvqa-cross-attention",
            "Cross-attention fusion: question tokens attend over an 8x8 grid of image regions.",
            ("image", "text"),
            epochs=8,
        ),
        ModelSpec(
            "easyvqa-cross-attention",
            "Cross-attention fusion with 4 heads (16 channels each) and a head mask: question "
            "tokens attend over an 8x8 grid of image regions; any head can be switched off.",
            ("image", "text"),
            # Warm-started from version 1 (the same parameters: its 64 query/key/value
            # channels become 4 heads of 16), then fine-tuned one epoch with the heads
            # separate; a from-scratch run of 8 epochs is a CPU hour on a shared machine.
            epochs=1,
            lr=3e-4,
            version="2",
            package="easyvqa-cross-attention-4h",
            heads=4,
            init_from="easyvqa-cross-attention",
        ),
    )
}
MODEL_NAMES: tuple[str, ...] = tuple(SPECS)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _inputs(
    data: EasyVQA, split: Split, idx: Tensor, modalities: tuple[str, ...]
) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    if "text" in modalities:
        out["text"] = split.tokens[idx]
    if "image" in modalities:
        out["image"] = data.norm.apply(split.images[split.image_rows[idx]])
    return out


def _predict(model: nn.Module, data: EasyVQA, split: Split, modalities: tuple[str, ...]) -> Tensor:
    model.eval()
    preds = []
    with torch.inference_mode():
        for start in range(0, len(split), EVAL_BATCH_SIZE):
            idx = torch.arange(start, min(start + EVAL_BATCH_SIZE, len(split)))
            preds.append(model(_inputs(data, split, idx, modalities)).argmax(dim=1))
    return torch.cat(preds)


def accuracy_by_type(preds: Tensor, split: Split) -> dict[str, float]:
    """Overall test accuracy plus accuracy per question type (typed by the answer)."""
    correct = (preds == split.labels).tolist()
    qtypes = split.qtypes()
    metrics = {"test_accuracy": float(np.mean(correct))}
    for qt in QUESTION_TYPES:
        hits = [c for c, t in zip(correct, qtypes, strict=True) if t == qt]
        metrics[f"test_accuracy_{qt}"] = float(np.mean(hits))
    return metrics


def _train_one(
    spec: ModelSpec,
    data: EasyVQA,
    *,
    seed: int,
    epochs: int,
    log: Callable[[str], None],
    out_dir: Path,
) -> tuple[nn.Module, float]:
    _seed_everything(seed)
    model = nets.build(
        spec.name,
        len(data.tokenizer.vocab),
        data.tokenizer.max_length,
        len(data.labels),
        heads=spec.heads,
    )
    if spec.init_from:
        source = out_dir / spec.init_from / "model.pt"
        if not source.exists():
            raise FileNotFoundError(
                f"{spec.folder} starts from {source}: train {spec.init_from} first"
            )
        # TorchScript archive of our own reference package: tensors only, no pickle.
        model.load_state_dict(torch.jit.load(str(source)).state_dict())
        log(f"{spec.folder}: initialised from {source}")
    optimiser = torch.optim.Adam(model.parameters(), lr=spec.lr)
    loss_fn = nn.CrossEntropyLoss()
    # A private generator fixes the data order independently of anything else that
    # consumes the global RNG.
    order_rng = torch.Generator().manual_seed(seed)
    n = len(data.train)
    started = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=order_rng)
        total, seen = 0.0, 0
        for start in range(0, n, BATCH_SIZE):
            idx = perm[start : start + BATCH_SIZE]
            logits = model(_inputs(data, data.train, idx, spec.modalities))
            loss = loss_fn(logits, data.train.labels[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        log(
            f"{spec.folder}: epoch {epoch + 1}/{epochs} loss {total / seen:.4f} "
            f"({time.perf_counter() - started:.0f}s)"
        )
    return model.eval(), time.perf_counter() - started


def _check_export(
    model: nn.Module,
    scripted: torch.jit.ScriptModule,
    path: Path,
    sample: dict[str, Tensor],
) -> None:
    """Refuse to write a package whose scripted/reloaded outputs drift from the eager model."""
    with torch.inference_mode():
        eager = model(sample)
        script_out = scripted(sample)
        reloaded = torch.jit.load(str(path))
        reload_out = reloaded(sample)
        text = sample.get("text")
        image = sample.get("image")
        enc: dict[str, Tensor] = {}
        if text is not None:
            enc["text"] = reloaded.encode_text(text)
        if image is not None:
            enc["image"] = reloaded.encode_image(image)
        fused = reloaded.fuse(enc)
    if not torch.allclose(eager, script_out, atol=1e-5):
        raise RuntimeError(f"{path}: scripted output differs from eager model")
    if not torch.equal(script_out, reload_out):
        raise RuntimeError(f"{path}: reloaded output differs from scripted model")
    if not torch.allclose(fused, reload_out, atol=1e-5):
        raise RuntimeError(f"{path}: fuse(encode_*(x)) differs from forward(x)")
    if isinstance(model, nets.CrossAttention) and model.heads > 1:
        with torch.inference_mode():
            masked = reloaded.fuse_with_head_mask(enc, torch.ones(model.heads))
        if not torch.equal(masked, fused):
            raise RuntimeError(f"{path}: fuse_with_head_mask(all ones) differs from fuse")


def _package(
    spec: ModelSpec,
    model: nn.Module,
    data: EasyVQA,
    out_dir: Path,
    training: dict[str, Any],
    metrics: dict[str, float],
) -> dict[str, Any]:
    target = out_dir / spec.folder
    target.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.script(model.eval())
    pt_path = target / "model.pt"
    scripted.save(str(pt_path))
    _check_export(
        model, scripted, pt_path, _inputs(data, data.test, torch.arange(8), spec.modalities)
    )

    exports = ["forward", "encode_text", "encode_image", "fuse"]
    preprocessing: dict[str, Any] = {}
    if "text" in spec.modalities:
        preprocessing["text"] = data.tokenizer.spec()
    if "image" in spec.modalities:
        preprocessing["image"] = data.norm.spec()
    meta: dict[str, Any] = {
        "format": FORMAT,
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "labels": list(data.labels),
        "modalities": sorted(spec.modalities),
        "factorized": True,
        "exports": exports,
        "preprocessing": preprocessing,
    }
    if isinstance(model, nets.CrossAttention):
        meta["exports"] = [*exports, "attention"]
        length, dim, regions = model.max_length, model.dim, model.num_regions
        meta["encoding_layout"] = {
            "text": {
                "shape": [length, dim + 1],
                "flattened": length * (dim + 1),
                "order": "row-major (token, channel)",
                "mask_channel": dim,
                "note": "channel `mask_channel` is 1.0 for a real token, 0.0 for padding",
            },
            "image": {
                "shape": [regions, dim],
                "flattened": regions * dim,
                "order": "row-major (region, channel); regions raster order of an 8x8 grid",
                "grid": [model.grid, model.grid],
            },
            "attention": {"shape": ["B", length, regions], "rows": "question tokens"},
        }
        if model.heads > 1:
            meta["exports"] += [
                "attention_heads",
                "fuse_with_head_mask",
                "forward_with_head_mask",
            ]
            meta["heads"] = {
                "count": model.heads,
                "head_dim": model.head_dim,
                "mask": "fuse_with_head_mask(encodings, head_mask) / forward_with_head_mask("
                "inputs, head_mask); head_mask float (heads,) or (B, heads), 1 keeps a head, "
                "0 removes its output",
            }
            meta["encoding_layout"]["attention"]["note"] = "mean over the heads"
            meta["encoding_layout"]["attention_heads"] = {
                "shape": ["B", model.heads, length, regions],
                "rows": "question tokens",
            }
    meta["training"] = training
    meta["metrics"] = metrics
    (target / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def train_all(
    out_dir: Path,
    *,
    seed: int = 0,
    epochs: int | None = None,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Train the reference models, write ``out_dir/<name>/model.{json,pt}``.

    ``epochs`` overrides every model's default epoch count; ``only`` restricts to the
    given model names. Returns ``{name: metrics}`` where metrics holds the test
    accuracies, ``seconds`` (training wall time), ``epochs`` and ``parameters``.
    """
    names = list(MODEL_NAMES) if not only else list(only)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODEL_NAMES)}")

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(min(previous_threads, MAX_THREADS))
    try:
        started = time.perf_counter()
        data = load_easy_vqa()
        log(
            f"loaded easy-VQA: {len(data.train)} train / {len(data.test)} test questions, "
            f"vocab {len(data.tokenizer.vocab)} ({time.perf_counter() - started:.1f}s)"
        )
        results: dict[str, dict[str, Any]] = {}
        for name in names:
            spec = SPECS[name]
            n_epochs = spec.epochs if epochs is None else epochs
            model, seconds = _train_one(
                spec, data, seed=seed, epochs=n_epochs, log=log, out_dir=Path(out_dir)
            )
            metrics = accuracy_by_type(_predict(model, data, data.test, spec.modalities), data.test)
            training = {
                "seed": seed,
                "epochs": n_epochs,
                "train_examples": len(data.train),
                "seconds": round(seconds, 1),
                "batch_size": BATCH_SIZE,
                "optimizer": f"Adam(lr={spec.lr})",
            }
            if spec.init_from:
                training["initialised_from"] = spec.init_from
            _package(spec, model, data, Path(out_dir), training, metrics)
            parameters = sum(p.numel() for p in model.parameters())
            results[name] = {
                **metrics,
                "seconds": round(seconds, 1),
                "epochs": n_epochs,
                "parameters": parameters,
            }
            log(
                f"{name}: test acc {metrics['test_accuracy']:.4f} "
                f"(yes/no {metrics['test_accuracy_yes_no']:.4f}, "
                f"colour {metrics['test_accuracy_colour']:.4f}, "
                f"shape {metrics['test_accuracy_shape']:.4f}), "
                f"{parameters} params, {seconds:.0f}s"
            )
        return results
    finally:
        torch.set_num_threads(previous_threads)
