// Renders an example's modalities: images large and crisp, text readable, tabular as a table.
// The label step adds evidence marking on top (evidence.js).
import { el } from "./util.js";

export const DISPLAY_MAX = 384; // px: 64×64 easy-VQA images show at exactly 6×.

/** Display scale for a w×h image: an integer upscale for small images (crisp pixels), a plain
 * downscale for large ones. */
export function displayScale(width, height, max = DISPLAY_MAX) {
  const fit = max / Math.max(width, height, 1);
  return fit >= 1 ? Math.max(1, Math.floor(fit)) : fit;
}

export function modalityLabel(mod) {
  if (mod.label) return mod.label;
  if (mod.kind === "text" && /^(text|question)$/i.test(mod.name)) return "Question";
  if (mod.kind === "image" && /^(image|img|picture)$/i.test(mod.name)) return "Image";
  return mod.name.charAt(0).toUpperCase() + mod.name.slice(1);
}

/** Load an image's exact pixels (no colour management) → {bitmap, width, height}. */
export async function loadBitmap(url) {
  const resp = await fetch(url, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`image ${url} answered ${resp.status}`);
  const blob = await resp.blob();
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  return { bitmap, width: bitmap.width, height: bitmap.height };
}

export function imageFigure(mod, value, { max = DISPLAY_MAX } = {}) {
  const w = value.width || 64;
  const h = value.height || 64;
  const s = displayScale(w, h, max);
  const img = el("img", {
    src: value.url,
    alt: `${modalityLabel(mod)} of the example (${w}×${h} pixels)`,
    width: Math.round(w * s),
    height: Math.round(h * s),
    draggable: "false",
    class: s >= 1 ? "pixelated" : "",
  });
  // --shrink keeps integer upscales integer when the edit step shows the image one step smaller.
  const shrink = s >= 2 ? (Math.floor(s) - 1) / Math.floor(s) : 0.8;
  const stage = el("div", {
    class: "img-stage",
    style: `width:${Math.round(w * s)}px;height:${Math.round(h * s)}px;--w:${Math.round(w * s)}px;--h:${Math.round(h * s)}px;--shrink:${shrink}`,
  }, img);
  return { node: stage, img, scale: s, width: w, height: h };
}

export function textBlock(mod, value) {
  return el("p", { class: "example-text", lang: "en" }, String(value ?? ""));
}

export function tabularTable(mod, value) {
  const rows = Object.entries(value || {}).map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, String(v))));
  return el("table", { class: "tabular" }, el("caption", { class: "sr-only" }, modalityLabel(mod)), el("tbody", {}, rows));
}

/** A plain read-only view of every modality (the validator page, the edit step's context). */
export function exampleView(modalities, values, opts = {}) {
  const wrap = el("div", { class: "example" });
  for (const mod of modalities) {
    const value = values[mod.name];
    const section = el("section", { class: `modality modality-${mod.kind}`, "aria-label": modalityLabel(mod) },
      el("h3", { class: "modality-name" }, modalityLabel(mod)));
    if (mod.kind === "image" && value) section.append(imageFigure(mod, value, opts).node);
    else if (mod.kind === "text") section.append(textBlock(mod, value));
    else if (mod.kind === "tabular") section.append(tabularTable(mod, value));
    wrap.append(section);
  }
  return wrap;
}
