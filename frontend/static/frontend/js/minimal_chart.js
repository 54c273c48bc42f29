// The minimal perturbation to chance of one model (a perturbation_minimal result, as
// models_bridge.analysis.perturbation_curves.minimal_distribution lays it out), beside the human
// counterfactual edit sizes of the same campaign and modality: two histograms side by side, each
// on its own axis (a perturbation level and an edit size are different units). Shared by the
// study page (js/perturbation_study.js) and the analysis report (js/analysis_report.js).

function bins(values, lo, hi, n) {
  const width = (hi - lo) / n || 1;
  const out = Array.from({ length: n }, (_, i) => ({ bin_start: lo + i * width, bin_end: lo + (i + 1) * width, examples: 0 }));
  for (const v of values) out[Math.min(n - 1, Math.max(0, Math.floor((v - lo) / width)))].examples += 1;
  return out;
}

export function minimalSpec(d, { width = 300 } = {}) {
  const top = d.ladder.length ? d.ladder[d.ladder.length - 1] : Math.max(1, ...d.levels);
  const model = bins(d.levels, d.ladder.length ? d.ladder[0] : 0, top, 16);
  const rungs = d.ladder.map((level) => ({ level }));
  const left = {
    width,
    height: 160,
    title: { text: `${d.model_name}: ${d.examples - d.beyond} of ${d.examples} examples at chance`, subtitle: d.beyond ? `${d.beyond} not within the ladder` : "", fontSize: 11, fontWeight: 600, anchor: "start", limit: width },
    layer: [
      { data: { values: model }, mark: { type: "bar", color: "#2d5bc9", tooltip: true }, encoding: { x: { field: "bin_start", type: "quantitative", bin: { binned: true }, title: "minimal level to chance", scale: { domain: [model[0].bin_start, top] } }, x2: { field: "bin_end" }, y: { field: "examples", type: "quantitative", title: "examples", axis: { tickMinStep: 1 } } } },
      { data: { values: rungs }, mark: { type: "tick", orient: "vertical", color: "#555", thickness: 1, size: 8 }, encoding: { x: { field: "level", type: "quantitative" }, y: { datum: 0 } } },
    ],
  };
  const sizes = d.human_sizes || [];
  const right = sizes.length
    ? {
      width,
      height: 160,
      title: { text: `human edits of ${d.human_modality}: ${d.human_count}`, fontSize: 11, fontWeight: 600, anchor: "start", limit: width },
      data: { values: bins(sizes, 0, Math.max(1e-9, ...sizes), 16) },
      mark: { type: "bar", color: "#6b3fb8", tooltip: true },
      encoding: { x: { field: "bin_start", type: "quantitative", bin: { binned: true }, title: `edit size (${d.human_measure.replaceAll("_", " ")})` }, x2: { field: "bin_end" }, y: { field: "examples", type: "quantitative", title: "edits", axis: { tickMinStep: 1 } } },
    }
    : {
      width,
      height: 160,
      title: { text: `human edits of ${d.human_modality || "this modality"}: none yet`, fontSize: 11, fontWeight: 600, anchor: "start", limit: width },
      data: { values: [{ x: 0.5, y: 0.5, text: "no counterfactual edits of this modality in the campaign" }] },
      mark: { type: "text", color: "#6b7280", fontSize: 11 },
      encoding: { x: { field: "x", type: "quantitative", scale: { domain: [0, 1] }, axis: null }, y: { field: "y", type: "quantitative", scale: { domain: [0, 1] }, axis: null }, text: { field: "text" } },
    };
  return { hconcat: [left, right], resolve: { scale: { x: "independent", y: "independent" } } };
}
