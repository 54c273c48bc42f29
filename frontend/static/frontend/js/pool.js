// A campaign's pool (/manage/campaigns/<id>/pool/): its size, label distribution and task
// order; add examples by split, label, metadata field (= value) and a seeded random sample
// (POST campaigns/<id>/examples/); gold items with the answer given here or, without one,
// the example's label (POST campaigns/<id>/gold/).
import { api } from "./api.js";
import { el, clear } from "./util.js";
import { toast } from "./common_ui.js";

const root = document.getElementById("pool");
const campaignId = Number(root.dataset.campaignId);
const $ = (id) => document.getElementById(id);
const fmt = (n) => Number(n).toLocaleString("en");
const ORDER = {
  random: "Seeded random",
  stratified: "Stratified by label",
  disagreement: "Models disagree most first",
  uncertainty: "Least confident first",
};

function showError(id, err) {
  const s = $(id);
  s.textContent = err ? err.message : "";
  s.hidden = !err;
  if (err) s.dataset.code = err.code; else delete s.dataset.code;
}

function options(select, counts, anyText) {
  const keep = select.value;
  clear(select).append(el("option", { value: "" }, anyText));
  for (const [k, n] of Object.entries(counts)) select.append(el("option", { value: k }, `${k || "(none)"} · ${fmt(n)}`));
  select.value = keep;
}

function render(s) {
  $("pool-size").replaceChildren(el("strong", { id: "pool-count" }, fmt(s.pool_size)), ` of ${fmt(s.dataset.examples)} examples in the pool`, s.gold ? ` · ${fmt(s.gold)} gold` : "");
  const bars = clear($("pool-labels"));
  const total = s.pool_size || 1;
  for (const [label, n] of Object.entries(s.labels)) {
    const fill = el("span", { class: "prog-fill" });
    fill.style.width = `${(100 * n / total).toFixed(1)}%`;
    bars.append(el("div", { class: "prog", dataset: { label } }, el("span", { class: "prog-label" }, label || "(no label)"), el("span", { class: "prog-bar" }, fill), el("span", { class: "prog-figure muted" }, `${fmt(n)} · ${(100 * n / total).toFixed(0)}%`)));
  }
  if (!s.pool_size) bars.append(el("p", { class: "muted small" }, "The pool is empty: add examples below."));
  let order = `Task order: ${ORDER[s.task_order] || s.task_order} (change it in Settings).`;
  if (s.task_order === "disagreement" || s.task_order === "uncertainty") {
    order += s.models ? ` ${fmt(s.unscored)} example${s.unscored === 1 ? " has" : "s have"} no stored scores from the campaign's models and go${s.unscored === 1 ? "es" : ""} last.` : " The campaign has no models: every example goes in seeded random order.";
  }
  $("pool-order").textContent = order;
  options($("pool-split"), s.dataset.splits, "any split");
  options($("pool-label"), s.dataset.labels, "any label");
  const meta = $("pool-meta-field");
  const keep = meta.value;
  clear(meta).append(el("option", { value: "" }, "none"), ...s.dataset.metadata_fields.map((f) => el("option", { value: f }, f)));
  meta.value = keep;
  const answer = $("gold-answer");
  const keepAnswer = answer.value;
  clear(answer).append(el("option", { value: "" }, "the example's own label"), ...s.label_space.map((l) => el("option", { value: l }, l)));
  answer.value = keepAnswer;
  const tbody = clear($("gold-table").querySelector("tbody"));
  for (const g of s.gold_items) {
    const said = g.answer === null ? el("span", { class: "field-error" }, "none") : g.answer;
    const how = el("span", { class: "muted small" }, g.answer_given ? " (given)" : " (its label)");
    tbody.append(el("tr", { dataset: { example: String(g.example) } }, el("td", {}, String(g.example)), el("td", {}, g.external_id), el("td", { class: "gold-answer" }, said, how),
      el("td", {}, el("button", { type: "button", class: "linklike", onclick: () => setGold([g.example], false) }, "Remove"))));
  }
  if (!s.gold_items.length) tbody.append(el("tr", {}, el("td", { colspan: "4", class: "muted small" }, "No gold items.")));
}

async function refresh() {
  render(await api("GET", `campaigns/${campaignId}/pool/`));
}

async function setGold(ids, isGold, answer) {
  showError("err-gold", null);
  const body = { example_ids: ids, is_gold: isGold };
  if (answer) body.answer = answer;
  try {
    const s = await api("POST", `campaigns/${campaignId}/gold/`, body);
    render(s);
    toast(isGold ? `${s.changed} gold item${s.changed === 1 ? "" : "s"} set.` : "Gold item removed.");
    return true;
  } catch (err) {
    showError("err-gold", err);
    return false;
  }
}

$("pool-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError("err-pool", null);
  const body = {};
  for (const [key, id] of [["split", "pool-split"], ["label", "pool-label"], ["metadata_field", "pool-meta-field"]]) if ($(id).value) body[key] = $(id).value;
  if (body.metadata_field) body.metadata_value = $("pool-meta-value").value.trim();
  for (const [key, id] of [["limit", "pool-limit"], ["sample_seed", "pool-seed"]]) if ($(id).value.trim() !== "") body[key] = Number($(id).value);
  const button = $("pool-add");
  button.disabled = true;
  try {
    const r = await api("POST", `campaigns/${campaignId}/examples/`, body);
    toast(`${fmt(r.added)} example${r.added === 1 ? "" : "s"} added.`);
    await refresh();
  } catch (err) {
    showError("err-pool", err);
  } finally {
    button.disabled = false;
  }
});

$("gold-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const raw = $("gold-ids").value.split(/[\s,]+/).filter(Boolean);
  const ids = raw.map(Number);
  if (!ids.length || ids.some((n) => !Number.isInteger(n) || n <= 0)) {
    showError("err-gold", { message: "Give example ids (whole numbers), separated by commas.", code: "gold_items" });
    return;
  }
  if (await setGold(ids, true, $("gold-answer").value)) $("gold-ids").value = "";
});

refresh().catch((err) => showError("err-pool", err));
