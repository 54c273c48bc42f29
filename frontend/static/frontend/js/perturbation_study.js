// A perturbation study's page: humans' and models' accuracy by level in one Vega-Lite chart
// (points with bootstrap intervals, the chance-floored logistic fits, chance and the halfway
// levels marked), the points of chance and the human - model gap in tables, and the minimal
// perturbation to chance per model beside the human edit sizes. It polls the study (its build
// job, the humans' labels, the scoring and minimal-perturbation jobs) and redraws the curves
// when anything they read changed, as the dashboard does: no reload. Charts run through
// vega-interpreter (`ast: true`) under the page's CSP.
import { api } from "./api.js";
import { expressionInterpreter } from "../vendor/vega-interpreter/vega-interpreter.js";
import { minimalSpec } from "./minimal_chart.js";

const root = document.getElementById("study");
const campaign = root.dataset.campaign;
const study = root.dataset.study;
const chartEl = document.getElementById("study-chart");
const section = root.querySelector('[data-chart="curves"]');
const errorBox = document.getElementById("study-error");
const scoreStatus = document.getElementById("study-score-status");
const base = `campaigns/${campaign}/perturbation-studies/${study}/`;
const POLL_MS = Number(root.dataset.pollMs) || 2000;
const buildEl = document.getElementById("study-build");
const humansEl = document.getElementById("study-humans");
const statusEl = root.querySelector(".study-status");
const minimalSection = root.querySelector('[data-chart="minimal"]');
const minimalCharts = document.getElementById("minimal-charts");
const minimalModel = document.getElementById("minimal-model");
const minimalStatus = document.getElementById("minimal-status");
const EMBED = { ast: true, expr: expressionInterpreter, renderer: "svg", actions: { export: true, source: false, compiled: false, editor: false } };
let timer = null;
let lastCurves = "";
let lastMinimal = "";
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const COLORS = ["#2d5bc9", "#b3261e", "#1b7a47", "#e0a100", "#6b3fb8", "#0e8a8a"];

function pct(x) { return x == null ? "–" : `${(100 * x).toFixed(1)} %`; }
// Three significant digits without trailing zeros: 0.1 not 0.100, 0.282 as it is.
function num(x) { return x == null ? "–" : String(Number(Number(x).toPrecision(3))); }

function series(body) {
  return [{ name: "humans", curve: body.humans }, ...body.models.map((m) => ({ name: m.name, curve: m }))];
}

function spec(body) {
  const all = series(body);
  const names = all.map((s) => s.name);
  const points = [], fits = [], halves = [];
  for (const s of all) {
    for (const p of s.curve.points) if (p.accuracy != null) points.push({ who: s.name, level: p.level, accuracy: p.accuracy, low: p.low, high: p.high, n: p.n });
    for (const f of s.curve.fit_curve || []) fits.push({ who: s.name, level: f.level, accuracy: f.accuracy });
    if (s.curve.halfway_on_ladder) halves.push({ who: s.name, level: s.curve.halfway });
  }
  const color = { field: "who", type: "nominal", title: null, scale: { domain: names, range: COLORS } };
  // Ticks at the ladder's rungs (the levels people and models saw), not at round numbers.
  const x = { field: "level", type: "quantitative", title: `level (${body.perturbation} of ${body.modality})`, axis: { values: body.levels, labelOverlap: "greedy" } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: 560,
    height: 300,
    config: { font: FONT, view: { stroke: null }, legend: { orient: "bottom" } },
    layer: [
      { data: { values: fits }, mark: { type: "line", strokeWidth: 2 }, encoding: { x, y: { field: "accuracy", type: "quantitative", title: "accuracy", scale: { domain: [0, 1] } }, color } },
      { data: { values: points }, mark: { type: "rule" }, encoding: { x, y: { field: "low", type: "quantitative" }, y2: { field: "high" }, color } },
      { data: { values: points }, mark: { type: "point", filled: true, size: 60, tooltip: true }, encoding: { x, y: { field: "accuracy", type: "quantitative" }, color } },
      { data: { values: [{ chance: body.chance }] }, mark: { type: "rule", strokeDash: [6, 4], color: "#555" }, encoding: { y: { field: "chance", type: "quantitative" } } },
      ...(halves.length ? [{ data: { values: halves }, mark: { type: "rule", strokeDash: [2, 3], strokeWidth: 2 }, encoding: { x, color } }] : []),
    ],
  };
}

// A table row: the first cell names the row, the others are figures (right-aligned, as the
// headers are).
function row(cells, tag = "td") {
  const tr = document.createElement("tr");
  cells.forEach((c, i) => {
    const td = document.createElement(tag);
    td.textContent = c;
    if (i > 0) td.className = "num";
    tr.append(td);
  });
  return tr;
}

function tables(body) {
  const tbody = document.querySelector("#study-halfway tbody");
  tbody.replaceChildren(...series(body).map((s) => {
    const tr = row([s.name, String(s.curve.observations), pct(s.curve.points[0].accuracy), s.curve.halfway_on_ladder ? num(s.curve.halfway) : "beyond the ladder", num(s.curve.empirical_halfway)]);
    tr.dataset.who = s.name;
    return tr;
  }));
  const head = document.querySelector("#study-gap thead tr");
  head.replaceChildren(...["Level", "Humans", ...body.models.flatMap((m) => [m.name, `gap to ${m.name}`])].map((t, i) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = t; if (i > 0) th.className = "num"; return th; }));
  const gbody = document.querySelector("#study-gap tbody");
  gbody.replaceChildren(...body.levels.map((level, i) => {
    const cells = [num(level), pct(body.humans.points[i].accuracy)];
    for (const m of body.models) {
      const g = body.gap.find((x) => x.level_index === i && x.model === m.id);
      cells.push(pct(m.points[i].accuracy), g && g.gap != null ? `${(100 * g.gap).toFixed(1)} pts` : "–");
    }
    return row(cells);
  }));
}

function showError(err) {
  errorBox.textContent = err.message;
  errorBox.hidden = false;
}

// Scoring jobs count items; an analysis job counts units of its methods (a share, not items).
const modelNames = new Map();

function jobText(j, items = true) {
  const part = !j.total ? "" : items ? ` (${j.done} of ${j.total} items)` : ` (${Math.round((100 * j.done) / j.total)} %)`;
  return `${modelNames.get(j.model_version) || j.model || "model " + j.model_version}: ${j.status}${part}`;
}

// The scoring jobs in one line: a count once they all succeeded, else the ones not done.
function scoringText(jobs) {
  const done = jobs.filter((j) => j.status === "succeeded").length;
  if (done === jobs.length) return `Scored by ${done} model${done === 1 ? "" : "s"}: every job succeeded (${jobs[0].total} items each).`;
  return `Scoring: ${done} of ${jobs.length} jobs done; ${jobs.filter((j) => j.status !== "succeeded").map((j) => jobText(j)).join("; ")}.`;
}

const running = (j) => j && (j.status === "pending" || j.status === "running");

async function drawCurves() {
  const body = await api("GET", `${base}curves/`);
  const shown = body.humans.observations > 0 || body.models.some((m) => m.observations > 0);
  section.querySelector(".dash-empty").hidden = shown;
  chartEl.hidden = !shown;
  tables(body);
  for (const m of body.models) modelNames.set(m.id, m.name);
  const models = body.models.map((m) => String(m.id)).join(",");
  if (minimalModel.dataset.models !== models) {
    minimalModel.replaceChildren(...body.models.map((m) => new Option(m.name, String(m.id))));
    minimalModel.dataset.models = models;
  }
  if (shown) {
    await window.vegaEmbed(chartEl, spec(body), { ...EMBED, downloadFileName: `study-${study}-curves` });
    section.dataset.rendered = "1";
  }
  section.dataset.series = String(series(body).length);
  section.dataset.scores = String(body.models.reduce((n, m) => n + m.observations, 0));
  section.dataset.labels = String(body.humans.observations);
}

async function drawMinimal() {
  const { results } = await api("GET", `${base}minimal/`);
  document.getElementById("minimal-empty").hidden = results.length > 0;
  minimalCharts.replaceChildren();
  for (const d of results) {
    const figure = document.createElement("figure");
    figure.className = "report-chart";
    figure.dataset.model = String(d.model);
    const caption = document.createElement("figcaption");
    caption.className = "small";
    const median = d.median_level == null ? "–" : num(d.median_level);
    const link = document.createElement("a");
    link.href = d.report;
    link.textContent = "report";
    caption.append(`${d.model_name}: median minimal level ${median}, ${num(d.mean_calls)} model calls per example · `, link);
    const vis = document.createElement("div");
    figure.append(caption, vis);
    minimalCharts.append(figure);
    await window.vegaEmbed(vis, { $schema: "https://vega.github.io/schema/vega-lite/v6.json", config: { font: FONT, view: { stroke: null } }, ...minimalSpec(d, { width: 260 }) }, { ...EMBED, downloadFileName: `study-${study}-minimal-${d.model}` });
  }
  minimalSection.dataset.rendered = String(results.length);
}

async function refresh() {
  clearTimeout(timer);
  try {
    const detail = await api("GET", base);
    statusEl.textContent = detail.status;
    statusEl.className = `study-status status-${detail.status}`;
    root.dataset.status = detail.status;
    const build = detail.job;
    buildEl.textContent = detail.status === "building" && build
      ? `Building the perturbed items: ${build.done} of ${build.total} examples.`
      : `Items per level: ${detail.items_by_level.join(" · ")}.`;
    const h = detail.humans;
    humansEl.textContent = `Human labels: ${h.labels} from ${h.annotators} annotator${h.annotators === 1 ? "" : "s"} · per level ${h.labels_by_level.join(" · ")}.`;
    document.getElementById("study-score").disabled = detail.status !== "ready" || detail.jobs.score.some(running);
    if (detail.jobs.score.length) scoreStatus.textContent = scoringText(detail.jobs.score);
    minimalStatus.textContent = detail.jobs.minimal.map((j) => jobText(j, false)).join("; ");
    root.dataset.jobsRunning = String(detail.jobs.score.some(running) || detail.jobs.minimal.some(running));
    // The curves read labels and the Score cache: redraw when either may have moved.
    const curvesKey = JSON.stringify([h.labels_by_level, detail.jobs.score.map((j) => [j.id, j.status, j.done])]);
    if (curvesKey !== lastCurves) {
      await drawCurves();
      lastCurves = curvesKey;
    }
    const minimalKey = JSON.stringify(detail.jobs.minimal.map((j) => [j.id, j.status]));
    if (minimalKey !== lastMinimal) {
      await drawMinimal();
      lastMinimal = minimalKey;
    }
    errorBox.hidden = true;
  } catch (err) {
    showError(err);
  } finally {
    timer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
  }
}

document.getElementById("study-score").addEventListener("click", async () => {
  errorBox.hidden = true;
  try {
    const r = await api("POST", `${base}score/`);
    scoreStatus.textContent = `${r.jobs.length} scoring job(s) started.`;
    refresh();
  } catch (err) {
    showError(err);
  }
});

document.getElementById("minimal-start").addEventListener("click", async () => {
  errorBox.hidden = true;
  if (!minimalModel.value) return showError(new Error("The campaign has no model to search with."));
  try {
    await api("POST", `campaigns/${campaign}/analyses/`, { model: Number(minimalModel.value), methods: ["perturbation_minimal"], params: { study: Number(study), refine: 3 } });
    minimalStatus.textContent = "Search started.";
    refresh();
  } catch (err) {
    showError(err);
  }
});

refresh();
