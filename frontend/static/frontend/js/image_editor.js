// Canvas editor for a counterfactual image edit (docs/architecture.md "Counterfactual protocol"): brush with a colour picker and a
// palette of the image's own colours, box fill, erase to background (the most common colour),
// restore original pixels, undo/redo, zoom; a live changed-pixel meter. The canvas holds the
// image at source resolution; CSS scales it up with crisp pixels. Uploads are PNG (lossless),
// same width×height as the original.
import { el } from "./util.js";
import * as io from "./imageops.js";
import { renderMeter } from "./meter.js";
import { displayScale } from "./example_view.js";

// A few plain colours beside the image's own, for painting something new.
const BASIC = ["#000000", "#808080", "#ffffff", "#ff0000", "#ffff00", "#00ff00", "#008080", "#0000ff", "#a52a2a"];

const TOOLS = [
  { id: "brush", name: "Brush", hint: "paint with the chosen colour" },
  { id: "rect", name: "Box fill", hint: "drag a box; it fills with the chosen colour" },
  { id: "erase", name: "Erase", hint: "paint with the background colour" },
  { id: "restore", name: "Restore", hint: "paint the original pixels back" },
  { id: "patch", name: "Patch", hint: "drag a box to copy it, then click where the copy goes (choose Patch again for a new one)" },
];

export class ImageEditor {
  /** bitmap: the original's exact pixels (example_view.loadBitmap). budget: max pixel fraction. */
  constructor({ bitmap, width, height, budget, label, onChange, onCommit }) {
    this.w = width;
    this.h = height;
    this.budget = budget;
    this.onChange = onChange || (() => {});
    this.onCommit = onCommit || (() => {});
    this.canvas = el("canvas", {
      width: String(width),
      height: String(height),
      class: "imged-canvas pixelated",
      tabindex: "0",
      role: "img",
      "aria-label": `${label} being edited. Keyboard: arrow keys move the cursor (Shift for bigger steps), Space paints or, with Box fill, sets a corner; [ and ] change the brush size.`,
    });
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(bitmap, 0, 0);
    this.image = this.ctx.getImageData(0, 0, width, height);
    this.orig = new Uint8ClampedArray(this.image.data);
    this.background = io.mostCommonColour(this.orig);
    this.palette = io.paletteOf(this.orig, 8);
    this.colour = this.palette.find((c) => io.hexOf(c) !== io.hexOf(this.background)) || [0, 0, 0];
    this.tool = "brush";
    this.size = Math.max(1, Math.round(Math.max(width, height) / 16));
    this.undoStack = [];
    this.redoStack = [];
    // Undo snapshots are whole images: bound them by memory (~64 MB), never fewer than 5.
    this.maxUndo = Math.max(5, Math.floor((64 * 1024 * 1024) / (width * height * 4)));
    this.zoom = displayScale(width, height);
    this.cursor = { x: Math.floor(width / 2), y: Math.floor(height / 2), visible: false };
    this.rectStart = null;
    this.stroke = null;
    this.build(label);
    this.applyZoom();
    this.update();
  }

  build(label) {
    const toolButtons = TOOLS.map((t) => el("button", {
      type: "button",
      class: "tool",
      "aria-pressed": String(t.id === this.tool),
      title: `${t.name}: ${t.hint}`,
      dataset: { tool: t.id },
      onclick: () => this.setTool(t.id),
    }, t.name));
    this.toolButtons = toolButtons;
    this.sizeInput = el("input", { type: "range", min: "1", max: String(Math.max(8, Math.round(Math.max(this.w, this.h) / 4))), value: String(this.size), id: "brush-size", oninput: (e) => this.setSize(Number(e.target.value)) });
    this.sizeOut = el("output", { for: "brush-size", class: "tool-out" }, `${this.size}px`);
    this.colourInput = el("input", { type: "color", value: io.hexOf(this.colour), id: "brush-colour", "aria-label": "Brush colour", oninput: (e) => this.setColour(io.rgbOf(e.target.value)) });
    this.swatches = el("div", { class: "swatches", role: "group", "aria-label": "Colours of this image" },
      this.palette.map((c) => {
        const hex = io.hexOf(c);
        const isBg = hex === io.hexOf(this.background);
        return el("button", {
          type: "button",
          class: `swatch${isBg ? " bg" : ""}`,
          style: `background:${hex}`,
          title: isBg ? `${hex} (background)` : hex,
          "aria-label": `Use ${isBg ? "the background colour" : "colour"} ${hex}`,
          "aria-pressed": "false",
          dataset: { hex },
          onclick: () => this.setColour(c),
        });
      }),
      el("span", { class: "swatch-sep", "aria-hidden": "true" }),
      BASIC.filter((hex) => !this.palette.some((c) => io.hexOf(c) === hex)).map((hex) => el("button", {
        type: "button",
        class: "swatch basic",
        style: `background:${hex}`,
        title: hex,
        "aria-label": `Use colour ${hex}`,
        "aria-pressed": "false",
        dataset: { hex },
        onclick: () => this.setColour(io.rgbOf(hex)),
      })));
    this.undoBtn = el("button", { type: "button", class: "tool icon", "aria-label": "Undo", title: "Undo (Ctrl+Z)", onclick: () => this.undo() }, "↶");
    this.redoBtn = el("button", { type: "button", class: "tool icon", "aria-label": "Redo", title: "Redo (Ctrl+Shift+Z)", onclick: () => this.redo() }, "↷");
    this.zoomOut = el("output", { class: "tool-out", "aria-live": "polite" }, "");
    const zoomBtns = [
      el("button", { type: "button", class: "tool icon", "aria-label": "Zoom out", title: "Zoom out (-)", onclick: () => this.setZoom(-1) }, "−"),
      this.zoomOut,
      el("button", { type: "button", class: "tool icon", "aria-label": "Zoom in", title: "Zoom in (+)", onclick: () => this.setZoom(1) }, "+"),
    ];
    this.preview = el("div", { class: "imged-rect", hidden: true });
    this.cursorEl = el("div", { class: "imged-cursor", hidden: true });
    this.wrap = el("div", { class: "imged-wrap" }, this.canvas, this.preview, this.cursorEl);
    this.stage = el("div", { class: "imged-stage" }, this.wrap);
    this.meter = el("div", { class: "meter", "aria-live": "polite" });
    this.node = el("div", { class: "imged" },
      el("div", { class: "imged-tools", role: "toolbar", "aria-label": "Image tools" },
        el("div", { class: "tool-row" },
          el("div", { class: "tool-group", role: "group", "aria-label": "Tool" }, toolButtons)),
        el("div", { class: "tool-row" },
          el("div", { class: "tool-group" }, el("label", { for: "brush-size", class: "inline-label" }, "Size"), this.sizeInput, this.sizeOut),
          el("div", { class: "tool-group" }, el("label", { for: "brush-colour", class: "inline-label" }, "Colour"), this.colourInput, this.swatches))),
      el("div", { class: "imged-body" },
        this.stage,
        el("div", { class: "imged-side" },
          el("div", { class: "tool-group", role: "group", "aria-label": "History" }, this.undoBtn, this.redoBtn),
          el("div", { class: "tool-group", role: "group", "aria-label": "Zoom" }, zoomBtns))),
      this.meter);
    this.canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.pointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.pointerUp(e));
    this.canvas.addEventListener("pointercancel", (e) => this.pointerUp(e));
    this.canvas.addEventListener("pointerleave", () => { if (!this.stroke) this.hideCursor(); });
    this.canvas.addEventListener("keydown", (e) => this.keyDown(e));
    this.canvas.addEventListener("focus", () => { this.cursor.visible = true; this.drawCursor(); });
    this.canvas.addEventListener("blur", () => this.hideCursor());
    this.markColour();
  }

  // ---- state changes --------------------------------------------------------------------
  setTool(id) {
    this.tool = id;
    this.patch = null; // choosing Patch (again) starts with copying a new one
    this.rectStart = null;
    this.preview.hidden = true;
    this.toolButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === id)));
    this.node.dataset.tool = id;
    this.showPatchState();
  }

  setSize(n) {
    this.size = Math.max(1, Math.min(Number(this.sizeInput.max), n));
    this.sizeInput.value = String(this.size);
    this.sizeOut.textContent = `${this.size}px`;
    this.drawCursor();
  }

  setColour(rgb) {
    this.colour = rgb;
    this.colourInput.value = io.hexOf(rgb);
    if (this.tool === "erase" || this.tool === "restore") this.setTool("brush");
    this.markColour();
  }

  markColour() {
    const hex = io.hexOf(this.colour);
    for (const b of this.swatches.children) b.setAttribute("aria-pressed", String(b.dataset.hex === hex));
  }

  /** One zoom step in or out (dir = +1 / -1); the display size stays under 4096 px. */
  setZoom(dir) {
    const steps = [0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32].filter((z) => z * Math.max(this.w, this.h) <= 4096);
    if (!steps.length) return;
    const next = dir > 0 ? steps.find((z) => z > this.zoom) : [...steps].reverse().find((z) => z < this.zoom);
    if (next !== undefined) this.zoom = next;
    this.applyZoom();
  }

  applyZoom() {
    this.canvas.style.width = `${this.w * this.zoom}px`;
    this.canvas.style.height = `${this.h * this.zoom}px`;
    this.wrap.style.width = `${this.w * this.zoom}px`;
    this.wrap.style.height = `${this.h * this.zoom}px`;
    this.canvas.classList.toggle("pixelated", this.zoom >= 1);
    this.zoomOut.textContent = `${this.zoom}×`;
    this.drawCursor();
  }

  snapshot() {
    this.undoStack.push(new Uint8ClampedArray(this.image.data));
    if (this.undoStack.length > this.maxUndo) this.undoStack.shift();
    this.redoStack = [];
  }

  undo() {
    if (!this.undoStack.length) return;
    this.redoStack.push(new Uint8ClampedArray(this.image.data));
    this.image.data.set(this.undoStack.pop());
    this.update();
    this.onCommit();
  }

  redo() {
    if (!this.redoStack.length) return;
    this.undoStack.push(new Uint8ClampedArray(this.image.data));
    this.image.data.set(this.redoStack.pop());
    this.update();
    this.onCommit();
  }

  /** Put back a saved draft (a PNG data URL of the same size). */
  async restoreDataUrl(dataUrl) {
    const blob = await (await fetch(dataUrl)).blob();
    const bmp = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    if (bmp.width !== this.w || bmp.height !== this.h) return false;
    const c = new OffscreenCanvas(this.w, this.h);
    const cx = c.getContext("2d", { willReadFrequently: true });
    cx.drawImage(bmp, 0, 0);
    this.image.data.set(cx.getImageData(0, 0, this.w, this.h).data);
    this.update();
    return true;
  }

  reset() {
    this.snapshot();
    this.image.data.set(this.orig);
    this.update();
    this.onCommit();
  }

  // ---- painting ---------------------------------------------------------------------------
  toSource(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = Math.floor(((e.clientX - r.left) / r.width) * this.w);
    const y = Math.floor(((e.clientY - r.top) / r.height) * this.h);
    return [Math.max(0, Math.min(this.w - 1, x)), Math.max(0, Math.min(this.h - 1, y))];
  }

  paintColour() {
    if (this.tool === "erase") return [this.background, null];
    if (this.tool === "restore") return [null, this.orig];
    return [this.colour, null];
  }

  pointerDown(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    this.canvas.focus({ preventScroll: true });
    this.canvas.setPointerCapture(e.pointerId);
    const [x, y] = this.toSource(e);
    this.cursor = { x, y, visible: true };
    if (this.boxTool()) {
      this.stroke = { rect: true, x0: x, y0: y };
      this.showRect(io.rectFromCorners(x, y, x, y, this.w, this.h));
      return;
    }
    if (this.tool === "patch") {
      this.pastePatchAt(x, y);
      this.stroke = { pasted: true };
      this.scheduleDraw();
      return;
    }
    this.snapshot();
    this.stroke = { x, y };
    const [rgb, src] = this.paintColour();
    io.strokeSegment(this.image.data, this.w, this.h, x, y, x, y, this.size, rgb, src);
    this.scheduleDraw();
  }

  pointerMove(e) {
    const [x, y] = this.toSource(e);
    this.cursor = { x, y, visible: true };
    if (!this.stroke) { this.drawCursor(); return; }
    if (this.stroke.rect) {
      this.showRect(io.rectFromCorners(this.stroke.x0, this.stroke.y0, x, y, this.w, this.h));
      return;
    }
    if (this.stroke.pasted) return;
    const [rgb, src] = this.paintColour();
    io.strokeSegment(this.image.data, this.w, this.h, this.stroke.x, this.stroke.y, x, y, this.size, rgb, src);
    this.stroke.x = x;
    this.stroke.y = y;
    this.scheduleDraw();
  }

  pointerUp(e) {
    if (!this.stroke) return;
    let changed = true;
    if (this.stroke.rect) {
      const [x, y] = this.toSource(e);
      changed = this.finishBox(io.rectFromCorners(this.stroke.x0, this.stroke.y0, x, y, this.w, this.h));
      this.preview.hidden = true;
    }
    this.stroke = null;
    this.update();
    if (changed) this.onCommit();
  }

  fillBox(rect) {
    this.snapshot();
    const [rgb, src] = this.paintColour();
    io.fillRect(this.image.data, this.w, rect, rgb, src);
  }

  keyDown(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return; // page shortcuts (submit, undo) pass through
    const big = e.shiftKey ? Math.max(2, Math.round(Math.max(this.w, this.h) / 16)) : 1;
    const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
    if (d) {
      e.preventDefault();
      this.cursor.x = Math.max(0, Math.min(this.w - 1, this.cursor.x + d[0] * big));
      this.cursor.y = Math.max(0, Math.min(this.h - 1, this.cursor.y + d[1] * big));
      this.cursor.visible = true;
      if (this.rectStart) this.showRect(io.rectFromCorners(this.rectStart.x, this.rectStart.y, this.cursor.x, this.cursor.y, this.w, this.h));
      this.drawCursor();
    } else if (e.key === " ") {
      e.preventDefault();
      const { x, y } = this.cursor;
      if (this.boxTool()) {
        if (!this.rectStart) {
          this.rectStart = { x, y };
          this.showRect(io.rectFromCorners(x, y, x, y, this.w, this.h));
        } else {
          const changed = this.finishBox(io.rectFromCorners(this.rectStart.x, this.rectStart.y, x, y, this.w, this.h));
          this.rectStart = null;
          this.preview.hidden = true;
          this.update();
          if (changed) this.onCommit();
        }
      } else if (this.tool === "patch") {
        this.pastePatchAt(x, y);
        this.update();
        this.onCommit();
      } else {
        this.snapshot();
        const [rgb, src] = this.paintColour();
        io.strokeSegment(this.image.data, this.w, this.h, x, y, x, y, this.size, rgb, src);
        this.update();
        this.onCommit();
      }
    } else if (e.key === "[" || e.key === "]") {
      e.preventDefault();
      this.setSize(this.size + (e.key === "]" ? 1 : -1));
    } else if (e.key === "+" || e.key === "=" || e.key === "-") {
      e.preventDefault();
      this.setZoom(e.key === "-" ? -1 : 1);
    } else if (e.key === "Escape" && this.rectStart) {
      e.preventDefault();
      e.stopPropagation();
      this.rectStart = null;
      this.preview.hidden = true;
    }
  }

  /** Box gestures: Box fill always; Patch until something has been copied. */
  boxTool() {
    return this.tool === "rect" || (this.tool === "patch" && !this.patch);
  }

  showPatchState() {
    const btn = this.toolButtons && this.toolButtons.find((b) => b.dataset.tool === "patch");
    if (!btn) return;
    btn.textContent = this.patch ? `Paste ${this.patch.w}×${this.patch.h}` : "Patch";
    this.node.dataset.patch = this.patch ? `${this.patch.w}x${this.patch.h}` : "";
  }

  /** End of a box gesture: fill it (Box fill) or copy it (Patch). */
  finishBox(rect) {
    if (this.tool === "patch") {
      this.patch = io.copyRect(this.image.data, this.w, rect);
      this.showPatchState();
      return false;
    }
    this.fillBox(rect);
    return true;
  }

  pastePatchAt(x, y) {
    this.snapshot();
    io.pastePatch(this.image.data, this.w, this.h, this.patch, x - Math.floor(this.patch.w / 2), y - Math.floor(this.patch.h / 2));
  }

  showRect(r) {
    const s = this.zoom;
    Object.assign(this.preview.style, { left: `${r.x * s}px`, top: `${r.y * s}px`, width: `${r.w * s}px`, height: `${r.h * s}px` });
    this.preview.hidden = false;
  }

  drawCursor() {
    if (!this.cursor.visible || (this.boxTool() && this.stroke)) { this.cursorEl.hidden = true; return; }
    const s = this.zoom;
    let w, h, left, top;
    if (this.tool === "patch" && this.patch) {
      // The outline of where the copy would land.
      ({ w, h } = this.patch);
      left = this.cursor.x - Math.floor(w / 2);
      top = this.cursor.y - Math.floor(h / 2);
    } else {
      w = h = this.boxTool() ? 1 : this.size;
      left = top = -Math.floor((w - 1) / 2);
      left += this.cursor.x;
      top += this.cursor.y;
    }
    Object.assign(this.cursorEl.style, { left: `${left * s}px`, top: `${top * s}px`, width: `${w * s}px`, height: `${h * s}px` });
    this.cursorEl.hidden = false;
  }

  hideCursor() {
    this.cursor.visible = false;
    this.cursorEl.hidden = true;
  }

  scheduleDraw() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.update();
    });
  }

  update() {
    this.ctx.putImageData(this.image, 0, 0);
    this.png = null;
    const s = this.summary();
    renderMeter(this.meter, {
      fraction: s.fraction,
      budget: this.budget,
      label: "Changed pixels",
      detail: `${s.count.toLocaleString()} of ${(this.w * this.h).toLocaleString()} pixels changed`,
    });
    this.node.dataset.changed = String(s.count);
    this.undoBtn.disabled = !this.undoStack.length;
    this.redoBtn.disabled = !this.redoStack.length;
    this.drawCursor();
    this.onChange(s);
  }

  // ---- output -----------------------------------------------------------------------------
  summary() {
    return io.changedPixels(this.orig, this.image.data, this.w, this.h);
  }

  isChanged() {
    return this.summary().count > 0;
  }

  /** The edited image as a PNG data URL (cached until the next change: drafts and live
   * scoring ask for it often, encoding a large image is not free). */
  toPNG() {
    if (!this.png) this.png = this.canvas.toDataURL("image/png");
    return this.png;
  }

  maskPNG() {
    const c = document.createElement("canvas");
    c.width = this.w;
    c.height = this.h;
    const cx = c.getContext("2d");
    cx.putImageData(new ImageData(io.maskData(this.orig, this.image.data), this.w, this.h), 0, 0);
    return c.toDataURL("image/png");
  }
}
