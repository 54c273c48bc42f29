// The dashboard's Rounds section (docs/rounds.md): the table of rounds with vMER and the
// target's test accuracy (from the dashboard API's "rounds"), and the controls that open the
// next round and close the open one (the rounds REST endpoints).
import { api } from "./api.js";

const pct = (x) => (x == null ? "–" : `${(x * 100).toFixed(1)}%`);
const model = (m) => (m ? `${m.name} ${m.version}` : "–");
let lastKey = null;

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function vmerText(r) {
  if (r.vmer == null) return r.verified ? `– (${r.verified_pending_score} to score)` : "–";
  const ci = r.vmer_ci95 ? ` [${pct(r.vmer_ci95[0])}, ${pct(r.vmer_ci95[1])}]` : "";
  return `${pct(r.vmer)} (${r.fooling}/${r.verified_scored})${ci}`;
}

export function drawRounds(campaign, rows, onChange) {
  const key = JSON.stringify(rows);
  if (key === lastKey) return;
  lastKey = key;
  const body = document.getElementById("dash-rounds-body");
  const trs = rows.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.round = String(r.number);
    const action = document.createElement("td");
    if (r.status === "open") {
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "linklike";
      btn.textContent = "Close";
      btn.addEventListener("click", async () => {
        btn.disabled = true;
        try {
          await api("POST", `campaigns/${campaign}/rounds/${r.number}/close/`);
          onChange();
        } catch (err) {
          document.getElementById("dash-round-msg").textContent = err.message;
          btn.disabled = false;
        }
      });
      action.append(btn);
    }
    tr.append(
      cell(String(r.number)),
      cell(model(r.target)),
      cell(r.status),
      cell(String(r.edits), "num"),
      cell(String(r.verified), "num"),
      cell(String(r.fooling), "num"),
      cell(vmerText(r), "num"),
      cell(pct(r.target_test_accuracy), "num"),
      cell(model(r.trained_model)),
      action,
    );
    tr.querySelector("td:nth-child(7)").dataset.vmer = r.vmer == null ? "" : String(r.vmer);
    return tr;
  });
  if (!trs.length) {
    const tr = document.createElement("tr");
    const td = cell("No rounds: edits belong to no round until one is opened.", "muted");
    td.colSpan = 10;
    tr.append(td);
    trs.push(tr);
  }
  body.replaceChildren(...trs);
}

export function wireRoundForm(campaign, onChange) {
  const form = document.getElementById("dash-round-open");
  if (!form) return;
  const msg = document.getElementById("dash-round-msg");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const target = Number(form.elements.target.value);
    msg.textContent = "";
    try {
      const opened = await api("POST", `campaigns/${campaign}/rounds/`, { target });
      msg.textContent = `Round ${opened.number} is open.`;
      onChange();
    } catch (err) {
      msg.textContent = err.message;
    }
  });
}
