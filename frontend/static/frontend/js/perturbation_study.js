// A perturbation study's page: humans' and models' accuracy by level in one Vega-Lite chart
// (points with bootstrap intervals, the chance-floored logistic fits, chance and the halfway
// levels marked), the points of chance and the human - model gap in tables. Charts run through
// vega-interpreter (`ast: true`) under the page's CSP.
import { api } from "./api.js";
import { expressionInterpreter } from "../vendor/vega-interpreter/vega-interpreter.js";

const root = document.getElementById("study");
const campaign = root.dataset.campaign;
const study = root.dataset.study;
const chartEl = document.getElementById("study-chart");
const section = root.querySelector('[data-chart="curves"]');
const errorBox = document.getElementById("study-error");
const scoreStatus = document.getElementById("study-score-status");
const base = `campaigns/${campaign}/perturbation-studies/${study}/`;
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const COLORS = ["#2d5bc9", "#b3261e", "#1b7a47", "#e0a100", "#6b3fb8", "#0e8a8a"];

function pct(x) { return x == null ? "–" : `${(100 * x).toFixed(1)} %`; }
function num(x) { return x == null ? "–" : Number(x).toPrecision(3); }

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
  const x = { field: "level", type: "quantitative", title: `level (${body.perturbation} of ${body.modality})` };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    width: 560,
    height: 300,
    config: { font: FONT, view: { stroke: null }, legend: { orient: "bottom" } },
    layer: [
      { data: { values: fits }, mark: { type: "line", strokeWidth: 2 }, encoding: { x, y: { field: "accuracy", type: "quantitative", title: "accuracy", scale: { domain: [0, 1] } }, color } },
      { data: { values: points }, mark: { type: "rule" }, encoding: { x, y: { field: "low", type: "quantitative" }, y2: { field: "high" }, color } },
      { data: { values: points }, mark: { type: "point", filled: true, size: 60, tooltip: true }, encoding: { x, y: { field: "accuracy", type: "quantitative" }, color } },
      { data: { values: [{ chance: body.chance }] }, mark: { type: "rule", strokeDash: [6, 4], color: "#555" }, encoding: { y: { field: "chance", type: "quantitative" } } },
      { data: { values: halves }, mark: { type: "rule", strokeDash: [2, 3], strokeWidth: 2 }, encoding: { x, color } },
    ],
  };
}

function row(cells, tag = "td") {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement(tag);
    td.textContent = c;
    tr.append(td);
  }
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
  head.replaceChildren(...["Level", "Humans", ...body.models.flatMap((m) => [m.name, `gap to ${m.name}`])].map((t) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = t; return th; }));
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

async function refresh() {
  try {
    const body = await api("GET", `${base}curves/`);
    const shown = body.humans.observations > 0 || body.models.some((m) => m.observations > 0);
    section.querySelector(".dash-empty").hidden = shown;
    chartEl.hidden = !shown;
    tables(body);
    if (shown) {
      await window.vegaEmbed(chartEl, spec(body), {
        ast: true,
        expr: expressionInterpreter,
        renderer: "svg",
        actions: { export: true, source: false, compiled: false, editor: false },
        downloadFileName: `study-${study}-curves`,
      });
      section.dataset.rendered = "1";
    }
    section.dataset.series = String(series(body).length);
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
  }
}

document.getElementById("study-score").addEventListener("click", async () => {
  errorBox.hidden = true;
  try {
    const r = await api("POST", `${base}score/`);
    scoreStatus.textContent = `${r.jobs.length} scoring job(s) started; reload the curves when they finish.`;
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
  }
});

refresh();
