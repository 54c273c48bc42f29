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

const TIME_FORMATS = { minute: "%H:%M", hour: "%b %d, %H:%M", day: "%b %d" };

// Counts: whole-number ticks only (no 0.5 annotations on a small campaign's axis).
const COUNT_AXIS = { tickMinStep: 1, format: "~s" };

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const CONFIG = {
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 600, gridColor: "#e6e8ec" },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: "bottom" },
  range: { category: ["#2d5bc9", "#6b3fb8", "#1b7a47", "#e0a100", "#b3261e", "#0e8a8a"] },
};

const SPECS = {
  // Buckets of data.throughput_unit (minute, hour or day, from the span of the work), each
  // drawn from its start to its end so the axis spans exactly the buckets sent.
  throughput: (unit) => ({
    mark: { type: "bar", color: "#2d5bc9", stroke: "white", strokeWidth: 0.5, tooltip: { content: "data" } },
    encoding: {
      x: {
        field: "start", type: "temporal", title: `annotations per ${unit}`,
        axis: { labelAngle: 0, format: TIME_FORMATS[unit], labelOverlap: "greedy", labelSeparation: 8, tickCount: unit === "day" ? { interval: "day" } : 6 },
      },
      x2: { field: "end" },
      y: { field: "annotations", type: "quantitative", title: "annotations", axis: COUNT_AXIS },
      y2: { datum: 0 },
    },
  }),
  // One band per label of the label space (unused ones at 0, so the chart keeps its rows as
  // work arrives); bars a fixed thickness in their band, so one label is not one thin strip
  // across a squeezed chart, and counts on whole-number ticks.
  labels: {
    layer: [
      { mark: { type: "bar", color: "#2d5bc9", size: 20, tooltip: true } },
      { mark: { type: "text", align: "left", dx: 4, fontSize: 11, color: "#4a5468" }, encoding: { text: { field: "annotations", type: "quantitative", format: "," } } },
    ],
    encoding: {
      y: { field: "label", type: "nominal", sort: "-x", title: null, scale: { paddingInner: 0.3 } },
      x: { field: "annotations", type: "quantitative", title: "annotations", axis: COUNT_AXIS, scale: { domainMin: 0, nice: true } },
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
        y: { field: "edits", type: "quantitative", title: "edits", axis: COUNT_AXIS },
      },
    },
    resolve: { scale: { y: "independent" } },
  },
  flips: {
    mark: { type: "bar", tooltip: true },
    encoding: {
      x: { field: "modality", type: "nominal", title: null, axis: { labelAngle: 0 } },
      xOffset: { field: "status", sort: STATUS_ORDER },
      y: { field: "edits", type: "quantitative", title: "edits", axis: COUNT_AXIS },
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

function spec(chart, rows, unit) {
  const base = typeof SPECS[chart] === "function" ? SPECS[chart](unit) : SPECS[chart];
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
    full.height = chart === "labels" || chart === "models" ? { step: chart === "models" ? 34 : 32 } : 200;
  }
  return full;
}

function hasData(chart, rows) {
  if (!rows.length) return false;
  if (chart === "models") return rows.some((r) => r.flip_rate != null || r.fooled_rate != null);
  if (chart === "minimality" || chart === "flips") return rows.some((r) => r.edits > 0);
  return true;
}

async function drawChart(chart, rows, unit) {
  const key = JSON.stringify(rows);
  if (last[chart] === key) return;
  last[chart] = key;
  if (views[chart] && views[chart].unit !== unit) {
    // The bucket unit changed (a campaign outgrew minutes): a new axis, so a new view.
    views[chart].view.finalize();
    delete views[chart];
  }
  const section = root.querySelector(`[data-chart="${chart}"]`);
  const el = section.querySelector(".dash-vis");
  const shown = hasData(chart, rows);
  section.querySelector(".dash-empty").hidden = shown;
  el.hidden = !shown;
  section.dataset.rows = String(rows.length);
  if (!shown) return;
  if (!views[chart]) {
    const result = await window.vegaEmbed(el, spec(chart, rows, unit), {
      ast: true,
      expr: expressionInterpreter,
      renderer: "svg",
      actions: { export: true, source: false, compiled: false, editor: false },
      downloadFileName: `campaign-${campaign}-${chart}`,
    });
    views[chart] = { view: result.view, unit };
  } else {
    await views[chart].view.data("rows", rows).runAsync();
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
      cell(r.median_seconds != null && r.median_seconds < 1 ? r.median_seconds.toFixed(2) : num(r.median_seconds, 1), "num"),
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
    open_leases: leaseText(p),
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

// "as of HH:MM:SS": when the figures were computed (the server's snapshot), and whether a
// newer computation is on its way.
function freshness(snap) {
  const at = snap.computed_at ? new Date(snap.computed_at).toLocaleTimeString() : new Date().toLocaleTimeString();
  let text = `Figures as of ${at}`;
  if (snap.stale && snap.refreshing) text += " · refreshing…";
  return text;
}

// Open leases say which task kind they hold (a perturbation lease is no pool slot in flight).
function leaseText(p) {
  const kinds = Object.entries(p.open_leases_by_kind || {}).filter(([, n]) => n > 0);
  if (!kinds.length) return num(p.open_leases);
  return `${num(p.open_leases)} (${kinds.map(([k, n]) => `${num(n)} ${k}`).join(" · ")})`;
}

let lastStudies = "";
function drawStudies(rows) {
  const key = JSON.stringify(rows);
  if (key === lastStudies) return;
  lastStudies = key;
  document.getElementById("dash-perturbation").hidden = rows.length === 0;
  document.getElementById("dash-perturbation-body").replaceChildren(...rows.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.study = String(s.id);
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = s.url;
    link.textContent = s.name;
    name.append(link);
    const perLevel = s.levels.map((level, i) => `${level}: ${s.labels_by_level[i]}`).join(" · ");
    tr.append(name, cell(`${s.perturbation} of ${s.modality}`), cell(s.status), cell(num(s.annotators), "num"), cell(num(s.labels), "num"), cell(perLevel, "small"));
    return tr;
  }));
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  const status = document.getElementById("dash-updated");
  try {
    const data = await api("GET", root.dataset.api);
    const snap = data.snapshot || {};
    root.dataset.state = snap.state || "ready";
    drawRounds(campaign, data.rounds, refresh);
    if (snap.state === "computing") {
      // A big campaign's first figures: a worker computes them (docs/dashboard.md Freshness).
      status.textContent = "Computing the figures… (a big campaign: this takes a few seconds)";
    } else {
      drawProgress(data);
      drawTable(data.annotators);
      drawStudies(data.perturbation || []);
      for (const chart of Object.keys(SPECS)) await drawChart(chart, data[chart], chart === "throughput" ? data.throughput_unit : null);
      status.textContent = freshness(snap);
      root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
    }
  } catch (err) {
    status.textContent = `Could not refresh: ${err.message}`;
  }
  timer = setTimeout(refresh, document.hidden ? POLL_MS * 6 : POLL_MS);
}

document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
wireRoundForm(campaign, refresh);
refresh();
