// Pixel arithmetic for the image editor, on RGBA byte arrays (ImageData.data layout).
// docs/architecture.md "Counterfactual protocol": a pixel counts as changed when any RGB channel differs (threshold 0; PNG is
// lossless), so these figures equal the server's on the uploaded PNG.

/** Number of pixels whose RGB differs, and the bounding box of the change (or null). */
export function changedPixels(orig, cur, width, height) {
  let count = 0;
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0, p = 0; y < height; y++) {
    for (let x = 0; x < width; x++, p += 4) {
      if (orig[p] !== cur[p] || orig[p + 1] !== cur[p + 1] || orig[p + 2] !== cur[p + 2]) {
        count++;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  const bbox = count ? { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 } : null;
  return { count, fraction: count / (width * height), bbox };
}

const key = (r, g, b) => (r << 16) | (g << 8) | b;
const unkey = (k) => [(k >> 16) & 255, (k >> 8) & 255, k & 255];

/** Colours by pixel count, most common first: [{rgb: [r,g,b], count}]. */
export function colourCounts(data) {
  const counts = new Map();
  for (let p = 0; p < data.length; p += 4) {
    const k = key(data[p], data[p + 1], data[p + 2]);
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([k, c]) => ({ rgb: unkey(k), count: c }));
}

/** The background: the image's most common colour. */
export function mostCommonColour(data) {
  const c = colourCounts(data);
  return c.length ? c[0].rgb : [255, 255, 255];
}

/** The image's own colours for the palette: the most common ones, skipping anti-aliasing
 * shades (near a colour already chosen, or a blend of the background and one), so a red
 * triangle on white gives one red rather than five pinks. */
export function paletteOf(data, max = 8) {
  const out = [];
  const total = data.length / 4;
  const dist = (a, b) => Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) + Math.abs(a[2] - b[2]);
  const onBlend = (c, bg, s) => {
    // Distance from c to the segment bg→s in RGB.
    const d = [s[0] - bg[0], s[1] - bg[1], s[2] - bg[2]];
    const len2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    if (!len2) return false;
    const t = ((c[0] - bg[0]) * d[0] + (c[1] - bg[1]) * d[1] + (c[2] - bg[2]) * d[2]) / len2;
    if (t <= 0 || t >= 1) return false;
    const p = [bg[0] + t * d[0], bg[1] + t * d[1], bg[2] + t * d[2]];
    return Math.hypot(c[0] - p[0], c[1] - p[1], c[2] - p[2]) < 24;
  };
  for (const { rgb, count } of colourCounts(data)) {
    if (out.length >= max) break;
    if (out.length && count < total * 0.003) break;
    if (out.some((o) => dist(o, rgb) < 60)) continue;
    if (out.length >= 2 && out.slice(1).some((s) => onBlend(rgb, out[0], s))) continue;
    out.push(rgb);
  }
  return out;
}

export function hexOf(rgb) {
  return `#${rgb.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

export function rgbOf(hex) {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex.trim());
  if (!m) return [0, 0, 0];
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Pixels covered by a brush of `size` centred on (cx, cy): a square for sizes 1–2, a disc above. */
export function brushPixels(cx, cy, size, width, height) {
  const pts = [];
  const lo = -Math.floor((size - 1) / 2);
  const hi = lo + size - 1;
  const mid = (lo + hi) / 2;
  const r2 = (size / 2) * (size / 2);
  for (let dy = lo; dy <= hi; dy++) {
    for (let dx = lo; dx <= hi; dx++) {
      if (size > 2 && (dx - mid) ** 2 + (dy - mid) ** 2 > r2) continue;
      const x = cx + dx;
      const y = cy + dy;
      if (x >= 0 && y >= 0 && x < width && y < height) pts.push(x, y);
    }
  }
  return pts;
}

/** Stamp the brush along the segment (x0,y0)→(x1,y1) so fast strokes leave no gaps.
 * `source` (optional) gives per-pixel colours instead of `rgb` (the restore tool). */
export function strokeSegment(data, width, height, x0, y0, x1, y1, size, rgb, source) {
  const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
  for (let s = 0; s <= steps; s++) {
    const x = Math.round(x0 + ((x1 - x0) * s) / steps);
    const y = Math.round(y0 + ((y1 - y0) * s) / steps);
    const pts = brushPixels(x, y, size, width, height);
    for (let i = 0; i < pts.length; i += 2) setPixel(data, width, pts[i], pts[i + 1], rgb, source);
  }
}

export function setPixel(data, width, x, y, rgb, source) {
  const p = (y * width + x) * 4;
  if (source) {
    data[p] = source[p]; data[p + 1] = source[p + 1]; data[p + 2] = source[p + 2]; data[p + 3] = source[p + 3];
  } else {
    data[p] = rgb[0]; data[p + 1] = rgb[1]; data[p + 2] = rgb[2]; data[p + 3] = 255;
  }
}

/** Normalise two corners into an inclusive pixel rectangle clipped to the image. */
export function rectFromCorners(ax, ay, bx, by, width, height) {
  const x0 = Math.max(0, Math.min(ax, bx));
  const y0 = Math.max(0, Math.min(ay, by));
  const x1 = Math.min(width - 1, Math.max(ax, bx));
  const y1 = Math.min(height - 1, Math.max(ay, by));
  return { x: x0, y: y0, w: Math.max(0, x1 - x0 + 1), h: Math.max(0, y1 - y0 + 1) };
}

export function fillRect(data, width, rect, rgb, source) {
  for (let y = rect.y; y < rect.y + rect.h; y++) {
    for (let x = rect.x; x < rect.x + rect.w; x++) setPixel(data, width, x, y, rgb, source);
  }
}

/** The change mask as RGBA: white where a pixel changed, black elsewhere (opaque). */
export function maskData(orig, cur) {
  const out = new Uint8ClampedArray(orig.length);
  for (let p = 0; p < orig.length; p += 4) {
    const changed = orig[p] !== cur[p] || orig[p + 1] !== cur[p + 1] || orig[p + 2] !== cur[p + 2];
    const v = changed ? 255 : 0;
    out[p] = v; out[p + 1] = v; out[p + 2] = v; out[p + 3] = 255;
  }
  return out;
}

/** A copy of the pixels inside `rect`: {w, h, data} (RGBA). */
export function copyRect(data, width, rect) {
  const out = new Uint8ClampedArray(rect.w * rect.h * 4);
  for (let y = 0; y < rect.h; y++) {
    const from = ((rect.y + y) * width + rect.x) * 4;
    out.set(data.subarray(from, from + rect.w * 4), y * rect.w * 4);
  }
  return { w: rect.w, h: rect.h, data: out };
}

/** Paste `patch` with its top-left corner at (x0, y0), clipped to the image. */
export function pastePatch(data, width, height, patch, x0, y0) {
  for (let y = 0; y < patch.h; y++) {
    const ty = y0 + y;
    if (ty < 0 || ty >= height) continue;
    for (let x = 0; x < patch.w; x++) {
      const tx = x0 + x;
      if (tx < 0 || tx >= width) continue;
      const p = (ty * width + tx) * 4;
      const q = (y * patch.w + x) * 4;
      data[p] = patch.data[q]; data[p + 1] = patch.data[q + 1]; data[p + 2] = patch.data[q + 2]; data[p + 3] = 255;
    }
  }
}

/** The outline of the changed region of `mask` (maskData's output: R = 255 where changed)
 * as segments on the pixel grid, [x0, y0, x1, y1] with x0 === x1 or y0 === y1: every edge
 * between a changed pixel and an unchanged one (or the image border), runs merged. */
export function outlineSegments(mask, width, height) {
  const on = (x, y) => x >= 0 && y >= 0 && x < width && y < height && mask[(y * width + x) * 4] === 255;
  const segs = [];
  // Horizontal edges on grid line y, between rows y - 1 and y.
  for (let y = 0; y <= height; y++) {
    let start = -1;
    for (let x = 0; x <= width; x++) {
      const edge = x < width && on(x, y - 1) !== on(x, y);
      if (edge && start < 0) start = x;
      if (!edge && start >= 0) { segs.push([start, y, x, y]); start = -1; }
    }
  }
  // Vertical edges on grid line x, between columns x - 1 and x.
  for (let x = 0; x <= width; x++) {
    let start = -1;
    for (let y = 0; y <= height; y++) {
      const edge = y < height && on(x - 1, y) !== on(x, y);
      if (edge && start < 0) start = y;
      if (!edge && start >= 0) { segs.push([x, start, x, y]); start = -1; }
    }
  }
  return segs;
}
