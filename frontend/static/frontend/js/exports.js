// Exports page: start an export (POST campaigns/{id}/exports/) and follow every export's
// progress by polling the list while any is pending or running, without reloading.
import { api } from "./api.js";

const table = document.getElementById("exports-table");
const body = table.querySelector("tbody");
const empty = document.getElementById("exports-empty");
const form = document.getElementById("export-form");
const errorBox = document.getElementById("export-error");
const campaignId = table.dataset.campaignId;
const POLL_MS = 1000;
let timer = null;

function size(bytes) {
  if (bytes == null) return "";
  const units = ["B", "KB", "MB", "GB"];
  let n = bytes, i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (text instanceof Node) td.append(text); else td.textContent = text;
  row.append(td);
  return td;
}

function progressCell(exp) {
  const wrap = document.createElement("div");
  wrap.className = "prog export-prog";
  const bar = document.createElement("span");
  bar.className = "prog-bar";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  const pct = exp.status === "succeeded" ? 100 : Math.round((exp.progress || 0) * 100);
  bar.setAttribute("aria-valuenow", String(pct));
  const fill = document.createElement("span");
  fill.className = "prog-fill";
  fill.style.width = `${pct}%`;
  bar.append(fill);
  const fig = document.createElement("span");
  fig.className = `prog-figure export-status status-${exp.status}`;
  const words = { pending: "waiting for a worker", succeeded: "done", failed: "failed" };
  fig.textContent = exp.status === "running"
    ? `running · ${exp.progress_done.toLocaleString()} of ${exp.progress_total.toLocaleString()} rows`
    : (words[exp.status] || exp.status);
  wrap.append(bar, fig);
  return wrap;
}

function fileCell(exp) {
  if (exp.download_url) {
    const a = document.createElement("a");
    a.href = exp.download_url;
    a.className = "export-download";
    a.textContent = `Download ${exp.file_name}`;
    a.setAttribute("download", exp.file_name);
    const meta = document.createElement("span");
    meta.className = "muted small";
    meta.textContent = ` ${size(exp.size_bytes)} · sha256 ${exp.sha256.slice(0, 12)}…`;
    const span = document.createElement("span");
    span.append(a, meta);
    return span;
  }
  if (exp.status === "failed") {
    const span = document.createElement("span");
    span.className = "error small";
    span.textContent = exp.error || "failed";
    return span;
  }
  return "";
}

function render(list) {
  body.replaceChildren();
  table.hidden = list.length === 0;
  empty.hidden = list.length !== 0;
  for (const exp of list) {
    const row = document.createElement("tr");
    row.dataset.exportId = String(exp.id);
    row.dataset.status = exp.status;
    cell(row, String(exp.id));
    cell(row, exp.format);
    cell(row, new Date(exp.created_at).toLocaleString() + (exp.created_by ? ` · ${exp.created_by}` : ""), "small");
    cell(row, progressCell(exp));
    cell(row, exp.rows ? `${exp.rows.annotations.toLocaleString()} annotations · ${exp.rows.pairs.toLocaleString()} pairs` : "", "small");
    cell(row, fileCell(exp), "file");
    body.append(row);
  }
}

async function refresh() {
  clearTimeout(timer);
  try {
    const page = await api("GET", `campaigns/${campaignId}/exports/`);
    const list = page.results || [];
    render(list);
    if (list.some((e) => e.status === "pending" || e.status === "running")) {
      timer = setTimeout(refresh, POLL_MS);
    }
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
    timer = setTimeout(refresh, POLL_MS * 5);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  const button = document.getElementById("export-start");
  button.disabled = true;
  try {
    const format = new FormData(form).get("format");
    await api("POST", `campaigns/${campaignId}/exports/`, { format });
    await refresh();
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
});

refresh();
