// The manager's campaign list (/manage/): GET campaigns/managed/ — status, progress and
// counts of every campaign the caller manages, each linking to its console.
import { api } from "./api.js";
import { el, clear } from "./util.js";

const host = document.getElementById("manage-list");
const STATUS = { draft: "Draft", active: "Active", paused: "Paused", closed: "Closed" };
const fmt = (n) => Number(n).toLocaleString("en");

function row(c) {
  const pct = (c.progress * 100).toFixed(c.progress > 0 && c.progress < 0.01 ? 1 : 0);
  const base = `/manage/campaigns/${c.id}`;
  return el("li", { class: "card manage-row", dataset: { campaignId: String(c.id), status: c.status } },
    el("div", { class: "manage-row-main" },
      el("h2", {}, el("a", { href: c.console_url }, c.name)),
      el("p", { class: "muted small" }, c.dataset_name, " · ", el("span", { class: `status status-${c.status}` }, STATUS[c.status] || c.status),
        ` · ${fmt(c.pool_size)} examples × ${c.redundancy}`),
      el("div", { class: "prog manage-prog", role: "group", "aria-label": "Progress" },
        el("span", { class: "prog-label" }, "Annotations"),
        el("span", { class: "prog-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(c.target_annotations), "aria-valuenow": String(c.annotations), "aria-label": `${c.annotations} of ${c.target_annotations} annotations` },
          (() => { const f = el("span", { class: "prog-fill" }); f.style.width = `${Math.min(100, c.progress * 100)}%`; return f; })()),
        el("span", { class: "prog-figure muted" }, `${fmt(c.annotations)} of ${fmt(c.target_annotations)} · ${pct}%`)),
      el("dl", { class: "counts" },
        el("div", {}, el("dt", {}, "Edits"), el("dd", { dataset: { count: "edits" } }, fmt(c.edits))),
        el("div", {}, el("dt", {}, "Verified"), el("dd", { dataset: { count: "verified" } }, fmt(c.edits_verified))),
        el("div", {}, el("dt", {}, "Validations"), el("dd", { dataset: { count: "validations" } }, fmt(c.validations))),
        el("div", {}, el("dt", { title: "open leases of every task kind: annotate, validate, perturbation" }, "Open leases (all tasks)"), el("dd", { dataset: { count: "open_leases" } }, fmt(c.open_leases))))),
    el("nav", { class: "manage-row-links", "aria-label": `${c.name}: pages` },
      el("a", { class: "button-link secondary", href: `${base}/` }, "Settings"),
      el("a", { class: "button-link secondary", href: `${base}/pool/` }, "Pool"),
      el("a", { class: "button-link secondary", href: `${base}/dashboard/` }, "Dashboard"),
      el("a", { class: "button-link secondary", href: `${base}/preview/` }, "Preview")));
}

api("GET", "campaigns/managed/").then((data) => {
  clear(host);
  if (!data.results.length) {
    host.append(el("p", { class: "muted" }, data.can_create ? "You manage no campaign yet. Create one with New campaign." : "You manage no campaign. A campaign's manager or the operator can make you one."));
    return;
  }
  host.append(el("ul", { class: "manage-list" }, data.results.map(row)));
}).catch((err) => {
  clear(host).append(el("p", { class: "field-error" }, err.message));
});
