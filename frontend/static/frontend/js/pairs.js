// The pair viewer (docs/managing.md "Pair viewer"): filters kept in the URL's query, a list
// of the filtered pairs, one pair at a time at its stable link
// (/manage/campaigns/<id>/pairs/<edit id>/?filters), paged with j/k or ←/→.
import { api } from "./api.js";
import { el, clear, humanName, isTypingTarget, pageConfig } from "./util.js";
import { helpDialog, banner } from "./common_ui.js";
import { renderPair } from "./pair_view.js";

const FILTERS = ["modality", "status", "fooled", "author", "target_label"];
const PAGE_SIZE = 50; // the API's page size

const cfg = pageConfig();
const campaignId = cfg.campaign;
const options = JSON.parse(cfg.options || "{}");
options.campaign = campaignId; // the pair view's attention overlay asks the API with it
const app = document.getElementById("app");
const live = document.getElementById("pairs-live");
const base = `/manage/campaigns/${campaignId}/pairs/`;

const help = helpDialog([
  [["j", "or", "→"], "next pair"],
  [["k", "or", "←"], "previous pair"],
  [["o"], "show or hide the outline of the changed pixels"],
  [["?"], "show this help"],
]);

const S = { filters: {}, page: 0, list: null, pair: null, outline: true, loading: 0, listSeq: 0 };

function readUrl() {
  const params = new URLSearchParams(location.search);
  const filters = {};
  for (const k of FILTERS) if (params.get(k)) filters[k] = params.get(k);
  const m = location.pathname.match(/\/pairs\/(\d+)\/?$/);
  return { filters, editId: m ? Number(m[1]) : null };
}

function query(filters = S.filters, extra = {}) {
  const params = new URLSearchParams();
  for (const k of FILTERS) if (filters[k]) params.set(k, filters[k]);
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  const s = params.toString();
  return s ? `?${s}` : "";
}

const pairUrl = (id) => `${base}${id}/${query()}`;

// --- layout -------------------------------------------------------------------------------
const msg = el("div", { class: "banner", hidden: true, role: "status" });
const countEl = el("p", { class: "pairs-count muted", id: "pairs-count" });
const listEl = el("ol", { class: "pairs-list", id: "pairs-list" });
const pagerEl = el("div", { class: "pairs-pager" });
const detail = el("div", { class: "pairs-detail", id: "pair-detail" });
const prevBtn = el("button", { type: "button", class: "secondary", "aria-keyshortcuts": "k ArrowLeft", onclick: () => step(-1) }, el("kbd", { "aria-hidden": "true" }, "k"), " Previous");
const nextBtn = el("button", { type: "button", class: "secondary", "aria-keyshortcuts": "j ArrowRight", onclick: () => step(1) }, "Next ", el("kbd", { "aria-hidden": "true" }, "j"));
const outlineBox = el("input", { type: "checkbox", id: "show-outline", checked: true, onchange: () => setOutline(outlineBox.checked) });

function select(name, label, choices) {
  const s = el("select", { id: `f-${name}`, name, onchange: () => applyFilter(name, s.value) },
    el("option", { value: "" }, "any"),
    choices.map(([v, t]) => el("option", { value: v }, t)));
  return { node: el("div", { class: "filter" }, el("label", { for: `f-${name}` }, label), s), select: s };
}

const mods = new Map(options.modalities.map((m) => [m.name, m]));
const filterControls = {
  modality: select("modality", "Modality edited", options.editable.map((m) => [m, humanName(mods.get(m)?.label || m)])),
  status: select("status", "Validation", [["verified", "verified"], ["disputed", "disputed"], ["pending", "pending"]]),
  fooled: select("fooled", "Model fooled", options.models.map((m) => [String(m.id), `${m.name} v${m.version}`])),
  author: select("author", "Annotator", options.authors.map((a) => [a, a])),
  target_label: select("target_label", "Target label", options.labels.map((l) => [l, humanName(l)])),
};
const clearBtn = el("button", { type: "button", class: "secondary", id: "clear-filters", onclick: () => setFilters({}) }, "Clear filters");

const hasImages = options.modalities.some((m) => m.kind === "image");
if (!options.models.length) {
  filterControls.fooled.select.disabled = true;
  filterControls.fooled.select.title = "This campaign has no models attached.";
}

function layout() {
  clear(app).append(
    el("form", { class: "pairs-filters", role: "search", "aria-label": "Filter the pairs", onsubmit: (e) => e.preventDefault() },
      Object.values(filterControls).map((c) => c.node), el("div", { class: "filter filter-actions" }, clearBtn)),
    msg,
    el("div", { class: "pairs-body" },
      el("nav", { class: "pairs-side", "aria-label": "Pairs" }, countEl, listEl, pagerEl),
      el("div", { class: "pairs-main" },
        el("div", { class: "pair-bar" },
          el("div", { class: "pair-nav" }, prevBtn, nextBtn),
          el("h1", { id: "pair-title", tabindex: "-1" }, "Pairs"),
          hasImages ? el("label", { class: "inline-check", for: "show-outline" }, outlineBox, " Outline changed pixels ", el("kbd", { "aria-hidden": "true" }, "o")) : ""),
        el("p", { class: "pairs-keys muted small" },
          el("kbd", {}, "j"), " / ", el("kbd", {}, "→"), " next · ", el("kbd", {}, "k"), " / ", el("kbd", {}, "←"), " previous · ",
          hasImages ? [el("kbd", {}, "o"), " outline · "] : "", el("kbd", {}, "?"), " all keys"),
        detail)));
}

function syncControls() {
  for (const [k, c] of Object.entries(filterControls)) c.select.value = S.filters[k] || "";
  clearBtn.disabled = !Object.keys(S.filters).length;
}

function say(text) {
  // Cleared first, so the same words said twice are announced twice.
  live.textContent = "";
  setTimeout(() => { live.textContent = text; }, 30);
}

// --- the list -----------------------------------------------------------------------------
async function loadList(page) {
  const seq = ++S.listSeq;
  const data = await api("GET", `campaigns/${campaignId}/edits/${query(S.filters, { page: String(page + 1) })}`);
  if (seq !== S.listSeq) return null; // the filters changed while this page was on its way
  S.list = data;
  S.page = page;
  renderList();
  return data;
}

function renderList() {
  const data = S.list;
  const n = data ? data.count : 0;
  const active = Object.keys(S.filters).length;
  countEl.textContent = `${n} pair${n === 1 ? "" : "s"}${active ? " match the filters" : ""}`;
  clear(listEl);
  for (const e of data ? data.results : []) {
    const current = S.pair && S.pair.id === e.id;
    const fooled = e.models_fooled && e.models_fooled.length;
    const link = el("a", {
      href: pairUrl(e.id),
      "aria-current": current ? "true" : undefined,
      dataset: { edit: String(e.id) },
      onclick: (ev) => { ev.preventDefault(); show(e.id, { focus: false }); },
    },
    el("span", { class: "pl-id" }, `#${e.id}`),
    el("span", { class: "pl-what" }, `${humanName(mods.get(e.modality)?.label || e.modality)} → ${humanName(e.target_label)}`),
    el("span", { class: "pl-meta" }, el("span", { class: `status-dot status-${e.status}`, title: e.status }), e.status, fooled ? el("span", { class: "badge fooled" }, `fools ${fooled}`) : "", el("span", { class: "muted" }, e.author)));
    listEl.append(el("li", {}, link));
  }
  clear(pagerEl);
  if (data && (data.previous || data.next)) {
    const first = S.page * PAGE_SIZE + 1;
    pagerEl.append(
      el("button", { type: "button", class: "secondary small", disabled: !data.previous, onclick: () => loadList(S.page - 1) }, "‹"),
      el("span", { class: "muted small" }, `${first}–${first + data.results.length - 1} of ${data.count}`),
      el("button", { type: "button", class: "secondary small", disabled: !data.next, onclick: () => loadList(S.page + 1) }, "›"));
  }
}

// --- one pair -----------------------------------------------------------------------------
async function show(id, { push = true, focus = true, replace = false } = {}) {
  const ticket = ++S.loading;
  let pair;
  try {
    pair = await api("GET", `campaigns/${campaignId}/edits/${id}/${query()}`);
  } catch (err) {
    if (ticket !== S.loading) return;
    S.pair = null;
    clear(detail).append(el("section", { class: "card" }, el("h2", {}, err.status === 404 ? "No such pair" : "The pair could not be loaded"),
      el("p", {}, err.status === 404 ? `Edit #${id} is not one of this campaign's.` : err.message)));
    document.getElementById("pair-title").textContent = "Pairs";
    updateNav();
    return;
  }
  if (ticket !== S.loading) return; // a later navigation won
  S.pair = pair;
  const url = pairUrl(pair.id);
  if (replace) history.replaceState({ id: pair.id }, "", url);
  else if (push && location.pathname + location.search !== url) history.pushState({ id: pair.id }, "", url);
  const nb = pair.neighbours;
  const where = nb.position ? `pair ${nb.position} of ${nb.count}` : `not among the ${nb.count} filtered pairs`;
  const title = document.getElementById("pair-title");
  clear(title).append(`Edit #${pair.id}`, " ", el("span", { class: "muted pair-pos" }, where));
  clear(detail).append(renderPair(pair, options));
  detail.classList.toggle("no-outline", !S.outline);
  document.title = `Edit #${pair.id} · Pairs · Counterpoint`;
  updateNav();
  if (focus) title.focus({ preventScroll: false });
  say(`Edit ${pair.id}, ${where}: ${humanName(mods.get(pair.modality)?.label || pair.modality)} edited towards ${humanName(pair.target_label)}, ${pair.status}.`);
  // The list shows the page the pair is on.
  const page = nb.position ? Math.floor((nb.position - 1) / PAGE_SIZE) : S.page;
  if (!S.list || page !== S.page) await loadList(page);
  else renderList();
  const current = listEl.querySelector("[aria-current]");
  if (current) current.scrollIntoView({ block: "nearest" });
}

function updateNav() {
  const nb = S.pair ? S.pair.neighbours : null;
  prevBtn.disabled = !(nb && nb.previous);
  nextBtn.disabled = !(nb && nb.next);
}

function step(dir) {
  const nb = S.pair && S.pair.neighbours;
  const id = nb && (dir > 0 ? nb.next : nb.previous);
  if (id) show(id);
  else say(dir > 0 ? "This is the last pair." : "This is the first pair.");
}

function setOutline(on) {
  S.outline = on;
  outlineBox.checked = on;
  detail.classList.toggle("no-outline", !on);
}

// --- filters ------------------------------------------------------------------------------
function applyFilter(name, value) {
  const next = { ...S.filters };
  if (value) next[name] = value;
  else delete next[name];
  setFilters(next);
}

async function setFilters(filters, { push = true } = {}) {
  S.filters = filters;
  syncControls();
  banner(msg, "");
  let data;
  try {
    data = await loadList(0);
  } catch (err) {
    banner(msg, err.message, { kind: "warn" });
    return;
  }
  if (!data) return; // newer filters are being applied
  if (data.results.length) {
    await show(data.results[0].id, { push, focus: false });
  } else {
    S.pair = null;
    S.loading++;
    const url = `${base}${query()}`;
    if (push) history.pushState({}, "", url);
    clear(detail).append(el("section", { class: "card empty" }, el("h2", {}, "No pairs"),
      el("p", {}, Object.keys(filters).length ? "No counterfactual pair matches these filters." : "Nobody has submitted an edit in this campaign yet.")));
    document.getElementById("pair-title").textContent = "Pairs";
    updateNav();
    say(`No pairs ${Object.keys(filters).length ? "match the filters" : "yet"}.`);
  }
}

async function fromUrl({ initial = false } = {}) {
  const { filters, editId } = readUrl();
  const changed = JSON.stringify(filters) !== JSON.stringify(S.filters) || !S.list;
  if (editId) {
    S.filters = filters;
    syncControls();
    if (changed) S.list = null;
    await show(editId, { push: false, focus: !initial, replace: initial });
  } else {
    await setFilters(filters, { push: false });
    if (initial && S.pair) history.replaceState({ id: S.pair.id }, "", pairUrl(S.pair.id));
  }
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || isTypingTarget(e.target) || help.open) return;
  if (e.key === "j" || e.key === "ArrowRight") { e.preventDefault(); step(1); }
  else if (e.key === "k" || e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
  else if (e.key === "o") { e.preventDefault(); setOutline(!S.outline); }
  else if (e.key === "?") { e.preventDefault(); help.toggle(); }
});
window.addEventListener("popstate", () => fromUrl());

layout();
syncControls();
fromUrl({ initial: true });
