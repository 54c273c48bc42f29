// The campaign dashboard: polls the dashboard API and redraws only what changed (no reload,
// no flicker). Charts are Vega-Lite through vega-embed, evaluated by vega-interpreter
// (`ast: true`), so they run under the page's CSP without eval.
import { api } from "./api.js";
import { drawRounds, wireRoundForm } from "./dashboard_rounds.js";
import { expressionInterpreter } from "../vendor/vega-interpreter/vega-interpreter.js";

const root = document.getElementById("dashboard");
const campaign = root.dataset.campaign;
const POLL_MS = Number(root.dataset.pollMs) || 5000;
const STATUS_ORDER = ["claimed", "verified", "disputed", "pending"];
const STATUS_COLORS = ["#8a94a6", "#1b7a47", "#b3261e", "#e0a100"];

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const CONFIG = {
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 600, gridColor: "#e6e8ec" },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: "bottom" },
  range: { category: ["#2d5bc9", "#6b3fb8", "#1b7a47", "#e0a100", "#b3261e", "#0e8a8a"] },
};

const SPECS = {
  throughput: {
    mark: { type: "bar", color: "#2d5bc9", tooltip: true },
    encoding: {
      x: { field: "hour", type: "temporal", timeUnit: "yearmonthdatehours", title: null, axis: { labelAngle: 0, format: "%b %d, %H:%M", labelOverlap: "greedy", tickCount: 6 } },
      y: { field: "annotations", type: "quantitative", title: "annotations" },
    },
  },
  labels: {
    mark: { type: "bar", color: "#2d5bc9", tooltip: true },
    encoding: {
      y: { field: "label", type: "nominal", sort: "-x", title: null },
      x: { field: "annotations", type: "quantitative", title: "annotations" },
    },
  },
  minimality: {
    facet: { row: { field: "modality", type: "nominal", title: null, header: { labelAngle: 0, labelAlign: "left", labelFontWeight: 600 } } },
    spec: {
      width: 400,
      height: 120,
      mark: { type: "bar", color: "#6b3fb8", tooltip: true },
      encoding: {
        x: { field: "bin_start", type: "quantitative", bin: { binned: true, step: 0.05 }, title: "edit size (share changed)", axis: { format: ".0%" } },
        x2: { field: "bin_end" },
        y: { field: "edits", type: "quantitative", title: "edits" },
      },
    },
    resolve: { scale: { y: "independent" } },
  },
  flips: {
    mark: { type: "bar", tooltip: true },
    encoding: {
      x: { field: "modality", type: "nominal", title: null, axis: { labelAngle: 0 } },
      xOffset: { field: "status", sort: STATUS_ORDER },
      y: { field: "edits", type: "quantitative", title: "edits" },
      color: { field: "status", type: "nominal", title: null, scale: { domain: STATUS_ORDER, range: STATUS_COLORS } },
    },
  },
  models: {
    transform: [
      { fold: ["flip_rate", "fooled_rate"], as: ["rate", "value"] },
      { filter: "datum.value != null" },
      { calculate: "datum.rate === 'flip_rate' ? 'flip rate' : 'fooled rate'", as: "rate" },
    ],
    mark: { type: "bar", tooltip: true },
    encoding: {
      y: { field: "model", type: "nominal", title: null },
      yOffset: { field: "rate" },
      x: { field: "value", type: "quantitative", title: "share of scored edits", scale: { domain: [0, 1] }, axis: { format: ".0%" } },
      color: { field: "rate", type: "nominal", title: null, scale: { range: ["#2d5bc9", "#b3261e"] } },
    },
  },
};

const views = {};
const last = {};

function spec(chart, rows) {
  const base = SPECS[chart];
  const full = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    // Named, so later polls replace the values in place (view.data) instead of re-embedding.
    data: { name: "rows", values: rows },
    config: CONFIG,
    background: "white",
    ...base,
  };
  if (!base.facet) {
    full.width = "container";
    full.height = chart === "labels" || chart === "models" ? { step: chart === "models" ? 34 : 30 } : 200;
  }
  return full;
}

function hasData(chart, rows) {
  if (!rows.length) return false;
  if (chart === "models") return rows.some((r) => r.flip_rate != null || r.fooled_rate != null);
  if (chart === "minimality" || chart === "flips") return rows.some((r) => r.edits > 0);
  return true;
}

async function drawChart(chart, rows) {
  const key = JSON.stringify(rows);
  if (last[chart] === key) return;
  last[chart] = key;
  const section = root.querySelector(`[data-chart="${chart}"]`);
  const el = section.querySelector(".dash-vis");
  const shown = hasData(chart, rows);
  section.querySelector(".dash-empty").hidden = shown;
  el.hidden = !shown;
  section.dataset.rows = String(rows.length);
  if (!shown) return;
  if (!views[chart]) {
    const result = await window.vegaEmbed(el, spec(chart, rows), {
      ast: true,
      expr: expressionInterpreter,
      renderer: "svg",
      actions: { export: true, source: false, compiled: false, editor: false },
      downloadFileName: `campaign-${campaign}-${chart}`,
    });
    views[chart] = result.view;
  } else {
    await views[chart].data("rows", rows).runAsync();
  }
  section.dataset.rendered = "1";
}

const pct = (x) => (x == null ? "–" : `${Math.round(x * 100)}%`);
const num = (x, digits = 0) => (x == null ? "–" : Number(x).toLocaleString(undefined, { maximumFractionDigits: digits }));

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function drawTable(rows) {
  const key = JSON.stringify(rows);
  if (last.annotators === key) return;
  last.annotators = key;
  const body = document.getElementById("dash-annotators");
  const trs = rows.map((r) => {
    const tr = document.createElement("tr");
    tr.append(
      cell(r.annotator),
      cell(num(r.done), "num"),
      cell(num(r.median_seconds, 1), "num"),
      cell(r.gold_answered ? `${pct(r.gold_accuracy)} (${r.gold_answered})` : "–", "num"),
      cell(pct(r.agreement), "num"),
      cell(num(r.edits_submitted), "num"),
      cell(num(r.edits_verified), "num"),
      cell(num(r.edits_disputed), "num"),
      cell(num(r.model_fooling_edits), "num"),
    );
    return tr;
  });
  if (!trs.length) {
    const tr = document.createElement("tr");
    const td = cell("Nobody has joined as an annotator yet.", "muted");
    td.colSpan = 9;
    tr.append(td);
    trs.push(tr);
  }
  body.replaceChildren(...trs);
}

function drawProgress(data) {
  const p = data.progress;
  const percent = Math.round((p.fraction || 0) * 1000) / 10;
  const bar = root.querySelector(".dash-bar");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.querySelector(".dash-bar-fill").style.width = `${percent}%`;
  const counts = {
    annotations: `${num(p.annotations)} / ${num(p.target_annotations)} (${percent}%)`,
    complete: `${num(p.complete)} / ${num(p.examples)}`,
    open_leases: num(p.open_leases),
    edits: num(p.edits),
    edits_verified: num(p.edits_verified),
    edits_disputed: num(p.edits_disputed),
    scores_pending: num(p.scores_pending),
    alpha: data.agreement.krippendorff_alpha_nominal == null ? "–" : data.agreement.krippendorff_alpha_nominal.toFixed(3),
  };
  for (const [k, v] of Object.entries(counts)) {
    const dd = root.querySelector(`[data-count="${k}"]`);
    if (dd.textContent !== v) dd.textContent = v;
  }
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  const status = document.getElementById("dash-updated");
  try {
    const data = await api("GET", root.dataset.api);
    drawProgress(data);
    drawTable(data.annotators);
    drawRounds(campaign, data.rounds, refresh);
    for (const chart of Object.keys(SPECS)) await drawChart(chart, data[chart]);
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
  } catch (err) {
    status.textContent = `Could not refresh: ${err.message}`;
  }
  timer = setTimeout(refresh, document.hidden ? POLL_MS * 6 : POLL_MS);
}

document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
wireRoundForm(campaign, refresh);
refresh();
