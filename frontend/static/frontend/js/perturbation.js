// Perturbation page: define a study (POST campaigns/{id}/perturbation-studies/) and follow the
// build of every study by polling the list while any is building.
import { api } from "./api.js";

const setup = JSON.parse(document.getElementById("perturb-setup").textContent);
const campaignId = setup.campaign;
const form = document.getElementById("study-form");
const errorBox = document.getElementById("study-error");
const pSelect = document.getElementById("s-perturbation");
const mSelect = document.getElementById("s-modality");
const levelsInput = document.getElementById("s-levels");
const parameter = document.getElementById("s-parameter");
const table = document.getElementById("studies-table");
const body = table.querySelector("tbody");
const empty = document.getElementById("studies-empty");
const POLL_MS = 1000;
let timer = null;

const kinds = new Set(setup.modalities.map((m) => m.kind));
for (const p of setup.perturbations.filter((p) => kinds.has(p.kind))) {
  pSelect.append(new Option(`${p.name} (${p.kind})`, p.name));
}

function chosen() {
  return setup.perturbations.find((p) => p.name === pSelect.value);
}

function onPerturbation() {
  const p = chosen();
  if (!p) return;
  parameter.textContent = `Level: ${p.parameter}.`;
  levelsInput.value = p.default_ladder.join(", ");
  mSelect.replaceChildren();
  for (const m of setup.modalities.filter((m) => m.kind === p.kind)) {
    mSelect.append(new Option(m.label || m.name, m.name));
  }
}
pSelect.addEventListener("change", onPerturbation);
onPerturbation();

function cell(row, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  row.append(td);
}

function render(list) {
  body.replaceChildren();
  table.hidden = list.length === 0;
  empty.hidden = list.length !== 0;
  for (const s of list) {
    const row = document.createElement("tr");
    row.dataset.studyId = String(s.id);
    row.dataset.status = s.status;
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = `/manage/campaigns/${campaignId}/perturbation/${s.id}/`;
    link.className = "study-link";
    link.textContent = s.name;
    name.append(link);
    row.append(name);
    cell(row, `${s.perturbation} of ${s.modality}`);
    cell(row, s.levels.join(", "), "small");
    const job = s.job ? ` · ${s.job.done} of ${s.job.total} examples` : "";
    cell(row, `${s.status}${s.status === "building" ? job : ""}`, `study-status status-${s.status}`);
    cell(row, (s.items_by_level || []).join(" · "), "small");
    body.append(row);
  }
}

async function refresh() {
  clearTimeout(timer);
  try {
    const list = (await api("GET", `campaigns/${campaignId}/perturbation-studies/`)).results || [];
    render(list);
    if (list.some((s) => s.status === "building")) timer = setTimeout(refresh, POLL_MS);
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
    timer = setTimeout(refresh, POLL_MS * 5);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  const button = document.getElementById("study-start");
  button.disabled = true;
  const data = new FormData(form);
  const payload = {
    name: data.get("name"),
    perturbation: data.get("perturbation"),
    modality: data.get("modality"),
    levels: String(data.get("levels")).split(",").map((x) => x.trim()).filter(Boolean).map(Number),
    seed: Number(data.get("seed") || 0),
  };
  if (data.get("chance")) payload.chance = Number(data.get("chance"));
  try {
    await api("POST", `campaigns/${campaignId}/perturbation-studies/`, payload);
    form.reset();
    onPerturbation();
    await refresh();
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
});

refresh();
