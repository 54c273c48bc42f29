// Small helpers shared by every page. No dependencies, no build step.

/** A random UUID v4. crypto.randomUUID only exists in secure contexts (https or localhost);
 * getRandomValues exists everywhere, so an annotator on plain http still gets a real key. */
export function uuid4() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") {
    try { return globalThis.crypto.randomUUID(); } catch (_) { /* insecure context */ }
  }
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** el("button", {class: "x", onclick: fn, "aria-label": "..."}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** Keyboard hints for label i (0-based): 1..9, 0, then a, b, c, ... (36 labels at most get a key). */
export function labelKey(i) {
  if (i < 9) return String(i + 1);
  if (i === 9) return "0";
  const j = i - 10;
  return j < 26 ? String.fromCharCode(97 + j) : "";
}

export function labelIndexForKey(key) {
  if (key.length !== 1) return -1;
  if (key >= "1" && key <= "9") return key.charCodeAt(0) - 49;
  if (key === "0") return 9;
  const c = key.charCodeAt(0);
  if (c >= 97 && c <= 122) return 10 + (c - 97);
  return -1;
}

/** True when a key press belongs to the focused control (typing, choosing), not to the page. */
export function isTypingTarget(target) {
  if (!target || !(target instanceof Element)) return false;
  if (target.closest("[data-keys='own']")) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag === "INPUT") {
    const t = (target.getAttribute("type") || "text").toLowerCase();
    return !["checkbox", "radio", "button", "submit", "range", "color"].includes(t);
  }
  return target.isContentEditable;
}

export function formatPercent(x, digits = 0) {
  if (!Number.isFinite(x)) return "–";
  return `${(x * 100).toFixed(digits)}%`;
}

export function humanName(label) {
  return String(label).replace(/_/g, " ");
}

/** The page's configuration, rendered by the server into data-* attributes of #app. */
export function pageConfig() {
  const app = document.getElementById("app");
  return app ? { ...app.dataset } : {};
}
