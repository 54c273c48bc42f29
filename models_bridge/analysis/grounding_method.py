"""The `grounding` analysis method (docs/analysis.md "Grounding"): per campaign and model, do
the model's attributions fall where the annotators' evidence is, and does removing that
evidence change the model's answer. It reads the campaign (examples, evidence, reliance
answers), computes the model's evidence (models_bridge/analysis/occlusion.py) and leaves the
arithmetic to models_bridge/analysis/grounding.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from annotation.models import Campaign
from annotation.selectors_analysis import (
    analysis_examples,
    counterfactual_edit_rows,
    evidence_by_example,
    reliance_counts,
)
from counterpoint.errors import ValidationFailed
from models_bridge.analysis import grounding as g
from models_bridge.analysis.data import analysis_data, null_input
from models_bridge.analysis.occlusion import (
    WORD_MODES,
    Item,
    Occluder,
    decode_rgb,
    integrated_gradients,
)
from models_bridge.analysis.pid_method import example_ref, int_param
from models_bridge.analysis.reliance import DEFAULT_TOP, human_category
from models_bridge.models import ModelVersion
from models_bridge.preprocess import TextPreprocessor

Progress = Callable[[int, int], None]


def _float_param(params: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValidationFailed(
            f"param {name!r} must be a number in [{lo}, {hi}], got {value!r}",
            code="analysis_param_invalid",
        )
    return float(value)


def _softmax_at(logits: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p[np.arange(len(targets)), np.asarray(targets)]


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 5)


def _rl(a: np.ndarray | None) -> list[float] | None:
    return None if a is None else [round(float(v), 5) for v in a]


def run_grounding(
    *, campaign: Campaign, model_version: ModelVersion, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Model evidence against human evidence over the campaign's sample (`limit`, `seed`,
    `split`, `modalities` as for emap). Params: grid (patches per side, default 8),
    word_mode (drop | unk), top_words (k; default the human rationale's size), q (top
    patch fraction, default 0.1), threshold (annotator share for the rationale, default
    0.5), ig (Integrated Gradients where available, default true), ig_steps (default 32),
    resamples (bootstrap, default 1000), top (disagreement examples, default 12)."""
    from models_bridge.analysis.methods import _adapter

    grid = int_param(params, "grid", g.DEFAULT_GRID, 1, 32)
    word_mode = str(params.get("word_mode", "drop"))
    if word_mode not in WORD_MODES:
        raise ValidationFailed(
            f"param 'word_mode' must be one of {', '.join(WORD_MODES)}",
            code="analysis_param_invalid",
        )
    k_param = params.get("top_words")
    if k_param is not None:
        k_param = int_param(params, "top_words", 1, 1, 512)
    q = _float_param(params, "q", g.DEFAULT_TOP_Q, 0.001, 1.0)
    threshold = _float_param(params, "threshold", g.DEFAULT_THRESHOLD, 0.001, 1.0)
    resamples = int_param(params, "resamples", 1000, 0, 100000)
    seed = int_param(params, "seed", 0, 0, 2**31 - 1)
    top = int_param(params, "top", DEFAULT_TOP, 0, 500)
    ig_steps = int_param(params, "ig_steps", 32, 2, 512)
    want_ig = params.get("ig", True) is not False

    data = analysis_data(campaign=campaign, model_version=model_version, params=params)
    kinds = data.kinds
    text_m = next((m for m in data.modalities if kinds[m] == "text"), None)
    image_m = next((m for m in data.modalities if kinds[m] == "image"), None)
    if text_m is None and image_m is None:
        raise ValidationFailed(
            "grounding compares words and image regions: the analysed modalities have none",
            code="analysis_modalities",
        )
    adapter = _adapter(model_version)
    occ, items, fill_record = occlusion_inputs(
        adapter, data, text_m=text_m, image_m=image_m, grid=grid, word_mode=word_mode
    )
    background = (
        (
            int(fill_record["colour"][0]),
            int(fill_record["colour"][1]),
            int(fill_record["colour"][2]),
        )
        if fill_record
        else (255, 255, 255)
    )
    n = data.n
    total_steps = 4
    progress(0, total_steps)

    # The model's prediction and its evidence.
    full = occ.edited_logits(items, [None] * n, [None] * n)
    targets = [int(t) for t in np.argmax(full, axis=1)]
    p_full = _softmax_at(full, targets)
    attrs = occ.attributions(items, targets, progress=lambda d, t: None)
    word_attr: list[Any] = list(attrs[0])
    patch_attr: list[Any] = list(attrs[1])
    progress(1, total_steps)
    ig_record: dict[str, Any] = {"method": "integrated_gradients", "available": False}
    ig_patches: list[np.ndarray] | None = None
    if want_ig and occ.image_modality:
        ig_record, ig_patches = integrated_gradients(
            adapter,
            items=items,
            targets=targets,
            image_modality=image_m,
            text_modality=occ.text_modality,
            background=background,
            grid=grid,
            steps=ig_steps,
        )
    elif not occ.image_modality:
        ig_record["reason"] = "the model does not read an image"
    else:
        ig_record["reason"] = "not asked (ig false)"
    progress(2, total_steps)

    # The human evidence.
    ids = data.example_ids
    evidence = evidence_by_example(campaign=campaign, example_ids=ids)
    answers = reliance_counts(campaign=campaign, example_ids=ids)
    human_words: list[Any] = []
    human_patches: list[Any] = []
    human_pixels: list[Any] = []
    for i, ex in enumerate(ids):
        per_annotator = evidence.get(ex, [])
        it = items[i]
        if occ.text_modality and it.text is not None:
            spans = [
                [(int(e["start"]), int(e["end"])) for e in ev if e.get("modality") == text_m]
                for ev in per_annotator
            ]
            human_words.append(g.human_word_mask(it.words, spans))
        else:
            human_words.append(None)
        if occ.image_modality and it.image is not None:
            boxes = [
                [
                    (float(e["x"]), float(e["y"]), float(e["w"]), float(e["h"]))
                    for e in ev
                    if e.get("modality") == image_m and e.get("type") == "box"
                ]
                for ev in per_annotator
            ]
            px = g.human_pixel_mask(it.image.shape[0], it.image.shape[1], boxes)
            human_pixels.append(px)
            human_patches.append(g.patch_means(g.rationale(px, threshold).astype(float), grid))
        else:
            human_pixels.append(None)
            human_patches.append(None)

    # Faithfulness: predicted-label probability with evidence removed / only evidence kept.
    keeps: list[tuple[int, str, str, str, Any, Any]] = []
    model_sets: list[dict[str, Any]] = []
    for i in range(n):
        hw = g.rationale(human_words[i], threshold) if human_words[i] is not None else None
        hp = (human_patches[i] >= 0.5) if human_patches[i] is not None else None
        size = int(hw.sum()) if hw is not None else 0
        k = k_param if k_param is not None else max(1, size)
        mw = g.top_k(word_attr[i], k) if word_attr[i] is not None else None
        mp = (
            g.top_k(patch_attr[i], g.top_q_count(grid * grid, q))
            if patch_attr[i] is not None
            else None
        )
        model_sets.append({"words": mw, "patches": mp, "human_words": hw, "human_patches": hp})
        for who, w_sel, p_sel in (("human", hw, hp), ("model", mw, mp)):
            if (w_sel is None or not w_sel.any()) and (p_sel is None or not p_sel.any()):
                continue  # no evidence of this side on this example
            for scope in g.SCOPES:
                if scope == "text" and (w_sel is None or not w_sel.any()):
                    continue
                if scope == "image" and (p_sel is None or not p_sel.any()):
                    continue
                use_w = w_sel if scope in ("all", "text") else None
                use_p = p_sel if scope in ("all", "image") else None
                keeps.append(
                    (
                        i,
                        who,
                        scope,
                        "removed",
                        None if use_w is None else (~use_w).astype(float),
                        None if use_p is None else (~use_p).astype(float),
                    )
                )
                keeps.append(
                    (
                        i,
                        who,
                        scope,
                        "only",
                        None if use_w is None else use_w.astype(float),
                        None if use_p is None else use_p.astype(float),
                    )
                )
    faith: list[dict[str, dict[str, dict[str, float]]]] = [
        {"human": {}, "model": {}} for _ in range(n)
    ]
    if keeps:
        # A scope that names one modality leaves the other intact.
        logits = occ.edited_logits(
            [items[kp[0]] for kp in keeps], [kp[4] for kp in keeps], [kp[5] for kp in keeps]
        )
        probs = _softmax_at(logits, [targets[kp[0]] for kp in keeps])
        for (i, who, scope, how, _w, _p), p in zip(keeps, probs, strict=True):
            entry = faith[i][who].setdefault(scope, {})
            if how == "removed":
                entry["comprehensiveness"] = g.comprehensiveness(p_full[i], p)
            else:
                entry["sufficiency"] = g.sufficiency(p_full[i], p)
    progress(3, total_steps)

    # Per example figures.
    labels = list(adapter.labels)
    rows: list[dict[str, Any]] = []
    for i, ex in enumerate(ids):
        item = items[i]
        sets = model_sets[i]
        text_fig: dict[str, Any] | None = None
        if human_words[i] is not None and word_attr[i] is not None:
            hw = sets["human_words"]
            assert hw is not None
            text_fig = {
                "words": [item.text[s:e] for s, e in item.words] if item.text else [],
                "spans": [list(s) for s in item.words],
                "human": _rl(human_words[i]),
                "model": _rl(word_attr[i]),
                "top_k_f1": _r(g.token_f1(sets["words"], hw)) if hw.any() else None,
                "auprc": _r(g.auprc(word_attr[i], hw)),
            }
        image_fig: dict[str, Any] | None = None
        if human_pixels[i] is not None and patch_attr[i] is not None:
            px = human_pixels[i]
            assert px is not None
            region = g.rationale(px, threshold)
            image_fig = {
                "human": _rl(human_patches[i]),
                "human_soft": _rl(g.patch_means(px, grid)),
                "model": _rl(patch_attr[i]),
                "ig": _rl(ig_patches[i]) if ig_patches is not None else None,
                "pointing": g.pointing_game(
                    patch_attr[i], g.patch_means(region.astype(float), grid)
                ),
                "iou": _r(g.iou_top_q(patch_attr[i], region, grid, q)),
            }
        plaus = [
            text_fig["top_k_f1"] if text_fig else None,
            image_fig["iou"] if image_fig else None,
        ]
        rows.append(
            {
                "example": ex,
                "category": human_category(answers.get(ex, {})),
                "annotators": len(evidence.get(ex, [])),
                "predicted": labels[targets[i]],
                "p_predicted": _r(p_full[i]),
                "gold": data.gold[i],
                "text": text_fig,
                "image": image_fig,
                "faithfulness": {
                    who: {s: {k: _r(v) for k, v in e.items()} for s, e in d.items()}
                    for who, d in faith[i].items()
                },
                "disagreement": _r(g.disagreement(plaus)),
            }
        )
    report = g.grounding_report(rows, resamples=resamples, seed=seed, top=top)
    shown = [d["example"] for d in report["disagreements"]]
    refs = {r["id"]: r for r in analysis_examples(campaign=campaign, example_ids=shown)}
    dkinds = {m["name"]: m["kind"] for m in campaign.dataset.modalities}
    edits_of: dict[int, list[int]] = {}
    if shown:
        wanted = set(shown)
        for r in counterfactual_edit_rows(campaign=campaign, model_version_id=model_version.pk):
            if r["example_id"] in wanted:
                edits_of.setdefault(r["example_id"], []).append(r["edit_id"])
    for d in report["disagreements"]:
        d["inputs"] = example_ref(refs[d["example"]], dkinds) if d["example"] in refs else {}
        d["edits"] = edits_of.get(d["example"], [])
    progress(4, total_steps)
    return {
        "method": "grounding",
        "variant": f"occlusion {grid}x{grid} patches + words ({word_mode}); "
        f"IG {'on' if ig_record.get('available') else 'unavailable'}",
        "model": str(model_version),
        "model_version": model_version.pk,
        "n": n,
        "modalities": {"text": text_m, "image": image_m},
        "attributions": {"occlusion": occ.record(), "integrated_gradients": ig_record},
        "patch_fill": fill_record,
        "params": {"grid": grid, "top_words": k_param, "q": q, "threshold": threshold},
        **report,
        "examples": rows,
    }


def occlusion_inputs(
    adapter: Any,
    data: Any,
    *,
    text_m: str | None,
    image_m: str | None,
    grid: int,
    word_mode: str,
) -> tuple[Occluder, list[Item], dict[str, Any] | None]:
    """The occluder for this adapter and the analysed examples' occludable inputs (texts cut
    into words by the model's own token pattern when it declares one, images decoded to
    source pixels), with the patch fill's record (the ablation's null-input colour)."""
    reads = set(adapter.modalities)
    background: tuple[int, int, int] = (255, 255, 255)
    fill_record: dict[str, Any] | None = None
    if image_m in reads:
        _value, fill_record = null_input(
            kind="image", values=data.values[image_m], raw=[r.get(image_m) for r in data.raw]
        )
        c = fill_record["colour"]
        background = (int(c[0]), int(c[1]), int(c[2]))
    occ = Occluder(
        adapter,
        text_modality=text_m,
        image_modality=image_m,
        background=background,
        grid=grid,
        word_mode=word_mode,
    )
    text_pre = (getattr(adapter, "preprocessors", None) or {}).get(text_m)
    pattern, lower = (
        (text_pre.token_pattern, text_pre.lowercase)
        if isinstance(text_pre, TextPreprocessor)
        else (g.WORD_PATTERN, True)
    )
    items: list[Item] = []
    for i in range(data.n):
        text = data.raw[i].get(text_m) if text_m else None
        text = text if isinstance(text, str) else None
        image = decode_rgb(data.values[occ.image_modality][i]) if occ.image_modality else None
        words = g.word_spans(text, pattern, lowercase=lower) if text is not None else []
        items.append(Item(text=text, words=words, image=image))
    if occ.image_modality:
        shapes = [it.image.shape for it in items if it.image is not None]
        h0, w0 = min(s[0] for s in shapes), min(s[1] for s in shapes)
        if grid > min(h0, w0):
            raise ValidationFailed(
                f"a {grid}x{grid} grid does not fit the smallest image ({w0}x{h0})",
                code="analysis_param_invalid",
            )
    return occ, items, fill_record
