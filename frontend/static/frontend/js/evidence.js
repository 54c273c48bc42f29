// Evidence marking on the label step ("What in the inputs mattered?", docs/architecture.md "Reliance questions"):
// words of a text (click or drag across words; keyboard: arrows + Space) and boxes on an
// image (drag; keyboard: Enter adds a box, arrows move it, Shift+arrows resize, Delete removes).
// Offsets are characters of the original text and pixels of the source image.
import { el, clear } from "./util.js";
import { tokenize } from "./textdiff.js";

export class TextEvidence {
  constructor({ modality, text, label, onChange }) {
    this.modality = modality;
    this.text = String(text ?? "");
    this.tokens = tokenize(this.text);
    this.selected = new Set();
    this.active = 0;
    this.onChange = onChange || (() => {});
    this.node = el("p", {
      class: "example-text markable",
      tabindex: "0",
      // A multi-select listbox of words: the ARIA pattern for "choose several, one active".
      role: "listbox",
      "aria-multiselectable": "true",
      "aria-orientation": "horizontal",
      "aria-label": `${label}: mark the words that mattered. Arrow keys move, Space marks or unmarks a word.`,
      lang: "en",
    });
    this.words = [];
    let pos = 0;
    this.tokens.forEach((t, i) => {
      if (t.start > pos) this.node.append(this.text.slice(pos, t.start));
      const w = el("span", { class: "word", role: "option", id: `${modality}-w${i}`, dataset: { i: String(i) }, "aria-selected": "false" }, t.text);
      this.words.push(w);
      this.node.append(w);
      pos = t.end;
    });
    if (pos < this.text.length) this.node.append(this.text.slice(pos));
    this.drag = null;
    this.node.addEventListener("pointerdown", (e) => this.pointerDown(e));
    this.node.addEventListener("pointerover", (e) => this.pointerOver(e));
    window.addEventListener("pointerup", () => { this.drag = null; });
    this.node.addEventListener("keydown", (e) => this.keyDown(e));
    this.node.addEventListener("focus", () => this.showActive(true));
    this.node.addEventListener("blur", () => this.showActive(false));
  }

  wordAt(e) {
    const w = e.target instanceof Element ? e.target.closest(".word") : null;
    return w && this.node.contains(w) ? Number(w.dataset.i) : -1;
  }

  pointerDown(e) {
    const i = this.wordAt(e);
    if (i < 0) return;
    e.preventDefault();
    this.node.focus({ preventScroll: true });
    this.drag = { mark: !this.selected.has(i) };
    this.active = i;
    this.set(i, this.drag.mark);
  }

  pointerOver(e) {
    if (!this.drag) return;
    const i = this.wordAt(e);
    if (i >= 0) { this.active = i; this.set(i, this.drag.mark); }
  }

  keyDown(e) {
    if (!this.tokens.length || e.ctrlKey || e.metaKey || e.altKey) return;
    const move = { ArrowRight: 1, ArrowLeft: -1, Home: -1e9, End: 1e9 }[e.key];
    if (move !== undefined) {
      e.preventDefault();
      const prev = this.active;
      this.active = Math.max(0, Math.min(this.tokens.length - 1, this.active + move));
      if (e.shiftKey) this.set(this.active, this.selected.has(prev));
      this.showActive(true);
    } else if (e.key === " " || e.key === "Enter") {
      e.preventDefault();
      this.set(this.active, !this.selected.has(this.active));
    }
  }

  showActive(on) {
    this.words.forEach((w, i) => w.classList.toggle("active", on && i === this.active));
    if (on && this.words[this.active]) this.node.setAttribute("aria-activedescendant", this.words[this.active].id);
  }

  set(i, on) {
    if (on) this.selected.add(i); else this.selected.delete(i);
    this.words[i].classList.toggle("marked", on);
    this.words[i].setAttribute("aria-selected", on ? "true" : "false");
    this.onChange();
  }

  /** Marked words merged into spans where they are adjacent tokens. */
  spans() {
    const idx = [...this.selected].sort((a, b) => a - b);
    const out = [];
    for (const i of idx) {
      const last = out[out.length - 1];
      if (last && last.lastIndex === i - 1) {
        last.end = this.tokens[i].end;
        last.lastIndex = i;
      } else {
        out.push({ start: this.tokens[i].start, end: this.tokens[i].end, lastIndex: i });
      }
    }
    return out.map(({ start, end }) => ({ modality: this.modality, type: "span", start, end, text: this.text.slice(start, end) }));
  }

  restore(spans) {
    for (const s of spans) {
      this.tokens.forEach((t, i) => {
        if (t.start >= s.start && t.end <= s.end) this.set(i, true);
      });
    }
  }

  removeSpan(span) {
    this.tokens.forEach((t, i) => {
      if (t.start >= span.start && t.end <= span.end) this.set(i, false);
    });
  }
}

export class BoxEvidence {
  constructor({ modality, figure, label, onChange }) {
    this.modality = modality;
    this.fig = figure; // {node, img, scale, width, height}
    this.boxes = [];
    this.selected = -1;
    this.onChange = onChange || (() => {});
    this.stage = figure.node;
    this.stage.classList.add("boxable");
    this.stage.tabIndex = 0;
    this.stage.setAttribute("role", "group");
    this.stage.setAttribute(
      "aria-label",
      `${label}: drag to draw a box around what mattered. Keyboard: Enter adds a box, arrows move it, Shift+arrows resize it, Delete removes it.`,
    );
    this.layer = el("div", { class: "box-layer", "aria-hidden": "true" });
    this.stage.append(this.layer);
    this.drag = null;
    this.stage.addEventListener("pointerdown", (e) => this.pointerDown(e));
    this.stage.addEventListener("pointermove", (e) => this.pointerMove(e));
    this.stage.addEventListener("pointerup", (e) => this.pointerUp(e));
    this.stage.addEventListener("keydown", (e) => this.keyDown(e));
  }

  toSource(e) {
    const r = this.stage.getBoundingClientRect();
    const x = Math.floor(((e.clientX - r.left) / r.width) * this.fig.width);
    const y = Math.floor(((e.clientY - r.top) / r.height) * this.fig.height);
    return [Math.max(0, Math.min(this.fig.width - 1, x)), Math.max(0, Math.min(this.fig.height - 1, y))];
  }

  pointerDown(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    this.stage.focus({ preventScroll: true });
    this.stage.setPointerCapture(e.pointerId);
    const [x, y] = this.toSource(e);
    this.drag = { x0: x, y0: y, box: { x, y, w: 1, h: 1 } };
    this.render();
  }

  pointerMove(e) {
    if (!this.drag) return;
    const [x, y] = this.toSource(e);
    const { x0, y0 } = this.drag;
    this.drag.box = { x: Math.min(x0, x), y: Math.min(y0, y), w: Math.abs(x - x0) + 1, h: Math.abs(y - y0) + 1 };
    this.render();
  }

  pointerUp() {
    if (!this.drag) return;
    const b = this.drag.box;
    this.drag = null;
    // A click (a box of a pixel or two on screen) is not a box anyone meant to draw.
    if (b.w * this.fig.scale >= 6 && b.h * this.fig.scale >= 6) {
      this.boxes.push(b);
      this.selected = this.boxes.length - 1;
      this.onChange();
    }
    this.render();
  }

  keyDown(e) {
    if (e.ctrlKey || e.metaKey) return; // Ctrl+Enter belongs to the page (next step / submit)
    const W = this.fig.width;
    const H = this.fig.height;
    if (e.key === "Enter") {
      e.preventDefault();
      const w = Math.max(1, Math.round(W / 4));
      const h = Math.max(1, Math.round(H / 4));
      this.boxes.push({ x: Math.round((W - w) / 2), y: Math.round((H - h) / 2), w, h });
      this.selected = this.boxes.length - 1;
      this.onChange();
      this.render();
      return;
    }
    const b = this.boxes[this.selected];
    if (!b) return;
    const step = e.altKey ? 1 : Math.max(1, Math.round(Math.max(W, H) / 32));
    const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
    if (d) {
      e.preventDefault();
      if (e.shiftKey) {
        b.w = Math.max(1, Math.min(W - b.x, b.w + d[0] * step));
        b.h = Math.max(1, Math.min(H - b.y, b.h + d[1] * step));
      } else {
        b.x = Math.max(0, Math.min(W - b.w, b.x + d[0] * step));
        b.y = Math.max(0, Math.min(H - b.h, b.y + d[1] * step));
      }
      this.onChange();
      this.render();
    } else if (e.key === "Delete" || e.key === "Backspace") {
      e.preventDefault();
      this.remove(this.selected);
    }
  }

  remove(i) {
    this.boxes.splice(i, 1);
    this.selected = Math.min(this.selected, this.boxes.length - 1);
    this.onChange();
    this.render();
  }

  render() {
    clear(this.layer);
    const s = this.stage.clientWidth / this.fig.width || this.fig.scale;
    const all = this.drag ? [...this.boxes, this.drag.box] : this.boxes;
    all.forEach((b, i) => {
      this.layer.append(el("div", {
        class: `ev-box${i === this.selected ? " selected" : ""}${this.drag && i === all.length - 1 ? " drawing" : ""}`,
        style: `left:${b.x * s}px;top:${b.y * s}px;width:${b.w * s}px;height:${b.h * s}px`,
      }));
    });
  }

  list() {
    return this.boxes.map((b) => ({ modality: this.modality, type: "box", x: b.x, y: b.y, w: b.w, h: b.h }));
  }

  restore(items) {
    this.boxes = items.map((b) => ({ x: b.x, y: b.y, w: b.w, h: b.h }));
    this.selected = this.boxes.length - 1;
    this.render();
  }
}

/** Chips listing the current evidence, each with a remove button. */
export function renderEvidenceList(node, items, onRemove, labelOf) {
  clear(node);
  if (!items.length) {
    node.append(el("span", { class: "muted" }, "Nothing marked yet."));
    return;
  }
  items.forEach((item) => {
    const text = item.type === "span"
      ? `“${item.text}”`
      : `box ${item.x},${item.y} · ${item.w}×${item.h}px`;
    node.append(el("span", { class: "chip" },
      el("span", { class: "chip-kind" }, labelOf(item.modality)), " ", text,
      el("button", { type: "button", class: "chip-x", "aria-label": `Remove ${text}`, onclick: () => onRemove(item) }, "×")));
  });
}
