// The campaign create / settings form (/manage/campaigns/new/, /manage/campaigns/<id>/):
// every setting of a campaign, saved through the REST API (POST or PATCH campaigns/, PUT
// campaigns/<id>/models/); a refused value comes back with the server's rule code and its
// message is shown at the field. On the settings page also the lifecycle (start, pause,
// resume, close) with a confirmation that the server words (open leases counted there).
import { api } from "./api.js";
import { el, clear } from "./util.js";
import { toast } from "./common_ui.js";

const form = document.getElementById("campaign-form");
// getAttribute, not form.dataset: a form's named controls shadow its properties.
const mode = form.getAttribute("data-mode");
let campaignId = form.getAttribute("data-campaign-id") ? Number(form.getAttribute("data-campaign-id")) : null;
const $ = (id) => document.getElementById(id);

const DEFAULTS = {
  name: "", instructions: "", task_label: true, task_rationale: true, task_counterfactual: true,
  task_validation: true, redundancy: 3, lease_seconds: 1800, task_order: "random",
  balance_counterfactuals: false, feedback_arm: "shown", score_cap_per_assignment: 500, seed: 0,
  gold_rate: 0, validations_required: 3, validations_to_verify: 2, questions: {},
  editable_modalities: null, edit_budgets: {},
};
const NUMBERS = ["redundancy", "lease_seconds", "score_cap_per_assignment", "seed", "validations_required", "validations_to_verify"];
const CHECKS = ["task_label", "task_rationale", "task_counterfactual", "task_validation", "balance_counterfactuals"];
const TEXTS = ["name", "instructions", "task_order", "feedback_arm"];
const BUDGET_DEFAULT = { text: 0.5, image: 0.25, tabular: 0.5 };
// The reliance questions (docs/architecture.md "Reliance questions") and their default wording.
const QUESTIONS = [
  ["label", "Your answer", false],
  ["confidence", "How sure are you?", true],
  ["reliance", "Which inputs did you need to decide?", true],
  ["evidence", "What mattered? Click words; drag boxes on the image.", true],
  ["rationale", "Why? (optional)", true],
];
// Where a server rule's message goes.
const ERROR_FIELD = {
  campaign_name_taken: "name",
  campaign_editable_modalities: "editable_modalities",
  campaign_edit_budgets: "edit_budgets",
  campaign_redundancy: "redundancy",
  campaign_gold_rate: "gold_rate",
  campaign_validation_rule: "validations_to_verify",
  campaign_arm: "feedback_arm",
  campaign_task_order: "task_order",
  campaign_lease_seconds: "lease_seconds",
  campaign_dataset_fixed: "dataset",
  not_found: "dataset",
};

let datasets = [];
let dataset = null;
let campaign = null;
let models = [];
let chosenModels = new Set();

function slot(field) { return $(`err-${field}`) || $("err-form"); }

function clearErrors() {
  for (const s of form.querySelectorAll(".field-error")) { s.textContent = ""; s.hidden = true; }
  for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
}

function showFieldError(field, message, code) {
  const s = slot(field);
  s.textContent = message;
  if (code) {
    s.dataset.code = code;
    s.append(" ", el("code", { class: "rule-code" }, code));
  }
  s.hidden = false;
  const control = $(`f-${field}`);
  if (control) control.setAttribute("aria-invalid", "true");
  s.scrollIntoView({ block: "center" });
}

function placeError(err, fallback = "") {
  let field = ERROR_FIELD[err.code] || fallback;
  if (!field && err.details && typeof err.details === "object") field = Object.keys(err.details)[0] || "";
  if (field === "non_field_errors") field = "";
  showFieldError(field || "form", err.message, err.code);
}

// --- dataset-dependent parts --------------------------------------------------------------
function renderModalities(values) {
  const host = clear($("f-editable"));
  if (!dataset) return;
  const editable = values.editable_modalities || dataset.modalities.map((m) => m.name);
  for (const m of dataset.modalities) {
    const id = `f-edit-${m.name}`;
    const budget = (values.edit_budgets || {})[m.name] ?? BUDGET_DEFAULT[m.kind] ?? 0.5;
    host.append(el("div", { class: "modality-budget" },
      el("label", { class: "check", for: id }, el("input", { type: "checkbox", id, checked: editable.includes(m.name), dataset: { modality: m.name } }), ` ${m.name} `, el("span", { class: "hint" }, `(${m.kind})`)),
      el("label", { for: `${id}-budget`, class: "sr-only" }, `Budget for ${m.name}`),
      el("input", { type: "number", id: `${id}-budget`, min: "0.01", max: "1", step: "0.01", value: String(budget), dataset: { budget: m.name }, "aria-label": `Budget for ${m.name}` })));
  }
}

async function loadModels() {
  const host = clear($("f-models"));
  if (!dataset) { host.append(el("p", { class: "muted small" }, "Choose a dataset first.")); return; }
  const page = await api("GET", "models/");
  models = (page.results || page).filter((m) => m.dataset === dataset.id && m.is_active !== false);
  if (!models.length) { host.append(el("p", { class: "muted small" }, "No model is registered for this dataset (manage.py register_model or the models API).")); return; }
  for (const m of models) {
    const id = `f-model-${m.id}`;
    host.append(el("label", { class: "check", for: id }, el("input", { type: "checkbox", id, checked: chosenModels.has(m.id), dataset: { model: String(m.id) } }), ` ${m.name} `, el("span", { class: "hint" }, `v${m.version} · ${m.kind}`)));
  }
}

function renderQuestions(values) {
  const host = clear($("f-questions"));
  const raw = values.questions || {};
  for (const [key, fallback, switchable] of QUESTIONS) {
    const q = raw[key];
    const enabled = !(q === false || (q && typeof q === "object" && q.enabled === false));
    const text = typeof q === "string" ? q : q && typeof q === "object" ? q.text || q.wording || "" : "";
    const row = el("div", { class: "question-row" });
    if (switchable) row.append(el("label", { class: "check", for: `f-q-${key}-on` }, el("input", { type: "checkbox", id: `f-q-${key}-on`, checked: enabled, dataset: { question: key } }), ` Ask: ${key}`));
    else row.append(el("span", { class: "check" }, `Always asked: ${key}`));
    row.append(el("label", { for: `f-q-${key}-text`, class: "sr-only" }, `Wording of ${key}`),
      el("input", { type: "text", id: `f-q-${key}-text`, placeholder: fallback, value: text, dataset: { wording: key } }));
    host.append(row);
  }
}

function fill(values) {
  for (const k of TEXTS) $(`f-${k}`).value = values[k] ?? "";
  for (const k of NUMBERS) $(`f-${k}`).value = values[k] ?? "";
  for (const k of CHECKS) $(`f-${k}`).checked = !!values[k];
  $("f-gold_rate").value = values.gold_rate ?? 0;
  renderModalities(values);
  renderQuestions(values);
  renderInstructions();
}

function collect() {
  const out = {};
  for (const k of TEXTS) out[k] = $(`f-${k}`).value;
  for (const k of NUMBERS) {
    const v = $(`f-${k}`).value.trim();
    if (v !== "") out[k] = Number(v);
  }
  for (const k of CHECKS) out[k] = $(`f-${k}`).checked;
  const gr = $("f-gold_rate").value.trim();
  if (gr !== "") out.gold_rate = Number(gr);
  out.editable_modalities = [...form.querySelectorAll("[data-modality]")].filter((c) => c.checked).map((c) => c.dataset.modality);
  out.edit_budgets = {};
  for (const b of form.querySelectorAll("[data-budget]")) {
    if (out.editable_modalities.includes(b.dataset.budget) && b.value.trim() !== "") out.edit_budgets[b.dataset.budget] = Number(b.value);
  }
  const questions = {};
  for (const [key, , switchable] of QUESTIONS) {
    const on = switchable ? $(`f-q-${key}-on`).checked : true;
    const text = $(`f-q-${key}-text`).value.trim();
    if (!on || text) questions[key] = { enabled: on, text };
  }
  out.questions = questions;
  return out;
}

// --- instructions preview (the server's renderer: what annotators get) ----------------------
let previewTimer = 0;
let previewSeq = 0;
function renderInstructions() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(async () => {
    const seq = ++previewSeq;
    const text = $("f-instructions").value;
    const target = $("instructions-preview");
    if (!text.trim()) { target.replaceChildren(el("p", { class: "muted small" }, "No instructions yet.")); return; }
    try {
      const { html } = await api("POST", "campaigns/instructions-preview/", { text });
      // Sanitised by the server (annotation.markdown.instructions_html, nh3).
      if (seq === previewSeq) target.innerHTML = html;
    } catch (err) {
      if (seq === previewSeq) target.replaceChildren(el("p", { class: "field-error" }, err.message));
    }
  }, 250);
}

// --- warnings, lifecycle ---------------------------------------------------------------------
function renderWarnings(list, poolSize) {
  const host = $("campaign-warnings");
  if (!host) return;
  clear(host);
  if (poolSize === 0) host.append(el("div", { class: "banner info", id: "pool-empty" }, el("strong", {}, "The pool is empty: "), el("span", {}, "add examples on the "), el("a", { href: `/manage/campaigns/${campaignId}/pool/` }, "Pool"), el("span", {}, " tab before starting.")));
  for (const w of list || []) host.append(el("div", { class: "banner warn", dataset: { code: w.code } }, el("strong", {}, "Check the setup: "), el("span", {}, w.message)));
}

const ACTION_NAMES = { start: "Start", pause: "Pause", resume: "Resume", close: "Close" };

async function renderLifecycle() {
  const host = $("lifecycle-actions");
  if (!host) return;
  const state = await api("GET", `campaigns/${campaignId}/lifecycle/`);
  const status = $("lifecycle-status");
  status.textContent = state.status.charAt(0).toUpperCase() + state.status.slice(1);
  status.className = `status status-${state.status}`;
  for (const s of document.querySelectorAll(".manage-head .status")) { s.textContent = status.textContent; s.className = status.className; }
  $("lifecycle-leases").textContent = state.status === "closed" ? "Closed: no further leases or submissions." : (state.open_leases ? `${state.open_leases} open lease${state.open_leases === 1 ? "" : "s"} now (${Object.entries(state.open_leases_by_kind || {}).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(" · ")}).` : "No open leases.");
  clear(host);
  for (const a of state.actions.filter((x) => x.allowed)) {
    host.append(el("button", { type: "button", class: a.action === "close" ? "secondary danger" : a.action === "start" || a.action === "resume" ? "primary" : "secondary", id: `lifecycle-${a.action}`, onclick: () => confirmAction(a.action) }, `${ACTION_NAMES[a.action]} campaign`));
  }
}

async function confirmAction(action) {
  // Fresh figures: the count of open leases changes while the page is open.
  const state = await api("GET", `campaigns/${campaignId}/lifecycle/`);
  const info = state.actions.find((a) => a.action === action);
  const err = el("p", { class: "field-error", hidden: true, role: "alert", id: "err-lifecycle" });
  const dlg = el("dialog", { class: "confirm-dialog", id: "lifecycle-dialog", "aria-labelledby": "lifecycle-dialog-title" });
  const ok = el("button", { type: "button", class: action === "close" ? "primary danger" : "primary", id: "lifecycle-confirm" }, `${ACTION_NAMES[action]} campaign`);
  dlg.append(el("h2", { id: "lifecycle-dialog-title" }, `${ACTION_NAMES[action]} “${campaign.name}”?`),
    el("p", { id: "lifecycle-message" }, info.message), err,
    el("div", { class: "actions" }, el("button", { type: "button", class: "secondary", onclick: () => dlg.close() }, "Cancel"), ok));
  ok.addEventListener("click", async () => {
    ok.disabled = true;
    try {
      await api("POST", `campaigns/${campaignId}/lifecycle/`, { action });
      dlg.close();
      toast(`Campaign ${info.to}.`);
      await renderLifecycle();
    } catch (e) {
      err.textContent = e.message; err.hidden = false; err.dataset.code = e.code; ok.disabled = false;
    }
  });
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

// --- save ------------------------------------------------------------------------------------
async function save(e) {
  e.preventDefault();
  clearErrors();
  const body = collect();
  const button = $("save-campaign");
  button.disabled = true;
  $("form-status").textContent = "Saving…";
  try {
    let saved;
    if (mode === "new") {
      if (!dataset) { showFieldError("dataset", "Choose a dataset."); return; }
      saved = await api("POST", "campaigns/", { ...body, dataset: dataset.id });
      campaignId = saved.id;
    } else {
      saved = await api("PATCH", `campaigns/${campaignId}/`, body);
    }
    const picked = [...form.querySelectorAll("[data-model]")].filter((c) => c.checked).map((c) => Number(c.dataset.model));
    const before = [...chosenModels].sort().join(",");
    if (picked.slice().sort().join(",") !== before) {
      try {
        await api("PUT", `campaigns/${campaignId}/models/`, { models: picked });
        chosenModels = new Set(picked);
      } catch (err) {
        if (mode === "new") location.assign(`/manage/campaigns/${campaignId}/?models_error=1`);
        placeError(err, "models");
        return;
      }
    }
    if (mode === "new") { location.assign(`/manage/campaigns/${campaignId}/`); return; }
    campaign = saved;
    renderWarnings(saved.warnings, saved.pool_size);
    $("form-status").textContent = "";
    toast("Settings saved.");
  } catch (err) {
    $("form-status").textContent = "";
    placeError(err);
  } finally {
    button.disabled = false;
    if ($("form-status").textContent === "Saving…") $("form-status").textContent = "";
  }
}

async function chooseDataset(id) {
  dataset = datasets.find((d) => d.id === Number(id)) || null;
  renderModalities(campaign || DEFAULTS);
  await loadModels();
}

async function init() {
  form.addEventListener("submit", save);
  $("f-instructions").addEventListener("input", renderInstructions);
  if (mode === "new") {
    const page = await api("GET", "datasets/");
    datasets = page.results || page;
    const select = $("f-dataset");
    select.append(el("option", { value: "" }, datasets.length ? "Choose a dataset…" : "No dataset yet"));
    for (const d of datasets) select.append(el("option", { value: String(d.id) }, `${d.name} (${d.example_count ?? "?"} examples)`));
    select.addEventListener("change", () => chooseDataset(select.value));
    fill(DEFAULTS);
    if (datasets.length === 1) { select.value = String(datasets[0].id); await chooseDataset(datasets[0].id); }
    return;
  }
  campaign = await api("GET", `campaigns/${campaignId}/`);
  const ds = await api("GET", `datasets/${campaign.dataset}/`);
  datasets = [ds];
  dataset = ds;
  $("f-dataset").append(el("option", { value: String(ds.id) }, ds.name));
  chosenModels = new Set(campaign.model_ids || []);
  fill(campaign);
  renderWarnings(campaign.warnings, campaign.pool_size);
  await Promise.all([loadModels(), renderLifecycle()]);
  if (new URLSearchParams(location.search).has("models_error")) showFieldError("models", "The campaign was created, but these models could not be attached; choose again and save.");
}

init().catch((err) => showFieldError("form", err.message, err.code));
