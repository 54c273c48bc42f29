// The edit-size meter: a bar against the campaign's budget, with the figure in words.
import { el, clear, formatPercent } from "./util.js";

export function renderMeter(node, { fraction, budget, detail, label }) {
  clear(node);
  const over = budget !== undefined && budget !== null && fraction > budget + 1e-12;
  const scale = Math.max(budget || 0, fraction, 1e-9);
  // The bar spans 0..max(budget, value) so the budget mark stays visible when over.
  const span = Math.min(1, Math.max(scale * 1.25, budget || 0));
  const pct = span ? Math.min(100, (fraction / span) * 100) : 0;
  const budgetPct = span && budget ? Math.min(100, (budget / span) * 100) : null;
  node.classList.toggle("over", over);
  node.dataset.fraction = String(fraction);
  node.dataset.over = over ? "1" : "0";
  node.append(
    el("div", { class: "meter-head" },
      el("span", { class: "meter-label" }, label || "Edit size"),
      el("span", { class: "meter-figure" }, `${formatPercent(fraction, 1)}`,
        budget ? el("span", { class: "muted" }, ` of ${formatPercent(budget, 0)} allowed`) : "")),
    el("div", {
      class: "meter-track",
      role: "meter",
      "aria-label": label || "Edit size",
      "aria-valuemin": "0",
      "aria-valuemax": String(budget || 1),
      "aria-valuenow": String(Number.isFinite(fraction) ? fraction : 0),
      "aria-valuetext": `${formatPercent(fraction, 1)}${budget ? ` of ${formatPercent(budget, 0)} allowed` : ""}${over ? ", over budget" : ""}`,
    },
      el("div", { class: "meter-fill", style: `width:${pct}%` }),
      budgetPct !== null ? el("div", { class: "meter-budget", style: `left:${budgetPct}%`, title: "budget" }) : ""),
    el("div", { class: "meter-detail" + (over ? " error" : " muted") }, over ? `${detail} — over the budget; undo part of the edit.` : detail),
  );
}
