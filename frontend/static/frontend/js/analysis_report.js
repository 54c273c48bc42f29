// The analysis report page: charts drawn from the same tables the page shows (json_script
// "analysis-charts"), Vega-Lite through vega-embed evaluated by vega-interpreter
// (`ast: true`), so they run under the page's CSP without eval. A result of a method this
// file does not know (e.g. `heads`) gets generic charts: a line when its first column is a
// count of removed / pruned things, else bars of its first numeric column.
import { expressionInterpreter } from "../vendor/vega-interpreter/vega-interpreter.js";
import { minimalSpec } from "./minimal_chart.js";

const root = document.getElementById("report");
const data = JSON.parse(document.getElementById("analysis-charts").textContent);
const job = root.dataset.job;

const CONFIG = {
  font: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 600, gridColor: "#e6e8ec" },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: "bottom" },
  range: { category: ["#2d5bc9", "#b3261e", "#1b7a47", "#e0a100", "#6b3fb8", "#0e8a8a"] },
};

/** A table's rows as objects keyed by its columns. */
function records(table) {
  if (!table) return [];
  return table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c, row[i]])));
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** Bars of `value` by `y` (nominal), coloured by `color`, with a CI rule when given. */
function barsWithCi(values, { y, color, xTitle, domain, percent = true }) {
  const x = { field: "value", type: "quantitative", title: xTitle, ...(domain ? { scale: { domain } } : {}), axis: percent ? { format: ".0%" } : {} };
  const enc = { y: { field: y, type: "nominal", title: null, sort: null } };
  if (color) {
    enc.yOffset = { field: color, sort: null };
    enc.color = { field: color, type: "nominal", title: null, sort: null };
  }
  const layers = [{ mark: { type: "bar", tooltip: true }, encoding: { ...enc, x } }];
  if (values.some((v) => isNum(v.lo))) {
    layers.push({
      mark: { type: "rule", color: "#1f2430" },
      encoding: { ...enc, color: undefined, x: { field: "lo", type: "quantitative" }, x2: { field: "hi" } },
    });
  }
  return { data: { values }, layer: layers, height: { step: color ? 16 : 24 } };
}

const CHARTS = {
  emap(t) {
    const values = [];
    for (const r of records(t.accuracy)) {
      const group = r.grouping === "overall" ? "overall" : `${r.grouping}: ${r.group}`;
      values.push({ group, which: "f", value: r.model }, { group, which: "EMAP(f)", value: r.emap });
    }
    return [["accuracy", "Accuracy of f and of EMAP(f)", barsWithCi(values.filter((v) => isNum(v.value)), { y: "group", color: "which", xTitle: "accuracy", domain: [0, 1] })]];
  },
  ablation(t) {
    const values = records(t.modalities).filter((r) => isNum(r.delta)).map((r) => ({ modality: r.modality, value: r.delta }));
    return [["delta", "Accuracy lost with the modality nulled", barsWithCi(values, { y: "modality", xTitle: "accuracy drop" })]];
  },
  perceptual(t) {
    const values = records(t.modalities).filter((r) => isNum(r.mean_drop)).map((r) => ({ modality: r.modality, value: r.mean_drop, lo: r.mean_drop - (r.std || 0), hi: r.mean_drop + (r.std || 0) }));
    return [["drop", "Accuracy drop when permuted (mean ± sd)", barsWithCi(values, { y: "modality", xTitle: "accuracy drop" })]];
  },
  counterfactual(t) {
    const values = records(t.metrics)
      .filter((r) => isNum(r.value) && (r.group === "overall" || r.group.startsWith("modality:")))
      .map((r) => ({ metric: r.metric.replaceAll("_", " "), group: r.group, value: r.value, lo: r.ci_low, hi: r.ci_high }));
    return [["metrics", "Counterfactual metrics (95% bootstrap intervals)", barsWithCi(values, { y: "metric", color: "group", xTitle: "rate", domain: [0, 1] })]];
  },
  pid(t) {
    const values = [];
    for (const r of records(t.terms)) {
      for (const term of ["redundancy", "unique_1", "unique_2", "synergy"]) {
        if (isNum(r[term])) values.push({ of: r.of, term, value: r[term] });
      }
    }
    return [["terms", "PID terms (bits)", barsWithCi(values, { y: "term", color: "of", xTitle: "bits", percent: false })]];
  },
  clusters(t) {
    const values = records(t.clusters).map((r) => ({ cluster: `cluster ${r.cluster}`, value: r.size }));
    return [["sizes", "Cluster sizes", barsWithCi(values, { y: "cluster", xTitle: "examples", percent: false })]];
  },
  grounding(t) {
    const rows = records(t.figures).filter((r) => isNum(r.value));
    const pick = (names) => rows
      .filter((r) => names.includes(r.metric))
      .map((r) => ({ metric: r.metric.replaceAll("_", " "), group: `${r.group} (${r.n})`, value: r.value, lo: r.ci_low, hi: r.ci_high }));
    const plaus = pick(["text_top_k_f1", "text_auprc", "image_pointing", "image_iou"]);
    const faith = pick(["human_comprehensiveness_all", "human_sufficiency_all", "model_comprehensiveness_all", "model_sufficiency_all"]);
    return [
      ["plausibility", "Plausibility: does the model look where the annotators looked? (per reliance category)", barsWithCi(plaus, { y: "metric", color: "group", xTitle: "mean", domain: [0, 1] })],
      ["faithfulness", "Faithfulness: probability of the prediction lost with the evidence removed (comprehensiveness) / kept alone (sufficiency)", barsWithCi(faith, { y: "metric", color: "group", xTitle: "probability drop", percent: false })],
    ];
  },
  reliance(t) {
    const cats = records(t.categories);
    const out = [];
    const emap = cats.filter((r) => isNum(r.emap_changed)).map((r) => ({ category: `${r.category} (${r.examples})`, value: r.emap_changed, lo: r.emap_changed_ci_low, hi: r.emap_changed_ci_high }));
    out.push(["emap", "How often EMAP changes the model's answer, per human reliance category", barsWithCi(emap, { y: "category", xTitle: "share of examples", domain: [0, 1] })]);
    const cols = t.categories ? t.categories.columns : [];
    const ablation = [];
    const flips = [];
    for (const r of cats) {
      for (const c of cols) {
        const a = c.match(/^ablation_delta_(.+?)$/);
        if (a && !c.endsWith("_ci_low") && !c.endsWith("_ci_high") && isNum(r[c])) {
          ablation.push({ category: r.category, modality: a[1], value: r[c], lo: r[`${c}_ci_low`], hi: r[`${c}_ci_high`] });
        }
        const f = c.match(/^flip_rate_(.+)_edits$/);
        if (f && isNum(r[c])) {
          flips.push({ category: r.category, edited: `${f[1]} edits`, value: r[c], lo: r[`flip_rate_${f[1]}_ci_low`], hi: r[`flip_rate_${f[1]}_ci_high`] });
        }
      }
    }
    out.push(["ablation", "Ablation: accuracy lost with each modality nulled, per category", barsWithCi(ablation, { y: "category", color: "modality", xTitle: "accuracy drop" })]);
    if (flips.length) out.push(["flips", "Model flip rate under edits of each modality, per category", barsWithCi(flips, { y: "category", color: "edited", xTitle: "model flip rate", domain: [0, 1] })]);
    const k = records(t.kappa)[0];
    if (k) {
      const cells = [
        { humans: "needed both", model: "uses it", n: k.both_yes },
        { humans: "needed both", model: "does not", n: k.humans_only },
        { humans: "did not", model: "uses it", n: k.model_only },
        { humans: "did not", model: "does not", n: k.both_no },
      ];
      const title = `Humans vs model (Cohen's κ = ${isNum(k.kappa) ? k.kappa.toFixed(3) : "–"}, n = ${k.n})`;
      out.push(["kappa", title, {
        data: { values: cells },
        width: 260,
        height: 120,
        encoding: { x: { field: "model", type: "nominal", title: "the model uses the interaction", sort: ["uses it", "does not"], axis: { labelAngle: 0 } }, y: { field: "humans", type: "nominal", title: "humans", sort: ["needed both", "did not"] } },
        layer: [
          { mark: { type: "rect", tooltip: true }, encoding: { color: { field: "n", type: "quantitative", title: "examples", scale: { scheme: "blues" } } } },
          { mark: { type: "text", fontSize: 13 }, encoding: { text: { field: "n", type: "quantitative" } } },
        ],
      }]);
    }
    return out;
  },
};

function generic(tables) {
  const out = [];
  for (const [key, table] of Object.entries(tables)) {
    if (key === "summary" || !table.rows.length) continue;
    const rows = records(table);
    const [first, ...rest] = table.columns;
    const metric = rest.find((c) => rows.some((r) => isNum(r[c])));
    if (!metric) continue;
    const line = /removed|pruned|step|level|count/i.test(first) && rows.every((r) => isNum(r[first]));
    const spec = line
      ? { data: { values: rows }, mark: { type: "line", point: true, tooltip: true }, height: 180, encoding: { x: { field: first, type: "quantitative" }, y: { field: metric, type: "quantitative" } } }
      : { data: { values: rows }, mark: { type: "bar", tooltip: true }, height: { step: 20 }, encoding: { y: { field: first, type: "nominal", sort: null }, x: { field: metric, type: "quantitative" } } };
    out.push([key, `${table.title}: ${metric}`, spec]);
  }
  return out;
}

async function draw() {
  for (const { method, tables, minimal } of data) {
    const box = root.querySelector(`[data-charts-for="${method}"]`);
    if (!box) continue;
    // The minimal perturbation to chance: its distribution beside the human edit sizes.
    const charts = minimal
      ? [["distribution", "Minimal perturbation to chance per example, beside the human counterfactual edit sizes", minimalSpec(minimal)]]
      : (CHARTS[method] || generic)(tables);
    for (const [name, title, spec] of charts) {
      if (spec.data && !spec.data.values.length) continue;
      const figure = document.createElement("figure");
      figure.className = "report-chart";
      figure.dataset.chart = `${method}:${name}`;
      const caption = document.createElement("figcaption");
      caption.textContent = title;
      const vis = document.createElement("div");
      vis.className = "report-vis";
      figure.append(caption, vis);
      box.append(figure);
      const fit = spec.hconcat ? {} : { width: "container", autosize: { type: "fit-x", contains: "padding" } };
      const full = { $schema: "https://vega.github.io/schema/vega-lite/v6.json", config: CONFIG, background: "white", ...fit, ...spec };
      await window.vegaEmbed(vis, full, {
        ast: true,
        expr: expressionInterpreter,
        renderer: "svg",
        actions: { export: true, source: false, compiled: false, editor: false },
        downloadFileName: `analysis-${job}-${method}-${name}`,
      });
      figure.dataset.rendered = "1";
    }
  }
  root.dataset.chartsRendered = "1";
}

draw();
