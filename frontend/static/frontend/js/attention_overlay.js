// A model's attention drawn over the pair viewer's images (docs/managing.md "Pair viewer",
// docs/analysis.md "Attention maps"): for a cross-attention model, the weight each question
// token puts on each image region, as a heatmap over the region grid of the original and of
// the edit. Weights come from /api/v1/campaigns/<c>/edits/<e>/attention/?model=<id>
// (models_bridge.services.attention.attention_map describes each side).
import { api } from "./api.js";
import { el, clear } from "./util.js";

const HEAT_RGB = [255, 110, 0];
const MAX_ALPHA = 0.75;

/** The region weights one side draws: `token` "all" (mean over tokens) or an index,
 * `head` "all" (mean over heads) or an index. Null when that token is not on this side. */
export function regionWeights(map, token, head) {
  if (token === "all") {
    if (head === "all") return map.average;
    const rows = map.per_head[head] || [];
    if (!rows.length) return map.average.map(() => 0);
    return rows[0].map((_, r) => rows.reduce((s, row) => s + row[r], 0) / rows.length);
  }
  const rows = head === "all" ? map.mean : map.per_head[head];
  return rows && rows[token] ? rows[token] : null;
}

function strongest(weights, cols) {
  let best = 0;
  for (let r = 1; r < weights.length; r++) if (weights[r] > weights[best]) best = r;
  return { row: Math.floor(best / cols), col: best % cols, weight: weights[best] };
}

/** A canvas layer the size of the stage: region r tinted by weight / the side's max weight. */
function heatLayer(weights, grid, W, H, label) {
  const [rows, cols] = grid;
  const layer = el("canvas", { width: W, height: H, class: "attention-layer", role: "img", "aria-label": label });
  const small = document.createElement("canvas");
  small.width = cols;
  small.height = rows;
  const img = new ImageData(cols, rows);
  const max = Math.max(...weights, 1e-12);
  weights.forEach((w, r) => {
    img.data.set([...HEAT_RGB, Math.round(255 * MAX_ALPHA * (w / max))], r * 4);
  });
  small.getContext("2d").putImageData(img, 0, 0);
  const ctx = layer.getContext("2d");
  ctx.imageSmoothingEnabled = false; // one flat cell per region: the model sees no finer
  ctx.drawImage(small, 0, 0, W, H);
  return layer;
}

function tokenOptions(original, edited) {
  const n = Math.max(original.tokens.length, edited.tokens.length);
  const out = [["all", "all words (mean)"]];
  for (let k = 0; k < n; k++) {
    const a = original.tokens[k];
    const b = edited.tokens[k];
    out.push([String(k), a === b || b === undefined ? `“${a}”` : a === undefined ? `(edit) “${b}”` : `“${a}” / edit “${b}”`]);
  }
  return out;
}

function select(name, label, choices) {
  const s = el("select", { name, "aria-label": label },
    choices.map(([v, text]) => el("option", { value: v }, text)));
  return { select: s, wrap: el("label", { class: "attention-field" }, el("span", { class: "muted small" }, label), s) };
}

/** The attention controls for an image modality's two stages. `sides()` returns
 * {original, edit} stages ({stage, W, H}) once the images are drawn, or null before. */
export function attentionPanel({ campaign, pair, models, sides, host }) {
  const usable = models.filter((m) => m.attention);
  if (!usable.length) return null;
  const cache = new Map();
  const toggle = el("input", { type: "checkbox", name: "attention", class: "attention-toggle" });
  const modelSel = select("attention-model", "Model", usable.map((m) => [String(m.id), `${m.name} v${m.version}`]));
  const fields = el("span", { class: "attention-fields", hidden: true });
  const status = el("p", { class: "muted small attention-status", "aria-live": "polite" });
  const panel = el("div", { class: "attention-controls" },
    el("label", { class: "attention-switch" }, toggle, " Show the model’s attention over the image"),
    fields, status);
  let tokenSel = null;
  let headSel = null;

  function removeLayers() {
    for (const layer of host.querySelectorAll(".attention-layer")) layer.remove();
  }

  function draw(data) {
    const st = sides();
    if (!st) { status.textContent = "The images are still loading."; return; }
    removeLayers();
    const token = tokenSel.select.value === "all" ? "all" : Number(tokenSel.select.value);
    const head = headSel.select.value === "all" ? "all" : Number(headSel.select.value);
    const notes = [];
    for (const [side, map, stage] of [["original", data.original, st.original], ["edit", data.edited, st.edit]]) {
      const w = regionWeights(map, token, head);
      if (!w) { notes.push(`the ${side} has no word ${token + 1}`); continue; }
      const top = strongest(w, map.grid[1]);
      const label = `${data.model} attention on the ${side}, ${map.grid[0]}×${map.grid[1]} regions; strongest at row ${top.row + 1}, column ${top.col + 1} (${(100 * top.weight).toFixed(1)}%)`;
      stage.stage.append(heatLayer(w, map.grid, stage.W, stage.H, label));
    }
    host.dataset.attention = "drawn";
    status.textContent = notes.length ? `Not drawn: ${notes.join("; ")}.` : `Darker orange: more of the attention (each side scaled to its own strongest region).`;
  }

  async function load() {
    const id = modelSel.select.value;
    if (!cache.has(id)) {
      status.textContent = "Loading the attention…";
      host.dataset.attention = "loading";
      cache.set(id, api("GET", `campaigns/${campaign}/edits/${pair.id}/attention/?model=${encodeURIComponent(id)}`));
    }
    let data;
    try {
      data = await cache.get(id);
    } catch (err) {
      cache.delete(id);
      host.dataset.attention = "failed";
      status.textContent = `The attention could not be loaded: ${err.message}`;
      return;
    }
    const prevToken = tokenSel ? tokenSel.select.value : "all";
    const prevHead = headSel ? headSel.select.value : "all";
    tokenSel = select("attention-token", "Word", tokenOptions(data.original, data.edited));
    const heads = [["all", "all heads (mean)"]];
    for (let h = 0; h < data.original.heads; h++) heads.push([String(h), `head ${h + 1}`]);
    headSel = select("attention-head", "Head", heads);
    if ([...tokenSel.select.options].some((o) => o.value === prevToken)) tokenSel.select.value = prevToken;
    if ([...headSel.select.options].some((o) => o.value === prevHead)) headSel.select.value = prevHead;
    tokenSel.select.addEventListener("change", () => draw(data));
    headSel.select.addEventListener("change", () => draw(data));
    clear(fields).append(usable.length > 1 ? modelSel.wrap : "", tokenSel.wrap, data.original.heads > 1 ? headSel.wrap : "");
    draw(data);
  }

  toggle.addEventListener("change", () => {
    fields.hidden = !toggle.checked;
    if (toggle.checked) load();
    else { removeLayers(); host.dataset.attention = "off"; status.textContent = ""; }
  });
  modelSel.select.addEventListener("change", () => { if (toggle.checked) load(); });
  return panel;
}
