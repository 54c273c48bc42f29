// Analyses page: start an analysis (POST campaigns/{id}/analyses/, the REST endpoint every
// client uses) and follow every job's progress by polling the list while any is pending or
// running, without reloading. Each job links to its report page.
import { api } from "./api.js";

const table = document.getElementById("analyses-table");
const body = table.querySelector("tbody");
const empty = document.getElementById("analyses-empty");
const form = document.getElementById("analysis-form");
const errorBox = document.getElementById("analysis-error");
const campaignId = table.dataset.campaignId;
const POLL_MS = 1000;
let timer = null;

function cell(row, content, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (content instanceof Node) td.append(content); else td.textContent = content;
  row.append(td);
  return td;
}

function progressCell(item) {
  const job = item.job;
  const wrap = document.createElement("div");
  wrap.className = "prog analysis-prog";
  const bar = document.createElement("span");
  bar.className = "prog-bar";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  const pct = job.status === "succeeded" ? 100 : (job.total ? Math.floor((100 * job.done) / job.total) : 0);
  bar.setAttribute("aria-valuenow", String(pct));
  bar.setAttribute("aria-label", `analysis ${job.id} progress`);
  const fill = document.createElement("span");
  fill.className = "prog-fill";
  fill.style.width = `${pct}%`;
  bar.append(fill);
  const fig = document.createElement("span");
  fig.className = `prog-figure analysis-status status-${job.status}`;
  const words = { pending: "waiting for a worker", succeeded: "done", failed: "failed" };
  const stored = item.results.length;
  fig.textContent = job.status === "running"
    ? `running · ${pct}% · ${stored} of ${item.methods.length} stored`
    : (words[job.status] || job.status);
  wrap.append(bar, fig);
  if (job.status === "failed" && job.error) {
    const err = document.createElement("span");
    err.className = "error small analysis-error";
    err.textContent = job.error;
    wrap.append(err);
  }
  return wrap;
}

function methodsCell(item) {
  const done = new Set(item.results.map((r) => r.method));
  const span = document.createElement("span");
  span.className = "small";
  item.methods.forEach((m, i) => {
    const tag = document.createElement("span");
    tag.className = done.has(m) ? "method-done" : "method-waiting";
    tag.textContent = done.has(m) ? `${m} ✓` : m;
    if (i) span.append(", ");
    span.append(tag);
  });
  return span;
}

function reportCell(item) {
  if (!item.results.length) return "";
  const a = document.createElement("a");
  a.href = `/manage/campaigns/${campaignId}/analyses/${item.job.id}/`;
  a.className = "analysis-report-link";
  a.textContent = item.job.status === "succeeded" ? "Read the report" : "Results so far";
  return a;
}

function render(list) {
  body.replaceChildren();
  table.hidden = list.length === 0;
  empty.hidden = list.length !== 0;
  for (const item of list) {
    const row = document.createElement("tr");
    row.dataset.jobId = String(item.job.id);
    row.dataset.status = item.job.status;
    cell(row, String(item.job.id));
    cell(row, item.model);
    cell(row, methodsCell(item));
    cell(row, new Date(item.job.created_at).toLocaleString(), "small");
    cell(row, progressCell(item));
    cell(row, reportCell(item));
    body.append(row);
  }
}

async function refresh() {
  clearTimeout(timer);
  try {
    const list = await api("GET", `campaigns/${campaignId}/analyses/?results=methods`);
    render(list);
    if (list.some((e) => e.job.status === "pending" || e.job.status === "running")) {
      timer = setTimeout(refresh, POLL_MS);
    }
  } catch (err) {
    if (errorBox) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
    }
    timer = setTimeout(refresh, POLL_MS * 5);
  }
}

if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const button = document.getElementById("analysis-start");
    const data = new FormData(form);
    const params = { seed: Number(data.get("seed") || 0) };
    if (data.get("limit")) params.limit = Number(data.get("limit"));
    const body = { model: Number(data.get("model")), methods: data.getAll("methods"), params };
    button.disabled = true;
    try {
      await api("POST", `campaigns/${campaignId}/analyses/`, body);
      await refresh();
    } catch (err) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}

refresh();
