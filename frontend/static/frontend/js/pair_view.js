// One counterfactual pair, drawn for the pair viewer (docs/managing.md "Pair viewer"): the
// original and the edit side by side per modality (text: the word diff; image: the changed
// pixels outlined, computed here from the two images; tabular: the changed features), every
// campaign model's prediction on both sides, the author's answer, the validations and the
// minimality figures.
import { el, humanName, formatPercent } from "./util.js";
import { diffSegments } from "./textdiff.js";
import { modalityLabel, displayScale, loadBitmap } from "./example_view.js";
import { maskData, outlineSegments } from "./imageops.js";
import { relianceText } from "./reliance.js";
import { attentionPanel } from "./attention_overlay.js";

export const PAIR_IMAGE_MAX = 256; // px: 64×64 easy-VQA images at exactly 4×.
export const OUTLINE_RGB = [224, 0, 150];
const OUTLINE = `rgb(${OUTLINE_RGB.join(",")})`;
const TINT = [224, 0, 150, 70];

const mediaUrl = (sha) => `/media/${sha}`;

function pixelsOf(bitmap) {
  const c = document.createElement("canvas");
  c.width = bitmap.width;
  c.height = bitmap.height;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

function stageFor(w, h, label) {
  const s = displayScale(w, h, PAIR_IMAGE_MAX);
  const W = Math.round(w * s);
  const H = Math.round(h * s);
  const canvas = el("canvas", { width: W, height: H, class: "pair-img", role: "img", "aria-label": label });
  const stage = el("div", { class: "img-stage", style: `width:${W}px;height:${H}px` }, canvas);
  return { stage, canvas, s, W, H };
}

function paint(canvas, bitmap, s) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = s < 1;
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
}

/** The outline layer: the changed pixels tinted, their border drawn in OUTLINE_RGB. */
function outlineLayer(mask, w, h, s, W, H) {
  const layer = el("canvas", { width: W, height: H, class: "outline-layer", "aria-hidden": "true" });
  const ctx = layer.getContext("2d");
  const tint = new ImageData(w, h);
  for (let p = 0; p < mask.length; p += 4) {
    if (mask[p] === 255) tint.data.set(TINT, p);
  }
  const small = document.createElement("canvas");
  small.width = w;
  small.height = h;
  small.getContext("2d").putImageData(tint, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, W, H);
  ctx.fillStyle = OUTLINE;
  const lw = 2;
  for (const [x0, y0, x1, y1] of outlineSegments(mask, w, h)) {
    if (y0 === y1) ctx.fillRect(x0 * s - lw / 2, y0 * s - lw / 2, (x1 - x0) * s + lw, lw);
    else ctx.fillRect(x0 * s - lw / 2, y0 * s - lw / 2, lw, (y1 - y0) * s + lw);
  }
  return layer;
}

function boxLayer(boxes, s) {
  const layer = el("div", { class: "box-layer" });
  for (const b of boxes) {
    layer.append(el("div", {
      class: "ev-box",
      title: "evidence: a region that mattered",
      style: `left:${b.x * s}px;top:${b.y * s}px;width:${b.w * s}px;height:${b.h * s}px`,
    }));
  }
  return layer;
}

/** The two sides of an image modality; fills itself once both images are decoded. With
 * `edited`, both sides get the outline of the pixels that differ (any RGB channel, as the
 * server counts them: imageops.maskData). */
function imageSides(mod, origSha, editSha, edited, boxes) {
  const orig = el("div", { class: "side side-original" }, el("p", { class: "muted small" }, "Loading the image…"));
  const edit = el("div", { class: "side side-edit" });
  const host = el("div", { class: "pair-sides", dataset: { outline: edited ? "pending" : "none" } }, orig, edit);
  (async () => {
    const [a, b] = await Promise.all([loadBitmap(mediaUrl(origSha)), loadBitmap(mediaUrl(editSha))]);
    const { width: w, height: h } = a;
    const name = modalityLabel(mod).toLowerCase();
    const A = stageFor(w, h, `the original ${name} (${w}×${h} pixels)`);
    const B = stageFor(w, h, edited ? `the edited ${name}, changed pixels outlined` : `the ${name}, unchanged`);
    paint(A.canvas, a.bitmap, A.s);
    paint(B.canvas, b.bitmap, B.s);
    if (boxes.length) A.stage.append(boxLayer(boxes, A.s));
    if (edited && b.width === w && b.height === h) {
      const mask = maskData(pixelsOf(a.bitmap), pixelsOf(b.bitmap));
      A.stage.append(outlineLayer(mask, w, h, A.s, A.W, A.H));
      B.stage.append(outlineLayer(mask, w, h, B.s, B.W, B.H));
      host.dataset.outline = "drawn";
    }
    orig.replaceChildren(A.stage);
    edit.replaceChildren(B.stage);
    host.stages = { original: A, edit: B }; // the attention overlay draws on these
  })().catch((err) => {
    orig.replaceChildren(el("p", { class: "error small" }, `The images could not be loaded: ${err.message}`));
    host.dataset.outline = "failed";
  });
  return host;
}

/** `text` with the evidence spans (character offsets) marked. */
function markedText(text, spans) {
  const p = el("p", { class: "example-text", lang: "en" });
  const ranges = spans.map((s) => [Math.max(0, s.start), Math.min(text.length, s.end)]).filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let pos = 0;
  for (const [a, b] of ranges) {
    if (b <= pos) continue;
    const from = Math.max(a, pos);
    if (from > pos) p.append(text.slice(pos, from));
    p.append(el("mark", { class: "ev-mark", title: "evidence: words that mattered" }, text.slice(from, b)));
    pos = b;
  }
  if (pos < text.length) p.append(text.slice(pos));
  return p;
}

function diffLine(original, edited, { withDeletions = true } = {}) {
  const p = el("p", { class: "diff", lang: "en" });
  for (const s of diffSegments(original, edited)) {
    if (s.kind === "same") p.append(s.text);
    else if (s.kind === "del") { if (withDeletions) p.append(el("del", { "aria-label": `removed ${s.text}` }, s.text)); }
    else p.append(el("ins", { "aria-label": `added ${s.text}` }, s.text));
  }
  return p;
}

function tabularSides(orig, edit, changed) {
  const rows = Object.keys(orig || {}).map((k) => {
    const on = changed.has(k);
    return el("tr", { class: on ? "changed" : "" },
      el("th", { scope: "row" }, k, on ? el("span", { class: "sr-only" }, " (changed)") : ""),
      el("td", {}, String(orig[k])),
      el("td", {}, String((edit || {})[k])));
  });
  return el("table", { class: "tabular pair-table" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Feature"), el("th", { scope: "col" }, "Original"), el("th", { scope: "col" }, "Edit"))),
    el("tbody", {}, rows));
}

function modalitySection(mod, pair, options) {
  const name = mod.name;
  const edited = pair.modality === name;
  const o = pair.original_values[name];
  const e = pair.edited_values[name];
  const evidence = (pair.answer.evidence || []).filter((x) => x.modality === name);
  const head = el("h3", { class: "modality-name" }, modalityLabel(mod),
    edited ? el("span", { class: "tag tag-edited" }, "edited") : el("span", { class: "tag" }, "unchanged"));
  const section = el("section", { class: `pair-mod modality-${mod.kind}${edited ? " edited" : ""}`, "aria-label": modalityLabel(mod), dataset: { modality: name } }, head);
  if (mod.kind === "image") {
    const sides = imageSides(mod, o, e, edited, evidence.filter((x) => x.type === "box"));
    section.append(sides);
    const panel = attentionPanel({ campaign: options.campaign, pair, models: options.models || [], sides: () => sides.stages || null, host: sides });
    if (panel) section.append(panel);
  } else if (mod.kind === "text") {
    const spans = evidence.filter((x) => x.type === "span");
    const orig = el("div", { class: "side side-original" }, markedText(String(o ?? ""), spans));
    const edit = el("div", { class: "side side-edit" }, edited ? diffLine(String(o ?? ""), String(e ?? ""), { withDeletions: false }) : el("p", { class: "example-text" }, String(e ?? "")));
    edit.firstChild.classList.add("example-text");
    section.append(el("div", { class: "pair-sides" }, orig, edit));
    if (edited) section.append(el("div", { class: "pair-diff" }, el("span", { class: "muted small" }, "Word diff"), diffLine(String(o ?? ""), String(e ?? ""))));
  } else {
    const changed = new Set(edited ? pair.minimality.changed_features || [] : []);
    section.append(tabularSides(o, e, changed));
  }
  return section;
}

// Small figures (edit sizes are often a few percent) keep one decimal.
function pct(x) { return Number.isFinite(x) ? formatPercent(x, x > 0 && x < 0.1 ? 1 : 0) : "–"; }

function prediction(side) {
  if (!side) return "–";
  const p = side.probabilities ? side.probabilities[side.predicted_label] : undefined;
  return el("span", {}, el("strong", {}, humanName(side.predicted_label)), " ", el("span", { class: "muted" }, pct(p)));
}

function modelsTable(pair, options) {
  const known = new Map(options.models.map((m) => [String(m.id), m]));
  const ids = [...options.models.map((m) => String(m.id)), ...Object.keys(pair.scores || {}).filter((k) => !known.has(k))];
  const pending = new Set((pair.scores_pending || []).map(String));
  const fooled = new Set((pair.models_fooled || []).map(String));
  const target = pair.target_label;
  const rows = [];
  const details = [];
  for (const id of ids) {
    const m = known.get(id);
    const name = m ? `${m.name} v${m.version}` : `model #${id}`;
    const entry = (pair.scores || {})[id];
    const nameCell = el("th", { scope: "row", class: "model-name" }, name);
    if (!entry) {
      rows.push(el("tr", { class: "pending", dataset: { model: id } }, nameCell, el("td", { colspan: "4", class: "muted" }, pending.has(id) ? "scoring…" : "not scored")));
      continue;
    }
    if (entry.error) {
      rows.push(el("tr", { class: "unavailable", dataset: { model: id } }, nameCell, el("td", { colspan: "4", class: "muted" }, `cannot score: ${entry.error.message || entry.error.code}`)));
      continue;
    }
    const a = entry.original || {};
    const b = entry.edit || {};
    const pa = a.probabilities ? a.probabilities[target] : undefined;
    const pb = b.probabilities ? b.probabilities[target] : undefined;
    const flipped = a.predicted_label !== b.predicted_label;
    const badges = [];
    if (flipped) badges.push(el("span", { class: `badge ${b.predicted_label === target ? "flip" : "moved"}` }, b.predicted_label === target ? "flipped to target" : "flipped"));
    else badges.push(el("span", { class: "badge same" }, "unchanged"));
    if (fooled.has(id)) badges.push(el("span", { class: "badge fooled", title: "verified edit; the model's prediction is not its verified label" }, "fooled"));
    rows.push(el("tr", { dataset: { model: id }, class: fooled.has(id) ? "is-fooled" : "" }, nameCell,
      el("td", {}, prediction(a)), el("td", {}, prediction(b)),
      el("td", { class: "num" }, `${pct(pa)} → ${pct(pb)}`), el("td", {}, badges)));
    const labels = options.labels.filter((l) => (a.probabilities || {})[l] !== undefined || (b.probabilities || {})[l] !== undefined);
    details.push(el("table", { class: "probs" },
      el("caption", {}, name),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "label"), el("th", { scope: "col" }, "original"), el("th", { scope: "col" }, "edit"))),
      el("tbody", {}, labels.map((l) => el("tr", { class: l === target ? "target" : "" },
        el("th", { scope: "row" }, humanName(l)), el("td", { class: "num" }, pct((a.probabilities || {})[l])), el("td", { class: "num" }, pct((b.probabilities || {})[l])))))));
  }
  if (!ids.length) return el("p", { class: "muted" }, "This campaign has no models attached.");
  return el("div", {},
    el("table", { class: "pair-models" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Model"), el("th", { scope: "col" }, "On the original"), el("th", { scope: "col" }, "On the edit"),
        el("th", { scope: "col" }, `P(${humanName(target)})`), el("th", { scope: "col" }, "Outcome"))),
      el("tbody", {}, rows)),
    details.length ? el("details", { class: "all-probs" }, el("summary", {}, "All probabilities"), el("div", { class: "probs-grid" }, details)) : "");
}

function evidenceItems(pair, options) {
  const mods = new Map(options.modalities.map((m) => [m.name, m]));
  const items = (pair.answer.evidence || []).map((x) => {
    const where = mods.has(x.modality) ? modalityLabel(mods.get(x.modality)).toLowerCase() : x.modality;
    if (x.type === "span") {
      const text = x.text || String(pair.original_values[x.modality] || "").slice(x.start, x.end);
      return el("li", {}, `words in the ${where}: “${text}”`);
    }
    return el("li", {}, `a region of the ${where}: ${x.w}×${x.h} px at (${x.x}, ${x.y})`);
  });
  return items.length ? el("ul", { class: "plain" }, items) : el("span", { class: "muted" }, "none marked");
}

function seconds(ms) {
  if (!ms) return "–";
  return ms >= 60000 ? `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
}

function dl(rows) {
  return el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function answerBlock(pair, options) {
  const a = pair.answer;
  const words = relianceText(options.modalities, a.reliance, a.reliance_modality);
  return dl([
    ["Their label", el("strong", {}, humanName(a.label))],
    ["How sure", a.confidence ? `${a.confidence} of 5` : "–"],
    ["Inputs needed", a.reliance ? el("span", {}, `“${words}” `, el("code", { class: "category" }, a.reliance + (a.reliance_modality ? ` (${a.reliance_modality})` : ""))) : el("span", { class: "muted" }, "not asked or not answered")],
    ["What mattered", evidenceItems(pair, options)],
    ["Why", a.rationale ? el("q", { class: "rationale" }, a.rationale) : el("span", { class: "muted" }, "no rationale")],
    ["Time spent", seconds(a.time_spent_ms)],
    ["Scored drafts", String(pair.attempts_count)],
  ]);
}

function validationsBlock(pair, options) {
  const need = options.validations_required;
  const verify = options.validations_to_verify;
  const head = el("p", {}, el("span", { class: `status-badge status-${pair.status}` }, pair.status), " ",
    `${pair.validations_count} of ${need} validations, ${pair.validations_agree} agreeing with the target (${verify} verify it)`);
  if (!pair.validations.length) return el("div", {}, head, el("p", { class: "muted" }, "No validations yet."));
  const rows = pair.validations.map((v) => {
    const agrees = !v.broken && v.label === pair.target_label;
    return el("tr", { class: agrees ? "agrees" : "differs" },
      el("th", { scope: "row" }, v.validator),
      el("td", {}, v.broken ? el("span", { class: "badge broken" }, "flagged broken") : humanName(v.label || "–")),
      el("td", {}, agrees ? "agrees" : "differs"),
      el("td", {}, v.comment ? el("q", {}, v.comment) : el("span", { class: "muted" }, "—")));
  });
  return el("div", {}, head, el("table", { class: "pair-validations" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Validator"), el("th", { scope: "col" }, "Their label"), el("th", { scope: "col" }, "Verdict"), el("th", { scope: "col" }, "Comment"))),
    el("tbody", {}, rows)));
}

function minimalityBlock(pair, options) {
  const m = pair.minimality || {};
  const kind = (options.modalities.find((x) => x.name === pair.modality) || {}).kind;
  const budget = options.budgets[pair.modality];
  const of = (x) => (budget !== undefined && budget !== null ? ` (budget ${pct(Number(budget))})` : "");
  if (kind === "text") {
    return dl([
      ["Words changed", `${m.token_distance} of ${m.tokens}: ${pct(m.minimality)}${of(m.minimality)}`],
      ["Characters changed", String(m.char_distance)],
    ]);
  }
  if (kind === "image") {
    const bbox = m.bbox ? `${m.bbox[2]}×${m.bbox[3]} px at (${m.bbox[0]}, ${m.bbox[1]}), ${pct(m.bbox_fraction)} of the image` : "–";
    return dl([
      ["Pixels changed", `${m.changed_pixels} of ${m.width * m.height}: ${pct(m.pixel_fraction)}${of(m.pixel_fraction)}`],
      ["Changed area", bbox],
    ]);
  }
  return dl([
    ["Features changed", `${(m.changed_features || []).length} of ${m.features}: ${pct(m.fraction_changed)}${of(m.fraction_changed)}`],
    ["Scaled L1", Number(m.scaled_l1 ?? 0).toFixed(2)],
  ]);
}

/** The whole pair as one node. */
export function renderPair(pair, options) {
  const mods = options.modalities;
  const sidesHead = el("div", { class: "pair-sides pair-sides-head", "aria-hidden": "true" },
    el("div", {}, el("span", { class: "side-title" }, "Original"), " ", el("span", { class: "muted small" }, `gold label: ${pair.gold_label ? humanName(pair.gold_label) : "–"} · ${pair.author} said: ${humanName(pair.original_label)}`)),
    el("div", {}, el("span", { class: "side-title" }, "Edit"), " ", el("span", { class: "muted small" }, `target: ${humanName(pair.target_label)}`)));
  return el("div", { class: "pair", dataset: { edit: String(pair.id), status: pair.status, modality: pair.modality } },
    el("div", { class: "card pair-inputs" }, sidesHead, mods.map((m) => modalitySection(m, pair, options))),
    el("section", { class: "card", "aria-labelledby": "pair-models-h" }, el("h2", { id: "pair-models-h" }, "Models"), modelsTable(pair, options)),
    el("div", { class: "pair-columns" },
      el("section", { class: "card", "aria-labelledby": "pair-answer-h" }, el("h2", { id: "pair-answer-h" }, `${pair.author}’s answer`), answerBlock(pair, options)),
      el("div", { class: "pair-stack" },
        el("section", { class: "card", "aria-labelledby": "pair-val-h" }, el("h2", { id: "pair-val-h" }, "Validations"), validationsBlock(pair, options)),
        el("section", { class: "card", "aria-labelledby": "pair-min-h" }, el("h2", { id: "pair-min-h" }, "Edit size"), minimalityBlock(pair, options)))));
}
